# Helpers shared by the benchmark scripts (bench/run.sh, data.sh, wine.sh, samba.sh, nfs.sh):
# sourced, never run. Each script sets OPTS (its extra mount options, starting with a comma)
# before calling fuse_transport.

# Progress and errors on stderr, tagged with the script's name (or BENCH_TAG, set before sourcing).
BENCH_TAG=${BENCH_TAG:-$(basename "$0" .sh)}
say() { printf '[%s %s] %s\n' "$BENCH_TAG" "$(date +%T)" "$*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

# Refuses (exit 2, as for an unknown argument) an option value that is not a positive whole
# number: `whole_numbers --rounds "$ROUNDS" --files "$FILES"`.
whole_numbers() {
  while (($#)); do
    [[ $2 =~ ^[1-9][0-9]*$ ]] || {
      echo "$BENCH_TAG.sh: $1 needs a positive whole number, not '$2'" >&2
      exit 2
    }
    shift 2
  done
}

calc() { awk "BEGIN { print $* }" 2>/dev/null || echo nan; }  # arithmetic on decimals

# The median of the numbers on stdin, one per line ("nan" when there are none).
median() { sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "nan" }'; }

# Whether the kernel's FUSE over io_uring is on (a mount with uring=auto then uses it).
fuse_transport() {
  local sw=/sys/module/fuse/parameters/enable_uring
  if [ "$(cat "$sw" 2>/dev/null)" = Y ] && [[ "${OPTS:-}" != *uring=off* ]]; then
    echo "io_uring"
  else
    echo "/dev/fuse"
  fi
}

# Unmounts MOUNTPOINT, waiting up to 5 s for its last users, then lazily.
unmount_patiently() {
  local mnt=$1 i
  for i in $(seq 50); do
    mountpoint -q "$mnt" || return 0
    umount "$mnt" 2>/dev/null || sleep 0.1
  done
  if mountpoint -q "$mnt"; then umount -l "$mnt"; fi
}
