package cluster

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Image references of the images every node cluster loads. No registry is
// reachable from the test machines, so pods must use these (or images the
// test loads itself) with imagePullPolicy: Never.
const (
	PauseImage   = "vigil.local/pause:e2e"
	BusyboxImage = "vigil.local/busybox:e2e"
)

// ErrBadImage reports an Image that cannot be packed.
var ErrBadImage = errors.New("bad image")

// Image is a single-layer container image built from host files, packed as
// an OCI image-layout tarball that `ctr images import` accepts.
type Image struct {
	// Ref is the full reference, e.g. "vigil.local/guard:e2e". Use a
	// registry host containing a dot so containerd does not prefix docker.io.
	Ref        string
	Files      []ImageFile
	Entrypoint []string
	Cmd        []string
	Env        []string
}

// ImageFile is one entry of the image's only layer. Exactly one of Source,
// Data or Link is used; directories are created implicitly.
type ImageFile struct {
	Path   string // absolute path inside the image
	Source string // host file to copy
	Data   []byte // literal contents
	Link   string // symlink target
	Mode   os.FileMode
}

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

// WriteOCIArchive writes img as an OCI image-layout tar stream. The layer
// is stored uncompressed: the images are small and local, and it saves a
// gzip pass on every test run. Entries are sorted and timestamps fixed so
// the same inputs always give the same digests.
func (img Image) WriteOCIArchive(w io.Writer) error {
	if img.Ref == "" || !strings.Contains(img.Ref, ":") {
		return fmt.Errorf("%w: reference %q needs a tag", ErrBadImage, img.Ref)
	}
	layer, err := img.layer()
	if err != nil {
		return err
	}
	layerDigest := digest(layer)
	cfg, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      "1970-01-01T00:00:00Z",
		"config": map[string]any{
			"Entrypoint": img.Entrypoint,
			"Cmd":        img.Cmd,
			"Env":        img.Env,
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor("application/vnd.oci.image.config.v1+json", cfg),
		"layers":        []any{descriptor("application/vnd.oci.image.layer.v1.tar", layer)},
	})
	if err != nil {
		return err
	}
	md := descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
	md["platform"] = map[string]string{"architecture": runtime.GOARCH, "os": "linux"}
	md["annotations"] = map[string]string{
		"io.containerd.image.name":          img.Ref,
		"org.opencontainers.image.ref.name": img.Ref[strings.LastIndex(img.Ref, ":")+1:],
	}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{md}})
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	add := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	blob := func(b []byte) string { return "blobs/sha256/" + strings.TrimPrefix(digest(b), "sha256:") }
	for _, e := range []struct {
		name string
		b    []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blob(cfg), cfg},
		{blob(manifest), manifest},
		{blob(layer), layer},
	} {
		if err := add(e.name, e.b); err != nil {
			return fmt.Errorf("write image %s: %w", img.Ref, err)
		}
	}
	return tw.Close()
}

// layer renders the files as one uncompressed tar layer.
func (img Image) layer() ([]byte, error) {
	files := append([]ImageFile(nil), img.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	epoch := time.Unix(0, 0)
	mkdirs := func(p string) error {
		var parents []string
		for d := path.Dir(p); d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			d := parents[i]
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: epoch}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, f := range files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return nil, fmt.Errorf("%w: path %q must be absolute and clean", ErrBadImage, f.Path)
		}
		if err := mkdirs(f.Path); err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(f.Path, "/")
		hdr := &tar.Header{Name: name, Mode: int64(f.Mode.Perm()), ModTime: epoch}
		if f.Mode&os.ModeSticky != 0 {
			hdr.Mode = int64(f.Mode.Perm()) | 0o1000
		}
		var data []byte
		switch {
		case f.Mode.IsDir():
			if dirs[f.Path] {
				continue
			}
			dirs[f.Path] = true
			hdr.Name += "/"
			hdr.Typeflag = tar.TypeDir
		case f.Link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, f.Link, 0o777
		case f.Source != "":
			b, err := os.ReadFile(f.Source)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadImage, err)
			}
			data = b
		default:
			data = f.Data
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(data))
			if hdr.Mode == 0 {
				hdr.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func descriptor(mediaType string, b []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest(b), "size": len(b)}
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
