#!/usr/bin/env bash
# Runs every benchmark behind BENCHMARKS.md and prints one table of medians
# and ratios (guard on ÷ off, Wasm ÷ native Go, fasthttp vs net/http). Set
# COUNT (default 5) for more runs; ONLY=regexp runs only the matching
# groups (e.g. ONLY='sensor|enforce'). Raw `go test` output is kept in
# bin/bench-raw.txt. Needs root for the kernel benchmarks.
set -euo pipefail

main() {
cd "$(dirname "$0")/.."
COUNT=${COUNT:-5}
out=bin/bench-raw.txt
mkdir -p bin
: >"$out"
echo "==> machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "==> $(go version)"
run() { # package, -bench regexp, benchtime
	[[ -z ${ONLY:-} || "$1 $2" =~ $ONLY ]] || return 0
	echo "==> $1 $2" >&2
	go test -run '^$' -bench "$2" -benchtime "$3" -count "$COUNT" "$1" 2>&1 | tee -a "$out" | grep -E '^(FAIL|panic)' || true
}
run ./guard/sensor/   'ExecStorm|OpenClose|TCPConnect' 200x
run ./guard/sensor/   'Pipeline' 1x
run ./guard/enforce/  'KillLatency|Overhead|ConnectInterleaved' 200x
run ./guard/enforce/  'ExecLock' 3000x
run ./guard/rules/    'StandardPack|SameRule' 20000x
run ./guard/rules/    'Load' 3x
run ./guard/process/  'Enrich$|Memory100K' 3x
run ./guard/baseline/ 'Observe' 20000x
run ./guard/baseline/ 'ProfileMemory' 3x  # each op builds and GCs 200 profiles
run ./guard/event/    'AppendEvent' 200000x
run ./webhook/        'ServeTLS|ReviewInProcess' 2000x
run ./webhook/        'Latency' 1x
echo
go run ./scripts/benchtable < "$out"

[[ -z ${ONLY:-} || startup =~ $ONLY ]] || exit 0

# Guard start-up (process start to "guard running": BPF load, /proc
# bootstrap, enforcement probe, rule compile from cache) and steady RSS.
echo
echo "==> guard start-up and RSS (audit mode, standard pack; 3 runs)"
go build -o bin/vigil ./cmd/vigil
state=$(mktemp -d)
for i in 1 2 3; do
	log=$(mktemp)
	start=$(date +%s%N)
	bin/vigil guard --mode audit --rules wasm-rules/build --state-dir "$state" --metrics off >/dev/null 2>"$log" &
	pid=$!
	until grep -q "guard running" "$log"; do
		kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
		sleep 0.02
	done
	ready=$(date +%s%N)
	sleep 8
	rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
	kill "$pid"; wait "$pid" 2>/dev/null || true
	echo "startup $(( (ready - start) / 1000000 )) ms, RSS $(( rss / 1024 )) MiB"
	rm -f "$log"
done
rm -rf "$state"
}
main "$@"
