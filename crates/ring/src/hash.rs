//! The hash functions placement depends on, each exactly as the system it comes from
//! computes it. Placement must be bit-stable: never swap one of these for a "faster" hash.

use md5::{Digest, Md5};

/// The four little-endian `u32` words of `md5(data)`: ketama takes its points from them, and
/// its key hash is word 0.
pub fn md5_words(data: &[u8]) -> [u32; 4] {
    let d = Md5::digest(data);
    let w = |i: usize| u32::from_le_bytes([d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]]);
    [w(0), w(1), w(2), w(3)]
}

/// libmemcached's MD5 key hash: the first 4 bytes of `md5(data)`, little-endian.
pub fn md5_le(data: &[u8]) -> u32 {
    md5_words(data)[0]
}

/// Jenkins one-at-a-time, libhashkit's default hash (`hashkit_one_at_a_time`).
///
/// libhashkit reads each byte through a C `char`, signed on x86-64 and most other Linux
/// targets, so a byte >= 0x80 is sign-extended before it is added: `0xff` adds `0xffffffff`.
/// We do the same (checked against libmemcached 1.1.4 with bytes 0x80 and 0xff).
pub fn one_at_a_time(data: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &b in data {
        h = h.wrapping_add(b as i8 as i32 as u32);
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h.wrapping_add(h << 15)
}

/// CRC-32/IEEE (zlib's `crc32`, Go's `crc32.ChecksumIEEE`).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// leveldb's bloom-filter hash ("murmur-lite"), seed `0xbc9f1d34`, as photosrv's chash (via
/// go-shardedkv) computes it: bytes are unsigned, and the length is multiplied modulo 2^32.
pub fn leveldb_bloom(data: &[u8]) -> u32 {
    const SEED: u32 = 0xbc9f_1d34;
    const M: u32 = 0xc6a4_a793;
    let mut h = SEED ^ (data.len() as u32).wrapping_mul(M);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        h = h.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        h = h.wrapping_mul(M);
        h ^= h >> 16;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h = h.wrapping_add(u32::from(b) << (8 * i));
        }
        h = h.wrapping_mul(M);
        h ^= h >> 24;
    }
    h
}

/// SipHash-2-4 with key (0, 0), as photosrv hashes paths (`dchest/siphash.Hash(0, 0, p)`).
pub fn siphash24_zero(data: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher24::new_with_keys(0, 0);
    h.write(data);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_reference_vector() {
        // The SipHash paper's vector: key 00..0f, message 00..0e.
        use std::hash::Hasher;
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let mut h = siphasher::sip::SipHasher24::new_with_keys(k0, k1);
        h.write(&(0u8..15).collect::<Vec<_>>());
        assert_eq!(h.finish(), 0xa129ca6149be45e5);
        assert_eq!(siphash24_zero(b"images/hello.jpg"), 0xa553e98f66853dc4);
        assert_eq!(
            siphash24_zero(b"images/hotel/max500/hello.jpg"),
            0xb338996ad04d0a2d
        );
    }

    #[test]
    fn one_at_a_time_matches_libhashkit() {
        // Values from libmemcached 1.1.4's memcached_generate_hash_value(.., MEMCACHED_HASH_DEFAULT)
        // and (.., MEMCACHED_HASH_MD5), called through ctypes.
        assert_eq!(one_at_a_time(b"foo"), 596015325);
        assert_eq!(one_at_a_time(b"hello world"), 1045060183);
        assert_eq!(one_at_a_time(&[0x80, 0xff, 0x41]), 228287456);
        assert_eq!(md5_le(b"foo"), 3675831724);
        assert_eq!(md5_le(&[0x80, 0xff, 0x41]), 2123605344);
    }

    #[test]
    fn crc32_is_ieee() {
        assert_eq!(crc32(b"foo"), 2356372769);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn leveldb_bloom_handles_every_tail_length() {
        // Values from the independent Python model in scripts/ring-vectors/models.py.
        let got: Vec<u32> = ["", "a", "ab", "abc", "abcd", "abcde", "0shard1"]
            .iter()
            .map(|s| leveldb_bloom(s.as_bytes()))
            .collect();
        assert_eq!(got, LEVELDB_EXPECTED);
    }

    const LEVELDB_EXPECTED: [u32; 7] = [
        3164544308, 678337968, 967615280, 2237464879, 3116905299, 1104331373, 3308174253,
    ];
}
