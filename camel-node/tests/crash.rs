//! kill -9 during connects and reorganisations: 20 times at random points, a `camel-node`
//! process is killed while it is handling a block; after each restart its UTXO-set hash
//! must equal the one its tip implies (computed in memory with `connect_block`), every block
//! it acknowledged must still be there, and at the end it must agree with a reference node
//! that imported the same blocks cleanly.

mod common;

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use camel_core::block::Block;
use camel_core::encode::encode_to_vec;
use camel_core::hash::{BlockHash, Hash256, JobId, to_hex};
use camel_core::job::rules::JobRecord;
use camel_core::transaction::OutPoint;
use camel_core::utxo::{Coin, utxo_set_hash};
use common::process::{NodeProcess, start};
use common::*;
use rand::Rng;

struct Sequence {
    blocks: Vec<Block>,
    /// Indexes of blocks whose arrival made the reference reorganise.
    reorg_triggers: Vec<usize>,
    /// UTXO-set hash implied by each block as tip.
    expected: HashMap<BlockHash, Hash256>,
    final_tip: BlockHash,
    final_hash: Hash256,
}

/// Mines a chain with transactions and forks (reorganisations of 2 to 5 blocks) on an
/// in-process reference node, in the order the victim will receive the blocks.
fn build_sequence(dir: &std::path::Path) -> Sequence {
    let r = open_node(dir);
    let k = key(1);
    let to_k = script_of(&k);
    let other = script_of(&key(2));
    let mut blocks = Vec::new();
    let mut reorg_triggers = Vec::new();
    let load = |h: &BlockHash| r.store().block(h).unwrap().unwrap();
    let prefix = r.generate(102, &to_k, 1).unwrap();
    blocks.extend(prefix.iter().map(load));
    let mut next_cb = 0;
    let mut rng = rand::rng();
    for round in 0..8u32 {
        for _ in 0..3 {
            let cb = coinbase_coin(&blocks[next_cb]);
            next_cb += 1;
            r.submit_tx(split(&k, cb, 2, &other, 500)).unwrap();
            blocks.extend(r.generate(1, &to_k, 1).unwrap().iter().map(load));
        }
        // A fork from 1..=4 blocks below the tip, one block longer.
        let depth = rng.random_range(1..=4u32);
        let height = r.chain().height();
        let mut parent = r.chain().hash_at(height - depth).unwrap();
        for i in 0..=depth {
            let b = block_on(&r.chain(), parent, vec![], 0, &other, 1000 + round * 10 + i);
            parent = b.block_hash();
            let out = r.submit_block(b.clone()).unwrap();
            if !out.change.disconnected.is_empty() {
                reorg_triggers.push(blocks.len());
            }
            blocks.push(b);
        }
        assert_eq!(r.chain().tip(), parent);
    }
    // The expected UTXO set after each block, by applying blocks in memory.
    let mut states: HashMap<BlockHash, HashMap<OutPoint, Coin>> = HashMap::new();
    let genesis = r.params().genesis_hash;
    states.insert(genesis, HashMap::new());
    let no_jobs: HashMap<JobId, JobRecord> = HashMap::new();
    let mut expected = HashMap::new();
    expected.insert(genesis, utxo_set_hash(std::iter::empty()));
    for b in &blocks {
        let parent = b.header.prev_blockhash;
        let ctx = r
            .chain()
            .context_after(&parent, camel_node::chain::now())
            .unwrap();
        let view = &states[&parent];
        let (changes, _) =
            camel_core::contextual::connect_block(b, &ctx, view, &no_jobs, r.params()).unwrap();
        let mut state = view.clone();
        for (op, _) in &changes.spent {
            state.remove(op);
        }
        state.extend(changes.created.iter().cloned());
        expected.insert(b.block_hash(), utxo_set_hash(state.iter()));
        states.insert(b.block_hash(), state);
    }
    let final_tip = r.chain().tip();
    let final_hash = r.store().utxo_stats().unwrap().hash;
    assert_eq!(expected[&final_tip], final_hash);
    assert!(reorg_triggers.len() >= 8);
    Sequence {
        blocks,
        reorg_triggers,
        expected,
        final_tip,
        final_hash,
    }
}

fn block_body(b: &Block) -> String {
    to_hex(&encode_to_vec(b))
}

fn check_state(node: &NodeProcess, seq: &Sequence, acked: &[BlockHash]) -> BlockHash {
    let (status, cs) = node.get("/chainstate");
    assert_eq!(status, 200, "{cs}");
    let tip: BlockHash = cs["hash"].as_str().unwrap().parse().unwrap();
    let hash: Hash256 = cs["utxo_set_hash"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        Some(&hash),
        seq.expected.get(&tip),
        "UTXO set after restart does not match tip {tip}"
    );
    for h in acked {
        let (status, _) = node.get(&format!("/block/{h}"));
        assert_eq!(status, 200, "acknowledged block {h} lost");
    }
    tip
}

#[test]
fn kill_9_during_connects_and_reorgs_loses_nothing() {
    let started = Instant::now();
    let ref_dir = TempDir::new("crash-ref");
    let seq = build_sequence(ref_dir.path());
    let victim = TempDir::new("crash-victim");
    let data = victim.path().join("data");
    let log = victim.path().join("node.log");
    let mut rng = rand::rng();
    let mut next = 0usize;
    let mut acked: Vec<BlockHash> = Vec::new();
    let mut kills_in_reorg = 0;
    // How many in-flight blocks had been committed when the process died.
    let mut in_flight_committed = 0;
    let mut in_flight: Option<BlockHash> = None;
    for _ in 0..20 {
        let mut node = start(&data, &log, &[]);
        check_state(&node, &seq, &acked);
        if let Some(h) = in_flight.take()
            && node.get(&format!("/block/{h}")).0 == 200
        {
            in_flight_committed += 1;
        }
        // Half the kills land on a block that triggers a reorganisation.
        let target = match seq.reorg_triggers.iter().find(|&&t| t >= next) {
            Some(&t) if rng.random_bool(0.5) => t,
            _ => (next + rng.random_range(0..10)).min(seq.blocks.len() - 1),
        };
        while next < target {
            let (status, body) = node.post("/block", true, &block_body(&seq.blocks[next]));
            assert_eq!(status, 200, "{body}");
            acked.push(seq.blocks[next].block_hash());
            next += 1;
        }
        if seq.reorg_triggers.contains(&next) {
            kills_in_reorg += 1;
        }
        // The next block is in flight when the process dies.
        let mut s = TcpStream::connect(node.addr).unwrap();
        send_request(
            &mut s,
            "POST",
            "/block",
            Some(&node.token),
            &block_body(&seq.blocks[next]),
        )
        .unwrap();
        in_flight = Some(seq.blocks[next].block_hash());
        std::thread::sleep(Duration::from_micros(rng.random_range(0..6_000)));
        node.kill_9();
    }
    // Restart, deliver everything, and compare with the reference.
    let mut node = start(&data, &log, &[]);
    check_state(&node, &seq, &acked);
    for b in &seq.blocks[next..] {
        let (status, body) = node.post("/block", true, &block_body(b));
        assert_eq!(status, 200, "{body}");
    }
    let tip = check_state(&node, &seq, &acked);
    assert_eq!(tip, seq.final_tip);
    let (_, cs) = node.get("/chainstate");
    assert_eq!(cs["utxo_set_hash"], seq.final_hash.to_string());
    let status = node.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(kills_in_reorg >= 1);
    // A clean stop writes the coins held in memory: nothing to replay.
    let store = camel_node::store::Store::open(&data.join("chain.redb"), 4 << 20).unwrap();
    assert_eq!(store.replayed_at_open(), 0);
    drop(store);
    let replays = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("replaying the coin changes")
        .count();
    // The indexes, moved in the background and killed with the rest, catch up to the
    // tip and agree with the UTXO set.
    let reopened = open_node(&data);
    let snap = reopened.indexed_snapshot(Duration::from_secs(60)).unwrap();
    let (tip_now, indexed) = snap.tips().unwrap();
    assert_eq!(tip_now, indexed);
    assert_eq!(tip_now, Some(seq.final_tip));
    assert!(reopened.store().address_index_matches_utxo_set().unwrap());
    let last = seq
        .blocks
        .iter()
        .find(|b| b.block_hash() == seq.final_tip)
        .unwrap();
    assert_eq!(
        snap.tx_location(&last.txdata[0].txid()).unwrap(),
        Some((seq.final_tip, 0))
    );
    eprintln!(
        "{} blocks, 20 kills ({kills_in_reorg} while a reorganising block was in flight, \
         {in_flight_committed} after the in-flight block was stored, {replays} restarts \
         replayed coins), {:.1} s",
        seq.blocks.len(),
        started.elapsed().as_secs_f64()
    );
}
