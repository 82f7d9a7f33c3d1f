//! Numbers as memcached 1.6.18 reads them (`safe_strtoul`, `safe_strtol`, `safe_strtoull` over
//! the C library's `strto*`): leading white space and a sign are allowed, the digits may be
//! followed by white space and anything after it, 32-bit results are truncated from 64 bits
//! (`set k 0 0 4294967297` stores a 1-byte value), and a negative number is refused only
//! when it wraps to a value that looks negative as a signed 64-bit number.

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The common part of `strtoul`/`strtol`: sign, magnitude (saturating), and whether the
/// token ends well. `None` when no digit was read or garbage follows the digits.
fn scan(tok: &[u8]) -> Option<(bool, u128)> {
    let mut i = 0;
    while i < tok.len() && is_c_space(tok[i]) {
        i += 1;
    }
    let mut negative = false;
    if let Some(&s) = tok.get(i)
        && (s == b'+' || s == b'-')
    {
        negative = s == b'-';
        i += 1;
    }
    let start = i;
    let mut mag: u128 = 0;
    while let Some(&d) = tok.get(i) {
        if !d.is_ascii_digit() {
            break;
        }
        mag = mag.saturating_mul(10).saturating_add(u128::from(d - b'0'));
        // Anything past u64::MAX+1 overflows every strto* we emulate; stop growing.
        mag = mag.min(u128::from(u64::MAX) + 2);
        i += 1;
    }
    if i == start {
        return None;
    }
    match tok.get(i) {
        None => Some((negative, mag)),
        Some(&b) if is_c_space(b) => Some((negative, mag)),
        Some(_) => None,
    }
}

/// `safe_strtoull`: an unsigned 64-bit number.
pub(crate) fn strtoull(tok: &[u8]) -> Option<u64> {
    let (negative, mag) = scan(tok)?;
    let mag = u64::try_from(mag).ok()?; // ERANGE
    let v = if negative { mag.wrapping_neg() } else { mag };
    if negative && (v as i64) < 0 {
        return None;
    }
    Some(v)
}

/// `safe_strtoul` on a 64-bit host: read as `unsigned long`, then stored into 32 bits.
pub(crate) fn strtoul(tok: &[u8]) -> Option<u32> {
    strtoull(tok).map(|v| v as u32)
}

/// `safe_strtol` on a 64-bit host: read as `long`, then stored into 32 bits.
pub(crate) fn strtol(tok: &[u8]) -> Option<i32> {
    let (negative, mag) = scan(tok)?;
    let v: i64 = if negative {
        if mag > u128::from(i64::MAX as u64) + 1 {
            return None; // ERANGE
        }
        (mag as u64).wrapping_neg() as i64
    } else {
        i64::try_from(mag).ok()?
    };
    Some(v as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_like_memcached() {
        assert_eq!(strtoul(b"5"), Some(5));
        assert_eq!(strtoul(b"+5"), Some(5));
        assert_eq!(strtoul(b"\t5"), Some(5));
        assert_eq!(strtoul(b"5\tjunk"), Some(5));
        assert_eq!(strtoul(b"-0"), Some(0));
        assert_eq!(strtoul(b"-1"), None);
        assert_eq!(strtoul(b"4294967296"), Some(0));
        assert_eq!(strtoul(b"18446744073709551616"), None);
        assert_eq!(strtoul(b"5x"), None);
        assert_eq!(strtoul(b""), None);
        assert_eq!(strtoul(b"-"), None);
        assert_eq!(strtoull(b"18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn signed_like_memcached() {
        assert_eq!(strtol(b"-1"), Some(-1));
        assert_eq!(strtol(b"4294967297"), Some(1));
        assert_eq!(strtol(b"2147483648"), Some(i32::MIN));
        assert_eq!(strtol(b"99999999999999999999"), None);
        assert_eq!(strtol(b"-9223372036854775808"), Some(0));
        assert_eq!(strtol(b"-9223372036854775809"), None);
        assert_eq!(strtol(b"1x"), None);
    }
}
