//! The node process: data directory, store, API server, miners, and a clean shutdown.
//!
//! Shutdown (SIGINT, SIGTERM or `POST /shutdown`) is broadcast on a watch channel: the API
//! server stops accepting connections and finishes the requests in flight, miners stop at
//! their next look at the stop flag, and [`run`] returns only after every task has ended,
//! the cookie file is removed and the data directory's lock released.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use camel_core::interpreter::FraudProofsUnavailable;
use camel_core::params::{Network, Params};
use tokio::sync::watch;

use crate::api::{ApiState, router};
use crate::datadir::{DataDir, DataDirError, default_data_dir};
use crate::node::{Node, NodeConfig, NodeError};

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
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// File in the data directory holding the API's bound address.
pub const API_ADDR_FILE: &str = "api.addr";

/// Runs a node until `external_shutdown` resolves, a signal arrives or `POST /shutdown`.
pub async fn run(
    config: DaemonConfig,
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
    let node = tokio::task::spawn_blocking(move || {
        Node::open(
            &store_path,
            params,
            node_config,
            Arc::new(FraudProofsUnavailable),
        )
    })
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
    std::fs::write(dir.path().join(API_ADDR_FILE), bound.to_string())?;
    tracing::info!("api listening on http://{bound}");
    println!("api listening on {bound}");

    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let state = ApiState {
        node: node.clone(),
        token: token.into(),
        shutdown: shutdown_tx.clone(),
        mine_threads: config.mine_threads.max(1),
    };
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
    if let Some(m) = miner {
        let _ = tokio::task::spawn_blocking(move || m.join()).await;
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
