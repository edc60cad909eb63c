# FUSE requests of one mount, counted by the kernel: sourced by bench/wine.sh and bench/samba.sh
# for their --diagnose runs. Uses the kernel's fuse:fuse_request_send / fuse_request_end trace
# events (Linux 6.14 and later) in a private tracefs instance, filtered to the mount's
# connection, so that other FUSE mounts on the machine do not count.
#
#   fuse_trace_start MOUNTPOINT    start counting (returns 1 where the kernel has no such events)
#   fuse_trace_stop FILE           stop; FILE gets "OPCODE COUNT MEAN_US" lines, most frequent
#                                  first (MEAN_US: time from the request's send to its end)
#   fuse_trace_cleanup             remove the instance and unmount tracefs if we mounted it
FUSE_TRACE_ROOT=/sys/kernel/tracing
FUSE_TRACE_MOUNTED=0
FUSE_TRACE_INST=""
fuse_trace_start() {
  local dev
  if [ ! -d "$FUSE_TRACE_ROOT/events" ]; then
    mount -t tracefs nodev "$FUSE_TRACE_ROOT" 2>/dev/null && FUSE_TRACE_MOUNTED=1
  fi
  [ -d "$FUSE_TRACE_ROOT/events/fuse" ] || return 1
  FUSE_TRACE_INST=$FUSE_TRACE_ROOT/instances/foldfs-diag.$$
  mkdir -p "$FUSE_TRACE_INST"
  echo 65536 >"$FUSE_TRACE_INST/buffer_size_kb"
  # The connection is the mount's anonymous device (major 0): its minor number.
  dev=$(mountpoint -d "$1" | cut -d: -f2)
  for e in fuse_request_send fuse_request_end; do
    echo "connection == $dev" >"$FUSE_TRACE_INST/events/fuse/$e/filter"
    echo 1 >"$FUSE_TRACE_INST/events/fuse/$e/enable"
  done
  echo >"$FUSE_TRACE_INST/trace"
  echo 1 >"$FUSE_TRACE_INST/tracing_on"
}
fuse_trace_stop() {
  [ -n "$FUSE_TRACE_INST" ] || return 0
  echo 0 >"$FUSE_TRACE_INST/tracing_on"
  awk '
    /fuse_request_send:/ {
      for (i = 1; i <= NF; i++) { if ($i == "req") u = $(i + 1); if ($i == "opcode") op = $(i + 2) }
      t = $0; sub(/:.*/, "", t); n = split(t, a, " "); ts = a[n] + 0
      gsub(/[()]/, "", op); cnt[op]++; start[u] = ts; opof[u] = op
    }
    /fuse_request_end:/ {
      for (i = 1; i <= NF; i++) if ($i == "req") u = $(i + 1)
      t = $0; sub(/:.*/, "", t); n = split(t, a, " "); ts = a[n] + 0
      if (u in start) { sum[opof[u]] += ts - start[u]; done[opof[u]]++; delete start[u] }
    }
    END {
      for (op in cnt) printf "%s %d %.1f\n", op, cnt[op], done[op] ? sum[op] / done[op] * 1e6 : 0
    }' "$FUSE_TRACE_INST/trace" | sort -k2,2nr >"$1"
  for e in fuse_request_send fuse_request_end; do
    echo 0 >"$FUSE_TRACE_INST/events/fuse/$e/enable"
  done
  rmdir "$FUSE_TRACE_INST" 2>/dev/null || true
  FUSE_TRACE_INST=""
}
fuse_trace_cleanup() {
  if [ -n "$FUSE_TRACE_INST" ]; then
    echo 0 >"$FUSE_TRACE_INST/tracing_on" 2>/dev/null || true
    for e in fuse_request_send fuse_request_end; do
      echo 0 >"$FUSE_TRACE_INST/events/fuse/$e/enable" 2>/dev/null || true
    done
    rmdir "$FUSE_TRACE_INST" 2>/dev/null || true
  fi
  ((FUSE_TRACE_MOUNTED)) && umount "$FUSE_TRACE_ROOT" 2>/dev/null
  FUSE_TRACE_MOUNTED=0
}
