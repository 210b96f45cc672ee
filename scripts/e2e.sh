#!/usr/bin/env bash
# Runs Vigil's Kubernetes end-to-end tests (`make e2e`): installs the system
# packages, builds or reuses the cached Kubernetes binaries, then runs the
# `e2e`-tagged tests under test/e2e against real clusters started by
# internal/cluster. Idempotent: each test's cluster removes its processes,
# mounts, cgroups and pod network in Stop, and a final sweep here catches
# anything a crashed test binary left.
#
# Environment:
#   E2E_TIMEOUT   go test -timeout (default 30m)
#   E2E_RUN       go test -run filter (default: all)
#   E2E_PKGS      packages (default ./test/e2e/...)
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
log() { printf '==> e2e: %s (+%ss)\n' "$*" "$(($(date +%s) - start))" >&2; }

if [[ $(id -u) -ne 0 ]]; then
	echo "e2e: needs root (containerd, kubelet, mounts); run: sudo make e2e" >&2
	exit 1
fi

log "installing system packages (scripts/deps.sh k8s base)"
scripts/deps.sh k8s base

log "Kubernetes binaries (scripts/k8s-bins.sh)"
bindir=$(scripts/k8s-bins.sh)
export VIGIL_K8S_BIN=$bindir
log "binaries ready in $bindir"

# Leftovers of a killed earlier run: processes and mounts under harness
# dirs whose owning test binary (owner.pid, written by Start) is dead.
# Clusters of a concurrent, live run are left alone.
sweep() {
	local d owner p m
	for d in /tmp/vigil-e2e-*; do
		[[ -d $d ]] || continue
		owner=$(cat "$d/owner.pid" 2>/dev/null || echo 0)
		if [[ $owner != 0 ]] && kill -0 "$owner" 2>/dev/null; then
			continue
		fi
		log "removing leftover cluster dir $d"
		for p in /proc/[0-9]*; do
			if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$d/"; then
				kill -9 "${p#/proc/}" 2>/dev/null || true
			fi
		done
		sleep 0.5
		awk -v d="$d/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
			umount -l "$m" 2>/dev/null || true
		done
		rm -rf "$d"
	done
	return 0
}
sweep

log "go test -tags e2e ${E2E_PKGS:-./test/e2e/...}"
# -p 1: node clusters serialize on a host-wide lock anyway, and the
# machine's two cores are better spent on one cluster at a time.
set +e
go test -tags e2e -p 1 -count=1 -v -timeout "${E2E_TIMEOUT:-30m}" ${E2E_RUN:+-run "$E2E_RUN"} ${E2E_PKGS:-./test/e2e/...}
rc=$?
set -e
sweep
if ((rc == 0)); then
	log "PASS in $(($(date +%s) - start))s"
else
	log "FAIL (exit $rc) after $(($(date +%s) - start))s"
fi
exit $rc
