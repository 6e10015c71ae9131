//! CamelidCoin's peer-to-peer network on rust-libp2p.
//!
//! Modules:
//! - [`message`]: the wire messages, a versioned envelope around camel-core's consensus
//!   encoding, with a hard limit on every length.
//! - [`chain`]: the traits the node implements ([`ChainAccess`], [`JobHandler`]) and what
//!   they answer ([`BlockOutcome`], [`TxOutcome`], [`PeerFault`]).
//! - [`score`]: the peer book: penalties, disconnect and ban thresholds, decay, [`PeerInfo`].
//! - [`rate`]: per-peer, per-protocol token buckets.
//! - [`sync`]: headers-first sync with parallel block download (sans-I/O).
//! - [`identity`]: the network key kept in the data directory (the peer id).
//! - [`wire`]: the libp2p glue: protocol names and topics, the frame codec, the composed
//!   behaviour (connection limits first).
//! - [`service`]: the network task and the [`NetworkHandle`] the node talks to.
//!
//! The protocol, the limits and the scoring table are specified in `docs/protocol.md` section 12.

pub mod chain;
pub mod identity;
pub mod message;
pub mod rate;
pub mod score;
pub mod service;
pub mod sync;
pub mod wire;

pub use chain::{
    BlockOutcome, ChainAccess, ChainTip, JobAcceptance, JobFault, JobHandler, NoJobs, PeerFault,
    TxOutcome,
};
pub use libp2p::{Multiaddr, PeerId};
pub use score::{Misbehaviour, PeerInfo};
pub use service::{Config, KeySource, Network, NetworkError, NetworkHandle, NetworkStatus};
