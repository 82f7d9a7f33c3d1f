//! What bytes a reply carries, in order: the parts of a single-range, full or
//! `multipart/byteranges` reply (RFC 9110 §14.6), with their exact total length.

use bytes::Bytes;

use crate::range::ByteSpan;

/// One span of the object, preceded by an optional part header.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) header: Option<Bytes>,
    pub(crate) span: ByteSpan,
}

/// The body of a reply, before any chunk is read.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) parts: Vec<Part>,
    pub(crate) trailer: Option<Bytes>,
    pub(crate) content_length: u64,
}

impl Plan {
    /// One span, no framing (200 or single-part 206).
    pub(crate) fn single(span: ByteSpan) -> Self {
        Plan {
            parts: vec![Part { header: None, span }],
            trailer: None,
            content_length: span.len(),
        }
    }

    /// `multipart/byteranges` framing of `spans` (as nginx writes it: each part preceded by
    /// CRLF, boundary, Content-Type, Content-Range, blank line; closed by the final boundary).
    pub(crate) fn multipart(
        spans: &[ByteSpan],
        size: u64,
        content_type: Option<&str>,
        boundary: &str,
    ) -> Self {
        let mut content_length = 0;
        let parts = spans
            .iter()
            .map(|span| {
                let mut h = format!("\r\n--{boundary}\r\n");
                if let Some(ct) = content_type {
                    h.push_str(&format!("Content-Type: {ct}\r\n"));
                }
                h.push_str(&format!(
                    "Content-Range: {}\r\n\r\n",
                    span.content_range(size)
                ));
                content_length += h.len() as u64 + span.len();
                Part {
                    header: Some(Bytes::from(h)),
                    span: *span,
                }
            })
            .collect();
        let trailer = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        content_length += trailer.len() as u64;
        Plan {
            parts,
            trailer: Some(trailer),
            content_length,
        }
    }
}

/// A fresh multipart boundary: 20 random hex digits, which no sane object contains.
pub(crate) fn boundary() -> String {
    format!(
        "shoal{:016x}{:04x}",
        rand::random::<u64>(),
        rand::random::<u16>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_length_matches_framing() {
        let spans = [ByteSpan::new(0, 1), ByteSpan::new(5, 10)];
        let p = Plan::multipart(&spans, 10, Some("text/plain"), "B");
        let framing: u64 = p
            .parts
            .iter()
            .map(|x| x.header.as_ref().unwrap().len() as u64)
            .sum::<u64>()
            + p.trailer.as_ref().unwrap().len() as u64;
        assert_eq!(p.content_length, framing + 6);
        assert_eq!(
            &p.parts[1].header.as_ref().unwrap()[..],
            b"\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-9/10\r\n\r\n"
        );
        assert_eq!(&p.trailer.unwrap()[..], b"\r\n--B--\r\n");
    }
}
