#!/bin/bash
# Samba on foldfs (issue 14): a private smbd on 127.0.0.1 serving three shares of the same
# N-file folder, driven by smbclient (one session per measurement, SMB3):
#   plain     the folder itself; Samba matches names case-insensitively itself (its default
#             `case sensitive = auto`: a miss or a new name costs a scan of the folder)
#   yes       a foldfs casefold=all mount of a copy, `case sensitive = yes`: Samba asks for
#             each name as given and foldfs answers for every spelling
#   auto      the same mount with Samba's default `case sensitive = auto` (for comparison)
# Rows: hits by exact and by other case (`get NAME /dev/null`: open, read, close), misses,
# new files (`put`, removed afterwards), listings of the whole folder; medians of ROUNDS, ops/s
# and the ratios to plain. Then two sessions create the same names in different cases at once,
# on plain and on yes: how many case-duplicate pairs each folder ends with.
#
#   bench/samba.sh [--bin-dir DIR] [--files N] [--ops N] [--rounds R] [--port P]
#                  [--opts OPTS] [--share-opts 'key = value;...'] [--diagnose DIR]
#
# --ops         commands per session for hits, misses and new files (default 2000; the
#               `auto` share gets a tenth for misses and new files: each one scans the folder
#               through FUSE)
# --share-opts  extra smb.conf lines for the two foldfs shares (e.g. 'ea support = no')
# --opts        extra foldfs mount options after casefold=all
# --diagnose    each row once more with the kernel counting the foldfs mount's FUSE requests
#               (bench/fuse_trace.sh), and again with `strace -c -f` of smbd and of the foldfs
#               daemon and `foldfs stats` around it: files in DIR, requests per command printed
# Each session's time minus an empty session's (connect, authenticate, tree connect) is the
# time of its commands. Every smbd process and the mount are stopped on every exit. Needs root,
# /dev/fuse, samba and smbclient (scripts/setup.sh).
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/fuse_trace.sh"
. "$HERE/app_common.sh"
REPO=$(dirname "$HERE")
BIN_DIR=$REPO/build
FILES=20000
OPS=2000
ROUNDS=3
PORT=""
OPTS=""
SHARE_OPTS=""
DIAG=""
while (($#)); do
  case $1 in
    --bin-dir) BIN_DIR=$2; shift ;;
    --files) FILES=$2; shift ;;
    --ops) OPS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --port) PORT=$2; shift ;;
    --opts) OPTS=",$2"; shift ;;
    --share-opts) SHARE_OPTS=$2; shift ;;
    --diagnose) DIAG=$2; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "samba.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
whole_numbers --rounds "$ROUNDS" --files "$FILES" --ops "$OPS"
BIN_DIR=$(mkdir -p "$BIN_DIR" && cd "$BIN_DIR" && pwd)
[ "$(id -u)" = 0 ] || fail "needs root (FUSE mounts, smbd)"
command -v smbd >/dev/null && command -v smbclient >/dev/null || "$REPO/scripts/setup.sh"
SMBD=$(command -v smbd) || fail "no smbd (apt-get install samba)"
FOLDFS=$BIN_DIR/foldfs
if [ ! -x "$FOLDFS" ]; then
  cmake -S "$REPO" -B "$BIN_DIR" >/dev/null
  cmake --build "$BIN_DIR" -j2 --target foldfs >/dev/null
fi
if [ -z "$PORT" ]; then
  for PORT in $(seq 44500 44599); do
    ss -Hltn "sport = :$PORT" | grep -q . || break
  done
fi

WORK=$(mktemp -d /tmp/foldfs-samba.XXXXXX)
MNT=$WORK/mnt
CONF=$WORK/smb.conf
SMBD_PID=""
# Every process of this smbd: its parent and the children it forks per connection.
smbd_pids() { pgrep -f -- "--configfile=$CONF" || true; }
cleanup() {
  local status=$? i p
  trap - EXIT
  if [ -n "$SMBD_PID" ]; then
    for p in $(smbd_pids); do kill "$p" 2>/dev/null || true; done
    for i in $(seq 50); do [ -z "$(smbd_pids)" ] && break; sleep 0.1; done
    for p in $(smbd_pids); do kill -9 "$p" 2>/dev/null || true; done
  fi
  fuse_trace_cleanup
  unmount_patiently "$MNT"
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

populate() {
  mkdir -p "$1"
  (cd "$1" && seq -f 'Document_%05g_Report.txt' 0 $((FILES - 1)) | xargs touch)
}
mkdir -p "$WORK/backing" "$MNT" "$WORK"/{pid,lock,state,cache,private,log,ncalrpc}
EMPTY=$WORK/empty  # what `put` sends (smbclient refuses /dev/null)
: >"$EMPTY"
populate "$WORK/plain"
populate "$WORK/backing/share"
"$FOLDFS" mount -o "casefold=all$OPTS" "$WORK/backing" "$MNT"
DAEMON=$(pgrep -n -f "foldfs mount .* $MNT\$" || true)

share() {  # name path [extra lines]
  printf '[%s]\n  path = %s\n  read only = no\n  guest ok = yes\n  force user = root\n' "$1" "$2"
  [ -n "${3:-}" ] && tr ';' '\n' <<<"$3" | sed 's/^ */  /'
  echo
}
{
  cat <<EOF
[global]
  server role = standalone server
  smb ports = $PORT
  interfaces = lo
  bind interfaces only = yes
  disable netbios = yes
  pid directory = $WORK/pid
  lock directory = $WORK/lock
  state directory = $WORK/state
  cache directory = $WORK/cache
  private dir = $WORK/private
  ncalrpc dir = $WORK/ncalrpc
  log file = $WORK/log/log.%m
  log level = 0
  passdb backend = tdbsam:$WORK/private/passdb.tdb
  map to guest = Bad User
  load printers = no
  printcap name = /dev/null
  disable spoolss = yes
  rpc start on demand helpers = no
  usershare path =

EOF
  share plain "$WORK/plain"
  share yes "$MNT/share" "case sensitive = yes${SHARE_OPTS:+;$SHARE_OPTS}"
  share auto "$MNT/share" "$SHARE_OPTS"
} >"$CONF"
# Its own session: smbd signals its whole process group when it stops.
setsid "$SMBD" --foreground --no-process-group --configfile="$CONF" </dev/null >"$WORK/log/smbd.out" 2>&1 &
SMBD_PID=$!
for i in $(seq 100); do
  ss -Hltn "sport = :$PORT" | grep -q . && break
  kill -0 "$SMBD_PID" 2>/dev/null || fail "smbd exited: $(cat "$WORK/log/smbd.out")"
  sleep 0.1
done
ss -Hltn "sport = :$PORT" | grep -q . || fail "smbd does not listen on $PORT"

client() {  # share: commands on stdin
  timeout 600 smbclient "//127.0.0.1/$1" -p "$PORT" -N -m SMB3 2>&1
}
now() { date +%s.%N; }
# The cost of a session that does nothing: subtracted from every measurement.
declare -A BASE
for s in plain yes auto; do
  ts=()
  for i in 1 2 3 4 5; do
    t0=$(now); echo "pwd" | client "$s" >/dev/null; t1=$(now)
    ts+=("$(calc "$t1 - $t0")")
  done
  BASE[$s]=$(printf '%s\n' "${ts[@]}" | median)
done

RES=$WORK/rows.tsv
: >"$RES"
# measure SHARE ROW N EXPECT: runs the N commands on stdin in one session; EXPECT: how many
# lines of output must carry NT_STATUS (0 for hits, N for misses).
measure() {
  local s=$1 row=$2 n=$3 expect=$4 t0 t1 out errs
  t0=$(now)
  out=$(client "$s")
  t1=$(now)
  errs=$(grep -cE 'NT_STATUS|does not exist' <<<"$out" || true)
  [ "$errs" = "$expect" ] || fail "$s $row: $errs errors, expected $expect: $(grep NT_STATUS <<<"$out" | sort | uniq -c | head -3)"
  # A session barely longer than an empty one measures nothing (raise --ops).
  if awk -v t="$(calc "$t1 - $t0 - ${BASE[$s]}")" 'BEGIN { exit !(t < 0.02) }'; then
    say "$s $row: $n commands took no measurable time beyond the session's own: skipped"
    return 0
  fi
  echo -e "$s\t$row\t$(calc "$n / ($t1 - $t0 - ${BASE[$s]})")" >>"$RES"
}
names() {  # printf-format count offset: names spread over the folder
  awk -v f="$1" -v n="$2" -v o="$3" -v N="$FILES" 'BEGIN { for (i = 0; i < n; i++) printf f "\n", (o + i * 7919) % N }'
}
files_in() { find "$1" -maxdepth 1 -type f | wc -l; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
TRANSPORT_START=$(fuse_transport)
say "work area $WORK, smbd on 127.0.0.1:$PORT, $FILES files, load $LOAD_START"
run_rows() {  # round share
  local r=$1 s=$2 n=$OPS dir
  [ "$s" = plain ] && dir=$WORK/plain || dir=$WORK/backing/share
  [ "$s" = auto ] && n=$((OPS / 10))
  names 'get Document_%05d_Report.txt /dev/null' "$OPS" "$r" | measure "$s" hit_exact "$OPS" 0
  names 'get DOCUMENT_%05d_REPORT.TXT /dev/null' "$OPS" "$((r + 11))" | measure "$s" hit_other "$OPS" 0
  names 'get Missing_%05d_Report.txt /dev/null' "$n" "$r" | measure "$s" miss "$n" "$n"
  awk -v n="$n" -v r="$r" -v e="$EMPTY" 'BEGIN { for (i = 0; i < n; i++) printf "put %s New_r%d_%05d_File.txt\n", e, r, i }' |
    measure "$s" new "$n" 0
  [ "$(files_in "$dir")" = $((FILES + n)) ] || fail "$s: $(files_in "$dir") files after $n new ones"
  echo "del New_r${r}_*" | client "$s" >/dev/null
  [ "$(files_in "$dir")" = "$FILES" ] || fail "$s: new files not removed"
  # Listings: entries per second over 3 listings of the whole folder.
  printf 'ls\nls\nls\n' | measure "$s" list $((3 * (FILES + 2))) 0
}
for ((r = 1; r <= ROUNDS; r++)); do
  for s in plain yes auto; do
    run_rows "$r" "$s"
    say "round $r $s done (load $(cut -d' ' -f1 /proc/loadavg))"
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

echo "$("$SMBD" --version), foldfs $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') casefold=all$OPTS${SHARE_OPTS:+, foldfs shares with: $SHARE_OPTS},"
echo "$(uname -r), $(nproc) CPUs, load $LOAD_START at the start, $LOAD_END at the end; $FILES files in the folder;"
echo "FUSE transport: $TRANSPORT_START at the start, $(fuse_transport) at the end."
echo "medians of $ROUNDS rounds; $OPS commands per session ($((OPS / 10)) for misses and new files on auto), empty session subtracted (plain ${BASE[plain]} s)."
echo
echo "| row | plain (Samba matches) | foldfs, case sensitive = yes | foldfs, auto | yes/plain | auto/plain |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for row in hit_exact hit_other miss new list; do
  p=$(awk -F'\t' -v r="$row" '$1 == "plain" && $2 == r {print $3}' "$RES" | median)
  y=$(awk -F'\t' -v r="$row" '$1 == "yes" && $2 == r {print $3}' "$RES" | median)
  a=$(awk -F'\t' -v r="$row" '$1 == "auto" && $2 == r {print $3}' "$RES" | median)
  printf '| %s | %.0f | %.0f | %.0f | %.2f | %.2f |\n' "$row" "$p" "$y" "$a" \
    "$(calc "$y / $p")" "$(calc "$a / $p")"
done
echo
echo "(ops/s; list: entries/s)"

# Two sessions create the same names in different cases at once.
echo
for s in plain yes; do
  [ "$s" = plain ] && dir=$WORK/plain/race || dir=$WORK/backing/share/race
  echo "mkdir race" | client "$s" >/dev/null
  awk -v e="$EMPTY" 'BEGIN { print "cd race"; for (i = 0; i < 2000; i++) printf "put %s Race_%05d_File.Txt\n", e, i }' >"$WORK/up.cmd"
  awk -v e="$EMPTY" 'BEGIN { print "cd race"; for (i = 0; i < 2000; i++) printf "put %s race_%05d_file.txt\n", e, i }' >"$WORK/lo.cmd"
  client "$s" <"$WORK/up.cmd" >"$WORK/up.out" &
  a=$!
  client "$s" <"$WORK/lo.cmd" >"$WORK/lo.out" &
  b=$!
  wait "$a" "$b" || true
  total=$(find "$dir" -maxdepth 1 -type f | wc -l)
  distinct=$(find "$dir" -maxdepth 1 -type f -printf '%f\n' | tr 'A-Z' 'a-z' | sort -u | wc -l)
  echo "two sessions, 2000 names each in different cases, share $s: $total files for $distinct names ($((total - distinct)) case-duplicate pairs)"
  rm -rf "$dir"
done

if [ -n "$DIAG" ]; then
  mkdir -p "$DIAG"
  for row in hit_exact hit_other miss new list; do
    for s in plain yes auto; do
      n=$OPS
      [ "$s" = auto ] && { [ "$row" = miss ] || [ "$row" = new ]; } && n=$((OPS / 10))
      [ "$row" = list ] && n=1
      diag_commands() {
        case $row in
          hit_exact) names 'get Document_%05d_Report.txt /dev/null' "$n" 5 ;;
          hit_other) names 'get DOCUMENT_%05d_REPORT.TXT /dev/null' "$n" 5 ;;
          miss) names 'get Missing_%05d_Report.txt /dev/null' "$n" 5 ;;
          new) awk -v n="$n" -v e="$EMPTY" 'BEGIN { for (i = 0; i < n; i++) printf "put %s Diag_%05d.txt\n", e, i }' ;;
          list) echo ls ;;
        esac
      }
      # The FUSE requests behind each command (no strace: undisturbed).
      if [ "$s" != plain ] && fuse_trace_start "$MNT"; then
        diag_commands | client "$s" >/dev/null
        fuse_trace_stop "$DIAG/$row.$s.fuse.txt"
        [ "$row" = new ] && echo "del Diag_*" | client "$s" >/dev/null
        printf '%s, %s: %s commands; FUSE requests per command:' "$row" "$s" "$n" >"$DIAG/$row.$s.summary.txt"
        awk -v n="$n" '{ printf " %s %.2f (%s us)", $1, $2 / n, $3 }' "$DIAG/$row.$s.fuse.txt" >>"$DIAG/$row.$s.summary.txt"
        echo >>"$DIAG/$row.$s.summary.txt"
      fi
      pids=()
      # One smbd child serves each session: trace the parent and every child it forks.
      strace -c -f -o "$DIAG/$row.$s.smbd.txt" -p "$SMBD_PID" & pids+=($!)
      if [ "$s" != plain ] && [ -n "$DAEMON" ]; then
        "$FOLDFS" stats "$MNT" >"$DIAG/$row.$s.stats-before.txt"
        strace -c -f -o "$DIAG/$row.$s.daemon.txt" -p "$DAEMON" & pids+=($!)
      fi
      sleep 0.5
      diag_commands | client "$s" >"$DIAG/$row.$s.out"
      for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
      for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
      [ "$s" != plain ] && [ -n "$DAEMON" ] && "$FOLDFS" stats "$MNT" >"$DIAG/$row.$s.stats-after.txt"
      [ "$row" = new ] && echo "del Diag_*" | client "$s" >/dev/null
    done
    say "diagnosis of $row in $DIAG"
  done
  cat "$DIAG"/*.summary.txt 2>/dev/null || true
fi
