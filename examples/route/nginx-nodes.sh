#!/usr/bin/env bash
# Starts (or with `stop`, stops) the nine nginx WebDAV storage nodes examples/route/photosrv.cfg
# names, on 127.0.0.1 ports 9101-9103, 9201-9203, 9301-9303, under /tmp/shoal-route-example.
# Needs nginx and libnginx-mod-http-dav-ext (scripts/install-deps).
set -euo pipefail
base=/tmp/shoal-route-example
ports=(9101 9102 9103 9201 9202 9203 9301 9302 9303)
if [ "${1:-start}" = stop ]; then
  for p in "${ports[@]}"; do
    [ -f "$base/$p/nginx.pid" ] && kill "$(cat "$base/$p/nginx.pid")" 2>/dev/null || true
  done
  exit 0
fi
for p in "${ports[@]}"; do
  d="$base/$p"
  mkdir -p "$d/data" "$d/tmp" "$d/logs"
  cat > "$d/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
master_process off;   # one process, running as you (workers would run as nobody)
worker_processes 1;
error_log $d/logs/error.log warn;
pid $d/nginx.pid;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $d/tmp/body;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:$p;
    root $d/data;
    location / {
      dav_methods PUT DELETE MKCOL;
      dav_ext_methods PROPFIND OPTIONS;
      create_full_put_path on;
    }
  }
}
CONF
  [ -f "$d/nginx.pid" ] && kill -0 "$(cat "$d/nginx.pid")" 2>/dev/null || /usr/sbin/nginx -p "$d" -c "$d/nginx.conf"
done
echo "nine storage nodes up under $base"
