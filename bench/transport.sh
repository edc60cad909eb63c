#!/bin/bash
# The FUSE transport's share of a round trip: Wine's probe (open, FS_IOC_GETFLAGS, close: one
# round trip) and Wine's miss in a 1,000-entry directory (a LOOKUP of a new name + the probe),
# foldfs casefold=all over /dev/fuse (uring=off) and over io_uring (uring=on), in three
# placements of the calling program:
#   idle     nothing else runs, the scheduler places the caller (the usual case)
#   busy     another program keeps one CPU busy (a game beside Wine's lookups)
#   pinned   the caller pinned to CPU 0 (what the ring's per-CPU queues are made for)
# and, over /dev/fuse, the daemon and the caller pinned to one CPU and to two (the cost of a
# cross-CPU wake-up). Each measurement on a fresh ext4 in RAM; medians of ROUNDS.
#
# Usage: bench/transport.sh [--bin-dir DIR] [--rounds R]   (root; a kernel with FUSE over
# io_uring, whose switch it turns on for the run and puts back). docs/benchmarks.md
# ("Transport") holds a run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN_DIR=$HERE/../build-bench
ROUNDS=3
while (($#)); do
  case $1 in
    --bin-dir) BIN_DIR=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    *) echo "usage: $0 [--bin-dir DIR] [--rounds R]" >&2; exit 2 ;;
  esac
  shift
done
FOLDFS=$BIN_DIR/foldfs
FSBENCH=$BIN_DIR/bench/fsbench
[ -x "$FOLDFS" ] && [ -x "$FSBENCH" ] || { echo "transport: no binaries in $BIN_DIR" >&2; exit 1; }
SWITCH=/sys/module/fuse/parameters/enable_uring
[ -w "$SWITCH" ] || { echo "transport: this kernel has no FUSE over io_uring" >&2; exit 1; }

WORK=$(mktemp -d /tmp/foldfs-transport.XXXXXX)
IMG=/dev/shm/foldfs-transport.img
SWITCH_WAS=$(cat "$SWITCH")
HOG=""
cleanup() {
  [ -n "$HOG" ] && kill "$HOG" 2>/dev/null
  umount "$WORK/m" 2>/dev/null || true
  umount "$WORK/b" 2>/dev/null || true
  rm -rf "$WORK" "$IMG"
  echo "$SWITCH_WAS" >"$SWITCH"
}
trap cleanup EXIT
echo Y >"$SWITCH"
mkdir -p "$WORK/b" "$WORK/m"

rate() { "$@" 2>/dev/null | awk '/^result/ {print $2}'; }
# The daemon closes the backing tree a moment after the FUSE unmount returns.
umount_backing() {
  local i
  for i in $(seq 50); do umount "$1" 2>/dev/null && return 0; sleep 0.1; done
  umount "$1"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# one OPTS DAEMON_CPUS CALLER_CPUS -> "probe miss" (ops/s)
one() {
  local opts=$1 dcpus=$2 ccpus=$3 p w
  truncate -s 256M "$IMG"
  mkfs.ext4 -q -F "$IMG"
  mount -o loop "$IMG" "$WORK/b"
  taskset -c "$dcpus" "$FOLDFS" mount -o "casefold=all,$opts" "$WORK/b" "$WORK/m"
  mkdir "$WORK/m/p"
  "$FSBENCH" create "$WORK/m/p" 1000 >/dev/null
  p=$(rate taskset -c "$ccpus" "$FSBENCH" probe "$WORK/m/p" 20000)
  w=$(rate taskset -c "$ccpus" "$FSBENCH" wine-lookup "$WORK/m/p" 5000 missing 3)
  umount "$WORK/m"
  umount_backing "$WORK/b"
  rm -f "$IMG"
  echo "$p $w"
}

ALL=$(cat /sys/devices/system/cpu/online)
# case LABEL OPTS DAEMON_CPUS CALLER_CPUS [busy]
run_case() {
  local label=$1 opts=$2 dcpus=$3 ccpus=$4 busy=${5:-} r out=()
  if [ -n "$busy" ]; then
    sh -c 'while :; do :; done' &
    HOG=$!
  fi
  for ((r = 1; r <= ROUNDS; r++)); do out+=("$(one "$opts" "$dcpus" "$ccpus")"); done
  if [ -n "$HOG" ]; then kill "$HOG"; wait "$HOG" 2>/dev/null || true; HOG=""; fi
  printf '| %s | %.0f | %.0f |\n' "$label" \
    "$(printf '%s\n' "${out[@]}" | cut -d' ' -f1 | median)" \
    "$(printf '%s\n' "${out[@]}" | cut -d' ' -f2 | median)"
}

echo "Run of $(date -u +'%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); medians of $ROUNDS."
echo
echo "| transport, placement | Wine probe /s | Wine miss, 1,000-entry dir /s |"
echo "| --- | ---: | ---: |"
run_case "/dev/fuse, idle" uring=off "$ALL" "$ALL"
run_case "io_uring, idle" uring=on "$ALL" "$ALL"
run_case "/dev/fuse, one CPU busy" uring=off "$ALL" "$ALL" busy
run_case "io_uring, one CPU busy" uring=on "$ALL" "$ALL" busy
run_case "/dev/fuse, caller pinned to CPU 0" uring=off "$ALL" 0
run_case "io_uring, caller pinned to CPU 0" uring=on "$ALL" 0
run_case "/dev/fuse, daemon and caller on CPU 0" uring=off 0 0
run_case "/dev/fuse, daemon on CPU 0, caller on CPU 1" uring=off 0 1
