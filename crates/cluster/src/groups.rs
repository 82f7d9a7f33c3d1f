//! The groups a node serves to its peers, and the one way every protocol answers a peer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use shoal_cache::{FetchMode, Group, LoadError, Loaded};

use crate::ClusterError;

/// Groups by name; read on every served request, written when a group is added.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    map: ArcSwap<HashMap<Arc<str>, Arc<Group>>>,
}

impl Groups {
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Group>> {
        self.map.load().get(name).cloned()
    }

    pub(crate) fn insert(&self, group: Arc<Group>) -> Result<(), ClusterError> {
        let mut result = Ok(());
        self.map.rcu(|map| {
            let mut map = HashMap::clone(map);
            result = match map.entry(group.name().into()) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    Err(ClusterError::DuplicateGroup(group.name().to_owned()))
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(group.clone());
                    Ok(())
                }
            };
            map
        });
        result
    }

    pub(crate) fn all(&self) -> Vec<Arc<Group>> {
        self.map.load().values().cloned().collect()
    }
}

/// How a node answers one peer request.
#[derive(Debug)]
pub(crate) enum Answer {
    Value(Loaded),
    NotFound,
    UnknownGroup,
    /// The caller's propagated deadline passed first (the load goes on, and fills the cache).
    Deadline(Duration),
    Failed(LoadError),
}

/// Answer a peer: a fetch loads locally if needed but never forwards
/// ([`FetchMode::LocalOnly`], the one-hop rule); a peek only looks in memory. With a
/// `deadline` (the caller's remaining time), stop waiting for the load when it passes.
pub(crate) async fn answer(
    groups: &Groups,
    group: &str,
    key: &[u8],
    peek: bool,
    deadline: Option<Duration>,
) -> Answer {
    let Some(group) = groups.get(group) else {
        return Answer::UnknownGroup;
    };
    if peek {
        return match group.peek(key) {
            Some(loaded) => Answer::Value(loaded),
            None => Answer::NotFound,
        };
    }
    let get = group.get_with(key, FetchMode::LocalOnly.into());
    let got = match deadline {
        None => get.await,
        Some(d) => match tokio::time::timeout(d, get).await {
            Ok(got) => got,
            Err(_) => return Answer::Deadline(d),
        },
    };
    match got {
        Ok(got) => Answer::Value(Loaded {
            value: got.value,
            expires: got.expires,
            stale: got.stale,
        }),
        Err(LoadError::NotFound) => Answer::NotFound,
        Err(e) => Answer::Failed(e),
    }
}

/// At most `max` bytes of an error message for a reply body.
pub(crate) fn truncate(message: &str, max: usize) -> Bytes {
    let mut end = message.len().min(max);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    Bytes::copy_from_slice(&message.as_bytes()[..end])
}
