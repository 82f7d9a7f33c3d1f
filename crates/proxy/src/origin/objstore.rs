//! [`ObjectStoreOrigin`]: objects under a prefix of an S3 bucket, a GCS bucket or an Azure
//! container (`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`), through
//! the `object_store` crate. Credentials, region and endpoint come from the environment as
//! object_store's `from_env()` builders read it (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
//!
//! * `stat` is a HEAD: size, ETag (the validator when strong), Last-Modified, Content-Type.
//! * `read` is a ranged GET with `If-Match` (strong ETag) or `If-Unmodified-Since`, and the
//!   answer's ETag and size are checked again, so a replaced object answers
//!   [`OriginError::Changed`] rather than other bytes.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path;
use object_store::{
    Attribute, ClientConfigKey, GetOptions, GetRange, GetResult, ObjectStore, RetryConfig,
};

use super::{Extent, Origin, OriginError};
use crate::meta::{ObjectHeaders, ObjectMeta, Validator, whole_seconds};

/// Settings of an [`ObjectStoreOrigin`] built from a URL.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ObjectStoreConfig {
    /// Deadline to connect (default 5 s).
    pub connect_timeout: Duration,
    /// Deadline for one request, body included (default 30 s); retries stay within it.
    pub timeout: Duration,
    /// Service endpoint overriding the environment's (`AWS_ENDPOINT_URL`,
    /// `AZURE_STORAGE_ENDPOINT`), e.g. a local S3-compatible server; `http://` allows
    /// plain HTTP. Not for `gs://`.
    pub endpoint: Option<String>,
}

impl Default for ObjectStoreConfig {
    fn default() -> Self {
        ObjectStoreConfig {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            endpoint: None,
        }
    }
}

/// The object-store URL or its settings are not usable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("origin {url:?}: {why}")]
pub struct BadObjectStoreUrl {
    url: String,
    why: String,
}

/// A bucket (or container) prefix of a cloud object store as an origin.
#[derive(Debug, Clone)]
pub struct ObjectStoreOrigin {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    name: String,
    timeout: Duration,
}

impl ObjectStoreOrigin {
    /// An origin for `s3://bucket[/prefix]`, `gs://bucket[/prefix]` or
    /// `az://container[/prefix]`, configured from the environment and `config`.
    pub fn from_url(url: &str, config: &ObjectStoreConfig) -> Result<Self, BadObjectStoreUrl> {
        let bad = |why: String| BadObjectStoreUrl {
            url: url.to_owned(),
            why,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected s3://, gs:// or az://bucket/prefix".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || rest.contains(['?', '#']) {
            return Err(bad(format!("expected {scheme}://bucket[/prefix]")));
        }
        let prefix = prefix.trim_matches('/');
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: config.timeout,
            ..RetryConfig::default()
        };
        // Set key by key: replacing the builder's client options would drop what from_env()
        // put there (AWS_ALLOW_HTTP, proxies and the like).
        let client = [
            (ClientConfigKey::Timeout, config.timeout),
            (ClientConfigKey::ConnectTimeout, config.connect_timeout),
        ]
        .map(|(k, d)| (k, format!("{}ms", d.as_millis().max(1))));
        let endpoint = config.endpoint.as_deref().map(str::trim);
        let allow_http = endpoint.is_some_and(|e| e.starts_with("http://"));
        let built: object_store::Result<Arc<dyn ObjectStore>> = match scheme {
            "s3" => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry);
                for (k, v) in client {
                    b = b.with_config(AmazonS3ConfigKey::Client(k), v);
                }
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e).with_allow_http(allow_http);
                }
                b.build().map(|s| Arc::new(s) as _)
            }
            "gs" => {
                if endpoint.is_some() {
                    return Err(bad("gs:// takes no endpoint (use GOOGLE_* settings)".into()));
                }
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry);
                for (k, v) in client {
                    b = b.with_config(GoogleConfigKey::Client(k), v);
                }
                b.build().map(|s| Arc::new(s) as _)
            }
            "az" | "azure" => {
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_container_name(bucket)
                    .with_retry(retry);
                for (k, v) in client {
                    b = b.with_config(AzureConfigKey::Client(k), v);
                }
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e.to_owned()).with_allow_http(allow_http);
                }
                b.build().map(|s| Arc::new(s) as _)
            }
            other => {
                return Err(bad(format!(
                    "{other}:// is not an object store (s3://, gs://, az://)"
                )));
            }
        };
        let store = built.map_err(|e| bad(e.to_string()))?;
        let name = match prefix {
            "" => format!("{scheme}://{bucket}/"),
            p => format!("{scheme}://{bucket}/{p}/"),
        };
        Ok(Self::new(store, prefix, name, config.timeout))
    }

    /// An origin over any `store`, its objects under `prefix` (no leading or trailing `/`),
    /// described as `name`; `timeout` bounds each call.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, name: String, timeout: Duration) -> Self {
        ObjectStoreOrigin {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            name,
            timeout,
        }
    }

    fn location(&self, path: &str) -> Result<Path, OriginError> {
        let full = match self.prefix.as_str() {
            "" => path.to_owned(),
            p => format!("{p}/{path}"),
        };
        // A path the store cannot even name (empty segments and the like) holds no object.
        Path::parse(full).map_err(|_| OriginError::NotFound)
    }

    async fn stat_inner(&self, path: &str) -> Result<ObjectMeta, OriginError> {
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&self.location(path)?, options)
            .await
            .map_err(store_error)?;
        Ok(meta_of(&got))
    }

    async fn read_inner(
        &self,
        path: &str,
        range: Range<u64>,
        expect: &Validator,
    ) -> Result<Extent, OriginError> {
        let lm = parse_modified(expect);
        let mut options = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            ..GetOptions::default()
        };
        if let Some(tag) = expect.etag() {
            options.if_match = Some(tag.to_owned());
        } else if let Some((Some(t), _)) = lm {
            options.if_unmodified_since = Some(t.into());
        }
        let got = self
            .store
            .get_opts(&self.location(path)?, options)
            .await
            .map_err(store_error)?;
        if expect.etag().is_some() && got.meta.e_tag.as_deref() != expect.etag() {
            return Err(OriginError::Changed);
        }
        if let Some((t, size)) = lm
            && (size != got.meta.size
                || t.is_some_and(|t| whole_seconds(got.meta.last_modified.into()) != t))
        {
            return Err(OriginError::Changed);
        }
        let offset = got.range.start;
        let want = got.range.end - got.range.start;
        let bytes = got.bytes().await.map_err(store_error)?;
        if offset > range.start || offset + (bytes.len() as u64) < range.end {
            return Err(OriginError::failed(
                format!("object store sent {want} bytes at {offset}, not {range:?}"),
                true,
            ));
        }
        Ok(Extent { offset, bytes })
    }
}

impl Origin for ObjectStoreOrigin {
    async fn stat(&self, path: &str) -> Result<ObjectMeta, OriginError> {
        let t = self.timeout;
        tokio::time::timeout(t, self.stat_inner(path))
            .await
            .unwrap_or(Err(OriginError::Timeout(t)))
    }

    async fn read(
        &self,
        path: &str,
        range: Range<u64>,
        expect: &Validator,
    ) -> Result<Extent, OriginError> {
        if range.start >= range.end {
            return Ok(Extent {
                offset: range.start,
                bytes: bytes::Bytes::new(),
            });
        }
        let t = self.timeout;
        tokio::time::timeout(t, self.read_inner(path, range, expect))
            .await
            .unwrap_or(Err(OriginError::Timeout(t)))
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

fn meta_of(got: &GetResult) -> ObjectMeta {
    let m = &got.meta;
    let last_modified = Some(whole_seconds(SystemTime::from(m.last_modified)));
    let validator = match &m.e_tag {
        Some(tag) if tag.starts_with('"') => Validator::strong_etag(tag),
        _ => Validator::modified(last_modified, m.size),
    };
    let mut headers = ObjectHeaders::default();
    for (attribute, name) in [
        (Attribute::CacheControl, header::CACHE_CONTROL),
        (Attribute::ContentDisposition, header::CONTENT_DISPOSITION),
        (Attribute::ContentEncoding, header::CONTENT_ENCODING),
        (Attribute::ContentLanguage, header::CONTENT_LANGUAGE),
    ] {
        if let Some(v) = got.attributes.get(&attribute) {
            headers.set(&name, v.as_ref());
        }
    }
    ObjectMeta {
        size: m.size,
        validator,
        etag: m.e_tag.clone(),
        content_type: got
            .attributes
            .get(&Attribute::ContentType)
            .map(|v| v.as_ref().to_owned()),
        last_modified,
        headers,
    }
}

/// The Last-Modified and size an `lm:` validator was made of.
fn parse_modified(v: &Validator) -> Option<(Option<SystemTime>, u64)> {
    let (secs, size) = v.as_str().strip_prefix("lm:")?.split_once(':')?;
    let secs: u64 = secs.parse().ok()?;
    let time = (secs != u64::MAX).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    Some((time, size.parse().ok()?))
}

fn store_error(e: object_store::Error) -> OriginError {
    match e {
        object_store::Error::NotFound { .. } => OriginError::NotFound,
        object_store::Error::Precondition { .. } | object_store::Error::NotModified { .. } => {
            OriginError::Changed
        }
        other => {
            // object_store's messages stop at "HTTP error": the causes say what happened.
            let mut message = format!("object store: {other}");
            let mut cause = std::error::Error::source(&other);
            while let Some(c) = cause {
                let text = c.to_string();
                if !message.contains(&text) {
                    message = format!("{message}: {text}");
                }
                cause = c.source();
            }
            OriginError::failed(message, true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    #[tokio::test]
    async fn reads_ranges_and_spots_changes() {
        let mem = Arc::new(InMemory::new());
        let key = Path::from("pre/fix/a b.bin");
        let data: Vec<u8> = (0..200u8).collect();
        mem.put(&key, PutPayload::from(data.clone())).await.unwrap();
        let o = ObjectStoreOrigin::new(
            mem.clone(),
            "/pre/fix/",
            "mem".into(),
            Duration::from_secs(5),
        );
        let m = o.stat("a b.bin").await.unwrap();
        assert_eq!(m.size, 200);
        let e = o.read("a b.bin", 10..20, &m.validator).await.unwrap();
        assert_eq!(e.slice(10..20).unwrap(), &data[10..20]);
        assert!(matches!(o.stat("nope").await, Err(OriginError::NotFound)));
        assert!(matches!(o.stat("a//b").await, Err(OriginError::NotFound)));
        // InMemory's ETags are bare counters, so the validator is Last-Modified and size.
        mem.put(&key, PutPayload::from(vec![1u8; 201]))
            .await
            .unwrap();
        assert!(matches!(
            o.read("a b.bin", 0..5, &m.validator).await,
            Err(OriginError::Changed)
        ));
    }

    #[test]
    fn urls() {
        let c = ObjectStoreConfig::default();
        for bad in ["s3://", "s3:///x", "ftp://b/x", "s3://b/x?y=1", "nonsense"] {
            assert!(ObjectStoreOrigin::from_url(bad, &c).is_err(), "{bad}");
        }
        let c = ObjectStoreConfig {
            endpoint: Some("http://127.0.0.1:9".into()),
            ..ObjectStoreConfig::default()
        };
        let o = ObjectStoreOrigin::from_url("s3://bucket/some/prefix/", &c).unwrap();
        assert_eq!(o.describe(), "s3://bucket/some/prefix/");
        assert!(ObjectStoreOrigin::from_url("gs://b/p", &c).is_err());
    }
}
