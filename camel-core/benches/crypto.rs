//! Hashing and signature benchmarks, each beside the bare library call it wraps.
//!
//! `cargo bench -p camel-core --bench crypto`; figures and ratios in docs/perf.md.

use std::hint::black_box;

use camel_core::hash::{Hash256, sha256d};
use camel_core::keys::{PrivateKey, sign_hash, verify_hash};
use camel_core::params::Params;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

fn signatures(c: &mut Criterion) {
    let key = PrivateKey::from_slice(&[0x5a; 32]).unwrap();
    let public = key.public_key();
    let digest = Hash256::hash(b"a transaction's signature hash");
    let der = sign_hash(&key, &digest);

    // The bare library: a parsed signature and key, verify only.
    let sk = secp256k1::SecretKey::from_secret_bytes([0x5a; 32]).unwrap();
    let pk = sk.public_key();
    let msg = secp256k1::Message::from_digest(digest.to_byte_array());
    let sig = secp256k1::ecdsa::Signature::from_der(&der).unwrap();

    let mut g = c.benchmark_group("ecdsa_verify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bare_secp256k1_verify", |b| {
        b.iter(|| black_box(&sig).verify(black_box(msg), black_box(&pk)))
    });
    // Ours also parses strict DER and checks low S, as a script's CHECKSIG does.
    g.bench_function("camel_verify_hash", |b| {
        b.iter(|| verify_hash(black_box(&public), black_box(&digest), black_box(&der)))
    });
    g.finish();
}

fn header_hashing(c: &mut Criterion) {
    let header = Params::regtest().genesis_block().header;
    let bytes = header.to_bytes();
    let midstate = header.midstate();
    let mut g = c.benchmark_group("header_sha256d");
    g.throughput(Throughput::Elements(1));
    // The bare library on the 80 encoded bytes.
    g.bench_function("bare_sha2_80_bytes", |b| {
        b.iter(|| Sha256::digest(Sha256::digest(black_box(bytes))))
    });
    g.bench_function("camel_sha256d_80_bytes", |b| {
        b.iter(|| sha256d(black_box(&bytes)))
    });
    // What a block hash costs from the header struct (encode, then hash).
    g.bench_function("camel_header_block_hash", |b| {
        b.iter(|| black_box(&header).block_hash())
    });
    // The miner's inner loop: the first 64 bytes' compression is precomputed, so each nonce
    // costs two compressions instead of three.
    let mut nonce = 0u32;
    g.bench_function("camel_midstate_hash", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            midstate.hash(black_box(nonce))
        })
    });
    g.finish();
}

criterion_group!(benches, signatures, header_hashing);
criterion_main!(benches);
