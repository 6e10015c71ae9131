//! The node as the network sees it: [`NodeChain`] implements camel-p2p's [`ChainAccess`] over
//! the shared [`Node`].
//!
//! The chain keeps no headers without their blocks, so headers-first sync runs in a reduced
//! form: [`ChainAccess::submit_headers`] checks each header's proof of work against its own
//! `bits` and its linkage (to the previous header of the batch, to a block the node has, or
//! to a header an earlier batch brought), and remembers the hashes so the next batch links;
//! the difficulty rules in context and the work of the header chain wait for the blocks. The
//! best header work reported is the tip's. Blocks that arrive before their parent go to the
//! chain's bounded orphan pool ([`MAX_ORPHANS`](crate::chain::MAX_ORPHANS)), which is why
//! the daemon asks each peer for one batch of blocks at a time ([`sync_config`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use camel_core::block::{Block, Header};
use camel_core::hash::BlockHash;
use camel_core::pow::{Work, check_proof_of_work};
use camel_core::transaction::Transaction;
use camel_core::validation::{check_block, check_transaction};
use camel_p2p::message::MAX_LOCATOR;
use camel_p2p::sync::SyncConfig;
use camel_p2p::{BlockOutcome, ChainAccess, ChainTip, PeerFault, TxOutcome};

use crate::chain::{Accepted, ChainError};
use crate::mempool::MempoolError;
use crate::node::{Node, NodeError};

/// Headers remembered between batches (about 150 bytes each). When full, the oldest are
/// forgotten first; the next batch links to the newest, so a sync carries on.
pub const MAX_PENDING_HEADERS: usize = 100_000;

/// Blocks asked for per request: with one request per peer in flight, the blocks that can
/// arrive ahead of their parent stay within the orphan pool for a few peers.
pub const SYNC_BLOCKS_PER_REQUEST: usize = 16;

/// Sync settings that suit a chain that connects out-of-order blocks through its orphan
/// pool: one block request in flight per peer, [`SYNC_BLOCKS_PER_REQUEST`] blocks each.
pub fn sync_config() -> SyncConfig {
    SyncConfig {
        requests_per_peer: 1,
        blocks_per_request: SYNC_BLOCKS_PER_REQUEST,
        ..SyncConfig::default()
    }
}

/// The node's chain and mempool behind camel-p2p's [`ChainAccess`].
#[derive(Debug)]
pub struct NodeChain {
    node: Arc<Node>,
    /// Headers accepted by `submit_headers` whose blocks the node does not have yet.
    headers: Mutex<PendingHeaders>,
}

/// Headers without their blocks, bounded by [`MAX_PENDING_HEADERS`], oldest forgotten first.
#[derive(Debug, Default)]
struct PendingHeaders {
    by_hash: HashMap<BlockHash, Header>,
    /// Arrival order; may still name headers whose blocks came since.
    order: VecDeque<BlockHash>,
}

impl PendingHeaders {
    fn contains(&self, hash: &BlockHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    fn insert(&mut self, hash: BlockHash, header: Header) {
        if self.by_hash.insert(hash, header).is_none() {
            self.order.push_back(hash);
        }
        while self.order.len() > MAX_PENDING_HEADERS {
            if let Some(old) = self.order.pop_front() {
                self.by_hash.remove(&old);
            }
        }
    }

    fn remove(&mut self, hash: &BlockHash) {
        self.by_hash.remove(hash);
    }
}

impl NodeChain {
    pub fn new(node: Arc<Node>) -> Self {
        Self {
            node,
            headers: Mutex::new(PendingHeaders::default()),
        }
    }

    fn headers(&self) -> std::sync::MutexGuard<'_, PendingHeaders> {
        self.headers.lock().unwrap_or_else(|p| p.into_inner())
    }
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
        self.node.chain().tip_entry().chain_work
    }

    fn locator(&self) -> Vec<BlockHash> {
        let chain = self.node.chain();
        let mut out = Vec::with_capacity(MAX_LOCATOR);
        let mut height = chain.height();
        let mut step = 1u32;
        loop {
            if let Some(h) = chain.hash_at(height) {
                out.push(h);
            }
            if height == 0 || out.len() + 1 >= MAX_LOCATOR {
                break;
            }
            if out.len() >= 10 {
                step = step.saturating_mul(2);
            }
            height = height.saturating_sub(step);
        }
        let genesis = self.node.params().genesis_hash;
        if out.last() != Some(&genesis) {
            out.push(genesis);
        }
        out
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
        let pow_limit = self.node.params().pow_limit;
        let mut new = Vec::new();
        {
            let chain = self.node.chain();
            let known = self.headers();
            let mut prev: Option<BlockHash> = None;
            for header in headers {
                let hash = header.block_hash();
                let links = match prev {
                    Some(p) => header.prev_blockhash == p,
                    None => {
                        chain.entry(&header.prev_blockhash).is_some()
                            || known.contains(&header.prev_blockhash)
                    }
                };
                if !links {
                    return Err(PeerFault::UnconnectedHeaders);
                }
                check_proof_of_work(&hash, header.bits, pow_limit)
                    .map_err(|e| PeerFault::InvalidHeader(e.to_string()))?;
                if chain.entry(&hash).is_none() && !known.contains(&hash) {
                    new.push((hash, *header));
                }
                prev = Some(hash);
            }
        }
        let count = new.len();
        let mut known = self.headers();
        for (hash, header) in new {
            known.insert(hash, header);
        }
        Ok(count)
    }

    fn submit_block(&self, block: Block) -> Result<BlockOutcome, PeerFault> {
        let hash = block.block_hash();
        if self.has_block(&hash) {
            return Ok(BlockOutcome::AlreadyHave);
        }
        // The context-free checks first, for camel-core's typed rejection.
        if let Err(r) = check_block(&block, self.node.params()) {
            return match PeerFault::from_block_rejection(r) {
                Some(fault) => Err(fault),
                None => Ok(BlockOutcome::Ignored),
            };
        }
        let tip_before = self.node.chain().tip();
        let outcome = match self.node.submit_block(block) {
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
        self.headers().remove(&hash);
        Ok(match outcome.accepted {
            Accepted::Duplicate => BlockOutcome::AlreadyHave,
            Accepted::Orphan => BlockOutcome::Orphan,
            Accepted::Stored if self.node.chain().tip() != tip_before => BlockOutcome::NewTip,
            Accepted::Stored => BlockOutcome::Stored,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u32) -> BlockHash {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_le_bytes());
        BlockHash::from_byte_array(b)
    }

    #[test]
    fn pending_headers_forget_the_oldest_first() {
        let header = camel_core::params::Params::regtest().genesis_block().header;
        let mut pending = PendingHeaders::default();
        let total = u32::try_from(MAX_PENDING_HEADERS).unwrap() + 10;
        for n in 0..total {
            pending.insert(hash(n), header);
        }
        assert_eq!(pending.by_hash.len(), MAX_PENDING_HEADERS);
        assert!(!pending.contains(&hash(9)));
        assert!(pending.contains(&hash(10)));
        assert!(pending.contains(&hash(total - 1)));
        // A block's arrival forgets its header; re-inserting counts once.
        pending.remove(&hash(total - 1));
        assert!(!pending.contains(&hash(total - 1)));
        pending.insert(hash(20), header);
        assert_eq!(pending.order.len(), MAX_PENDING_HEADERS);
    }
}
