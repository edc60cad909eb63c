#!/bin/bash
# Builds foldfs and runs every test: unit, integration (real mounts over /dev/fuse), the same
# again over FUSE's io_uring transport where the kernel has it and without CAP_SYS_RESOURCE,
# the suites that carry foldfs's promises over every kind of backing filesystem, concurrency
# tests under ThreadSanitizer, fuzz targets for a bounded time, and the quick benchmark mode.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
JOBS=${FOLDFS_JOBS:-$(nproc)}
export CTEST_OUTPUT_ON_FAILURE=1
RESULTS=$(mktemp -d)
status=0

# The kernel's switch for FUSE over io_uring is put back as it was on every exit, interrupted or
# not (set before the second pass).
URING_SWITCH=/sys/module/fuse/parameters/enable_uring
uring_was=""
restore() {
  if [ -n "$uring_was" ]; then echo "$uring_was" >"$URING_SWITCH"; fi
  rm -rf "$RESULTS"
}
trap restore EXIT
trap 'exit 130' INT TERM

run_ctest() {  # name build_dir ctest-args...
  local name=$1 dir=$2
  shift 2
  echo "=== $name ==="
  ctest --test-dir "$dir" --output-junit "$RESULTS/$name.xml" --timeout 900 "$@" || status=1
}

# Whether this process holds a capability (its bit in CapEff).
has_capability() {
  local eff
  eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
  (((0x$eff >> $1) & 1))
}
CAP_SYS_RESOURCE=24

echo "=== build (RelWithDebInfo) ==="
scripts/build.sh -DFOLDFS_KERNEL_ORACLE=ON || exit 1
cmake --install build >/dev/null || exit 1   # foldfs and the mount(8) helper
run_ctest unit build -L unit -j"$JOBS"
run_ctest integration build -L integration

# Second pass: the same suites without CAP_SYS_RESOURCE (as in many containers and CI runners),
# and over FUSE's io_uring transport where the kernel has it (every mount with uring=auto then
# serves over the ring). The name-swap race runs once: it does not depend on either.
if [ -w "$URING_SWITCH" ]; then
  uring_was=$(cat "$URING_SWITCH")
  echo Y >"$URING_SWITCH"
fi
second=(ctest --test-dir build --timeout 900 -E '^Operations/NameSwaps')
if has_capability $CAP_SYS_RESOURCE; then
  drop=(capsh --drop=cap_sys_resource --)
  echo "(second pass: CAP_SYS_RESOURCE dropped with capsh)"
else
  drop=()
  echo "(second pass: this machine's root already lacks CAP_SYS_RESOURCE)"
fi
for label in unit integration; do
  echo "=== $label (io_uring where available, no CAP_SYS_RESOURCE) ==="
  cmd=("${second[@]}" -L "$label" --output-junit "$RESULTS/$label-second.xml")
  if ((${#drop[@]})); then
    "${drop[@]}" -c "$(printf '%q ' "${cmd[@]}")" || status=1
  else
    "${cmd[@]}" || status=1
  fi
done
if [ -n "$uring_was" ]; then
  echo "$uring_was" >"$URING_SWITCH"
  uring_was=""
fi

# The promises over every kind of backing filesystem (tests/integration/harness.h,
# FOLDFS_IT_BACKING): generic/556's behaviours, collisions, POSIX operations, the coherence
# loops, outside changes, file handles, the model-checked random operations, and the union of
# trees (its mount, and copy-up).
MATRIX='^(Generic556|UnionCopyUp|UnionMount|UnionWrites|CasefoldSemantics|CasefoldFlag|CasefoldAllFlag|CasefoldDotNames|CasefoldAllDotNames|ExistingCollisions|OutsideChanges|CacheCoherence|FileHandles|PosixOps|Variants/Model)'
for kind in ext4 xfs btrfs tmpfs nested overlay fuse; do
  FOLDFS_IT_BACKING=$kind run_ctest "backing-$kind" build -R "$MATRIX"
done
run_ctest bench build -L bench   # the benchmark in its quick mode: proves it runs

echo "=== build (ThreadSanitizer, clang with the lock annotations checked) ==="
CC=clang CXX=clang++ FOLDFS_BUILD_DIR=build-tsan scripts/build.sh -DFOLDFS_SANITIZE=thread \
  -DFOLDFS_THREAD_SAFETY=ON -DFOLDFS_BENCH=OFF || exit 1
run_ctest tsan build-tsan -L tsan
# Backing filesystems without file handles keep a descriptor per inode: the stress again there.
FOLDFS_IT_BACKING=overlay FOLDFS_STRESS_SECONDS=10 run_ctest tsan-overlay build-tsan \
  -R '^MountStress.MixedOperationsOverCaseVariants'

if [ -z "${FOLDFS_SKIP_FUZZ:-}" ]; then
  echo "=== build (libFuzzer) ==="
  CC=clang CXX=clang++ FOLDFS_BUILD_DIR=build-fuzz scripts/build.sh -DFOLDFS_FUZZ=ON \
    -DFOLDFS_BENCH=OFF || exit 1
  run_ctest fuzz build-fuzz -L fuzz
fi

passed=0
failed=0
for f in "$RESULTS"/*.xml; do
  [ -f "$f" ] || continue
  t=$(grep -o 'tests="[0-9]*"' "$f" | head -1 | tr -dc 0-9)
  fl=$(grep -o 'failures="[0-9]*"' "$f" | head -1 | tr -dc 0-9)
  sk=$(grep -o 'skipped="[0-9]*"' "$f" | head -1 | tr -dc 0-9)
  passed=$((passed + ${t:-0} - ${fl:-0} - ${sk:-0}))
  failed=$((failed + ${fl:-0}))
done
echo "total: $passed passed, $failed failed"
# The names of the failed tests again, last, where a truncated log still shows them.
for f in "$RESULTS"/*.xml; do
  [ -f "$f" ] || continue
  grep -o '<testcase name="[^"]*"[^>]*status="fail"' "$f" |
    sed -E "s/<testcase name=\"([^\"]*)\".*/FAILED ($(basename "$f" .xml)): \1/"
done
if ((failed > 0)); then status=1; fi
exit $status
