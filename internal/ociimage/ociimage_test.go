package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/privtest"
)

// entry is one file of an image's layer.
type entry struct {
	typ  byte
	mode int64
	link string
	data []byte
}

// unpacked is an OCI layout tarball read back and checked: every blob the
// index reaches exists and matches its descriptor's digest and size.
type unpacked struct {
	ref, tag   string
	platform   string
	entrypoint []string
	env        []string
	layer      map[string]entry
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

type desc struct {
	MediaType   string
	Digest      string
	Size        int
	Annotations map[string]string
	Platform    struct{ OS, Architecture string }
}

// readLayout parses b the way an importer does and fails t on any
// inconsistency.
func readLayout(t *testing.T, b []byte) unpacked {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = data
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Fatalf("oci-layout: %q", files["oci-layout"])
	}
	blob := func(d desc, wantType string) []byte {
		t.Helper()
		if d.MediaType != wantType {
			t.Fatalf("descriptor %s: media type %q, want %q", d.Digest, d.MediaType, wantType)
		}
		data, ok := files["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")]
		if !ok {
			t.Fatalf("blob %s missing", d.Digest)
		}
		if sha(data) != d.Digest || len(data) != d.Size {
			t.Fatalf("blob %s: digest %s size %d, descriptor says size %d", d.Digest, sha(data), len(data), d.Size)
		}
		return data
	}
	var index struct {
		SchemaVersion int
		Manifests     []desc
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if index.SchemaVersion != 2 || len(index.Manifests) != 1 {
		t.Fatalf("index: schema %d, %d manifests", index.SchemaVersion, len(index.Manifests))
	}
	md := index.Manifests[0]
	var manifest struct {
		Config desc
		Layers []desc
	}
	if err := json.Unmarshal(blob(md, "application/vnd.oci.image.manifest.v1+json"), &manifest); err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		OS, Architecture string
		Config           struct{ Entrypoint, Env []string }
		RootFS           struct {
			Type    string
			DiffIDs []string `json:"diff_ids"`
		}
	}
	if err := json.Unmarshal(blob(manifest.Config, "application/vnd.oci.image.config.v1+json"), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(manifest.Layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.Type != "layers" {
		t.Fatalf("want one layer: manifest %+v, rootfs %+v", manifest.Layers, cfg.RootFS)
	}
	layerBytes := blob(manifest.Layers[0], "application/vnd.oci.image.layer.v1.tar")
	// Uncompressed: the layer's digest is its diff_id.
	if cfg.RootFS.DiffIDs[0] != manifest.Layers[0].Digest {
		t.Fatalf("diff_id %s != layer digest %s", cfg.RootFS.DiffIDs[0], manifest.Layers[0].Digest)
	}
	if md.Platform.OS != cfg.OS || md.Platform.Architecture != cfg.Architecture || cfg.OS != "linux" {
		t.Fatalf("platform: index %+v, config %s/%s", md.Platform, cfg.OS, cfg.Architecture)
	}
	u := unpacked{
		ref: md.Annotations["io.containerd.image.name"], tag: md.Annotations["org.opencontainers.image.ref.name"],
		platform: cfg.OS + "/" + cfg.Architecture, entrypoint: cfg.Config.Entrypoint, env: cfg.Config.Env,
		layer: map[string]entry{},
	}
	lr := tar.NewReader(bytes.NewReader(layerBytes))
	for {
		h, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("layer: %v", err)
		}
		data, err := io.ReadAll(lr)
		if err != nil {
			t.Fatal(err)
		}
		u.layer[h.Name] = entry{typ: h.Typeflag, mode: h.Mode, link: h.Linkname, data: data}
	}
	return u
}

func TestArchive(t *testing.T) {
	host := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(host, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := Image{
		Ref:        "vigil.local/test:v1",
		Entrypoint: []string{"/usr/local/bin/prog", "--flag"},
		Files: []File{
			{Path: "/usr/local/bin/prog", Source: host, Mode: 0o755},
			{Path: "/tmp", Mode: os.ModeDir | os.ModeSticky | 0o777},
			{Path: "/bin/sh", Link: "/usr/local/bin/prog"},
		},
	}
	var a, b bytes.Buffer
	if err := img.WriteOCIArchive(&a); err != nil {
		t.Fatal(err)
	}
	if err := img.WriteOCIArchive(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two packs of the same image differ; digests would change every run")
	}
	u := readLayout(t, a.Bytes())
	if u.ref != "vigil.local/test:v1" || u.tag != "v1" {
		t.Errorf("name annotations %q %q", u.ref, u.tag)
	}
	if strings.Join(u.entrypoint, " ") != "/usr/local/bin/prog --flag" {
		t.Errorf("entrypoint %q", u.entrypoint)
	}
	want := map[string]byte{
		"usr/": tar.TypeDir, "usr/local/": tar.TypeDir, "usr/local/bin/": tar.TypeDir,
		"usr/local/bin/prog": tar.TypeReg, "bin/": tar.TypeDir, "bin/sh": tar.TypeSymlink, "tmp/": tar.TypeDir,
	}
	for name, typ := range want {
		if e, ok := u.layer[name]; !ok || e.typ != typ {
			t.Errorf("layer entry %s: %+v, want type %c", name, e, typ)
		}
	}
	if e := u.layer["tmp/"]; e.mode&0o1000 == 0 {
		t.Errorf("/tmp lost its sticky bit: %o", e.mode)
	}
	if e := u.layer["bin/sh"]; e.link != "/usr/local/bin/prog" {
		t.Errorf("symlink target %q", e.link)
	}
	if e := u.layer["usr/local/bin/prog"]; e.mode != 0o755 || string(e.data) != "#!/bin/true\n" {
		t.Errorf("prog: mode %o data %q", e.mode, e.data)
	}
}

func TestArchiveRejectsBadInput(t *testing.T) {
	for name, img := range map[string]Image{
		"no tag":        {Ref: "vigil.local/x"},
		"relative path": {Ref: "vigil.local/x:1", Files: []File{{Path: "bin/x", Data: []byte("x")}}},
		"unclean path":  {Ref: "vigil.local/x:1", Files: []File{{Path: "/bin/../etc/x", Data: []byte("x")}}},
		"missing file":  {Ref: "vigil.local/x:1", Files: []File{{Path: "/x", Source: "/nonexistent/vigil"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := img.WriteOCIArchive(io.Discard); !errors.Is(err, ErrBadImage) {
				t.Fatalf("got %v, want ErrBadImage", err)
			}
		})
	}
}

// TestVigilImage packs Vigil's image layout from a real executable (this
// test binary stands in for vigil) and real rule files, writes it with
// WriteFile, and reads the tarball back: every digest checks, the binary is
// the entrypoint byte for byte, and both packs sit where the chart looks.
func TestVigilImage(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rules := t.TempDir()
	adm := filepath.Join(rules, "admission")
	if err := os.MkdirAll(adm, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, data := range map[string]string{
		filepath.Join(rules, "standard.wasm"): "\x00asm\x01\x00\x00\x00std",
		filepath.Join(rules, "README"):        "not a module",
		filepath.Join(adm, "pss.wasm"):        "\x00asm\x01\x00\x00\x00pss",
	} {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img, err := Vigil(VigilOptions{Ref: "vigil.local/vigil:test", Binary: self, RulesDir: rules, AdmissionDir: adm})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "vigil-image.tar")
	if err := img.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	u := readLayout(t, b)
	if u.ref != "vigil.local/vigil:test" {
		t.Errorf("ref %q", u.ref)
	}
	if len(u.entrypoint) != 1 || u.entrypoint[0] != VigilBinary {
		t.Errorf("entrypoint %q, want %s", u.entrypoint, VigilBinary)
	}
	selfBytes, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := u.layer[strings.TrimPrefix(VigilBinary, "/")]
	if bin.typ != tar.TypeReg || bin.mode != 0o755 || !bytes.Equal(bin.data, selfBytes) {
		t.Errorf("%s in the image: type %c mode %o, %d bytes; want the %d-byte binary, 0755", VigilBinary, bin.typ, bin.mode, len(bin.data), len(selfBytes))
	}
	for path, want := range map[string]string{
		"usr/share/vigil/rules/standard.wasm": "\x00asm\x01\x00\x00\x00std",
		"usr/share/vigil/admission/pss.wasm":  "\x00asm\x01\x00\x00\x00pss",
	} {
		if e := u.layer[path]; string(e.data) != want {
			t.Errorf("%s: %q", path, e.data)
		}
	}
	if _, ok := u.layer["usr/share/vigil/rules/README"]; ok {
		t.Error("non-module file packed into the rules dir")
	}

	// Without an admission pack the webhook would refuse to start.
	if _, err := Vigil(VigilOptions{Ref: "vigil.local/vigil:test", Binary: self, RulesDir: rules, AdmissionDir: t.TempDir()}); !errors.Is(err, ErrBadImage) {
		t.Errorf("empty admission pack: %v, want ErrBadImage", err)
	}
}

// TestBuiltImage checks the tarball `make image` wrote, when there is one.
func TestBuiltImage(t *testing.T) {
	p := filepath.Join("..", "..", "bin", "vigil-image.tar")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		if privtest.InCI() {
			t.Fatal("no bin/vigil-image.tar under CI: make test builds it (make image) before the unit tier")
		}
		t.Skip("no bin/vigil-image.tar; run make image")
	}
	if err != nil {
		t.Fatal(err)
	}
	u := readLayout(t, b)
	bin := u.layer[strings.TrimPrefix(VigilBinary, "/")]
	// A static Go ELF executable with vigil's own command tree inside.
	if !bytes.HasPrefix(bin.data, []byte("\x7fELF")) || !bytes.Contains(bin.data, []byte("Enforcing admission-plus-runtime guard")) {
		t.Errorf("%s in %s is not the vigil binary (%d bytes)", VigilBinary, p, len(bin.data))
	}
	for _, f := range []string{"usr/share/vigil/rules/standard.wasm", "usr/share/vigil/admission/pss.wasm"} {
		if e := u.layer[f]; !bytes.HasPrefix(e.data, []byte("\x00asm")) {
			t.Errorf("%s: not a Wasm module", f)
		}
	}
}

func TestReadRef(t *testing.T) {
	var buf bytes.Buffer
	img := Image{Ref: "vigil.local/x:1", Files: []File{{Path: "/x", Data: []byte("x")}}}
	if err := img.WriteOCIArchive(&buf); err != nil {
		t.Fatal(err)
	}
	if ref, err := ReadRef(bytes.NewReader(buf.Bytes())); err != nil || ref != img.Ref {
		t.Fatalf("ReadRef = %q, %v; want %s", ref, err, img.Ref)
	}
	var empty bytes.Buffer
	tw := tar.NewWriter(&empty)
	tw.Close()
	if _, err := ReadRef(&empty); !errors.Is(err, ErrNoRef) {
		t.Fatalf("empty tar: %v, want ErrNoRef", err)
	}
}

// FuzzReadRef: ReadRef reads tarballs a user hands to the e2e harness; any
// bytes must give a ref or an error, never a panic.
func FuzzReadRef(f *testing.F) {
	var buf bytes.Buffer
	img := Image{Ref: "vigil.local/x:1", Files: []File{{Path: "/x", Data: []byte("x")}}}
	if err := img.WriteOCIArchive(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:700])
	f.Add([]byte{})
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ref, err := ReadRef(bytes.NewReader(b))
		if err == nil && ref == "" {
			t.Fatal("no error and no ref")
		}
	})
}
