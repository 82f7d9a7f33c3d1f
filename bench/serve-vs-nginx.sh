#!/usr/bin/env bash
# shoal serve vs nginx proxy_cache + slice 1m, over the same nginx origin, on loopback.
# Prints requests/s of each and the ratio shoal/nginx for: a hot 1 MiB object, hot 4 KiB
# objects, random 64 KiB ranges of a hot 100 MiB object.
#
# Usage: bench/serve-vs-nginx.sh [seconds per run, default 10]
# Needs: nginx and wrk (scripts/install-deps), a release build (built here).
# Both caches get the same number of worker threads/processes (2) and the same memory.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
NGINX=/usr/sbin/nginx
command -v wrk >/dev/null || { echo "wrk missing: run scripts/install-deps" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx missing: run scripts/install-deps" >&2; exit 1; }
cargo build -q --release -p shoal

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
  server { listen 127.0.0.1:$ORIGIN_PORT; root $WORK/www; } }
EOF
# The peer: nginx proxy_cache + slice 1m (tcp_nopush off, or ranges stall 40 ms on loopback).
cat >"$WORK/cache/nginx.conf" <<EOF
${common//PREFIX/$WORK/cache}
worker_processes 2;
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
"$NGINX" -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" & PIDS+=($!)
"$NGINX" -p "$WORK/cache" -c "$WORK/cache/nginx.conf" -e "$WORK/cache/error.log" & PIDS+=($!)
TOKIO_WORKER_THREADS=2 target/release/shoal serve --origin "http://127.0.0.1:$ORIGIN_PORT/" \
  --listen "127.0.0.1:$SHOAL_PORT" --admin-listen off --memory 1GiB >"$WORK/shoal.log" 2>&1 & PIDS+=($!)
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

# Warm both caches with every object (whole reads), then measure.
for port in "$NGINX_PORT" "$SHOAL_PORT"; do
  curl -sf -o /dev/null "http://127.0.0.1:$port/one.bin"
  curl -sf -o /dev/null "http://127.0.0.1:$port/big.bin"
  for i in $(seq 0 99); do curl -sf -o /dev/null "http://127.0.0.1:$port/small/$i.bin"; done
done

rps() { wrk -t2 -c64 -d"${SECS}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
printf '%-28s %12s %12s %8s\n' case nginx shoal ratio
for case in "hot 1 MiB|/one.bin|" "hot 4 KiB|/|$WORK/small.lua" "64 KiB ranges of 100 MiB|/|$WORK/range.lua"; do
  IFS='|' read -r name path script <<<"$case"
  args=(); [ -n "$script" ] && args=(-s "$script")
  n=$(rps "${args[@]}" "http://127.0.0.1:$NGINX_PORT$path")
  s=$(rps "${args[@]}" "http://127.0.0.1:$SHOAL_PORT$path")
  printf '%-28s %12s %12s %8s\n' "$name" "$n" "$s" "$(python3 -c "print(f'{$s/$n:.2f}x')")"
done
