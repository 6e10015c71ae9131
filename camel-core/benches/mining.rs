//! The miner's nonce search and merkle roots: `cargo bench -p camel-core --bench mining`.
//! Header hashing against the bare library is in `benches/crypto.rs`.

use camel_core::block::Header;
use camel_core::hash::{BlockHash, Hash256, Txid};
use camel_core::merkle::merkle_root;
use camel_core::pow::Target;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn header() -> Header {
    Header {
        version: 1,
        prev_blockhash: BlockHash::hash(b"parent"),
        merkle_root: Hash256::hash(b"root"),
        time: 1_795_651_260,
        bits: 0x1f00_ffff,
        nonce: 0,
    }
}

fn hashing(c: &mut Criterion) {
    let m = header().midstate();
    // A search that never succeeds: 4096 nonces per iteration, the target check included.
    let mut g = c.benchmark_group("find_nonce");
    g.throughput(Throughput::Elements(4096));
    g.bench_function("4096_nonces", |b| {
        b.iter(|| black_box(m.find_nonce(&Target::ZERO, 0, 4095)))
    });
    g.finish();
}

fn merkle(c: &mut Criterion) {
    let txids: Vec<Txid> = (0u32..2000).map(|i| Txid::hash(&i.to_le_bytes())).collect();
    let mut g = c.benchmark_group("merkle");
    g.throughput(Throughput::Elements(txids.len() as u64));
    g.bench_function("root_2000_txids", |b| {
        b.iter(|| black_box(merkle_root(&txids)))
    });
    g.finish();
}

criterion_group!(benches, hashing, merkle);
criterion_main!(benches);
