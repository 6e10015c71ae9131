//! The malformed-message matrix against a real `camel-node` process: a raw libp2p peer sends
//! hand-crafted frames on the request-response protocol and the gossip topics, and the
//! victim's `GET /peers` shows the expected action (ignore, penalise, disconnect, ban) while
//! an honest raw peer keeps getting answers and the victim's chain stays as it was.
//!
//! The crate-level matrix (camel-p2p/tests/misbehaviour.rs) runs the same cases against an
//! in-process network on an in-memory chain; this one checks the node's wiring: its chain
//! behind `ChainAccess`, its configuration and its API.

#[path = "../../camel-p2p/tests/common/blocks.rs"]
mod blocks;
#[path = "../../camel-p2p/tests/common/raw.rs"]
mod raw;

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use blocks::{mine_on, solve, test_tx};
use camel_core::Txid;
use camel_core::address::Address;
use camel_core::hash::BlockHash;
use camel_core::params::Params;
use camel_core::pow::{Target, Work};
use camel_core::transaction::Transaction;
use camel_node::daemon::P2P_ADDR_FILE;
use camel_p2p::message::{
    ErrorCode, GossipMessage, MAX_REQUEST_FRAME, Request, Response, Status, WIRE_VERSION,
};
use camel_p2p::{Multiaddr, PeerId};
use common::process::{NodeProcess, start};
use common::{TempDir, http, key};
use libp2p::swarm::SwarmEvent;
use raw::RawPeer;
use serde_json::Value;

/// Long enough for a slow, busy machine; every wait polls and returns as soon as it can.
const PATIENCE_SECS: u64 = 20;
const PATIENCE: Duration = Duration::from_secs(PATIENCE_SECS);

/// Blocks the victim mines before the attacks.
const HEIGHT: usize = 5;

/// The node under attack, reached over its API and over libp2p.
struct Victim {
    process: NodeProcess,
    api: SocketAddr,
    log: PathBuf,
    addr: Multiaddr,
    id: PeerId,
    /// Removed after the process is gone (fields drop in order).
    _dir: TempDir,
}

/// A GET on the victim's API, off the async workers: (status, body).
async fn get(api: SocketAddr, path: &str) -> (u16, String) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        http(api, "GET", &path, None, "").unwrap_or_else(|e| panic!("GET {path}: {e}"))
    })
    .await
    .unwrap()
}

async fn get_json(api: SocketAddr, path: &str) -> Value {
    let (status, body) = get(api, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

impl Victim {
    fn start() -> Self {
        let dir = TempDir::new("p2p-misbehaviour");
        let data = dir.path().join("victim");
        let log = dir.path().join("victim.log");
        let process = start(&data, &log, &["--p2p-listen", "/ip4/127.0.0.1/tcp/0"]);
        let text = std::fs::read_to_string(data.join(P2P_ADDR_FILE)).unwrap();
        let addr: Multiaddr = text.lines().next().unwrap().parse().unwrap();
        let id = match addr.iter().last() {
            Some(libp2p::multiaddr::Protocol::P2p(id)) => id,
            _ => panic!("{addr} does not name the peer"),
        };
        let address = Address::p2pkh(&key(1).public_key(), 0x6f).to_string();
        let (status, v) = process.post(
            "/generate",
            true,
            &format!(r#"{{"n": {HEIGHT}, "address": "{address}"}}"#),
        );
        assert_eq!(status, 200, "{v}");
        Self {
            api: process.addr,
            process,
            log,
            addr,
            id,
            _dir: dir,
        }
    }

    /// The last lines of the node's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// (height, hash) of the victim's tip.
    async fn tip(&self) -> (u64, String) {
        let v = get_json(self.api, "/tip").await;
        (
            v["height"].as_u64().unwrap(),
            v["hash"].as_str().unwrap().to_owned(),
        )
    }

    /// The victim's `GET /peers` entry for `peer` (listed while connected or banned).
    async fn view_of(&self, peer: PeerId) -> Option<Value> {
        let v = get_json(self.api, "/peers").await;
        let id = peer.to_string();
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["peer_id"] == id.as_str())
            .cloned()
    }

    /// Waits until the victim's view of `peer` satisfies `f`.
    async fn expect_view(&self, peer: PeerId, what: &str, f: impl Fn(Option<&Value>) -> bool) {
        let pause = async || tokio::time::sleep(Duration::from_millis(50)).await;
        self.expect_view_while(peer, what, f, pause).await;
    }

    /// [`Victim::expect_view`], keeping `r`'s swarm running meanwhile so that what it
    /// published goes out however slow the host.
    async fn expect_view_pumping(
        &self,
        r: &mut RawPeer,
        what: &str,
        f: impl Fn(Option<&Value>) -> bool,
    ) {
        let peer = r.peer_id;
        let pump = async || r.pump(Duration::from_millis(50)).await;
        self.expect_view_while(peer, what, f, pump).await;
    }

    /// Polls the victim's view of `peer` until `f` holds, running `between` between polls.
    async fn expect_view_while(
        &self,
        peer: PeerId,
        what: &str,
        f: impl Fn(Option<&Value>) -> bool,
        mut between: impl AsyncFnMut(),
    ) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let view = self.view_of(peer).await;
            if f(view.as_ref()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{what}: the victim's view of the peer is {view:?}\n--- victim log ---\n{}",
                    self.log_tail()
                );
            }
            between().await;
        }
    }

    async fn has_block(&self, hash: &BlockHash) -> bool {
        let (status, body) = get(self.api, &format!("/block/{hash}")).await;
        assert!(status == 200 || status == 404, "{status}: {body}");
        status == 200
    }

    async fn has_tx(&self, txid: &Txid) -> bool {
        let (status, body) = get(self.api, &format!("/tx/{txid}")).await;
        assert!(status == 200 || status == 404, "{status}: {body}");
        status == 200
    }
}

fn score_of(p: &Value) -> f64 {
    p["score"].as_f64().unwrap()
}

fn connected(p: &Value) -> bool {
    !p["connected_since"].is_null()
}

fn is_banned(p: &Value) -> bool {
    p["banned"].as_bool().unwrap()
}

/// Connected, not banned, score `-points` (decay over a few seconds moves it a little).
fn penalised_by(points: f64) -> impl Fn(Option<&Value>) -> bool {
    move |p| p.is_some_and(|p| !is_banned(p) && connected(p) && (score_of(p) + points).abs() < 0.5)
}

fn banned(p: Option<&Value>) -> bool {
    p.is_some_and(|p| is_banned(p) && !connected(p))
}

/// Neither connected nor banned: dropped below the disconnect threshold only.
fn dropped(p: Option<&Value>) -> bool {
    p.is_none()
}

/// The honest peer still gets the victim's chain (its tip is the API's tip), and the victim
/// still rates it 0.
async fn honest_is_served(h: &mut RawPeer, v: &Victim, tip: &(u64, String)) {
    let genesis = Params::regtest().genesis_hash;
    let resp = h
        .ask(
            v.id,
            &Request::GetHeaders {
                locator: vec![genesis],
                stop: BlockHash::ZERO,
                max: 2000,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("honest peer not answered: {e}\n{}", v.log_tail()));
    let Response::Headers(headers) = resp else {
        panic!("expected headers, got {resp:?}")
    };
    assert_eq!(headers.len(), HEIGHT);
    assert_eq!(v.tip().await, *tip, "the victim's tip moved");
    assert_eq!(headers[HEIGHT - 1].block_hash().to_string(), tip.1);
    let me = v.view_of(h.peer_id).await.expect("honest peer listed");
    assert!(
        score_of(&me) == 0.0 && !is_banned(&me) && connected(&me),
        "{me}"
    );
}

/// Dials the victim again; true once the connection is refused or closed by the victim.
async fn refused(r: &mut RawPeer, v: &Victim) -> bool {
    r.swarm.dial(v.addr.clone()).unwrap();
    let vid = v.id;
    let ended = r
        .until(PATIENCE_SECS, |_, ev| match ev {
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } if *peer_id == vid => Some(()),
            SwarmEvent::OutgoingConnectionError { .. } => Some(()),
            _ => None,
        })
        .await;
    ended.is_some() && !r.swarm.is_connected(&vid)
}

fn is_error(frame: &[u8], want: ErrorCode) -> bool {
    matches!(Response::from_frame(frame), Ok(Response::Error { code, .. }) if code == want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_message_matrix_against_a_node_process() {
    let params = Params::regtest();
    let genesis = params.genesis_block();
    let mut v = Victim::start();
    let tip = v.tip().await;
    assert_eq!(tip.0, HEIGHT as u64);
    let vaddr = v.addr.clone();
    let vid = v.id;
    let peers = get_json(v.api, "/peers").await;
    assert_eq!(peers["peer_id"], vid.to_string().as_str(), "{peers}");

    let mut h = RawPeer::new(params.clone());
    assert_eq!(h.connect(&vaddr).await, vid);
    v.expect_view(h.peer_id, "honest peer listed", penalised_by(0.0))
        .await;
    honest_is_served(&mut h, &v, &tip).await;

    // --- request-response ---

    // A newer envelope version: refused as unsupported, no penalty.
    let mut r = RawPeer::new(params.clone());
    r.connect(&vaddr).await;
    let resp = r.request(vid, vec![WIRE_VERSION + 1, 0x13]).await.unwrap();
    assert!(is_error(&resp, ErrorCode::Unsupported), "{resp:?}");
    v.expect_view(r.peer_id, "newer version ignored", penalised_by(0.0))
        .await;

    // A truncated request: -20, answered with BadRequest, still connected.
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
    assert!(is_error(&resp, ErrorCode::BadRequest), "{resp:?}");
    v.expect_view(r.peer_id, "truncated request penalised", penalised_by(20.0))
        .await;
    honest_is_served(&mut h, &v, &tip).await;

    // An unknown message type: -20 more, answered with BadRequest.
    let resp = r.request(vid, vec![WIRE_VERSION, 0x7e]).await.unwrap();
    assert!(is_error(&resp, ErrorCode::BadRequest), "{resp:?}");
    v.expect_view(r.peer_id, "unknown type penalised", penalised_by(40.0))
        .await;
    // A response type sent as a request: wrong type, -20 more, which reaches the disconnect
    // threshold (-50) but not the ban (-100). The victim may close the connection before its
    // answer goes out.
    let _ = r.request(vid, Response::Headers(vec![]).to_frame()).await;
    assert!(
        r.wait_disconnected(vid, PATIENCE_SECS).await,
        "wrong types: disconnected"
    );
    v.expect_view(r.peer_id, "disconnected, not banned", dropped)
        .await;
    honest_is_served(&mut h, &v, &tip).await;

    // An oversize request frame: banned at once, no answer.
    let mut r = RawPeer::new(params.clone());
    r.connect(&vaddr).await;
    let mut big = vec![WIRE_VERSION, 0x14];
    big.resize(MAX_REQUEST_FRAME + 1, 0);
    let got = r.request(vid, big).await;
    assert!(got.is_err(), "{:?}", got.map(|f| Response::from_frame(&f)));
    v.expect_view(r.peer_id, "oversize banned", banned).await;
    assert!(r.wait_disconnected(vid, PATIENCE_SECS).await);
    assert!(refused(&mut r, &v).await, "banned peer let back in");
    v.expect_view(r.peer_id, "still banned", banned).await;
    honest_is_served(&mut h, &v, &tip).await;

    // Flooding: GetPeers allows a burst of 5 and 1 a second; every request over that is
    // refused with RateLimited and costs 5 points, so about ten in, the peer is dropped.
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
    assert!(
        r.wait_disconnected(vid, PATIENCE_SECS).await,
        "flooder disconnected"
    );
    v.expect_view(r.peer_id, "flooder dropped, not banned", dropped)
        .await;
    // Until its score decays above -25 (one half-life), a reconnection is dropped at once.
    assert!(
        refused(&mut r, &v).await,
        "flooder let back in while its score is low"
    );
    v.expect_view(r.peer_id, "flooder still not banned", dropped)
        .await;
    honest_is_served(&mut h, &v, &tip).await;

    // Unrequested data: the peer claims more work, serves valid headers of a side chain,
    // then answers the victim's block request with a block that was not asked for: -10.
    let alt1 = mine_on(&params, &genesis.header, 1, b"alt", vec![]);
    let alt2 = mine_on(&params, &alt1.header, 2, b"alt", vec![]);
    let alt_headers = vec![alt1.header, alt2.header];
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
    // The exchange needs the raw peer's swarm running to answer the victim.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        r.pump(Duration::from_millis(100)).await;
        if v.view_of(rid).await.is_some_and(|p| score_of(&p) < 0.0) {
            break;
        }
    }
    v.expect_view(rid, "unrequested block penalised", penalised_by(10.0))
        .await;
    assert!(!v.has_block(&stray_hash).await, "unrequested block dropped");
    honest_is_served(&mut h, &v, &tip).await;
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

    // A truncated transaction: -20.
    let tx = GossipMessage::Tx(test_tx(7)).to_frame();
    r.publish(&tx_topic, tx[..tx.len() - 1].to_vec());
    v.expect_view_pumping(&mut r, "truncated tx penalised", penalised_by(20.0))
        .await;

    // An invalid transaction (no inputs): -10 more.
    let bad_tx = Transaction {
        inputs: vec![],
        ..test_tx(8)
    };
    r.publish(&tx_topic, GossipMessage::Tx(bad_tx).to_frame());
    v.expect_view_pumping(&mut r, "invalid tx penalised", penalised_by(30.0))
        .await;
    honest_is_served(&mut h, &v, &tip).await;

    // A transaction on the block topic: wrong type, -20 more (just above -50 after a
    // moment's decay), then one more truncated frame: below -50, dropped.
    r.publish(&block_topic, GossipMessage::Tx(test_tx(9)).to_frame());
    v.expect_view_pumping(&mut r, "wrong topic penalised", penalised_by(50.0))
        .await;
    assert!(!v.has_tx(&test_tx(9).txid()).await);
    r.publish(&tx_topic, tx[..tx.len() - 2].to_vec());
    assert!(
        r.wait_disconnected(vid, PATIENCE_SECS).await,
        "disconnected below -50"
    );
    v.expect_view(rid, "disconnected, not banned", dropped)
        .await;
    honest_is_served(&mut h, &v, &tip).await;

    // A new raw peer gossips `block`: it is banned and cut off, the block is not kept, and
    // the honest peer is still served.
    let gossip_banned = async |block: camel_core::block::Block, what: &str, h: &mut RawPeer| {
        let mut r = RawPeer::new(params.clone());
        r.connect(&vaddr).await;
        r.wait_subscribed(vid).await;
        r.publish(&block_topic, GossipMessage::Block(block.clone()).to_frame());
        v.expect_view_pumping(&mut r, what, banned).await;
        assert!(r.wait_disconnected(vid, PATIENCE_SECS).await);
        assert!(!v.has_block(&block.block_hash()).await);
        honest_is_served(h, &v, &tip).await;
    };

    // An invalid block (valid proof of work, no coinbase): banned.
    let no_coinbase = {
        let mut b = mine_on(&params, &genesis.header, 1, b"x", vec![]);
        b.txdata = vec![test_tx(10)];
        solve(&mut b);
        b
    };
    gossip_banned(no_coinbase, "invalid block banned", &mut h).await;

    // A block whose hash misses its target: banned.
    let bad_pow = {
        let mut b = mine_on(&params, &genesis.header, 1, b"y", vec![]);
        let target = Target::from_compact(b.header.bits).unwrap();
        while target.is_met_by(&b.header.block_hash()) {
            b.header.nonce = b.header.nonce.wrapping_add(1);
        }
        b
    };
    gossip_banned(bad_pow, "bad proof of work banned", &mut h).await;

    // Through all of it the process kept running, the honest peer was never penalised and
    // the victim's chain is untouched.
    assert!(
        v.process.child.try_wait().unwrap().is_none(),
        "the victim exited\n{}",
        v.log_tail()
    );
    assert_eq!(v.tip().await, tip);
}
