#!/usr/bin/env bash
# GET through `shoal route` vs straight from the nginx WebDAV storage node behind it, with wrk,
# on loopback: one 1 MiB file, then 100 different 4 KiB files. One shard, one replica (the
# same nginx serves both runs), so the ratio is the router's cost. Prints requests/s, the
# ratio (target >= 0.90) and the load average, which matters on a shared 2-core machine.
# Usage: bench/route/run.sh [seconds per run, default 5] [connections, default 32]
# PIN=both (default) measures twice: unpinned (everything shares every CPU), then pinned with
#   taskset: the router alone on CPU 1, wrk and nginx on CPU 0 in both the direct and the
#   routed run (the router on its own host, as deployed). PIN=off or PIN=on runs one of them.
# ROUTE_ARGS="--runtimes 2" passes extra flags to `shoal route` (compare variants).
# REPEAT=3 (default) alternates direct and routed runs that many times and prints medians
#   and the range of the ratio, plus CPU time per request of nginx (direct runs) and of the
#   router (routed runs), which a busy machine disturbs far less than requests/s.
# PERF_OUT=FILE also records a perf profile of the router during its (last) 4 KiB run.
# HAPROXY=1 (default when /usr/sbin/haproxy is installed; Debian's haproxy) also measures
#   haproxy in the router's place, on the same CPUs (one thread per CPU, keep-alive to the
#   node, no splicing): what a mature C reverse proxy costs in the same spot. HAPROXY=0 skips it.
set -euo pipefail
SECS=${1:-5}
CONNS=${2:-32}
PIN=${PIN:-both}
case "$PIN" in off|on|both) ;; *) echo "PIN must be off, on or both" >&2; exit 1 ;; esac
if [ "$PIN" != off ] && [ "$(nproc)" -lt 2 ]; then
  echo "PIN=$PIN needs 2 CPUs; this machine has $(nproc)" >&2; exit 1
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHOAL=${SHOAL:-$ROOT/target/release/shoal}
for t in /usr/sbin/nginx /usr/bin/wrk /usr/bin/taskset; do
  [ -x "$t" ] || { echo "missing $t: run scripts/install-deps" >&2; exit 1; }
done
[ -x "$SHOAL" ] || cargo build --release -p shoal --locked --manifest-path "$ROOT/Cargo.toml"

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 250); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.02; done; echo "port $1 never opened" >&2; exit 1; }

# The storage node: the tests' WebDAV config, one worker, no access log.
NP=$(port)
mkdir -p "$WORK/nginx/data/small" "$WORK/nginx/tmp" "$WORK/nginx/logs"
cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
error_log $WORK/nginx/logs/error.log warn;
pid $WORK/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  client_max_body_size 0;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NP;
    root $WORK/nginx/data;
    location / {
      dav_methods PUT DELETE MKCOL;
      create_full_put_path on;
    }
  }
}
CONF
head -c $((1 << 20)) /dev/urandom > "$WORK/nginx/data/big.bin"
for i in $(seq 0 99); do head -c 4096 /dev/urandom > "$WORK/nginx/data/small/$i.bin"; done
/usr/sbin/nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>/dev/null & PIDS+=($!)
NGINX=$!

cat > "$WORK/route.cfg" <<CFG
<photosrv>
  chooser jump
  <bench>
    <shards>
      shard1 http://127.0.0.1:$NP
    </shards>
  </bench>
</photosrv>
CFG
RP=$(port); AP=$(port)
ROUTER=
# (Re)starts the router on the CPUs $1 and warms it. It is started under taskset, not pinned
# afterwards, so that it sizes its runtimes for the CPUs it has, as on a host of that size: a
# router sized for two CPUs and then squeezed onto one had runs at 1.6-2x its CPU per request.
start_router() {
  if [ -n "$ROUTER" ]; then kill "$ROUTER"; wait "$ROUTER" 2>/dev/null || true; fi
  # shellcheck disable=SC2086 # ROUTE_ARGS is a list of flags
  RUST_LOG=warn taskset -c "$1" "$SHOAL" route -c "$WORK/route.cfg" --dc bench \
    --listen 127.0.0.1:"$RP" --admin-listen 127.0.0.1:"$AP" ${ROUTE_ARGS:-} 2>"$WORK/route.log" &
  ROUTER=$!; PIDS+=("$ROUTER")
  wait_port "$RP"
  # Warm both paths (page cache, pooled connections) before measuring.
  curl -fsS -o /dev/null "http://127.0.0.1:$RP/big.bin"
  curl -fsS -o /dev/null "http://127.0.0.1:$RP/small/1.bin"
}
HAPROXY=${HAPROXY:-$([ -x /usr/sbin/haproxy ] && echo 1 || echo 0)}
HP=$(port); HAP=
# (Re)starts haproxy on the CPUs $1, one thread per CPU, as a plain HTTP reverse proxy.
start_haproxy() {
  if [ -n "$HAP" ]; then kill "$HAP"; wait "$HAP" 2>/dev/null || true; fi
  cat > "$WORK/haproxy.cfg" <<HCFG
global
  nbthread $(taskset -c "$1" nproc)
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend bench
  bind 127.0.0.1:$HP
  default_backend node
backend node
  http-reuse always
  server n1 127.0.0.1:$NP
HCFG
  taskset -c "$1" /usr/sbin/haproxy -f "$WORK/haproxy.cfg" -db 2>"$WORK/haproxy.log" &
  HAP=$!; PIDS+=("$HAP")
  wait_port "$HP"
  curl -fsS -o /dev/null "http://127.0.0.1:$HP/big.bin"
  curl -fsS -o /dev/null "http://127.0.0.1:$HP/small/1.bin"
}
wait_port "$NP"

cat > "$WORK/small.lua" <<'LUA'
local i = 0
request = function()
  i = (i + 1) % 100
  return wrk.format(nil, "/small/" .. i .. ".bin")
end
LUA

WRK_CPU=()
run() { # $1 = port, $2 = path or "small"; prints "requests/s requests"
  local args=(-t2 -c"$CONNS" -d"${SECS}s" --timeout 5s)
  if [ "$2" = small ]; then
    timeout $((SECS + 20)) "${WRK_CPU[@]}" wrk "${args[@]}" -s "$WORK/small.lua" "http://127.0.0.1:$1/"
  else
    timeout $((SECS + 20)) "${WRK_CPU[@]}" wrk "${args[@]}" "http://127.0.0.1:$1$2"
  fi | awk '/requests in/ { n = $1 } /^Requests\/sec:/ { r = $2 } /Non-2xx/ { print "non-2xx answers: " $0 > "/dev/stderr" }
            END { print r, n }'
}
load() { cut -d' ' -f1 /proc/loadavg; }
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + system clock ticks, all threads
ALL_CPUS=$(taskset -pc $$ | awk -F': ' '{ print $2 }')
# One line per run: mode, file, direct req/s and requests, routed req/s and requests, nginx
# CPU ticks in the direct run, router CPU ticks in the routed run, load average before, then
# haproxy's req/s, requests and CPU ticks ("- - -" without it). The runs alternate.
measure() { # $1 = off | on
  if [ "$1" = on ]; then
    taskset -a -pc 0 "$NGINX" >/dev/null; start_router 1 >&2; WRK_CPU=(taskset -c 0)
    [ "$HAPROXY" = 0 ] || start_haproxy 1 >&2
  else
    taskset -a -pc "$ALL_CPUS" "$NGINX" >/dev/null; start_router "$ALL_CPUS" >&2; WRK_CPU=()
    [ "$HAPROXY" = 0 ] || start_haproxy "$ALL_CPUS" >&2
  fi
  local what la c0 c1 c2 c3 d r h
  for what in /big.bin small; do
    for _ in $(seq 1 "$REPEAT"); do
      la=$(load)
      c0=$(cpu "$NGINX"); d=$(run "$NP" "$what"); c1=$(cpu "$NGINX")
      if [ -n "${PERF_OUT:-}" ] && [ "$what" = small ]; then # PERF_OUT=perf.data profiles the router
        perf record -g -p "$ROUTER" -o "$PERF_OUT" -- sleep "$SECS" 2>/dev/null & PERF=$!
      fi
      c2=$(cpu "$ROUTER"); r=$(run "$RP" "$what"); c2=$(($(cpu "$ROUTER") - c2))
      [ -z "${PERF:-}" ] || wait "$PERF" || true
      h="- - -"
      if [ "$HAPROXY" != 0 ]; then c3=$(cpu "$HAP"); h=$(run "$HP" "$what"); h="$h $(($(cpu "$HAP") - c3))"; fi
      echo "$1 $what $d $r $((c1 - c0)) $c2 $la $h"
    done
  done
}

REPEAT=${REPEAT:-3}
echo "wrk ${SECS}s per run, 2 threads, ${CONNS} connections, loopback, median of $REPEAT alternating runs; route flags: ${ROUTE_ARGS:-(none)}"
case "$PIN" in
  off) measure off ;;
  on) measure on ;;
  both) measure off; measure on ;;
esac > "$WORK/runs"
python3 - "$WORK/runs" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
tick_us = 1e6 / float(sys.argv[2])
print(f"{'':<9} {'GET':<18} {'direct req/s':>12} {'route req/s':>12} {'ratio':>6} {'ratio range':>11}"
      f" {'nginx us/req':>12} {'router us/req':>13} {'haproxy ratio':>13} {'haproxy us/req':>14}"
      f"  load avg (1 min) before each run")
for mode in ("off", "on"):
    for what, name in (("/big.bin", "1 MiB file"), ("small", "4 KiB files (100)")):
        rs = [r for r in rows if r[0] == mode and r[1] == what]
        if not rs:
            continue
        d = [float(r[2]) for r in rs]; rt = [float(r[4]) for r in rs]
        ratios = [b / a for a, b in zip(d, rt)]
        ngx = statistics.median(float(r[6]) * tick_us / float(r[3]) for r in rs)
        rtr = statistics.median(float(r[7]) * tick_us / float(r[5]) for r in rs)
        hap = hus = "-"
        if rs[0][9] != "-":
            hap = f"{statistics.median(float(r[9]) / float(r[2]) for r in rs):.2f}"
            hus = f"{statistics.median(float(r[11]) * tick_us / float(r[10]) for r in rs):.1f}"
        pin = "pinned" if mode == "on" else "unpinned"
        print(f"{pin:<9} {name:<18} {statistics.median(d):12.0f} {statistics.median(rt):12.0f}"
              f" {statistics.median(ratios):6.2f} {min(ratios):5.2f}-{max(ratios):<5.2f}"
              f" {ngx:12.1f} {rtr:13.1f} {hap:>13} {hus:>14}  {' '.join(r[8] for r in rs)}")
PY
