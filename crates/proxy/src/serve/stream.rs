//! Streaming a reply: chunks are fetched in order with a bounded window of parallel gets, and
//! each chunk's slices go to the client as soon as that chunk is ready.
//!
//! A [`Fetcher`] keeps up to `window` chunk gets running ahead of the one being sent. Each get
//! is its own task, and shoal-cache runs every load as a flight in its own task too, so a
//! client that goes away cancels nothing another client waits on: dropping a fetcher only
//! stops the gets it started for itself, while the flights run on and fill the cache.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use shoal_cache::{Got, LoadError, Source};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::body::BodyError;
use super::plan::Plan;
use crate::chunk::Chunking;
use crate::meta::ObjectMeta;
use crate::store::Store;

type ChunkIter = Box<dyn Iterator<Item = u64> + Send>;
/// A chunk get, and whether the disk tier held the chunk before it started.
type ChunkTask = JoinHandle<(Result<Got, LoadError>, bool)>;

/// In-order chunk gets with a bounded look-ahead.
pub(crate) struct Fetcher {
    store: Arc<Store>,
    path: Arc<str>,
    meta: Arc<ObjectMeta>,
    upcoming: ChunkIter,
    running: VecDeque<(u64, ChunkTask)>,
    window: usize,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("path", &self.path)
            .field("running", &self.running.len())
            .finish()
    }
}

/// The distinct chunk indices a plan reads, in order (a chunk needed by two adjacent slices
/// is fetched once).
pub(crate) fn chunk_order(plan: &Plan, chunking: Chunking) -> ChunkIter {
    let spans: Vec<_> = plan.parts.iter().map(|p| p.span).collect();
    let mut last = None;
    Box::new(
        spans
            .into_iter()
            .flat_map(move |s| chunking.slices(s).map(|c| c.index))
            .filter(move |&i| {
                let new = last != Some(i);
                last = Some(i);
                new
            }),
    )
}

impl Fetcher {
    pub(crate) fn new(
        store: Arc<Store>,
        path: Arc<str>,
        meta: Arc<ObjectMeta>,
        upcoming: ChunkIter,
        window: usize,
    ) -> Self {
        Fetcher {
            store,
            path,
            meta,
            upcoming,
            running: VecDeque::new(),
            window: window.max(1),
        }
    }

    /// Start gets until `limit` are running.
    fn top_up(&mut self, limit: usize) {
        while self.running.len() < limit {
            let Some(index) = self.upcoming.next() else {
                break;
            };
            let store = self.store.clone();
            let key = store.chunk_key(&self.path, &self.meta, index);
            let task = tokio::spawn(async move {
                // Asked before the get: a load that then finds the chunk on disk is a disk hit.
                let on_disk = store.on_disk(&key);
                (store.chunk(&key).await, on_disk)
            });
            self.running.push_back((index, task));
        }
    }

    /// The next chunk in order; `None` when the plan needs no more.
    pub(crate) async fn next(&mut self) -> Option<(u64, Result<Bytes, LoadError>)> {
        self.top_up(self.window);
        let (index, task) = self.running.pop_front()?;
        // The popped get still runs while we await it: it counts against the window.
        self.top_up(self.window - 1);
        let (result, on_disk) = task.await.unwrap_or_else(|e| {
            let e = LoadError::Aborted(format!("chunk task failed: {e}").into());
            (Err(e), false)
        });
        Some((
            index,
            result.map(|got| {
                count_chunk(&got, on_disk);
                got.value
            }),
        ))
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        for (_, task) in &self.running {
            task.abort(); // the flight under it keeps running
        }
    }
}

/// Count a chunk by the tier it came from; `on_disk`: the disk tier held it before the get.
pub(crate) fn count_chunk(got: &Got, on_disk: bool) {
    let source = match got.source {
        Source::MainCache => "memory_main",
        Source::HotCache => "memory_hot",
        Source::Peer => "peer",
        Source::Load if got.joined => "joined",
        Source::Load if on_disk => "disk",
        _ => "origin",
    };
    crate::metrics::chunk(source);
}

/// Send the plan's bytes to `tx`, starting with `first` (the first chunk, already fetched
/// by the caller so that its failure could still become an error status).
pub(crate) async fn produce(
    plan: Plan,
    chunking: Chunking,
    mut fetcher: Fetcher,
    first: Option<(u64, Bytes)>,
    tx: mpsc::Sender<Result<Bytes, BodyError>>,
) {
    let mut current = first;
    let mut sent = 0u64;
    let send = |bytes: Bytes| {
        let tx = tx.clone();
        async move {
            let n = bytes.len() as u64;
            tx.send(Ok(bytes)).await.map(|()| n).map_err(|_| ())
        }
    };
    for part in &plan.parts {
        if let Some(h) = &part.header {
            match send(h.clone()).await {
                Ok(n) => sent += n,
                Err(()) => return count_out(sent),
            }
        }
        for slice in chunking.slices(part.span) {
            if current.as_ref().map(|c| c.0) != Some(slice.index) {
                current = match fetcher.next().await {
                    Some((index, Ok(bytes))) if index == slice.index => Some((index, bytes)),
                    Some((_, Err(e))) => {
                        tracing::warn!(error = %e, "aborting a response mid-stream");
                        let _ = tx.send(Err(BodyError(e.to_string()))).await;
                        return count_out(sent);
                    }
                    _ => {
                        let _ = tx.send(Err(BodyError("chunk order broken".into()))).await;
                        return count_out(sent);
                    }
                };
            }
            let Some((_, chunk)) = &current else {
                return count_out(sent);
            };
            let Some(bytes) = chunk.get(slice.start..slice.end) else {
                // A chunk shorter than its key says: never send a short or mixed reply.
                let _ = tx.send(Err(BodyError("short chunk".into()))).await;
                return count_out(sent);
            };
            match send(chunk.slice_ref(bytes)).await {
                Ok(n) => sent += n,
                Err(()) => return count_out(sent),
            }
        }
    }
    if let Some(t) = plan.trailer
        && let Ok(n) = send(t).await
    {
        sent += n;
    }
    count_out(sent)
}

/// The plan's bytes as buffers, when every chunk it reads is in `chunks` (in
/// [`chunk_order`]); `None` if one is missing or short.
pub(crate) fn assemble(
    plan: &Plan,
    chunking: Chunking,
    chunks: &[(u64, Bytes)],
) -> Option<std::collections::VecDeque<Bytes>> {
    let mut out = std::collections::VecDeque::new();
    let mut next = chunks.iter();
    let mut current: Option<&(u64, Bytes)> = None;
    for part in &plan.parts {
        out.extend(part.header.clone());
        for slice in chunking.slices(part.span) {
            if current.map(|c| c.0) != Some(slice.index) {
                current = next.next();
            }
            let (index, chunk) = current?;
            if *index != slice.index || chunk.len() < slice.end {
                return None;
            }
            out.push_back(chunk.slice(slice.start..slice.end));
        }
    }
    out.extend(plan.trailer.clone());
    count_out(out.iter().map(|b| b.len() as u64).sum());
    Some(out)
}

fn count_out(bytes: u64) {
    crate::metrics::bytes_out(bytes);
}
