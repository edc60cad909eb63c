#!/bin/bash
# File data through foldfs with and without FUSE passthrough (issue 15), beside the native
# directory and bindfs in the same run: sequential write with fsync, sequential read cold and
# warm, 4 KiB random reads cold and warm, a shared mapping read cold; medians of ROUNDS, and the
# daemon's CPU time (user + system, from /proc/PID/stat) per GiB moved by the sequential rows.
#
#   bench/data.sh [--bin-dir DIR] [--rounds R] [--mib N] [--seconds S] [--image-dir DIR]
#
# --mib       size of the file (default 1024)
# --seconds   how long each random-read row runs (default 3)
# --image-dir where the ext4 image lives (default /dev/shm when it has room, else /tmp): in RAM,
#             "cold" reads come from the image through the block layer without the disk's noise
#             (one 1 GiB write on this VM's disk ranges over 850-2,550 MiB/s from run to run), and
#             the device is fast, which makes FUSE's share of each row larger, not smaller
# Columns: native (the backing directory itself), foldfs (casefold=all, defaults: passthrough
# where the kernel allows it), foldfs passthrough=off, bindfs --multithreaded. All four use
# directories of one ext4 image on a loop device (so that "cold" means read from the image, after
# drop_caches). Needs root, /dev/fuse, bindfs (scripts/setup.sh). Every mount is undone on exit.
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/app_common.sh"
REPO=$(dirname "$HERE")
BIN_DIR=$REPO/build
ROUNDS=3
MIB=1024
SECONDS_RAND=3
IMAGE_DIR=""
while (($#)); do
  case $1 in
    --bin-dir) BIN_DIR=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --mib) MIB=$2; shift ;;
    --seconds) SECONDS_RAND=$2; shift ;;
    --image-dir) IMAGE_DIR=$2; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "data.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
whole_numbers --rounds "$ROUNDS" --mib "$MIB"
[ "$(id -u)" = 0 ] || fail "needs root (loop device, FUSE mounts, drop_caches)"
command -v bindfs >/dev/null || fail "bindfs is missing (scripts/setup.sh)"
FOLDFS=$BIN_DIR/foldfs
FSBENCH=$BIN_DIR/bench/fsbench
[ -x "$FOLDFS" ] && [ -x "$FSBENCH" ] || fail "build first: scripts/build.sh"

WORK=$(mktemp -d /tmp/foldfs-data.XXXXXX)
IMAGE_MIB=$((MIB * 4 + 1024))
if [ -z "$IMAGE_DIR" ]; then
  IMAGE_DIR=/tmp
  room=$(df -m --output=avail /dev/shm 2>/dev/null | tail -1 || echo 0)
  if [ "${room:-0}" -gt $((IMAGE_MIB * 2)) ]; then IMAGE_DIR=/dev/shm; fi
fi
IMAGE=$(mktemp "$IMAGE_DIR/foldfs-data.XXXXXX.img")
LOOP=""
MOUNTS=()
cleanup() {
  local status=$? m
  trap - EXIT
  for m in "${MOUNTS[@]}"; do unmount_patiently "$m"; done
  unmount_patiently "$WORK/fs"  # the FUSE daemons may hold the image's files a moment longer
  if [ -n "$LOOP" ]; then losetup -d "$LOOP"; fi
  rm -rf "$WORK" "$IMAGE"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Written out, not sparse: a write into a hole of the image costs the host an allocation, and
# which column's file lands on blocks never written before would decide its write row.
dd if=/dev/zero of="$IMAGE" bs=16M count=$((IMAGE_MIB / 16)) status=none
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$IMAGE"  # no background init during the rows
LOOP=$(losetup -f --show --direct-io=on "$IMAGE" 2>/dev/null || losetup -f --show "$IMAGE")
mkdir -p "$WORK/fs"
mount "$LOOP" "$WORK/fs"
CONFIGS=(native foldfs nopt bindfs)
declare -A DIR PID
for c in "${CONFIGS[@]}"; do
  mkdir -p "$WORK/fs/$c" "$WORK/$c.m"
  case $c in
    native) DIR[$c]=$WORK/fs/$c; continue ;;
    foldfs) "$FOLDFS" mount -o casefold=all "$WORK/fs/$c" "$WORK/$c.m" ;;
    nopt) "$FOLDFS" mount -o casefold=all,passthrough=off "$WORK/fs/$c" "$WORK/$c.m" ;;
    bindfs) bindfs --no-allow-other --multithreaded "$WORK/fs/$c" "$WORK/$c.m" ;;
  esac
  MOUNTS+=("$WORK/$c.m")
  DIR[$c]=$WORK/$c.m
  PID[$c]=$(pgrep -n -f "$WORK/$c.m\$")
done
IN_USE=$("$FOLDFS" stats "$WORK/foldfs.m" | awk '$1 == "passthrough" {print $2}')

cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# Before a write: nothing left to write back or free from the previous column (its file was just
# removed), so each column's write starts from the same disk state.
settle() { cold; sleep 1; }
bench() { "$FSBENCH" "$@" | awk '{print $NF}'; }  # fsbench prints "result VALUE"
ticks() { [ -n "${PID[$1]:-}" ] && awk '{print $14 + $15}' "/proc/${PID[$1]}/stat" || echo 0; }
RES=$WORK/results
ROWS=(seqwrite seqread_cold seqread_warm randread_cold randread_warm mmapread_cold)
for r in $(seq "$ROUNDS"); do
  # Each round starts with the next column: on this disk a write's speed depends on what the
  # previous column left to write back and free, so no column always follows the same one.
  for k in "${!CONFIGS[@]}"; do
    c=${CONFIGS[$(((k + r) % ${#CONFIGS[@]}))]}
    f=${DIR[$c]}/Big.dat
    t0=$(ticks "$c")
    settle
    echo -e "$c\tseqwrite\t$(bench seqwrite "$f" "$MIB")\t$r" >>"$RES"
    cold
    echo -e "$c\tseqread_cold\t$(bench seqread "$f")\t$r" >>"$RES"
    echo -e "$c\tseqread_warm\t$(bench seqread "$f")\t$r" >>"$RES"
    t1=$(ticks "$c")
    echo -e "$c\tcpu_ms_per_gib\t$(calc "($t1 - $t0) * 1000 / $(getconf CLK_TCK) / ($MIB * 3 / 1024)")\t$r" >>"$RES"
    cold
    echo -e "$c\trandread_cold\t$(bench randread "$f" "$SECONDS_RAND")\t$r" >>"$RES"
    echo -e "$c\trandread_warm\t$(bench randread "$f" "$SECONDS_RAND")\t$r" >>"$RES"
    cold
    echo -e "$c\tmmapread_cold\t$(bench mmapread "$f")\t$r" >>"$RES"
    rm -f "$f"
  done
  say "round $r done"
done

echo "foldfs $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $(uname -r), $(nproc) CPUs;" \
  "passthrough in use on the foldfs column: $([ "$IN_USE" = 1 ] && echo yes || echo no);" \
  "FUSE transport $(fuse_transport); a $MIB MiB file on ext4 (loop device over $IMAGE_DIR); medians of $ROUNDS."
echo
echo "| row | native | foldfs | foldfs passthrough=off | bindfs | foldfs/native | off/native | bindfs/native |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
value() { awk -F'\t' -v c="$1" -v r="$2" '$1 == c && $2 == r {print $3}' "$RES" | median; }
# A column's ratio to native: the median over rounds of the round's own ratio. The disk's speed
# drifts between rounds by up to 3x; within a round both columns meet about the same.
ratio() {
  awk -F'\t' -v c="$1" -v r="$2" '$2 == r && $1 == c {x[$4] = $3} $2 == r && $1 == "native" {n[$4] = $3}
    END {for (k in x) if (k in n && n[k] > 0) print x[k] / n[k]}' "$RES" | median
}
for row in "${ROWS[@]}"; do
  n=$(value native "$row"); f=$(value foldfs "$row"); o=$(value nopt "$row"); b=$(value bindfs "$row")
  printf '| %s | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |\n' "$row" "$n" "$f" "$o" "$b" \
    "$(ratio foldfs "$row")" "$(ratio nopt "$row")" "$(ratio bindfs "$row")"
done
printf '| daemon CPU ms per GiB (sequential rows) | | %.0f | %.0f | %.0f | | | |\n' \
  "$(value foldfs cpu_ms_per_gib)" "$(value nopt cpu_ms_per_gib)" "$(value bindfs cpu_ms_per_gib)"
echo
echo "(MiB/s for seq and mmap rows, IOPS for random reads; cold: after drop_caches; the ratios are"
echo " the median of each round's ratio to native in that round, not a ratio of the medians)"
