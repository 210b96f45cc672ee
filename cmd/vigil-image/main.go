// Command vigil-image packs Vigil's container image (the static vigil binary,
// the standard rule pack and the admission pack) as an OCI image-layout
// tarball, without a container engine. `make image` runs it through
// scripts/image.sh; the Kubernetes e2e test imports its output.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/vigilsec/vigil/internal/ociimage"
)

type config struct {
	out string
	ociimage.VigilOptions
}

func main() {
	var cfg config
	flag.StringVar(&cfg.out, "o", "bin/vigil-image.tar", "output tarball")
	flag.StringVar(&cfg.Ref, "ref", "vigil.local/vigil:dev", "image reference (name:tag) recorded in the tarball")
	flag.StringVar(&cfg.Binary, "binary", "bin/vigil-static", "statically linked vigil binary (CGO_ENABLED=0)")
	flag.StringVar(&cfg.RulesDir, "rules", "wasm-rules/build", "directory of runtime rule modules (*.wasm)")
	flag.StringVar(&cfg.AdmissionDir, "admission", "wasm-rules/build/admission", "directory of admission rule modules (*.wasm)")
	flag.Parse()
	if err := run(context.Background(), cfg, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-image:", err)
		os.Exit(1)
	}
}

func run(_ context.Context, cfg config, progress io.Writer) error {
	img, err := ociimage.Vigil(cfg.VigilOptions)
	if err != nil {
		return err
	}
	if err := img.WriteFile(cfg.out); err != nil {
		return fmt.Errorf("write %s: %w", cfg.out, err)
	}
	fi, err := os.Stat(cfg.out)
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "==> image %s: %s (%d files, %.1f MiB)\n", img.Ref, cfg.out, len(img.Files), float64(fi.Size())/(1<<20))
	return nil
}
