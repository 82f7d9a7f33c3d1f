#!/usr/bin/env bash
# memcaslap, 90% get / 10% set, 100-byte values, on loopback:
#   direct to one memcached, through shoal memcache, and through nutcracker (twemproxy),
# the proxies over the same three memcached servers. Prints ops/s, latency (memcaslap's
# average, and p50/p99 read off its log2 histogram: the upper edge of the bucket, so within a
# factor of 2) and the ratios, with the load average (other work on the machine skews them).
# Then the same mix with bench/mcload, a closed-loop client that keeps every latency, for
# exact p50/p99/p99.9.
# Usage: bench/memcache/run.sh [seconds per run, default 10] [concurrency, default 64]
# PIN=1 pins the proxies (shoal with one worker thread, nutcracker) to CPU 1 and every
# memcached and client to CPU 0, in every run: the proxy then has a core of its own, as on a
# host of its own, and no longer competes with the clients and servers it is measured against.
set -euo pipefail
SECS=${1:-10}
CONC=${2:-64}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${PIN:-0}" = 1 ]; then
  ON0=(taskset -c 0); ON1=(taskset -c 1); THREADS=(--threads 1)
else
  ON0=(); ON1=(); THREADS=()
fi
SHOAL=$ROOT/target/release/shoal
MCLOAD=$ROOT/target/release/mcload
for t in /usr/bin/memcached /usr/sbin/nutcracker /usr/bin/memcaslap; do
  [ -x "$t" ] || { echo "missing $t: run scripts/install-deps" >&2; exit 1; }
done
[ -x "$SHOAL" ] && [ -x "$MCLOAD" ] ||
  cargo build --release -p shoal -p mcload --locked --manifest-path "$ROOT/Cargo.toml"

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_port() { for _ in $(seq 1 250); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.02; done; echo "port $1 never opened" >&2; exit 1; }

BACK=()
for _ in 1 2 3; do
  p=$(port); "${ON0[@]}" memcached -l 127.0.0.1 -p "$p" -U 0 -t 1 -m 256 -u root & PIDS+=($!); BACK+=("$p")
done
DIRECT=$(port); "${ON0[@]}" memcached -l 127.0.0.1 -p "$DIRECT" -U 0 -t 1 -m 256 -u root & PIDS+=($!)
DIRECT_PID=$!
for p in "${BACK[@]}" "$DIRECT"; do wait_port "$p"; done

SP=$(port)
"${ON1[@]}" "$SHOAL" memcache --listen 127.0.0.1:"$SP" --conns 1 "${THREADS[@]}" \
  --servers "127.0.0.1:${BACK[0]},127.0.0.1:${BACK[1]},127.0.0.1:${BACK[2]}" 2>/dev/null & PIDS+=($!)
SHOAL_PID=$!
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
"${ON1[@]}" nutcracker -c "$WORK/nutcracker.yml" -s "$(port)" -o "$WORK/nutcracker.log" & PIDS+=($!)
NUT_PID=$!
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

run() { # $1 = port, $2 = name; prints "TPS avg p50 p99"
  timeout $((SECS + 30)) "${ON0[@]}" memcaslap -s 127.0.0.1:"$1" -F "$WORK/cfg" -t "${SECS}s" -c "$CONC" -T 2 -S 1h \
    > "$WORK/$2.out" 2>&1 || true
  python3 - "$WORK/$2.out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
tps = re.findall(r"TPS: (\d+)", text)
total = text.split("Total Statistics")[-1]
avg = re.search(r"Avg:\s+(\d+)", total)
hist = {}
for base, counts in re.findall(r"^\s+(\d+):((?:\s+\d+)+)\s*$", total, re.M):
    for i, c in enumerate(counts.split()):
        hist[int(base) + i] = int(c)
n = sum(hist.values())
def pct(q):
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if n and seen >= q * n:
            return 2 ** (b + 1)
    return 0
print(tps[-1] if tps else 0, avg.group(1) if avg else 0, pct(0.5), pct(0.99))
PY
}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)$([ "${PIN:-0}" = 1 ] && echo ", pinned: proxies on CPU 1, the rest on CPU 0")"
read -r D DA D50 D99 < <(run "$DIRECT" direct)
read -r S SA S50 S99 < <(run "$SP" shoal)
read -r N NA N50 N99 < <(run "$NP" nutcracker)
echo "memcaslap ${SECS}s, ${CONC} conns, 90% get / 10% set, 100 B values"
printf '%-18s %8s %8s %9s %9s\n' "" "ops/s" "avg us" "p50 <=us" "p99 <=us"
printf '%-18s %8s %8s %9s %9s\n' "direct memcached" "$D" "$DA" "$D50" "$D99"
printf '%-18s %8s %8s %9s %9s\n' "shoal memcache" "$S" "$SA" "$S50" "$S99"
printf '%-18s %8s %8s %9s %9s\n' "nutcracker" "$N" "$NA" "$N50" "$N99"
python3 -c "d,s,n=map(float,('$D','$S','$N')); print(f'shoal/nutcracker = {s/n:.2f}   shoal/direct = {s/d:.2f}')"
echo "mcload ${SECS}s, ${CONC} conns, same mix (exact latencies; CPU = that process's user+sys)"
printf '%-18s %8s %9s %9s %9s %12s\n' "" "ops/s" "p50 us" "p99 us" "p99.9 us" "CPU us/op"
for t in "direct memcached:$DIRECT:$DIRECT_PID" "shoal memcache:$SP:$SHOAL_PID" "nutcracker:$NP:$NUT_PID"; do
  IFS=: read -r NAME PORT PID <<<"$t"
  C0=$(cpu_ticks "$PID")
  read -r OPS P50 P99 P999 ERR < <(timeout $((SECS + 30)) "${ON0[@]}" "$MCLOAD" 127.0.0.1:"$PORT" "$CONC" "$SECS")
  C1=$(cpu_ticks "$PID")
  # CPU time of the server or proxy process per operation: it depends much less than
  # ops/s on what else the machine is doing.
  CPU=$(python3 -c "print(f'{($C1-$C0)/$TCK/max(1,$OPS*$SECS)*1e6:.2f}')")
  printf '%-18s %8s %9s %9s %9s %12s%s\n' "$NAME" "$OPS" "$P50" "$P99" "$P999" "$CPU" "$([ "$ERR" = 0 ] || echo "  ($ERR errors)")"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
