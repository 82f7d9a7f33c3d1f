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


def high_byte_keys(count, seed=0x5EED_0080):
    """`count` distinct memcached keys that each hold bytes >= 0x80, as valid UTF-8 (the tables are
    text; every byte from 0x80 to 0xf4 can appear): printable ASCII mixed with code points of
    two, three and four UTF-8 bytes, at most 250 bytes. Same xorshift64* as memcached_keys."""
    x = seed
    seen = set()
    out = []

    def nxt():
        nonlocal x
        x ^= x >> 12
        x ^= (x << 25) & M64
        x ^= x >> 27
        return (x * 0x2545F4914F6CDD1D) & M64

    ranges = [(0x21, 0x7E), (0xA1, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF)]
    while len(out) < count:
        n = 1 + nxt() % 24
        chars = []
        for _ in range(n):
            lo, hi = ranges[nxt() % len(ranges)]
            chars.append(chr(lo + nxt() % (hi - lo + 1)))
        k = "".join(chars).encode()
        if len(k) <= 250 and max(k) >= 0x80 and k not in seen:
            seen.add(k)
            out.append(k)
    return out


def hash_tag_keys(count, seed=0x5EED_7A65):
    """`count` distinct printable keys with `{}` and `:` tags in the places twemproxy's hash_tag
    treats differently: `user:{N}:x`, empty tags, unclosed tags, a closing byte first, two
    tags."""
    x = seed
    out = []
    seen = set()

    def nxt():
        nonlocal x
        x ^= x >> 12
        x ^= (x << 25) & M64
        x ^= x >> 27
        return (x * 0x2545F4914F6CDD1D) & M64

    forms = ["user:{%d}:x", "{%d}", "{%d}tail", "a{}b{%d}", "x{%d", "}%d{", "{%d}{7}",
             "%d:{}:", "{:%d:}", "::%d", "k%d{", "k%d}", "{{%d}}", "post:%d:comments"]
    while len(out) < count:
        k = (forms[nxt() % len(forms)] % (nxt() % 100000)).encode()
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


# ---------------------------------------------------------------- twemproxy hashes
# Written from twemproxy's src/hashkit/nc_*.c. `char` is signed on x86-64: where the C code
# widens key[x] itself (not through uint8_t), bytes >= 0x80 are sign-extended.

def _schar32(b):
    return (b - 256) & M32 if b >= 128 else b


def _crc16_table():
    """CRC-16/XMODEM's table (polynomial 0x1021, not reflected), as nutcracker 0.5.0 has it."""
    tab = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = (c << 1) ^ 0x1021 if c & 0x8000 else c << 1
        tab.append(c & 0xFFFF)
    return tab


_CRC16 = _crc16_table()


def tw_crc16(data):
    """nutcracker 0.5.0's hash_crc16: `crc = (crc << 8) ^ tab[((crc >> 8) ^ key[x]) & 0xff]`
    in a uint32_t that is never cut to 16 bits, so it returns up to 32 bits. (Later twemproxy
    sources replaced it with the kernel's CRC-16; the real 0.5.0 binary computes this one.)"""
    crc = 0
    for b in data:
        crc = ((crc << 8) & M32) ^ _CRC16[((crc >> 8) ^ b) & 0xFF]
    return crc


def tw_crc32(data):
    return (crc32(data) >> 16) & 0x7FFF


def tw_fnv1_64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = (h * 0x100000001B3) & M64
        h ^= (b - 256) & M64 if b >= 128 else b  # (uint64_t)key[x]
    return h & M32


def tw_fnv1a_64(data):
    h = 0xCBF29CE484222325 & M32  # (uint32_t) FNV_64_INIT
    for b in data:
        h ^= _schar32(b)
        h = (h * (0x100000001B3 & M32)) & M32
    return h


def tw_fnv1_32(data):
    h = 2166136261
    for b in data:
        h = (h * 16777619) & M32
        h ^= _schar32(b)
    return h


def tw_fnv1a_32(data):
    h = 2166136261
    for b in data:
        h ^= _schar32(b)
        h = (h * 16777619) & M32
    return h


def tw_hsieh(data):
    if not data:
        return 0

    def g16(i):
        return data[i] | (data[i + 1] << 8)

    h = 0
    n = len(data)
    i = 0
    for _ in range(n >> 2):
        h = (h + g16(i)) & M32
        tmp = ((g16(i + 2) << 11) & M32) ^ h
        h = ((h << 16) & M32) ^ tmp
        i += 4
        h = (h + (h >> 11)) & M32
    rem = n & 3
    if rem == 3:
        h = (h + g16(i)) & M32
        h ^= (h << 16) & M32
        h ^= (_schar32(data[i + 2]) << 18) & M32
        h = (h + (h >> 11)) & M32
    elif rem == 2:
        h = (h + g16(i)) & M32
        h ^= (h << 11) & M32
        h = (h + (h >> 17)) & M32
    elif rem == 1:
        h = (h + data[i]) & M32
        h ^= (h << 10) & M32
        h = (h + (h >> 1)) & M32
    h ^= (h << 3) & M32
    h = (h + (h >> 5)) & M32
    h ^= (h << 4) & M32
    h = (h + (h >> 17)) & M32
    h ^= (h << 25) & M32
    h = (h + (h >> 6)) & M32
    return h


def tw_murmur(data):
    m = 0x5BD1E995
    n = len(data)
    h = ((0xDEADBEEF * n) & M32) ^ (n & M32)
    i = 0
    while n - i >= 4:
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & M32
        k ^= k >> 24
        k = (k * m) & M32
        h = (h * m) & M32
        h ^= k
        i += 4
    rest = n - i
    if rest == 3:
        h ^= data[i + 2] << 16
    if rest >= 2:
        h ^= data[i + 1] << 8
    if rest >= 1:
        h ^= data[i]
        h = (h * m) & M32
    h ^= h >> 13
    h = (h * m) & M32
    h ^= h >> 15
    return h


def _rot(x, k):
    return ((x << k) | (x >> (32 - k))) & M32


def tw_jenkins(data):
    """lookup3 hashlittle, initval 13, the byte-at-a-time path."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + 13) & M32
    k = data
    while n > 12:
        a = (a + k[0] + (k[1] << 8) + (k[2] << 16) + (k[3] << 24)) & M32
        b = (b + k[4] + (k[5] << 8) + (k[6] << 16) + (k[7] << 24)) & M32
        c = (c + k[8] + (k[9] << 8) + (k[10] << 16) + (k[11] << 24)) & M32
        a = (a - c) & M32; a ^= _rot(c, 4); c = (c + b) & M32
        b = (b - a) & M32; b ^= _rot(a, 6); a = (a + c) & M32
        c = (c - b) & M32; c ^= _rot(b, 8); b = (b + a) & M32
        a = (a - c) & M32; a ^= _rot(c, 16); c = (c + b) & M32
        b = (b - a) & M32; b ^= _rot(a, 19); a = (a + c) & M32
        c = (c - b) & M32; c ^= _rot(b, 4); b = (b + a) & M32
        n -= 12
        k = k[12:]
    if n == 0:
        return c
    # the fall-through switch: byte j goes to (a, b, c)[j // 4] at bit 8 * (j % 4)
    regs = [a, b, c]
    for j in range(n):
        regs[j // 4] = (regs[j // 4] + (k[j] << (8 * (j % 4)))) & M32
    a, b, c = regs
    c ^= b; c = (c - _rot(b, 14)) & M32
    a ^= c; a = (a - _rot(c, 11)) & M32
    b ^= a; b = (b - _rot(a, 25)) & M32
    c ^= b; c = (c - _rot(b, 16)) & M32
    a ^= c; a = (a - _rot(c, 4)) & M32
    b ^= a; b = (b - _rot(a, 14)) & M32
    c ^= b; c = (c - _rot(b, 24)) & M32
    return c


TWEMPROXY_HASHES = {
    "one_at_a_time": one_at_a_time,
    "md5": md5_le,
    "crc16": tw_crc16,
    "crc32": tw_crc32,
    "crc32a": crc32,
    "fnv1_64": tw_fnv1_64,
    "fnv1a_64": tw_fnv1a_64,
    "fnv1_32": tw_fnv1_32,
    "fnv1a_32": tw_fnv1a_32,
    "hsieh": tw_hsieh,
    "murmur": tw_murmur,
    "jenkins": tw_jenkins,
}


def tw_hash_tag(key, tag):
    """server_pool_idx: the part between the first tag[0] and the first tag[1] after it, when
    both are there and it is not empty; else the whole key."""
    s = key.find(tag[0:1])
    if s >= 0:
        e = key.find(tag[1:2], s + 1)
        if e >= 0 and e - s > 1:
            return key[s + 1:e]
    return key


def tw_sorted(names):
    """nutcracker's server order: shorter name first, then bytewise (string_compare)."""
    return sorted(range(len(names)), key=lambda i: (len(names[i]), names[i].encode()))


def tw_key_hash(key_hash, key):
    return 0 if not key else key_hash(key)


def tw_ketama(names, weights, key_hash, tag=None):
    """twemproxy ketama: MD5 points over the name-sorted servers, the key through key_hash."""
    order = tw_sorted(names)
    c = ketama_weighted([names[i] for i in order], [weights[i] for i in order])

    def place(k):
        if tag:
            k = tw_hash_tag(k, tag)
        return order[c.lookup(tw_key_hash(key_hash, k))]
    return place


def tw_modula(names, weights, key_hash, tag=None):
    """twemproxy modula: each server `weight` slots, name-sorted; slot hash % slots."""
    slots = [i for i in tw_sorted(names) for _ in range(weights[i])]

    def place(k):
        if tag:
            k = tw_hash_tag(k, tag)
        return slots[tw_key_hash(key_hash, k) % len(slots)]
    return place
