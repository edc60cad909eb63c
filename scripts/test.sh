#!/bin/bash
# Builds foldfs and runs every test: unit, integration (real mounts; over /dev/fuse, then over
# FUSE's io_uring transport where the kernel has it), concurrency tests under ThreadSanitizer,
# fuzz targets for a bounded time, and the quick benchmark mode.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
JOBS=${FOLDFS_JOBS:-$(nproc)}
export CTEST_OUTPUT_ON_FAILURE=1
RESULTS=$(mktemp -d)
status=0

run_ctest() {  # name build_dir ctest-args...
  local name=$1 dir=$2
  shift 2
  echo "=== $name ==="
  ctest --test-dir "$dir" --output-junit "$RESULTS/$name.xml" --timeout 900 "$@" || status=1
}

echo "=== build (RelWithDebInfo) ==="
scripts/build.sh -DFOLDFS_KERNEL_ORACLE=ON || exit 1
cmake --install build >/dev/null || exit 1   # foldfs and the mount(8) helper
run_ctest unit build -L unit -j"$JOBS"
run_ctest integration build -L integration
# Again over FUSE's io_uring transport where the kernel has it: the same tests, every request
# through foldfs's ring threads (mount option uring=auto follows the kernel's switch).
URING_SWITCH=/sys/module/fuse/parameters/enable_uring
if [ -w "$URING_SWITCH" ]; then
  uring_was=$(cat "$URING_SWITCH")
  echo Y >"$URING_SWITCH"
  run_ctest integration-uring build -L integration
  echo "$uring_was" >"$URING_SWITCH"
fi
run_ctest bench build -L bench   # the benchmark in its quick mode: proves it runs

echo "=== build (ThreadSanitizer) ==="
FOLDFS_BUILD_DIR=build-tsan scripts/build.sh -DFOLDFS_SANITIZE=thread -DFOLDFS_BENCH=OFF || exit 1
run_ctest tsan build-tsan -L tsan

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
  passed=$((passed + ${t:-0} - ${fl:-0}))
  failed=$((failed + ${fl:-0}))
done
rm -rf "$RESULTS"
echo "total: $passed passed, $failed failed"
if ((failed > 0)); then status=1; fi
exit $status
