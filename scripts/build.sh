#!/bin/bash
# Configures and builds foldfs into build/ (or $FOLDFS_BUILD_DIR). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${FOLDFS_BUILD_DIR:-build}
JOBS=${FOLDFS_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${FOLDFS_BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS"
