//! The sync state machine against in-memory chains, without a network: headers first, then
//! blocks in parallel from several peers, refetching what a peer lacks, and the faults it
//! reports.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use camel_core::BlockHash;
use camel_core::params::Params;
use camel_p2p::message::{Request, Status};
use camel_p2p::rate::Limit;
use camel_p2p::sync::{Sync, SyncConfig};
use camel_p2p::{ChainAccess, Misbehaviour, PeerId};
use common::{MemChain, mine_on};

fn status_of(chain: &MemChain) -> Status {
    let tip = chain.tip();
    Status {
        genesis: chain.genesis(),
        tip: tip.hash,
        height: tip.height,
        work: tip.work,
    }
}

fn config() -> SyncConfig {
    SyncConfig {
        headers_per_request: 100,
        blocks_per_request: 16,
        requests_per_peer: 2,
        pace: Limit::new(1e9, 1e9),
        headers_pace: Limit::new(1e9, 1e9),
    }
}

#[test]
fn headers_first_then_blocks_from_every_peer_with_refetch() {
    let params = Params::regtest();
    let full = MemChain::new(params.clone());
    full.mine_n(250, b"full");
    let node = MemChain::new(params);
    let (p1, p2) = (PeerId::random(), PeerId::random());
    let mut sync = Sync::new(config());
    let now = Instant::now();
    sync.on_status(p1, status_of(&full), now);
    sync.on_status(p2, status_of(&full), now);

    let mut block_requests: HashMap<PeerId, usize> = HashMap::new();
    let mut headers_requests = 0;
    let mut p2_lacks_once = true;
    for _ in 0..200 {
        let reqs = sync.poll(&*node, Instant::now());
        if reqs.is_empty() {
            break;
        }
        for (peer, req) in reqs {
            match req {
                Request::GetHeaders { locator, stop, max } => {
                    headers_requests += 1;
                    assert!(stop.is_zero() && max == 100);
                    let h = full.headers_after(&locator, None, usize::from(max));
                    sync.on_headers(&*node, peer, max, &h).unwrap();
                }
                Request::GetBlocks(hashes) => {
                    assert!(hashes.len() <= 16);
                    *block_requests.entry(peer).or_default() += 1;
                    // P2 lacks the blocks of its first request: they must be fetched again
                    // from P1.
                    let blocks = if peer == p2 && p2_lacks_once {
                        p2_lacks_once = false;
                        vec![]
                    } else {
                        hashes.iter().map(|h| full.block(h).unwrap()).collect()
                    };
                    let faults = sync.on_blocks(&*node, peer, &hashes, blocks);
                    assert!(faults.is_empty(), "{faults:?}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(node.tip_hash(), full.tip_hash());
    // 250 headers in batches of 100: three requests (the last one short).
    assert_eq!(headers_requests, 3);
    assert!(
        block_requests[&p1] > 1 && block_requests[&p2] > 1,
        "{block_requests:?}"
    );
    assert_eq!(sync.progress().queued + sync.progress().in_flight, 0);
}

#[test]
fn faults_in_responses_are_reported() {
    let params = Params::regtest();
    let full = MemChain::new(params.clone());
    full.mine_n(3, b"full");
    let node = MemChain::new(params.clone());
    let peer = PeerId::random();
    let mut sync = Sync::new(config());
    sync.on_status(peer, status_of(&full), Instant::now());
    let reqs = sync.poll(&*node, Instant::now());
    let Some((_, Request::GetHeaders { max, .. })) = reqs.first().cloned() else {
        panic!("{reqs:?}")
    };
    let headers = full.headers_after(&[full.genesis()], None, 10);

    // More headers than asked for.
    assert_eq!(
        sync.on_headers(&*node, peer, 2, &headers),
        Err(Misbehaviour::UnrequestedData)
    );
    // A header with a hash above its target.
    let mut bad = headers.clone();
    let target = camel_core::pow::Target::from_compact(bad[0].bits).unwrap();
    while target.is_met_by(&bad[0].block_hash()) {
        bad[0].nonce = bad[0].nonce.wrapping_add(1);
    }
    assert_eq!(
        sync.on_headers(&*node, peer, max, &bad[..1]),
        Err(Misbehaviour::BadPowHeader)
    );
    // Headers that do not link.
    assert_eq!(
        sync.on_headers(&*node, peer, max, &[headers[0], headers[2]]),
        Err(Misbehaviour::UnconnectedHeaders)
    );
    // Good headers, then a blocks answer with a stranger in it and one block missing.
    sync.on_headers(&*node, peer, max, &headers).unwrap();
    let asked: Vec<BlockHash> = headers.iter().map(|h| h.block_hash()).collect();
    let stranger = mine_on(&params, &params.genesis_block().header, 1, b"x", vec![]);
    let blocks = vec![full.block(&asked[0]).unwrap(), stranger.clone()];
    let faults = sync.on_blocks(&*node, peer, &asked, blocks);
    assert_eq!(faults, vec![Misbehaviour::UnrequestedData]);
    assert!(node.has_block(&asked[0]) && !node.has_block(&stranger.block_hash()));
    // An invalid block (its coinbase claims the wrong height) is a fault of its own.
    let wrong = mine_on(&params, &headers[0], 9, b"w", vec![]);
    let faults = sync.on_blocks(&*node, peer, &[wrong.block_hash()], vec![wrong]);
    assert_eq!(faults, vec![Misbehaviour::InvalidBlock]);
}

#[test]
fn an_orphan_makes_its_sender_the_next_headers_source() {
    let params = Params::regtest();
    let node = MemChain::new(params);
    let peer = PeerId::random();
    let mut sync = Sync::new(config());
    // Same status as ours: nothing to ask.
    sync.on_status(peer, status_of(&node), Instant::now());
    assert!(sync.poll(&*node, Instant::now()).is_empty());
    sync.on_orphan(peer, Instant::now());
    let reqs = sync.poll(&*node, Instant::now());
    assert!(
        matches!(reqs.as_slice(), [(p, Request::GetHeaders { .. })] if *p == peer),
        "{reqs:?}"
    );
}

#[test]
fn headers_requests_to_one_peer_are_paced() {
    let params = Params::regtest();
    let full = MemChain::new(params.clone());
    full.mine_n(60, b"full");
    let node = MemChain::new(params);
    let peer = PeerId::random();
    let mut sync = Sync::new(SyncConfig {
        headers_per_request: 10,
        headers_pace: Limit::new(8.0, 2.0),
        ..config()
    });
    let t0 = Instant::now();
    sync.on_status(peer, status_of(&full), t0);
    let answer = |sync: &mut Sync, at: Instant| -> bool {
        let reqs = sync.poll(&*node, at);
        let Some((p, Request::GetHeaders { locator, max, .. })) = reqs
            .into_iter()
            .find(|(_, r)| matches!(r, Request::GetHeaders { .. }))
        else {
            return false;
        };
        let h = full.headers_after(&locator, None, usize::from(max));
        sync.on_headers(&*node, p, max, &h).unwrap();
        true
    };
    // A burst of two, then one every 125 ms (8 a second).
    assert!(answer(&mut sync, t0));
    assert!(answer(&mut sync, t0));
    assert!(!answer(&mut sync, t0));
    assert!(!answer(
        &mut sync,
        t0 + std::time::Duration::from_millis(100)
    ));
    assert!(answer(
        &mut sync,
        t0 + std::time::Duration::from_millis(130)
    ));
}
