//! `camel-wallet`: the CamelidCoin light wallet.

use clap::Parser;

/// CamelidCoin wallet: a light client that holds your keys, pays for LLM completion jobs,
/// follows them and checks their answers through peers, from a TUI or a scriptable CLI.
#[derive(Debug, Parser)]
#[command(name = "camel-wallet", version, about, long_about = None)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("the wallet is not available yet; see README.md for the status of each part")
}
