//! The wallet's header verification against a bare loop over the same headers:
//! `cargo bench -p camel-wallet --bench headers`. Prints a table; figures in docs/perf.md.
//!
//! - **verify**: [`HeaderChain::extend`] from the genesis: proof of work, required bits,
//!   linkage, median time past, chain work;
//! - **bare**: SHA-256d of each 80-byte header and a comparison with the next one's parent
//!   hash, nothing else.

use std::hint::black_box;
use std::time::{Duration, Instant};

use camel_core::block::Header;
use camel_core::hash::{BlockHash, Hash256};
use camel_core::params::Params;
use camel_wallet::spv::HeaderChain;

const N: usize = 10_000;
const REPS: usize = 7;

fn chain(params: &Params) -> Vec<Header> {
    let genesis = params.genesis_block().header;
    let mut prev = genesis;
    (0..N)
        .map(|i| {
            let mut h = Header {
                version: 1,
                prev_blockhash: prev.block_hash(),
                merkle_root: Hash256::hash(&(i as u64).to_le_bytes()),
                time: genesis.time + 1 + i as u32,
                bits: genesis.bits,
                nonce: 0,
            };
            assert!(h.solve());
            prev = h;
            h
        })
        .collect()
}

fn best(mut f: impl FnMut()) -> Duration {
    (0..REPS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let params = Params::regtest();
    let headers = chain(&params);
    let genesis = params.genesis_block().header.block_hash();
    let verify = best(|| {
        let mut c = HeaderChain::new(params.clone());
        c.extend(black_box(&headers), u32::MAX).unwrap();
        black_box(c.tip());
    });
    let bare = best(|| {
        let mut last: BlockHash = genesis;
        for h in black_box(&headers) {
            assert_eq!(h.prev_blockhash, last);
            last = BlockHash::hash(&h.to_bytes());
        }
        black_box(last);
    });
    let rate = |d: Duration| N as f64 / d.as_secs_f64();
    println!("{N} regtest headers, best of {REPS}\n");
    println!("| loop | ms | headers/s |");
    println!("|---|---|---|");
    println!(
        "| verify (HeaderChain::extend) | {:.2} | {:.0} |",
        verify.as_secs_f64() * 1e3,
        rate(verify)
    );
    println!(
        "| bare sha256d + linkage | {:.2} | {:.0} |",
        bare.as_secs_f64() * 1e3,
        rate(bare)
    );
    println!(
        "\nverify / bare throughput: {:.2}",
        rate(verify) / rate(bare)
    );
}
