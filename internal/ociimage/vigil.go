package ociimage

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Paths inside Vigil's image, as deploy/README.md documents them and the
// Helm chart's arguments expect.
const (
	VigilBinary       = "/usr/local/bin/vigil"
	VigilRulesDir     = "/usr/share/vigil/rules"
	VigilAdmissionDir = "/usr/share/vigil/admission"
)

// VigilOptions are the inputs of Vigil's image.
type VigilOptions struct {
	Ref string // e.g. "vigil.local/vigil:dev"
	// Binary is a statically linked vigil (CGO_ENABLED=0): the image has
	// no libc.
	Binary string
	// RulesDir and AdmissionDir hold the .wasm runtime and admission packs
	// (`make rules` writes wasm-rules/build and wasm-rules/build/admission).
	RulesDir, AdmissionDir string
}

// Vigil returns the image the chart runs for both the guard and the webhook:
// the binary as entrypoint, the standard rule pack and the admission pack.
// It fails when a pack is empty, since a webhook without an admission pack
// refuses to start and a guard without rules watches nothing.
func Vigil(o VigilOptions) (Image, error) {
	if _, err := os.Stat(o.Binary); err != nil {
		return Image{}, fmt.Errorf("%w: vigil binary: %v", ErrBadImage, err)
	}
	img := Image{
		Ref:        o.Ref,
		Entrypoint: []string{VigilBinary},
		Env:        []string{"PATH=/usr/local/bin"},
		Files: []File{
			{Path: VigilBinary, Source: o.Binary, Mode: 0o755},
			{Path: "/tmp", Mode: os.ModeDir | os.ModeSticky | 0o777},
		},
	}
	for _, p := range []struct{ src, dst string }{{o.RulesDir, VigilRulesDir}, {o.AdmissionDir, VigilAdmissionDir}} {
		wasm, err := filepath.Glob(filepath.Join(p.src, "*.wasm"))
		if err != nil {
			return Image{}, err
		}
		if len(wasm) == 0 {
			return Image{}, fmt.Errorf("%w: no .wasm modules in %q (run make rules)", ErrBadImage, p.src)
		}
		sort.Strings(wasm)
		for _, f := range wasm {
			img.Files = append(img.Files, File{Path: p.dst + "/" + filepath.Base(f), Source: f, Mode: 0o644})
		}
	}
	if !strings.Contains(o.Ref, ":") {
		return Image{}, fmt.Errorf("%w: reference %q needs a tag", ErrBadImage, o.Ref)
	}
	return img, nil
}
