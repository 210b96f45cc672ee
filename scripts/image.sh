#!/usr/bin/env bash
# Builds Vigil's container image as an OCI image-layout tarball without a
# container engine (`make image`): a static vigil binary, the standard rule
# pack and the admission pack (from `make rules`), packed by cmd/vigil-image.
#
#   scripts/image.sh                  -> bin/vigil-image.tar, vigil.local/vigil:dev
#   IMAGE_OUT=x.tar IMAGE_REF=r:t scripts/image.sh
#
# Load it with `ctr -n k8s.io images import bin/vigil-image.tar` (containerd,
# what the kubelet uses) or `docker load -i bin/vigil-image.tar` (Docker 25+),
# then run the chart with image.repository/image.tag set to the reference.
# The e2e test (test/e2e TestInstall) runs this script and imports its output.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
OUT=${IMAGE_OUT:-bin/vigil-image.tar}
REF=${IMAGE_REF:-vigil.local/vigil:dev}
RULES=${IMAGE_RULES:-wasm-rules/build}

for f in "$RULES/standard.wasm" "$RULES/admission/pss.wasm"; do
	[[ -f $f ]] || { echo "image: $f missing: run make rules first" >&2; exit 1; }
done
mkdir -p "$(dirname "$OUT")"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
echo "==> image: building a static vigil" >&2
CGO_ENABLED=0 "$GO" build -trimpath -o "$bin/vigil" ./cmd/vigil
echo "==> image: packing $REF" >&2
"$GO" run ./cmd/vigil-image -o "$OUT" -ref "$REF" -binary "$bin/vigil" -rules "$RULES" -admission "$RULES/admission"
echo "$OUT"
