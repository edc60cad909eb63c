#!/bin/bash
# Installs the Debian packages foldfs needs to build and test: only those missing.
set -euo pipefail
PACKAGES=(
  build-essential cmake pkg-config git
  libfuse3-dev fuse3
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  unicode-data libicu-dev bzip2 liburing-dev
  linux-source-6.1  # fs/unicode sources for the -DFOLDFS_KERNEL_ORACLE=ON differential test
  clang libclang-rt-14-dev
  e2fsprogs attr acl util-linux procps psmisc
  xfsprogs btrfs-progs  # the backing-filesystem matrix of the tests
  libcap2-bin           # capsh: the tests' second pass without CAP_SYS_RESOURCE
  bindfs stress-ng gnuplot-nox
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q "${missing[@]}" >/dev/null
  fi
fi
exit 0
