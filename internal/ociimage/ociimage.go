// Package ociimage packs single-layer container images as OCI image-layout
// tarballs without a container engine: `make image` builds Vigil's own image
// with it, and the Kubernetes e2e harness its test images. The tarballs are
// reproducible (sorted entries, fixed timestamps) and import with
// `ctr images import` and `docker load` (Docker 25 or later reads OCI
// layouts).
package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// ErrBadImage reports an Image that cannot be packed.
var ErrBadImage = errors.New("bad image")

// Image is a single-layer container image built from host files, packed as
// an OCI image-layout tarball that `ctr images import` accepts.
type Image struct {
	// Ref is the full reference, e.g. "vigil.local/guard:e2e". Use a
	// registry host containing a dot so containerd does not prefix docker.io.
	Ref        string
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
}

// File is one entry of the image's only layer. Exactly one of Source,
// Data or Link is used; directories are created implicitly.
type File struct {
	Path   string // absolute path inside the image
	Source string // host file to copy
	Data   []byte // literal contents
	Link   string // symlink target
	Mode   os.FileMode
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
	files := append([]File(nil), img.Files...)
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

// WriteFile packs img into the file at path, replacing it only once the
// whole archive is written, so a failed build never leaves a truncated
// tarball behind for `ctr images import` to choke on.
func (img Image) WriteFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vigil-image-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := img.WriteOCIArchive(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ErrNoRef means a tarball's index names no image.
var ErrNoRef = errors.New("image layout names no image")

// ArchiveRef returns the image reference an OCI layout tarball at path
// records (its index's io.containerd.image.name annotation), the name
// `ctr images import` gives the image.
func ArchiveRef(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return ReadRef(f)
}

// ReadRef is ArchiveRef on a tar stream. It reads only up to index.json,
// and at most 1 MiB of it.
func ReadRef(r io.Reader) (string, error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", fmt.Errorf("%w: no index.json", ErrNoRef)
		}
		if err != nil {
			return "", fmt.Errorf("read image layout: %w", err)
		}
		if path.Clean(h.Name) != "index.json" {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			return "", fmt.Errorf("read index.json: %w", err)
		}
		var index struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.Unmarshal(b, &index); err != nil {
			return "", fmt.Errorf("index.json: %w", err)
		}
		for _, m := range index.Manifests {
			if ref := m.Annotations["io.containerd.image.name"]; ref != "" {
				return ref, nil
			}
		}
		return "", ErrNoRef
	}
}
