//! Loaders: where a group's values come from when no cache has them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tokio::time::Instant;

use crate::LoadError;

/// A boxed, sendable future, as returned by the object-safe traits of this crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A value produced by a [`Loader`] or a peer, with its optional expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The value. Shared, never copied, from the loader to every caller.
    pub value: Bytes,
    /// When the value stops being valid; `None` means never (subject to the group's
    /// `max_ttl`).
    pub expires: Option<Instant>,
    /// A copy past its expiry, given because a refresh failed: a peer's answer from its
    /// [`stale_if_error`](crate::GroupBuilder::stale_if_error) grace (peers say so on the
    /// wire), or a loader's own old copy (a disk tier's). A loader's value that has already
    /// expired counts as stale too.
    pub stale: bool,
}

impl Loaded {
    /// A value that does not expire.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Loaded {
            value: value.into(),
            expires: None,
            stale: false,
        }
    }

    /// A value that expires at `at`.
    pub fn expiring(value: impl Into<Bytes>, at: Instant) -> Self {
        Loaded {
            value: value.into(),
            expires: Some(at),
            stale: false,
        }
    }

    /// Marked as a stale copy (see [`Loaded::stale`]).
    pub fn stale(mut self) -> Self {
        self.stale = true;
        self
    }
}

impl From<Bytes> for Loaded {
    fn from(value: Bytes) -> Self {
        Loaded::new(value)
    }
}

/// The origin of truth for a group: called once per missing key (per node), however many
/// callers ask for it at the same time.
///
/// Return [`LoadError::NotFound`] for keys that do not exist, so they are not treated as
/// failures. Implement it with `async fn load(&self, key: Bytes) -> Result<Loaded, LoadError>`,
/// or wrap a closure with [`loader_fn`].
pub trait Loader: Send + Sync + 'static {
    /// Produce the value of `key`.
    fn load(&self, key: Bytes) -> impl Future<Output = Result<Loaded, LoadError>> + Send;

    /// `key` was removed from the group ([`Group::remove`](crate::Group::remove), or a
    /// peer's remove): drop any copy the loader keeps beside the group's memory, such as a
    /// disk tier it reads before its source, so the next load goes to the source. Nothing by
    /// default.
    fn forget(&self, key: &[u8]) {
        let _ = key;
    }
}

/// The object-safe form of [`Loader`] that a [`Group`](crate::Group) keeps, so groups with
/// different loaders have one type.
pub(crate) trait DynLoader: Send + Sync + 'static {
    fn load_boxed(&self, key: Bytes) -> BoxFuture<'_, Result<Loaded, LoadError>>;
    fn forget_key(&self, key: &[u8]);
}

impl<L: Loader> DynLoader for L {
    fn load_boxed(&self, key: Bytes) -> BoxFuture<'_, Result<Loaded, LoadError>> {
        Box::pin(self.load(key))
    }
    fn forget_key(&self, key: &[u8]) {
        self.forget(key);
    }
}

/// A [`Loader`] made from a closure; see [`loader_fn`].
#[derive(Clone)]
pub struct LoaderFn<F>(F);

impl<F> fmt::Debug for LoaderFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoaderFn")
    }
}

/// Wrap a closure returning a future as a [`Loader`].
///
/// ```
/// use bytes::Bytes;
/// use shoal_cache::{loader_fn, LoadError, Loaded};
///
/// let loader = loader_fn(|key: Bytes| async move {
///     if key.is_empty() {
///         return Err(LoadError::NotFound);
///     }
///     Ok(Loaded::new(key))
/// });
/// # let _ = loader;
/// ```
pub fn loader_fn<F, Fut>(f: F) -> LoaderFn<F>
where
    F: Fn(Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Loaded, LoadError>> + Send + 'static,
{
    LoaderFn(f)
}

impl<F, Fut> Loader for LoaderFn<F>
where
    F: Fn(Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Loaded, LoadError>> + Send + 'static,
{
    fn load(&self, key: Bytes) -> impl Future<Output = Result<Loaded, LoadError>> + Send {
        (self.0)(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Upper;

    impl Loader for Upper {
        async fn load(&self, key: Bytes) -> Result<Loaded, LoadError> {
            Ok(Loaded::new(key.to_ascii_uppercase()))
        }
    }

    #[tokio::test]
    async fn trait_impls_and_closures_box_to_one_type() {
        let loaders: Vec<Arc<dyn DynLoader>> = vec![
            Arc::new(Upper),
            Arc::new(loader_fn(|_key: Bytes| async { Err(LoadError::NotFound) })),
        ];
        let a = loaders[0].load_boxed(Bytes::from_static(b"ab")).await;
        assert_eq!(a.unwrap().value, Bytes::from_static(b"AB"));
        let b = loaders[1].load_boxed(Bytes::from_static(b"ab")).await;
        assert!(b.unwrap_err().is_not_found());
    }
}
