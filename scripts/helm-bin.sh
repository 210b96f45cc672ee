#!/usr/bin/env bash
# Builds the helm CLI from the Go module proxy once and caches it outside the
# repo (no prebuilt downloads are reachable here). Prints the binary's path.
set -euo pipefail
VERSION=${HELM_VERSION:-v4.3.2}
CACHE=${CACHE:-/var/cache/vigil}
out="$CACHE/helm/$VERSION/helm"
if [[ -x "$out" ]]; then echo "$out"; exit 0; fi
echo "==> building helm $VERSION (once; cached at $out)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init vigil-helm-build >/dev/null 2>&1
GOFLAGS=-mod=mod go get "helm.sh/helm/v4/cmd/helm@$VERSION" >&2
mkdir -p "$(dirname "$out")"
CGO_ENABLED=0 nice -n 10 go build -trimpath -o "$out.tmp" helm.sh/helm/v4/cmd/helm >&2
mv "$out.tmp" "$out"
echo "$out"
