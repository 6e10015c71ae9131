//! The node as the network sees it: [`NodeChain`] implements camel-p2p's [`ChainAccess`] over
//! the shared [`Node`].
//!
//! Headers-first sync: [`ChainAccess::submit_headers`] hands headers to
//! [`Chain::accept_headers`](crate::chain::Chain::accept_headers), which checks them
//! (proof of work, linkage, `bits`, times) and indexes them without their blocks; the best
//! header work and the locator follow the best header chain, so sync keeps asking for the
//! next headers while it downloads blocks. Blocks then arrive in any order from several
//! peers and are stored as they come; each response's blocks are accepted as one batch
//! ([`Node::submit_blocks`]: one chain lock, one disk sync).

use std::sync::Arc;

use camel_core::block::{Block, Header};
use camel_core::hash::BlockHash;
use camel_core::pow::Work;
use camel_core::transaction::Transaction;
use camel_core::validation::{check_block, check_transaction};
use camel_p2p::message::MAX_LOCATOR;
use camel_p2p::sync::SyncConfig;
use camel_p2p::{BlockOutcome, ChainAccess, ChainTip, PeerFault, TxOutcome};

use crate::chain::{AcceptOutcome, Accepted, ChainError, now};
use crate::mempool::MempoolError;
use crate::node::{Node, NodeError};

/// Sync settings of the node: camel-p2p's defaults (several block requests in flight per
/// peer); blocks that arrive ahead of their parent are stored, since their headers came
/// first.
pub fn sync_config() -> SyncConfig {
    SyncConfig::default()
}

/// The node's chain and mempool behind camel-p2p's [`ChainAccess`].
#[derive(Debug)]
pub struct NodeChain {
    node: Arc<Node>,
}

impl NodeChain {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// The checks a block from a peer passes before the chain sees it: a block we have is
    /// answered at once, and a context-free failure gives camel-core's typed reason.
    fn precheck(&self, block: &Block) -> Option<Result<BlockOutcome, PeerFault>> {
        if self.has_block(&block.block_hash()) {
            return Some(Ok(BlockOutcome::AlreadyHave));
        }
        check_block(block, self.node.params())
            .err()
            .map(|r| match PeerFault::from_block_rejection(r) {
                Some(fault) => Err(fault),
                None => Ok(BlockOutcome::Ignored),
            })
    }
}

/// What a peer is told (or charged) for the chain's answer to its block.
fn block_outcome(
    hash: &BlockHash,
    result: Result<AcceptOutcome, NodeError>,
) -> Result<BlockOutcome, PeerFault> {
    let outcome = match result {
        Ok(o) => o,
        Err(NodeError::Chain(ChainError::Invalid {
            reason, message, ..
        })) => {
            return if reason == "time-too-new" {
                Ok(BlockOutcome::Ignored)
            } else if is_header_reason(&reason) {
                Err(PeerFault::InvalidHeader(message))
            } else {
                Err(PeerFault::InvalidBlock(message))
            };
        }
        Err(e) => {
            tracing::warn!("block {hash} from a peer not taken: {e}");
            return Ok(BlockOutcome::Ignored);
        }
    };
    Ok(match outcome.accepted {
        Accepted::Duplicate => BlockOutcome::AlreadyHave,
        Accepted::Orphan => BlockOutcome::Orphan,
        Accepted::Stored if !outcome.change.connected.is_empty() => BlockOutcome::NewTip,
        Accepted::Stored => BlockOutcome::Stored,
    })
}

/// Whether a block rejection reason is a header fault (proof of work, bits, time).
fn is_header_reason(reason: &str) -> bool {
    matches!(reason, "high-hash" | "bad-diffbits" | "time-too-old")
}

impl ChainAccess for NodeChain {
    fn genesis(&self) -> BlockHash {
        self.node.params().genesis_hash
    }

    fn tip(&self) -> ChainTip {
        let chain = self.node.chain();
        let entry = chain.tip_entry();
        ChainTip {
            hash: chain.tip(),
            height: entry.height,
            work: entry.chain_work,
        }
    }

    fn best_header_work(&self) -> Work {
        self.node.chain().best_header_entry().chain_work
    }

    fn locator(&self) -> Vec<BlockHash> {
        self.node.chain().locator(MAX_LOCATOR)
    }

    fn headers_after(
        &self,
        locator: &[BlockHash],
        stop: Option<BlockHash>,
        max: usize,
    ) -> Vec<Header> {
        let chain = self.node.chain();
        let start = locator
            .iter()
            .find_map(|h| chain.is_active(h).then(|| chain.entry(h).map(|e| e.height)))
            .flatten()
            .unwrap_or(0);
        let mut out = Vec::new();
        let mut height = start.saturating_add(1);
        while out.len() < max {
            let Some(hash) = chain.hash_at(height) else {
                break;
            };
            let Some(entry) = chain.entry(&hash) else {
                break;
            };
            out.push(entry.header);
            if Some(hash) == stop {
                break;
            }
            height = height.saturating_add(1);
        }
        out
    }

    fn block(&self, hash: &BlockHash) -> Option<Block> {
        match self.node.store().block(hash) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("reading block {hash}: {e}");
                None
            }
        }
    }

    fn has_block(&self, hash: &BlockHash) -> bool {
        self.node.chain().entry(hash).is_some_and(|e| e.has_data())
    }

    fn submit_headers(&self, headers: &[Header]) -> Result<usize, PeerFault> {
        match self.node.chain().accept_headers(headers, now()) {
            Ok(n) => Ok(n),
            Err(ChainError::Invalid {
                reason, message, ..
            }) => match reason.as_str() {
                "prev-blk-not-found" => Err(PeerFault::UnconnectedHeaders),
                // Ahead of our clock: maybe valid later, the headers before it are kept.
                "time-too-new" => Ok(0),
                _ => Err(PeerFault::InvalidHeader(message)),
            },
            Err(e) => {
                tracing::error!("headers from a peer not stored: {e}");
                Ok(0)
            }
        }
    }

    fn blocks_to_fetch(&self, max: usize) -> Vec<BlockHash> {
        self.node.chain().blocks_to_fetch(max)
    }

    fn submit_block(&self, block: Block) -> Result<BlockOutcome, PeerFault> {
        if let Some(answer) = self.precheck(&block) {
            return answer;
        }
        let hash = block.block_hash();
        block_outcome(&hash, self.node.submit_block(block))
    }

    fn submit_blocks(&self, blocks: Vec<Block>) -> Vec<Result<BlockOutcome, PeerFault>> {
        let mut answers: Vec<Option<Result<BlockOutcome, PeerFault>>> =
            Vec::with_capacity(blocks.len());
        let mut batch = Vec::new();
        let mut hashes = Vec::new();
        for block in blocks {
            let answer = self.precheck(&block);
            if answer.is_none() {
                hashes.push(block.block_hash());
                batch.push(block);
            }
            answers.push(answer);
        }
        let mut results = match self.node.submit_blocks(batch) {
            Ok(results) => results.into_iter(),
            Err(e) => {
                tracing::error!("blocks from a peer not made durable: {e}");
                Vec::new().into_iter()
            }
        };
        let mut hashes = hashes.iter();
        answers
            .into_iter()
            .map(|answer| match answer {
                Some(a) => a,
                None => match (hashes.next(), results.next()) {
                    (Some(hash), Some(result)) => block_outcome(hash, result),
                    _ => Ok(BlockOutcome::Ignored),
                },
            })
            .collect()
    }

    fn submit_tx(&self, tx: Transaction) -> Result<TxOutcome, PeerFault> {
        check_transaction(&tx)?;
        match self.node.submit_tx(tx) {
            Ok(_) => Ok(TxOutcome::Accepted),
            Err(NodeError::Mempool(MempoolError::Rejected { reason, .. }))
                if reason == "txn-already-in-mempool" || reason == "txn-already-known" =>
            {
                Ok(TxOutcome::AlreadyHave)
            }
            Err(e) => {
                tracing::debug!("transaction from a peer not taken: {e}");
                Ok(TxOutcome::Ignored)
            }
        }
    }
}
