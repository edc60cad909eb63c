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
  fuse-overlayfs mergerfs  # bench/union.sh: the byte-exact unions it compares with
  nfs-ganesha nfs-ganesha-vfs libnfs-utils libnfs-dev  # the NFS tests and bench/nfs.sh
)
# The programs foldfs exists for, in bench/wine.sh, bench/samba.sh and the "wine" and "samba"
# integration tests: installed without their recommendations (Wine's would bring X, fonts and
# sound; Samba's the AD DC's Python modules).
PLAIN_PACKAGES=(
  wine64 gcc-mingw-w64-x86-64-win32  # Wine 8 runs bench/wine/winbench.c, built with mingw-w64
  samba smbclient
  strace                             # the diagnosis runs of bench/wine.sh and bench/samba.sh
)
missing_of() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
apt_install() {  # apt-get install arguments...
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "$@" >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q "$@" >/dev/null
  fi
}
# nfs-ganesha pulls in rpcbind; whether it was there before decides whether we stop it below.
had_rpcbind=0
dpkg-query -W -f='${Status}' rpcbind 2>/dev/null | grep -q "install ok installed" && had_rpcbind=1
mapfile -t missing < <(missing_of "${PACKAGES[@]}")
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  apt_install "${missing[@]}"
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
mapfile -t missing < <(missing_of "${PLAIN_PACKAGES[@]}")
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]} (without recommendations)" >&2
  # Samba's packages start smbd, nmbd and samba-ad-dc (listening on every interface) unless
  # policy-rc.d says no: say no for the install, then make sure none of them runs or starts at
  # boot. The tests and benchmarks start their own smbd on 127.0.0.1.
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
  fi
  apt_install --no-install-recommends "${missing[@]}" || status=$?
  ((made_policy)) && rm -f "$policy"
  ((${status:-0} == 0)) || exit "$status"
fi
for service in smbd nmbd samba-ad-dc winbind; do
  [ -e "/etc/init.d/$service" ] || [ -e "/lib/systemd/system/$service.service" ] || continue
  if [ -d /run/systemd/system ]; then
    systemctl disable --now "$service" >/dev/null 2>&1 || true
  else
    update-rc.d "$service" disable >/dev/null 2>&1 || true
    if [ -e "/run/samba/$service.pid" ] && kill -0 "$(cat "/run/samba/$service.pid")" 2>/dev/null; then
      "/etc/init.d/$service" stop >/dev/null 2>&1 || true
    fi
  fi
done
exit 0
