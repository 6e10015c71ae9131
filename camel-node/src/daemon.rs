//! The node process: data directory, store, peer-to-peer network, API server, miners, and a
//! clean shutdown.
//!
//! Shutdown (SIGINT, SIGTERM or `POST /shutdown`) is broadcast on a watch channel: the API
//! server stops accepting connections and finishes the requests in flight, miners stop at
//! their next look at the stop flag, the network closes its connections, and [`run`]
//! returns only after every task has ended, the cookie file is removed and the data
//! directory's lock released.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use camel_core::interpreter::FraudProofOracle;
use camel_core::job::evidence::{JobOracle, NoModels};
use camel_core::params::{Network, Params};
use camel_p2p::{KeySource, Multiaddr, NetworkHandle};
use tokio::sync::{mpsc, watch};

use crate::api::{ApiState, router};
use crate::datadir::{DataDir, DataDirError, default_data_dir};
use crate::jobpool::JobPool;
use crate::net::{NodeChain, sync_config};
use crate::node::{Announcement, Node, NodeConfig, NodeError};

/// Settings of a node process.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub network: Network,
    /// `None`: the platform's data directory for the network.
    pub data_dir: Option<PathBuf>,
    /// Where the API listens (port 0 picks a free port; the bound address is logged and
    /// written to `<data dir>/api.addr`).
    pub api_addr: SocketAddr,
    pub mine: bool,
    pub mine_threads: usize,
    /// Address the miner's coinbase pays (required with `mine`).
    pub mining_address: Option<String>,
    pub node: NodeConfig,
    /// The peer-to-peer network; `None` runs the node alone.
    pub p2p: Option<P2pConfig>,
}

/// Settings of the node's peer-to-peer network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct P2pConfig {
    /// Addresses to listen on (`/ip4/0.0.0.0/tcp/8733`; port 0 picks a free one, and the
    /// bound addresses are written to `<data dir>/p2p.addr`).
    pub listen: Vec<Multiaddr>,
    /// Peers to join the network through.
    pub bootstrap: Vec<Multiaddr>,
}

/// The default peer-to-peer port of `network`.
pub fn default_p2p_port(network: Network) -> u16 {
    match network {
        Network::Main => 8733,
        Network::Test => 18733,
        Network::Regtest => 18833,
    }
}

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("mining address {address:?}: {why}")]
    MiningAddress { address: String, why: String },
    #[error("--mine needs --mining-address")]
    NoMiningAddress,
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Network(#[from] camel_p2p::NetworkError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// File in the data directory holding the API's bound address.
pub const API_ADDR_FILE: &str = "api.addr";

/// File in the data directory listing the network's listen addresses, one a line, each
/// ending in `/p2p/<peer id>` (ready for `--bootstrap`).
pub const P2P_ADDR_FILE: &str = "p2p.addr";

/// The network's settings for a node on `params`' network keeping its key in `dir`.
/// Regtest runs on short timers (pings every second, status every two, discovery every
/// second) so that local networks settle in seconds.
pub fn network_config(
    params: &Params,
    dir: &std::path::Path,
    p2p: &P2pConfig,
) -> camel_p2p::Config {
    let mut c = if params.network == Network::Regtest {
        let mut c = camel_p2p::Config::local(params.clone());
        c.key = KeySource::DataDir(dir.to_path_buf());
        c
    } else {
        camel_p2p::Config::new(params.clone(), KeySource::DataDir(dir.to_path_buf()))
    };
    c.listen = p2p.listen.clone();
    c.bootstrap = p2p.bootstrap.clone();
    c.sync = sync_config();
    // A verification request runs a model over a whole output: give it time.
    c.wire.request_timeout = std::time::Duration::from_secs(120);
    c
}

/// What a process embedding the node runs beside it (the worker's executor): started with the
/// job pool once the node and its network are up, awaited at shutdown after the shutdown
/// signal, before the network stops, so it can finish or release its jobs.
pub type Extension =
    Box<dyn FnOnce(Arc<JobPool>, watch::Receiver<bool>) -> tokio::task::JoinHandle<()> + Send>;

/// Gossips what the node announces until the node stops announcing or shutdown.
async fn announce(
    handle: NetworkHandle,
    mut rx: mpsc::UnboundedReceiver<Announcement>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let what = tokio::select! {
            w = rx.recv() => match w {
                Some(w) => w,
                None => break,
            },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let result = match &what {
            Announcement::Block(b) => handle.broadcast_block(b).await,
            Announcement::Tx(t) => handle.broadcast_tx(t).await,
        };
        if let Err(e) = result {
            // No peer yet, or a message gossip has seen: nothing to retry.
            tracing::debug!("announcement not gossiped: {e}");
        }
    }
}

/// Starts the network on `node` and writes its addresses to `p2p.addr` (the network is shut
/// down again if that fails).
async fn start_network(
    node: &Arc<Node>,
    dir: &DataDir,
    p2p: &P2pConfig,
    jobs: Arc<JobPool>,
) -> Result<camel_p2p::Network, DaemonError> {
    let network = camel_p2p::Network::start(
        network_config(node.params(), dir.path(), p2p),
        Arc::new(NodeChain::new(node.clone())),
        jobs,
    )
    .await?;
    let addrs = network.handle().listen_addrs();
    let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
    if let Err(e) = std::fs::write(dir.path().join(P2P_ADDR_FILE), text) {
        network.shutdown().await;
        return Err(e.into());
    }
    for a in &addrs {
        tracing::info!("p2p listening on {a}");
    }
    Ok(network)
}

/// Runs a node that holds no model (fraud proofs it cannot judge do not stop it following
/// the most-work chain) until `external_shutdown` resolves, a signal arrives or
/// `POST /shutdown`.
pub async fn run(
    config: DaemonConfig,
    external_shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    // Without a model the node still judges what needs none (malformed evidence, forged
    // commitments, bad deliveries); inference and text evidence are unavailable to it.
    run_with_oracle(
        config,
        Arc::new(JobOracle::new(NoModels)),
        external_shutdown,
    )
    .await
}

/// [`run`] with the fraud-proof oracle of a node that holds a model.
pub async fn run_with_oracle(
    config: DaemonConfig,
    oracle: Arc<dyn FraudProofOracle + Send + Sync>,
    external_shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    run_full(config, oracle, None, external_shutdown).await
}

/// [`run_with_oracle`] with an [`Extension`] running beside the node.
pub async fn run_full(
    config: DaemonConfig,
    oracle: Arc<dyn FraudProofOracle + Send + Sync>,
    extension: Option<Extension>,
    external_shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    // Take over SIGINT and SIGTERM before anything can observe the node running.
    let signals = Signals::install()?;
    let params = Params::new(config.network);
    let dir_path = match &config.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir(config.network)?,
    };
    let dir = DataDir::open(&dir_path)?;
    let payout = match (&config.mining_address, config.mine) {
        (Some(a), _) => Some(crate::node::payout_script_for(&params, a).map_err(|e| {
            DaemonError::MiningAddress {
                address: a.clone(),
                why: e.to_string(),
            }
        })?),
        (None, true) => return Err(DaemonError::NoMiningAddress),
        (None, false) => None,
    };
    let store_path = dir.store_path();
    let node_config = config.node.clone();
    let node =
        tokio::task::spawn_blocking(move || Node::open(&store_path, params, node_config, oracle))
            .await
            .map_err(std::io::Error::other)??;
    let node = Arc::new(node);
    {
        let chain = node.chain();
        tracing::info!(
            "{} chain at height {} tip {} in {}",
            config.network,
            chain.height(),
            chain.tip(),
            dir.path().display()
        );
    }
    let token = dir.write_cookie()?;
    let listener = tokio::net::TcpListener::bind(config.api_addr)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: config.api_addr,
            source,
        })?;
    let bound = listener.local_addr()?;
    let jobs = Arc::new(JobPool::new(node.clone()));
    let network = match &config.p2p {
        Some(p2p) => Some(start_network(&node, &dir, p2p, jobs.clone()).await?),
        None => None,
    };
    if let Some(n) = &network {
        jobs.set_network(n.handle());
    }
    if let Err(e) = std::fs::write(dir.path().join(API_ADDR_FILE), bound.to_string()) {
        if let Some(n) = network {
            n.shutdown().await;
        }
        return Err(e.into());
    }
    tracing::info!("api listening on http://{bound}");
    println!("api listening on {bound}");

    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let state = ApiState {
        node: node.clone(),
        token: token.into(),
        shutdown: shutdown_tx.clone(),
        mine_threads: config.mine_threads.max(1),
        network: network.as_ref().map(|n| n.handle()),
        jobs: Some(jobs.clone()),
    };
    let announcer = network.as_ref().map(|n| {
        let (tx, rx) = mpsc::unbounded_channel();
        node.set_announcer(tx);
        tokio::spawn(announce(n.handle(), rx, shutdown_rx.clone()))
    });
    let mut server_shutdown = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async move {
                let _ = server_shutdown.wait_for(|s| *s).await;
            })
            .await
    });

    let miner = match payout.filter(|_| config.mine) {
        Some(script) => {
            let node = node.clone();
            let threads = config.mine_threads.max(1);
            tracing::info!("mining on {threads} threads");
            Some(std::thread::spawn(move || {
                node.mine_forever(&script, threads)
            }))
        }
        None => None,
    };
    // New transactions reach the miners' templates at least every 10 seconds.
    let refresher = {
        let node = node.clone();
        let mut rx = shutdown_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => node.refresh_miners(),
                    _ = rx.wait_for(|s| *s) => break,
                }
            }
        })
    };

    // Job states follow the tip: mark final jobs, prune old ones.
    let maintainer = {
        let jobs = jobs.clone();
        let mut rx = shutdown_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                    _ = rx.wait_for(|s| *s) => break,
                }
                let jobs = jobs.clone();
                let _ = tokio::task::spawn_blocking(move || jobs.maintain()).await;
            }
        })
    };
    let extension = extension.map(|start| start(jobs.clone(), shutdown_rx.clone()));

    tokio::select! {
        _ = signals.recv() => tracing::info!("signal received, shutting down"),
        _ = external_shutdown => tracing::info!("shutting down"),
        _ = shutdown_rx.wait_for(|s| *s) => tracing::info!("shutdown requested over the API"),
    }
    let _ = shutdown_tx.send(true);
    node.begin_shutdown();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("api server: {e}"),
        Err(e) => tracing::error!("api server task: {e}"),
    }
    let _ = refresher.await;
    let _ = maintainer.await;
    if let Some(e) = extension {
        let _ = e.await;
    }
    drop(jobs);
    if let Some(m) = miner {
        let _ = tokio::task::spawn_blocking(move || m.join()).await;
    }
    if let Some(a) = announcer {
        let _ = a.await;
    }
    if let Some(n) = network {
        n.shutdown().await;
        let _ = std::fs::remove_file(dir.path().join(P2P_ADDR_FILE));
    }
    // Blocking API work in flight holds node references; the store closes with the last.
    drop(node);
    dir.remove_cookie();
    let _ = std::fs::remove_file(dir.path().join(API_ADDR_FILE));
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT and SIGTERM, handled from the moment they are installed.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Resolves on SIGINT or SIGTERM (Ctrl-C elsewhere).
    async fn recv(mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
