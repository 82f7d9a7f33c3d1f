//! `Range` requests per RFC 9110 §14: parsing a `Range` header and deciding, for a
//! representation of a given size, which bytes a reply carries.
//!
//! # Choices where RFC 9110 leaves one open
//!
//! * **Malformed `bytes=` header → 416**, as nginx does (RFC 9110 §14.2 lets a server ignore
//!   such a header instead; answering 416 shows a broken client its bug at once). A
//!   range-spec whose last-pos is below its first-pos makes the header malformed
//!   (§14.1.1 calls it invalid). A unit other than `bytes` is ignored (§14.2: MUST ignore).
//! * **More than [`MAX_RANGES`] range-specs → 200 with the whole representation**, as Apache
//!   does past `MaxRanges`: answering is cheap for us, and a 10,000-part reply is never
//!   built. Parsing stops at the first spec over the cap, so the work is bounded too.
//! * **Overlapping or unsorted ranges are served as asked, in the client's order, unless the
//!   parts add up to more bytes than the representation has; then 200 with the whole
//!   representation** (nginx's rule). §14.3 lets a server ignore such sets: this bound keeps
//!   a reply at most the object's size plus part headers, so overlap can never amplify
//!   traffic, while honest clients asking for a few sorted ranges get exactly what they asked
//!   for. We do not coalesce: nginx does not either, and the differential tests compare with
//!   it byte for byte.
//! * **A zero-length representation**: a suffix range with a non-zero length is satisfiable
//!   (§14.1.1) but selects no bytes, and a 206 cannot describe an empty range, so the reply is
//!   200 with an empty body; every other range-spec is unsatisfiable → 416. (nginx answers 200
//!   to `bytes=0-` on an empty file; RFC 9110 says 416.)
//! * Unsatisfiable range-specs next to satisfiable ones are dropped (§14.1.1: the set is
//!   satisfiable if any of its specs is).

use std::fmt;

/// Most range-specs a `Range` header may list before the whole representation is sent
/// instead (Apache's `MaxRanges` default is 200; 100 is plenty for any real client).
pub const MAX_RANGES: usize = 100;

/// One `byte-range-spec` or `suffix-range` as written, before the size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` or, with `last == None`, `first-`.
    FromTo {
        /// First byte position.
        first: u64,
        /// Last byte position (inclusive), if given.
        last: Option<u64>,
    },
    /// `-length`: the last `length` bytes.
    Suffix(u64),
}

/// What a `Range` header asks for, before the size is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedRange {
    /// A unit other than `bytes`: the header is ignored.
    OtherUnit,
    /// More than [`MAX_RANGES`] specs: the header is ignored.
    TooMany,
    /// The specs in the client's order (at least one).
    Bytes(Vec<RangeSpec>),
}

/// The `Range` header is not valid RFC 9110 syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed Range header")]
pub struct MalformedRange;

/// A half-open byte span `[start, end)` of a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteSpan {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl ByteSpan {
    /// The span `[start, end)`.
    pub fn new(start: u64, end: u64) -> Self {
        debug_assert!(start <= end);
        ByteSpan { start, end }
    }

    /// Number of bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the span has no bytes.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// `Content-Range` value for this span of a `size`-byte representation.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end - 1, size)
    }
}

impl fmt::Display for ByteSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

/// The reply a `Range` header calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeReply {
    /// 200 with the whole representation.
    Full,
    /// 206 with these spans, in the client's order: one span is a single-part reply, more
    /// are `multipart/byteranges`.
    Partial(Vec<ByteSpan>),
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Parse a `Range` header value.
pub fn parse(value: &[u8]) -> Result<ParsedRange, MalformedRange> {
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return Err(MalformedRange);
    };
    let (unit, set) = (&value[..eq], &value[eq + 1..]);
    if !unit.eq_ignore_ascii_case(b"bytes") {
        // A token unit we do not know is ignored; anything else is garbage.
        return if !unit.is_empty() && unit.iter().all(|&b| is_tchar(b)) {
            Ok(ParsedRange::OtherUnit)
        } else {
            Err(MalformedRange)
        };
    }
    let mut specs = Vec::new();
    for element in set.split(|&b| b == b',') {
        let element = trim_ows(element);
        if element.is_empty() {
            continue; // RFC 9110 §5.6.1.2: empty list elements are allowed
        }
        if specs.len() == MAX_RANGES {
            return Ok(ParsedRange::TooMany);
        }
        specs.push(parse_spec(element)?);
    }
    if specs.is_empty() {
        return Err(MalformedRange);
    }
    Ok(ParsedRange::Bytes(specs))
}

fn parse_spec(s: &[u8]) -> Result<RangeSpec, MalformedRange> {
    let dash = s.iter().position(|&b| b == b'-').ok_or(MalformedRange)?;
    let (first, last) = (trim_ows(&s[..dash]), trim_ows(&s[dash + 1..]));
    if first.is_empty() {
        return Ok(RangeSpec::Suffix(number(last)?));
    }
    let first = number(first)?;
    let last = if last.is_empty() {
        None
    } else {
        let last = number(last)?;
        if last < first {
            return Err(MalformedRange);
        }
        Some(last)
    };
    Ok(RangeSpec::FromTo { first, last })
}

/// 1*DIGIT, saturating: a position past `u64::MAX` is past any representation's end.
fn number(s: &[u8]) -> Result<u64, MalformedRange> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(MalformedRange);
    }
    Ok(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The span a spec selects in a `size`-byte representation; `None` if unsatisfiable.
/// A suffix spec on an empty representation is satisfiable but selects nothing.
pub fn span_of(spec: RangeSpec, size: u64) -> Option<ByteSpan> {
    match spec {
        RangeSpec::FromTo { first, last } => {
            if first >= size {
                return None;
            }
            let last = last.map_or(size - 1, |l| l.min(size - 1));
            Some(ByteSpan::new(first, last + 1))
        }
        RangeSpec::Suffix(0) => None,
        RangeSpec::Suffix(n) => Some(ByteSpan::new(size.saturating_sub(n), size)),
    }
}

/// Decide the reply to a `Range` header value for a `size`-byte representation.
pub fn evaluate(value: &[u8], size: u64) -> RangeReply {
    match parse(value) {
        Err(MalformedRange) => RangeReply::Unsatisfiable,
        Ok(ParsedRange::OtherUnit | ParsedRange::TooMany) => RangeReply::Full,
        Ok(ParsedRange::Bytes(specs)) => evaluate_specs(&specs, size),
    }
}

/// [`evaluate`] for specs already parsed.
pub fn evaluate_specs(specs: &[RangeSpec], size: u64) -> RangeReply {
    let spans: Vec<ByteSpan> = specs.iter().filter_map(|s| span_of(*s, size)).collect();
    if spans.is_empty() {
        return RangeReply::Unsatisfiable;
    }
    if size == 0 {
        return RangeReply::Full;
    }
    let total = spans
        .iter()
        .fold(0u64, |sum, s| sum.saturating_add(s.len()));
    if spans.len() > 1 && total > size {
        return RangeReply::Full;
    }
    RangeReply::Partial(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(h: &str, size: u64) -> RangeReply {
        evaluate(h.as_bytes(), size)
    }

    fn spans(v: &[(u64, u64)]) -> RangeReply {
        RangeReply::Partial(v.iter().map(|&(a, b)| ByteSpan::new(a, b)).collect())
    }

    #[test]
    fn rfc_9110_examples() {
        // §14.1.2, for a 10000-byte representation.
        assert_eq!(eq("bytes=0-499"), spans(&[(0, 500)]));
        assert_eq!(eq("bytes=500-999"), spans(&[(500, 1000)]));
        assert_eq!(eq("bytes=-500"), spans(&[(9500, 10000)]));
        assert_eq!(eq("bytes=9500-"), spans(&[(9500, 10000)]));
        assert_eq!(eq("bytes=0-0,-1"), spans(&[(0, 1), (9999, 10000)]));
        assert_eq!(eq("bytes= 0-999, 4500-5499, -1000"), {
            spans(&[(0, 1000), (4500, 5500), (9000, 10000)])
        });
        assert_eq!(
            eq("bytes=500-600,601-999"),
            spans(&[(500, 601), (601, 1000)])
        );
        fn eq(h: &str) -> RangeReply {
            eval(h, 10000)
        }
    }

    #[test]
    fn clamps_and_unsatisfiable() {
        assert_eq!(eval("bytes=0-99999", 10), spans(&[(0, 10)]));
        assert_eq!(eval("bytes=-99999", 10), spans(&[(0, 10)]));
        assert_eq!(eval("bytes=10-", 10), RangeReply::Unsatisfiable);
        assert_eq!(eval("bytes=-0", 10), RangeReply::Unsatisfiable);
        assert_eq!(eval("bytes=10-20,5-5", 10), spans(&[(5, 6)]));
        assert_eq!(
            eval("bytes=99999999999999999999999-", 10),
            RangeReply::Unsatisfiable
        );
        assert_eq!(
            eval("bytes=0-99999999999999999999999", 10),
            spans(&[(0, 10)])
        );
    }

    #[test]
    fn empty_representation() {
        assert_eq!(eval("bytes=-5", 0), RangeReply::Full);
        assert_eq!(eval("bytes=0-", 0), RangeReply::Unsatisfiable);
        assert_eq!(eval("bytes=-0", 0), RangeReply::Unsatisfiable);
    }

    #[test]
    fn malformed_is_416_and_other_units_are_ignored() {
        for h in [
            "bytes=",
            "bytes=,",
            "bytes=a-b",
            "bytes=5-3",
            "bytes=--1",
            "bytes=1-2-3",
            "=0-1",
            "bytes 0-1",
            "bytes=0x1-2",
            "bytes=+1-2",
        ] {
            assert_eq!(eval(h, 100), RangeReply::Unsatisfiable, "{h}");
        }
        assert_eq!(eval("items=0-1", 100), RangeReply::Full);
        assert_eq!(eval("BYTES=0-1", 100), spans(&[(0, 2)]));
        assert_eq!(eval("bytes=0-1,,2-3", 100), spans(&[(0, 2), (2, 4)]));
    }

    #[test]
    fn caps_on_count_and_overlap() {
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(eval(&many, 1000), RangeReply::Full);
        let ok = format!(
            "bytes={}",
            (0..MAX_RANGES)
                .map(|i| format!("{i}-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(matches!(eval(&ok, 1000), RangeReply::Partial(v) if v.len() == MAX_RANGES));
        // Overlap adding up to more than the object: whole object.
        assert_eq!(eval("bytes=0-9,0-9", 10), RangeReply::Full);
        // Overlap within the object's size is served as asked, in order.
        assert_eq!(eval("bytes=5-6,0-3", 10), spans(&[(5, 7), (0, 4)]));
        // A 10,000-part header is cut short while parsing.
        let huge = format!("bytes={}", vec!["1-1"; 10_000].join(","));
        assert_eq!(parse(huge.as_bytes()), Ok(ParsedRange::TooMany));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        /// A spec and how to write it (with optional whitespace around the list comma).
        fn spec(size: u64) -> impl Strategy<Value = RangeSpec> {
            let pos = prop_oneof![
                0..=size + 2,
                Just(0),
                Just(size.saturating_sub(1)),
                Just(size)
            ];
            prop_oneof![
                (pos.clone(), pos.clone()).prop_map(|(a, b)| RangeSpec::FromTo {
                    first: a.min(b),
                    last: Some(a.max(b))
                }),
                pos.clone().prop_map(|a| RangeSpec::FromTo {
                    first: a,
                    last: None
                }),
                pos.prop_map(RangeSpec::Suffix),
            ]
        }

        fn write(specs: &[RangeSpec], ows: &[bool]) -> String {
            let items: Vec<String> = specs
                .iter()
                .map(|s| match s {
                    RangeSpec::FromTo {
                        first,
                        last: Some(l),
                    } => format!("{first}-{l}"),
                    RangeSpec::FromTo { first, last: None } => format!("{first}-"),
                    RangeSpec::Suffix(n) => format!("-{n}"),
                })
                .collect();
            let mut out = String::from("bytes=");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(if ows[i % ows.len()] { " , " } else { "," });
                }
                out.push_str(item);
            }
            out
        }

        /// RFC 9110 §14.1.2 read literally: the set of byte positions a spec selects.
        fn selected(spec: RangeSpec, size: u64) -> Vec<u64> {
            (0..size)
                .filter(|&p| match spec {
                    RangeSpec::FromTo { first, last } => p >= first && last.is_none_or(|l| p <= l),
                    RangeSpec::Suffix(n) => p + n >= size,
                })
                .collect()
        }

        fn sizes() -> impl Strategy<Value = u64> {
            prop_oneof![Just(0u64), Just(1), Just(15), Just(16), Just(17), 0u64..80]
        }

        proptest! {
            #[test]
            fn spans_are_exactly_what_rfc_9110_selects(
                (size, specs) in sizes().prop_flat_map(|n| (Just(n), prop::collection::vec(spec(n), 1..6))),
                ows in prop::collection::vec(any::<bool>(), 1..4),
            ) {
                let header = write(&specs, &ows);
                let reply = evaluate(header.as_bytes(), size);
                let wanted: Vec<Vec<u64>> = specs
                    .iter()
                    .map(|s| selected(*s, size))
                    .filter(|sel| !sel.is_empty())
                    .collect();
                let satisfiable = specs.iter().any(|s| match *s {
                    RangeSpec::FromTo { first, .. } => first < size,
                    RangeSpec::Suffix(n) => n > 0,
                });
                let total: usize = wanted.iter().map(Vec::len).sum();
                match reply {
                    RangeReply::Unsatisfiable => prop_assert!(!satisfiable, "{header}"),
                    RangeReply::Full => prop_assert!(
                        satisfiable && (size == 0 || total as u64 > size),
                        "{header} {size}"
                    ),
                    RangeReply::Partial(spans) => {
                        prop_assert!(size > 0);
                        let got: Vec<Vec<u64>> =
                            spans.iter().map(|s| (s.start..s.end).collect()).collect();
                        prop_assert_eq!(got, wanted, "{}", header);
                        prop_assert!(spans.len() == 1 || total as u64 <= size);
                    }
                }
            }

            #[test]
            fn never_panics_on_garbage(h in "[ -~]{0,64}", size in any::<u64>()) {
                if let RangeReply::Partial(spans) = evaluate(h.as_bytes(), size) {
                    for s in spans {
                        prop_assert!(s.start < s.end && s.end <= size);
                    }
                }
            }
        }
    }
}
