#!/bin/bash
# Repeated rounds of the metadata rows that decide the "≥ bindfs" targets, for medians instead
# of one run's figures (single runs swing by 30% on a small VM). Each round and configuration
# gets a fresh ext4 in RAM (/dev/shm), so the disk and earlier rounds' deletions play no part:
#   create N files; drop caches; stat each by its exact name; stat N missing names; drop caches;
#   unlink each (a LOOKUP and an UNLINK per file).
# Prints each round, then medians and the ratios to bindfs and to casefold off. Where the kernel
# has FUSE over io_uring, its switch is on for the run (put back after) and "dev" (casefold=all
# over /dev/fuse, uring=off) is measured too.
#
# Usage: bench/rounds.sh [--bin-dir DIR] [--rounds R] [--files N]   (root; DIR defaults to
# build-bench, built by bench/run.sh). docs/benchmarks.md ("Repeated rounds") holds a run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN_DIR=$HERE/../build-bench
ROUNDS=5
N=10000
while (($#)); do
  case $1 in
    --bin-dir) BIN_DIR=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --files) N=$2; shift ;;
    *) echo "usage: $0 [--bin-dir DIR] [--rounds R] [--files N]" >&2; exit 2 ;;
  esac
  shift
done
FOLDFS=$BIN_DIR/foldfs
FSBENCH=$BIN_DIR/bench/fsbench
[ -x "$FOLDFS" ] && [ -x "$FSBENCH" ] || { echo "rounds: no binaries in $BIN_DIR" >&2; exit 1; }
command -v bindfs >/dev/null || { echo "rounds: bindfs is not installed" >&2; exit 1; }

WORK=$(mktemp -d /tmp/foldfs-rounds.XXXXXX)
IMG=/dev/shm/foldfs-rounds.img
SWITCH=/sys/module/fuse/parameters/enable_uring
SWITCH_WAS=""
CONFIGS="all off bindfs"
if [ -w "$SWITCH" ]; then
  SWITCH_WAS=$(cat "$SWITCH")
  echo Y >"$SWITCH"
  CONFIGS="all off dev bindfs"
fi
cleanup() {
  [ -n "$SWITCH_WAS" ] && echo "$SWITCH_WAS" >"$SWITCH"
  umount "$WORK/m" 2>/dev/null || true
  umount "$WORK/b" 2>/dev/null || true
  rm -rf "$WORK" "$IMG"
}
trap cleanup EXIT
mkdir -p "$WORK/b" "$WORK/m"

rate() { "$FSBENCH" "$@" | awk '/^result/ {print $2}'; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

one_round() {  # config -> "create stat_cold missing_cold unlink_cold"
  truncate -s 1G "$IMG"
  mkfs.ext4 -q -F "$IMG"
  mount -o loop "$IMG" "$WORK/b"
  case $1 in
    all) "$FOLDFS" mount -o casefold=all "$WORK/b" "$WORK/m" ;;
    off) "$FOLDFS" mount "$WORK/b" "$WORK/m" ;;
    dev) "$FOLDFS" mount -o casefold=all,uring=off "$WORK/b" "$WORK/m" ;;
    bindfs) bindfs --no-allow-other --multithreaded "$WORK/b" "$WORK/m" ;;
  esac
  mkdir "$WORK/m/d"
  local c s m u
  c=$(rate create "$WORK/m/d" "$N")
  drop
  s=$(rate stat "$WORK/m/d" "$N" exact 0)
  m=$(rate stat "$WORK/m/d" "$N" missing 0)
  drop
  u=$(rate unlink "$WORK/m/d" "$N")
  umount "$WORK/m"
  # The daemon closes the backing tree a moment after the FUSE unmount returns.
  local i
  for i in $(seq 50); do umount "$WORK/b" 2>/dev/null && break; sleep 0.1; done
  mountpoint -q "$WORK/b" && umount "$WORK/b"
  rm -f "$IMG"
  echo "$c $s $m $u"
}

RESULTS=$WORK/results
for ((r = 1; r <= ROUNDS; r++)); do
  for c in $CONFIGS; do
    line="$c $(one_round "$c")"
    echo "round $r: $line"
    echo "$line" >>"$RESULTS"
  done
done
echo
awk '
  { for (i = 2; i <= 5; i++) v[$1, i, ++n[$1, i]] = $i }
  function median(c, i,   k, m, a, j, t) {
    m = n[c, i]
    for (k = 1; k <= m; k++) a[k] = v[c, i, k]
    for (k = 1; k <= m; k++) for (j = k + 1; j <= m; j++) if (a[j] < a[k]) { t = a[k]; a[k] = a[j]; a[j] = t }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  END {
    split("create (open O_CREAT + close)|stat, exact name, cold|stat, missing name, cold|unlink, cold", w, "|")
    dev = n["dev", 2] > 0
    print "| workload | foldfs all | foldfs off |" (dev ? " foldfs all, /dev/fuse |" : "") " bindfs | all ÷ bindfs | all ÷ off |" (dev ? " /dev/fuse ÷ bindfs |" : "")
    print "| --- | ---: | ---: |" (dev ? " ---: |" : "") " ---: | ---: | ---: |" (dev ? " ---: |" : "")
    for (i = 2; i <= 5; i++) {
      a = median("all", i); o = median("off", i); b = median("bindfs", i)
      printf "| %s | %.0f | %.0f |", w[i - 1], a, o
      if (dev) printf " %.0f |", median("dev", i)
      printf " %.0f | %.2f | %.2f |", b, a / b, a / o
      if (dev) printf " %.2f |", median("dev", i) / b
      printf "\n"
    }
  }' "$RESULTS"
