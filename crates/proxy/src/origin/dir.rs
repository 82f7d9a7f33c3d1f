//! [`DirOrigin`]: objects are the regular files under a local directory.
//!
//! The root is canonicalized once; every lookup canonicalizes the joined path (resolving
//! symlinks) and refuses anything that lands outside the root, so neither `..` nor a
//! symlink can reach other files. Reads run on tokio's blocking pool with positioned reads
//! (`pread`), and check the open file's identity (inode, mtime in nanoseconds, size) against
//! the version asked for.
//!
//! The ETag given to clients is nginx's (`"<mtime hex>-<size hex>"`), so caches in front of
//! an nginx and a shoal over the same files agree.

use std::fs::{File, Metadata};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::{Extent, Origin, OriginError};
use crate::meta::{ObjectHeaders, ObjectMeta, Validator, unix_secs, whole_seconds};

/// A local directory as an origin.
#[derive(Debug, Clone)]
pub struct DirOrigin {
    root: Arc<Path>,
}

impl DirOrigin {
    /// An origin serving the files under `root` (which must be a directory).
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = root.as_ref().canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(DirOrigin { root: root.into() })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file for `path`, or `NotFound` if it is missing, not a regular file, or outside
    /// the root (after resolving symlinks).
    fn resolve(root: &Path, path: &str) -> Result<PathBuf, OriginError> {
        if path.is_empty()
            || path
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(OriginError::NotFound);
        }
        let real = root.join(path).canonicalize().map_err(io_error)?;
        if !real.starts_with(root) {
            tracing::debug!(path, "refused: resolves outside the origin directory");
            return Err(OriginError::NotFound);
        }
        Ok(real)
    }

    fn open(root: &Path, path: &str) -> Result<(File, Metadata), OriginError> {
        let real = Self::resolve(root, path)?;
        let file = File::open(&real).map_err(io_error)?;
        let meta = file.metadata().map_err(io_error)?;
        if !meta.is_file() {
            return Err(OriginError::NotFound);
        }
        Ok((file, meta))
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, OriginError> + Send + 'static,
    ) -> Result<T, OriginError> {
        tokio::task::spawn_blocking(f)
            .await
            .unwrap_or_else(|e| Err(OriginError::failed(format!("file task failed: {e}"), true)))
    }
}

fn validator_of(meta: &Metadata) -> Validator {
    Validator::new(format!(
        "file:{}:{}:{}.{}:{}",
        meta.dev(),
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.len()
    ))
}

fn io_error(e: io::Error) -> OriginError {
    match e.kind() {
        io::ErrorKind::NotFound
        | io::ErrorKind::NotADirectory
        | io::ErrorKind::PermissionDenied
        | io::ErrorKind::IsADirectory => OriginError::NotFound,
        _ => OriginError::failed(format!("file error: {e}"), true),
    }
}

impl Origin for DirOrigin {
    async fn stat(&self, path: &str) -> Result<ObjectMeta, OriginError> {
        let (root, path) = (self.root.clone(), path.to_owned());
        Self::blocking(move || {
            let (_file, meta) = Self::open(&root, &path)?;
            let modified = meta.modified().ok().map(whole_seconds);
            Ok(ObjectMeta {
                size: meta.len(),
                validator: validator_of(&meta),
                etag: Some(format!(
                    "\"{:x}-{:x}\"",
                    modified.map_or(0, unix_secs),
                    meta.len()
                )),
                content_type: Some(content_type(&path).to_owned()),
                last_modified: modified,
                headers: ObjectHeaders::default(),
            })
        })
        .await
    }

    async fn read(
        &self,
        path: &str,
        range: Range<u64>,
        expect: &Validator,
    ) -> Result<Extent, OriginError> {
        let (root, path, expect) = (self.root.clone(), path.to_owned(), expect.clone());
        Self::blocking(move || {
            let (file, meta) = Self::open(&root, &path)?;
            if validator_of(&meta) != expect || range.end > meta.len() {
                return Err(OriginError::Changed);
            }
            let len = usize::try_from(range.end.saturating_sub(range.start))
                .map_err(|_| OriginError::failed("range too large", false))?;
            let mut buf = BytesMut::zeroed(len);
            let mut done = 0;
            while done < len {
                match file.read_at(&mut buf[done..], range.start + done as u64) {
                    Ok(0) => return Err(OriginError::Changed), // truncated under us
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_error(e)),
                }
            }
            Ok(Extent {
                offset: range.start,
                bytes: Bytes::from(buf),
            })
        })
        .await
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }
}

/// A Content-Type from the file name's extension (a small built-in table).
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref().unwrap_or("") {
        "html" | "htm" => "text/html",
        "txt" | "md" => "text/plain",
        "css" => "text/css",
        "js" | "mjs" => "application/javascript",
        "json" => "application/json",
        "xml" => "text/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "m3u8" => "application/vnd.apple.mpegurl",
        "ts" => "video/mp2t",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "iso" => "application/octet-stream",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stats_and_reads_files_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"hello world").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a.txt"), dir.path().join("inside")).unwrap();
        let o = DirOrigin::new(dir.path()).unwrap();

        let m = o.stat("a.txt").await.unwrap();
        assert_eq!(m.size, 11);
        assert_eq!(m.content_type.as_deref(), Some("text/plain"));
        let e = o.read("a.txt", 6..11, &m.validator).await.unwrap();
        assert_eq!(e.bytes, "world");
        assert_eq!(o.stat("inside").await.unwrap().size, 11);

        for bad in ["link", "sub", "nope", "../secret", "", "sub/../a.txt"] {
            assert!(
                matches!(o.stat(bad).await, Err(OriginError::NotFound)),
                "{bad}"
            );
        }
        // A new version under the same name is a change, not bytes.
        std::fs::write(dir.path().join("a.txt"), b"HELLO WORLD, again").unwrap();
        let r = o.read("a.txt", 0..5, &m.validator).await;
        assert!(matches!(r, Err(OriginError::Changed)), "{r:?}");
    }
}
