//! The node's command-line flags, shared by `camel-node` and `camel-worker node`
//! (`#[command(flatten)]` them into a clap parser, then [`NodeArgs::into_config`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use camel_core::params::Network;

use camel_p2p::Multiaddr;
use libp2p::multiaddr::Protocol;

use crate::daemon::{DaemonConfig, P2pConfig, default_p2p_port};
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
    /// Peer-to-peer listen address, repeatable (default /ip4/0.0.0.0/tcp/8733 on main,
    /// port 18733 on test, 18833 on regtest; tcp/0 picks a free port). The bound addresses,
    /// with the peer id, are written to <data-dir>/p2p.addr.
    #[arg(long = "p2p-listen", value_name = "MULTIADDR")]
    pub p2p_listen: Vec<Multiaddr>,
    /// A peer to join the network through, repeatable (e.g. a line of another node's
    /// p2p.addr).
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<Multiaddr>,
    /// Run without the peer-to-peer network.
    #[arg(long, conflicts_with_all = ["p2p_listen", "bootstrap"])]
    pub no_p2p: bool,
}

impl NodeArgs {
    /// The daemon's settings.
    pub fn into_config(self) -> DaemonConfig {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let network = if self.regtest {
            Network::Regtest
        } else {
            self.network
        };
        let p2p = (!self.no_p2p).then(|| P2pConfig {
            listen: if self.p2p_listen.is_empty() {
                vec![
                    Multiaddr::from(Ipv4Addr::UNSPECIFIED)
                        .with(Protocol::Tcp(default_p2p_port(network))),
                ]
            } else {
                self.p2p_listen
            },
            bootstrap: self.bootstrap,
        });
        DaemonConfig {
            network,
            data_dir: self.data_dir,
            api_addr: SocketAddr::new(self.api_addr, self.api_port),
            mine: self.mine,
            mine_threads: self.mine_threads.unwrap_or(cores),
            mining_address: self.mining_address,
            node: NodeConfig {
                cache_bytes: self.db_cache_mib.saturating_mul(1 << 20),
                ..NodeConfig::default()
            },
            p2p,
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
        let p2p = c.p2p.unwrap();
        assert_eq!(p2p.listen, vec!["/ip4/0.0.0.0/tcp/8733".parse().unwrap()]);
        assert!(p2p.bootstrap.is_empty());
        assert!(Cli::try_parse_from(["x", "--regtest", "--network", "test"]).is_err());
        assert!(Cli::try_parse_from(["x", "--network", "mainnet"]).is_err());
    }

    #[test]
    fn p2p_flags() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.node.into_config());
        let c = parse(&[
            "x",
            "--regtest",
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--bootstrap",
            "/ip4/127.0.0.1/tcp/1000",
            "--bootstrap",
            "/ip4/127.0.0.1/tcp/1001",
        ])
        .unwrap();
        let p2p = c.p2p.unwrap();
        assert_eq!(p2p.listen, vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
        assert_eq!(p2p.bootstrap.len(), 2);
        let c = parse(&["x", "--regtest"]).unwrap();
        assert_eq!(
            c.p2p.unwrap().listen,
            vec!["/ip4/0.0.0.0/tcp/18833".parse().unwrap()]
        );
        assert_eq!(parse(&["x", "--no-p2p"]).unwrap().p2p, None);
        assert!(parse(&["x", "--no-p2p", "--bootstrap", "/ip4/1.2.3.4/tcp/1"]).is_err());
        assert!(parse(&["x", "--bootstrap", "not-an-address"]).is_err());
    }
}
