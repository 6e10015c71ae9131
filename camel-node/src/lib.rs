//! CamelidCoin full node: the chain store, chain selection and reorganisations, the mempool,
//! the miner and the HTTP API. The worker binary runs it (`camel-worker node …`); the
//! `camel-node` binary here runs it alone.
//!
//! Modules:
//! - [`datadir`]: the data directory, its lock file and the API cookie.
//! - [`store`]: the redb store (headers, blocks, UTXO set, undo data, job records, and the
//!   transaction and address indexes the indexer moves behind the tip).
//! - [`chain`]: headers-first acceptance, block acceptance, most-work chain selection,
//!   reorganisations, orphans, the script check queue.
//! - [`mempool`]: relay policy, replacement, eviction, block templates.
//! - [`miner`]: SHA-256d midstate mining over nonce and extranonce.
//! - [`node`]: chain and mempool behind one shared handle, and the indexer thread.
//! - [`jobpool`]: the off-chain job pool: job messages checked, stored and derived into states;
//!   the node's `JobHandler`.
//! - [`net`]: the node behind camel-p2p's `ChainAccess`, for the peer-to-peer network.
//! - [`api`]: the JSON HTTP API (`docs/api.md`).
//! - [`daemon`]: the node process: start, serve, mine, shut down cleanly.
//! - [`cli`]: the node's command-line flags, for `camel-node` and `camel-worker node`.

pub mod api;
pub mod chain;
pub mod cli;
pub mod daemon;
pub mod datadir;
pub mod jobpool;
pub mod mempool;
pub mod miner;
pub mod net;
pub mod node;
pub mod store;
