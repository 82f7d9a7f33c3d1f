//! Line framing and tokenizing as memcached 1.6.18 does it (`try_read_command_ascii`,
//! `tokenize_command`).

use std::ops::Range;

/// memcached's `KEY_MAX_LENGTH`.
pub const KEY_MAX: usize = 250;

/// Token ranges kept per line; memcached keeps 24 (`MAX_TOKENS`, counting its terminator).
/// Commands other than the get family, `stats` and meta flags never look past the 8th.
const KEPT: usize = 24;

/// The space-separated tokens of one command line. Only `' '` separates tokens (a tab is
/// part of a token), and runs of spaces count as one.
#[derive(Debug)]
pub(crate) struct Tokens {
    ranges: [Range<u32>; KEPT],
    kept: usize,
    count: usize,
}

impl Tokens {
    pub(crate) fn new(line: &[u8]) -> Self {
        let mut ranges: [Range<u32>; KEPT] = std::array::from_fn(|_| 0..0);
        let mut kept = 0;
        let mut count = 0;
        for r in iter(line) {
            if kept < KEPT {
                ranges[kept] = r.start as u32..r.end as u32;
                kept += 1;
            }
            count += 1;
        }
        Self {
            ranges,
            kept,
            count,
        }
    }

    /// How many tokens the line has.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The byte range of token `i`, if the line has it and it is among the kept ones.
    pub(crate) fn range(&self, i: usize) -> Option<Range<usize>> {
        (i < self.kept).then(|| self.ranges[i].start as usize..self.ranges[i].end as usize)
    }

    /// Token `i` of `line`, or the empty slice.
    pub(crate) fn get<'a>(&self, line: &'a [u8], i: usize) -> &'a [u8] {
        self.range(i).map_or(&[], |r| &line[r])
    }

    /// The last token of `line`.
    pub(crate) fn last<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        match self.count {
            0 => &[],
            n if n <= self.kept => self.get(line, n - 1),
            _ => iter(line).last().map_or(&[], |r| &line[r]),
        }
    }
}

/// Every token's byte range, in order.
pub(crate) fn iter(line: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < line.len() && line[pos] == b' ' {
            pos += 1;
        }
        if pos >= line.len() {
            return None;
        }
        let start = pos;
        pos = memchr::memchr(b' ', &line[start..]).map_or(line.len(), |i| start + i);
        Some(start..pos)
    })
}

/// memcached keeps reading a long line without a newline only when it is a multi-get:
/// at most 100 leading spaces, then `get ` or `gets `.
pub(crate) fn is_multiget(line: &[u8]) -> bool {
    let spaces = line.iter().take_while(|&&b| b == b' ').count();
    let rest = &line[spaces..];
    spaces <= 100 && (rest.starts_with(b"get ") || rest.starts_with(b"gets "))
}

/// The command part of a complete line `buf[..nl]` (`nl` is the index of `\n`): one trailing
/// `\r` is dropped when the line has more than one byte, and a NUL ends the line early (C
/// string functions stop there).
pub(crate) fn command_end(buf: &[u8], nl: usize) -> usize {
    let end = if nl > 1 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    memchr::memchr(0, &buf[..end]).unwrap_or(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_on_spaces_only() {
        let line = b"  get a\tb   c ";
        let t = Tokens::new(line);
        assert_eq!(t.len(), 3);
        assert_eq!(t.get(line, 0), b"get");
        assert_eq!(t.get(line, 1), b"a\tb");
        assert_eq!(t.last(line), b"c");
        assert_eq!(t.get(line, 7), b"");
    }

    #[test]
    fn many_tokens_are_counted_and_the_last_is_found() {
        let line: Vec<u8> = (0..40)
            .flat_map(|i| format!("k{i} ").into_bytes())
            .collect();
        let t = Tokens::new(&line);
        assert_eq!(t.len(), 40);
        assert_eq!(t.last(&line), b"k39");
        assert_eq!(t.range(30), None);
    }

    #[test]
    fn command_end_rules() {
        assert_eq!(command_end(b"\r\n", 1), 1); // memcached keeps a lone "\r"
        assert_eq!(command_end(b"a\r\n", 2), 1);
        assert_eq!(command_end(b"get a\0b\r\n", 8), 5);
        assert_eq!(command_end(b"get a\n", 5), 5);
    }

    #[test]
    fn multiget_prefix() {
        assert!(is_multiget(b"get a b"));
        assert!(is_multiget(b"   gets a"));
        assert!(!is_multiget(b"gat 0 a"));
        let mut far = vec![b' '; 101];
        far.extend_from_slice(b"get a");
        assert!(!is_multiget(&far));
    }
}
