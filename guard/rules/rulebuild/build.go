// Package rulebuild turns a rule source directory (or one .wat file) into a
// .wasm module, picking the toolchain from the files present. It is what
// `vigil rules build` and scripts/build-rules.sh run.
package rulebuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Lang is a rule source language.
type Lang string

// Languages, detected in this order.
const (
	Go             Lang = "go"
	Rust           Lang = "rust"
	AssemblyScript Lang = "assemblyscript"
	C              Lang = "c"
	WAT            Lang = "wat"
)

// ErrUnknownLanguage is returned when no known source files are found.
var ErrUnknownLanguage = errors.New("no rule sources found (want go.mod/*.go, Cargo.toml/*.rs, package.json/*.ts, *.c or *.wat)")

// Options configures a build.
type Options struct {
	// Out is the .wasm path to write [DIR/build/<dir name>.wasm].
	Out string
	// SDKRoot is the repository root holding sdk/c/vigil.h [found by walking
	// up from the source, else $VIGIL_SDK].
	SDKRoot string
	// Progress receives one line per step [discard].
	Progress io.Writer
	// Clang is the C compiler [clang-14, else clang].
	Clang string
}

// Detect names the language of a directory or file.
func Detect(path string) (Lang, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		switch filepath.Ext(path) {
		case ".wat":
			return WAT, nil
		case ".c":
			return C, nil
		}
		return "", fmt.Errorf("%s: %w", path, ErrUnknownLanguage)
	}
	has := func(pattern string) bool {
		m, _ := filepath.Glob(filepath.Join(path, pattern))
		return len(m) > 0
	}
	switch {
	case has("go.mod") || has("*.go"):
		return Go, nil
	case has("Cargo.toml") || has("*.rs") || has("src/*.rs"):
		return Rust, nil
	case has("package.json") || has("*.ts") || has("assembly/*.ts"):
		return AssemblyScript, nil
	case has("*.c"):
		return C, nil
	case has("*.wat"):
		return WAT, nil
	}
	return "", fmt.Errorf("%s: %w", path, ErrUnknownLanguage)
}

// Build compiles src into opts.Out and returns the output path.
func Build(ctx context.Context, src string, opts Options) (string, error) {
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	lang, err := Detect(src)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", err
	}
	out := opts.Out
	if out == "" {
		base := strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))
		out = filepath.Join(abs, "build", base+".wasm")
	}
	if out, err = filepath.Abs(out); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	fmt.Fprintf(opts.Progress, "==> %s: %s source, building %s\n", src, lang, out)
	var cmd *exec.Cmd
	switch lang {
	case Go:
		cmd = exec.CommandContext(ctx, goTool(), "build", "-buildmode=c-shared", "-trimpath", "-o", out, ".")
		cmd.Dir = abs
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	case C:
		files := []string{abs}
		dir := abs
		if st, _ := os.Stat(abs); st.IsDir() {
			files, _ = filepath.Glob(filepath.Join(abs, "*.c"))
		} else {
			dir = filepath.Dir(abs)
		}
		root := opts.SDKRoot
		if root == "" {
			root = findSDK(dir)
		}
		if root == "" {
			return "", errors.New("cannot find sdk/c/vigil.h: set VIGIL_SDK to the vigil repository root")
		}
		args := []string{"--target=wasm32", "-O2", "-mbulk-memory", "-ffreestanding", "-nostdlib", "-Wall", "-Werror",
			"-I", filepath.Join(root, "sdk", "c"),
			"-Wl,--no-entry", "-Wl,--export-dynamic", "-Wl,--stack-first", "-Wl,-z,stack-size=65536",
			"-o", out}
		cmd = exec.CommandContext(ctx, clang(opts.Clang), append(args, files...)...)
		cmd.Dir = dir
	case WAT:
		file := abs
		if st, _ := os.Stat(abs); st.IsDir() {
			m, _ := filepath.Glob(filepath.Join(abs, "*.wat"))
			if len(m) != 1 {
				return "", fmt.Errorf("%s: %d .wat files; build one file at a time", src, len(m))
			}
			file = m[0]
		}
		cmd = exec.CommandContext(ctx, "wat2wasm", "-o", out, file)
	case Rust:
		var cleanup func()
		cmd, cleanup, err = rustCmd(ctx, abs, out, opts)
		if err != nil {
			return "", err
		}
		defer cleanup()
	case AssemblyScript:
		cmd, err = ascCmd(ctx, abs, out, opts)
		if err != nil {
			return "", err
		}
	}
	fmt.Fprintf(opts.Progress, "    $ %s\n", strings.Join(cmd.Args, " "))
	cmd.Stdout, cmd.Stderr = opts.Progress, opts.Progress
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s (%s): %w", src, lang, err)
	}
	if st, err := os.Stat(out); err != nil {
		return "", fmt.Errorf("build %s: no output: %w", src, err)
	} else {
		fmt.Fprintf(opts.Progress, "    wrote %s (%d bytes)\n", out, st.Size())
	}
	return out, nil
}

func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

func clang(c string) string {
	if c != "" {
		return c
	}
	if p, err := exec.LookPath("clang-14"); err == nil {
		return p
	}
	return "clang"
}

// findSDK walks up from dir to the directory holding sdk/c/vigil.h.
func findSDK(dir string) string {
	if env := os.Getenv("VIGIL_SDK"); env != "" {
		return env
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "sdk", "c", "vigil.h")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// rustCmd compiles the SDK crate (sdk/rust) to an rlib in a scratch
// directory, then returns the command that builds the rule crate (src/lib.rs
// or lib.rs) as a cdylib linked against it. Plain rustc, no cargo: Debian's
// rustc with libstd-rust-dev-wasm32 has the wasm32 target and crates.io is
// not needed. A Cargo.toml, when present, only marks the directory as Rust.
func rustCmd(ctx context.Context, dir, out string, opts Options) (*exec.Cmd, func(), error) {
	lib := ""
	for _, c := range []string{"src/lib.rs", "lib.rs"} {
		if _, err := os.Stat(filepath.Join(dir, c)); err == nil {
			lib = filepath.Join(dir, c)
			break
		}
	}
	if lib == "" {
		return nil, nil, fmt.Errorf("%s: rust rules need src/lib.rs or lib.rs", dir)
	}
	root := opts.SDKRoot
	if root == "" {
		root = findSDK(dir)
	}
	sdk := filepath.Join(root, "sdk", "rust", "src", "lib.rs")
	if _, err := os.Stat(sdk); root == "" || err != nil {
		return nil, nil, errors.New("cannot find sdk/rust/src/lib.rs: set VIGIL_SDK to the vigil repository root")
	}
	tmp, err := os.MkdirTemp("", "vigil-rust-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	rustc := rustcTool()
	common := []string{"--edition=2021", "--target=wasm32-unknown-unknown", "-C", "opt-level=3", "-C", "panic=abort"}
	rlib := filepath.Join(tmp, "libvigil.rlib")
	sdkCmd := exec.CommandContext(ctx, rustc, append(common, "--crate-type=rlib", "--crate-name=vigil", "-o", rlib, sdk)...)
	fmt.Fprintf(opts.Progress, "    $ %s\n", strings.Join(sdkCmd.Args, " "))
	sdkCmd.Stdout, sdkCmd.Stderr = opts.Progress, opts.Progress
	if err := sdkCmd.Run(); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("build the rust SDK: %w", err)
	}
	args := append(common, "--crate-type=cdylib", "--crate-name="+crateName(dir), "-C", "strip=symbols",
		"--extern", "vigil="+rlib, "-o", out, lib)
	cmd := exec.CommandContext(ctx, rustc, args...)
	cmd.Dir = dir
	return cmd, cleanup, nil
}

// rustcTool prefers $RUSTC, then Debian's /usr/bin/rustc (the rustup
// toolchain that may come first on PATH lacks the wasm32 target).
func rustcTool() string {
	if r := os.Getenv("RUSTC"); r != "" {
		return r
	}
	if _, err := os.Stat("/usr/lib/rustlib/wasm32-unknown-unknown"); err == nil {
		return "/usr/bin/rustc"
	}
	return "rustc"
}

// crateName turns a directory name into a valid crate name.
func crateName(dir string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, filepath.Base(dir))
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		name = "rule_" + name
	}
	return name
}

// ascCmd builds AssemblyScript with asc from the nearest node_modules
// (walking up from the source), else from the SDK's own install
// (sdk/assemblyscript/node_modules, made by `npm ci`). The incremental
// runtime collects the strings and verdicts a rule allocates per event (the
// stub runtime never frees); `--use abort=` drops the env.abort import, so an
// assertion traps instead (the ABI admits only vigil.log).
func ascCmd(ctx context.Context, dir, out string, opts Options) (*exec.Cmd, error) {
	entries := []string{"assembly/index.ts", "index.ts"}
	i := slices.IndexFunc(entries, func(e string) bool { _, err := os.Stat(filepath.Join(dir, e)); return err == nil })
	if i < 0 {
		return nil, fmt.Errorf("%s: AssemblyScript rules need assembly/index.ts or index.ts", dir)
	}
	asc := findAsc(dir, opts.SDKRoot)
	if asc == "" {
		return nil, errors.New("cannot find asc: run `npm ci` in your rule directory or in sdk/assemblyscript")
	}
	cmd := exec.CommandContext(ctx, asc, entries[i], "-o", out, "-O3", "--runtime", "incremental", "--use", "abort=")
	cmd.Dir = dir
	return cmd, nil
}

func findAsc(dir, root string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if p := filepath.Join(d, "node_modules", ".bin", "asc"); isFile(p) {
			return p
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	if root == "" {
		root = findSDK(dir)
	}
	if p := filepath.Join(root, "sdk", "assemblyscript", "node_modules", ".bin", "asc"); root != "" && isFile(p) {
		return p
	}
	return ""
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
