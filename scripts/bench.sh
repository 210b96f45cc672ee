#!/usr/bin/env bash
# Runs every benchmark and prints comparable ratios. See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)"
go test -run '^$' -bench . -benchtime 2s -count 3 ./guard/... ./webhook/... 2>&1 | grep -E '^(Benchmark|ok|FAIL)'
