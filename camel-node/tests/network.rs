//! Several `camel-node` processes on loopback as one network: discovery from one bootstrap
//! address, a late node's sync of 1,000 blocks, relay of a transaction and of a block, and
//! two halves that mined apart converging on one chain when they meet.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use camel_core::address::Address;
use camel_core::encode::encode_to_vec;
use camel_core::hash::to_hex;
use camel_core::transaction::{OutPoint, TxOut};
use camel_node::daemon::P2P_ADDR_FILE;
use common::process::{NodeProcess, start};
use common::*;
use serde_json::Value;

const LOOPBACK_ANY: &str = "/ip4/127.0.0.1/tcp/0";

fn regtest_address(n: u8) -> String {
    Address::p2pkh(&key(n).public_key(), 0x6f).to_string()
}

/// A node process with its data directory and log.
struct Peer {
    name: &'static str,
    data: PathBuf,
    log: PathBuf,
    process: NodeProcess,
}

impl Peer {
    fn start(dir: &Path, name: &'static str, bootstrap: &[String]) -> Self {
        let data = dir.join(name);
        let log = dir.join(format!("{name}.log"));
        let process = Self::spawn(&data, &log, bootstrap);
        Self {
            name,
            data,
            log,
            process,
        }
    }

    fn spawn(data: &Path, log: &Path, bootstrap: &[String]) -> NodeProcess {
        let mut args = vec!["--p2p-listen", LOOPBACK_ANY];
        for b in bootstrap {
            args.extend(["--bootstrap", b.as_str()]);
        }
        start(data, log, &args)
    }

    /// Stops the process over the API and starts it again on the same data directory.
    fn restart(&mut self, bootstrap: &[String]) {
        let (status, v) = self.process.post("/shutdown", true, "");
        assert_eq!(status, 200, "{v}");
        let exit = self.process.wait(Duration::from_secs(20));
        assert!(exit.success(), "{} exited with {exit}", self.name);
        self.process = Self::spawn(&self.data, &self.log, bootstrap);
    }

    /// The first line of `p2p.addr`: a loopback address ending in `/p2p/<peer id>`.
    fn p2p_addr(&self) -> String {
        let text = std::fs::read_to_string(self.data.join(P2P_ADDR_FILE)).unwrap();
        let line = text.lines().next().unwrap().to_owned();
        assert!(line.contains("/p2p/"), "{line}");
        line
    }

    fn peer_id(&self) -> String {
        let (status, v) = self.process.get("/peers");
        assert_eq!(status, 200, "{v}");
        v["peer_id"].as_str().unwrap().to_owned()
    }

    /// Peer ids of the connected peers.
    fn connected(&self) -> Vec<String> {
        let (status, v) = self.process.get("/peers");
        assert_eq!(status, 200, "{v}");
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| !p["connected_since"].is_null() && p["banned"] == false)
            .map(|p| p["peer_id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn tip(&self) -> (u64, String) {
        let (status, v) = self.process.get("/tip");
        assert_eq!(status, 200, "{v}");
        (
            v["height"].as_u64().unwrap(),
            v["hash"].as_str().unwrap().to_owned(),
        )
    }

    fn chainstate(&self) -> Value {
        let (status, v) = self.process.get("/chainstate");
        assert_eq!(status, 200, "{v}");
        v
    }

    fn generate(&self, n: u32, address: &str) -> Vec<String> {
        let (status, v) = self.process.post(
            "/generate",
            true,
            &format!(r#"{{"n": {n}, "address": "{address}"}}"#),
        );
        assert_eq!(status, 200, "{v}");
        v["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_owned())
            .collect()
    }
}

/// Polls `done` every 100 ms until it holds; fails with the nodes' logs after `timeout`.
fn wait_until(peers: &[&Peer], timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > timeout {
            let logs: String = peers
                .iter()
                .map(|p| {
                    let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(30).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    format!("--- {} ---\n{}\n", p.name, tail.join("\n"))
                })
                .collect();
            panic!("timed out after {timeout:?} waiting for {what}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn same_tip(peers: &[&Peer], tip: &(u64, String)) -> bool {
    peers.iter().all(|p| p.tip() == *tip)
}

#[test]
fn late_nodes_sync_then_discover_and_relay() {
    let dir = TempDir::new("net-relay");
    let a = Peer::start(dir.path(), "a", &[]);
    // 1,000 blocks before anyone else joins; the first coinbases mature.
    let mined = a.generate(1_000, &regtest_address(1));
    assert_eq!(mined.len(), 1_000);
    let a_tip = a.tip();
    assert_eq!(a_tip.0, 1_000);

    // Two nodes start late, both knowing only `a`.
    let boot = vec![a.p2p_addr()];
    let b = Peer::start(dir.path(), "b", &boot);
    let c = Peer::start(dir.path(), "c", &boot);
    let all = [&a, &b, &c];
    wait_until(
        &all,
        Duration::from_secs(40),
        "b and c to sync 1,000 blocks",
        || same_tip(&[&b, &c], &a_tip),
    );
    let states: Vec<Value> = all.iter().map(|p| p.chainstate()).collect();
    assert!(
        states
            .iter()
            .all(|s| s["utxo_set_hash"] == states[0]["utxo_set_hash"]),
        "{states:?}"
    );

    // b and c find each other through a.
    let ids: Vec<String> = all.iter().map(|p| p.peer_id()).collect();
    wait_until(
        &all,
        Duration::from_secs(20),
        "a full mesh of three",
        || {
            all.iter().enumerate().all(|(i, p)| {
                let connected = p.connected();
                ids.iter()
                    .enumerate()
                    .all(|(j, id)| i == j || connected.contains(id))
            })
        },
    );

    let (_, v) = a.process.get("/peers");
    assert_eq!(v["enabled"], true);
    assert_eq!(v["listen"][0].as_str(), Some(a.p2p_addr().as_str()), "{v}");
    for p in v["peers"].as_array().unwrap() {
        assert!(!p["addresses"].as_array().unwrap().is_empty(), "{p}");
        assert!(p["score"].as_f64().is_some_and(|s| s >= 0.0), "{p}");
        assert!(p["connected_since"].as_u64().is_some(), "{p}");
    }

    // A transaction sent to c reaches every mempool.
    let (status, block1) = c.process.get("/block/1");
    assert_eq!(status, 200, "{block1}");
    let coinbase = block1["txids"][0].as_str().unwrap();
    let coin = (
        OutPoint::new(coinbase.parse().unwrap(), 0),
        TxOut {
            value: amount(50 * 100_000_000),
            script_pubkey: script_of(&key(1)),
        },
    );
    let tx = spend(
        &key(1),
        &[coin],
        vec![TxOut {
            value: amount(49 * 100_000_000),
            script_pubkey: script_of(&key(2)),
        }],
    );
    let txid = tx.txid().to_string();
    let (status, v) = c.process.post("/tx", false, &to_hex(&encode_to_vec(&tx)));
    assert_eq!(status, 200, "{v}");
    let tx_path = format!("/tx/{txid}");
    wait_until(
        &all,
        Duration::from_secs(20),
        "the transaction in every mempool",
        || {
            all.iter().all(|p| {
                let (status, v) = p.process.get(&tx_path);
                status == 200 && v["in_mempool"] == true
            })
        },
    );

    // A block mined on b, with the transaction, reaches a and c.
    let hash = b.generate(1, &regtest_address(3)).remove(0);
    let b_tip = (1_001, hash.clone());
    assert_eq!(b.tip(), b_tip);
    wait_until(
        &all,
        Duration::from_secs(20),
        "b's block on every node",
        || same_tip(&[&a, &c], &b_tip),
    );
    for p in all {
        let (status, v) = p.process.get(&tx_path);
        assert_eq!(status, 200, "{}: {v}", p.name);
        assert_eq!(v["block"], hash, "{}: {v}", p.name);
        assert_eq!(v["confirmations"], 1, "{}: {v}", p.name);
    }
}

/// A syncing node accepts each response's blocks with one disk sync for the batch; killed
/// mid-sync (SIGKILL), it reopens on a tip of the source's chain with a UTXO set that lets it
/// finish the sync to the same UTXO-set hash.
#[test]
fn a_node_killed_during_sync_resumes_it() {
    let dir = TempDir::new("net-killsync");
    let a = Peer::start(dir.path(), "a", &[]);
    for _ in 0..3 {
        a.generate(1_000, &regtest_address(1));
    }
    let a_tip = a.tip();
    assert_eq!(a_tip.0, 3_000);
    let mut b = Peer::start(dir.path(), "b", &[a.p2p_addr()]);
    wait_until(
        &[&a, &b],
        Duration::from_secs(60),
        "b's sync under way",
        || b.tip().0 >= 300,
    );
    b.process.kill_9();
    b.process = Peer::spawn(&b.data, &b.log, &[]);
    let (height, hash) = b.tip();
    assert!(height < 3_000, "the sync was over before the kill");
    let (status, v) = a.process.get(&format!("/block/{height}"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["hash"], hash, "b reopened on a block a does not have");
    b.restart(&[a.p2p_addr()]);
    wait_until(
        &[&a, &b],
        Duration::from_secs(60),
        "b synced after the kill",
        || b.tip() == a_tip,
    );
    assert_eq!(
        b.chainstate()["utxo_set_hash"],
        a.chainstate()["utxo_set_hash"]
    );
}

#[test]
fn partitioned_halves_converge_on_the_most_work_chain() {
    let dir = TempDir::new("net-halves");
    // First half: a1 and a2, mining 5 blocks.
    let a1 = Peer::start(dir.path(), "a1", &[]);
    let a2 = Peer::start(dir.path(), "a2", &[a1.p2p_addr()]);
    let a_id = a1.peer_id();
    wait_until(
        &[&a1, &a2],
        Duration::from_secs(20),
        "a2 connected to a1",
        || a2.connected().contains(&a_id),
    );
    a1.generate(5, &regtest_address(4));
    let a_tip = a1.tip();
    wait_until(
        &[&a1, &a2],
        Duration::from_secs(20),
        "a1's blocks on a2",
        || a2.tip() == a_tip,
    );

    // Second half, on its own: b1 and b2, mining 8 blocks to another address.
    let mut b1 = Peer::start(dir.path(), "b1", &[]);
    let mut b2 = Peer::start(dir.path(), "b2", &[b1.p2p_addr()]);
    let b_id = b1.peer_id();
    wait_until(
        &[&b1, &b2],
        Duration::from_secs(20),
        "b2 connected to b1",
        || b2.connected().contains(&b_id),
    );
    b1.generate(8, &regtest_address(5));
    let b_tip = b1.tip();
    wait_until(
        &[&b1, &b2],
        Duration::from_secs(20),
        "b1's blocks on b2",
        || b2.tip() == b_tip,
    );
    assert_eq!(a1.tip(), a_tip, "the halves were apart");
    assert_ne!(
        a1.chainstate()["utxo_set_hash"],
        b1.chainstate()["utxo_set_hash"]
    );

    // The second half comes back knowing the first: everyone follows the longer chain.
    let boot = vec![a1.p2p_addr()];
    b1.restart(&boot);
    b2.restart(&boot);
    let all = [&a1, &a2, &b1, &b2];
    wait_until(&all, Duration::from_secs(40), "one tip on all four", || {
        same_tip(&all, &b_tip)
    });
    let states: Vec<Value> = all.iter().map(|p| p.chainstate()).collect();
    assert!(
        states
            .iter()
            .all(|s| s["utxo_set_hash"] == states[0]["utxo_set_hash"] && s["height"] == 8),
        "{states:?}"
    );
}

#[test]
fn busy_p2p_port_stops_the_start_and_no_p2p_runs_alone() {
    let dir = TempDir::new("net-flags");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let out = std::process::Command::new(common::process::binary())
        .args(["--regtest", "--api-port", "0", "--p2p-listen", &listen])
        .arg("--data-dir")
        .arg(dir.path().join("busy"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {listen}")),
        "{stderr}"
    );
    assert!(!dir.path().join("busy").join(P2P_ADDR_FILE).exists());

    let data = dir.path().join("alone");
    let alone = start(&data, &dir.path().join("alone.log"), &["--no-p2p"]);
    let (status, v) = alone.get("/peers");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["enabled"], false);
    assert!(!data.join(P2P_ADDR_FILE).exists());
}
