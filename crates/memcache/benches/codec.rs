//! Decoding a pipelined buffer of gets and sets: requests per second.

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shoal_memcache::{Decoder, binary::BinaryRequest};
use std::hint::black_box;

const N: usize = 1000;

/// 1000 requests: 3 single-key gets, 1 ten-key get and 1 set of 100 bytes, repeated.
fn ascii_pipeline() -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..N {
        match i % 5 {
            0..=2 => b.extend_from_slice(format!("get user:{i}:profile\r\n").as_bytes()),
            3 => {
                b.extend_from_slice(b"get");
                for k in 0..10 {
                    b.extend_from_slice(format!(" session:{i}:{k}").as_bytes());
                }
                b.extend_from_slice(b"\r\n");
            }
            _ => {
                b.extend_from_slice(format!("set user:{i}:profile 0 300 100\r\n").as_bytes());
                b.extend_from_slice(&[b'v'; 100]);
                b.extend_from_slice(b"\r\n");
            }
        }
    }
    b
}

fn binary_pipeline() -> Vec<u8> {
    let mut b = BytesMut::new();
    for i in 0..N {
        let key = format!("user:{i}:profile").into_bytes();
        let r = if i % 5 == 4 {
            BinaryRequest::new(0x11, vec![0; 8].into(), key.into(), vec![b'v'; 100].into())
        } else {
            BinaryRequest::new(0x0d, Default::default(), key.into(), Default::default())
        };
        r.encode(&mut b);
    }
    b.to_vec()
}

fn decode_all(input: &[u8], read_size: usize) -> usize {
    let mut d = Decoder::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut n = 0;
    for chunk in input.chunks(read_size) {
        buf.extend_from_slice(chunk);
        while let Ok(Some(r)) = d.decode(&mut buf) {
            black_box(&r);
            n += 1;
        }
    }
    assert_eq!(n, N);
    n
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(N as u64));
    let ascii = ascii_pipeline();
    let binary = binary_pipeline();
    g.bench_function("ascii pipeline, one read", |b| {
        b.iter(|| decode_all(&ascii, ascii.len()))
    });
    g.bench_function("ascii pipeline, 1 KiB reads", |b| {
        b.iter(|| decode_all(&ascii, 1024))
    });
    g.bench_function("binary pipeline, one read", |b| {
        b.iter(|| decode_all(&binary, binary.len()))
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
