"""Make CRC-32 collisions on purpose, to pin how rings resolve two members on one point.

CRC-32 is affine over GF(2): for a fixed prefix and a 4-byte suffix X,
crc(prefix + X) = L(X) xor c. We measure L on the 32 unit vectors, solve for the X that gives
the wanted value, and retry with a different salt until X is printable ASCII.
"""

import itertools
import zlib

PRINTABLE = bytes(range(0x21, 0x7F))


def _solve(prefix, target):
    base = zlib.crc32(prefix + b"\0\0\0\0")
    cols = []
    for j in range(32):
        x = (1 << j).to_bytes(4, "little")
        cols.append(zlib.crc32(prefix + x) ^ base)
    # Gaussian elimination on 32 equations (one per output bit) over GF(2).
    rows = []
    for bit in range(32):
        coeffs = sum(((cols[j] >> bit) & 1) << j for j in range(32))
        rows.append([coeffs, ((target ^ base) >> bit) & 1])
    pivots = []
    r = 0
    for j in range(32):
        p = next((i for i in range(r, 32) if (rows[i][0] >> j) & 1), None)
        if p is None:
            continue
        rows[r], rows[p] = rows[p], rows[r]
        for i in range(32):
            if i != r and (rows[i][0] >> j) & 1:
                rows[i][0] ^= rows[r][0]
                rows[i][1] ^= rows[r][1]
        pivots.append((j, r))
        r += 1
    if r != 32:
        return None
    x = 0
    for j, row in pivots:
        x |= rows[row][1] << j
    return x.to_bytes(4, "little")


def printable_suffix(prefix, target):
    """A printable suffix S (salt + 4 bytes) with crc32(prefix + S) == target."""
    for salt in itertools.product(PRINTABLE, repeat=2):
        s = bytes(salt)
        x = _solve(prefix + s, target)
        if x is not None and all(b in PRINTABLE for b in x):
            assert zlib.crc32(prefix + s + x) == target
            return s + x
    raise RuntimeError("no printable suffix found")
