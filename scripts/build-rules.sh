#!/usr/bin/env bash
# Builds every Wasm module from source into wasm-rules/build/ (called by
# `make rules`): the standard pack, the SDK examples, the conformance module
# in each SDK language, and the deliberately broken guests used by the host
# tests. Uses only Debian clang/lld, Go, wabt, Debian rustc with the wasm32
# std, and AssemblyScript installed by `npm ci` from
# sdk/assemblyscript/package-lock.json (scripts/deps.sh wasm). Without
# rustc's wasm32 target or npm, the Rust/AssemblyScript modules are skipped
# with a warning, except under CI=true where that is an error.
# Outputs are rebuilt only when a source is newer, so reruns are quick.
#
#   wasm-rules/build/standard.wasm           the guard loads this directory
#   wasm-rules/build/examples/*.wasm         SDK examples (and pss-go.wasm,
#                                            the Go build of the PSS pack)
#   wasm-rules/build/conformance/<lang>.wasm one per SDK language
#   wasm-rules/build/hostile/*.wasm          broken guests (tests only)
#   wasm-rules/build/admission/*.wasm        admission packs; the webhook
#                                            loads this directory
#   wasm-rules/build/admission-hostile/*.wasm broken admission guests (tests)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
OUT=wasm-rules/build
mkdir -p "$OUT/examples" "$OUT/conformance" "$OUT/hostile" "$OUT/admission"
# Test packages (guard/rules, webhook) run this script concurrently under
# `go test ./...`: one build at a time, so none reads a half-written module.
exec 9>"$OUT/.lock"
flock 9

VIGIL=$(mktemp -d)/vigil
trap 'rm -rf "$(dirname "$VIGIL")"' EXIT
echo "==> rules: building the vigil CLI"
"$GO" build -o "$VIGIL" ./cmd/vigil

# stale OUT SRC...: true when OUT is missing or older than any file under SRC
# (plus the SDKs and the builder, which every module depends on).
stale() {
	local out=$1
	shift
	[[ ! -f $out ]] && return 0
	[[ -n $(find "$@" sdk/c/vigil.h sdk/go sdk/rust/src sdk/assemblyscript/assembly guard/rules/rulebuild -newer "$out" -type f 2>/dev/null | head -1) ]]
}

build() { # build OUT SRC [flags]
	local out=$1 src=$2
	shift 2
	if stale "$out" "$src"; then
		"$VIGIL" rules build "$src" -o "$out" "$@"
	else
		echo "==> rules: $out is up to date"
	fi
}

build "$OUT/standard.wasm" wasm-rules/standard
build "$OUT/examples/c-example.wasm" sdk/c/example
build "$OUT/examples/go-example.wasm" sdk/go/example
build "$OUT/conformance/c.wasm" wasm-rules/conformance/c
build "$OUT/conformance/go.wasm" wasm-rules/conformance/go
# missing TOOL: a toolchain is absent; fatal in CI, a warning elsewhere.
missing() {
	if [[ ${CI:-} == true ]]; then
		echo "==> rules: $1 is required (CI=true); run scripts/deps.sh wasm" >&2
		exit 1
	fi
	echo "==> rules: WARNING: $1 not found, skipping its modules (scripts/deps.sh wasm)" >&2
}

# Rust: Debian's rustc (the rustup toolchain has no wasm32 target).
if [[ -d /usr/lib/rustlib/wasm32-unknown-unknown || -n ${RUSTC:-} ]]; then
	build "$OUT/examples/rust-example.wasm" sdk/rust/example
	build "$OUT/conformance/rust.wasm" wasm-rules/conformance/rust
else
	missing "rustc with the wasm32-unknown-unknown std (libstd-rust-dev-wasm32)"
fi

# AssemblyScript: asc pinned by the lockfile, installed with `npm ci` when
# node_modules is missing or older than the lockfile.
AS=sdk/assemblyscript
if command -v npm >/dev/null; then
	if [[ ! -x $AS/node_modules/.bin/asc || $AS/package-lock.json -nt $AS/node_modules/.package-lock.json ]]; then
		echo "==> rules: npm ci in $AS"
		(cd "$AS" && npm ci --no-audit --no-fund)
	fi
	build "$OUT/examples/assemblyscript-example.wasm" sdk/assemblyscript/example
	build "$OUT/conformance/assemblyscript.wasm" wasm-rules/conformance/assemblyscript
else
	missing "npm (for AssemblyScript)"
fi

for wat in wasm-rules/hostile/*.wat; do
	build "$OUT/hostile/$(basename "$wat" .wat).wasm" "$wat" --no-check
done
# The Pod Security Standards pack: the C port (wasm-rules/admission/pss) is
# what the webhook loads. The Go-SDK build of webhook/pss
# (wasm-rules/admission/pss-go) is kept as a cross-check and SDK example,
# outside admission/ so the webhook never loads both; it is rebuilt when
# webhook/pss or guard/event change.
build "$OUT/admission/pss.wasm" wasm-rules/admission/pss
if stale "$OUT/examples/pss-go.wasm" wasm-rules/admission/pss-go webhook/pss guard/event; then
	"$VIGIL" rules build wasm-rules/admission/pss-go -o "$OUT/examples/pss-go.wasm"
else
	echo "==> rules: $OUT/examples/pss-go.wasm is up to date"
fi
# Broken admission guests for the webhook's tests: never in admission/.
mkdir -p "$OUT/admission-hostile"
for wat in wasm-rules/admission/hostile/*.wat; do
	build "$OUT/admission-hostile/$(basename "$wat" .wat).wasm" "$wat" --no-check
done
echo "==> rules: done ($(find "$OUT" -name '*.wasm' | wc -l) modules)"
