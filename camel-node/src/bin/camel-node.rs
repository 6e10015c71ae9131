//! `camel-node`: runs a CamelidCoin full node (store, API, optional miner) without the
//! inference engine. The same flags as `camel-worker node`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use camel_core::params::Network;
use camel_node::daemon::{DaemonConfig, run};
use camel_node::node::NodeConfig;
use clap::Parser;

/// A CamelidCoin full node.
#[derive(Debug, Parser)]
#[command(name = "camel-node", version)]
struct Args {
    /// Use the regression-test network (trivial proof of work, on-demand mining).
    #[arg(long, conflicts_with = "network")]
    regtest: bool,
    /// Network: main, test or regtest.
    #[arg(long, default_value = "main")]
    network: Network,
    /// Data directory (default: the platform's data directory, per network).
    #[arg(long, env = "CAMEL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// API port on the API address; 0 picks a free one (written to <data-dir>/api.addr).
    #[arg(long, default_value_t = 8732)]
    api_port: u16,
    /// API address; loopback by default. Anything else exposes the node's API.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    api_addr: IpAddr,
    /// Mine blocks.
    #[arg(long)]
    mine: bool,
    /// Mining threads (default: every core).
    #[arg(long)]
    mine_threads: Option<usize>,
    /// Address the mined coinbases pay.
    #[arg(long)]
    mining_address: Option<String>,
    /// Memory for the store's page cache, MiB (bounds the node's memory as the chain grows).
    #[arg(long, default_value_t = camel_node::node::DEFAULT_CACHE_BYTES >> 20)]
    db_cache_mib: usize,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let config = DaemonConfig {
        network: if args.regtest {
            Network::Regtest
        } else {
            args.network
        },
        data_dir: args.data_dir,
        api_addr: SocketAddr::new(args.api_addr, args.api_port),
        mine: args.mine,
        mine_threads: args.mine_threads.unwrap_or(cores),
        mining_address: args.mining_address,
        node: NodeConfig {
            cache_bytes: args.db_cache_mib.saturating_mul(1 << 20),
            ..NodeConfig::default()
        },
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run(config, std::future::pending()))?;
    Ok(())
}
