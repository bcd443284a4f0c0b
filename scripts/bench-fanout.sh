#!/usr/bin/env bash
# Runs the gateway fan-out benchmark (benches/fanout.rs): a throw-away
# redis-server and the release `buoycast serve` as separate processes, N SSE
# clients at once, M events through the Redis bus; one table row per run and
# a median row per client count.
#
# Usage: scripts/bench-fanout.sh [--clients 1000,5000,10000] [--events 50]
#                                [--interval-ms 100] [--runs 3] [--sources 8]
# (the same knobs as BUOYCAST_BENCH_* variables; see docs/BENCHMARKS.md).
#
# Raises the open-files limit to the hard limit first (every client and every
# server connection is a file descriptor), and prints the load average the
# run starts under: other work on the machine skews every figure.
set -euo pipefail

cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "open files: $(ulimit -n); load: $(cut -d' ' -f1-3 /proc/loadavg); cores: $(nproc)" >&2
exec cargo bench --bench fanout -- "$@"
