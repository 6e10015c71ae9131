//! P2P benchmark on loopback, all nodes in this process; prints a table for docs/perf.md.
//!
//! `cargo run -p camel-p2p --release --example p2p_bench -- [sync|propagation|all]
//!  [--nodes 16] [--rounds 40] [--blocks 10000]`
//!
//! - sync: a new node syncs `--blocks` regtest blocks from one in-memory peer; blocks/s and
//!   the process's resident memory.
//! - propagation: `--nodes` nodes; each round a different node mines a block and gossips it;
//!   the time until every other node has it. Two topologies: `full` (every node bootstraps
//!   from node 0 and Kademlia connects everyone) and `tree` (node i bootstraps from node
//!   (i-1)/2 and dials no one else: a binary tree, up to 6 hops between leaves).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use camel_core::params::Params;
use common::{MemChain, TestNode, config};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l.trim_start_matches(field).trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn bench_sync(blocks: u32) {
    let params = Params::regtest();
    let server = MemChain::new(params.clone());
    let t = Instant::now();
    server.mine_n(blocks, b"bench");
    let mine_time = t.elapsed();
    let rss_before = proc_status("VmRSS:");
    let a = TestNode::start(config(&[]), server.clone()).await;
    let late = TestNode::start(config(&[a.addr()]), MemChain::new(params)).await;
    let t = Instant::now();
    let mut h = late.chain.watch_height();
    h.wait_for(|h| *h == blocks).await.unwrap();
    let took = t.elapsed();
    assert_eq!(late.chain.tip_hash(), server.tip_hash());
    println!("## sync");
    println!("| blocks | time | blocks/s | RSS before | RSS after | peak RSS | load avg |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {blocks} | {:.2} s | {:.0} | {rss_before} | {} | {} | {} |",
        took.as_secs_f64(),
        f64::from(blocks) / took.as_secs_f64(),
        proc_status("VmRSS:"),
        proc_status("VmHWM:"),
        loadavg()
    );
    println!(
        "(mining the {blocks} blocks in memory first took {:.2} s)",
        mine_time.as_secs_f64()
    );
    a.net.shutdown().await;
    late.net.shutdown().await;
}

async fn bench_propagation(n: usize, rounds: usize, tree: bool) {
    let params = Params::regtest();
    let mut nodes: Vec<TestNode> = Vec::new();
    for i in 0..n {
        let boot: Vec<_> = match i {
            0 => vec![],
            _ if tree => vec![nodes[(i - 1) / 2].addr()],
            _ => vec![nodes[0].addr()],
        };
        let mut c = config(&boot);
        if tree {
            c.discovery = false;
        }
        nodes.push(TestNode::start(c, MemChain::new(params.clone())).await);
    }
    // Let discovery and the gossip mesh settle.
    let settle = Instant::now();
    loop {
        let mut ok = true;
        for node in &nodes {
            let s = node.net.handle().status().await.unwrap();
            let want = if tree { 1 } else { 2 };
            ok &= s.connected >= want && s.block_mesh >= want;
        }
        if ok || settle.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut degrees = Vec::new();
    for node in &nodes {
        degrees.push(node.net.handle().status().await.unwrap().connected);
    }

    let mut to_all = Vec::new();
    let mut per_node = Vec::new();
    for r in 0..rounds {
        let miner = &nodes[r % n];
        let height = (r + 1) as u32;
        let block = miner.chain.mine(format!("r{r}").as_bytes());
        let t0 = Instant::now();
        miner.net.handle().broadcast_block(&block).await.unwrap();
        let mut waits = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            if i == r % n {
                continue;
            }
            let mut w = node.chain.watch_height();
            waits.push(tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(10), w.wait_for(|h| *h >= height))
                    .await
                    .map(|_| t0.elapsed())
                    .unwrap_or(Duration::from_secs(10))
            }));
        }
        let mut last = Duration::ZERO;
        for w in waits {
            let d = w.await.unwrap();
            per_node.push(d);
            last = last.max(d);
        }
        to_all.push(last);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    to_all.sort();
    per_node.sort();
    println!("## propagation ({})", if tree { "tree" } else { "full" });
    println!(
        "{n} nodes, degrees min {} / max {} (mean {:.1}), {rounds} blocks, load avg {}",
        degrees.iter().min().unwrap_or(&0),
        degrees.iter().max().unwrap_or(&0),
        degrees.iter().sum::<usize>() as f64 / degrees.len().max(1) as f64,
        loadavg()
    );
    println!("| measure | p50 | p95 | max |");
    println!("|---|---|---|---|");
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!(
        "| block reaches every node | {} | {} | {} |",
        ms(percentile(&to_all, 0.5)),
        ms(percentile(&to_all, 0.95)),
        ms(*to_all.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "| block reaches one node | {} | {} | {} |",
        ms(percentile(&per_node, 0.5)),
        ms(percentile(&per_node, 0.95)),
        ms(*per_node.last().unwrap_or(&Duration::ZERO))
    );
    for node in nodes {
        node.net.shutdown().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let what = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "all".into());
    if what == "sync" || what == "all" {
        bench_sync(arg("--blocks", 10_000) as u32).await;
    }
    if what == "propagation" || what == "all" {
        bench_propagation(arg("--nodes", 16), arg("--rounds", 40), false).await;
        bench_propagation(arg("--nodes", 16), arg("--rounds", 40), true).await;
    }
}
