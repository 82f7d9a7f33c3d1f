//! Test doubles shared by the integration tests: a counting loader and in-process peers.
#![allow(dead_code)] // each test file uses a different subset

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use shoal_cache::{
    BoxFuture, FetchMode, GetOptions, Group, LoadError, Loaded, Loader, Peer, Peers, loader_fn,
};

/// The value the counting loader produces for `key`.
pub fn value_of(key: &[u8]) -> Bytes {
    let mut v = b"value of ".to_vec();
    v.extend_from_slice(key);
    Bytes::from(v)
}

/// A loader that counts its calls, takes `delay` (paused time in tests) and answers
/// `value_of(key)`, `NotFound` for keys starting with `missing`, and a retryable error for
/// keys starting with `fail`.
pub fn counting_loader(delay: Duration) -> (impl Loader, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let loader = loader_fn(move |key: Bytes| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if key.starts_with(b"missing") {
                Err(LoadError::NotFound)
            } else if key.starts_with(b"fail") {
                Err(LoadError::loader("origin unavailable", true))
            } else {
                Ok(Loaded::new(value_of(&key)))
            }
        }
    });
    (loader, calls)
}

pub fn calls(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

type Reply = dyn Fn(&[u8]) -> Result<Loaded, LoadError> + Send + Sync;

/// A peer that answers from a closure and counts fetches.
pub struct ScriptedPeer {
    pub fetches: AtomicUsize,
    delay: Duration,
    reply: Box<Reply>,
}

impl ScriptedPeer {
    pub fn new(
        reply: impl Fn(&[u8]) -> Result<Loaded, LoadError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Self::slow(Duration::ZERO, reply)
    }

    pub fn slow(
        delay: Duration,
        reply: impl Fn(&[u8]) -> Result<Loaded, LoadError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(ScriptedPeer {
            fetches: AtomicUsize::new(0),
            delay,
            reply: Box::new(reply),
        })
    }

    /// A peer that has every key, with `value_of(key)`.
    pub fn serving() -> Arc<Self> {
        Self::new(|key| Ok(Loaded::new(value_of(key))))
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Peer for ScriptedPeer {
    fn id(&self) -> &str {
        "scripted"
    }

    fn fetch<'a>(
        &'a self,
        _group: &'a str,
        key: Bytes,
    ) -> BoxFuture<'a, Result<Loaded, LoadError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            (self.reply)(&key)
        })
    }
}

/// A peer that is another in-process group, served the way a peer port would serve it:
/// `LocalOnly`, never forwarded again.
pub struct GroupPeer {
    pub id: String,
    pub group: Arc<Group>,
}

impl Peer for GroupPeer {
    fn id(&self) -> &str {
        &self.id
    }

    fn fetch<'a>(&'a self, group: &'a str, key: Bytes) -> BoxFuture<'a, Result<Loaded, LoadError>> {
        Box::pin(async move {
            assert_eq!(group, self.group.name(), "asked the right group");
            let got = self
                .group
                .get_with(&key, GetOptions::new(FetchMode::LocalOnly))
                .await?;
            Ok(Loaded {
                value: got.value,
                expires: got.expires,
                stale: got.stale,
            })
        })
    }
}

/// A "ring": keys starting with `prefix` are owned by `peer`, the rest by this node.
pub struct PrefixRoute {
    pub prefix: &'static [u8],
    pub peer: Arc<dyn Peer>,
}

impl Peers for PrefixRoute {
    fn pick(&self, key: &[u8]) -> Option<Arc<dyn Peer>> {
        key.starts_with(self.prefix).then(|| self.peer.clone())
    }
}

/// Every key is owned by `peer`.
pub fn all_to(peer: Arc<dyn Peer>) -> Arc<PrefixRoute> {
    Arc::new(PrefixRoute { prefix: b"", peer })
}
