#!/bin/bash
# foldfs over NFS (issue 13 §4): one NFS-Ganesha (FSAL_VFS, NFSv4 on 127.0.0.1, the
# configuration docs/nfs.md recommends) exports a plain directory and a foldfs mount
# (casefold=all) of the same kind of tree, both on one fresh ext4 in RAM; the NFS client is
# foldfs_nfs_probe (libnfs, one connection per row). Rows, each the median of ROUNDS:
#   create      OPEN(create) + WRITE + CLOSE of N new files (one directory per round)
#   read        open + READ + close of the N files just made
#   list        a listing of a 5,000-entry directory (READDIR with attributes), per listing
#   lookup      LOOKUP + GETATTR of N names of that directory, spelled as stored
#   lookup-ci   the same names in another case: the plain export cannot answer them (every
#               one fails: the "errors" column), foldfs answers each
# Prints microseconds per operation and the ratio foldfs/plain.
#
# Usage: bench/nfs.sh [--bin-dir DIR] [--rounds R] [--files N] [--mdcache default]
#   --bin-dir   build directory holding foldfs and tests/integration/foldfs_nfs_probe (build)
#   --mdcache default   leave ganesha's MDCACHE at its defaults (dirent cache on) instead of
#               Dir_Chunk = 0, to see what the recommended setting costs
# Root; nfs-ganesha, nfs-ganesha-vfs and libnfs (scripts/setup.sh). A few minutes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/app_common.sh"
BIN_DIR=$HERE/../build
ROUNDS=3
FILES=2000
MDCACHE=recommended
while (($#)); do
  case $1 in
    --bin-dir) BIN_DIR=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --files) FILES=$2; shift ;;
    --mdcache) MDCACHE=$2; shift ;;
    *) echo "usage: $0 [--bin-dir DIR] [--rounds R] [--files N] [--mdcache default]" >&2; exit 2 ;;
  esac
  shift
done
whole_numbers --rounds "$ROUNDS" --files "$FILES"
FOLDFS=$BIN_DIR/foldfs
PROBE=$BIN_DIR/tests/integration/foldfs_nfs_probe
[ -x "$FOLDFS" ] && [ -x "$PROBE" ] || { echo "nfs: no foldfs or foldfs_nfs_probe in $BIN_DIR" >&2; exit 1; }
GANESHA=/usr/bin/ganesha.nfsd
PLUGINS=$(dirname "$(ls /usr/lib/*/ganesha/libfsalvfs.so 2>/dev/null | head -1)")
[ -x "$GANESHA" ] && [ -n "$PLUGINS" ] || { echo "nfs: NFS-Ganesha is not installed (scripts/setup.sh)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/foldfs-nfsbench.XXXXXX)
IMG=$WORK/fs.img
GPID=""
cleanup() {
  [ -n "$GPID" ] && kill "$GPID" 2>/dev/null && timeout 20 tail --pid="$GPID" -f /dev/null || true
  [ -n "$GPID" ] && kill -9 "$GPID" 2>/dev/null || true
  mountpoint -q "$WORK/mnt" && { fusermount3 -u "$WORK/mnt" || umount -l "$WORK/mnt"; }
  mountpoint -q "$WORK/fs" && umount "$WORK/fs"
  rm -rf "$WORK"
}
trap cleanup EXIT

# One ext4 in RAM holds both trees: plain/ (exported as is) and backing/ (through foldfs).
mkdir -p "$WORK/fs" "$WORK/mnt" "$WORK/ganesha/recovery"
truncate -s 1G /dev/shm/foldfs-nfsbench.img
mkfs.ext4 -q -F /dev/shm/foldfs-nfsbench.img
mount -o loop /dev/shm/foldfs-nfsbench.img "$WORK/fs"
rm -f /dev/shm/foldfs-nfsbench.img  # the loop device keeps it until unmounted
mkdir -p "$WORK/fs/plain/L" "$WORK/fs/backing/L"
for tree in plain backing; do
  (cd "$WORK/fs/$tree/L" && for i in $(seq -f '%05g' 0 4999); do : > "f$i"; done)
done
"$FOLDFS" mount -o casefold=all "$WORK/fs/backing" "$WORK/mnt"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MDCACHE_BLOCK="MDCACHE { Dir_Chunk = 0; }"
[ "$MDCACHE" = default ] && MDCACHE_BLOCK=""
cat > "$WORK/ganesha/ganesha.conf" <<EOF
NFS_CORE_PARAM { Bind_addr = 127.0.0.1; NFS_Port = $PORT; Protocols = 4; Enable_NLM = false;
  Enable_RQUOTA = false; Enable_UDP = false; Plugins_Dir = "$PLUGINS"; }
NFS_KRB5 { Active_krb5 = false; }
NFSV4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = "$WORK/ganesha/recovery";
  Only_Numeric_Owners = true; }
$MDCACHE_BLOCK
EXPORT { Export_Id = 1; Path = "$WORK/fs/plain"; Pseudo = /plain; Access_Type = RW;
  Squash = No_Root_Squash; SecType = sys; Protocols = 4; Transports = TCP; FSAL { Name = VFS; } }
EXPORT { Export_Id = 2; Path = "$WORK/mnt"; Pseudo = /fold; Access_Type = RW;
  Squash = No_Root_Squash; SecType = sys; Protocols = 4; Transports = TCP; FSAL { Name = VFS; } }
EOF
"$GANESHA" -F -f "$WORK/ganesha/ganesha.conf" -L "$WORK/ganesha/ganesha.log" \
  -p "$WORK/ganesha/ganesha.pid" -N NIV_EVENT &
GPID=$!
for _ in $(seq 200); do
  timeout 10 "$PROBE" 127.0.0.1 "$PORT" /fold ls / >/dev/null 2>&1 && break
  kill -0 "$GPID" 2>/dev/null || { echo "nfs: ganesha exited" >&2; tail "$WORK/ganesha/ganesha.log" >&2; exit 1; }
  sleep 0.1
done
timeout 10 "$PROBE" 127.0.0.1 "$PORT" /fold ls / >/dev/null || { echo "nfs: ganesha does not answer" >&2; exit 1; }

# probe EXPORT BENCH DIR N [MODE] -> "microseconds-per-op errors"
probe() {
  local out
  out=$(timeout 300 "$PROBE" 127.0.0.1 "$PORT" "/$1" "bench-$2" "$3" "$4" ${5:+"$5"})
  awk -v n="$4" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
    END { printf "%.1f %d\n", v["seconds"] * 1e6 / n, v["errors"] }' <<<"$out"
}

declare -A T E
ROWS=(create read list lookup lookup-ci)
for r in $(seq "$ROUNDS"); do
  for exp in plain fold; do
    # Through the export: a directory made in the backing tree behind foldfs's back would be an
    # outside change, which voids every name the kernel caches for the mount (by design).
    timeout 20 "$PROBE" 127.0.0.1 "$PORT" "/$exp" mkdir "c$r" >/dev/null
    read -r t e < <(probe $exp create "c$r" "$FILES"); T[$exp,create]+="$t "; E[$exp,create]=$e
    read -r t e < <(probe $exp read "c$r" "$FILES"); T[$exp,read]+="$t "; E[$exp,read]=$e
    read -r t e < <(probe $exp list L 5); T[$exp,list]+="$t "; E[$exp,list]=$e
    read -r t e < <(probe $exp lookup L "$FILES" exact); T[$exp,lookup]+="$t "; E[$exp,lookup]=$e
    read -r t e < <(probe $exp lookup L "$FILES" other); T[$exp,lookup-ci]+="$t "; E[$exp,lookup-ci]=$e
  done
  echo "round $r done" >&2
done

echo "NFS-Ganesha 4.3 (FSAL_VFS, NFSv4, MDCACHE: $MDCACHE), ext4 in RAM, $FILES files, 5,000-entry listing, medians of $ROUNDS"
printf '%-10s %14s %14s %8s %18s\n' row "plain us/op" "foldfs us/op" ratio "errors plain/fold"
for row in "${ROWS[@]}"; do
  p=$(tr ' ' '\n' <<<"${T[plain,$row]}" | grep . | median)
  f=$(tr ' ' '\n' <<<"${T[fold,$row]}" | grep . | median)
  printf '%-10s %14s %14s %8s %18s\n' "$row" "$p" "$f" "$(awk -v p="$p" -v f="$f" 'BEGIN { printf "%.2f", f / p }')" \
    "${E[plain,$row]}/${E[fold,$row]}"
done
echo "(list: microseconds per listing of 5,000 entries; lookup-ci on plain: every name fails)"
"$FOLDFS" stats "$WORK/mnt" | tr '\n' ' ' | sed 's/^/foldfs stats: /'; echo
