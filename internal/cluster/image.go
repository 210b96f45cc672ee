package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vigilsec/vigil/internal/ociimage"
)

// Image references of the images every node cluster loads. No registry is
// reachable from the test machines, so pods must use these (or images the
// test loads itself) with imagePullPolicy: Never.
const (
	PauseImage   = "vigil.local/pause:e2e"
	BusyboxImage = "vigil.local/busybox:e2e"
)

// Image and ImageFile are internal/ociimage's, which `make image` shares.
type (
	Image     = ociimage.Image
	ImageFile = ociimage.File
)

// ErrBadImage reports an Image that cannot be packed.
var ErrBadImage = ociimage.ErrBadImage

// BusyboxStatic is where Debian's busybox-static installs the binary.
const BusyboxStatic = "/bin/busybox"

// NewBusyboxImage returns an image holding a static busybox binary and a
// symlink for each applet it reports, so `sh`, `echo` and `sleep` resolve
// like in the upstream busybox image.
func NewBusyboxImage(ref, busybox string) (Image, error) {
	out, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return Image{}, fmt.Errorf("list busybox applets: %w", err)
	}
	img := Image{
		Ref:   ref,
		Cmd:   []string{"/bin/sh"},
		Env:   []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Files: []ImageFile{{Path: "/bin/busybox", Source: busybox, Mode: 0o755}},
	}
	seen := map[string]bool{"/bin/busybox": true}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		p := "/" + strings.TrimPrefix(strings.TrimSpace(sc.Text()), "/")
		if p == "/" || seen[p] {
			continue
		}
		seen[p] = true
		img.Files = append(img.Files, ImageFile{Path: p, Link: "/bin/busybox"})
	}
	for _, d := range []string{"/tmp", "/proc", "/sys", "/dev", "/etc", "/root", "/var"} {
		img.Files = append(img.Files, ImageFile{Path: d, Mode: os.ModeDir | 0o755})
	}
	img.Files = append(img.Files,
		ImageFile{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), Mode: 0o644},
		ImageFile{Path: "/etc/group", Data: []byte("root:x:0:\nnogroup:x:65534:\n"), Mode: 0o644},
	)
	return img, nil
}

// NewStaticBinaryImage returns an image whose entrypoint is one static
// binary copied from the host, the shape of Vigil's own images in tests.
func NewStaticBinaryImage(ref, hostBinary, inImage string, args ...string) Image {
	return Image{
		Ref:        ref,
		Entrypoint: append([]string{inImage}, args...),
		Files: []ImageFile{
			{Path: inImage, Source: hostBinary, Mode: 0o755},
			{Path: "/tmp", Mode: os.ModeDir | os.ModeSticky | 0o777},
		},
	}
}

// buildPause compiles the pause program (./pause in this module) into a
// static binary. It shells out to the go tool because the harness only runs
// under `go test`, where the toolchain is by definition present.
func buildPause(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "github.com/vigilsec/vigil/internal/cluster/pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build pause binary: %w: %s", err, b)
	}
	return nil
}

// writeImage packs img into dir and returns the tarball path.
func writeImage(dir string, img Image) (string, error) {
	name := strings.NewReplacer("/", "_", ":", "_").Replace(img.Ref) + ".oci.tar"
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	if err := img.WriteOCIArchive(f); err != nil {
		f.Close()
		return "", err
	}
	return p, f.Close()
}
