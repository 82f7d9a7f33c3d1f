//! `shoal members --admin URL`: the member set of a running node, each member's state and
//! the share of the key space it owns, read from the node's admin API (`GET /members`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

/// Arguments of `shoal members`.
#[derive(Debug, Args)]
pub struct MembersArgs {
    /// The node's admin address: `http://host:port` or `host:port`.
    #[arg(long, value_name = "URL")]
    pub admin: String,

    /// Print the node's JSON as is.
    #[arg(long)]
    pub json: bool,
}

/// The answer of `GET /members`.
#[derive(Debug, Deserialize)]
pub struct Members {
    /// The node's own peer URL.
    #[serde(rename = "self")]
    pub self_url: String,
    /// The version of the ring in use.
    pub ring_version: u64,
    /// Every member the node knows.
    pub members: Vec<Member>,
}

/// One member.
#[derive(Debug, Deserialize)]
pub struct Member {
    /// Its peer URL.
    pub url: String,
    /// `alive`, `suspect`, `down` or `left`.
    pub state: String,
    /// The share of the key space it owns (0 to 1).
    pub share: f64,
}

/// Runs `shoal members`.
pub fn run(args: MembersArgs) -> anyhow::Result<()> {
    let body = get(&args.admin, "/members")?;
    if args.json {
        println!("{body}");
        return Ok(());
    }
    let m: Members = serde_json::from_str(&body)
        .with_context(|| format!("{}/members did not answer the expected JSON", args.admin))?;
    print!("{}", render(&m));
    Ok(())
}

/// The table `shoal members` prints.
pub fn render(m: &Members) -> String {
    let width = m
        .members
        .iter()
        .map(|x| x.url.len())
        .max()
        .unwrap_or(6)
        .max(6)
        + 7;
    let mut out = format!("{:<width$}  {:<8}  {:>6}\n", "MEMBER", "STATE", "SHARE");
    for x in &m.members {
        let name = if x.url == m.self_url {
            format!("{} (self)", x.url)
        } else {
            x.url.clone()
        };
        out.push_str(&format!(
            "{name:<width$}  {:<8}  {:>5.1}%\n",
            x.state,
            x.share * 100.0
        ));
    }
    let up = m
        .members
        .iter()
        .filter(|x| x.state == "alive" || x.state == "suspect")
        .count();
    out.push_str(&format!(
        "{up} of {} members in the ring (ring version {})\n",
        m.members.len(),
        m.ring_version
    ));
    out
}

/// `GET path` over HTTP/1.0 with timeouts; the body of a 200 answer.
fn get(admin: &str, path: &str) -> anyhow::Result<String> {
    let authority = admin
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    if authority.contains('/') || admin.starts_with("https://") {
        bail!("--admin {admin:?}: expected http://host:port or host:port");
    }
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("--admin {admin:?}: cannot resolve"))?
        .next()
        .with_context(|| format!("--admin {admin:?}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(16 << 20).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{admin}{path}: not an HTTP answer"))?;
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        bail!("{admin}{path}: status {status} (is this a shoal node's admin port?)");
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_states_and_shares() {
        let m: Members = serde_json::from_str(
            r#"{"self":"http://a:1","ring_version":3,"members":[
                {"url":"http://a:1","state":"alive","share":0.5},
                {"url":"http://b:1","state":"suspect","share":0.5},
                {"url":"http://c:1","state":"down","share":0}]}"#,
        )
        .unwrap();
        let t = render(&m);
        assert!(t.contains("http://a:1 (self)  alive"), "{t}");
        assert!(t.contains("50.0%"), "{t}");
        assert!(
            t.contains("2 of 3 members in the ring (ring version 3)"),
            "{t}"
        );
    }
}
