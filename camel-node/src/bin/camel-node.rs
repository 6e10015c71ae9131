//! `camel-node`: runs a CamelidCoin full node (store, API, optional miner) without the
//! inference engine. The same flags as `camel-worker node` ([`camel_node::cli::NodeArgs`]).

use anyhow::Context;
use camel_node::cli::NodeArgs;
use camel_node::daemon::run;
use clap::Parser;

/// A CamelidCoin full node.
#[derive(Debug, Parser)]
#[command(name = "camel-node", version)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Cli::parse().node.into_config();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run(config, std::future::pending()))?;
    Ok(())
}
