//! What the network needs from the node: [`ChainAccess`] (chain store and mempool) and
//! [`JobHandler`] (the job protocol), both implemented outside this crate.
//!
//! Calls are synchronous and made from the network task: an implementation should answer
//! from memory or a quick store read; block and header submission run the node's
//! validation. Anything a peer sent that fails validation comes back as a [`PeerFault`],
//! which the peer manager turns into a penalty (see `docs/protocol.md` section 12).

use std::future::Future;

use camel_core::BlockHash;
use camel_core::block::{Block, Header};
use camel_core::pow::Work;
use camel_core::transaction::Transaction;
use camel_core::validation::{BlockRejection, TxRejection};
use libp2p::PeerId;

use crate::score::Misbehaviour;

/// A chain tip: a block, its height and the total work of the chain ending in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    pub hash: BlockHash,
    pub height: u32,
    pub work: Work,
}

/// What became of a block a peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Valid, and the best chain now ends in it (possibly after a reorganisation).
    NewTip,
    /// Valid (as far as it could be checked) but not on the best chain, or stored while it
    /// waits for an ancestor's body to arrive.
    Stored,
    /// Its parent is unknown: the network asks the sender for headers.
    Orphan,
    /// The node already has it.
    AlreadyHave,
    /// Not taken, for a reason that proves nothing against the sender (a time too far
    /// ahead of our clock, a local store failure): not relayed, not scored.
    Ignored,
}

/// What became of a transaction a peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOutcome {
    /// Entered the mempool: relay it.
    Accepted,
    /// Already in the mempool or a block.
    AlreadyHave,
    /// Refused for a reason that is no proof of misbehaviour (missing or spent inputs, low fee,
    /// mempool full): neither relayed nor penalised.
    Ignored,
}

/// A peer's data failed validation in a way an honest peer cannot cause. The strings are
/// the rejection as the node words it (e.g. `bad-cb-missing: first transaction is not a
/// coinbase`), for logs; [`PeerFault::from_block_rejection`] and `From<TxRejection>` convert
/// camel-core's rejections.
///
/// Not every rejection is a fault: `time-too-new` passes later, and a mempool's policy
/// refusals (missing inputs, low fee) are [`TxOutcome::Ignored`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerFault {
    /// A block whose body is invalid (or does not match its header).
    #[error("invalid block: {0}")]
    InvalidBlock(String),
    /// A header that fails proof of work or its contextual checks (bits, time too old).
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// Headers that do not link to each other or to any header the node knows.
    #[error("headers do not connect")]
    UnconnectedHeaders,
    /// A transaction that fails the context-free checks.
    #[error("invalid transaction: {0}")]
    InvalidTx(String),
}

impl PeerFault {
    /// The fault a camel-core block rejection proves: proof-of-work, bits and time-too-old
    /// rejections are header faults, the rest block faults. `None` for `time-too-new`, which
    /// proves nothing (the block may be valid a little later: ignore it, do not score).
    pub fn from_block_rejection(r: BlockRejection) -> Option<Self> {
        match r {
            BlockRejection::TimeTooNew { .. } => None,
            BlockRejection::Pow(_)
            | BlockRejection::UnexpectedBits { .. }
            | BlockRejection::TimeTooOld { .. } => Some(Self::InvalidHeader(r.to_string())),
            r => Some(Self::InvalidBlock(r.to_string())),
        }
    }
}

impl From<TxRejection> for PeerFault {
    fn from(r: TxRejection) -> Self {
        Self::InvalidTx(r.to_string())
    }
}

impl PeerFault {
    /// The entry of the scoring table this fault falls under.
    pub fn misbehaviour(&self) -> Misbehaviour {
        match self {
            Self::InvalidBlock(_) => Misbehaviour::InvalidBlock,
            Self::InvalidHeader(_) => Misbehaviour::BadPowHeader,
            Self::UnconnectedHeaders => Misbehaviour::UnconnectedHeaders,
            Self::InvalidTx(_) => Misbehaviour::InvalidTx,
        }
    }
}

/// The node's chain and mempool, as the network sees them.
pub trait ChainAccess: Send + Sync + 'static {
    /// The genesis hash; peers with another are on another chain.
    fn genesis(&self) -> BlockHash;
    /// The best fully validated block.
    fn tip(&self) -> ChainTip;
    /// The work of the best header chain (at least the tip's work): sync asks a peer for
    /// blocks while the peer claims more work than this.
    fn best_header_work(&self) -> Work;
    /// A Bitcoin-style locator of the best header chain: its tip, then hashes stepping back
    /// 1, 2, 4, … blocks, ending with the genesis; at most
    /// [`MAX_LOCATOR`](crate::message::MAX_LOCATOR) entries.
    fn locator(&self) -> Vec<BlockHash>;
    /// Headers of the best block chain after the first `locator` hash on it (the genesis if
    /// none is), up to and including `stop` if given, at most `max`.
    fn headers_after(
        &self,
        locator: &[BlockHash],
        stop: Option<BlockHash>,
        max: usize,
    ) -> Vec<Header>;
    /// A block the node has (on any chain).
    fn block(&self, hash: &BlockHash) -> Option<Block>;
    /// Whether the node has the block's body.
    fn has_block(&self, hash: &BlockHash) -> bool;
    /// Adds headers in order (proof of work, linkage, contextual rules checked). Returns how
    /// many were new.
    fn submit_headers(&self, headers: &[Header]) -> Result<usize, PeerFault>;
    /// Blocks of the best header chain that the node lacks, lowest first, at most `max`.
    /// Sync fetches them even when no headers response of this session named them (after a
    /// restart, or when the peers that sent the headers went away). A chain that keeps no
    /// headers without blocks has none.
    fn blocks_to_fetch(&self, max: usize) -> Vec<BlockHash> {
        let _ = max;
        Vec::new()
    }
    /// Validates and stores a block, reorganising to it if its chain has the most work.
    fn submit_block(&self, block: Block) -> Result<BlockOutcome, PeerFault>;
    /// Blocks that came in one response, in order. A chain may take them as one unit (one
    /// lock, one disk sync); by default each goes through [`ChainAccess::submit_block`].
    fn submit_blocks(&self, blocks: Vec<Block>) -> Vec<Result<BlockOutcome, PeerFault>> {
        blocks.into_iter().map(|b| self.submit_block(b)).collect()
    }
    /// Validates a transaction and offers it to the mempool.
    fn submit_tx(&self, tx: Transaction) -> Result<TxOutcome, PeerFault>;
}

/// Whether a gossiped job message should be relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAcceptance {
    /// Valid and new: relay.
    Accept,
    /// Not relayed, no penalty (duplicate, not of interest).
    Ignore,
}

/// The job protocol's side of the network: gossiped job messages and the two request
/// kinds that carry job exchange and verification requests. Payloads are opaque to the
/// network and bounded by [`MAX_JOB_PAYLOAD`](crate::message::MAX_JOB_PAYLOAD).
pub trait JobHandler: Send + Sync + 'static {
    /// A job message arrived by gossip from `from` (the relaying peer).
    fn on_gossip(&self, from: PeerId, payload: &[u8]) -> Result<JobAcceptance, JobFault>;
    /// Answers a job-exchange request. Runs on its own task: it may take its time.
    fn on_job_request(
        &self,
        from: PeerId,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, JobFault>> + Send;
    /// Answers a verification request (e.g. a RASTiC check) with a verdict.
    fn on_verify_request(
        &self,
        from: PeerId,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, JobFault>> + Send;
}

/// Why the job handler refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobFault {
    /// The payload is malformed or invalid: the sender is penalised.
    #[error("invalid job message: {0}")]
    Invalid(String),
    /// This node does not serve the request (no model, no job handler).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The handler failed for a reason of its own; the sender is not penalised.
    #[error("internal: {0}")]
    Internal(String),
}

/// A [`JobHandler`] for nodes without the job protocol: ignores job gossip and answers
/// requests with `Unsupported`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJobs;

impl JobHandler for NoJobs {
    fn on_gossip(&self, _from: PeerId, _payload: &[u8]) -> Result<JobAcceptance, JobFault> {
        Ok(JobAcceptance::Ignore)
    }
    async fn on_job_request(&self, _from: PeerId, _payload: Vec<u8>) -> Result<Vec<u8>, JobFault> {
        Err(JobFault::Unsupported("no job handler".into()))
    }
    async fn on_verify_request(
        &self,
        _from: PeerId,
        _payload: Vec<u8>,
    ) -> Result<Vec<u8>, JobFault> {
        Err(JobFault::Unsupported("no verifier".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_map_to_faults_and_penalties() {
        let too_new = BlockRejection::TimeTooNew { time: 10, max: 5 };
        assert_eq!(PeerFault::from_block_rejection(too_new), None);
        let bits = BlockRejection::UnexpectedBits {
            expected: 1,
            got: 2,
        };
        let f = PeerFault::from_block_rejection(bits).unwrap();
        assert_eq!(f.misbehaviour(), Misbehaviour::BadPowHeader);
        assert!(f.to_string().contains("bad-diffbits"), "{f}");
        let f = PeerFault::from_block_rejection(BlockRejection::CoinbaseMissing).unwrap();
        assert_eq!(f.misbehaviour(), Misbehaviour::InvalidBlock);
        let f = PeerFault::from(TxRejection::VinEmpty);
        assert_eq!(f.misbehaviour(), Misbehaviour::InvalidTx);
    }
}
