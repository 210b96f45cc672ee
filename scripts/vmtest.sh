#!/usr/bin/env bash
# Runs the BPF-LSM enforcement tests in a QEMU guest, because this host's
# kernel refuses LSM programs. Steps:
#   1. fetch Debian's newest linux-image-6.1.0-*-amd64 with apt-get download
#      and cache its vmlinuz under $CACHE/vmtest/ (once);
#   2. build a static test binary of guard/enforce (CGO_ENABLED=0 go test -c);
#   3. pack an initramfs (cpio newc) whose /init is that binary;
#   4. boot it under TCG with lsm=...,bpf and parse PASS/FAIL from the
#      serial console. The guest powers off when the tests finish.
# Exit status: 0 on PASS, 1 on FAIL or when no verdict was printed.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${CACHE:-/var/cache/vigil}
VMCACHE=$CACHE/vmtest
RUN=${VMTEST_RUN:-'^(TestLSM|TestLSMExecLock|TestRequireLSM)$'}
TIMEOUT=${VMTEST_TIMEOUT:-240}
# VMTEST_LSM overrides the guest's LSM list; without "bpf" the test must fail.
LSMS=${VMTEST_LSM:-lockdown,capability,landlock,yama,apparmor,bpf}
log() { printf '==> vmtest: %s\n' "$*" >&2; }

mkdir -p "$VMCACHE"
kernel=$(ls -1 "$VMCACHE"/vmlinuz-6.1.0-*-amd64 2>/dev/null | sort -V | tail -1 || true)
if [[ -z "$kernel" ]]; then
	pkg=$(apt-cache search '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null | awk '{print $1}' | sort -V | tail -1)
	if [[ -z "$pkg" ]]; then
		log "apt-get update (no linux-image-6.1.0 in the package lists)"
		apt-get update -qq
		pkg=$(apt-cache search '^linux-image-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' | sort -V | tail -1)
	fi
	[[ -n "$pkg" ]] || { log "no linux-image-6.1.0-*-amd64 package found"; exit 1; }
	log "fetching $pkg"
	dl=$(mktemp -d)
	trap 'rm -rf "$dl"' EXIT
	(cd "$dl" && apt-get download -q "$pkg" >/dev/null 2>&1)
	dpkg-deb --fsys-tarfile "$dl"/*.deb | tar -x -C "$dl" --wildcards './boot/vmlinuz-*'
	cp "$dl"/boot/vmlinuz-* "$VMCACHE"/
	kernel=$(ls -1 "$VMCACHE"/vmlinuz-6.1.0-*-amd64 | sort -V | tail -1)
fi
log "kernel $(basename "$kernel")"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "building static test binary"
CGO_ENABLED=0 go test -c -trimpath -o "$work/root/init" ./guard/enforce/
mkdir -p "$work/root"/{proc,sys,dev,tmp}
(cd "$work/root" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"
log "initramfs $(du -h "$work/initramfs.cpio" | cut -f1); booting under TCG (run=$RUN)"

console=$work/console.log
start=$(date +%s)
set +e
timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -m 1G -smp 1 -nographic -no-reboot \
	-kernel "$kernel" -initrd "$work/initramfs.cpio" \
	-append "console=ttyS0 lsm=$LSMS panic=-1 quiet loglevel=3 -- -test.v -test.count=1 -test.run=$RUN" \
	</dev/null >"$console" 2>&1
qrc=$?
set -e
grep -E '^(=== RUN|--- |\s+|VIGIL-VMTEST|PASS|FAIL|ok|panic)' "$console" | sed 's/\r$//' >&2 || true
log "guest finished in $(( $(date +%s) - start ))s (qemu exit $qrc)"
if grep -q 'VIGIL-VMTEST: PASS' "$console"; then
	log PASS
	exit 0
fi
log "FAIL; last console lines:"
tail -40 "$console" >&2
exit 1
