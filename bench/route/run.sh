#!/usr/bin/env bash
# GET through `shoal route` vs straight from the nginx WebDAV storage node behind it, with wrk,
# on loopback: one 1 MiB file, then 100 different 4 KiB files. One shard, one replica (the
# same nginx serves both runs), so the ratio is the router's cost. Prints requests/s, the
# ratio (target >= 0.90) and the load average, which matters on a shared 2-core machine.
# Usage: bench/route/run.sh [seconds per run, default 5] [connections, default 32]
# PERF_OUT=FILE also records a perf profile of the router during its 4 KiB run.
set -euo pipefail
SECS=${1:-5}
CONNS=${2:-32}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHOAL=${SHOAL:-$ROOT/target/release/shoal}
for t in /usr/sbin/nginx /usr/bin/wrk; do
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
RUST_LOG=warn "$SHOAL" route -c "$WORK/route.cfg" --dc bench --listen 127.0.0.1:"$RP" \
  --admin-listen 127.0.0.1:"$AP" 2>"$WORK/route.log" & PIDS+=($!)
ROUTER=$!
wait_port "$NP"; wait_port "$RP"

cat > "$WORK/small.lua" <<'LUA'
local i = 0
request = function()
  i = (i + 1) % 100
  return wrk.format(nil, "/small/" .. i .. ".bin")
end
LUA

run() { # $1 = port, $2 = path or "small"; prints requests/s
  local args=(-t2 -c"$CONNS" -d"${SECS}s" --timeout 5s)
  if [ "$2" = small ]; then
    timeout $((SECS + 20)) wrk "${args[@]}" -s "$WORK/small.lua" "http://127.0.0.1:$1/"
  else
    timeout $((SECS + 20)) wrk "${args[@]}" "http://127.0.0.1:$1$2"
  fi | awk '/^Requests\/sec:/ { print $2 } /Non-2xx/ { print "non-2xx answers: " $0 > "/dev/stderr" }'
}
# Warm both paths (page cache, pooled connections) before measuring.
curl -fsS -o /dev/null "http://127.0.0.1:$RP/big.bin"
curl -fsS -o /dev/null "http://127.0.0.1:$RP/small/1.bin"

echo "wrk ${SECS}s per run, 2 threads, ${CONNS} connections, loopback; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
D1=$(run "$NP" /big.bin); R1=$(run "$RP" /big.bin)
D4=$(run "$NP" small)
if [ -n "${PERF_OUT:-}" ]; then # profile the router during its 4 KiB run: PERF_OUT=perf.data
  perf record -g -p "$ROUTER" -o "$PERF_OUT" -- sleep "$SECS" 2>/dev/null & PERF=$!
fi
R4=$(run "$RP" small)
[ -z "${PERF:-}" ] || wait "$PERF" || true
printf '%-18s %14s %14s %8s\n' "GET" "direct req/s" "route req/s" "ratio"
python3 - "$D1" "$R1" "$D4" "$R4" <<'PY'
import sys
d1, r1, d4, r4 = map(float, sys.argv[1:])
for name, d, r in (("1 MiB file", d1, r1), ("4 KiB files (100)", d4, r4)):
    print(f"{name:<18} {d:14.0f} {r:14.0f} {r/d:8.2f}")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
