#!/bin/bash
# Wine on foldfs (issue 14): a Windows program (bench/wine/winbench.c, run by Wine 8) in a
# 5,000-file folder, on a plain folder and on a foldfs casefold=all mount of the same content,
# in the same run: medians of ROUNDS runs of each row, ops/s and the ratio foldfs/plain; then
# winbench's check mode (Windows name rules, two processes creating the same names in different
# cases at once) on both.
#
#   bench/wine.sh [--bin-dir DIR] [--rounds R] [--seconds S] [--rows ROW,ROW] [--opts OPTS]
#                 [--diagnose DIR]
#
# --bin-dir   where foldfs and bench/winbench.exe are (default: build/, built if missing)
# --seconds   how long each row runs in each round (default 1)
# --opts      extra foldfs mount options, after casefold=all (e.g. uring=off)
# --diagnose  also run each row on foldfs with the kernel counting its FUSE requests
#             (bench/fuse_trace.sh), and once more on both under `strace -c -f` of the
#             program, of wineserver and of the foldfs daemon, with `foldfs stats` before and
#             after: files in DIR, requests per operation printed
#
# The Wine prefix is made once (wineboot, ~15 s) and kept in BIN_DIR/wine/prefix-bench; a
# private wineserver runs for the duration and is stopped on every exit, with the mount.
# Layout (winbench.c): ROOT/Files holds 4,000 long names (Texture_NNNNN_Diffuse.dds) and 1,000
# 8.3 names (TXNNNNNN.DDS), 4 KiB each; ROOT/Data/.../Group_Four holds 100 files six folders
# deep; ROOT/ShaderCache is empty. Needs root, /dev/fuse, wine64 and mingw-w64
# (scripts/setup.sh).
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/fuse_trace.sh"
. "$HERE/app_common.sh"
REPO=$(dirname "$HERE")
BIN_DIR=$REPO/build
ROUNDS=3
SECONDS_PER_ROW=1
ROWS=all
OPTS=""
DIAG=""
while (($#)); do
  case $1 in
    --bin-dir) BIN_DIR=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --seconds) SECONDS_PER_ROW=$2; shift ;;
    --rows) ROWS=$2; shift ;;
    --opts) OPTS=",$2"; shift ;;
    --diagnose) DIAG=$2; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "wine.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
whole_numbers --rounds "$ROUNDS"
BIN_DIR=$(mkdir -p "$BIN_DIR" && cd "$BIN_DIR" && pwd)  # absolute: WINEPREFIX must be
[ "$(id -u)" = 0 ] || fail "needs root (FUSE mounts)"
[ -x /usr/lib/wine/wine64 ] || "$REPO/scripts/setup.sh"
WINE=/usr/lib/wine/wine64
WINESERVER=/usr/lib/wine/wineserver
[ -x "$WINE" ] || fail "no $WINE (apt-get install wine64)"
FOLDFS=$BIN_DIR/foldfs
EXE=$BIN_DIR/bench/winbench.exe
if [ ! -x "$FOLDFS" ] || [ ! -f "$EXE" ]; then
  say "building foldfs and winbench.exe in $BIN_DIR"
  cmake -S "$REPO" -B "$BIN_DIR" >/dev/null
  cmake --build "$BIN_DIR" -j2 --target foldfs winbench >/dev/null
fi
[ -f "$EXE" ] || fail "no $EXE (is mingw-w64 installed?)"

export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml,winemenubuilder.exe=d"
unset DISPLAY WAYLAND_DISPLAY
export WINEPREFIX=$BIN_DIR/wine/prefix-bench
mkdir -p "$BIN_DIR/wine"
(
  flock 8
  if [ ! -f "$WINEPREFIX/.made" ]; then
    say "making the Wine prefix $WINEPREFIX (once)"
    rm -rf "$WINEPREFIX"
    timeout 300 "$WINE" wineboot --init >/dev/null 2>&1
    timeout 60 "$WINESERVER" -w
    touch "$WINEPREFIX/.made"
  fi
) 8>"$BIN_DIR/wine/prefix-bench.lock"

WORK=$(mktemp -d /tmp/foldfs-wine.XXXXXX)
MNT=$WORK/mnt
SERVER_PID=""
cleanup() {
  local status=$? i
  trap - EXIT
  if [ -n "$SERVER_PID" ]; then
    timeout 20 "$WINESERVER" -k 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  fuse_trace_cleanup
  unmount_patiently "$MNT"
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The layout, made directly in the Linux folder.
populate() {
  local root=$1 deep=$1/Data/Textures/Level_One/Sub_Two/Part_Three/Group_Four
  mkdir -p "$root/Files" "$root/ShaderCache" "$deep"
  (cd "$root/Files" && {
    printf 'Texture_%05d_Diffuse.dds\n' $(seq 0 3999)
    printf 'TX%06d.DDS\n' $(seq 0 999)
  } | xargs truncate -s 4096)
  (cd "$deep" && printf 'Item_%03d.dds\n' $(seq 0 99) | xargs truncate -s 4096)
}
mkdir "$WORK/plain" "$WORK/backing" "$MNT"
populate "$WORK/plain"
populate "$WORK/backing"
"$FOLDFS" mount -o "casefold=all$OPTS" "$WORK/backing" "$MNT"
lsattr -d "$MNT" | grep -q '^[^ ]*F' || fail "the mount does not report +F"
DAEMON=$(pgrep -n -f "foldfs mount .* $MNT\$" || true)

winpath() { echo "Z:${1//\//\\}"; }
# A private wineserver for the run, so that its system calls can be traced and it is stopped.
"$WINESERVER" -f -p >/dev/null 2>&1 &
SERVER_PID=$!
timeout 120 "$WINE" cmd /c exit >/dev/null 2>&1 || true   # starts the prefix's services

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
TRANSPORT_START=$(fuse_transport)
say "work area $WORK, load $LOAD_START, $ROUNDS rounds of ${SECONDS_PER_ROW} s per row"
RES=$WORK/rows.tsv
: >"$RES"
run_bench() {  # config dir [rows]
  local out
  out=$(timeout 600 "$WINE" "$EXE" bench "$(winpath "$2")" "$SECONDS_PER_ROW" "${3:-$ROWS}" | tr -d '\r') ||
    fail "$1: winbench failed: $out"
  awk -v c="$1" '/^row / {print c "\t" $2 "\t" $5}' <<<"$out" >>"$RES"
}
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then order=(plain foldfs); else order=(foldfs plain); fi
  for c in "${order[@]}"; do
    if [ "$c" = plain ]; then run_bench plain "$WORK/plain"; else run_bench foldfs "$MNT"; fi
    say "round $r $c done (load $(cut -d' ' -f1 /proc/loadavg))"
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

echo "Wine $("$WINE" --version 2>/dev/null), foldfs $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), mount -o casefold=all$OPTS,"
echo "$(uname -r), $(nproc) CPUs, load $LOAD_START at the start, $LOAD_END at the end;"
echo "FUSE transport: $TRANSPORT_START at the start, $(fuse_transport) at the end."
echo "medians of $ROUNDS rounds of ${SECONDS_PER_ROW} s per row; plain folder and backing on $(df -T "$WORK" | awk 'NR==2 {print $2}')."
echo
echo "| row | plain | foldfs | foldfs/plain |"
echo "| --- | ---: | ---: | ---: |"
for row in $(awk -F'\t' '!seen[$2]++ {print $2}' "$RES"); do
  p=$(awk -F'\t' -v r="$row" '$1 == "plain" && $2 == r {print $3}' "$RES" | median)
  f=$(awk -F'\t' -v r="$row" '$1 == "foldfs" && $2 == r {print $3}' "$RES" | median)
  if [ "$row" = list_ms ]; then
    printf '| %s | %.1f ms | %.1f ms | %.2f |\n' "list, one listing" "$p" "$f" "$(calc "$p / $f")"
  else
    printf '| %s | %.0f | %.0f | %.2f |\n' "$row" "$p" "$f" "$(calc "$f / $p")"
  fi
done
echo
echo "(list, one listing: time per FindFirstFile/FindNextFile pass over the folder; its ratio is plain time / foldfs time)"

# Windows name rules on both: each gets a fresh empty folder.
echo
for c in plain foldfs; do
  if [ "$c" = plain ]; then d=$WORK/plain/check; else d=$MNT/check; fi
  mkdir "$d"
  out=$(timeout 300 "$WINE" "$EXE" check "$(winpath "$d")" 400 2>&1 | tr -d '\r') && st=0 || st=$?
  echo "check on $c: exit $st; $(grep -E '^(OK|FAILED)' <<<"$out" || echo 'no verdict')"
  grep -E '^(FAIL |race|differs)' <<<"$out" | grep -v '^FAIL .* lists both' | sed 's/^/    /' | head -20
done

# Diagnosis: each row once more on foldfs with the kernel counting the mount's FUSE requests
# (bench/fuse_trace.sh: ROW.fuse.txt, per request type: count and mean time from send to
# reply), then once more on both under strace, with the daemon's counters around it.
if [ -n "$DIAG" ]; then
  mkdir -p "$DIAG"
  SRV=$(pgrep -n -x wineserver64 || true)
  rows=$ROWS
  [ "$rows" = all ] && rows=attr_exact,attr_other,attr_missing_long,attr_missing_83,create_long,create_83,open_deep,list,startup
  for row in ${rows//,/ }; do
    if fuse_trace_start "$MNT"; then
      "$WINE" "$EXE" bench "$(winpath "$MNT")" "$SECONDS_PER_ROW" "$row" | tr -d '\r' >"$DIAG/$row.fuse.out"
      fuse_trace_stop "$DIAG/$row.fuse.txt"
      ops=$(awk -v r="$row" '$1 == "row" && $2 == r {print $3}' "$DIAG/$row.fuse.out")
      printf '%s: %s ops; FUSE requests per op:' "$row" "$ops" >"$DIAG/$row.summary.txt"
      awk -v n="$ops" '{ printf " %s %.2f (%s us)", $1, $2 / n, $3 }' "$DIAG/$row.fuse.txt" >>"$DIAG/$row.summary.txt"
      echo >>"$DIAG/$row.summary.txt"
    fi
    for c in plain foldfs; do
      if [ "$c" = plain ]; then d=$WORK/plain; else d=$MNT; fi
      pids=()
      if [ -n "$SRV" ]; then
        strace -c -f -o "$DIAG/$row.$c.wineserver.txt" -p "$SRV" & pids+=($!)
      fi
      if [ "$c" = foldfs ] && [ -n "$DAEMON" ]; then
        "$FOLDFS" stats "$MNT" >"$DIAG/$row.stats-before.txt"
        strace -c -f -o "$DIAG/$row.daemon.txt" -p "$DAEMON" & pids+=($!)
      fi
      sleep 0.5
      strace -c -f -o "$DIAG/$row.$c.program.txt" \
        "$WINE" "$EXE" bench "$(winpath "$d")" "$SECONDS_PER_ROW" "$row" >"$DIAG/$row.$c.out"
      for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
      for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
      [ "$c" = foldfs ] && [ -n "$DAEMON" ] && "$FOLDFS" stats "$MNT" >"$DIAG/$row.stats-after.txt"
    done
    say "diagnosis of $row in $DIAG"
  done
  cat "$DIAG"/*.summary.txt 2>/dev/null || true
fi
