//! DNS membership against a tiny authoritative DNS server run by the test on loopback
//! (UDP; answers SRV, A and AAAA from a zone the test edits): members and their ports come
//! from SRV records, changes are followed, a vanished name keeps the last set, and A and
//! AAAA records through a chosen server work too.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use shoal_cluster::{DnsConfig, DnsMembership};
use tokio::net::UdpSocket;

const SRV: u16 = 33;
const A: u16 = 1;
const AAAA: u16 = 28;

#[derive(Default)]
struct Zone {
    /// name → (target, port)
    srv: HashMap<String, Vec<(String, u16)>>,
    /// name → addresses
    a: HashMap<String, Vec<Ipv4Addr>>,
    /// name → IPv6 addresses
    aaaa: HashMap<String, Vec<Ipv6Addr>>,
}

fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name.trim_end_matches('.').split('.') {
        out.push(u8::try_from(label.len()).unwrap());
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// The answer to one query (RFC 1035 §4.1), or `None` for a packet that is not one.
fn answer(query: &[u8], zone: &Zone) -> Option<Vec<u8>> {
    if query.len() < 12 || query[4..6] != [0, 1] {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(i..i + len)?).to_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let question = query.get(12..i + 4)?;
    let name = labels.join(".");
    let known =
        zone.srv.contains_key(&name) || zone.a.contains_key(&name) || zone.aaaa.contains_key(&name);
    let mut records: Vec<(u16, Vec<u8>)> = Vec::new();
    if qtype == SRV {
        for (target, port) in zone.srv.get(&name).into_iter().flatten() {
            let mut rdata = vec![0, 10, 0, 5]; // priority, weight
            rdata.extend_from_slice(&port.to_be_bytes());
            encode_name(target, &mut rdata);
            records.push((SRV, rdata));
        }
    } else if qtype == A {
        for ip in zone.a.get(&name).into_iter().flatten() {
            records.push((A, ip.octets().to_vec()));
        }
    } else if qtype == AAAA {
        for ip in zone.aaaa.get(&name).into_iter().flatten() {
            records.push((AAAA, ip.octets().to_vec()));
        }
    } // the rest: no data
    let rd = query[2] & 0x01;
    let rcode = if known { 0 } else { 3 }; // NXDOMAIN
    let mut out = Vec::new();
    out.extend_from_slice(&query[0..2]);
    out.push(0x84 | rd); // QR, AA
    out.push(0x80 | rcode); // RA
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&u16::try_from(records.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(question);
    for (rtype, rdata) in records {
        out.extend_from_slice(&[0xC0, 12]); // the question's name
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0]); // IN, TTL 0
        out.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}

async fn dns_server(zone: Arc<Mutex<Zone>>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let reply = answer(&buf[..n], &zone.lock());
            if let Some(reply) = reply {
                let _ = socket.send_to(&reply, from).await;
            }
        }
    });
    addr
}

async fn wait_for(m: &DnsMembership, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let have = m.current().members.clone();
        if have == want {
            return;
        }
        assert!(Instant::now() < deadline, "have {have:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn members_and_ports_come_from_srv_records_and_follow_changes() {
    let zone = Arc::new(Mutex::new(Zone::default()));
    {
        let mut z = zone.lock();
        let srv = vec![
            ("n1.cluster.test".to_owned(), 47101),
            ("n2.cluster.test".to_owned(), 47102),
        ];
        z.srv.insert("_shoal._tcp.cluster.test".into(), srv);
        z.a.insert("n1.cluster.test".into(), vec![Ipv4Addr::new(127, 0, 0, 1)]);
        z.a.insert("n2.cluster.test".into(), vec![Ipv4Addr::new(127, 0, 0, 2)]);
        z.a.insert("n3.cluster.test".into(), vec![Ipv4Addr::new(127, 0, 0, 3)]);
    }
    let server = dns_server(zone.clone()).await;
    let mut c = DnsConfig::srv("_shoal._tcp.cluster.test.", "http://127.0.0.1:47101");
    c.server = Some(server);
    c.interval = Duration::from_millis(100);
    let m = DnsMembership::start(c);
    wait_for(&m, &["http://127.0.0.1:47101", "http://127.0.0.2:47102"]).await;

    // n2 goes, n3 comes on another port.
    zone.lock().srv.insert(
        "_shoal._tcp.cluster.test".into(),
        vec![
            ("n1.cluster.test".to_owned(), 47101),
            ("n3.cluster.test".to_owned(), 47333),
        ],
    );
    wait_for(&m, &["http://127.0.0.1:47101", "http://127.0.0.3:47333"]).await;

    // The name vanishes (NXDOMAIN): the last set stays.
    zone.lock().srv.clear();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        m.current().members,
        ["http://127.0.0.1:47101", "http://127.0.0.3:47333"]
    );

    // A records through the same server: the configured port.
    let mut c = DnsConfig::new("n3.cluster.test.", 47400, "http://127.0.0.1:47400");
    c.server = Some(server);
    c.interval = Duration::from_millis(100);
    let a = DnsMembership::start(c);
    wait_for(&a, &["http://127.0.0.1:47400", "http://127.0.0.3:47400"]).await;

    // A name with A and AAAA records: every address is a member, IPv6 ones bracketed.
    {
        let mut z = zone.lock();
        z.a.insert(
            "dual.cluster.test".into(),
            vec![Ipv4Addr::new(127, 0, 0, 4)],
        );
        z.aaaa
            .insert("dual.cluster.test".into(), vec![Ipv6Addr::LOCALHOST]);
    }
    let mut c = DnsConfig::new("dual.cluster.test.", 47500, "http://127.0.0.4:47500");
    c.server = Some(server);
    c.interval = Duration::from_millis(100);
    let dual = DnsMembership::start(c);
    wait_for(&dual, &["http://127.0.0.4:47500", "http://[::1]:47500"]).await;
}
