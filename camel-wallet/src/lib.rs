//! The CamelidCoin light wallet, as a library; `src/main.rs` is the command line over it.
//!
//! Modules:
//! - [`node`]: the node's HTTP API (reqwest): chain, coins, transactions, the job pool,
//!   workers and delegated verification.
//! - [`job`]: the client's side of the job protocol, from offer to settlement, dispute or
//!   refund.

pub mod job;
pub mod node;
