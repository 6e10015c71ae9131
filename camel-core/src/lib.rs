//! CamelidCoin consensus and protocol, shared by the worker and the wallet.
//!
//! Pure and deterministic: no I/O, no threads, no clocks. Modules:
//! - [`encode`]: consensus encoding traits, CompactSize, bounded slice decoders.
//! - [`hash`]: SHA-256, SHA-256d, HASH160 and the 32-byte id newtypes (`Txid`, `BlockHash`, `JobId`, `ModelId`).
//! - [`amount`]: `Amount`, checked and bounded by the money supply.
//! - [`keys`]: secp256k1 keys and low-S ECDSA signatures.
//! - [`address`]: Base58Check pay-to-public-key-hash addresses.
//! - [`transaction`]: transactions, outpoints, their encoding and txid.
//! - [`sighash`]: the digest a signature commits to.
//! - [`script`]: the script type and opcodes; [`interpreter`] runs scripts; [`templates`] builds and
//!   recognises the standard output scripts (P2PKH, job escrow, payment, stake, data carrier).
//! - [`pow`]: 256-bit targets, compact `bits`, chain work and difficulty retargeting.
//! - [`merkle`]: merkle roots with mutation (CVE-2012-2459) detection.
//! - [`block`]: the 80-byte header, the miner's midstate, blocks and the coinbase height commitment.
//! - [`params`]: network parameters (main, test, regtest) and their genesis blocks.
//! - [`validation`]: context-free and contextual checks of transactions and blocks, with named rejection reasons.
//! - [`utxo`]: coins, the `UtxoView` trait, UTXO-set entry encoding and the UTXO-set hash.
//! - [`job`]: the job protocol: parameters, commitments, NIP-44 envelopes, messages, verdicts,
//!   fraud-proof evidence and its oracle, and (in [`job::rules`]) the consensus job rules.
//! - [`contextual`]: checks against the chain and the UTXO set, and `connect_block`'s changeset.
//! - [`rastic`]: RASTiC check plans, checkable sampling and verdicts.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod address;
pub mod amount;
pub mod block;
pub mod contextual;
pub mod encode;
pub mod hash;
pub mod interpreter;
pub mod job;
pub mod keys;
pub mod merkle;
pub mod params;
pub mod pow;
pub mod rastic;
pub mod script;
pub mod sighash;
pub mod templates;
pub mod transaction;
pub mod utxo;
pub mod validation;

pub use amount::Amount;
pub use hash::{BlockHash, Hash256, JobId, ModelId, Txid};
