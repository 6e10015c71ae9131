//! The node's command-line flags, shared by `camel-node` and `camel-worker node`
//! (`#[command(flatten)]` them into a clap parser, then [`NodeArgs::into_config`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use camel_core::params::Network;

use crate::daemon::DaemonConfig;
use crate::node::{DEFAULT_CACHE_BYTES, NodeConfig};

/// Flags of a full node.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// Use the regression-test network (trivial proof of work, on-demand mining).
    #[arg(long, conflicts_with = "network")]
    pub regtest: bool,
    /// Network: main, test or regtest.
    #[arg(long, default_value = "main")]
    pub network: Network,
    /// Data directory (default: the platform's data directory, per network).
    #[arg(long, env = "CAMEL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// API port on the API address; 0 picks a free one (written to <data-dir>/api.addr).
    #[arg(long, default_value_t = 8732)]
    pub api_port: u16,
    /// API address; loopback by default. Anything else exposes the node's API.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub api_addr: IpAddr,
    /// Mine blocks.
    #[arg(long)]
    pub mine: bool,
    /// Mining threads (default: every core).
    #[arg(long)]
    pub mine_threads: Option<usize>,
    /// Address the mined coinbases pay.
    #[arg(long)]
    pub mining_address: Option<String>,
    /// Memory for the store's page cache, MiB (bounds the node's memory as the chain grows).
    #[arg(long, default_value_t = DEFAULT_CACHE_BYTES >> 20)]
    pub db_cache_mib: usize,
}

impl NodeArgs {
    /// The daemon's settings.
    pub fn into_config(self) -> DaemonConfig {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        DaemonConfig {
            network: if self.regtest {
                Network::Regtest
            } else {
                self.network
            },
            data_dir: self.data_dir,
            api_addr: SocketAddr::new(self.api_addr, self.api_port),
            mine: self.mine,
            mine_threads: self.mine_threads.unwrap_or(cores),
            mining_address: self.mining_address,
            node: NodeConfig {
                cache_bytes: self.db_cache_mib.saturating_mul(1 << 20),
                ..NodeConfig::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    #[test]
    fn flags_become_a_config() {
        let c = Cli::try_parse_from([
            "x",
            "--regtest",
            "--data-dir",
            "/tmp/d",
            "--api-port",
            "0",
            "--mine",
            "--mine-threads",
            "3",
            "--mining-address",
            "addr",
            "--db-cache-mib",
            "8",
        ])
        .unwrap()
        .node
        .into_config();
        assert_eq!(c.network, Network::Regtest);
        assert_eq!(c.api_addr, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.data_dir, Some(PathBuf::from("/tmp/d")));
        assert!(c.mine);
        assert_eq!(c.mine_threads, 3);
        assert_eq!(c.mining_address.as_deref(), Some("addr"));
        assert_eq!(c.node.cache_bytes, 8 << 20);
        let c = Cli::try_parse_from(["x"]).unwrap().node.into_config();
        assert_eq!(c.network, Network::Main);
        assert_eq!(c.api_addr, "127.0.0.1:8732".parse().unwrap());
        assert!(Cli::try_parse_from(["x", "--regtest", "--network", "test"]).is_err());
        assert!(Cli::try_parse_from(["x", "--network", "mainnet"]).is_err());
    }
}
