//! `shoal memcache`: a memcached proxy (moxi, twemproxy) in front of memcached servers.
//!
//! Listeners come from `--listen`/`--servers`, from the `[memcache]` section of `--config`,
//! from moxi's `-z` forms (several `;`-separated listeners in one process), or from twemproxy's
//! nutcracker.yml (`--nutcracker`, one listener per pool); `-Z` applies moxi's behaviours.
//! `--hash`/`--hash-tag` place keys as twemproxy does. SIGHUP re-reads the config file, `-z`
//! files and the nutcracker.yml and swaps the server lists in without dropping client
//! connections; the listeners themselves (how many, their order, names and addresses) stay.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use shoal_memcache::Protocol;
use shoal_memcache::config::{MAX_CONNS, ZConfig, parse_behaviors, parse_nutcracker, parse_z};
use shoal_memcache::proxy::{FrontCacheOptions, Proxy, ProxyConfig, Servers};
use shoal_memcache::rest::RestSource;
use shoal_memcache::route::{Distribution, Twemproxy};
use shoal_ring::TwemproxyHash;
use tokio::net::TcpListener;

use crate::admin::Admin;
use crate::shutdown::Shutdown;
use crate::units::{ByteSize, HumanDuration};
use crate::{config, telemetry};

/// Arguments of `shoal memcache`.
#[derive(Debug, Clone, Args)]
pub struct MemcacheArgs {
    /// TOML config file with a `[memcache]` section (flags override it).
    #[arg(long, env = "SHOAL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default 127.0.0.1:11211].
    #[arg(long, env = "SHOAL_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Comma-separated servers, `host:port[:weight]`.
    #[arg(long, env = "SHOAL_SERVERS", value_name = "LIST")]
    pub servers: Option<String>,
    /// ketama (libmemcached weighted = twemproxy md5+ketama), ketama-compat, modula or vbucket.
    #[arg(long, env = "SHOAL_DISTRIBUTION", value_name = "NAME")]
    pub distribution: Option<String>,
    /// twemproxy's key hash, by nutcracker's name (fnv1a_64, murmur, md5, ...): ketama and
    /// modula place keys as twemproxy does, over its server lines `host:port:weight [name]`.
    #[arg(long, env = "SHOAL_HASH", value_name = "NAME")]
    pub hash: Option<String>,
    /// twemproxy's hash tag, two bytes such as `{}`: a key is placed by the part between them
    /// (twemproxy placement; the hash is fnv1a_64 unless `--hash` says otherwise).
    #[arg(long, value_name = "XY")]
    pub hash_tag: Option<String>,
    /// twemproxy's nutcracker.yml: every pool in it is a listener, placing keys as nutcracker.
    #[arg(long, env = "SHOAL_NUTCRACKER", value_name = "FILE")]
    pub nutcracker: Option<PathBuf>,
    /// vBucket map file (moxi's JSON) for `--distribution vbucket`.
    #[arg(long, value_name = "FILE")]
    pub vbucket_map: Option<PathBuf>,
    /// Admin HTTP address (`/healthz`, `/metrics`, `/status`).
    #[arg(long, env = "SHOAL_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// twemproxy's stats port (nutcracker -s): each connection gets nutcracker's JSON stats
    /// object, so monitoring built for twemproxy keeps working [default: none].
    #[arg(long, value_name = "PORT")]
    pub stats_port: Option<u16>,
    /// The address of --stats-port (nutcracker -a) [default 0.0.0.0, as nutcracker's].
    #[arg(long, value_name = "IP")]
    pub stats_addr: Option<IpAddr>,
    /// Time a request waits for its server's reply [default 5s].
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<HumanDuration>,
    /// TCP connect timeout [default 400ms].
    #[arg(long, value_name = "DURATION")]
    pub connect_timeout: Option<HumanDuration>,
    /// Pipelined connections per server [default 4].
    #[arg(long, value_name = "N")]
    pub conns: Option<usize>,
    /// Consecutive errors before a server is left alone [default 5; 0 = never].
    #[arg(long, value_name = "N")]
    pub max_errors: Option<u32>,
    /// How long a failing server is left alone [default 30s].
    #[arg(long, value_name = "DURATION")]
    pub retry_interval: Option<HumanDuration>,
    /// Re-shard over live servers while one is failing (twemproxy's auto_eject_hosts).
    #[arg(long)]
    pub eject: bool,
    /// Connect to every server at start, not at its first request (twemproxy's preconnect).
    #[arg(long)]
    pub preconnect: bool,
    /// TCP keepalive on server connections, probing after 60 s of silence (twemproxy's
    /// tcpkeepalive): a server host gone without closing them is noticed in about 90 s.
    #[arg(long)]
    pub tcp_keepalive: bool,
    /// Protocol of classic ascii commands to the servers: ascii, or binary (moxi's a2b:
    /// carries vBucket ids, so ascii clients get the NOT_MY_VBUCKET retry) [default ascii].
    #[arg(long, value_name = "PROTOCOL")]
    pub downstream_protocol: Option<String>,
    /// Bytes a client connection may hold (replies unread, requests not answered yet) before
    /// the proxy stops reading its requests [default 8MiB].
    #[arg(long, value_name = "SIZE")]
    pub client_reply_budget: Option<ByteSize>,
    /// Largest value a client may store and a server may return, as the servers' own
    /// `memcached -I` (1KiB to 1GiB) [default 1MiB, memcached's].
    #[arg(long, value_name = "SIZE")]
    pub max_item_size: Option<ByteSize>,
    /// Front cache: most items [default 200].
    #[arg(long, value_name = "N")]
    pub front_cache_max: Option<usize>,
    /// Front cache: how long an item is served [default 0 = off].
    #[arg(long, value_name = "DURATION")]
    pub front_cache_lifespan: Option<HumanDuration>,
    /// Front cache: `|`-separated key prefixes to cache [default none = off].
    #[arg(long, value_name = "PREFIXES")]
    pub front_cache_spec: Option<String>,
    /// Front cache: `|`-separated key prefixes never to cache.
    #[arg(long, value_name = "PREFIXES")]
    pub front_cache_unspec: Option<String>,
    /// moxi cluster config: `PORT=h1:p1,h2:p2[;PORT2=...]`, `PORT={json}`, REST URLs
    /// (`url=http://A|http://B` or `http://A,http://B`, listening on `-Z port_listen`,
    /// default 11211), or `./file.cfg` holding any of these.
    #[arg(short = 'z', value_name = "CFG")]
    pub z: Vec<String>,
    /// moxi behaviours: `downstream_timeout=ms,connect_timeout=ms,...` or `./file`.
    #[arg(short = 'Z', value_name = "BEHAVIORS")]
    pub behaviors: Option<String>,
    /// Host the `-z` ports listen on (moxi `-l`) [default 127.0.0.1].
    #[arg(short = 'l', long = "listen-host", value_name = "HOST")]
    pub listen_host: Option<String>,
    /// Worker threads (moxi `-t`) [default: one per CPU].
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
}

/// The `[memcache]` section of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Section {
    /// Address to listen on; default 127.0.0.1:11211.
    listen: Option<SocketAddr>,
    /// Servers, `host:port[:weight]`.
    servers: Vec<String>,
    /// Distribution; default ketama.
    distribution: Option<String>,
    /// twemproxy hash (nutcracker's names); twemproxy placement.
    hash: Option<String>,
    /// twemproxy hash tag, two bytes; twemproxy placement.
    hash_tag: Option<String>,
    /// twemproxy's nutcracker.yml: one listener per pool.
    nutcracker: Option<PathBuf>,
    /// vBucket map file.
    vbucket_map: Option<PathBuf>,
    /// Admin address; none by default.
    admin_listen: Option<SocketAddr>,
    /// twemproxy's stats port; default none.
    stats_port: Option<u16>,
    /// Address of the stats port; default 0.0.0.0.
    stats_addr: Option<IpAddr>,
    /// Request timeout; default 5s.
    timeout: Option<HumanDuration>,
    /// Connect timeout; default 400ms.
    connect_timeout: Option<HumanDuration>,
    /// Connections per server; default 4.
    conns: Option<usize>,
    /// Errors before a retry interval; default 5.
    max_errors: Option<u32>,
    /// Retry interval; default 30s.
    retry_interval: Option<HumanDuration>,
    /// Eject failing servers from the ring; default false.
    eject: bool,
    /// Connect to every server at start; default false.
    preconnect: bool,
    /// TCP keepalive on server connections; default false.
    tcp_keepalive: bool,
    /// Downstream protocol of ascii commands: ascii (default) or binary.
    downstream_protocol: Option<String>,
    /// Reply bytes held per client connection before its requests wait; default 8MiB.
    client_reply_budget: Option<ByteSize>,
    /// Largest value stored or returned (memcached -I); default 1MiB.
    max_item_size: Option<ByteSize>,
    /// Front cache: most items; default 200.
    front_cache_max: Option<usize>,
    /// Front cache: item lifespan; default 0 (off).
    front_cache_lifespan: Option<HumanDuration>,
    /// Front cache: `|`-separated prefixes to cache; default none (off).
    front_cache_spec: Option<String>,
    /// Front cache: `|`-separated prefixes never to cache.
    front_cache_unspec: Option<String>,
    /// moxi `-z` strings.
    z: Vec<String>,
    /// moxi `-Z` string.
    behaviors: Option<String>,
    /// Worker threads; default one per CPU.
    threads: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct File {
    memcache: Section,
}

/// Resolved listeners (with the REST source of a REST-configured one).
struct Plan {
    listeners: Vec<(SocketAddr, ProxyConfig, Option<RestSource>)>,
    admin: Option<SocketAddr>,
    /// twemproxy's stats port.
    stats: Option<SocketAddr>,
    threads: Option<usize>,
}

fn plan(args: &MemcacheArgs) -> anyhow::Result<Plan> {
    let file: File = config::load(args.config.as_deref())?;
    let s = file.memcache;
    let shared = Shared {
        threads: s.threads,
        admin: s.admin_listen,
        stats: stats_listen(args, &s)?,
    };
    let mut pool = shoal_memcache::pool::PoolOptions::default();
    let mut dist_override = None;
    let mut port_listen = 11211;
    let mut rest_auth = None;
    let mut front = FrontCacheOptions::default();
    let mut downstream = Protocol::Ascii;
    let mut client_reply_budget = shoal_memcache::proxy::DEFAULT_CLIENT_REPLY_BUDGET;
    if let Some(z) = args.behaviors.as_ref().or(s.behaviors.as_ref()) {
        let b = parse_behaviors(z, &mut pool).context("-Z")?;
        dist_override = b.distribution;
        port_listen = b.port_listen.unwrap_or(port_listen);
        if let Some(usr) = b.usr {
            rest_auth = Some((usr, b.pwd.unwrap_or_default()));
        }
        if !b.ignored.is_empty() {
            tracing::info!(keys = ?b.ignored, "moxi behaviours without an equivalent, ignored");
        }
        if let Some(f) = b.front_cache {
            front = f;
        }
        downstream = b.downstream.unwrap_or(downstream);
        client_reply_budget = b.client_reply_budget.unwrap_or(client_reply_budget);
    }
    let dur = |flag: Option<HumanDuration>, file: Option<HumanDuration>| {
        flag.or(file).map(HumanDuration::get)
    };
    if let Some(d) = dur(args.timeout, s.timeout) {
        pool.timeout = d;
    }
    if let Some(d) = dur(args.connect_timeout, s.connect_timeout) {
        pool.connect_timeout = d;
    }
    if let Some(d) = dur(args.retry_interval, s.retry_interval) {
        pool.retry_interval = d;
    }
    if let Some(n) = args.conns.or(s.conns) {
        if n == 0 || n > 64 {
            return Err(config::ConfigError::invalid("--conns", n, "1 to 64").into());
        }
        pool.conns = n;
    }
    if let Some(n) = args.max_errors.or(s.max_errors) {
        pool.max_errors = n;
    }
    if args.preconnect || s.preconnect {
        // The proxy opens those of its downstream protocol.
        pool.preconnect = Some(shoal_memcache::pool::Wire::Ascii);
    }
    pool.tcp_keepalive = args.tcp_keepalive || s.tcp_keepalive;
    if let Some(size) = args.client_reply_budget.or(s.client_reply_budget) {
        if size.bytes() == 0 {
            return Err(
                config::ConfigError::invalid("--client-reply-budget", size, "above 0").into(),
            );
        }
        client_reply_budget = usize::try_from(size.bytes()).unwrap_or(usize::MAX);
    }
    let mut limits = shoal_memcache::Limits::default();
    if let Some(size) = args.max_item_size.or(s.max_item_size) {
        // memcached's own bounds for -I.
        if !(1 << 10..=1 << 30).contains(&size.bytes()) {
            return Err(
                config::ConfigError::invalid("--max-item-size", size, "1KiB to 1GiB").into(),
            );
        }
        limits.max_item_size = usize::try_from(size.bytes()).unwrap_or(usize::MAX);
    }
    pool.limits.max_item_size = limits.max_item_size;
    if let Some(n) = args.front_cache_max.or(s.front_cache_max) {
        front.max = n;
    }
    if let Some(d) = dur(args.front_cache_lifespan, s.front_cache_lifespan) {
        front.lifespan = d;
    }
    if let Some(p) = args
        .front_cache_spec
        .as_ref()
        .or(s.front_cache_spec.as_ref())
    {
        front.spec = FrontCacheOptions::prefixes(p);
    }
    if let Some(p) = args
        .front_cache_unspec
        .as_ref()
        .or(s.front_cache_unspec.as_ref())
    {
        front.unspec = FrontCacheOptions::prefixes(p);
    }
    if let Some(p) = args
        .downstream_protocol
        .as_ref()
        .or(s.downstream_protocol.as_ref())
    {
        downstream = match p.as_str() {
            "ascii" => Protocol::Ascii,
            "binary" => Protocol::Binary,
            _ => {
                return Err(config::ConfigError::invalid(
                    "--downstream-protocol",
                    p,
                    "ascii or binary",
                )
                .into());
            }
        };
    }
    let eject = args.eject || s.eject;
    let make = |name: String, servers: Servers| {
        let mut c = ProxyConfig::new(name, servers);
        c.pool = pool.clone();
        c.eject = eject;
        c.front_cache = front.clone();
        c.downstream = downstream;
        c.client_reply_budget = client_reply_budget;
        c.limits = limits.clone();
        c
    };
    let mut listeners = Vec::new();
    if let Some(path) = args.nutcracker.as_ref().or(s.nutcracker.as_ref()) {
        nutcracker_conflicts(args, &s)?;
        let file = path.display();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {file}"))?;
        let pools = parse_nutcracker(&text).with_context(|| format!("--nutcracker {file}"))?;
        for p in pools {
            let addr = p.listen_addr().with_context(|| {
                format!(
                    "--nutcracker {file}: pool {:?}: listen {}",
                    p.name, p.listen
                )
            })?;
            if !p.ignored.is_empty() {
                tracing::info!(pool = %p.name, keys = ?p.ignored, "nutcracker keys without an equivalent, ignored");
            }
            if p.server_connections > MAX_CONNS {
                tracing::info!(pool = %p.name, server_connections = p.server_connections, "shoal opens at most {MAX_CONNS} pipelined connections per server");
            }
            let cfg = p.proxy_config(&make(p.name.clone(), Servers::Pending));
            listeners.push((addr, cfg, None));
        }
        return finish(args, shared, listeners);
    }
    let twemproxy = twemproxy_options(
        args.hash.as_ref().or(s.hash.as_ref()),
        args.hash_tag.as_ref().or(s.hash_tag.as_ref()),
    )?;
    let host = args
        .listen_host
        .clone()
        .unwrap_or_else(|| "127.0.0.1".into());
    let zs = if args.z.is_empty() { &s.z } else { &args.z };
    for z in zs {
        let statics = match parse_z(z).context("-z")? {
            ZConfig::Static(l) => l,
            ZConfig::Rest(mut source) => {
                if twemproxy.is_some() {
                    bail!("--hash and --hash-tag apply to server lists, not to -z REST configs");
                }
                if source.auth.is_none() {
                    source.auth = rest_auth.clone();
                }
                let addr = match args.listen.or(s.listen) {
                    Some(a) => a,
                    None => format!("{host}:{port_listen}")
                        .parse()
                        .with_context(|| format!("listen address {host}:{port_listen}"))?,
                };
                let cfg = make(addr.port().to_string(), Servers::Pending);
                listeners.push((addr, cfg, Some(source)));
                continue;
            }
        };
        for l in statics {
            let addr: SocketAddr = format!("{host}:{}", l.port)
                .parse()
                .with_context(|| format!("listen address {host}:{}", l.port))?;
            let servers = match (l.servers, dist_override) {
                (Servers::List { members, .. }, Some(distribution)) => Servers::List {
                    members,
                    distribution,
                },
                (other, _) => other,
            };
            let servers = match (servers, twemproxy) {
                (
                    Servers::List {
                        members,
                        distribution,
                    },
                    Some(t),
                ) => Servers::List {
                    members,
                    distribution: distribution
                        .with_twemproxy(t)
                        .map_err(|e| config::ConfigError::invalid("-z", z, e))?,
                },
                (Servers::VBucket(_), Some(_)) => {
                    bail!("--hash and --hash-tag apply to server lists, not to -z vBucket maps")
                }
                (other, _) => other,
            };
            listeners.push((addr, make(l.port.to_string(), servers), None));
        }
    }
    let list = args.servers.clone().map(|l| {
        l.split(',')
            .map(|m| m.trim().to_owned())
            .collect::<Vec<_>>()
    });
    let members = list.unwrap_or(s.servers);
    let dist_name = args
        .distribution
        .clone()
        .or(s.distribution)
        .unwrap_or_else(|| "ketama".into());
    let mut distribution: Distribution = dist_name
        .parse()
        .map_err(|e: String| config::ConfigError::invalid("--distribution", &dist_name, e))?;
    if let Some(t) = twemproxy {
        distribution = distribution
            .with_twemproxy(t)
            .map_err(|e| config::ConfigError::invalid("--distribution", &dist_name, e))?;
    }
    let map = args.vbucket_map.clone().or(s.vbucket_map);
    if !members.is_empty() || map.is_some() {
        let servers = if distribution == Distribution::Vbucket {
            let path = map.context("--distribution vbucket needs --vbucket-map FILE")?;
            Servers::VBucket(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
        } else {
            Servers::List {
                members,
                distribution,
            }
        };
        let addr = args
            .listen
            .or(s.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 11211)));
        listeners.push((addr, make(addr.port().to_string(), servers), None));
    }
    if listeners.is_empty() {
        bail!(
            "no servers: give --servers h1:p1,h2:p2, -z PORT=h1:p1,..., --nutcracker FILE or a \
             config file"
        );
    }
    finish(args, shared, listeners)
}

/// What the config file sets for every listener.
struct Shared {
    threads: Option<usize>,
    admin: Option<SocketAddr>,
    stats: Option<SocketAddr>,
}

/// `--stats-port` and `--stats-addr` (or `stats_port`, `stats_addr`).
fn stats_listen(args: &MemcacheArgs, s: &Section) -> anyhow::Result<Option<SocketAddr>> {
    let addr = args.stats_addr.or(s.stats_addr);
    match args.stats_port.or(s.stats_port) {
        Some(0) => Err(config::ConfigError::invalid("--stats-port", 0, "1 to 65535").into()),
        Some(port) => Ok(Some(SocketAddr::new(
            addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            port,
        ))),
        None if addr.is_some() => bail!("--stats-addr needs --stats-port"),
        None => Ok(None),
    }
}

/// The plan of `listeners`, with the settings every listener shares.
fn finish(
    args: &MemcacheArgs,
    shared: Shared,
    listeners: Vec<(SocketAddr, ProxyConfig, Option<RestSource>)>,
) -> anyhow::Result<Plan> {
    let (file_threads, file_admin) = (shared.threads, shared.admin);
    let threads = args.threads.or(file_threads);
    if let Some(n) = threads
        && !(1..=1024).contains(&n)
    {
        return Err(config::ConfigError::invalid("--threads", n, "1 to 1024").into());
    }
    Ok(Plan {
        listeners,
        admin: args.admin_listen.or(file_admin),
        stats: shared.stats,
        threads,
    })
}

/// Runs `shoal memcache`.
pub fn run(args: MemcacheArgs) -> anyhow::Result<()> {
    telemetry::init();
    let plan = plan(&args)?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = plan.threads {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(serve(args, plan))
}

async fn serve(args: MemcacheArgs, plan: Plan) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signals();
    let listening = identities(&plan);
    // Every proxy first, so that SIGHUP reloads them from before any port opens: a SIGHUP
    // sent once a port answers must not find the default action (ending the process).
    let mut proxies: Vec<Arc<Proxy>> = Vec::new();
    let mut rests = Vec::new();
    for (addr, cfg, rest) in plan.listeners {
        proxies.push(Proxy::new(cfg).context("building the proxy")?);
        rests.push((addr, rest));
    }
    let _reload = reload_on_hup(args, proxies.clone(), listening);
    let mut tasks = Vec::new();
    for (proxy, (addr, rest)) in proxies.iter().zip(rests) {
        if let Some(source) = rest {
            let urls: Vec<&str> = source.urls.iter().map(|u| u.text.as_str()).collect();
            tracing::info!(%addr, ?urls, "servers come from REST config URLs");
            tokio::spawn(shoal_memcache::rest::feed(proxy.clone(), source));
        }
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        tracing::info!(%addr, servers = proxy.cluster().router.servers().len(), "memcache proxy listening");
        let s = shutdown.clone();
        tasks.push(tokio::spawn(
            proxy.clone().serve(listener, async move { s.wait().await }),
        ));
    }
    if let Some(addr) = plan.admin {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding admin {addr}"))?;
        let status_proxies = proxies.clone();
        let metric_proxies = proxies.clone();
        let admin = Admin::new("memcache")
            .with_status(move || status(&status_proxies))
            .with_collector(move || collect(&metric_proxies));
        tokio::spawn(admin.serve(listener, shutdown.clone()));
    }
    if let Some(addr) = plan.stats {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the stats port {addr}"))?;
        tracing::info!(%addr, "twemproxy stats port listening");
        tokio::spawn(shoal_memcache::nutcracker_stats::serve(
            listener,
            proxies.clone(),
        ));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// Each listener's address and name, in order: what a reload cannot change, since the
/// listeners stay bound (a reload pairs the new configs with them by position).
fn identities(plan: &Plan) -> Vec<(SocketAddr, String)> {
    plan.listeners
        .iter()
        .map(|(addr, cfg, _)| (*addr, cfg.name.clone()))
        .collect()
}

fn show(listeners: &[(SocketAddr, String)]) -> String {
    let each: Vec<String> = listeners.iter().map(|(a, n)| format!("{n}@{a}")).collect();
    each.join(", ")
}

/// SIGHUP: re-plans from the same arguments and files and reloads every listener's config
/// ([`Proxy::reload`]); a plan that fails, or that changes the listeners, is logged and the
/// old config kept.
fn reload_on_hup(
    args: MemcacheArgs,
    proxies: Vec<Arc<Proxy>>,
    listening: Vec<(SocketAddr, String)>,
) -> tokio::task::JoinHandle<()> {
    crate::shutdown::on_hangup(move || match plan(&args) {
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reload failed; keeping the old config")
        }
        Ok(p) if identities(&p) != listening => {
            tracing::error!(
                listening = %show(&listening),
                reloaded = %show(&identities(&p)),
                "reload refused: the listeners (nutcracker pools, -z ports) changed in number, \
                 order, name or address, which needs a restart; keeping the old config"
            );
        }
        Ok(p) => {
            // A REST listener's config is `Pending`: its servers stay as streamed.
            for (proxy, (_, cfg, _)) in proxies.iter().zip(p.listeners) {
                if let Err(e) = proxy.reload(cfg) {
                    tracing::error!(error = %e, "reload failed for a listener");
                }
            }
            tracing::info!("config reloaded");
        }
    })
}

fn status(proxies: &[Arc<Proxy>]) -> serde_json::Value {
    let list: Vec<_> = proxies
        .iter()
        .map(|p| {
            let cluster = p.cluster();
            let servers: Vec<_> = cluster
                .pool
                .servers()
                .iter()
                .map(|s| serde_json::json!({"server": s.addr().authority(), "down": s.is_down(), "errors": s.error_count()}))
                .collect();
            let counters: serde_json::Map<_, _> = p.stats().snapshot().into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect();
            serde_json::json!({"name": p.config().name, "servers": servers, "stats": counters})
        })
        .collect();
    serde_json::json!({ "proxies": list })
}

fn collect(proxies: &[Arc<Proxy>]) {
    use std::sync::atomic::Ordering::Relaxed;
    for p in proxies {
        let name = p.config().name.clone();
        for (k, v) in p.stats().snapshot() {
            metrics::gauge!("shoal_memcache_proxy_counter", "proxy" => name.clone(), "counter" => k).set(v as f64);
        }
        for s in p.cluster().pool.servers() {
            let st = s.stats();
            let server = s.addr().authority();
            for (k, v) in [
                ("requests", st.requests.load(Relaxed)),
                ("errors", st.errors.load(Relaxed)),
                ("timeouts", st.timeouts.load(Relaxed)),
                ("retries", st.retries.load(Relaxed)),
                ("connect_errors", st.connect_errors.load(Relaxed)),
            ] {
                metrics::gauge!("shoal_memcache_server_total", "proxy" => name.clone(), "server" => server.clone(), "what" => k).set(v as f64);
            }
            metrics::gauge!("shoal_memcache_server_down", "proxy" => name.clone(), "server" => server.clone()).set(f64::from(u8::from(s.is_down())));
        }
    }
}

/// twemproxy placement from `--hash` and `--hash-tag` (or `hash`, `hash_tag` in the file):
/// `None` when neither is given; the hash is nutcracker's default, fnv1a_64, when only the
/// tag is.
fn twemproxy_options(
    hash: Option<&String>,
    tag: Option<&String>,
) -> anyhow::Result<Option<Twemproxy>> {
    if hash.is_none() && tag.is_none() {
        return Ok(None);
    }
    let mut t = Twemproxy::default();
    if let Some(h) = hash {
        t.hash = h.parse().map_err(|_| {
            let names = TwemproxyHash::ALL.map(TwemproxyHash::name).join(", ");
            config::ConfigError::invalid("--hash", h, format!("one of {names}"))
        })?;
    }
    if let Some(tag) = tag {
        let two: [u8; 2] = tag.as_bytes().try_into().map_err(|_| {
            config::ConfigError::invalid("--hash-tag", tag, "exactly two bytes, such as {}")
        })?;
        t.hash_tag = Some(two);
    }
    Ok(Some(t))
}

/// The flags (or `[memcache]` keys) a nutcracker.yml pool sets for itself: refused next to
/// `--nutcracker`, naming the pool key to use instead.
fn nutcracker_conflicts(args: &MemcacheArgs, s: &Section) -> anyhow::Result<()> {
    let set = [
        (
            "--servers",
            args.servers.is_some() || !s.servers.is_empty(),
            "servers",
        ),
        (
            "--listen",
            args.listen.is_some() || s.listen.is_some(),
            "listen",
        ),
        (
            "--distribution",
            args.distribution.is_some() || s.distribution.is_some(),
            "distribution",
        ),
        ("--hash", args.hash.is_some() || s.hash.is_some(), "hash"),
        (
            "--hash-tag",
            args.hash_tag.is_some() || s.hash_tag.is_some(),
            "hash_tag",
        ),
        (
            "--conns",
            args.conns.is_some() || s.conns.is_some(),
            "server_connections",
        ),
        (
            "--max-errors",
            args.max_errors.is_some() || s.max_errors.is_some(),
            "server_failure_limit",
        ),
        (
            "--retry-interval",
            args.retry_interval.is_some() || s.retry_interval.is_some(),
            "server_retry_timeout",
        ),
        ("--eject", args.eject || s.eject, "auto_eject_hosts"),
        (
            "--preconnect",
            args.preconnect || s.preconnect,
            "preconnect",
        ),
        (
            "--tcp-keepalive",
            args.tcp_keepalive || s.tcp_keepalive,
            "tcpkeepalive",
        ),
    ];
    if let Some((flag, _, key)) = set.iter().find(|(_, on, _)| *on) {
        bail!("{flag} does not combine with --nutcracker: set {key} in each pool of the file");
    }
    let moxi = [
        ("-z", !args.z.is_empty() || !s.z.is_empty()),
        ("-Z", args.behaviors.is_some() || s.behaviors.is_some()),
        (
            "--vbucket-map",
            args.vbucket_map.is_some() || s.vbucket_map.is_some(),
        ),
    ];
    if let Some((flag, _)) = moxi.iter().find(|(_, on)| *on) {
        bail!("{flag} does not combine with --nutcracker: its pools are the listeners");
    }
    Ok(())
}
