//! Chain-state benchmarks, printed as a table (`cargo bench -p camel-node --bench chain_state`):
//!
//! 1. connecting a block of 2,000 one-input P2PKH transactions (store, validation, scripts on
//!    every core, one commit) against the bare secp256k1 verify rate over the same
//!    signatures on the same number of threads: as secp256k1's own verify benchmark counts
//!    it (public key and DER signature parsed, then verified), and with the keys parsed
//!    beforehand. This host's speed drifts by up to 2x within seconds, so each round connects
//!    the same block on three nodes holding the same chain, runs each bare loop three times
//!    around them, and compares the fastest of each (a min against a min);
//! 2. the miner's hashes per second per core against a bare SHA-256d midstate loop;
//! 3. the resident memory of a `camel-node` process while it mines and connects many regtest
//!    blocks;
//! 4. a new `camel-node` process syncing those blocks over P2P from one that mined them
//!    (headers first, then blocks; each with its own redb store): blocks per second and RSS.
//!
//! Arguments (after `--`): `connect`, `mine`, `memory`, `sync` to run one part (default:
//! all); `--blocks N` for the memory and sync runs (default 10,000), `--cache-mib M` for
//! the (new) node's store cache. Without `--bench` (as `cargo test --all-targets` runs it) every part runs once at a
//! small size, as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use camel_core::block::Header;
use camel_core::keys::{PublicKey, verify_hash};
use camel_core::params::Params;
use camel_core::pow::Target;
use camel_core::sighash::SighashCache;
use camel_core::transaction::{Transaction, TxOut};
use camel_node::miner::{WorkUnit, mine};
use common::*;

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A parsed public key, a DER signature, the digest it signs, and the key as serialized
/// in the scriptSig.
type Sig = (PublicKey, Vec<u8>, camel_core::Hash256, Vec<u8>);

/// The signature of every input of `txs`.
fn signatures(txs: &[Transaction], spent: &[TxOut]) -> Vec<Sig> {
    txs.iter()
        .zip(spent)
        .map(|(tx, out)| {
            let cache = SighashCache::new(tx);
            let digest = cache
                .signature_hash(0, &out.script_pubkey, out.value)
                .unwrap();
            let ins: Vec<_> = tx.inputs[0].script_sig.instructions().collect();
            let (sig, pk) = match ins.as_slice() {
                [
                    Ok(camel_core::script::Instruction::Push(s)),
                    Ok(camel_core::script::Instruction::Push(p)),
                ] => (
                    s[..s.len() - 1].to_vec(),
                    (PublicKey::from_slice(p).unwrap(), p.to_vec()),
                ),
                other => panic!("not a P2PKH scriptSig: {other:?}"),
            };
            (pk.0, sig, digest, pk.1)
        })
        .collect()
}

/// Verifies every signature on `threads` threads (keys parsed beforehand, or parsed from their
/// bytes as a script must and as secp256k1's `bench_verify` does); returns the elapsed time.
/// The threads take batches of 16 from a shared counter, as the node's check queue does, so
/// that a core slowed by the host does not hold the others up (fixed halves would).
fn bare_verify(sigs: &[Sig], threads: usize, parse_keys: bool) -> Duration {
    const BATCH: usize = 16;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let from = next.fetch_add(BATCH, Ordering::Relaxed);
                    let Some(batch) = sigs.get(from..sigs.len().min(from + BATCH)) else {
                        break;
                    };
                    if batch.is_empty() {
                        break;
                    }
                    for (pk, sig, digest, pk_bytes) in batch {
                        if parse_keys {
                            let pk = PublicKey::from_slice(pk_bytes).unwrap();
                            verify_hash(&pk, digest, sig).unwrap();
                        } else {
                            verify_hash(pk, digest, sig).unwrap();
                        }
                    }
                }
            });
        }
    });
    start.elapsed()
}

fn connect(n_txs: usize) {
    let dir = TempDir::new("bench-connect");
    let node = open_node(dir.path());
    let k = key(1);
    let to_k = script_of(&k);
    const ROUNDS: usize = 9;
    let hashes = node.generate(100 + ROUNDS as u32, &to_k, 1).unwrap();
    // Fan out: one transaction per round with 2,000 outputs to k.
    let fan: Vec<Transaction> = hashes[..ROUNDS]
        .iter()
        .map(|h| {
            let b = node.store().block(h).unwrap().unwrap();
            split(&k, coinbase_coin(&b), n_txs, &to_k, 100_000)
        })
        .collect();
    for t in &fan {
        node.submit_tx(t.clone()).unwrap();
    }
    node.generate(1, &to_k, 1).unwrap();
    // Two more nodes on the same chain: each round's block is connected by all three.
    let twin_dirs = [
        TempDir::new("bench-connect-b"),
        TempDir::new("bench-connect-c"),
    ];
    let twins: Vec<_> = twin_dirs.iter().map(|d| open_node(d.path())).collect();
    let height = node.chain().height();
    let active: Vec<_> = (1..=height)
        .map(|h| node.chain().hash_at(h).unwrap())
        .collect();
    for twin in &twins {
        for h in &active {
            twin.submit_block(node.store().block(h).unwrap().unwrap())
                .unwrap();
        }
        assert_eq!(twin.chain().tip(), node.chain().tip());
    }
    let nodes: Vec<&camel_node::node::Node> = std::iter::once(&node).chain(&twins).collect();
    let t = threads();
    println!("\n## Connecting a block of {n_txs} one-input P2PKH transactions ({t} threads)\n");
    println!(
        "| round | block bytes | bare parse + verify, {t} thr (best of 3) | bare verify, keys parsed before (best of 3) | rules without scripts | scripts alone, {t} thr | whole connect, `submit_block` (best of 3 nodes) | connect / bare parse + verify | connect / bare verify | coins and indexes written, after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    let mut parsing_ratios = Vec::new();
    for (round, f) in fan.iter().enumerate() {
        let coins = coins_of(f);
        let txs: Vec<Transaction> = coins
            .iter()
            .map(|c| {
                spend(
                    &k,
                    std::slice::from_ref(c),
                    vec![TxOut {
                        value: amount(c.1.value.to_base() - 1_000),
                        script_pubkey: to_k.clone(),
                    }],
                )
            })
            .collect();
        let spent: Vec<TxOut> = coins.iter().map(|c| c.1.clone()).collect();
        let sigs = signatures(&txs, &spent);
        let tip = node.chain().tip();
        let block = block_on(&node.chain(), tip, txs, 1_000 * n_txs as u64, &to_k, 0);
        let size = camel_core::encode::encode_to_vec(&block).len();
        // Where the time goes: inputs and rules without scripts, then all of validation.
        let breakdown = {
            let chain = node.chain();
            let ctx = chain.context_after(&tip, camel_node::chain::now()).unwrap();
            let snap = node.store().snapshot().unwrap();
            let t0 = Instant::now();
            let (_, checks) =
                camel_core::contextual::connect_block(&block, &ctx, &snap, &snap, chain.params())
                    .unwrap();
            let rules = t0.elapsed();
            let t1 = Instant::now();
            camel_node::chain::run_script_checks(
                &checks,
                &camel_core::interpreter::NoFraudProofs,
                t,
            )
            .unwrap();
            let scripts = t1.elapsed();
            (rules, scripts)
        };
        // The bare loops, each before, between and after the connects.
        let mut bare_runs = vec![(bare_verify(&sigs, t, false), bare_verify(&sigs, t, true))];
        let mut connects = Vec::new();
        let mut indexings = Vec::new();
        for n in &nodes {
            let start = Instant::now();
            n.submit_block(block.clone()).unwrap();
            connects.push(start.elapsed());
            // The node's background thread then writes the block's coins to the UTXO table
            // and brings the transaction and address indexes to the new tip; wait for it,
            // so it does not run into the next measurement.
            let index_start = Instant::now();
            let snap = n.indexed_snapshot(Duration::from_secs(60)).unwrap();
            let (tip_now, indexed) = snap.tips().unwrap();
            assert_eq!(tip_now, indexed);
            assert_eq!(tip_now, Some(block.block_hash()));
            drop(snap);
            indexings.push(index_start.elapsed());
            if bare_runs.len() < 3 {
                bare_runs.push((bare_verify(&sigs, t, false), bare_verify(&sigs, t, true)));
            }
        }
        let took = connects.iter().copied().min().unwrap();
        let indexing = indexings.iter().copied().max().unwrap();
        let bare = bare_runs.iter().map(|r| r.0).min().unwrap();
        let bare_parsing = bare_runs.iter().map(|r| r.1).min().unwrap();
        let ratio = bare.as_secs_f64() / took.as_secs_f64();
        let parsing_ratio = bare_parsing.as_secs_f64() / took.as_secs_f64();
        ratios.push(ratio);
        parsing_ratios.push(parsing_ratio);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {} | {size} | {:.1} ms (of {}) | {:.1} ms (of {}) | {:.1} ms | {:.1} ms | {:.1} ms (of {}; {:.0} tx/s) | **{parsing_ratio:.2}** | {ratio:.2} | ≤ {:.1} ms |",
            round + 1,
            ms(bare_parsing),
            list(bare_runs.iter().map(|r| r.1)),
            ms(bare),
            list(bare_runs.iter().map(|r| r.0)),
            ms(breakdown.0),
            ms(breakdown.1),
            ms(took),
            list(connects.iter().copied()),
            n_txs as f64 / took.as_secs_f64(),
            ms(indexing),
        );
    }
    let single = {
        let coins = coins_of(&fan[0]);
        let spent: Vec<TxOut> = coins.iter().map(|c| c.1.clone()).collect();
        let txs: Vec<Transaction> = coins
            .iter()
            .map(|c| spend(&k, std::slice::from_ref(c), vec![c.1.clone()]))
            .collect();
        bare_verify(&signatures(&txs, &spent), 1, false)
    };
    ratios.sort_by(f64::total_cmp);
    parsing_ratios.sort_by(f64::total_cmp);
    println!(
        "\nmedian connect / bare parse + verify (secp256k1's bench_verify) {:.2} (goal ≥ 0.8), against verify with keys parsed before {:.2}; bare verify on 1 thread: {:.0} sig/s",
        parsing_ratios[parsing_ratios.len() / 2],
        ratios[ratios.len() / 2],
        n_txs as f64 / single.as_secs_f64()
    );
}

/// Milliseconds, as "1.0, 2.0, 3.0".
fn list(ds: impl Iterator<Item = Duration>) -> String {
    ds.map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mining(run: Duration) {
    let p = Params::regtest();
    // A target no hash meets: the miner runs until stopped.
    let unit = WorkUnit {
        height: 1,
        prev: p.genesis_hash,
        bits: 0x0300_0001,
        time: p.genesis_time + 1,
        version: 1,
        txs: vec![],
        reward: p.block_subsidy(1),
        payout: script_of(&key(1)),
    };
    println!(
        "\n## Miner vs bare SHA-256d midstate loop ({:.1} s each)\n",
        run.as_secs_f64()
    );
    println!("| threads | bare loop, hashes/s | miner, hashes/s | miner / bare |");
    println!("|---|---|---|---|");
    for t in [1, threads()] {
        let bare = {
            let header = Header {
                version: 1,
                prev_blockhash: p.genesis_hash,
                merkle_root: camel_core::Hash256::hash(b"m"),
                time: 0,
                bits: 0x0300_0001,
                nonce: 0,
            };
            let target = Target::from_compact(0x0300_0001).unwrap();
            let stop = AtomicBool::new(false);
            let count = AtomicU64::new(0);
            let start = Instant::now();
            std::thread::scope(|s| {
                for i in 0..t {
                    let (stop, count, target) = (&stop, &count, &target);
                    s.spawn(move || {
                        let mid = Header {
                            time: i as u32,
                            ..header
                        }
                        .midstate();
                        let mut n = 0u32;
                        let mut hits = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            for _ in 0..(1 << 16) {
                                if target.is_met_by(&mid.hash(n)) {
                                    hits += 1;
                                }
                                n = n.wrapping_add(1);
                            }
                            count.fetch_add(1 << 16, Ordering::Relaxed);
                        }
                        std::hint::black_box(hits);
                    });
                }
                std::thread::sleep(run);
                stop.store(true, Ordering::Relaxed);
            });
            count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
        };
        let miner = {
            let stop = AtomicBool::new(false);
            let hashes = AtomicU64::new(0);
            let start = Instant::now();
            std::thread::scope(|s| {
                s.spawn(|| {
                    std::thread::sleep(run);
                    stop.store(true, Ordering::Relaxed);
                });
                assert!(mine(&unit, t, &stop, &hashes).is_none());
            });
            hashes.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
        };
        println!(
            "| {t} | {:.2} M | {:.2} M | {:.2} |",
            bare / 1e6,
            miner / 1e6,
            miner / bare
        );
    }
}

/// RSS of a `camel-node` process (the release binary) while `POST /generate` makes it mine
/// and connect `blocks` regtest blocks, sampled every tenth.
fn memory(blocks: u32, cache_mib: Option<&str>) {
    let dir = TempDir::new("bench-memory");
    let data = dir.path().join("data");
    let extra: Vec<&str> = cache_mib
        .map(|c| vec!["--db-cache-mib", c])
        .unwrap_or_default();
    let mut node = common::process::start(&data, &dir.path().join("node.log"), &extra);
    let pid = node.child.id();
    let rss = || rss_of(pid).0;
    let address = camel_core::address::Address::p2pkh(&key(1).public_key(), 0x6f).to_string();
    println!(
        "\n## Node process RSS while it mines and connects {blocks} regtest blocks (store cache: {} MiB)\n",
        cache_mib.unwrap_or("default 64")
    );
    println!("| blocks connected | node RSS (MiB) | store file (MiB) | blocks/s since last row |");
    println!("|---|---|---|---|");
    println!("| 0 | {:.1} | - | - |", rss() as f64 / 1024.0);
    let step = (blocks / 10).clamp(1, camel_node::api::MAX_GENERATE);
    generate_via_api(&node, blocks, step, &address, |done, n, took| {
        let size = std::fs::metadata(data.join("chain.redb"))
            .map(|m| m.len())
            .unwrap_or(0);
        println!(
            "| {done} | {:.1} | {:.1} | {:.0} |",
            rss() as f64 / 1024.0,
            size as f64 / 1048576.0,
            f64::from(n) / took.as_secs_f64()
        );
    });
    let status = node.signal_and_wait("TERM", Duration::from_secs(30));
    assert!(status.success());
}

/// Has `node` mine `blocks` blocks to `address` through `POST /generate`, `step` per call;
/// `after(done, n, took)` runs after each call.
fn generate_via_api(
    node: &common::process::NodeProcess,
    blocks: u32,
    step: u32,
    address: &str,
    mut after: impl FnMut(u32, u32, Duration),
) {
    let mut done = 0;
    while done < blocks {
        let n = step.min(blocks - done);
        let start = Instant::now();
        let (status, body) = node.post(
            "/generate",
            true,
            &format!(r#"{{"n": {n}, "address": "{address}"}}"#),
        );
        assert_eq!(status, 200, "{body}");
        done += n;
        after(done, n, start.elapsed());
    }
}

/// VmRSS and VmHWM (peak) of process `pid`, KiB.
fn rss_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A new node syncing `blocks` regtest blocks from a node that mined them, both real
/// `camel-node` processes on loopback.
fn sync(blocks: u32, cache_mib: Option<&str>) {
    let dir = TempDir::new("bench-sync");
    let listen = ["--p2p-listen", "/ip4/127.0.0.1/tcp/0"];
    let source_data = dir.path().join("source");
    let source = common::process::start(&source_data, &dir.path().join("source.log"), &listen);
    let address = camel_core::address::Address::p2pkh(&key(1).public_key(), 0x6f).to_string();
    let mine_start = Instant::now();
    generate_via_api(
        &source,
        blocks,
        camel_node::api::MAX_GENERATE,
        &address,
        |_, _, _| {},
    );
    let mined = mine_start.elapsed();
    let bootstrap = std::fs::read_to_string(source_data.join(camel_node::daemon::P2P_ADDR_FILE))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let tip = |node: &common::process::NodeProcess| {
        let (status, v) = node.get("/tip");
        assert_eq!(status, 200, "{v}");
        v["height"].as_u64().unwrap()
    };

    let start = Instant::now();
    let mut args = listen.to_vec();
    args.extend(["--bootstrap", bootstrap.as_str()]);
    if let Some(c) = cache_mib {
        args.extend(["--db-cache-mib", c]);
    }
    let mut node =
        common::process::start(&dir.path().join("new"), &dir.path().join("new.log"), &args);
    let pid = node.child.id();
    let mut first_block = None;
    let mut rss_max = 0;
    loop {
        let height = tip(&node);
        rss_max = rss_max.max(rss_of(pid).0);
        if height > 0 && first_block.is_none() {
            first_block = Some(start.elapsed());
        }
        if height >= u64::from(blocks) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "sync stalled at height {height}; log in {}",
            dir.path().join("new.log").display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    let (rss_end, hwm) = rss_of(pid);
    // The indexes follow once the sync is done (or a query asks): time until the last
    // block's coinbase is found by txid.
    let (status, last) = node.get(&format!("/block/{blocks}"));
    assert_eq!(status, 200, "{last}");
    let coinbase = last["txids"][0].as_str().unwrap().to_owned();
    let index_wait = Instant::now();
    while node.get(&format!("/tx/{coinbase}")).0 != 200 {
        assert!(
            index_wait.elapsed() < Duration::from_secs(300),
            "indexes never caught up"
        );
    }
    let indexed = index_wait.elapsed();
    assert_eq!(
        node.get("/chainstate").1["utxo_set_hash"],
        source.get("/chainstate").1["utxo_set_hash"]
    );
    let first = first_block.unwrap_or(took);
    println!(
        "\n## A new node syncs {blocks} regtest blocks from one peer (two camel-node processes)\n"
    );
    println!(
        "source mined them at {:.0} blocks/s; store file {:.1} MiB\n",
        f64::from(blocks) / mined.as_secs_f64(),
        std::fs::metadata(source_data.join("chain.redb"))
            .map(|m| m.len())
            .unwrap_or(0) as f64
            / 1048576.0
    );
    println!(
        "| blocks | start to synced | blocks/s | first block at | blocks/s after the first | RSS at the end | RSS peak (sampled / VmHWM) | indexes caught up after |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {blocks} | {:.2} s | {:.0} | {:.2} s | {:.0} | {:.1} MiB | {:.1} / {:.1} MiB | {:.2} s |",
        took.as_secs_f64(),
        f64::from(blocks) / took.as_secs_f64(),
        first.as_secs_f64(),
        f64::from(blocks) / (took - first).as_secs_f64().max(1e-3),
        rss_end as f64 / 1024.0,
        rss_max as f64 / 1024.0,
        hwm as f64 / 1024.0,
        indexed.as_secs_f64(),
    );
    assert!(
        node.signal_and_wait("TERM", Duration::from_secs(30))
            .success()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wants = |name: &str| {
        let named: Vec<&String> = args
            .iter()
            .filter(|a| ["connect", "mine", "memory", "sync"].contains(&a.as_str()))
            .collect();
        named.is_empty() || named.iter().any(|a| *a == name)
    };
    let full = args.iter().any(|a| a == "--bench");
    let blocks = args
        .iter()
        .position(|a| a == "--blocks")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 10_000 } else { 100 });
    println!(
        "cores: {}, load average: {}",
        threads(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    if wants("connect") {
        connect(if full { 2_000 } else { 50 });
    }
    if wants("mine") {
        mining(Duration::from_millis(if full { 3_000 } else { 100 }));
    }
    let cache = args
        .iter()
        .position(|a| a == "--cache-mib")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    if wants("memory") {
        memory(blocks, cache);
    }
    if wants("sync") {
        sync(blocks, cache);
    }
}
