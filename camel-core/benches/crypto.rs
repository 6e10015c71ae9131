//! Hashing and signature benchmarks, each beside the bare library call it wraps.
//!
//! `cargo bench -p camel-core --bench crypto`; figures and ratios in docs/perf.md.

use std::hint::black_box;

use camel_core::hash::{Hash256, sha256d};
use camel_core::keys::{PrivateKey, sign_hash, verify_hash};
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
    g.bench_function("bare_secp256k1_verify", |b| b.iter(|| black_box(&sig).verify(black_box(msg), black_box(&pk))));
    // Ours also parses strict DER and checks low S, as a script's CHECKSIG does.
    g.bench_function("camel_verify_hash", |b| {
        b.iter(|| verify_hash(black_box(&public), black_box(&digest), black_box(&der)))
    });
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let data = [0x42u8; 80];
    let mut g = c.benchmark_group("sha256d_80_bytes");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bare_sha2", |b| b.iter(|| Sha256::digest(Sha256::digest(black_box(data)))));
    g.bench_function("camel_sha256d", |b| b.iter(|| sha256d(black_box(&data))));
    g.finish();
}

criterion_group!(benches, signatures, hashing);
criterion_main!(benches);
