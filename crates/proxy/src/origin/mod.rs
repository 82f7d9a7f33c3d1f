//! Origins: where the proxy's objects come from.
//!
//! An [`Origin`] answers two questions: what is this object ([`Origin::stat`] →
//! [`ObjectMeta`]) and what are these bytes of this version of it ([`Origin::read`]). A read
//! names the version it expects; an origin that finds another version answers
//! [`OriginError::Changed`] rather than bytes, so a reply never stitches two versions.
//!
//! Implementations: [`DirOrigin`] (a local directory), [`HttpOrigin`] (an HTTP(S) server
//! under a base URL) and, with the `object-store` feature, `ObjectStoreOrigin` (S3, GCS,
//! Azure). Paths handed to an origin are object paths as produced by
//! [`object_path`](crate::path::object_path): relative, no `.` or `..` segments.

mod dir;
mod http;
#[cfg(feature = "object-store")]
mod objstore;

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use self::dir::DirOrigin;
pub use self::http::{HttpOrigin, HttpOriginConfig};
#[cfg(feature = "object-store")]
pub use self::objstore::{BadObjectStoreUrl, ObjectStoreConfig, ObjectStoreOrigin};
use crate::meta::{ObjectMeta, Validator};

/// Bytes read from an origin: at least the requested range, starting at `offset`.
///
/// An origin that answers a range request with the whole object (HTTP 200) hands back what
/// arrived, so the proxy can cache the neighbouring chunks too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// Position of `bytes[0]` in the object.
    pub offset: u64,
    /// The bytes.
    pub bytes: Bytes,
}

impl Extent {
    /// The bytes of `range`, if this extent covers it.
    pub fn slice(&self, range: Range<u64>) -> Option<Bytes> {
        let end_here = self.offset + self.bytes.len() as u64;
        if range.start < self.offset || range.end > end_here || range.start > range.end {
            return None;
        }
        let from = (range.start - self.offset) as usize;
        let to = (range.end - self.offset) as usize;
        Some(self.bytes.slice(from..to))
    }
}

/// Why an origin could not answer.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum OriginError {
    /// The object does not exist (HTTP 404/410, no such file). Not a fault.
    #[error("not found")]
    NotFound,
    /// The object is no longer the version asked for (its validator changed).
    #[error("object changed at the origin")]
    Changed,
    /// The origin did not answer in time.
    #[error("origin timed out after {0:?}")]
    Timeout(Duration),
    /// Any other failure.
    #[error("origin failed: {message}")]
    Failed {
        /// What went wrong.
        message: Arc<str>,
        /// Whether trying again may help (connection refused, 5xx) or not (403, bad reply).
        retryable: bool,
    },
}

impl OriginError {
    /// A failure with a message.
    pub fn failed(message: impl Into<Arc<str>>, retryable: bool) -> Self {
        OriginError::Failed {
            message: message.into(),
            retryable,
        }
    }

    /// Whether trying again may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            OriginError::NotFound | OriginError::Changed => false,
            OriginError::Timeout(_) => true,
            OriginError::Failed { retryable, .. } => *retryable,
        }
    }
}

/// Where objects come from.
pub trait Origin: Send + Sync + 'static {
    /// What the object at `path` is: size, version, type.
    fn stat(&self, path: &str) -> impl Future<Output = Result<ObjectMeta, OriginError>> + Send;

    /// Bytes `range` of the version `expect` of the object at `path`; the answer covers at
    /// least `range`. [`OriginError::Changed`] if the object is now another version.
    fn read(
        &self,
        path: &str,
        range: Range<u64>,
        expect: &Validator,
    ) -> impl Future<Output = Result<Extent, OriginError>> + Send;

    /// A short description for logs and `/status` (`dir:/srv/blobs`, `http://host/base/`).
    fn describe(&self) -> String;
}

/// The boxed future the object-safe [`DynOrigin`] returns.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe form of [`Origin`], so a proxy can hold any origin as `Arc<dyn DynOrigin>`.
pub trait DynOrigin: Send + Sync + 'static {
    /// [`Origin::stat`], boxed.
    fn stat_boxed<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<ObjectMeta, OriginError>>;
    /// [`Origin::read`], boxed.
    fn read_boxed<'a>(
        &'a self,
        path: &'a str,
        range: Range<u64>,
        expect: &'a Validator,
    ) -> BoxFuture<'a, Result<Extent, OriginError>>;
    /// [`Origin::describe`].
    fn describe_dyn(&self) -> String;
}

impl<O: Origin> DynOrigin for O {
    fn stat_boxed<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<ObjectMeta, OriginError>> {
        Box::pin(self.stat(path))
    }

    fn read_boxed<'a>(
        &'a self,
        path: &'a str,
        range: Range<u64>,
        expect: &'a Validator,
    ) -> BoxFuture<'a, Result<Extent, OriginError>> {
        Box::pin(self.read(path, range, expect))
    }

    fn describe_dyn(&self) -> String {
        self.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_slices_only_what_it_covers() {
        let e = Extent {
            offset: 10,
            bytes: Bytes::from_static(b"abcdef"),
        };
        assert_eq!(e.slice(10..12).unwrap(), "ab");
        assert_eq!(e.slice(14..16).unwrap(), "ef");
        assert_eq!(e.slice(12..12).unwrap(), "");
        assert!(e.slice(9..12).is_none());
        assert!(e.slice(14..17).is_none());
        assert!(!OriginError::NotFound.is_retryable());
        assert!(OriginError::Timeout(Duration::from_secs(1)).is_retryable());
    }
}
