//! Reorganisations of 1, 6 and 100 blocks, an invalid branch with more work, orphans and
//! restarts, checked against reference nodes by the UTXO-set hash.

mod common;

use camel_core::block::Block;
use camel_core::hash::{BlockHash, Txid};
use camel_core::transaction::{OutPoint, TxOut};
use camel_node::chain::{Accepted, ChainError};
use camel_node::node::{Node, NodeError};
use common::*;
use std::time::Duration;

fn block(node: &Node, hash: &BlockHash) -> Block {
    node.store().block(hash).unwrap().unwrap()
}

fn feed(to: &Node, from: &Node, hashes: &[BlockHash]) {
    for h in hashes {
        to.submit_block(block(from, h)).unwrap();
    }
}

fn assert_same_state(a: &Node, b: &Node) {
    assert_eq!(a.chain().tip(), b.chain().tip());
    assert_eq!(a.chain().height(), b.chain().height());
    // The store's height table agrees with the chain in memory, to the tip and no further.
    let snap = a.store().snapshot().unwrap();
    let height = a.chain().height();
    for h in 0..=height {
        assert_eq!(snap.hash_at(h).unwrap(), a.chain().hash_at(h), "height {h}");
    }
    assert_eq!(snap.hash_at(height + 1).unwrap(), None);
    assert_eq!(
        a.store().utxo_stats().unwrap(),
        b.store().utxo_stats().unwrap()
    );
    assert_indexed(a);
}

/// Once the indexer catches up, the address index lists exactly the UTXO set, and every
/// transaction of the active chain's last blocks is found where it is.
fn assert_indexed(node: &Node) {
    let snap = node.indexed_snapshot(Duration::from_secs(30)).unwrap();
    let (tip, indexed) = snap.tips().unwrap();
    assert_eq!(tip, indexed, "the indexer did not reach the tip");
    assert!(node.store().address_index_matches_utxo_set().unwrap());
    let height = node.chain().height();
    for h in height.saturating_sub(10)..=height {
        let hash = node.chain().hash_at(h).unwrap();
        for (pos, tx) in block(node, &hash).txdata.iter().enumerate() {
            assert_eq!(
                snap.tx_location(&tx.txid()).unwrap(),
                Some((hash, pos as u32)),
                "height {h}"
            );
        }
    }
}

const PREFIX: u32 = 110;

/// Nodes A (under test), B (will follow the fork) and C (will follow A's first branch), all
/// sharing a 110-block prefix whose coinbases pay `key(1)`.
fn setup(tag: &str) -> (Vec<TempDir>, Node, Node, Node, Vec<BlockHash>) {
    let dirs: Vec<TempDir> = ["a", "b", "c"]
        .iter()
        .map(|n| TempDir::new(&format!("{tag}-{n}")))
        .collect();
    let (a, b, c) = (
        open_node(dirs[0].path()),
        open_node(dirs[1].path()),
        open_node(dirs[2].path()),
    );
    let prefix = a.generate(PREFIX, &script_of(&key(1)), 1).unwrap();
    feed(&b, &a, &prefix);
    feed(&c, &a, &prefix);
    (dirs, a, b, c, prefix)
}

fn reorg_of_depth(depth: u32) {
    let (_dirs, a, b, c, prefix) = setup(&format!("reorg{depth}"));
    let k = key(1);
    let mine_to = script_of(&key(2));
    // A's branch: block i spends the coinbase of prefix block i + 1.
    let mut original_txs: Vec<Txid> = Vec::new();
    let mut branch = Vec::new();
    for h in prefix.iter().take(depth as usize) {
        let cb = coinbase_coin(&block(&a, h));
        let tx = split(&k, cb, 2, &script_of(&key(3)), 1_000);
        original_txs.push(a.submit_tx(tx).unwrap());
        branch.extend(a.generate(1, &mine_to, 1).unwrap());
    }
    feed(&c, &a, &branch);
    assert_same_state(&a, &c);
    // B's fork, one block longer; its first block double-spends the coinbase A's first
    // branch transaction spent.
    let cb = coinbase_coin(&block(&b, &prefix[0]));
    let double = split(&k, cb, 3, &script_of(&key(4)), 2_000);
    let double_txid = b.submit_tx(double).unwrap();
    let fork = b.generate(depth + 1, &script_of(&key(5)), 1).unwrap();
    let before = a.store().utxo_stats().unwrap();
    feed(&a, &b, &fork);
    assert_same_state(&a, &b);
    assert_ne!(a.store().utxo_stats().unwrap(), before);
    // The disconnected branch's transactions left the transaction index.
    let snap = a.indexed_snapshot(Duration::from_secs(30)).unwrap();
    for t in &original_txs {
        assert_eq!(snap.tx_location(t).unwrap(), None);
    }
    drop(snap);
    // A's disconnected transactions returned to its pool, except the one the fork
    // double-spent.
    {
        let pool = a.mempool();
        assert!(pool.get(&original_txs[0]).is_none());
        for t in &original_txs[1..] {
            assert!(pool.get(t).is_some(), "{t} should be back in the pool");
        }
        assert_eq!(pool.len(), original_txs.len() - 1);
    }
    // C extends A's first branch past the fork: A goes back.
    let back = c.generate(2, &mine_to, 1).unwrap();
    feed(&a, &c, &back);
    assert_same_state(&a, &c);
    assert_eq!(
        a.store().utxo_stats().unwrap(),
        c.store().utxo_stats().unwrap()
    );
    // Everything in the pool confirmed or conflicted.
    assert!(a.mempool().get(&double_txid).is_none());
    assert_eq!(a.mempool().len(), 0);
    // The store survives a reopen with the same state.
    let dir = _dirs[0].path().to_path_buf();
    drop(a);
    let a = open_node(&dir);
    assert_same_state(&a, &c);
}

#[test]
fn reorg_1_block() {
    reorg_of_depth(1);
}

#[test]
fn reorg_6_blocks() {
    reorg_of_depth(6);
}

#[test]
fn reorg_100_blocks() {
    reorg_of_depth(100);
}

#[test]
fn invalid_branch_with_more_work_is_marked_and_abandoned() {
    let (dirs, a, b, c, prefix) = setup("invalid");
    let k = key(1);
    let mine_to = script_of(&key(2));
    let mut branch = Vec::new();
    for h in prefix.iter().take(3) {
        let cb = coinbase_coin(&block(&a, h));
        a.submit_tx(split(&k, cb, 2, &script_of(&key(3)), 1_000))
            .unwrap();
        branch.extend(a.generate(1, &mine_to, 1).unwrap());
    }
    feed(&c, &a, &branch);
    let original_tip = a.chain().tip();
    // B: one valid block, then one spending a coin that does not exist, then children.
    let fork1 = b.generate(1, &mine_to, 1).unwrap()[0];
    let missing = (
        OutPoint::new(Txid::hash(b"no such transaction"), 0),
        TxOut {
            value: amount(100_000_000),
            script_pubkey: script_of(&k),
        },
    );
    let bad_tx = spend(
        &k,
        &[missing],
        vec![TxOut {
            value: amount(99_000_000),
            script_pubkey: script_of(&k),
        }],
    );
    let bad = block_on(&b.chain(), fork1, vec![bad_tx], 0, &mine_to, 0);
    let bad_hash = bad.block_hash();
    let err = b.submit_block(bad.clone()).unwrap_err();
    assert!(
        matches!(&err, NodeError::Chain(ChainError::Invalid { reason, .. }) if reason == "bad-txns-inputs-missingorspent"),
        "{err}"
    );
    let mut fork = vec![block(&b, &fork1), bad.clone()];
    let mut parent = bad_hash;
    for salt in 0..4 {
        let child = block_on(&b.chain(), parent, vec![], 0, &mine_to, salt);
        parent = child.block_hash();
        assert!(b.submit_block(child.clone()).is_err());
        fork.push(child);
    }
    // A gets the whole fork: it has more work, A tries it, finds the bad block, marks it
    // and its descendants, and returns to its own branch.
    let before = a.store().utxo_stats().unwrap();
    let mut errors = 0;
    for blk in &fork {
        match a.submit_block(blk.clone()) {
            Ok(_) => {}
            Err(NodeError::Chain(ChainError::Invalid { .. })) => errors += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(errors >= 1);
    assert_eq!(a.chain().tip(), original_tip);
    assert_eq!(a.store().utxo_stats().unwrap(), before);
    assert_same_state(&a, &c);
    assert!(a.chain().entry(&bad_hash).unwrap().is_failed());
    assert!(a.chain().entry(&parent).unwrap().is_failed());
    assert!(!a.chain().entry(&fork1).unwrap().is_failed());
    // Known-invalid blocks are refused at once, children of invalid blocks too.
    let err = a.submit_block(bad).unwrap_err();
    assert!(err.to_string().contains("known to be invalid"), "{err}");
    let grandchild = block_on(&a.chain(), parent, vec![], 0, &mine_to, 9);
    let err = a.submit_block(grandchild).unwrap_err();
    assert!(
        matches!(&err, NodeError::Chain(ChainError::Invalid { reason, .. }) if reason == "bad-prevblk"),
        "{err}"
    );
    // The marks survive a restart.
    let dir = dirs[0].path().to_path_buf();
    drop(a);
    let a = open_node(&dir);
    assert_eq!(a.chain().tip(), original_tip);
    assert!(a.chain().entry(&bad_hash).unwrap().is_failed());
    assert_same_state(&a, &c);
}

#[test]
fn orphans_wait_for_their_parent() {
    let (da, db) = (TempDir::new("orph-a"), TempDir::new("orph-b"));
    let (a, b) = (open_node(da.path()), open_node(db.path()));
    let hashes = b.generate(6, &script_of(&key(1)), 1).unwrap();
    for h in hashes[1..].iter().rev() {
        let out = a.submit_block(block(&b, h)).unwrap();
        assert_eq!(out.accepted, Accepted::Orphan);
        assert_eq!(a.chain().height(), 0);
    }
    assert_eq!(a.chain().orphan_count(), 5);
    let out = a.submit_block(block(&b, &hashes[0])).unwrap();
    assert_eq!(out.accepted, Accepted::Stored);
    assert_eq!(out.change.connected.len(), 6);
    assert_eq!(a.chain().orphan_count(), 0);
    assert_same_state(&a, &b);
    // A second copy is a duplicate.
    let out = a.submit_block(block(&b, &hashes[3])).unwrap();
    assert_eq!(out.accepted, Accepted::Duplicate);
}

#[test]
fn invalid_block_is_rejected_with_its_reason_and_nothing_is_committed() {
    let d = TempDir::new("badblock");
    let a = open_node(d.path());
    a.generate(3, &script_of(&key(1)), 1).unwrap();
    let before = (a.chain().tip(), a.store().utxo_stats().unwrap());
    let tip = a.chain().tip();
    let good = block_on(&a.chain(), tip, vec![], 0, &script_of(&key(1)), 0);
    // A wrong merkle root (context-free), a coinbase paying too much (in context).
    let mut bad_root = good.clone();
    bad_root.header.merkle_root = camel_core::hash::Hash256::hash(b"x");
    let err = a.submit_block(bad_root).unwrap_err();
    assert!(
        matches!(&err, NodeError::Chain(ChainError::Invalid { reason, .. }) if reason == "bad-txnmrklroot" || reason == "high-hash"),
        "{err}"
    );
    let greedy = block_on(&a.chain(), tip, vec![], 1, &script_of(&key(1)), 0);
    let err = a.submit_block(greedy).unwrap_err();
    assert!(
        matches!(&err, NodeError::Chain(ChainError::Invalid { reason, .. }) if reason == "bad-cb-amount"),
        "{err}"
    );
    assert_eq!((a.chain().tip(), a.store().utxo_stats().unwrap()), before);
    a.submit_block(good).unwrap();
    assert_eq!(a.chain().height(), 4);
}

/// Scripts start before the rules from inputs resolved ahead of them; the verdicts stay those
/// of the rules first, then the scripts, and spends of outputs created earlier in the same
/// block are checked too.
#[test]
fn early_script_checks_keep_the_verdicts() {
    let d = TempDir::new("early-scripts");
    let a = open_node(d.path());
    let k = key(1);
    let mine_to = script_of(&k);
    let hashes = a.generate(102, &mine_to, 1).unwrap();
    let coin = |i: usize| coinbase_coin(&block(&a, &hashes[i]));

    // A chain of two in one block: the second spends the first's output.
    let first = split(&k, coin(0), 2, &mine_to, 1_000);
    let second = split(&k, coins_of(&first)[0].clone(), 1, &mine_to, 1_000);
    let tip = a.chain().tip();
    let chained = block_on(
        &a.chain(),
        tip,
        vec![first.clone(), second],
        2_000,
        &mine_to,
        0,
    );
    a.submit_block(chained).unwrap();
    let state = (a.chain().tip(), a.store().utxo_stats().unwrap());

    // A signature by the wrong key: a script failure, nothing committed.
    let forged = split(&key(2), coin(1), 1, &mine_to, 1_000);
    let tip = a.chain().tip();
    let bad = block_on(&a.chain(), tip, vec![forged.clone()], 1_000, &mine_to, 0);
    let err = a.submit_block(bad).unwrap_err();
    assert!(
        matches!(&err, NodeError::Chain(ChainError::Invalid { message, .. }) if message.contains("script check 0")),
        "{err}"
    );
    assert_eq!((a.chain().tip(), a.store().utxo_stats().unwrap()), state);

    // The forged spend and, after it, a spend of a coin already spent: the rules' verdict
    // comes first, though the scripts found a failure too.
    let again = split(&k, coin(0), 1, &mine_to, 1_000);
    let both = block_on(&a.chain(), tip, vec![forged, again], 2_000, &mine_to, 1);
    let err = a.submit_block(both).unwrap_err();
    assert!(
        matches!(&err, NodeError::Chain(ChainError::Invalid { reason, .. }) if reason == "bad-txns-inputs-missingorspent"),
        "{err}"
    );
    assert_eq!((a.chain().tip(), a.store().utxo_stats().unwrap()), state);

    // A good block still connects.
    let good = split(&k, coin(1), 1, &mine_to, 1_000);
    let ok = block_on(&a.chain(), tip, vec![good], 1_000, &mine_to, 2);
    a.submit_block(ok).unwrap();
    assert_eq!(a.chain().height(), 104);
    // The indexes follow, the in-block spend included.
    assert_indexed(&a);
}

/// The coin changes of the last blocks live in memory over the UTXO table: reads see them,
/// a reorganisation writes them out before disconnecting, and a store dropped without
/// writing them (a crash: no clean stop) replays them from the undo records when reopened.
#[test]
fn coins_in_memory_are_read_and_replayed_after_a_crash() {
    use camel_core::interpreter::NoFraudProofs;
    use camel_node::chain::{Chain, now};
    use camel_node::store::{MAX_LAYERS, Store};
    use std::sync::Arc;

    let (dr, dv) = (TempDir::new("layers-ref"), TempDir::new("layers-victim"));
    let r = open_node(dr.path());
    let k = key(1);
    let to_k = script_of(&k);
    let mut hashes = r.generate(101, &to_k, 1).unwrap();
    for i in 0..4 {
        let coin = coinbase_coin(&block(&r, &hashes[i]));
        r.submit_tx(split(&k, coin, 3, &to_k, 1_000)).unwrap();
        hashes.extend(r.generate(1, &to_k, 1).unwrap());
    }
    // A fork from one block below the tip, one block longer: the reference reorganises.
    let height = r.chain().height();
    let mut parent = r.chain().hash_at(height - 1).unwrap();
    // Its first block spends a coin the table holds, so the layers hold a spend too.
    let spent_cb = coinbase_coin(&block(&r, &hashes[4]));
    let mut fork_txs = vec![split(&k, spent_cb.clone(), 2, &to_k, 1_000)];
    for salt in 0..2 {
        let txs = std::mem::take(&mut fork_txs);
        let fees = if txs.is_empty() { 0 } else { 1_000 };
        let b = block_on(&r.chain(), parent, txs, fees, &to_k, 500 + salt);
        parent = b.block_hash();
        r.submit_block(b).unwrap();
        hashes.push(parent);
    }
    assert_eq!(r.chain().tip(), parent);
    let path = dv.path().join("chain.redb");
    let last_split = block(&r, &hashes[103]).txdata[1].clone();
    {
        let store = Arc::new(Store::open(&path, 4 << 20).unwrap());
        let mut chain = Chain::open(
            store.clone(),
            r.params().clone(),
            Arc::new(NoFraudProofs),
            1,
        )
        .unwrap();
        let mut reorganised = false;
        for h in &hashes {
            let out = chain.accept_block(block(&r, h), now()).unwrap();
            reorganised |= !out.change.disconnected.is_empty();
            assert!(store.unwritten_blocks() < MAX_LAYERS);
        }
        assert!(reorganised);
        assert_eq!(chain.tip(), parent);
        // The two fork blocks (the disconnect wrote everything before them) wait in memory.
        assert_eq!(store.unwritten_blocks(), 2);
        // A split's outputs, created in a block written to the table and not spent.
        let snap = store.snapshot().unwrap();
        let op = OutPoint::new(last_split.txid(), 2);
        assert_eq!(
            snap.try_coin(&op).unwrap().unwrap().output,
            last_split.outputs[2]
        );
        // The fork's coinbase, only in memory.
        let fork_cb = coinbase_coin(&block(&r, &parent)).0;
        assert!(snap.try_coin(&fork_cb).unwrap().is_some());
        assert!(snap.try_coin(&spent_cb.0).unwrap().is_none());
        // The UTXO-set hash merges the table with the layers, and writes nothing.
        assert_eq!(snap.utxo_stats().unwrap(), r.store().utxo_stats().unwrap());
        assert_eq!(store.utxo_stats().unwrap(), r.store().utxo_stats().unwrap());
        assert_eq!(store.unwritten_blocks(), 2);
        // Dropped here without writing the coins.
    }
    let store = Store::open(&path, 4 << 20).unwrap();
    assert_eq!(store.replayed_at_open(), 2);
    assert_eq!(store.unwritten_blocks(), 0);
    assert_eq!(store.tip().unwrap(), Some(parent));
    assert_eq!(store.utxo_stats().unwrap(), r.store().utxo_stats().unwrap());
}

/// Snapshots taken while blocks connect and their coins are written out (by the indexer and
/// by a third thread) always show the coins of the tip they name: the read transaction and
/// the layers in memory are taken together.
#[test]
fn snapshots_agree_with_their_tip_while_coins_are_written() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let d = TempDir::new("layers-race");
    let node = Arc::new(open_node(d.path()));
    let to = script_of(&key(1));
    node.generate(1, &to, 1).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (node, done) = (node.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                node.store().write_coins().unwrap();
                std::thread::yield_now();
            }
        })
    };
    let reader = {
        let (node, done) = (node.clone(), done.clone());
        std::thread::spawn(move || {
            let mut checked = 0u32;
            while !done.load(Ordering::Relaxed) {
                let snap = node.store().snapshot().unwrap();
                let tip = snap.tips().unwrap().0.unwrap();
                // The tip's coinbase is immature, so unspent: it must be visible.
                let cb = coinbase_coin(&block(&node, &tip)).0;
                assert!(snap.try_coin(&cb).unwrap().is_some(), "tip {tip}");
                checked += 1;
            }
            checked
        })
    };
    for _ in 0..300 {
        node.generate(1, &to, 1).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let checked = reader.join().unwrap();
    assert!(checked > 100, "{checked} snapshots checked");
    assert_eq!(node.chain().height(), 301);
}
