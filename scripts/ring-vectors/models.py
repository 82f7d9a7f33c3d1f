"""Independent Python models of the placement algorithms shoal-ring implements.

Written from the algorithm descriptions (not from the Rust code) so that a table produced here
and matched by the Rust crate is a real cross-check. The libmemcached and nutcracker models are
themselves checked against the real libraries/daemons by gen.py before anything is written.
"""

import bisect
import hashlib
import struct
import zlib

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF


# ---------------------------------------------------------------- deterministic keys

def memcached_keys(count, seed=0x5EED_0001):
    """`count` distinct valid memcached keys: printable ASCII 0x21..0x7e, no space or control
    character, length 1..250 (1 in 20 long, the rest 1..32 bytes). xorshift64* so any language can redo it."""
    x = seed
    seen = set()
    out = []

    def nxt():
        nonlocal x
        x ^= x >> 12
        x ^= (x << 25) & M64
        x ^= x >> 27
        return (x * 0x2545F4914F6CDD1D) & M64

    while len(out) < count:
        r = nxt()
        if r % 20 == 0:
            n = 33 + nxt() % 218  # 33..250
        else:
            n = 1 + nxt() % 32  # 1..32
        k = bytes(0x21 + nxt() % 94 for _ in range(n))
        if k not in seen:
            seen.add(k)
            out.append(k)
    return out


# ---------------------------------------------------------------- hashes

def md5_le(data, word=0):
    d = hashlib.md5(data).digest()
    return int.from_bytes(d[4 * word:4 * word + 4], "little")


def one_at_a_time(data):
    """Jenkins one-at-a-time as libhashkit computes it: each byte goes through a C `char`,
    which is signed on x86-64, so bytes >= 0x80 are sign-extended before the add."""
    h = 0
    for b in data:
        v = b - 256 if b >= 128 else b
        h = (h + v) & M32
        h = (h + (h << 10)) & M32
        h ^= h >> 6
    h = (h + (h << 3)) & M32
    h ^= h >> 11
    h = (h + (h << 15)) & M32
    return h


def crc32(data):
    return zlib.crc32(data) & M32


def leveldb_hash(b):
    seed, m = 0xBC9F1D34, 0xC6A4A793
    h = (seed ^ (len(b) * m)) & M32
    i = 0
    while len(b) - i >= 4:
        h = (h + int.from_bytes(b[i:i + 4], "little")) & M32
        h = (h * m) & M32
        h ^= h >> 16
        i += 4
    rest = len(b) - i
    if rest == 3:
        h = (h + (b[i + 2] << 16)) & M32
    if rest >= 2:
        h = (h + (b[i + 1] << 8)) & M32
    if rest >= 1:
        h = (h + b[i]) & M32
        h = (h * m) & M32
        h ^= h >> 24
    return h


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & M64


def siphash24(k0, k1, data):
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rnd():
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & M64; v1 = _rotl(v1, 13); v1 ^= v0; v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & M64; v3 = _rotl(v3, 16); v3 ^= v2
        v0 = (v0 + v3) & M64; v3 = _rotl(v3, 21); v3 ^= v0
        v2 = (v2 + v1) & M64; v1 = _rotl(v1, 17); v1 ^= v2; v2 = _rotl(v2, 32)

    n = len(data)
    full = n - n % 8
    for i in range(0, full, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        rnd(); rnd()
        v0 ^= m
    last = int.from_bytes(data[full:], "little") | ((n & 0xFF) << 56)
    v3 ^= last
    rnd(); rnd()
    v0 ^= last
    v2 ^= 0xFF
    rnd(); rnd(); rnd(); rnd()
    return v0 ^ v1 ^ v2 ^ v3


def jump(key, n):
    """go-jump: float64 arithmetic, truncation toward zero."""
    b, j = -1, 0
    while j < n:
        b = j
        key = (key * 2862933555777941757 + 1) & M64
        j = int(float(b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


# ---------------------------------------------------------------- libmemcached / nutcracker

def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def ketama_points_weighted(weights):
    """points per server, float (binary32) math exactly as libmemcached/twemproxy write it:
    (uint32)(floor((float)(pct * 160 / 4 * (float)live + 0.0000000001))) * 4."""
    total = sum(weights)
    live = len(weights)
    out = []
    for w in weights:
        pct = f32(f32(w) / f32(total))
        x = f32(pct * 160.0)
        x = f32(x / 4.0)
        x = f32(x * f32(live))
        x = f32(x + 0.0000000001)  # added in double, then cast back to float
        out.append(int(x // 1) * 4)
    return out


class Continuum:
    """A sorted (value, server index) list; first point >= hash, wrapping. Ties keep insertion
    order (glibc's qsort is a merge sort for arrays this small, hence stable)."""

    def __init__(self, items):
        self.items = sorted(items, key=lambda t: t[0])
        self.values = [v for v, _ in self.items]

    def lookup(self, h):
        i = bisect.bisect_left(self.values, h)
        if i == len(self.values):
            i = 0
        return self.items[i][1]


def libmemcached_name(host, port):
    return host if port == 11211 else f"{host}:{port}"


def ketama_weighted(names, weights):
    """libmemcached KETAMA_WEIGHTED / twemproxy ketama: names are the point-name prefixes."""
    items = []
    for idx, (name, pts) in enumerate(zip(names, ketama_points_weighted(weights))):
        for i in range(pts // 4):
            s = f"{name}-{i}".encode()
            for w in range(4):
                items.append((md5_le(s, w), idx))
    return Continuum(items)


def ketama_compat(names, point_hash=md5_le):
    """libmemcached KETAMA without weights: 100 points, one hash per point."""
    items = []
    for idx, name in enumerate(names):
        for i in range(100):
            items.append((point_hash(f"{name}-{i}".encode()), idx))
    return Continuum(items)


def modula(n, key, key_hash=one_at_a_time):
    return 0 if n == 1 else key_hash(key) % n


# ---------------------------------------------------------------- libvbucket ketama

def libvbucket_ketama(authorities):
    """Returns (sorted authorities, continuum list of (point, sorted index))."""
    srv = sorted(authorities, key=lambda s: s.encode())
    items = []
    for idx, a in enumerate(srv):
        for hh in range(40):
            d = hashlib.md5(f"{a}-{hh}".encode()).digest()
            for k in range(4):
                items.append((int.from_bytes(d[4 * k:4 * k + 4], "little"), idx))
    items.sort(key=lambda t: t[0])
    return srv, items


def libketama_search(items, digest):
    """The libketama-style search libvbucket uses, modelled literally (pointers as indices)."""
    n = len(items)
    low, high = 0, n
    while True:
        mid = low + (high - low) // 2
        if mid == n:
            return items[0][1]
        midv = items[mid][0]
        prev = 0 if mid == 0 else items[mid - 1][0]
        if prev < digest <= midv:
            return items[mid][1]
        if midv < digest:
            low = mid + 1
        else:
            high = mid - 1
        if low > high:
            return items[0][1]


# ---------------------------------------------------------------- groupcache family

class GoRing:
    """golang/groupcache consistenthash (dup points kept, last-added wins the hashMap slot) or,
    with galaxy=True, galaxycache's (greater owner wins, points deduplicated)."""

    def __init__(self, owners, replicas, h, galaxy=False):
        self.h = h
        hash_map = {}
        keys = []
        for o in owners:
            for i in range(replicas):
                p = h(f"{i}{o}".encode())
                if galaxy:
                    if p in hash_map and hash_map[p] >= o:
                        continue
                else:
                    keys.append(p)
                hash_map[p] = o
        self.keys = sorted(hash_map) if galaxy else sorted(keys)
        self.map = hash_map

    def _find(self, hv):
        i = bisect.bisect_left(self.keys, hv)
        return 0 if i == len(self.keys) else i

    def get(self, key):
        return self.map[self.keys[self._find(self.h(key))]]

    def get_replicated(self, key, n, n_owners):
        """galaxycache GetReplicated."""
        out = []
        for r in range(min(n, n_owners)):
            if r == 0:
                hv = self.h(key)
            else:
                v, buf = r, bytearray()
                while v >= 0x80:
                    buf.append((v & 0x7F) | 0x80)
                    v >>= 7
                buf.append(v)
                hv = self.h(key + b"\xaa\xaa" + bytes(buf))
            i = self._find(hv)
            o = self.map[self.keys[i]]
            while o in out:
                i = 0 if i == len(self.keys) - 1 else i + 1
                o = self.map[self.keys[i]]
            out.append(o)
        return out


def vbucket_id(key, nbuckets):
    return ((crc32(key) >> 16) & 0x7FFF) & (nbuckets - 1)
