//! Block propagation across `camel-node` processes on loopback, printed as a table
//! (`cargo bench -p camel-node --bench network -- [--nodes 16] [--rounds 30]`).
//!
//! Every node bootstraps from node 0 and finds the others by Kademlia. Each round a different
//! node mines one block over its API (`POST /generate`, which returns once the block is
//! stored and handed to gossip); the time is from that moment to the moment every node's tip
//! (polled over the API in a loop) is the new block. Without `--bench` (as `cargo test
//! --all-targets` runs it) 4 nodes and 3 rounds run as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::TempDir;
use common::process::{NodeProcess, start};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len().saturating_sub(1)) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn tip_of(node: &NodeProcess) -> String {
    let (status, v) = node.get("/tip");
    assert_eq!(status, 200, "{v}");
    v["hash"].as_str().unwrap_or_default().to_owned()
}

fn connected(node: &NodeProcess) -> usize {
    let (_, v) = node.get("/peers");
    v["peers"].as_array().map_or(0, |peers| {
        peers
            .iter()
            .filter(|p| !p["connected_since"].is_null() && p["banned"] == false)
            .count()
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let n = arg(&args, "--nodes", if full { 16 } else { 4 }).max(2);
    let rounds = arg(&args, "--rounds", if full { 30 } else { 3 }).max(1);
    let dir = TempDir::new("bench-network");
    let listen = ["--p2p-listen", "/ip4/127.0.0.1/tcp/0"];
    let data = |i: usize| -> PathBuf { dir.path().join(format!("n{i}")) };
    let log = |i: usize| -> PathBuf { dir.path().join(format!("n{i}.log")) };
    let first = start(&data(0), &log(0), &listen);
    let bootstrap = std::fs::read_to_string(data(0).join(camel_node::daemon::P2P_ADDR_FILE))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let mut nodes = vec![first];
    for i in 1..n {
        let mut a = listen.to_vec();
        a.extend(["--bootstrap", bootstrap.as_str()]);
        nodes.push(start(&data(i), &log(i), &a));
    }
    // Discovery: wait until every node has at least half the others as peers.
    let want = (n - 1).div_ceil(2);
    let start_wait = Instant::now();
    while nodes.iter().any(|node| connected(node) < want) {
        assert!(
            start_wait.elapsed() < Duration::from_secs(120),
            "discovery stalled; logs in {}",
            dir.path().display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let degrees: Vec<usize> = nodes.iter().map(connected).collect();
    let address =
        camel_core::address::Address::p2pkh(&common::key(1).public_key(), 0x6f).to_string();
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let miner = &nodes[round % n];
        let (status, v) = miner.post(
            "/generate",
            true,
            &format!(r#"{{"n": 1, "address": "{address}"}}"#),
        );
        let t0 = Instant::now();
        assert_eq!(status, 200, "{v}");
        let hash = v["blocks"][0].as_str().unwrap().to_owned();
        let mut pending: Vec<usize> = (0..n).filter(|&i| i != round % n).collect();
        while !pending.is_empty() {
            pending.retain(|&i| tip_of(&nodes[i]) != hash);
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "round {round}: nodes {pending:?} never got {hash}; logs in {}",
                dir.path().display()
            );
        }
        times.push(t0.elapsed());
    }
    let mut sorted = times.clone();
    sorted.sort();
    println!(
        "\n## A block reaching every one of {n} camel-node processes ({rounds} rounds)\n\nload average: {}; peers per node after discovery: {}–{}\n",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        degrees.iter().min().unwrap_or(&0),
        degrees.iter().max().unwrap_or(&0),
    );
    println!("| p50 | p95 | max |");
    println!("|---|---|---|");
    println!(
        "| {:.1} ms | {:.1} ms | {:.1} ms |",
        percentile(&sorted, 0.5).as_secs_f64() * 1e3,
        percentile(&sorted, 0.95).as_secs_f64() * 1e3,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    for mut node in nodes {
        assert!(
            node.signal_and_wait("TERM", Duration::from_secs(30))
                .success()
        );
    }
}
