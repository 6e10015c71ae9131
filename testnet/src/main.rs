//! `camel-testnet`: a local CamelidCoin network on loopback.

use clap::Parser;

/// CamelidCoin local testnet: starts workers on loopback with regtest parameters and the
/// bundled model, and runs scenarios (`demo`, honest and cheating workers).
#[derive(Debug, Parser)]
#[command(name = "camel-testnet", version, about, long_about = None)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!(
        "the local testnet is not available yet; see README.md for the status of each part"
    )
}
