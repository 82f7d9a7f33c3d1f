#!/usr/bin/env bash
# memcaslap, 90% get / 10% set, 100-byte values, on loopback:
#   direct to one memcached, through shoal memcache, and through nutcracker (twemproxy),
# the proxies over the same three memcached servers. Prints ops/s and the ratios.
# Usage: bench/memcache/run.sh [seconds per run, default 10] [concurrency, default 64]
set -euo pipefail
SECS=${1:-10}
CONC=${2:-64}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHOAL=$ROOT/target/release/shoal
for t in /usr/bin/memcached /usr/sbin/nutcracker /usr/bin/memcaslap; do
  [ -x "$t" ] || { echo "missing $t: run scripts/install-deps" >&2; exit 1; }
done
[ -x "$SHOAL" ] || cargo build --release -p shoal --locked --manifest-path "$ROOT/Cargo.toml"

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 250); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.02; done; echo "port $1 never opened" >&2; exit 1; }

BACK=()
for _ in 1 2 3; do
  p=$(port); memcached -l 127.0.0.1 -p "$p" -U 0 -t 1 -m 256 -u root & PIDS+=($!); BACK+=("$p")
done
DIRECT=$(port); memcached -l 127.0.0.1 -p "$DIRECT" -U 0 -t 1 -m 256 -u root & PIDS+=($!)
for p in "${BACK[@]}" "$DIRECT"; do wait_port "$p"; done

SP=$(port)
"$SHOAL" memcache --listen 127.0.0.1:"$SP" --conns 1 \
  --servers "127.0.0.1:${BACK[0]},127.0.0.1:${BACK[1]},127.0.0.1:${BACK[2]}" 2>/dev/null & PIDS+=($!)
NP=$(port)
cat > "$WORK/nutcracker.yml" <<YML
pool:
  listen: 127.0.0.1:$NP
  hash: md5
  distribution: ketama
  timeout: 5000
  servers:
   - 127.0.0.1:${BACK[0]}:1
   - 127.0.0.1:${BACK[1]}:1
   - 127.0.0.1:${BACK[2]}:1
YML
nutcracker -c "$WORK/nutcracker.yml" -s "$(port)" -o "$WORK/nutcracker.log" & PIDS+=($!)
wait_port "$SP"; wait_port "$NP"

cat > "$WORK/cfg" <<CFG
key
32 32 1
value
100 100 1
cmd
0 0.1
1 0.9
CFG

run() { # $1 = port; prints TPS
  timeout $((SECS + 30)) memcaslap -s 127.0.0.1:"$1" -F "$WORK/cfg" -t "${SECS}s" -c "$CONC" -T 2 -S 1h 2>&1 \
    | awk '/^Run time:/ { for (i = 1; i <= NF; i++) if ($i == "TPS:") print $(i+1) }' | tail -n1
}
D=$(run "$DIRECT"); S=$(run "$SP"); N=$(run "$NP")
echo "memcaslap ${SECS}s, ${CONC} conns, 90% get / 10% set, 100 B values (ops/s)"
echo "direct memcached: $D"
echo "shoal memcache:   $S"
echo "nutcracker:       $N"
python3 -c "d,s,n=map(float,('$D','$S','$N')); print(f'shoal/nutcracker = {s/n:.2f}   shoal/direct = {s/d:.2f}')"
