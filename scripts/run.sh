#!/bin/bash
# Builds foldfs and mounts it.
#   scripts/run.sh                         demo: ./demo/backing mounted on ./demo/mnt, casefold=all
#   scripts/run.sh BACKING MOUNTPOINT [-o OPTS]   your own directories
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cmake --install build >/dev/null

if (($# > 0)); then
  exec build/foldfs mount "$@"
fi

DEMO="$PWD/demo"
mkdir -p "$DEMO/backing" "$DEMO/mnt"
if mountpoint -q "$DEMO/mnt"; then umount "$DEMO/mnt"; fi
if [ ! -e "$DEMO/backing/Data" ]; then
  mkdir -p "$DEMO/backing/Data/Textures"
  echo "a texture" > "$DEMO/backing/Data/Textures/Grass.DDS"
  echo "hello from foldfs" > "$DEMO/backing/ReadMe.txt"
fi
build/foldfs mount -o casefold=all "$DEMO/backing" "$DEMO/mnt"
cat <<MSG
foldfs is mounted: $DEMO/backing  ->  $DEMO/mnt  (casefold=all)

Try:
  cat $DEMO/mnt/README.TXT                 # finds ReadMe.txt
  ls $DEMO/mnt/data/textures/              # finds Data/Textures, shows Grass.DDS
  touch $DEMO/mnt/data/NewFile; ls $DEMO/backing/Data   # names keep their case
  lsattr -d $DEMO/mnt/Data                 # 'F': casefolded, as Wine sees it
  build/foldfs fold Straße STRASSE         # the same key: the same name

Unmount with:  umount $DEMO/mnt
MSG
