#!/usr/bin/env bash
# Builds the Kubernetes binaries the e2e tier runs (kube-apiserver, kubelet,
# kubectl, and the kube-scheduler + kube-controller-manager that DaemonSets
# need) from k8s.io/kubernetes through the Go module proxy, and caches them
# outside the repo keyed by version. A warm cache returns in well under a
# second; a cold build takes tens of minutes, so it is never repeated.
#
#   scripts/k8s-bins.sh            build whatever is missing, print the bin dir
#   scripts/k8s-bins.sh --check    exit 1 if any binary is missing (no build)
#
# Environment:
#   K8S_VERSION    Kubernetes release (default v1.37.2)
#   CACHE          cache root (default /var/cache/vigil)
#   K8S_BINS       space-separated subset to build (default: all five)
#
# Why a wrapper module: k8s.io/kubernetes requires its staging modules
# (k8s.io/api, k8s.io/client-go, ...) at v0.0.0 and replaces them with
# ./staging paths, and replace directives of a dependency are ignored. The
# wrapper re-points every staging module at its published v0.X.Y tag.
#
# Why the ldflags: without a gitVersion the binaries report v0.0.0 and
# kubectl refuses to talk to such a server.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
CACHE=${CACHE:-/var/cache/vigil}
OUT="$CACHE/k8s/$K8S_VERSION"
ALL_BINS="kube-apiserver kubelet kubectl kube-scheduler kube-controller-manager"
BINS=${K8S_BINS:-$ALL_BINS}
GO=${GO:-go}

log() { printf '==> k8s-bins: %s\n' "$*" >&2; }

missing=()
for b in $BINS; do
	[[ -x "$OUT/$b" ]] || missing+=("$b")
done
if [[ ${1:-} == --check ]]; then
	((${#missing[@]} == 0)) || { log "missing in $OUT: ${missing[*]}"; exit 1; }
	echo "$OUT"
	exit 0
fi
if ((${#missing[@]} == 0)); then
	log "cached in $OUT ($BINS)"
	echo "$OUT"
	exit 0
fi

# One builder at a time: a second `make e2e` waits instead of compiling twice.
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9
still=()
for b in "${missing[@]}"; do [[ -x "$OUT/$b" ]] || still+=("$b"); done
missing=("${still[@]}")
if ((${#missing[@]} == 0)); then
	log "built by a concurrent run: $OUT"
	echo "$OUT"
	exit 0
fi

ver=${K8S_VERSION#v}
major=${ver%%.*}
rest=${ver#*.}
minor=${rest%%.*}
staging_ver="v0.${rest}" # v1.37.2 -> v0.37.2

work=$(mktemp -d /tmp/vigil-k8s-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

log "resolving k8s.io/kubernetes@$K8S_VERSION (staging modules at $staging_ver)"
kmod=$(GOFLAGS=-mod=mod "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
[[ -f $kmod ]] || { log "could not download k8s.io/kubernetes@$K8S_VERSION go.mod"; exit 1; }
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$kmod")
((${#staging[@]} > 10)) || { log "found only ${#staging[@]} staging modules in $kmod"; exit 1; }
goline=$(sed -n 's/^go \(.*\)$/\1/p' "$kmod")

{
	echo "module vigil.local/k8sbuild"
	echo
	echo "go $goline"
	echo
	echo "require k8s.io/kubernetes $K8S_VERSION"
	echo
	echo "replace ("
	for m in "${staging[@]}"; do echo "	$m => $m $staging_ver"; done
	echo ")"
} >go.mod
log "wrapper module replaces ${#staging[@]} staging modules"

pkgs=()
for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
# Pull every package the builds import into go.sum (downloads only).
GOFLAGS=-mod=mod "$GO" get "k8s.io/kubernetes@$K8S_VERSION" >>"$work/get.log" 2>&1 ||
	{ tail -20 "$work/get.log" >&2; exit 1; }
printf 'package tools\n\nimport (\n' >tools.go
for p in "${pkgs[@]}"; do printf '\t_ "%s"\n' "$p" >>tools.go; done
printf ')\n' >>tools.go
sed -i '1i //go:build tools\n' tools.go
GOFLAGS=-mod=mod "$GO" mod tidy -e >>"$work/get.log" 2>&1 || { tail -20 "$work/get.log" >&2; exit 1; }

vpkgs="k8s.io/component-base/version k8s.io/client-go/pkg/version"
ldflags="-s -w"
for vp in $vpkgs; do
	ldflags+=" -X $vp.gitVersion=$K8S_VERSION -X $vp.gitMajor=$major -X $vp.gitMinor=$minor"
	ldflags+=" -X $vp.gitTreeState=clean -X $vp.gitCommit=0000000000000000000000000000000000000000"
	ldflags+=" -X $vp.buildDate=1970-01-01T00:00:00Z"
done

# Build into a staging dir and move into place only on success, so a killed
# build never leaves a truncated binary that the cache check would accept.
mkdir -p "$work/out"
start=$(date +%s)
log "building ${missing[*]} (one go build; nice 10; this takes 10-30 min cold)"
(
	while sleep 60; do log "still building ($(($(date +%s) - start))s)"; done
) &
ticker=$!
set +e
CGO_ENABLED=0 nice -n 10 "$GO" build -mod=mod -trimpath -ldflags "$ldflags" -o "$work/out/" "${pkgs[@]}" 2>"$work/build.log"
rc=$?
set -e
kill "$ticker" 2>/dev/null || true
wait "$ticker" 2>/dev/null || true
if ((rc != 0)); then
	tail -40 "$work/build.log" >&2
	log "build failed after $(($(date +%s) - start))s"
	exit 1
fi
for b in "${missing[@]}"; do
	install -m 0755 "$work/out/$b" "$OUT/$b.tmp"
	mv -f "$OUT/$b.tmp" "$OUT/$b"
done
log "built ${missing[*]} in $(($(date +%s) - start))s -> $OUT"
"$OUT/kubectl" version --client 2>/dev/null | sed 's/^/==> k8s-bins: /' >&2 || true
echo "$OUT"
