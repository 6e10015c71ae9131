//! The node as camel-p2p sees it (`NodeChain`): locators and headers from the active chain,
//! header batches checked for linkage and proof of work, and what becomes of blocks and
//! transactions from peers (which refusals are faults of the sender and which are not).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use camel_core::hash::BlockHash;
use camel_core::pow::check_proof_of_work;
use camel_core::transaction::{OutPoint, TxOut};
use camel_node::chain::now;
use camel_node::miner::mine;
use camel_node::net::NodeChain;
use camel_node::node::Node;
use camel_p2p::{BlockOutcome, ChainAccess, Misbehaviour, PeerFault, TxOutcome};
use common::*;

fn node_with(dir: &TempDir, blocks: u32) -> Arc<Node> {
    let node = Arc::new(open_node(dir.path()));
    if blocks > 0 {
        node.generate(blocks, &script_of(&key(1)), 1).unwrap();
    }
    node
}

fn block_at(node: &Node, height: u32) -> camel_core::block::Block {
    let hash = node.chain().hash_at(height).unwrap();
    node.store().block(&hash).unwrap().unwrap()
}

#[test]
fn locator_and_headers_follow_the_active_chain() {
    let dir = TempDir::new("access-headers");
    let node = node_with(&dir, 300);
    let access = NodeChain::new(node.clone());
    let at = |h: u32| node.chain().hash_at(h).unwrap();

    let locator = access.locator();
    assert_eq!(locator.first(), Some(&at(300)));
    assert_eq!(locator.last(), Some(&node.params().genesis_hash));
    assert!(locator.len() <= camel_p2p::message::MAX_LOCATOR);
    let heights: Vec<u32> = locator
        .iter()
        .map(|h| node.chain().entry(h).unwrap().height)
        .collect();
    assert!(heights.windows(2).all(|w| w[0] > w[1]), "{heights:?}");
    assert_eq!(&heights[..3], &[300, 299, 298]);

    let tip = access.tip();
    assert_eq!((tip.hash, tip.height), (at(300), 300));
    assert_eq!(access.best_header_work(), tip.work);
    assert_eq!(access.genesis(), node.params().genesis_hash);

    let heights_of = |headers: Vec<camel_core::block::Header>| -> Vec<u32> {
        headers
            .iter()
            .map(|h| node.chain().entry(&h.block_hash()).unwrap().height)
            .collect()
    };
    assert_eq!(
        heights_of(access.headers_after(&[at(10)], None, 5)),
        vec![11, 12, 13, 14, 15]
    );
    // The first locator hash on the chain counts; unknown ones are skipped.
    let unknown = BlockHash::from_byte_array([7; 32]);
    assert_eq!(
        heights_of(access.headers_after(&[unknown, at(297), at(5)], None, 100)),
        vec![298, 299, 300]
    );
    assert_eq!(
        heights_of(access.headers_after(&[unknown], None, 3)),
        vec![1, 2, 3]
    );
    assert_eq!(
        heights_of(access.headers_after(&[at(10)], Some(at(12)), 100)),
        vec![11, 12]
    );
    assert!(access.headers_after(&[at(300)], None, 100).is_empty());
}

#[test]
fn header_batches_must_link_and_carry_their_work() {
    let source_dir = TempDir::new("access-src");
    let source = node_with(&source_dir, 20);
    let headers = NodeChain::new(source.clone()).headers_after(&[], None, 100);
    assert_eq!(headers.len(), 20);

    let dir = TempDir::new("access-hdr");
    let access = NodeChain::new(node_with(&dir, 0));
    // A batch that starts nowhere the node knows.
    assert_eq!(
        access.submit_headers(&headers[5..10]),
        Err(PeerFault::UnconnectedHeaders)
    );
    // Headers that skip one: the fault is charged, the good header before the gap kept.
    let gap = [headers[0], headers[2]];
    assert_eq!(
        access.submit_headers(&gap),
        Err(PeerFault::UnconnectedHeaders)
    );
    assert!(node_has_header(&access, &headers[0]));
    // In order: the second batch links to the first one's last header.
    assert_eq!(access.submit_headers(&headers[..10]), Ok(9));
    assert_eq!(access.submit_headers(&headers[10..]), Ok(10));
    assert_eq!(access.submit_headers(&headers[10..]), Ok(0));
    assert_eq!(access.submit_headers(&[]), Ok(0));

    // A header whose hash misses its target.
    let mut bad = headers[0];
    let limit = source.params().pow_limit;
    while check_proof_of_work(&bad.block_hash(), bad.bits, limit).is_ok() {
        bad.nonce = bad.nonce.wrapping_add(1);
    }
    let fault = access.submit_headers(&[bad]).unwrap_err();
    assert!(matches!(fault, PeerFault::InvalidHeader(_)), "{fault}");
    assert_eq!(fault.misbehaviour(), Misbehaviour::BadPowHeader);
}

fn node_has_header(access: &NodeChain, header: &camel_core::block::Header) -> bool {
    access.locator().contains(&header.block_hash())
}

#[test]
fn blocks_from_peers() {
    let source_dir = TempDir::new("access-bsrc");
    let source = node_with(&source_dir, 4);
    let dir = TempDir::new("access-blk");
    let node = node_with(&dir, 0);
    let access = NodeChain::new(node.clone());

    assert_eq!(
        access.submit_block(block_at(&source, 1)),
        Ok(BlockOutcome::NewTip)
    );
    assert!(access.has_block(&block_at(&source, 1).block_hash()));
    assert_eq!(
        access.block(&block_at(&source, 1).block_hash()),
        Some(block_at(&source, 1))
    );
    assert_eq!(
        access.submit_block(block_at(&source, 1)),
        Ok(BlockOutcome::AlreadyHave)
    );
    // Out of order: held, then connected when its parent comes.
    assert_eq!(
        access.submit_block(block_at(&source, 3)),
        Ok(BlockOutcome::Orphan)
    );
    assert_eq!(
        access.submit_block(block_at(&source, 2)),
        Ok(BlockOutcome::NewTip)
    );
    assert_eq!(node.chain().height(), 3);

    // A sibling of block 1 with no more work: stored on a side chain.
    let side = block_on(
        &node.chain(),
        node.params().genesis_hash,
        vec![],
        0,
        &script_of(&key(2)),
        7,
    );
    assert_eq!(access.submit_block(side), Ok(BlockOutcome::Stored));

    // A body that does not match its header: a fault of the sender.
    let mut mutated = block_at(&source, 4);
    mutated.txdata[0].outputs[0].value = amount(1);
    let fault = access.submit_block(mutated).unwrap_err();
    assert!(matches!(fault, PeerFault::InvalidBlock(_)), "{fault}");
    assert_eq!(fault.misbehaviour(), Misbehaviour::InvalidBlock);

    // A coinbase paying more than it may: found in context, a fault too.
    let mut unit = node.work_unit(&script_of(&key(3))).unwrap();
    unit.reward = unit.reward.checked_add(amount(1)).unwrap();
    let greedy = mine(&unit, 1, &AtomicBool::new(false), &AtomicU64::new(0)).unwrap();
    let fault = access.submit_block(greedy).unwrap_err();
    assert!(fault.to_string().contains("bad-cb-amount"), "{fault}");
    assert_eq!(node.chain().height(), 3);

    // A time far ahead of our clock proves nothing: ignored.
    let mut unit = node.work_unit(&script_of(&key(3))).unwrap();
    unit.time = now() + node.params().max_future_block_time + 600;
    let early = mine(&unit, 1, &AtomicBool::new(false), &AtomicU64::new(0)).unwrap();
    assert_eq!(access.submit_block(early), Ok(BlockOutcome::Ignored));

    assert_eq!(
        access.submit_block(block_at(&source, 4)),
        Ok(BlockOutcome::NewTip)
    );
    assert_eq!(node.chain().tip(), source.chain().tip());
}

#[test]
fn transactions_from_peers() {
    let dir = TempDir::new("access-tx");
    let node = node_with(&dir, 101);
    let access = NodeChain::new(node.clone());
    let cb = &block_at(&node, 1).txdata[0];
    let coin = (OutPoint::new(cb.txid(), 0), cb.outputs[0].clone());
    let pay = |value: u64| TxOut {
        value: amount(value),
        script_pubkey: script_of(&key(2)),
    };
    let tx = spend(&key(1), &[coin], vec![pay(49 * 100_000_000)]);
    assert_eq!(access.submit_tx(tx.clone()), Ok(TxOutcome::Accepted));
    assert_eq!(access.submit_tx(tx.clone()), Ok(TxOutcome::AlreadyHave));

    // Breaks a context-free rule: a fault.
    let mut empty = tx.clone();
    empty.inputs.clear();
    let fault = access.submit_tx(empty).unwrap_err();
    assert_eq!(fault.misbehaviour(), Misbehaviour::InvalidTx);

    // Spends a coin the node does not know: policy, no fault.
    let unknown = (OutPoint::new(tx.txid(), 5), pay(1_000));
    let orphan = spend(&key(2), &[unknown], vec![pay(500)]);
    assert_eq!(access.submit_tx(orphan), Ok(TxOutcome::Ignored));
    // An immature coinbase: policy as well.
    let young = &block_at(&node, 100).txdata[0];
    let young = (OutPoint::new(young.txid(), 0), young.outputs[0].clone());
    let early = spend(&key(1), &[young], vec![pay(1_000)]);
    assert_eq!(access.submit_tx(early), Ok(TxOutcome::Ignored));
}

#[test]
fn headers_first_then_blocks_in_any_order() {
    let source_dir = TempDir::new("access-hf-src");
    let source = node_with(&source_dir, 60);
    let src = NodeChain::new(source.clone());
    let headers = src.headers_after(&[], None, 100);
    let blocks: Vec<_> = (1..=60).map(|h| block_at(&source, h)).collect();

    let dir = TempDir::new("access-hf");
    let node = node_with(&dir, 0);
    let access = NodeChain::new(node.clone());
    assert_eq!(access.submit_headers(&headers), Ok(60));
    // The header chain leads; the tip waits for the blocks.
    assert_eq!(access.best_header_work(), src.tip().work);
    assert_eq!(access.tip().height, 0);
    assert_eq!(access.locator().first(), Some(&source.chain().tip()));
    assert!(!access.has_block(&blocks[0].block_hash()));
    let hashes: Vec<_> = blocks.iter().map(|b| b.block_hash()).collect();
    assert_eq!(access.blocks_to_fetch(5), hashes[..5]);

    // The last 40 blocks arrive first, newest batch first: each is stored, none is an
    // orphan, and the tip cannot move without block 1.
    for batch in blocks[20..].chunks(16).rev() {
        let outcomes = access.submit_blocks(batch.to_vec());
        assert!(
            outcomes.iter().all(|o| *o == Ok(BlockOutcome::Stored)),
            "{outcomes:?}"
        );
    }
    assert_eq!(node.chain().orphan_count(), 0);
    assert_eq!(access.tip().height, 0);
    assert_eq!(access.blocks_to_fetch(100), hashes[..20]);

    // Stored but unlinked blocks survive a restart, and so do the headers.
    drop(access);
    drop(node);
    let node = Arc::new(open_node(dir.path()));
    let access = NodeChain::new(node.clone());
    assert_eq!(access.best_header_work(), src.tip().work);
    assert!(access.has_block(&blocks[59].block_hash()));

    // Blocks 2..=20, then block 1: the whole chain connects at once.
    let outcomes = access.submit_blocks(blocks[1..20].to_vec());
    assert!(outcomes.iter().all(|o| *o == Ok(BlockOutcome::Stored)));
    assert_eq!(
        access.submit_blocks(vec![blocks[0].clone()]),
        vec![Ok(BlockOutcome::NewTip)]
    );
    assert_eq!(node.chain().tip(), source.chain().tip());
    assert!(access.blocks_to_fetch(100).is_empty());
    assert_eq!(
        node.store().utxo_stats().unwrap(),
        source.store().utxo_stats().unwrap()
    );
    assert_eq!(access.submit_headers(&headers), Ok(0));
    assert_eq!(
        access.submit_blocks(blocks[..2].to_vec()),
        vec![Ok(BlockOutcome::AlreadyHave), Ok(BlockOutcome::AlreadyHave)]
    );
}

#[test]
fn headers_are_checked_in_context() {
    let dir = TempDir::new("access-hctx");
    let node = node_with(&dir, 3);
    let access = NodeChain::new(node.clone());
    let tip = node.chain().tip_entry();
    let next = |bits: u32, time: u32| {
        let mut header = camel_core::block::Header {
            version: 1,
            prev_blockhash: node.chain().tip(),
            merkle_root: camel_core::Hash256::ZERO,
            time,
            bits,
            nonce: 0,
        };
        assert!(header.solve());
        header
    };
    // Valid proof of work for the bits it names, but not the bits the chain expects.
    let harder = next(0x1f00_ffff, tip.header.time + 1);
    let fault = access.submit_headers(&[harder]).unwrap_err();
    assert!(fault.to_string().contains("bad-diffbits"), "{fault}");
    assert_eq!(fault.misbehaviour(), Misbehaviour::BadPowHeader);
    // Not after the median time past.
    let old = next(tip.header.bits, node.params().genesis_time);
    let fault = access.submit_headers(&[old]).unwrap_err();
    assert!(fault.to_string().contains("time-too-old"), "{fault}");
    // Too far ahead of the clock: no fault, not kept.
    let future = next(
        tip.header.bits,
        now() + node.params().max_future_block_time + 600,
    );
    assert_eq!(access.submit_headers(&[future]), Ok(0));
    assert!(node.chain().entry(&future.block_hash()).is_none());
    assert_eq!(access.best_header_work(), access.tip().work);
    // A good one is indexed without its block.
    let good = next(tip.header.bits, tip.header.time + 1);
    assert_eq!(access.submit_headers(&[good]), Ok(1));
    let entry = *node.chain().entry(&good.block_hash()).unwrap();
    assert_eq!(entry.height, 4);
    assert!(!entry.has_data());
    assert_eq!(node.chain().best_header(), good.block_hash());
}

#[test]
fn the_indexer_waits_out_a_sync_and_catches_up_when_asked() {
    let source_dir = TempDir::new("access-idx-src");
    let source = node_with(&source_dir, 300);
    let headers = NodeChain::new(source.clone()).headers_after(&[], None, 300);
    let blocks: Vec<_> = (1..=100).map(|h| block_at(&source, h)).collect();

    let dir = TempDir::new("access-idx");
    let node = node_with(&dir, 0);
    let wait = std::time::Duration::from_secs(30);
    drop(node.indexed_snapshot(wait).unwrap());
    let access = NodeChain::new(node.clone());
    assert_eq!(access.submit_headers(&headers), Ok(300));
    for batch in blocks.chunks(16) {
        access.submit_blocks(batch.to_vec());
    }
    assert_eq!(access.tip().height, 100);
    // 200 blocks behind the best header: a sync, and the indexes wait.
    let (tip, indexed) = node.store().snapshot().unwrap().tips().unwrap();
    assert_eq!(tip, Some(node.chain().tip()));
    assert_eq!(indexed, Some(node.params().genesis_hash));
    // A query brings them to the tip.
    let snap = node.indexed_snapshot(wait).unwrap();
    let (tip, indexed) = snap.tips().unwrap();
    assert_eq!(indexed, tip);
    let last = &blocks[99];
    assert_eq!(
        snap.tx_location(&last.txdata[0].txid()).unwrap(),
        Some((last.block_hash(), 0))
    );
    assert!(node.store().address_index_matches_utxo_set().unwrap());
}
