#!/bin/bash
# The foldfs benchmark (issue 5): one run, side by side,
#   native   the backing filesystem itself
#   off      foldfs, default casefold=flag, no +F anywhere (the cost of the passthrough)
#   all      foldfs -o casefold=all (every directory casefolded)
#   dev      foldfs -o casefold=all,uring=off: "all" over /dev/fuse, when "all" uses io_uring
#   bindfs   bindfs --multithreaded (a plain FUSE passthrough, for comparison)
#   scan     what Wine does without help: readdir + case-insensitive compare (the driver,
#            run against the native directory)
# over metadata, tarball, Wine-probe, data and directory-size workloads (bench/workloads/
# fsbench.cc), plus the name-index micro-benchmark (bench/index_bench.cc).
# Every configuration gets its own freshly made ext4 (journaled, on a loop device with direct
# I/O, so the page cache holds each block once): one configuration's deletions never slow down
# another's creations, and every run starts from the same state.
#
#   bench/run.sh            full run (~10 min): writes docs/benchmarks.md (between the result
#                           markers) and docs/benchmarks.png. Run it on a quiet machine.
#   bench/run.sh --quick    tiny sizes, same code paths, a few seconds; writes to a temp dir
#                           (what `ctest -L bench` runs).
# Where the kernel has FUSE over io_uring, the run switches it on (and back as it was after), so
# that off and all use it as they would on such a machine; --no-uring leaves it off (no dev).
# Options: --bin-dir DIR (use DIR/foldfs and DIR/bench/{fsbench,index_bench} as they are;
# default: configure and build a Release tree in build-bench), --out DIR (where the report
# goes), --apps / --no-apps (Wine and Samba through bench/wine.sh and bench/samba.sh: on in
# full runs, off in quick ones). Needs root (drop_caches, loop devices, FUSE mounts), /dev/fuse,
# bindfs, gnuplot and mkfs.ext4; about 10 GiB free under /tmp for the sparse images (full
# mode); Wine, mingw-w64, samba and smbclient for the Wine and Samba rows (scripts/setup.sh).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_TAG=bench
. "$HERE/app_common.sh"
REPO=$(dirname "$HERE")
QUICK=0
NO_URING=0
APPS=""  # Wine and Samba (bench/wine.sh, bench/samba.sh): full runs only, unless --apps
URING_SWITCH=/sys/module/fuse/parameters/enable_uring
URING_WAS=""  # the switch as it was, when the run changed it
BIN_DIR=""
OUT=""
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --bin-dir) BIN_DIR=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-uring) NO_URING=1 ;;
    --apps) APPS=1 ;;
    --no-apps) APPS=0 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done


[ "$(id -u)" = 0 ] || fail "needs root (drop_caches, FUSE mounts)"
[ -c /dev/fuse ] || fail "no /dev/fuse"
if ! command -v bindfs >/dev/null || ! command -v gnuplot >/dev/null; then
  "$REPO/scripts/setup.sh"
fi

# --- sizes -------------------------------------------------------------------------------------
if ((QUICK)); then
  N_META=300 READDIR_PASSES=3 WINE_MAX_S=0.05 PROBES=500 WINE1K_ITERS=200 WINE1K_MAX_S=0.2
  SEQ_MIB=16 RAND_S=0.2 RAND_SAME_S=0.2 SCALE_SIZES="100 1000 10000" SCALE_LOOKUPS=50
  TAR_SRC=/usr/include/linux IMG_SIZE=256M SCALE_IMG_SIZE=128M STAT_BLOCK=100
else
  N_META=20000 READDIR_PASSES=20 WINE_MAX_S=2 PROBES=100000 WINE1K_ITERS=5000 WINE1K_MAX_S=3
  SEQ_MIB=1024 RAND_S=20 RAND_SAME_S=10 SCALE_SIZES="1000 100000 1000000" SCALE_LOOKUPS=1000
  TAR_SRC=/usr/include IMG_SIZE=3G SCALE_IMG_SIZE=2G STAT_BLOCK=1000
fi

# Two full runs at once would spoil each other's figures: a full run waits for any other one.
if ((!QUICK)); then
  exec 9>/tmp/foldfs-bench.lock
  if ! flock -n 9; then
    say "another full benchmark run is going on: waiting for it"
    flock 9
  fi
fi

# --- binaries ----------------------------------------------------------------------------------
if [ -z "$BIN_DIR" ]; then
  BIN_DIR=$REPO/build-bench
  say "building Release in $BIN_DIR"
  cmake -S "$REPO" -B "$BIN_DIR" -DCMAKE_BUILD_TYPE=Release -DFOLDFS_BENCH=ON >/dev/null
  cmake --build "$BIN_DIR" -j2 --target foldfs fsbench index_bench >/dev/null
  if cmake --build "$BIN_DIR" --target help | grep -qw winbench; then
    cmake --build "$BIN_DIR" --target winbench >/dev/null
  fi
fi
FOLDFS=$BIN_DIR/foldfs
FSBENCH=$BIN_DIR/bench/fsbench
INDEX_BENCH=$BIN_DIR/bench/index_bench
for b in "$FOLDFS" "$FSBENCH" "$INDEX_BENCH"; do [ -x "$b" ] || fail "missing $b (build it)"; done

# --- work area, mounts, cleanup ----------------------------------------------------------------
ROOT=$(mktemp -d /tmp/foldfs-bench.XXXXXX)
if [ -z "$OUT" ]; then
  if ((QUICK)); then OUT=$(mktemp -d /tmp/foldfs-bench-report.XXXXXX); else OUT=$REPO/docs; fi
fi
mkdir -p "$OUT"
RESULTS=$ROOT/results.tsv
LOG=$ROOT/daemon-stats.log
: >"$RESULTS"
FUSE_MOUNTS=()  # mounted FUSE mountpoints (unmounted first)
FS_MOUNTS=()    # mounted ext4 images
LOOPS=()        # loop devices

unmount() {  # mountpoint
  local m=$1 i
  for i in $(seq 50); do
    umount "$m" 2>/dev/null && return 0
    mountpoint -q "$m" || return 0
    sleep 0.1
  done
  umount -l "$m" 2>/dev/null || true
}
cleanup() {
  local status=$? m
  trap - EXIT
  for m in "${FUSE_MOUNTS[@]}" "${FS_MOUNTS[@]}"; do [ -n "$m" ] && unmount "$m"; done
  for m in "${LOOPS[@]}"; do [ -n "$m" ] && losetup -d "$m" 2>/dev/null; done
  [ -n "$URING_WAS" ] && echo "$URING_WAS" >"$URING_SWITCH"
  if ((status != 0)); then say "FAILED (exit $status); results so far: $(wc -l <"$RESULTS") lines"; fi
  rm -rf "$ROOT"
  exit $status
}
trap cleanup EXIT
trap 'say "error at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

# make_fs NAME SIZE [MKFS-ARGS...]: a fresh ext4 mounted at $ROOT/NAME.fs (inode tables and
# journal written now, so no lazy-init thread runs during the measurements).
make_fs() {
  local name=$1 size=$2 loop
  shift 2
  truncate -s "$size" "$ROOT/$name.img"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$@" "$ROOT/$name.img"
  loop=$(losetup -f --show --direct-io=on "$ROOT/$name.img")
  LOOPS+=("$loop")
  mkdir "$ROOT/$name.fs"
  mount "$loop" "$ROOT/$name.fs"
  FS_MOUNTS=("$ROOT/$name.fs" "${FS_MOUNTS[@]}")
}

# The FUSE transport: io_uring where the kernel has it (switched on for the run), else /dev/fuse.
if ((!NO_URING)) && [ -w "$URING_SWITCH" ]; then
  URING_WAS=$(cat "$URING_SWITCH")
  echo Y >"$URING_SWITCH"
  CONFIGS=(native off all dev bindfs)
  TRANSPORT="foldfs over FUSE's io_uring transport (fuse.enable_uring switched on for the run), and over /dev/fuse in the \"all, /dev/fuse\" column"
else
  CONFIGS=(native off all bindfs)
  TRANSPORT="foldfs over /dev/fuse ($([ -e "$URING_SWITCH" ] && echo "io_uring left off: --no-uring" || echo "this kernel has no FUSE io_uring transport"))"
fi
backing_of() { echo "$ROOT/$1.fs/data"; }
dir_of() { if [ "$1" = native ]; then backing_of native; else echo "$ROOT/$1.m"; fi; }
mount_cfg() {  # config
  local c=$1 b m=$ROOT/$1.m
  b=$(backing_of "$c")
  case $c in
    native) return 0 ;;
    off) "$FOLDFS" mount "$b" "$m" ;;
    all|scale) "$FOLDFS" mount -o casefold=all "$b" "$m" ;;
    dev) "$FOLDFS" mount -o casefold=all,uring=off "$b" "$m" ;;
    bindfs) bindfs --no-allow-other --multithreaded "$b" "$m" ;;
  esac
  FUSE_MOUNTS+=("$m")
}
umount_cfg() {
  [ "$1" = native ] && return 0
  local m=$ROOT/$1.m i
  unmount "$m"
  for i in "${!FUSE_MOUNTS[@]}"; do [ "${FUSE_MOUNTS[$i]}" = "$m" ] && unset "FUSE_MOUNTS[$i]"; done
  return 0
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# Cold: nothing cached anywhere, neither by the kernel (page, dentry and inode caches, FUSE's
# included) nor by a daemon (fresh mount).
cold() {
  if [ "$1" = native ]; then drop_caches; else umount_cfg "$1"; drop_caches; mount_cfg "$1"; fi
}
daemon_pid() {  # mountpoint -> pid of the foldfs daemon serving it
  local p c
  for p in /proc/[0-9]*; do
    c=$( { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
    case $c in *foldfs\ mount*" $1 "*|*foldfs\ mount*" $1") echo "${p#/proc/}"; return 0 ;; esac
  done
  fail "no daemon for $1"
}
# m CONFIG METRIC FSBENCH-ARGS...: run one measurement, append "CONFIG METRIC VALUE" lines.
m() {
  local c=$1 metric=$2 out
  shift 2
  out=$("$FSBENCH" --as "$metric" "$@") || fail "$c $metric: fsbench $* failed"
  sed "s/^/$c /" <<<"$out" >>"$RESULTS"
  say "$(printf '%-7s %s' "$c" "$(tr '\n' ' ' <<<"$out")")"
}
param() { echo "param $1 $2" >>"$RESULTS"; }
PHASE_LOADS=""
phase() {  # name message: the 1-minute load average at each phase start goes into the report
  PHASE_LOADS+="${PHASE_LOADS:+, }$1 $(cut -d' ' -f1 /proc/loadavg)"
  say "$2"
}
stats() { [ "$1" = off ] || [ "$1" = all ] || [ "$1" = dev ] || [ "$1" = scale ] || return 0
  { echo "== $1 $2"; "$FOLDFS" stats "$ROOT/$1.m"; } >>"$LOG"; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "work area $ROOT, report to $OUT, load average $LOAD_START"
if ((!QUICK)) && awk -v l="${LOAD_START%% *}" 'BEGIN { exit !(l > 1.0) }'; then
  say "WARNING: the machine is busy (load $LOAD_START): timings will swing; run it when quiet"
fi
say "making ext4 images ($IMG_SIZE each)"
for c in "${CONFIGS[@]}"; do
  make_fs "$c" "$IMG_SIZE"
  mkdir "$(backing_of "$c")"
  [ "$c" = native ] || mkdir "$ROOT/$c.m"
  mount_cfg "$c"
done
lsattr -d "$(dir_of all)" | awk '{print $1}' | grep -q F || fail "casefold=all mount does not report +F"
lsattr -d "$(dir_of off)" | awk '{print $1}' | grep -q F && fail "casefold=flag mount reports +F"
T0=$(date +%s)

# --- 1. metadata: N files in one directory ----------------------------------------------------
phase metadata "metadata: $N_META files in one directory"
for c in "${CONFIGS[@]}"; do
  d=$(dir_of "$c")/meta
  mkdir "$d"
  m "$c" create create "$d" "$N_META"
  cold "$c"
  m "$c" stat_exact stat "$d" "$N_META" exact "$STAT_BLOCK"
  m "$c" stat_exact_again stat "$d" "$N_META" exact
  [ "$c" = all ] && m "$c" stat_other stat "$d" "$N_META" other "$STAT_BLOCK"
  m "$c" stat_missing stat "$d" "$N_META" missing "$STAT_BLOCK"
  m "$c" wine_other wine-lookup "$d" "$N_META" other "$WINE_MAX_S"
  m "$c" wine_missing wine-lookup "$d" "$N_META" missing "$WINE_MAX_S"
  m "$c" readdir readdir "$d" "$READDIR_PASSES"
  stats "$c" meta
  m "$c" unlink unlink "$d" "$N_META"
  rmdir "$d"
done

# --- 2. tarball: extract, find, read every file, remove ---------------------------------------
phase tarball "tarball of $TAR_SRC"
tar cf "$ROOT/src.tar" -C "$(dirname "$TAR_SRC")" "$(basename "$TAR_SRC")"
TAR_ENTRIES=$(tar tf "$ROOT/src.tar" | wc -l)
param tar_entries "$TAR_ENTRIES"
param tar_mib "$(($(stat -c %s "$ROOT/src.tar") / 1048576))"
for c in "${CONFIGS[@]}"; do
  d=$(dir_of "$c")/tree
  mkdir "$d"
  m "$c" tar_extract exec "$TAR_ENTRIES" -- tar xf "$ROOT/src.tar" --no-same-owner -C "$d"
  cold "$c"
  m "$c" find exec "$TAR_ENTRIES" -- find "$d"
  m "$c" readtree readtree "$d"
  m "$c" rm exec "$TAR_ENTRIES" -- rm -rf "$d"
done

# --- 3. Wine's probe, and a miss, in a 1,000-entry directory -----------------------------------
phase wine "Wine probe ($PROBES) and miss (1,000-entry directory)"
for c in "${CONFIGS[@]}"; do
  d=$(dir_of "$c")/probe
  mkdir "$d"
  "$FSBENCH" create "$d" 1000 >/dev/null
  m "$c" probe probe "$d" "$PROBES"
  m "$c" wine_miss_1k wine-lookup "$d" "$WINE1K_ITERS" missing "$WINE1K_MAX_S"
  rm -rf "$d"
done

# --- 4. data: sequential write/read, random 4 KiB reads ----------------------------------------
phase data "data: ${SEQ_MIB} MiB file, random reads ${RAND_S} s"
for c in "${CONFIGS[@]}"; do
  f=$(dir_of "$c")/big
  m "$c" seqwrite seqwrite "$f" "$SEQ_MIB"
  cold "$c"
  m "$c" seqread seqread "$f"
  cold "$c"
  m "$c" randread_cold randread "$f" "$RAND_S"
  m "$c" seqread_warm seqread "$f"
  m "$c" randread_warm randread "$f" "$RAND_S"
  m "$c" randread_warm_same randread "$f" "$RAND_SAME_S" same-open
  rm -f "$f"
done
for c in "${CONFIGS[@]}"; do umount_cfg "$c"; done

# --- 5. directory size: other-spelling lookups, daemon memory ----------------------------------
phase size "directory size: $SCALE_SIZES entries"
inodes=0
for n in $SCALE_SIZES; do inodes=$((inodes + n)); done
make_fs scale "$SCALE_IMG_SIZE" -N $((inodes + inodes / 10 + 1000))
SB=$(backing_of scale)
mkdir "$SB" "$ROOT/scale.m"
for n in $SCALE_SIZES; do
  mkdir "$SB/d$n"
  "$FSBENCH" create "$SB/d$n" "$n" >/dev/null  # natively, in the backing tree
done
for n in $SCALE_SIZES; do
  drop_caches
  mount_cfg scale
  m scale "d$n" scale "$ROOT/scale.m/d$n" "$SB/d$n" "$n" "$SCALE_LOOKUPS" \
    "$(daemon_pid "$ROOT/scale.m")"
  stats scale "d$n"
  umount_cfg scale
done
T1=$(date +%s)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 6. name index micro-benchmark -------------------------------------------------------------
phase index "index micro-benchmark"
if ((QUICK)); then
  IB_ARGS=(--benchmark_filter='/1000$' --benchmark_min_time=0.01)
else
  IB_ARGS=(--benchmark_min_time=0.5)
fi
"$INDEX_BENCH" "${IB_ARGS[@]}" --benchmark_color=false >"$ROOT/index_bench.txt" 2>&1 ||
  fail "index_bench failed: $(cat "$ROOT/index_bench.txt")"

# --- 7. Wine and Samba: the programs themselves, plain folder against foldfs ---------------------
# Their own scripts (own mounts, smbd and wineserver, stopped on every exit); their tables go
# into the report as they print them. Full runs only, unless --apps (--no-apps skips them).
[ -z "$APPS" ] && APPS=$((!QUICK))
APPS_MD=$ROOT/apps.md
: >"$APPS_MD"
if ((APPS)); then
  phase apps "Wine and Samba"
  if ((QUICK)); then
    WINE_ARGS=(--rounds 1 --seconds 0.2) SAMBA_ARGS=(--rounds 1 --files 2000 --ops 200)
  else
    WINE_ARGS=() SAMBA_ARGS=()
  fi
  if [ -f "$BIN_DIR/bench/winbench.exe" ] && [ -x /usr/lib/wine/wine64 ]; then
    { echo "#### Wine (bench/wine.sh)"; echo; } >>"$APPS_MD"
    "$HERE/wine.sh" --bin-dir "$BIN_DIR" "${WINE_ARGS[@]}" >>"$APPS_MD" || fail "bench/wine.sh failed"
    echo >>"$APPS_MD"
  else
    say "no winbench.exe or Wine: Wine rows skipped (scripts/setup.sh installs them)"
  fi
  if command -v smbd >/dev/null && command -v smbclient >/dev/null; then
    { echo "#### Samba (bench/samba.sh)"; echo; } >>"$APPS_MD"
    "$HERE/samba.sh" --bin-dir "$BIN_DIR" "${SAMBA_ARGS[@]}" >>"$APPS_MD" || fail "bench/samba.sh failed"
    echo >>"$APPS_MD"
  else
    say "no smbd or smbclient: Samba rows skipped"
  fi
fi

# --- report ------------------------------------------------------------------------------------
"$FSBENCH" report "$RESULTS" "$ROOT/table.md" "$ROOT/chart.dat" >"$ROOT/targets.txt"
gnuplot -e "datafile='$ROOT/chart.dat'; outfile='$OUT/benchmarks.png'" "$HERE/plot.gp"
GEN=$ROOT/generated.md
{
  echo "Run of $(date -u +'%Y-%m-%d %H:%M UTC'), $( ((QUICK)) && echo "QUICK mode (tiny sizes, not figures)" || echo "full mode"),"
  echo "foldfs $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo ' (+ uncommitted src changes)'),"
  echo "$(uname -sr), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
  echo "$(free -g | awk '/Mem:/ {print $2}') GiB RAM; each configuration on a fresh ext4 ($IMG_SIZE, journaled) on a loop device (direct I/O), images on $(df -T "$ROOT" | awk 'NR==2 {print $2 " (" $1 ")"}'),"
  echo "$(bindfs --version | head -1) (libfuse $(bindfs --fuse-version 2>&1 | awk '/linked/ {print $NF}')),"
  echo "load average $LOAD_START at the start, $LOAD_END at the end (1-minute load at each phase: $PHASE_LOADS); workloads took $((T1 - T0)) s."
  echo "Sizes: $N_META files per directory, readdir ×$READDIR_PASSES, tarball of $TAR_SRC ($TAR_ENTRIES entries),"
  echo "$PROBES probes, ${SEQ_MIB} MiB file, random reads ${RAND_S} s (same-open ${RAND_SAME_S} s), directories of ${SCALE_SIZES// /, } entries ($SCALE_LOOKUPS files × 4 new spellings, 3 rounds)."
  echo "foldfs and bindfs with their default options (foldfs: kernel timeouts 60 s, outside changes pushed; bindfs: 1 s);"
  echo "$TRANSPORT."
  if awk -v l="${LOAD_START%% *}" 'BEGIN { exit !(l > 1.0) }'; then
    echo
    echo "**The machine was busy when this run started (load $LOAD_START): figures may be off by 2–4×.**"
  fi
  echo
  cat "$ROOT/table.md"
  echo
  echo '![ratios to native](benchmarks.png)'
  echo
  if [ -s "$APPS_MD" ]; then
    echo 'Wine and Samba, plain folder against foldfs `casefold=all` (docs/wine.md, docs/samba.md):'
    echo
    cat "$APPS_MD"
  fi
  echo 'Name index micro-benchmark (`bench/index_bench`):'
  echo
  echo '```text'
  grep -E '^(BM_|Benchmark|-)' "$ROOT/index_bench.txt"
  echo '```'
} >"$GEN"
DOC_SRC=$REPO/docs/benchmarks.md
DOC=$OUT/benchmarks.md
awk -v gen="$GEN" '
  /<!-- bench:results:begin -->/ { print; while ((getline line < gen) > 0) print line; skip = 1; next }
  /<!-- bench:results:end -->/ { skip = 0 }
  !skip { print }' "$DOC_SRC" >"$ROOT/doc.md"
grep -q 'bench:results:begin' "$ROOT/doc.md" || fail "$DOC_SRC has no result markers"
cp "$ROOT/doc.md" "$DOC"
# Raw figures and daemon counters: next to the report in quick mode, in /tmp otherwise (docs/
# only gets the document and the chart).
if ((QUICK)); then RAW=$OUT; else RAW=/tmp/foldfs-bench-last; mkdir -p "$RAW"; fi
cp "$RESULTS" "$RAW/benchmarks-raw.tsv"
cp "$LOG" "$RAW/daemon-stats.log"
cp "$ROOT/index_bench.txt" "$RAW/index_bench.txt"
say "report: $DOC and $OUT/benchmarks.png"
cat "$ROOT/targets.txt"
