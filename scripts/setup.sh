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
  nfs-ganesha nfs-ganesha-vfs libnfs-utils libnfs-dev  # the NFS tests and bench/nfs.sh
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nfs-ganesha pulls in rpcbind; whether it was there before decides whether we stop it below.
had_rpcbind=0
dpkg-query -W -f='${Status}' rpcbind 2>/dev/null | grep -q "install ok installed" && had_rpcbind=1
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q "${missing[@]}" >/dev/null
  fi
  # The tests start their own ganesha on 127.0.0.1 and a free port. Where systemd runs, the
  # packages would also start the system's NFS server (port 2049 on every address, exporting
  # /etc/ganesha's configuration) and rpcbind (port 111): we installed them, so we switch them
  # off again. (In containers, policy-rc.d keeps them from starting at all.)
  if [[ " ${missing[*]} " == *" nfs-ganesha "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now nfs-ganesha.service nfs-ganesha-lock.service >/dev/null 2>&1 || true
    if ((!had_rpcbind)); then
      systemctl disable --now rpcbind.service rpcbind.socket >/dev/null 2>&1 || true
    fi
  fi
fi
exit 0
