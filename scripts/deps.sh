#!/usr/bin/env bash
# Installs what Vigil's build and tests need, idempotently. Each group is
# checked before anything is fetched, so a warm machine returns in a second.
#
#   scripts/deps.sh base      clang/llvm/bpftool for `make generate`, runc + busybox for container tests
#   scripts/deps.sh wasm      Rust (Debian rustc + wasm32 std), wabt, AssemblyScript (npm)
#   scripts/deps.sh vm        qemu-system-x86 and cpio for the BPF-LSM guest tests
#   scripts/deps.sh k8s       etcd, containerd, CNI plugins for the Kubernetes e2e
#   scripts/deps.sh servers   nginx, redis, postgres (+ redis-benchmark, pgbench) for the behavior soak
#   scripts/deps.sh all       everything
set -euo pipefail

log() { printf '==> deps: %s\n' "$*" >&2; }

need_pkgs() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		log "installing Debian packages: ${missing[*]}"
		if [[ ! -f /var/lib/apt/periodic/vigil-updated ]] || ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/vigil-apt.log 2>&1; then
			apt-get update -qq >/tmp/vigil-apt.log 2>&1
			mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/vigil-updated
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/vigil-apt.log 2>&1 ||
				{ tail -30 /tmp/vigil-apt.log >&2; exit 1; }
		fi
	fi
}

group_base() { need_pkgs clang-14 llvm-14 libbpf-dev bpftool runc busybox-static iproute2 ca-certificates; }
group_wasm() {
	need_pkgs clang-14 lld-14 wabt rustc libstd-rust-dev-wasm32 nodejs
	# NodeSource's nodejs ships npm itself and conflicts with Debian's npm.
	command -v npm >/dev/null || need_pkgs npm
}
group_vm() { need_pkgs qemu-system-x86 cpio; }
# The soak test runs these servers inside runc containers from the host's
# package files; their postinst scripts would otherwise start (and enable)
# system services on the host. A policy-rc.d returning 101 ("action
# forbidden") stops invoke-rc.d from starting them, only for this install;
# any unit left enabled or running anyway is disabled and stopped, and
# postgresql-common is told not to create its default cluster.
group_servers() {
	local pkgs=(nginx-light redis-server redis-tools postgresql)
	local missing=0 p
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing=1
	done
	((missing)) || return 0
	local own_policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
		own_policy=1
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT # also when an install fails
	fi
	# postgresql-common first: its createcluster.conf is what the server
	# package's postinst reads (a file written before it was installed would
	# be a conffile conflict for dpkg).
	need_pkgs postgresql-common
	sed -i -E 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
	need_pkgs "${pkgs[@]}"
	if ((own_policy)); then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
	if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
		systemctl disable --now nginx redis-server postgresql >/dev/null 2>&1 || true
	fi
}
group_k8s() { need_pkgs etcd-server containerd containernetworking-plugins iptables conntrack runc busybox-static util-linux; }

export DEBIAN_FRONTEND=noninteractive
[[ $# -eq 0 ]] && set -- all
for g in "$@"; do
	case "$g" in
	all) group_base; group_wasm; group_vm; group_k8s; group_servers ;;
	base | wasm | vm | k8s | servers) "group_$g" ;;
	*) echo "unknown group $g" >&2; exit 2 ;;
	esac
done
