//! The malformed-message matrix: a raw peer sends hand-crafted frames on the request-response
//! protocol and the gossip topics; for each case the victim node takes the expected action
//! (ignore, penalise, disconnect, ban), and an honest raw peer keeps getting answers.

mod common;

use std::time::Duration;

use camel_core::BlockHash;
use camel_core::block::Block;
use camel_core::params::Params;
use camel_core::pow::{Target, Work};
use camel_core::transaction::Transaction;
use camel_p2p::message::{
    ErrorCode, GossipMessage, MAX_REQUEST_FRAME, Request, Response, Status, WIRE_VERSION,
};
use camel_p2p::{ChainAccess, PeerId, PeerInfo};
use common::raw::RawPeer;
use common::{MemChain, TestNode, config, init_tracing, mine_on, test_tx};

async fn view_of(v: &TestNode, peer: PeerId) -> Option<PeerInfo> {
    v.net
        .handle()
        .peers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == peer)
}

/// Waits until the victim's view of `peer` satisfies `f`.
async fn expect_view(
    v: &TestNode,
    peer: PeerId,
    what: &str,
    f: impl Fn(Option<&PeerInfo>) -> bool,
) {
    for _ in 0..200 {
        if f(view_of(v, peer).await.as_ref()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{what}: victim's view of the peer is {:?}",
        view_of(v, peer).await
    );
}

/// [`expect_view`], keeping `r`'s swarm running meanwhile so that what it published goes
/// out however slow the host.
async fn expect_view_pumping(
    v: &TestNode,
    r: &mut RawPeer,
    what: &str,
    f: impl Fn(Option<&PeerInfo>) -> bool,
) {
    for _ in 0..200 {
        if f(view_of(v, r.peer_id).await.as_ref()) {
            return;
        }
        r.pump(Duration::from_millis(50)).await;
    }
    panic!(
        "{what}: victim's view of the peer is {:?}",
        view_of(v, r.peer_id).await
    );
}

fn penalised_by(score: f64) -> impl Fn(Option<&PeerInfo>) -> bool {
    move |p| {
        p.is_some_and(|p| !p.banned && p.connected_since.is_some() && (p.score + score).abs() < 0.5)
    }
}

fn banned(p: Option<&PeerInfo>) -> bool {
    p.is_some_and(|p| p.banned && p.connected_since.is_none())
}

/// The honest peer still gets the victim's headers, and the victim still rates it 0.
async fn honest_is_served(h: &mut RawPeer, v: &TestNode, vid: PeerId) {
    let genesis = v.chain.params().genesis_hash;
    let resp = h
        .ask(
            vid,
            &Request::GetHeaders {
                locator: vec![genesis],
                stop: BlockHash::ZERO,
                max: 2000,
            },
        )
        .await
        .expect("honest peer answered");
    let Response::Headers(headers) = resp else {
        panic!("expected headers, got {resp:?}")
    };
    assert_eq!(headers.len(), 5);
    assert_eq!(headers[4].block_hash(), v.chain.tip_hash());
    let me = view_of(v, h.peer_id).await.expect("honest peer listed");
    assert!(
        me.score == 0.0 && !me.banned && me.connected_since.is_some(),
        "{me:?}"
    );
}

fn frame(bytes: &[u8]) -> Vec<u8> {
    bytes.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_message_matrix() {
    init_tracing();
    let params = Params::regtest();
    let chain = MemChain::new(params.clone());
    chain.mine_n(5, b"v");
    let v = TestNode::start(config(&[]), chain).await;
    let vaddr = v.addr();
    let mut h = RawPeer::new(params.clone());
    let vid = h.connect(&vaddr).await;
    honest_is_served(&mut h, &v, vid).await;

    let genesis = params.genesis_block();

    // --- request-response ---

    // A newer envelope version: ignored (refused as unsupported, no penalty).
    let mut r = RawPeer::new(params.clone());
    r.connect(&vaddr).await;
    let resp = r
        .request(vid, frame(&[WIRE_VERSION + 1, 0x13]))
        .await
        .unwrap();
    assert!(matches!(
        Response::from_frame(&resp),
        Ok(Response::Error {
            code: ErrorCode::Unsupported,
            ..
        })
    ));
    expect_view(&v, r.peer_id, "newer version ignored", penalised_by(0.0)).await;
    honest_is_served(&mut h, &v, vid).await;

    // A truncated request: penalised (-20), answered with BadRequest, still connected.
    let full = Request::GetHeaders {
        locator: vec![genesis.block_hash(); 3],
        stop: BlockHash::ZERO,
        max: 10,
    }
    .to_frame();
    let resp = r
        .request(vid, full[..full.len() - 5].to_vec())
        .await
        .unwrap();
    assert!(matches!(
        Response::from_frame(&resp),
        Ok(Response::Error {
            code: ErrorCode::BadRequest,
            ..
        })
    ));
    expect_view(
        &v,
        r.peer_id,
        "truncated request penalised",
        penalised_by(20.0),
    )
    .await;
    honest_is_served(&mut h, &v, vid).await;

    // An unknown message type: penalised (-20 more).
    let resp = r.request(vid, frame(&[WIRE_VERSION, 0x7e])).await.unwrap();
    assert!(matches!(
        Response::from_frame(&resp),
        Ok(Response::Error {
            code: ErrorCode::BadRequest,
            ..
        })
    ));
    // A response type sent as a request is a wrong type too.
    // (The victim may close the connection before its answer goes out.)
    let _ = r.request(vid, Response::Headers(vec![]).to_frame()).await;
    // -20 (truncated) -20 -20, decayed a little: at or below the disconnect threshold
    // (-50), so the victim drops the peer without banning it.
    assert!(
        r.wait_disconnected(vid, 10).await,
        "wrong types: disconnected"
    );
    expect_view(&v, r.peer_id, "disconnected, not banned", |p| p.is_none()).await;
    honest_is_served(&mut h, &v, vid).await;

    // An oversize request: banned at once.
    let mut r = RawPeer::new(params.clone());
    r.connect(&vaddr).await;
    let mut big = vec![WIRE_VERSION, 0x14];
    big.resize(MAX_REQUEST_FRAME + 1, 0);
    let got = r.request(vid, big).await;
    assert!(got.is_err(), "{:?}", got.map(|f| Response::from_frame(&f)));
    expect_view(&v, r.peer_id, "oversize banned", banned).await;
    assert!(r.wait_disconnected(vid, 10).await);
    // A banned peer cannot come back.
    r.swarm.dial(vaddr.clone()).unwrap();
    r.pump(Duration::from_millis(500)).await;
    assert!(!r.swarm.is_connected(&vid), "banned peer refused");
    honest_is_served(&mut h, &v, vid).await;

    // Flooding: GetPeers allows a burst of 5 and 1 a second; every request over that is
    // refused with RateLimited and costs 5 points: about ten in, the peer is dropped.
    let mut r = RawPeer::new(params.clone());
    r.connect(&vaddr).await;
    let mut limited = 0;
    for _ in 0..40 {
        match r.ask(vid, &Request::GetPeers).await {
            Ok(Response::Error {
                code: ErrorCode::RateLimited,
                ..
            }) => limited += 1,
            Ok(Response::Peers(_)) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => break,
        }
    }
    assert!(
        (9..=12).contains(&limited),
        "{limited} rate-limited answers before the drop"
    );
    assert!(r.wait_disconnected(vid, 10).await, "flooder disconnected");
    expect_view(&v, r.peer_id, "flooder not banned", |p| p.is_none()).await;
    // Until its score decays above -25 (one half-life), a reconnection is dropped at once.
    r.swarm.dial(vaddr.clone()).unwrap();
    r.pump(Duration::from_millis(700)).await;
    assert!(
        !r.swarm.is_connected(&vid),
        "flooder refused while its score is low"
    );
    honest_is_served(&mut h, &v, vid).await;

    // Unrequested data: the peer claims more work, serves valid headers of a side chain,
    // then answers the block request with a block that was not asked for: -10.
    let alt = MemChain::new(params.clone());
    alt.mine_n(2, b"alt");
    let alt_headers: Vec<_> = (1..=2)
        .map(|i| alt.block(&alt.hash_at(i).unwrap()).unwrap().header)
        .collect();
    let stray = mine_on(&params, &genesis.header, 1, b"stray", vec![]);
    let stray_hash = stray.block_hash();
    let mut r = RawPeer::new(params.clone());
    let gh = params.genesis_hash;
    r.responder = Box::new(move |f| {
        let resp = match Request::from_frame(f).ok()? {
            Request::Status(_) => Response::Status(Status {
                genesis: gh,
                tip: alt_headers[1].block_hash(),
                height: 2,
                work: Work::from_le_bytes([0xff; 32]),
            }),
            Request::GetHeaders { .. } => Response::Headers(alt_headers.clone()),
            Request::GetBlocks(_) => Response::Blocks(vec![stray.clone()]),
            Request::GetPeers => Response::Peers(vec![]),
            _ => return None,
        };
        Some(resp.to_frame())
    });
    r.connect(&vaddr).await;
    let rid = r.peer_id;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        r.pump(Duration::from_millis(100)).await;
        if view_of(&v, rid).await.is_some_and(|p| p.score < 0.0) {
            break;
        }
    }
    expect_view(&v, rid, "unrequested block penalised", penalised_by(10.0)).await;
    assert!(!v.chain.has_block(&stray_hash), "unrequested block dropped");
    honest_is_served(&mut h, &v, vid).await;
    drop(r);

    // --- gossip ---

    let mut r = RawPeer::new(params.clone());
    r.connect(&vaddr).await;
    r.wait_subscribed(vid).await;
    let (tx_topic, block_topic) = (
        r.protocols.tx_topic.clone(),
        r.protocols.block_topic.clone(),
    );
    let rid = r.peer_id;

    // A truncated transaction: penalised (-20).
    let tx = GossipMessage::Tx(test_tx(7)).to_frame();
    r.publish(&tx_topic, tx[..tx.len() - 1].to_vec());
    expect_view_pumping(&v, &mut r, "malformed gossip penalised", penalised_by(20.0)).await;

    // An invalid transaction (no inputs): -10 more.
    let bad_tx = Transaction {
        inputs: vec![],
        ..test_tx(8)
    };
    r.publish(&tx_topic, GossipMessage::Tx(bad_tx).to_frame());
    expect_view_pumping(&v, &mut r, "invalid tx penalised", penalised_by(30.0)).await;
    honest_is_served(&mut h, &v, vid).await;

    // A valid transaction on the block topic: wrong type, -20 more (just above -50 after a
    // moment's decay), then one more truncated frame: below -50, dropped.
    r.publish(&block_topic, GossipMessage::Tx(test_tx(9)).to_frame());
    expect_view_pumping(&v, &mut r, "wrong topic penalised", penalised_by(50.0)).await;
    assert!(!v.chain.has_tx(&test_tx(9).txid()));
    r.publish(&tx_topic, tx[..tx.len() - 2].to_vec());
    assert!(r.wait_disconnected(vid, 10).await, "disconnected below -50");
    expect_view(&v, rid, "disconnected, not banned", |p| p.is_none()).await;
    honest_is_served(&mut h, &v, vid).await;

    // An invalid block (valid proof of work, no coinbase): banned.
    let mut r = RawPeer::new(params.clone());
    r.connect(&vaddr).await;
    r.wait_subscribed(vid).await;
    let no_coinbase = {
        let mut b = mine_on(&params, &genesis.header, 1, b"x", vec![]);
        b.txdata = vec![test_tx(10)];
        assert!(b.solve());
        b
    };
    r.publish(
        &block_topic,
        GossipMessage::Block(no_coinbase.clone()).to_frame(),
    );
    expect_view_pumping(&v, &mut r, "invalid block banned", banned).await;
    assert!(!v.chain.has_block(&no_coinbase.block_hash()));
    honest_is_served(&mut h, &v, vid).await;

    // A block whose hash misses its target: banned.
    let mut r = RawPeer::new(params.clone());
    r.connect(&vaddr).await;
    r.wait_subscribed(vid).await;
    let bad_pow = {
        let mut b: Block = mine_on(&params, &genesis.header, 1, b"y", vec![]);
        let target = Target::from_compact(b.header.bits).unwrap();
        while target.is_met_by(&b.header.block_hash()) {
            b.header.nonce = b.header.nonce.wrapping_add(1);
        }
        b
    };
    r.publish(
        &block_topic,
        GossipMessage::Block(bad_pow.clone()).to_frame(),
    );
    expect_view_pumping(&v, &mut r, "bad proof of work banned", banned).await;
    honest_is_served(&mut h, &v, vid).await;

    // Through all of it, the honest peer was never penalised and the victim's chain is
    // untouched.
    assert_eq!(v.chain.height(), 5);
    v.net.shutdown().await;
}
