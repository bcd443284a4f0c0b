#!/usr/bin/env bash
# Compares `buoycast parse BIG > /dev/null` with pandas `read_csv(sep=r'\s+')`
# on the same large synthetic stdmet file (target: buoycast >= 3x pandas).
#
# Usage: scripts/bench-parse-vs-pandas.sh [MEGABYTES]   (default 200)
#
# The file repeats the data rows of the real fixtures 41002.txt and 44013.txt
# under one header, like `cargo bench --bench parse`; it lives in a temp dir
# that is removed at the end. Needs a release build (built here) and python3
# with pandas (installed with pip when missing). Prints the best of 3 runs.
set -euo pipefail

cd "$(dirname "$0")/.."
MEGABYTES="${1:-200}"
FIXTURES="tests/fixtures/ndbc"
A="$FIXTURES/realtime2/41002.txt"
B="$FIXTURES/realtime2/44013.txt"

cargo build --release --bin buoycast >&2
python3 -c 'import pandas' 2>/dev/null || python3 -m pip install --quiet pandas >&2

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
BIG="$WORK/41002.txt"
{
  head -n 2 "$A"
  target=$((MEGABYTES * 1000000))
  size=0
  rows_a="$(tail -n +3 "$A")"
  rows_b="$(tail -n +3 "$B")"
  chunk=$(( ${#rows_a} + ${#rows_b} + 2 ))
  while [ "$size" -lt "$target" ]; do
    printf '%s\n%s\n' "$rows_a" "$rows_b"
    size=$((size + chunk))
  done
} > "$BIG"
BYTES="$(stat -c %s "$BIG")"
echo "synthetic file: $BYTES bytes" >&2

python3 - "$BIG" "$BYTES" <<'PY'
# Wall time is what users see; CPU time (user + sys) is also printed because
# it stays meaningful when other jobs share the machine.
import resource, subprocess, sys, time

path, size = sys.argv[1], int(sys.argv[2])

def cpu_seconds():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

def best_of_3(run):
    best_wall = best_cpu = float("inf")
    for _ in range(3):
        wall, cpu = time.perf_counter(), cpu_seconds()
        run()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, cpu_seconds() - cpu)
    return best_wall, best_cpu

def buoycast():
    with open("/dev/null", "wb") as null:
        subprocess.run(["target/release/buoycast", "parse", path], stdout=null, check=True)

import pandas as pd

def pandas():
    # The `#YY …` line is the header; the `#yr …` units line is skipped; MM is missing.
    frame = pd.read_csv(path, sep=r"\s+", skiprows=[1], na_values=["MM"])
    assert len(frame) > 0

ours = best_of_3(buoycast)
theirs = best_of_3(pandas)
mb = size / 1e6
for name, (wall, cpu) in [("buoycast parse > /dev/null", ours), (f"pandas {pd.__version__} read_csv(sep=r'\\s+')", theirs)]:
    print(f"{name:<40} {mb / wall:7.1f} MB/s wall ({wall:.2f} s), {mb / cpu:7.1f} MB/s CPU ({cpu:.2f} s)")
print(f"ratio: {theirs[0] / ours[0]:.1f}x wall, {theirs[1] / ours[1]:.1f}x CPU")
PY
