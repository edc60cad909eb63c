#!/usr/bin/env bash
# A union of 5 trees (issue 16): foldfs's case-insensitive union against a 1-tree foldfs mount
# of the same files merged into one tree, against fuse-overlayfs and mergerfs doing the byte-exact
# equivalent (the same trees with one spelling of every directory), and against that merged tree
# read natively; all in one run, on one filesystem.
#
# The trees: a game (tree 5, the lowest) and 4 mods. Data/Textures holds N files
# (Texture_0000042.dds); each tree holds a fifth of them and tree 1 (the highest) also overrides
# every tenth file of the trees below. In foldfs's union every tree spells the directories its
# own way (DATA/TEXTURES, data/textures, ...); the byte-exact unions get "Data/Textures" in
# every tree, which is what they need to merge at all.
#
# Rows (operations per second, higher is better; fsbench, bench/workloads/fsbench.cc):
#   stat exact      every name in its own spelling, after a fresh mount and dropped caches
#   stat again      the same again (the kernel's caches: no request reaches a daemon, which
#                   the last line shows for foldfs's union; a row no FUSE filesystem can win)
#   stat other      every name upper-cased (case-insensitive mounts only)
#   stat missing    names that exist nowhere
#   find            `find` of the whole union after a fresh mount (entries per second)
#   read tree       every file read (files per second)
# Each row is the median of ROUNDS; the ratio columns divide foldfs's union by the others.
#
# With --upper, foldfs's union and fuse-overlayfs also get an (empty) writable upper tree, as a mod
# manager mounts them (the rows read only; every lookup then asks the upper tree first).
#
#   bench/union.sh [--bin-dir DIR] [--files N] [--rounds R] [--upper] [--quick]
# Needs root, /dev/fuse, fuse-overlayfs and mergerfs (scripts/setup.sh installs them).
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/app_common.sh"
REPO=$(dirname "$HERE")
BIN_DIR=$REPO/build
FILES=20000
ROUNDS=3
UPPER=0
while (($#)); do
  case $1 in
    --bin-dir) BIN_DIR=$2; shift ;;
    --files) FILES=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --quick) FILES=500; ROUNDS=1 ;;
    --upper) UPPER=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "union.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
whole_numbers --files "$FILES" --rounds "$ROUNDS"
[ "$(id -u)" = 0 ] || fail "needs root (FUSE mounts, drop_caches)"
for tool in fuse-overlayfs mergerfs; do
  command -v "$tool" >/dev/null || fail "$tool is missing (scripts/setup.sh)"
done
FOLDFS=$BIN_DIR/foldfs
FSBENCH=$BIN_DIR/bench/fsbench
[ -x "$FOLDFS" ] && [ -x "$FSBENCH" ] || fail "build first: scripts/build.sh"

WORK=$(mktemp -d /tmp/foldfs-union.XXXXXX)
CONFIGS=(union one overlayfs mergerfs native)
cleanup() {
  local c
  for c in "${CONFIGS[@]}"; do unmount_patiently "$WORK/$c.m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the trees ----------------------------------------------------------------------------------
SPELLINGS=("DATA/TEXTURES" "data/textures" "Data/Textures" "data/TEXTURES" "Data/textures")
name_of() { printf 'Texture_%07d.dds' "$1"; }
say "making 5 trees of $FILES files in $WORK"
mkdir -p "$WORK/one/Data/Textures"
for t in 1 2 3 4 5; do
  mkdir -p "$WORK/ci$t/${SPELLINGS[t - 1]}" "$WORK/exact$t/Data/Textures"
done
# Tree t holds the names i with i % 5 == t - 1; tree 1 also every tenth name.
for ((i = 0; i < FILES; i++)); do
  t=$((i % 5 + 1))
  n=$(name_of "$i")
  echo "tree $t" >"$WORK/ci$t/${SPELLINGS[t - 1]}/$n"
  if ((i % 10 == 0 && t != 1)); then echo "tree 1" >"$WORK/ci1/${SPELLINGS[0]}/$n"; fi
done
for t in 1 2 3 4 5; do cp -a "$WORK/ci$t/${SPELLINGS[t - 1]}/." "$WORK/exact$t/Data/Textures/"; done
for t in 5 4 3 2 1; do cp -a "$WORK/ci$t/${SPELLINGS[t - 1]}/." "$WORK/one/Data/Textures/"; done
# Every configuration reads trees laid out alike: made by cp -a, one tree after the other (the
# trees above were filled a file in each in turn, which scatters their directory blocks and
# inodes over the disk, and only foldfs's union would read them so).
for t in 1 2 3 4 5; do
  cp -a "$WORK/ci$t" "$WORK/ci$t.copy" && rm -rf "$WORK/ci$t" && mv "$WORK/ci$t.copy" "$WORK/ci$t"
done
[ "$(find "$WORK/one/Data/Textures" -type f | wc -l)" = "$FILES" ] || fail "the merged tree is wrong"
sync

upper() {  # --upper: the options of an empty writable upper tree for config $1
  ((UPPER)) || return 0
  mkdir -p "$WORK/$1.up" "$WORK/$1.work"
  printf ',upperdir=%s,workdir=%s' "$WORK/$1.up" "$WORK/$1.work"
}
mount_cfg() {
  local c=$1 m=$WORK/$1.m
  mkdir -p "$m"
  case $c in
    union) "$FOLDFS" mount -o "lowerdir=$WORK/ci1:$WORK/ci2:$WORK/ci3:$WORK/ci4:$WORK/ci5$(upper union)" none "$m" ;;
    one) "$FOLDFS" mount -o casefold=all,ro "$WORK/one" "$m" ;;
    overlayfs) fuse-overlayfs -o "lowerdir=$WORK/exact1:$WORK/exact2:$WORK/exact3:$WORK/exact4:$WORK/exact5$(upper overlayfs)" "$m" ;;
    mergerfs) mergerfs -o ro,category.search=ff "$WORK/exact1:$WORK/exact2:$WORK/exact3:$WORK/exact4:$WORK/exact5" "$m" ;;
    native) : ;;
  esac
}
dir_of() { [ "$1" = native ] && echo "$WORK/one" || echo "$WORK/$1.m"; }
fresh() {  # a fresh mount and no cache: nothing answers from memory
  [ "$1" = native ] || unmount_patiently "$WORK/$1.m"
  mount_cfg "$1"
  sync
  echo 3 >/proc/sys/vm/drop_caches
}

# The lookups foldfs's daemon answered so far (every tree's): "stat again" is to reach none.
lookups_seen() { "$FOLDFS" stats "$1" | awk '$1 ~ /(^|_)lookups$/ { n += $2 } END { print n + 0 }'; }

RESULTS=$WORK/results
: >"$RESULTS"
m() {  # config row fsbench-args...
  local c=$1 row=$2 out
  shift 2
  out=$("$FSBENCH" --as x "$@") || fail "$c $row: fsbench $* failed"
  # "x VALUE", or for readtree "x_files VALUE" and "x_mib VALUE": the first is the row's
  echo "$c $row $(awk 'NR == 1 { print $2 }' <<<"$out")" >>"$RESULTS"
}
for ((r = 1; r <= ROUNDS; r++)); do
  for c in "${CONFIGS[@]}"; do
    say "round $r/$ROUNDS: $c"
    d=$(dir_of "$c")/Data/Textures
    fresh "$c"
    # Both spellings must find the same file through the case-insensitive mounts.
    if [ "$c" = union ] || [ "$c" = one ]; then
      [ "$(cat "$(dir_of "$c")/data/TEXTURES/$(name_of 10)")" = "tree 1" ] || fail "$c: wrong file"
    fi
    m "$c" stat_exact stat "$d" "$FILES" exact
    [ "$c" = union ] && before=$(lookups_seen "$(dir_of "$c")")
    m "$c" stat_again stat "$d" "$FILES" exact
    [ "$c" = union ] && echo "union again_lookups $(($(lookups_seen "$(dir_of "$c")") - before))" >>"$RESULTS"
    if [ "$c" = union ] || [ "$c" = one ]; then m "$c" stat_other stat "$d" "$FILES" other; fi
    m "$c" stat_missing stat "$d" "$FILES" missing
    fresh "$c"
    m "$c" find exec "$((FILES + 3))" -- find "$(dir_of "$c")"
    m "$c" read_tree readtree "$(dir_of "$c")"
  done
done

median_of() { awk -v c="$1" -v r="$2" '$1 == c && $2 == r { print $3 }' "$RESULTS" | median; }
fmt() { [ "$1" = nan ] && echo "n/a" || printf "%.0f" "$1"; }
ratio() { [ "$1" = nan ] || [ "$2" = nan ] && { echo "n/a"; return; }; printf "%.2f" "$(calc "$1 / $2")"; }
echo
echo "foldfs $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $(uname -r), $(nproc) CPUs;" \
  "5 trees, $FILES files in Data/Textures, medians of $ROUNDS; operations per second$( ((UPPER)) && echo "; with an empty upper tree (union, fuse-overlayfs)")."
echo
echo "| row | foldfs union | foldfs 1 tree | fuse-overlayfs | mergerfs | native | union/1 tree | union/fuse-overlayfs | union/mergerfs | union/native |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for row in stat_exact stat_again stat_other stat_missing find read_tree; do
  declare -A v=()
  for c in "${CONFIGS[@]}"; do v[$c]=$(median_of "$c" "$row"); done
  echo "| ${row//_/ } | $(fmt "${v[union]}") | $(fmt "${v[one]}") | $(fmt "${v[overlayfs]}") |" \
    "$(fmt "${v[mergerfs]}") | $(fmt "${v[native]}") | $(ratio "${v[union]}" "${v[one]}") |" \
    "$(ratio "${v[union]}" "${v[overlayfs]}") | $(ratio "${v[union]}" "${v[mergerfs]}") |" \
    "$(ratio "${v[union]}" "${v[native]}") |"
done
echo
echo "Lookups foldfs's union answered during \"stat again\" (the kernel's cache serves that row):" \
  "$(awk '$1 == "union" && $2 == "again_lookups" { printf "%s%s", sep, $3; sep = ", " }' "$RESULTS")."
