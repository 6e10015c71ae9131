//! Nodes on 127.0.0.1: discovery from one bootstrap, gossip of transactions and blocks,
//! a late node's headers-first sync, and two halves of a partition converging.

mod common;

use std::time::Duration;

use camel_core::params::Params;
use camel_p2p::ChainAccess;
use common::{MemChain, TestNode, config, init_tracing, test_tx, wait_until};

async fn connected(node: &TestNode) -> usize {
    node.net
        .handle()
        .peers()
        .await
        .unwrap()
        .iter()
        .filter(|p| p.connected_since.is_some())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_discover_each_other_then_gossip_a_tx_and_a_block() {
    init_tracing();
    let params = Params::regtest();
    let a = TestNode::start(config(&[]), MemChain::new(params.clone())).await;
    let boot = [a.addr()];
    let b = TestNode::start(config(&boot), MemChain::new(params.clone())).await;
    let c = TestNode::start(config(&boot), MemChain::new(params.clone())).await;
    let nodes = [&a, &b, &c];

    // B and C only know A; Kademlia (through A) makes them find each other.
    for n in nodes {
        wait_until(20, "every node connected to the two others", || async {
            connected(n).await == 2
        })
        .await;
    }
    let peers = a.net.handle().peers().await.unwrap();
    let ids: Vec<_> = peers.iter().map(|p| p.peer_id).collect();
    assert!(ids.contains(&b.net.handle().peer_id()) && ids.contains(&c.net.handle().peer_id()));
    for p in &peers {
        assert!(!p.banned && p.score == 0.0, "{p:?}");
        assert!(
            !p.addresses.is_empty(),
            "identify gave {p:?} its listen address"
        );
    }
    for n in nodes {
        wait_until(10, "gossip mesh formed", || async {
            n.net.handle().status().await.unwrap().block_mesh >= 2
        })
        .await;
    }

    // A transaction injected on A reaches B and C.
    let tx = test_tx(1);
    a.chain.submit_tx(tx.clone()).unwrap();
    a.net.handle().broadcast_tx(&tx).await.unwrap();
    for n in [&b, &c] {
        wait_until(10, "tx relayed", || async { n.chain.has_tx(&tx.txid()) }).await;
    }

    // A block mined on C reaches A and B.
    let block = c.chain.mine(b"c");
    c.net.handle().broadcast_block(&block).await.unwrap();
    for n in [&a, &b] {
        wait_until(10, "block relayed", || async {
            n.chain.tip_hash() == block.block_hash()
        })
        .await;
    }
    // The block's transactions left the mempools it reached.
    assert_eq!(a.chain.height(), 1);

    for n in [a, b, c] {
        n.net.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_node_syncs_1000_blocks_from_two_peers() {
    init_tracing();
    let params = Params::regtest();
    let a = MemChain::new(params.clone());
    a.mine_n(1000, b"a");
    // B holds the same chain.
    let b = MemChain::new(params.clone());
    for h in 1..=1000 {
        let block = a.block(&a.hash_at(h).unwrap()).unwrap();
        b.submit_block(block).unwrap();
    }
    assert_eq!(b.tip_hash(), a.tip_hash());

    let na = TestNode::start(config(&[]), a.clone()).await;
    let nb = TestNode::start(config(&[na.addr()]), b).await;
    wait_until(20, "A and B connected", || async {
        connected(&na).await == 1
    })
    .await;

    let late = TestNode::start(config(&[na.addr()]), MemChain::new(params)).await;
    let mut height = late.chain.watch_height();
    tokio::time::timeout(Duration::from_secs(60), height.wait_for(|h| *h == 1000))
        .await
        .expect("late node reaches height 1000 within 60 s")
        .unwrap();
    assert_eq!(late.chain.tip_hash(), a.tip_hash());
    // The late node found B too (through A) and keeps both as peers.
    wait_until(20, "late node connected to both", || async {
        connected(&late).await == 2
    })
    .await;
    for n in [na, nb, late] {
        n.net.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_halves_mine_apart_then_converge_on_the_most_work_chain() {
    init_tracing();
    let params = Params::regtest();
    let a = TestNode::start(config(&[]), MemChain::new(params.clone())).await;
    let b = TestNode::start(config(&[a.addr()]), MemChain::new(params.clone())).await;
    let c = TestNode::start(config(&[]), MemChain::new(params.clone())).await;
    let d = TestNode::start(config(&[c.addr()]), MemChain::new(params.clone())).await;
    wait_until(20, "halves formed", || async {
        connected(&a).await == 1 && connected(&c).await == 1
    })
    .await;

    // Each half mines on its own: A's half 20 blocks, C's half 30.
    a.chain.mine_n(20, b"left");
    c.chain.mine_n(30, b"right");
    let (left_tip, right_tip) = (a.chain.tip_hash(), c.chain.tip_hash());
    wait_until(30, "each half agrees within itself", || async {
        b.chain.tip_hash() == left_tip && d.chain.tip_hash() == right_tip
    })
    .await;
    assert_eq!(connected(&a).await, 1, "the halves do not know each other");

    // Reconnect: B dials D. Everyone ends on the right half's chain (more work), the left
    // half by a reorg of 20 blocks.
    b.net.handle().dial(d.addr()).await.unwrap();
    for (name, n) in [("a", &a), ("b", &b), ("c", &c), ("d", &d)] {
        wait_until(30, &format!("{name} on the most-work tip"), || async {
            n.chain.tip_hash() == right_tip
        })
        .await;
    }
    assert_eq!(a.chain.height(), 30);
    assert_ne!(a.chain.hash_at(20), Some(left_tip), "A reorganised");

    // And the network keeps working after the merge: a block from A reaches D.
    let block = a.chain.mine(b"after");
    a.net.handle().broadcast_block(&block).await.unwrap();
    wait_until(20, "post-merge block at D", || async {
        d.chain.tip_hash() == block.block_hash()
    })
    .await;
    for n in [a, b, c, d] {
        n.net.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    init_tracing();
    let params = Params::regtest();
    let v = TestNode::start(config(&[]), MemChain::new(params.clone())).await;
    let w = TestNode::start(config(&[]), MemChain::new(params)).await;
    // V reaches W through a relay that will go silent without closing anything.
    let proxy = common::FreezableProxy::start(common::socket_addr(&w.addr())).await;
    v.net.handle().dial(proxy.addr.clone()).await.unwrap();
    wait_until(10, "connected through the relay", || async {
        connected(&v).await == 1
    })
    .await;
    proxy.freeze();
    // Pings every second time out after 2 s; the second failure is a stream that never
    // opens (libp2p's 10 s upgrade timeout), and then V drops W.
    let t = std::time::Instant::now();
    wait_until(30, "silent peer dropped", || async {
        connected(&v).await == 0
    })
    .await;
    eprintln!(
        "silent peer dropped after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    v.net.shutdown().await;
    w.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_id_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&[]);
    c.key = camel_p2p::KeySource::DataDir(dir.path().to_owned());
    let chain = MemChain::new(Params::regtest());
    let first = TestNode::start(c.clone(), chain.clone()).await;
    let id = first.net.handle().peer_id();
    first.net.shutdown().await;
    let second = TestNode::start(c, chain).await;
    assert_eq!(second.net.handle().peer_id(), id);
    assert!(dir.path().join(camel_p2p::identity::KEY_FILE).exists());
    second.net.shutdown().await;
}
