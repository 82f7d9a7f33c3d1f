//! Coalescing of gets: plain `get`/`gets` jobs that sit next to each other in one
//! connection's queue (from any clients) go out as one multi-key request, and its reply is
//! split back into one reply per job.
//!
//! memcached answers a multi-key get with the hits in the order the keys were named, then
//! `END`; walking the jobs' keys in that same order gives each job its own `VALUE`s, even
//! when two jobs name the same key (memcached then answers the key twice). This saves the
//! server a read and a `sendmsg` per request (memcached 1.6 writes each single-key get's
//! reply on its own) and the proxy a write per request.

use bytes::{BufMut, BytesMut};
use tokio::time::Instant;

use super::{Expect, Job, Reply};
use crate::ascii::{AsciiRequest, Get, Response};

/// Most keys in one merged request.
const MAX_KEYS: usize = 100;
/// Most bytes of one merged request line (memcached reads get lines of any length, but a
/// short line keeps one slow request from holding many).
const MAX_LINE: usize = 8 * 1024;

/// A job written and waiting for (the rest of) its reply, with the jobs merged into it.
#[derive(Debug)]
pub(super) struct InFlight {
    pub job: Job,
    /// Gets merged after `job` into one request (usually none).
    pub more: Vec<Job>,
    pub deadline: Instant,
    pub got: Reply,
    /// Some byte of its reply has arrived: it must not be re-sent.
    pub touched: bool,
    /// The bytes of its request on the wire.
    pub bytes: usize,
}

impl InFlight {
    fn new(job: Job, deadline: Instant) -> Self {
        let got = match job.expect {
            Expect::BinOne | Expect::BinUntilNoop => Reply::Binary(Vec::new()),
            _ => Reply::Ascii(Vec::new()),
        };
        Self {
            job,
            more: Vec::new(),
            deadline,
            got,
            touched: false,
            bytes: 0,
        }
    }

    /// Every job of the request.
    pub fn into_jobs(self) -> impl Iterator<Item = Job> {
        std::iter::once(self.job).chain(self.more)
    }

    /// Hands the complete reply to the job(s).
    pub fn answer(self) {
        if self.more.is_empty() {
            let _ = self.job.tx.send(Ok(self.got));
            return;
        }
        let els = match self.got {
            Reply::Ascii(els) => els,
            other => {
                for j in std::iter::once(self.job).chain(self.more) {
                    let _ = j.tx.send(Ok(other.clone()));
                }
                return;
            }
        };
        split(els, std::iter::once(self.job).chain(self.more));
    }
}

fn mergeable(job: &Job) -> Option<&Get> {
    job.get.as_ref().filter(|g| g.touch.is_none())
}

fn line_len(g: &Get) -> usize {
    g.keys.iter().map(|k| k.len() + 1).sum()
}

/// Appends the jobs' requests to `out`, merging runs of gets, and returns what is now in
/// flight, in order. Jobs nobody waits for any more are dropped unsent.
pub(super) fn encode_batch(
    jobs: impl Iterator<Item = Job>,
    out: &mut BytesMut,
    deadline: Instant,
) -> Vec<InFlight> {
    let mut sent: Vec<InFlight> = Vec::new();
    // The run of gets being merged: its first job's `cas`, its key count and line length.
    let mut run: Option<(bool, usize, usize)> = None;
    for job in jobs {
        if job.tx.is_closed() {
            continue;
        }
        if let (Some(g), Some((cas, keys, len)), Some(last)) =
            (mergeable(&job), run.as_mut(), sent.last_mut())
        {
            let extra = line_len(g);
            if g.cas == *cas && *keys + g.keys.len() <= MAX_KEYS && *len + extra <= MAX_LINE {
                *keys += g.keys.len();
                *len += extra;
                last.more.push(job);
                continue;
            }
        }
        if let Some(last) = sent.last_mut() {
            finish_run(last, out);
        }
        run = mergeable(&job).map(|g| (g.cas, g.keys.len(), line_len(g)));
        sent.push(InFlight::new(job, deadline));
    }
    if let Some(last) = sent.last_mut() {
        finish_run(last, out);
    }
    sent
}

/// Writes the request of `f`, its own bytes or the merged get line, and notes its size.
fn finish_run(f: &mut InFlight, out: &mut BytesMut) {
    let start = out.len();
    write_request(f, out);
    f.bytes = out.len() - start;
}

fn write_request(f: &InFlight, out: &mut BytesMut) {
    let Some(first) = f.job.get.as_ref() else {
        out.put_slice(&f.job.wire);
        return;
    };
    if f.more.is_empty() && !f.job.wire.is_empty() {
        out.put_slice(&f.job.wire);
        return;
    }
    out.put_slice(first.name().as_bytes());
    if let Some(t) = first.touch {
        out.put_slice(format!(" {t}").as_bytes());
    }
    for g in std::iter::once(first).chain(f.more.iter().filter_map(|j| j.get.as_ref())) {
        for k in &g.keys {
            out.put_u8(b' ');
            out.put_slice(k);
        }
    }
    out.put_slice(b"\r\n");
}

/// Splits a merged get's reply: each job gets its own hits and `END`; anything other than
/// hits and `END` (an error) goes to every job.
fn split(els: Vec<Response>, jobs: impl Iterator<Item = Job>) {
    let clean = els.last() == Some(&Response::End)
        && els[..els.len() - 1]
            .iter()
            .all(|e| matches!(e, Response::Value(_)));
    if !clean {
        for j in jobs {
            let _ = j.tx.send(Ok(Reply::Ascii(els.clone())));
        }
        return;
    }
    let mut values = els.into_iter().peekable();
    for j in jobs {
        let keys = j.get.as_ref().map(|g| &g.keys[..]).unwrap_or(&[]);
        let mut mine = Vec::with_capacity(keys.len() + 1);
        for k in keys {
            if let Some(Response::Value(v)) = values.peek()
                && v.key == *k
                && let Some(v) = values.next()
            {
                mine.push(v);
            }
        }
        mine.push(Response::End);
        let _ = j.tx.send(Ok(Reply::Ascii(mine)));
    }
}

/// The wire form of a get job, for a request sent alone.
pub(crate) fn encode_get(g: &Get) -> bytes::Bytes {
    let mut wire = BytesMut::with_capacity(8 + line_len(g));
    AsciiRequest::Get(g.clone()).encode(&mut wire);
    wire.freeze()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::ascii::Value;

    fn get(
        cas: bool,
        keys: &[&'static str],
    ) -> (Job, tokio::sync::oneshot::Receiver<super::super::JobResult>) {
        let g = Get {
            cas,
            touch: None,
            keys: keys
                .iter()
                .map(|k| Bytes::from_static(k.as_bytes()))
                .collect(),
        };
        Job::get(g)
    }

    fn val(k: &'static str) -> Response {
        Response::Value(Value {
            key: Bytes::from_static(k.as_bytes()),
            flags: 0,
            cas: None,
            data: Bytes::from_static(b"v"),
        })
    }

    #[test]
    fn adjacent_gets_go_out_as_one_line_and_come_back_split() {
        let (a, mut ra) = get(false, &["x", "y"]);
        let (b, mut rb) = get(false, &["x"]);
        let (c, mut rc) = get(true, &["z"]);
        let (d, _rd) = Job::new(Bytes::from_static(b"delete q\r\n"), Expect::One);
        let (e, mut re) = get(false, &["w"]);
        let mut out = BytesMut::new();
        let sent = encode_batch([a, b, c, d, e].into_iter(), &mut out, Instant::now());
        assert_eq!(&out[..], b"get x y x\r\ngets z\r\ndelete q\r\nget w\r\n");
        assert_eq!(sent.len(), 4);
        let mut it = sent.into_iter();
        let mut first = it.next().unwrap();
        first.got = Reply::Ascii(vec![val("x"), val("x"), Response::End]);
        first.answer();
        let want_a = Reply::Ascii(vec![val("x"), Response::End]);
        assert_eq!(ra.try_recv().unwrap().unwrap(), want_a);
        assert_eq!(rb.try_recv().unwrap().unwrap(), want_a);
        assert!(rc.try_recv().is_err() && re.try_recv().is_err());
    }

    #[test]
    fn an_error_reply_goes_to_every_merged_job() {
        let (a, mut ra) = get(false, &["x"]);
        let (b, mut rb) = get(false, &["y"]);
        let mut out = BytesMut::new();
        let mut sent = encode_batch([a, b].into_iter(), &mut out, Instant::now());
        let mut f = sent.remove(0);
        f.got = Reply::Ascii(vec![Response::ServerError(Bytes::from_static(b"oops"))]);
        f.answer();
        assert!(matches!(ra.try_recv(), Ok(Ok(Reply::Ascii(e))) if e.len() == 1));
        assert!(matches!(rb.try_recv(), Ok(Ok(Reply::Ascii(e))) if e.len() == 1));
    }
}
