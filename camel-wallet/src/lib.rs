//! The CamelidCoin light wallet, as a library; `src/main.rs` is the command line over it.
//!
//! Modules:
//! - [`keys`]: the BIP39 mnemonic and the BIP32 keys derived from it, on a documented path.
//! - [`keystore`]: the mnemonic encrypted at rest (argon2id, ChaCha20-Poly1305), atomic writes.
//! - [`wallet`]: a wallet directory: keys handed out once each, balance, payments, restore scan.
//! - [`node`]: the node's HTTP API (reqwest): chain, coins, transactions, the job pool,
//!   workers and delegated verification.
//! - [`spv`]: what the wallet checks itself instead of believing the node: the header chain
//!   (proof of work, retargets, linkage, times) and merkle proofs of its transactions.
//! - [`gateway`]: `camel-wallet serve`, an OpenAI-compatible endpoint where each completion is
//!   a paid, verified job.
//! - [`tui`]: the terminal wallet (ratatui): state, screens and the event loop.
//! - [`job`]: the client's side of the job protocol, from offer to settlement, dispute or
//!   refund.

pub mod gateway;
pub mod job;
pub mod keys;
pub mod keystore;
pub mod node;
pub mod spv;
pub mod tui;
pub mod wallet;
