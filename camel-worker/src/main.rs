//! `camel-worker`: the CamelidCoin worker daemon.

use clap::Parser;

/// CamelidCoin worker: a full node (chain store, P2P, mempool and job pool, HTTP API), a miner,
/// and an inference engine that takes paid LLM completion jobs, stakes on its answers and
/// verifies others' with RASTiC.
#[derive(Debug, Parser)]
#[command(name = "camel-worker", version, about, long_about = None)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!(
        "the worker daemon is not available yet; see README.md for the status of each part"
    )
}
