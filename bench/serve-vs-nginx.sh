#!/usr/bin/env bash
# shoal serve vs nginx proxy_cache + slice 1m, over the same nginx origin, on loopback.
# Prints requests/s of each, the ratio shoal/nginx and the CPU time each cache spent per
# request (user+sys of all its processes; it depends much less on the machine's load than
# requests/s) for: a hot 1 MiB object, hot 4 KiB objects, random 64 KiB ranges of a hot
# 100 MiB object, and cold misses (4 KiB objects never asked for before). Then shoal's peak
# RSS under range load with --memory 64MiB, against the target of memory + 64 MiB.
#
# Usage: bench/serve-vs-nginx.sh [seconds per run, default 10]
# PIN=1 pins both caches to CPU 1 (one worker each) and wrk and the origin to CPU 0, so each
# cache has a core of its own instead of competing with the load generator.
# Needs: nginx and wrk (scripts/install-deps), a release build (built here).
# Both caches get the same number of worker threads/processes (2, or 1 pinned) and memory.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
NGINX=/usr/sbin/nginx
command -v wrk >/dev/null || { echo "wrk missing: run scripts/install-deps" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx missing: run scripts/install-deps" >&2; exit 1; }
cargo build -q --release -p shoal
if [ "${PIN:-0}" = 1 ]; then ON0=(taskset -c 0); ON1=(taskset -c 1); WORKERS=1
else ON0=(); ON1=(); WORKERS=2; fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "failed (exit $rc); logs:" >&2
    tail -n 5 "$WORK"/origin/error.log "$WORK"/cache/error.log "$WORK"/shoal.log >&2 || true
  fi
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on port $1" >&2; exit 1
}

mkdir -p "$WORK/www/small" "$WORK/origin" "$WORK/cache" "$WORK/cache/store"
head -c $((1 << 20)) /dev/urandom >"$WORK/www/one.bin"
head -c $((100 << 20)) /dev/urandom >"$WORK/www/big.bin"
for i in $(seq 0 99); do head -c 4096 /dev/urandom >"$WORK/www/small/$i.bin"; done

ORIGIN_PORT=$(free_port); NGINX_PORT=$(free_port); SHOAL_PORT=$(free_port)
# As root, nginx's workers would drop to nobody and could not write the cache under $WORK.
user=""; [ "$(id -u)" = 0 ] && user="user root;"
common="$user daemon off; pid PREFIX/nginx.pid; error_log PREFIX/error.log warn;
events { worker_connections 4096; }"
temps="client_body_temp_path PREFIX/b; proxy_temp_path PREFIX/p; fastcgi_temp_path PREFIX/f;
  uwsgi_temp_path PREFIX/u; scgi_temp_path PREFIX/s;"

# The origin: plain nginx over the files.
cat >"$WORK/origin/nginx.conf" <<EOF
${common//PREFIX/$WORK/origin}
worker_processes 1;
http { access_log off; ${temps//PREFIX/$WORK/origin} sendfile on; tcp_nopush off;
  server { listen 127.0.0.1:$ORIGIN_PORT; root $WORK/www;
    # Every /cold/ path is a new object to the caches and the same 4 KiB file here.
    location /cold/ { rewrite ^ /small/0.bin break; } } }
EOF
# The peer: nginx proxy_cache + slice 1m (tcp_nopush off, or ranges stall 40 ms on loopback).
cat >"$WORK/cache/nginx.conf" <<EOF
${common//PREFIX/$WORK/cache}
worker_processes $WORKERS;
http { access_log off; ${temps//PREFIX/$WORK/cache} sendfile on; tcp_nopush off;
  proxy_cache_path $WORK/cache/store levels=1:2 keys_zone=c:64m max_size=2g inactive=1h use_temp_path=off;
  server { listen 127.0.0.1:$NGINX_PORT;
    location / {
      slice 1m;
      proxy_cache c;
      proxy_cache_key \$uri\$slice_range;
      proxy_set_header Range \$slice_range;
      proxy_cache_valid 200 206 1h;
      proxy_cache_lock on;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://127.0.0.1:$ORIGIN_PORT;
    } } }
EOF
"${ON0[@]}" "$NGINX" -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" & PIDS+=($!)
"${ON1[@]}" "$NGINX" -p "$WORK/cache" -c "$WORK/cache/nginx.conf" -e "$WORK/cache/error.log" & PIDS+=($!)
NGINX_PID=$!
start_shoal() { # $1 = memory budget
  TOKIO_WORKER_THREADS=$WORKERS "${ON1[@]}" target/release/shoal serve \
    --origin "http://127.0.0.1:$ORIGIN_PORT/" --listen "127.0.0.1:$SHOAL_PORT" \
    --admin-listen off --memory "$1" >"$WORK/shoal.log" 2>&1 & PIDS+=($!)
  SHOAL_PID=$!
}
start_shoal 1GiB
wait_port "$ORIGIN_PORT"; wait_port "$NGINX_PORT"; wait_port "$SHOAL_PORT"

cat >"$WORK/small.lua" <<'EOF'
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/small/" .. (counter % 100) .. ".bin")
end
EOF
cat >"$WORK/range.lua" <<'EOF'
math.randomseed(7)
request = function()
  local s = math.random(0, 104857600 - 65536)
  return wrk.format("GET", "/big.bin", {["Range"] = "bytes=" .. s .. "-" .. (s + 65535)})
end
EOF
for target in nginx shoal; do
  cat >"$WORK/cold-$target.lua" <<EOF
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/cold/$target/" .. tid .. "/" .. counter .. ".bin")
end
EOF
done

# Warm both caches with every object (whole reads), then measure.
for port in "$NGINX_PORT" "$SHOAL_PORT"; do
  curl -sf -o /dev/null "http://127.0.0.1:$port/one.bin"
  curl -sf -o /dev/null "http://127.0.0.1:$port/big.bin"
  for i in $(seq 0 99); do curl -sf -o /dev/null "http://127.0.0.1:$port/small/$i.bin"; done
done

TCK=$(getconf CLK_TCK)
# CPU ticks (user+sys) of a process and its children (nginx's workers).
ticks() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
# Runs wrk against the cache whose main process is $1; prints "requests/s CPU-us-per-request".
measure() {
  local pid=$1 c0 c1 out rps
  shift
  c0=$(ticks "$pid")
  out=$("${ON0[@]}" wrk -t2 -c64 -d"${SECS}s" "$@")
  c1=$(ticks "$pid")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  python3 -c "r=float('$rps'); print(f'{r:.0f} {($c1-$c0)/$TCK/max(1.0, r*$SECS)*1e6:.1f}')"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)$([ "${PIN:-0}" = 1 ] && echo ", pinned: caches on CPU 1, wrk and origin on CPU 0")"
printf '%-26s %10s %10s %7s %14s %14s\n' case "nginx r/s" "shoal r/s" ratio "nginx CPU/req" "shoal CPU/req"
for case in "hot 1 MiB|/one.bin|" "hot 4 KiB|/|$WORK/small.lua" \
  "64 KiB ranges of 100 MiB|/|$WORK/range.lua" "cold misses, 4 KiB|/|cold"; do
  IFS='|' read -r name path script <<<"$case"
  na=(); sa=()
  if [ "$script" = cold ]; then na=(-s "$WORK/cold-nginx.lua"); sa=(-s "$WORK/cold-shoal.lua")
  elif [ -n "$script" ]; then na=(-s "$script"); sa=(-s "$script"); fi
  read -r n ncpu < <(measure "$NGINX_PID" "${na[@]}" "http://127.0.0.1:$NGINX_PORT$path")
  read -r s scpu < <(measure "$SHOAL_PID" "${sa[@]}" "http://127.0.0.1:$SHOAL_PORT$path")
  printf '%-26s %10s %10s %7s %11s us %11s us\n' "$name" "$n" "$s" \
    "$(python3 -c "print(f'{$s/$n:.2f}x')")" "$ncpu" "$scpu"
done

# Memory: shoal with a 64 MiB budget under random 64 KiB ranges of the 100 MiB object (which
# does not fit), its RSS sampled every 100 ms.
kill "$SHOAL_PID"; wait "$SHOAL_PID" 2>/dev/null || true
start_shoal 64MiB
wait_port "$SHOAL_PORT"
"${ON0[@]}" wrk -t2 -c64 -d"${SECS}s" -s "$WORK/range.lua" "http://127.0.0.1:$SHOAL_PORT/" >/dev/null &
WRK=$!
peak=0
while kill -0 "$WRK" 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$SHOAL_PID/status")
  [ "$rss" -gt "$peak" ] && peak=$rss
  sleep 0.1
done
echo "shoal --memory 64MiB under range load: peak RSS $((peak / 1024)) MiB (target: at most 128 MiB)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
