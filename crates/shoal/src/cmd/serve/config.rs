//! `shoal serve` settings: the `[serve]` section of the config file, the flags that override
//! it, and the checks run before any port is bound.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;
use shoal_cluster::{PeerUrl, StaticMembership};

use crate::config::{ConfigError, Validate};
use crate::units::{ByteSize, HumanDuration};

/// The config file of `shoal serve`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeFile {
    /// The `[serve]` section.
    pub serve: ServeSettings,
}

/// Every setting of `shoal serve`, with its default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    /// Where objects come from: a directory, `http[s]://host[:port]/base/`, or
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`. Required.
    pub origin: String,
    /// Client address (default `127.0.0.1:8080`; `:8080` means every interface).
    pub listen: String,
    /// Admin address for `/metrics`, `/status`, `/healthz` (default `127.0.0.1:9090`;
    /// `off` disables it).
    pub admin_listen: String,
    /// Who may purge on the admin port (`DELETE /cache/PATH`): `loopback` (default), `any`
    /// or `off`.
    pub purge_from: String,
    /// Memory for chunks (default 512MiB).
    pub memory: ByteSize,
    /// Memory for object metadata (default 16MiB).
    pub meta_memory: ByteSize,
    /// Directory for the disk tier (default: none, memory only).
    pub dir: String,
    /// Disk tier budget (default 1GiB; used with `dir`).
    pub disk: ByteSize,
    /// Chunk size (default 1MiB; 4KiB to 64MiB).
    pub chunk_size: ByteSize,
    /// Chunks of one response fetched in parallel (default 4; 1 to 64).
    pub max_parallel_chunks: usize,
    /// Chunks read ahead for sequential range readers (default 2; 0 turns it off).
    pub readahead_chunks: usize,
    /// Origin chunk reads in flight at once (default 16; 1 to 1024): bounds the memory held
    /// by reads in progress (a chunk each) beside `memory`, and the load on the origin.
    pub max_origin_reads: usize,
    /// Deadline for one origin request, body included (default 30s).
    pub origin_timeout: HumanDuration,
    /// Deadline to connect to an HTTP origin (default 5s).
    pub connect_timeout: HumanDuration,
    /// How long object metadata is trusted before asking the origin again (default 60s).
    pub meta_ttl: HumanDuration,
    /// How long "not found" is remembered (default 2s).
    pub negative_ttl: HumanDuration,
    /// How long past `meta_ttl` an object's metadata is kept to serve the cached copy with
    /// when the origin fails to confirm it (default 1h; 0s turns it off).
    pub stale_if_error: HumanDuration,
    /// Deadline for a client to send a request head (default 10s).
    pub header_timeout: HumanDuration,
    /// Longest a client may stall a reply by not reading it (default 60s).
    pub send_timeout: HumanDuration,
    /// Largest request head in bytes (default 16KiB).
    pub max_header_size: ByteSize,
    /// Most client connections at once (default 10000).
    pub max_connections: usize,
    /// File to append a line per request to, in nginx's `combined` format (default: none);
    /// reopened on SIGUSR1 for log rotation.
    pub access_log: String,
    /// Peer URLs of every node of a static cluster, comma-separated, this node included
    /// (default: none, a single node).
    pub peers: String,
    /// This node's peer URL, exactly as spelled in `peers` (TOML key `self`).
    #[serde(rename = "self")]
    pub self_url: String,
    /// Address of the peer port (default: the host:port of `self`; every interface when
    /// its host is a name).
    pub peer_listen: String,
    /// PEM CA certificate(s) trusted for `https://` origins besides the system's.
    pub origin_ca: String,
    /// Endpoint of an `s3://` or `az://` origin's service (default: from the environment).
    pub origin_endpoint: String,
    /// PEM certificate chain: serve HTTPS (with `tls_key`).
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    pub tls_key: String,
    /// UDP address to gossip on (SWIM); joins through `seeds` (default: no gossip).
    pub gossip: String,
    /// The gossip address other nodes reach this one at (default: the bound address).
    pub gossip_advertise: String,
    /// Gossip addresses to join through, comma-separated `host:port` (none: a new cluster).
    pub seeds: String,
    /// Shared gossip key: every packet is authenticated with HMAC-SHA256.
    pub gossip_key: String,
    /// A file holding the gossip key (its surrounding whitespace ignored).
    pub gossip_key_file: String,
    /// etcd client URL to register in and list members from (chunkproxy's `--coord`).
    pub coord: String,
    /// The cluster's directory (key prefix) in etcd (chunkproxy's `--cluster`).
    pub cluster: String,
    /// Lease TTL of this node's etcd registration (default 10s; at least 2s).
    pub etcd_ttl: HumanDuration,
    /// A file of member peer URLs, reloaded when it changes and on SIGHUP.
    pub members_file: String,
    /// `NAME:PORT`: every A/AAAA record of NAME is a member `http://IP:PORT`; `srv:NAME`:
    /// NAME's SRV records list the members.
    pub dns: String,
    /// How often the members file is checked and the DNS name resolved (default 5s).
    pub members_refresh: HumanDuration,
    /// gce-cache-cluster's ini file: GCE instances found with it seed gossip.
    pub gce_config: String,
    /// Compute API base URL (default `https://compute.googleapis.com`).
    pub gce_endpoint: String,
    /// Metadata server base URL for the API token (default `http://metadata.google.internal`;
    /// `none` sends no token).
    pub gce_metadata: String,
    /// Warm handoff for live membership: after a change, a key's new owner first asks its
    /// previous owner (default true).
    pub handoff: bool,
    /// Shared secret every peer request must carry (at least 16 printable characters);
    /// prefer `peer_secret_file` or `SHOAL_PEER_SECRET` to a flag.
    pub peer_secret: String,
    /// A file holding the peer secret (its surrounding whitespace ignored).
    pub peer_secret_file: String,
    /// This node's certificate chain (PEM) for mTLS between peers; `self` is then `https://`.
    pub peer_tls_cert: String,
    /// The private key (PEM) of `peer_tls_cert`.
    pub peer_tls_key: String,
    /// The cluster CA (PEM) that signed every member's certificate.
    pub peer_tls_ca: String,
    /// How chunks are placed on members: `groupcache` (golang/groupcache's ring of 50
    /// points per member, as chunkproxy placed them), `galaxycache`, or `rendezvous` (each
    /// member owns its fair share almost exactly). Every member must use the same.
    pub placement: String,
    /// How long after a membership change a new owner asks previous owners (default 60s).
    pub handoff_warm_time: HumanDuration,
    /// The longest one handoff question may take before the origin is asked (default 50ms).
    pub handoff_peek_timeout: HumanDuration,
    /// On shutdown, how long after leaving the peer port keeps answering, so that the new
    /// owners of this node's chunks find them here rather than at the origin (default 2s;
    /// live membership with handoff only).
    pub peer_drain: HumanDuration,
}

impl Default for ServeSettings {
    fn default() -> Self {
        use std::time::Duration;
        let secs = |s| HumanDuration(Duration::from_secs(s));
        ServeSettings {
            origin: String::new(),
            origin_ca: String::new(),
            origin_endpoint: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            listen: "127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            purge_from: "loopback".into(),
            memory: ByteSize(512 << 20),
            meta_memory: ByteSize(16 << 20),
            dir: String::new(),
            disk: ByteSize(1 << 30),
            chunk_size: ByteSize(1 << 20),
            max_parallel_chunks: 4,
            readahead_chunks: 2,
            max_origin_reads: 16,
            origin_timeout: secs(30),
            connect_timeout: secs(5),
            meta_ttl: secs(60),
            negative_ttl: secs(2),
            stale_if_error: secs(3600),
            header_timeout: secs(10),
            send_timeout: secs(60),
            max_header_size: ByteSize(16 << 10),
            max_connections: 10_000,
            access_log: String::new(),
            peers: String::new(),
            self_url: String::new(),
            peer_listen: String::new(),
            gossip: String::new(),
            gossip_advertise: String::new(),
            seeds: String::new(),
            gossip_key: String::new(),
            gossip_key_file: String::new(),
            coord: String::new(),
            cluster: String::new(),
            etcd_ttl: secs(10),
            members_file: String::new(),
            dns: String::new(),
            members_refresh: secs(5),
            gce_config: String::new(),
            gce_endpoint: String::new(),
            gce_metadata: String::new(),
            handoff: true,
            peer_secret: String::new(),
            peer_secret_file: String::new(),
            peer_tls_cert: String::new(),
            peer_tls_key: String::new(),
            peer_tls_ca: String::new(),
            placement: "groupcache".into(),
            handoff_warm_time: secs(60),
            handoff_peek_timeout: HumanDuration(Duration::from_millis(50)),
            peer_drain: secs(2),
        }
    }
}

/// Flags of `shoal serve`; each overrides the config file, and `SHOAL_<FLAG>` env vars
/// override the file too.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML, section `[serve]`).
    #[arg(long, value_name = "FILE", env = "SHOAL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where objects come from: a directory or http://host[:port]/base/ [chunkproxy: --url].
    #[arg(
        long,
        visible_alias = "url",
        value_name = "DIR|URL",
        env = "SHOAL_ORIGIN"
    )]
    pub origin: Option<String>,
    /// PEM CA file trusted for https:// origins, besides the system's CAs.
    #[arg(long, value_name = "FILE", env = "SHOAL_ORIGIN_CA")]
    pub origin_ca: Option<String>,
    /// Service endpoint of an s3:// or az:// origin (e.g. http://127.0.0.1:9000) [default:
    /// AWS_ENDPOINT_URL / AZURE_STORAGE_ENDPOINT].
    #[arg(long, value_name = "URL", env = "SHOAL_ORIGIN_ENDPOINT")]
    pub origin_endpoint: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", env = "SHOAL_TLS_CERT")]
    pub tls_cert: Option<String>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", env = "SHOAL_TLS_KEY")]
    pub tls_key: Option<String>,
    /// Client address [default: 127.0.0.1:8080] [chunkproxy: --webaddr].
    #[arg(
        long,
        visible_alias = "webaddr",
        value_name = "ADDR",
        env = "SHOAL_LISTEN"
    )]
    pub listen: Option<String>,
    /// Admin address, or `off` [default: 127.0.0.1:9090].
    #[arg(long, value_name = "ADDR", env = "SHOAL_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// Who may purge objects on the admin port: loopback, any or off [default: loopback].
    #[arg(long, value_name = "WHO", env = "SHOAL_PURGE_FROM")]
    pub purge_from: Option<String>,
    /// Memory for chunks [default: 512MiB].
    #[arg(long, value_name = "SIZE", env = "SHOAL_MEMORY")]
    pub memory: Option<ByteSize>,
    /// Memory for object metadata [default: 16MiB].
    #[arg(long, value_name = "SIZE", env = "SHOAL_META_MEMORY")]
    pub meta_memory: Option<ByteSize>,
    /// Directory for the disk tier; without it the cache is memory only [chunkproxy: --dir].
    #[arg(long, value_name = "DIR", env = "SHOAL_DIR")]
    pub dir: Option<String>,
    /// Disk tier budget [default: 1GiB].
    #[arg(long, value_name = "SIZE", env = "SHOAL_DISK")]
    pub disk: Option<ByteSize>,
    /// chunkproxy's disk budget, in MiB (same as --disk N MiB).
    #[arg(long = "size-d", value_name = "MIB", conflicts_with = "disk")]
    pub size_d: Option<u64>,
    /// Chunk size [default: 1MiB].
    #[arg(long, value_name = "SIZE", env = "SHOAL_CHUNK_SIZE")]
    pub chunk_size: Option<ByteSize>,
    /// chunkproxy's chunk size, in MiB (same as --chunk-size N MiB).
    #[arg(long = "size-c", value_name = "MIB", conflicts_with = "chunk_size")]
    pub size_c: Option<u64>,
    /// chunkproxy's chunk memory, in MiB (same as --memory N MiB).
    #[arg(long = "size-m", value_name = "MIB", conflicts_with = "memory")]
    pub size_m: Option<u64>,
    /// chunkproxy's metadata memory, in MiB (same as --meta-memory N MiB).
    #[arg(long = "size-s", value_name = "MIB", conflicts_with = "meta_memory")]
    pub size_s: Option<u64>,
    /// Chunks of one response fetched in parallel [default: 4].
    #[arg(long, value_name = "N", env = "SHOAL_MAX_PARALLEL_CHUNKS")]
    pub max_parallel_chunks: Option<usize>,
    /// Chunks read ahead for sequential range readers [default: 2].
    #[arg(long, value_name = "N", env = "SHOAL_READAHEAD_CHUNKS")]
    pub readahead_chunks: Option<usize>,
    /// Origin chunk reads in flight at once [default: 16].
    #[arg(long, value_name = "N", env = "SHOAL_MAX_ORIGIN_READS")]
    pub max_origin_reads: Option<usize>,
    /// Deadline for one origin request [default: 30s].
    #[arg(long, value_name = "DURATION", env = "SHOAL_ORIGIN_TIMEOUT")]
    pub origin_timeout: Option<HumanDuration>,
    /// Deadline to connect to an HTTP origin [default: 5s].
    #[arg(long, value_name = "DURATION", env = "SHOAL_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<HumanDuration>,
    /// How long object metadata is trusted [default: 60s].
    #[arg(long, value_name = "DURATION", env = "SHOAL_META_TTL")]
    pub meta_ttl: Option<HumanDuration>,
    /// How long "not found" is remembered [default: 2s].
    #[arg(long, value_name = "DURATION", env = "SHOAL_NEGATIVE_TTL")]
    pub negative_ttl: Option<HumanDuration>,
    /// How long past meta_ttl the cached copy is served when the origin fails to confirm it
    /// (timeouts, refused connections, 5xx; 0s: off) [default: 1h].
    #[arg(long, value_name = "DURATION", env = "SHOAL_STALE_IF_ERROR")]
    pub stale_if_error: Option<HumanDuration>,
    /// Deadline for a client to send a request head [default: 10s].
    #[arg(long, value_name = "DURATION", env = "SHOAL_HEADER_TIMEOUT")]
    pub header_timeout: Option<HumanDuration>,
    /// Longest a client may stall a reply by not reading it [default: 60s].
    #[arg(long, value_name = "DURATION", env = "SHOAL_SEND_TIMEOUT")]
    pub send_timeout: Option<HumanDuration>,
    /// Largest request head [default: 16KiB].
    #[arg(long, value_name = "SIZE", env = "SHOAL_MAX_HEADER_SIZE")]
    pub max_header_size: Option<ByteSize>,
    /// Most client connections at once [default: 10000].
    #[arg(long, value_name = "N", env = "SHOAL_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Append a line per request to FILE, in nginx's `combined` format; SIGUSR1 reopens it
    /// (log rotation) [default: none].
    #[arg(long, value_name = "FILE", env = "SHOAL_ACCESS_LOG")]
    pub access_log: Option<String>,
    /// Peer URLs of every node of a static cluster, this node included
    /// (http://10.0.0.1:7071,http://10.0.0.2:7071); without it, a single node.
    #[arg(
        long,
        value_name = "URL,URL,...",
        env = "SHOAL_PEERS",
        conflicts_with = "poolpeers"
    )]
    pub peers: Option<String>,
    /// This node's peer URL: exactly one of --peers, or how others reach it (live sources).
    #[arg(
        long = "self",
        value_name = "URL",
        env = "SHOAL_SELF",
        conflicts_with = "pooladdr"
    )]
    pub self_url: Option<String>,
    /// Peer port address [default: the host:port of --self].
    #[arg(long, value_name = "ADDR", env = "SHOAL_PEER_LISTEN")]
    pub peer_listen: Option<String>,
    /// chunkproxy's peer address: --self http://HOST:PORT, listening on HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub pooladdr: Option<String>,
    /// chunkproxy's peers: --peers with http:// before each HOST:PORT.
    #[arg(long, value_name = "HOST:PORT,...")]
    pub poolpeers: Option<String>,
    /// Live membership and peer security.
    #[command(flatten)]
    pub live: super::live::LiveArgs,
}

impl ServeArgs {
    /// Defaults, then the file, then env and flags.
    pub fn settings(&self) -> Result<ServeSettings, ConfigError> {
        let mut s = crate::config::load::<ServeFile>(self.config.as_deref())?.serve;
        let mib = |n: u64| ByteSize(n.saturating_mul(1 << 20));
        macro_rules! take {
            ($($field:ident),*) => {$(
                if let Some(v) = self.$field.clone() {
                    s.$field = v;
                }
            )*};
        }
        take!(
            origin,
            origin_ca,
            origin_endpoint,
            tls_cert,
            tls_key,
            listen,
            admin_listen,
            purge_from,
            memory,
            meta_memory,
            dir,
            disk,
            chunk_size,
            max_parallel_chunks,
            readahead_chunks,
            max_origin_reads,
            origin_timeout,
            connect_timeout,
            meta_ttl,
            negative_ttl,
            stale_if_error,
            header_timeout,
            send_timeout,
            max_header_size,
            max_connections,
            access_log,
            peers,
            self_url,
            peer_listen
        );
        if let Some(a) = &self.pooladdr {
            s.self_url = format!("http://{}", a.trim());
            if self.peer_listen.is_none() {
                s.peer_listen = a.trim().to_owned();
            }
        }
        if let Some(p) = &self.poolpeers {
            s.peers = p
                .split(',')
                .map(|h| format!("http://{}", h.trim()))
                .collect::<Vec<_>>()
                .join(",");
        }
        self.live.apply(&mut s);
        if let Some(n) = self.size_c {
            s.chunk_size = mib(n);
        }
        if let Some(n) = self.size_m {
            s.memory = mib(n);
        }
        if let Some(n) = self.size_s {
            s.meta_memory = mib(n);
        }
        if let Some(n) = self.size_d {
            s.disk = mib(n);
        }
        s.validate()?;
        Ok(s)
    }
}

impl ServeSettings {
    /// The static cluster this node is part of: `None` without `peers`.
    pub fn membership(&self) -> Result<Option<StaticMembership>, ConfigError> {
        if self.peers.trim().is_empty() {
            if !self.self_url.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "self",
                    self.self_url.trim(),
                    "used only with peers (--peers URL,URL,... listing this node too)",
                ));
            }
            return Ok(None);
        }
        if self.self_url.trim().is_empty() {
            return Err(ConfigError::invalid(
                "self",
                "(none)",
                "this node's URL, one of peers (--self URL or serve.self)",
            ));
        }
        Ok(Some(StaticMembership::parse(&self.self_url, &self.peers)?))
    }

    /// Where the peer port listens: `peer_listen`, or the host:port of `self`.
    pub fn peer_addr(&self, m: &StaticMembership) -> Result<SocketAddr, ConfigError> {
        self.peer_addr_of(m.self_url())
    }

    /// Where the peer port listens: `peer_listen`, or the host:port of `url`.
    pub fn peer_addr_of(&self, url: &PeerUrl) -> Result<SocketAddr, ConfigError> {
        if !self.peer_listen.trim().is_empty() {
            return parse_addr("peer_listen", self.peer_listen.trim());
        }
        let ip = url.host().trim_start_matches('[').trim_end_matches(']');
        match ip.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SocketAddr::new(ip, url.port())),
            Err(_) => Ok(SocketAddr::from(([0, 0, 0, 0], url.port()))),
        }
    }
}

/// `127.0.0.1:8080`, `[::1]:8080`, or Go's `:8080` (every interface).
pub fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    let text = match value.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => value.to_owned(),
    };
    text.parse()
        .map_err(|_| ConfigError::invalid(key, value, "an address such as 127.0.0.1:8080 or :8080"))
}

impl Validate for ServeSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.origin.trim().is_empty() {
            return Err(ConfigError::invalid(
                "origin",
                "(none)",
                "a directory or http://host/base/ (--origin or serve.origin)",
            ));
        }
        if self.tls_cert.trim().is_empty() != self.tls_key.trim().is_empty() {
            return Err(ConfigError::invalid(
                "tls_cert/tls_key",
                format!("{:?}/{:?}", self.tls_cert, self.tls_key),
                "both files or neither (--tls-cert FILE --tls-key FILE)",
            ));
        }
        parse_addr("listen", &self.listen)?;
        if !matches!(self.purge_from.trim(), "loopback" | "any" | "off") {
            return Err(ConfigError::invalid(
                "purge_from",
                self.purge_from.trim(),
                "loopback, any or off",
            ));
        }
        if self.admin_listen != "off" {
            parse_addr("admin_listen", &self.admin_listen)?;
        }
        let cs = self.chunk_size.bytes();
        if !(4 << 10..=64 << 20).contains(&cs) {
            return Err(ConfigError::invalid(
                "chunk_size",
                self.chunk_size,
                "4KiB to 64MiB",
            ));
        }
        if !(1..=1024).contains(&self.max_origin_reads) {
            return Err(ConfigError::invalid(
                "max_origin_reads",
                self.max_origin_reads,
                "1 to 1024",
            ));
        }
        if !(1..=64).contains(&self.max_parallel_chunks) {
            return Err(ConfigError::invalid(
                "max_parallel_chunks",
                self.max_parallel_chunks,
                "1 to 64",
            ));
        }
        if self.readahead_chunks > 64 {
            return Err(ConfigError::invalid(
                "readahead_chunks",
                self.readahead_chunks,
                "0 to 64",
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid("max_connections", 0, "at least 1"));
        }
        if self.send_timeout.get().is_zero() || self.header_timeout.get().is_zero() {
            return Err(ConfigError::invalid(
                "send_timeout/header_timeout",
                format!("{}/{}", self.send_timeout, self.header_timeout),
                "more than 0",
            ));
        }
        if self.origin_timeout.get().is_zero() {
            return Err(ConfigError::invalid(
                "origin_timeout",
                self.origin_timeout,
                "more than 0",
            ));
        }
        self.plan()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_and_validation() {
        let f: ServeFile = crate::config::parse(
            "[serve]\norigin = \"/srv\"\nchunk_size = \"4MiB\"\nmeta_ttl = \"5m\"\n",
        )
        .unwrap();
        assert_eq!(f.serve.chunk_size.bytes(), 4 << 20);
        assert_eq!(f.serve.meta_ttl.get().as_secs(), 300);
        assert!(f.serve.validate().is_ok());
        let bad = ServeSettings {
            chunk_size: ByteSize(100),
            ..f.serve.clone()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("chunk_size")
        );
        assert!(
            ServeSettings::default().validate().is_err(),
            "origin is required"
        );
        assert!(crate::config::parse::<ServeFile>("[serve]\nchunk = 1\n").is_err());
        let tls = |extra: &str| {
            crate::config::parse::<ServeFile>(&format!(
                "[serve]\norigin = \"s3://b/p\"\norigin_endpoint = \"http://127.0.0.1:1\"\ntls_cert = \"/c.pem\"\n{extra}"
            ))
            .unwrap()
            .serve
            .validate()
        };
        assert!(tls("").unwrap_err().to_string().contains("tls_key"));
        assert!(tls("tls_key = \"/k.pem\"\norigin_ca = \"/ca.pem\"\n").is_ok());
        assert_eq!(parse_addr("l", ":8080").unwrap().port(), 8080);
        assert!(parse_addr("l", "nowhere").is_err());
    }

    #[test]
    fn every_flag_overrides_its_key() {
        use clap::Parser;
        use std::time::Duration;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            a: ServeArgs,
        }
        let t = T::try_parse_from([
            "x",
            "--url",
            "/o",
            "--webaddr",
            ":1",
            "--admin-listen",
            "off",
            "--purge-from",
            "any",
            "--memory",
            "1MiB",
            "--meta-memory",
            "2MiB",
            "--dir",
            "/d",
            "--disk",
            "3MiB",
            "--chunk-size",
            "8KiB",
            "--max-parallel-chunks",
            "5",
            "--readahead-chunks",
            "6",
            "--max-origin-reads",
            "15",
            "--origin-timeout",
            "7s",
            "--connect-timeout",
            "8s",
            "--meta-ttl",
            "9s",
            "--negative-ttl",
            "10s",
            "--stale-if-error",
            "15s",
            "--header-timeout",
            "11s",
            "--send-timeout",
            "14s",
            "--max-header-size",
            "12KiB",
            "--max-connections",
            "13",
            "--origin-ca",
            "/ca.pem",
            "--origin-endpoint",
            "http://127.0.0.1:1",
            "--tls-cert",
            "/c.pem",
            "--tls-key",
            "/k.pem",
        ])
        .unwrap();
        let secs = |s| HumanDuration(Duration::from_secs(s));
        let want = ServeSettings {
            origin: "/o".into(),
            origin_ca: "/ca.pem".into(),
            origin_endpoint: "http://127.0.0.1:1".into(),
            tls_cert: "/c.pem".into(),
            tls_key: "/k.pem".into(),
            listen: ":1".into(),
            admin_listen: "off".into(),
            purge_from: "any".into(),
            memory: ByteSize(1 << 20),
            meta_memory: ByteSize(2 << 20),
            dir: "/d".into(),
            disk: ByteSize(3 << 20),
            chunk_size: ByteSize(8 << 10),
            max_parallel_chunks: 5,
            readahead_chunks: 6,
            max_origin_reads: 15,
            origin_timeout: secs(7),
            connect_timeout: secs(8),
            meta_ttl: secs(9),
            negative_ttl: secs(10),
            stale_if_error: secs(15),
            header_timeout: secs(11),
            send_timeout: secs(14),
            max_header_size: ByteSize(12 << 10),
            max_connections: 13,
            ..ServeSettings::default()
        };
        assert_eq!(t.a.settings().unwrap(), want);
        let t = T::try_parse_from([
            "x", "--origin", "/o", "--size-c", "2", "--size-m", "3", "--size-s", "4", "--size-d",
            "5",
        ])
        .unwrap();
        let s = t.a.settings().unwrap();
        assert_eq!(
            (
                s.chunk_size.bytes(),
                s.memory.bytes(),
                s.meta_memory.bytes(),
                s.disk.bytes()
            ),
            (2 << 20, 3 << 20, 4 << 20, 5 << 20)
        );
    }

    #[test]
    fn cluster_flags_and_chunkproxy_aliases() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            a: ServeArgs,
        }
        let parse = |args: &[&str]| {
            let mut all = vec!["x", "--origin", "/o"];
            all.extend_from_slice(args);
            T::try_parse_from(all).unwrap().a.settings()
        };
        let s = parse(&[]).unwrap();
        assert!(s.membership().unwrap().is_none(), "single node by default");
        let s = parse(&[
            "--pooladdr",
            "10.0.0.2:7071",
            "--poolpeers",
            "10.0.0.1:7071, 10.0.0.2:7071",
        ])
        .unwrap();
        assert_eq!(s.self_url, "http://10.0.0.2:7071");
        assert_eq!(s.peers, "http://10.0.0.1:7071,http://10.0.0.2:7071");
        let m = s.membership().unwrap().unwrap();
        assert_eq!(m.members().len(), 2);
        assert_eq!(s.peer_addr(&m).unwrap().to_string(), "10.0.0.2:7071");
        let s = parse(&[
            "--peers",
            "http://a.example:7071,http://b.example:7071",
            "--self",
            "http://b.example:7071",
        ])
        .unwrap();
        let m = s.membership().unwrap().unwrap();
        assert_eq!(s.peer_addr(&m).unwrap().to_string(), "0.0.0.0:7071");
        let s = parse(&[
            "--peers",
            "http://127.0.0.1:1",
            "--self",
            "http://127.0.0.1:1",
            "--peer-listen",
            ":9",
        ])
        .unwrap();
        let m = s.membership().unwrap().unwrap();
        assert_eq!(s.peer_addr(&m).unwrap().port(), 9);
        let e = parse(&["--peers", "http://127.0.0.1:1"]).unwrap_err();
        assert!(e.to_string().contains("self"), "{e}");
        let e = parse(&["--self", "http://127.0.0.1:1"]).unwrap_err();
        assert!(e.to_string().contains("peers"), "{e}");
        let e = parse(&["--tls-cert", "/c.pem"]).unwrap_err();
        assert!(e.to_string().contains("tls_key"), "{e}");
        let f: ServeFile = crate::config::parse(
            "[serve]\norigin = \"/o\"\npeers = \"http://h:1,http://g:1\"\nself = \"http://g:1\"\npeer_listen = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        assert!(f.serve.validate().is_ok());
        assert_eq!(f.serve.self_url, "http://g:1");
    }
}
