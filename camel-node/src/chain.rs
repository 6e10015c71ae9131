//! The chain manager: accepts blocks, keeps the header index in memory, follows the valid
//! chain with the most work, and reorganises to a better one at any depth.
//!
//! Headers come first during sync ([`Chain::accept_headers`]): each is checked for proof
//! of work and, against its parent, for the expected `bits`, median time past and a time not
//! too far ahead of the clock, then indexed without its block. Blocks whose header is known
//! can then arrive in any order: each is stored as it comes and joins the candidates for the
//! best chain once every block below it is stored too ("linked").
//!
//! Block acceptance is a pipeline (each step may reject, nothing is written before the block
//! passes the context-free checks):
//! 1. context-free checks ([`check_block`]): proof of work, merkle root, transactions;
//! 2. a block whose parent is unknown (not even its header) goes to the bounded orphan pool
//!    until it arrives;
//! 3. a block whose parent is invalid is stored as invalid;
//! 4. header rules in context ([`check_block_contextual`]): height, median time past,
//!    expected `bits`, time not too far ahead of the clock;
//! 5. the block is stored (one write transaction), and once linked, if its chain has more
//!    work than the active chain, the chain is switched: blocks are disconnected down to the
//!    fork point (one write transaction each, restoring the undo data), then the new branch is
//!    connected ([`connect_block`] with the UTXO and job views, scripts checked in parallel,
//!    one write transaction each). If a block of the new branch breaks a rule, it is marked
//!    invalid with its descendants, and the best valid chain is selected again: the node
//!    returns to its former chain if that is still the best.
//!
//! Ties in work keep the chain the node already follows (first seen wins).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use camel_core::block::{Block, Header};
use camel_core::contextual::{
    BlockChanges, BlockContext, TxScriptChecks, check_block_contextual, connect_block,
    median_time_past,
};
use camel_core::encode::Encodable;
use camel_core::hash::BlockHash;
use camel_core::interpreter::FraudProofOracle;
use camel_core::params::Params;
use camel_core::pow::{
    Work, check_proof_of_work, is_retarget_height, next_bits, retarget_first_height,
};
use camel_core::transaction::{OutPoint, TxOut};
use camel_core::utxo::{Coin, UtxoView};
use camel_core::validation::check_block;

use crate::store::{IndexEntry, Snapshot, Store, StoreError, status};

/// Orphan pool limits.
pub const MAX_ORPHANS: usize = 100;
pub const MAX_ORPHAN_BYTES: usize = 20_000_000;

/// Why a block was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The block breaks a rule; `reason` is the Bitcoin-style code.
    #[error("block {hash} rejected: {message}")]
    Invalid {
        hash: BlockHash,
        reason: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ChainError {
    fn invalid(hash: BlockHash, reason: &str, message: impl ToString) -> Self {
        Self::Invalid {
            hash,
            reason: reason.to_owned(),
            message: message.to_string(),
        }
    }

    /// The rejection reason code, `None` for a storage failure.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Invalid { reason, .. } => Some(reason),
            Self::Store(_) => None,
        }
    }
}

/// What became of an accepted block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored; the active chain may have changed (see [`AcceptOutcome::change`]).
    Stored,
    /// Already known.
    Duplicate,
    /// Parent unknown: held in the orphan pool.
    Orphan,
}

/// Blocks that left and joined the active chain, in order (disconnected tip first,
/// connected lowest first): the mempool replays them.
#[derive(Debug, Default)]
pub struct TipChange {
    pub disconnected: Vec<Block>,
    pub connected: Vec<Block>,
}

impl TipChange {
    pub fn is_empty(&self) -> bool {
        self.disconnected.is_empty() && self.connected.is_empty()
    }
    fn append(&mut self, other: TipChange) {
        self.disconnected.extend(other.disconnected);
        self.connected.extend(other.connected);
    }
}

/// What accepting one block did.
enum Step {
    /// Stored; the best chain must be reconsidered.
    Stored,
    /// Connected on top of the tip.
    Connected(Block),
    Done(Accepted),
}

/// Result of [`Chain::accept_block`].
#[derive(Debug)]
pub struct AcceptOutcome {
    pub hash: BlockHash,
    pub accepted: Accepted,
    pub change: TipChange,
    /// Blocks of a better chain that were found invalid while switching to it.
    pub invalidated: Vec<ChainError>,
}

impl AcceptOutcome {
    /// Where in `invalidated` the submitted block itself is, if switching to it found it
    /// invalid.
    pub fn rejection(&self) -> Option<usize> {
        self.invalidated
            .iter()
            .position(|e| matches!(e, ChainError::Invalid { hash, .. } if *hash == self.hash))
    }
}

/// Blocks whose parent has not arrived, bounded in count and bytes (oldest evicted first).
#[derive(Debug, Default)]
struct OrphanPool {
    blocks: HashMap<BlockHash, (Block, usize)>,
    by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    order: VecDeque<BlockHash>,
    bytes: usize,
}

impl OrphanPool {
    fn insert(&mut self, hash: BlockHash, block: Block) {
        if self.blocks.contains_key(&hash) {
            return;
        }
        let size = block.encoded_len();
        self.by_parent
            .entry(block.header.prev_blockhash)
            .or_default()
            .push(hash);
        self.blocks.insert(hash, (block, size));
        self.order.push_back(hash);
        self.bytes = self.bytes.saturating_add(size);
        while self.blocks.len() > MAX_ORPHANS || self.bytes > MAX_ORPHAN_BYTES {
            match self.order.pop_front() {
                Some(old) => {
                    self.remove(&old);
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, hash: &BlockHash) -> Option<Block> {
        let (block, size) = self.blocks.remove(hash)?;
        self.bytes = self.bytes.saturating_sub(size);
        if let Some(children) = self.by_parent.get_mut(&block.header.prev_blockhash) {
            children.retain(|h| h != hash);
            if children.is_empty() {
                self.by_parent.remove(&block.header.prev_blockhash);
            }
        }
        self.order.retain(|h| h != hash);
        Some(block)
    }

    fn take_children(&mut self, parent: &BlockHash) -> Vec<Block> {
        let children = self.by_parent.remove(parent).unwrap_or_default();
        children.iter().filter_map(|h| self.remove(h)).collect()
    }
}

/// Seconds since the Unix epoch, as a block time.
pub fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

type CheckFailure = (usize, camel_core::contextual::TxError);

/// Runs the script checks of a block on `threads` threads (this one among them); the first
/// failure found wins. A fraud proof this node cannot judge (it holds no model) is not a
/// failure: such a node follows the most-work chain on it.
pub fn run_script_checks(
    checks: &[TxScriptChecks<'_>],
    oracle: &(dyn FraudProofOracle + Sync),
    threads: usize,
) -> Result<(), CheckFailure> {
    let cancel = AtomicBool::new(false);
    let queue = CheckQueue::new(checks, &cancel);
    std::thread::scope(|s| {
        let helpers = queue.spawn_helpers(s, oracle, threads.saturating_sub(1));
        let mine = queue.work(oracle);
        queue.finish(mine, helpers)
    })
}

/// A slot of a [`CheckQueue`]: a check, or (for the early checks) possibly none.
trait QueuedCheck<'a>: Sync {
    fn check(&self) -> Option<&TxScriptChecks<'a>>;
}

impl<'a> QueuedCheck<'a> for TxScriptChecks<'a> {
    fn check(&self) -> Option<&TxScriptChecks<'a>> {
        Some(self)
    }
}

impl<'a> QueuedCheck<'a> for Option<TxScriptChecks<'a>> {
    fn check(&self) -> Option<&TxScriptChecks<'a>> {
        self.as_ref()
    }
}

/// A block's script checks handed out in batches to whichever threads work on them, the
/// calling thread included once it has nothing else to do (as Bitcoin Core's check queue):
/// each takes the next batch until none is left, a check fails, or the caller cancels. A
/// failure names the slot it came from.
struct CheckQueue<'q, 'a, C: QueuedCheck<'a>> {
    checks: &'q [C],
    _check: std::marker::PhantomData<TxScriptChecks<'a>>,
    next: AtomicUsize,
    failed: AtomicBool,
    cancel: &'q AtomicBool,
}

type Helper<'s> = std::thread::ScopedJoinHandle<'s, Option<CheckFailure>>;

impl<'q, 'a, C: QueuedCheck<'a>> CheckQueue<'q, 'a, C> {
    const BATCH: usize = 16;

    fn new(checks: &'q [C], cancel: &'q AtomicBool) -> Self {
        Self {
            checks,
            _check: std::marker::PhantomData,
            next: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            cancel,
        }
    }

    /// Takes batches until the queue is done; the failure this thread found, if any.
    fn work(&self, oracle: &(dyn FraudProofOracle + Sync)) -> Option<CheckFailure> {
        while !self.failed.load(Ordering::Relaxed) && !self.cancel.load(Ordering::Relaxed) {
            let start = self.next.fetch_add(Self::BATCH, Ordering::Relaxed);
            let end = self.checks.len().min(start.saturating_add(Self::BATCH));
            let batch = match self.checks.get(start..end) {
                Some(b) if !b.is_empty() => b,
                _ => break,
            };
            for (i, c) in batch.iter().enumerate() {
                let Some(c) = c.check() else {
                    continue;
                };
                if let Err(e) = run_one(c, oracle) {
                    self.failed.store(true, Ordering::Relaxed);
                    return Some((start.saturating_add(i), e));
                }
            }
        }
        None
    }

    /// Starts `n` threads working on the queue (none for a block without checks).
    fn spawn_helpers<'s, 'e>(
        &'s self,
        scope: &'s std::thread::Scope<'s, 'e>,
        oracle: &'s (dyn FraudProofOracle + Sync),
        n: usize,
    ) -> Vec<Helper<'s>>
    where
        'q: 's,
    {
        let n = n.min(self.checks.len().div_ceil(Self::BATCH).saturating_sub(1));
        (0..n)
            .map(|_| scope.spawn(move || self.work(oracle)))
            .collect()
    }

    /// The earliest failure any thread found.
    fn finish(
        &self,
        mine: Option<CheckFailure>,
        helpers: Vec<Helper<'_>>,
    ) -> Result<(), CheckFailure> {
        let found = helpers
            .into_iter()
            .filter_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .chain(mine);
        match found.min_by_key(|(i, _)| *i) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Script checks built ahead of the block's rules, one per non-coinbase transaction: its
/// inputs resolved against `view`, or else against outputs of the block's transactions;
/// `None` where an input resolves nowhere (the rules will say why). Also returns the coins
/// found in `view`, which the rules then read instead of looking them up again. Built on the
/// calling thread, which owns the snapshot; see [`Chain::validate_and_write`].
fn early_checks<'a>(
    block: &'a Block,
    view: &Snapshot,
) -> (Vec<Option<TxScriptChecks<'a>>>, HashMap<OutPoint, Coin>) {
    let mut in_block: Option<HashMap<OutPoint, &'a TxOut>> = None;
    let inputs = block.txdata.iter().skip(1).map(|tx| tx.inputs.len()).sum();
    let mut found: HashMap<OutPoint, Coin> = HashMap::with_capacity(inputs);
    let mut resolve = |prev: &OutPoint| -> Option<TxOut> {
        match view.try_coin(prev) {
            Ok(Some(coin)) => {
                let output = coin.output.clone();
                found.insert(*prev, coin);
                Some(output)
            }
            Ok(None) => in_block
                .get_or_insert_with(|| {
                    let mut outputs = HashMap::new();
                    for t in &block.txdata {
                        let txid = t.txid();
                        for (vout, o) in t.outputs.iter().enumerate() {
                            let vout = u32::try_from(vout).unwrap_or(u32::MAX);
                            outputs.insert(OutPoint::new(txid, vout), o);
                        }
                    }
                    outputs
                })
                .get(prev)
                .map(|o| (*o).clone()),
            Err(_) => None,
        }
    };
    let checks = block
        .txdata
        .iter()
        .skip(1)
        .map(|tx| {
            let spent = tx
                .inputs
                .iter()
                .map(|input| resolve(&input.prev_out))
                .collect::<Option<Vec<TxOut>>>()?;
            Some(TxScriptChecks { tx, spent })
        })
        .collect();
    (checks, found)
}

/// The coins [`early_checks`] found, over the snapshot they came from: the same answers as
/// the snapshot, without a second lookup.
struct Resolved<'v> {
    found: HashMap<OutPoint, Coin>,
    view: &'v Snapshot,
}

impl UtxoView for Resolved<'_> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        match self.found.get(outpoint) {
            Some(c) => Some(c.clone()),
            None => self.view.coin(outpoint),
        }
    }
}

fn run_one(
    check: &TxScriptChecks<'_>,
    oracle: &dyn FraudProofOracle,
) -> Result<(), camel_core::contextual::TxError> {
    match check.run(oracle) {
        Err(e) if e.fraud_proof_unavailable() => {
            tracing::info!("following the chain on a fraud proof this node cannot judge: {e}");
            Ok(())
        }
        other => other,
    }
}

/// The chain state: header index, active chain, orphans, and the store behind them.
pub struct Chain {
    params: Params,
    store: Arc<Store>,
    index: HashMap<BlockHash, IndexEntry>,
    /// Active chain by height, genesis first.
    active: Vec<BlockHash>,
    /// Blocks with data whose chain is not known invalid and has at least the tip's work,
    /// keyed by (work, arrival order reversed): the last entry is the best candidate.
    candidates: BTreeMap<(Work, Reverse<u64>), BlockHash>,
    arrival: u64,
    /// Stored blocks with a block missing somewhere below them: not candidates yet.
    waiting: HashSet<BlockHash>,
    /// Waiting blocks by parent, so a block's arrival links its descendants.
    unlinked: HashMap<BlockHash, Vec<BlockHash>>,
    /// The valid-so-far header with the most work (data or not); what sync aims for.
    best_header: BlockHash,
    orphans: OrphanPool,
    oracle: Arc<dyn FraudProofOracle + Send + Sync>,
    script_threads: usize,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("network", &self.params.network)
            .field("height", &self.height())
            .field("tip", &self.tip())
            .field("headers", &self.index.len())
            .field("orphans", &self.orphans.blocks.len())
            .finish()
    }
}

impl Chain {
    /// Opens the chain state in `store`; a fresh store gets the network's genesis block.
    pub fn open(
        store: Arc<Store>,
        params: Params,
        oracle: Arc<dyn FraudProofOracle + Send + Sync>,
        script_threads: usize,
    ) -> Result<Self, ChainError> {
        let genesis = params.genesis_hash;
        let mut chain = Self {
            params,
            store,
            index: HashMap::new(),
            active: Vec::new(),
            candidates: BTreeMap::new(),
            arrival: 0,
            waiting: HashSet::new(),
            unlinked: HashMap::new(),
            best_header: genesis,
            orphans: OrphanPool::default(),
            oracle,
            script_threads: script_threads.max(1),
        };
        chain.index = chain.store.load_index()?.into_iter().collect();
        match chain.store.tip()? {
            None => chain.init_genesis()?,
            Some(tip) => {
                chain.active = chain.store.active_chain()?;
                if chain.active.last() != Some(&tip) {
                    return Err(StoreError::Missing(format!(
                        "active chain up to the stored tip {tip}"
                    ))
                    .into());
                }
                if chain.active.first() != Some(&chain.params.genesis_hash) {
                    return Err(StoreError::Missing(format!(
                        "{} genesis block {} (is this a data directory of another network?)",
                        chain.params.network, chain.params.genesis_hash
                    ))
                    .into());
                }
            }
        }
        chain.rebuild_links();
        chain.rebuild_best_header();
        chain.rebuild_candidates();
        // A crash between storing a block and switching to it leaves a better chain
        // waiting: switch now.
        chain.activate_best()?;
        Ok(chain)
    }

    fn init_genesis(&mut self) -> Result<(), ChainError> {
        let genesis = self.params.genesis_block();
        let hash = genesis.block_hash();
        let entry = IndexEntry {
            header: genesis.header,
            height: 0,
            chain_work: genesis.header.work(),
            status: status::HAVE_DATA | status::VALID,
        };
        // The genesis coinbase pays an unspendable script: it creates no coins.
        self.store
            .connect_block(&hash, &entry, &genesis, BlockChanges::default(), true)?;
        self.index.insert(hash, entry);
        self.active = vec![hash];
        Ok(())
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn tip(&self) -> BlockHash {
        self.active
            .last()
            .copied()
            .unwrap_or(self.params.genesis_hash)
    }

    pub fn height(&self) -> u32 {
        u32::try_from(self.active.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    pub fn tip_entry(&self) -> IndexEntry {
        let tip = self.tip();
        // The tip is always indexed.
        self.index.get(&tip).copied().unwrap_or(IndexEntry {
            header: self.params.genesis_block().header,
            height: 0,
            chain_work: Work::ZERO,
            status: 0,
        })
    }

    pub fn entry(&self, hash: &BlockHash) -> Option<&IndexEntry> {
        self.index.get(hash)
    }

    /// The active chain's block at `height`.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.active.get(usize::try_from(height).ok()?).copied()
    }

    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.index
            .get(hash)
            .is_some_and(|e| self.hash_at(e.height) == Some(*hash))
    }

    pub fn orphan_count(&self) -> usize {
        self.orphans.blocks.len()
    }

    /// The ancestor of `hash` at `height` (walking the index).
    fn ancestor(&self, hash: &BlockHash, height: u32) -> Option<BlockHash> {
        let mut cur = *hash;
        let mut entry = self.index.get(&cur)?;
        if height > entry.height {
            return None;
        }
        // On the active chain the answer is a lookup.
        if self.hash_at(entry.height) == Some(cur) {
            return self.hash_at(height);
        }
        while entry.height > height {
            cur = entry.header.prev_blockhash;
            entry = self.index.get(&cur)?;
            if self.hash_at(entry.height) == Some(cur) {
                return self.hash_at(height);
            }
        }
        Some(cur)
    }

    /// The context a child of `parent` is checked in, at the node's clock `adjusted_time`.
    pub fn context_after(&self, parent: &BlockHash, adjusted_time: u32) -> Option<BlockContext> {
        let p = self.index.get(parent)?;
        let height = p.height.checked_add(1)?;
        let mut times = Vec::with_capacity(self.params.median_time_span);
        let mut cur = Some(*parent);
        while let Some(h) = cur {
            if times.len() >= self.params.median_time_span {
                break;
            }
            let e = self.index.get(&h)?;
            times.push(e.header.time);
            cur = (e.height > 0).then_some(e.header.prev_blockhash);
        }
        let expected_bits = if is_retarget_height(&self.params, height) {
            let first_h = retarget_first_height(&self.params, height)?;
            let first = self.index.get(&self.ancestor(parent, first_h)?)?;
            next_bits(
                &self.params,
                p.header.bits,
                first.header.time,
                p.header.time,
            )
            .ok()?
        } else {
            p.header.bits
        };
        Some(BlockContext {
            height,
            median_time_past: median_time_past(&times),
            expected_bits,
            adjusted_time,
        })
    }

    /// Whether `hash` is stored and every block below it too.
    fn is_linked(&self, hash: &BlockHash) -> bool {
        self.index.get(hash).is_some_and(|e| e.has_data()) && !self.waiting.contains(hash)
    }

    /// Recomputes which stored blocks wait for a missing ancestor (at start).
    fn rebuild_links(&mut self) {
        self.waiting.clear();
        self.unlinked.clear();
        let mut stored: Vec<_> = self
            .index
            .iter()
            .filter(|(_, e)| e.has_data() && e.height > 0)
            .map(|(h, e)| (e.height, *h, e.header.prev_blockhash))
            .collect();
        stored.sort();
        for (_, hash, parent) in stored {
            if !self.is_linked(&parent) {
                self.waiting.insert(hash);
                self.unlinked.entry(parent).or_default().push(hash);
            }
        }
    }

    /// The header with the most work that is not known invalid (first seen wins ties).
    fn rebuild_best_header(&mut self) {
        let mut best: Option<(Work, u32, BlockHash)> = None;
        for (h, e) in &self.index {
            if e.is_failed() {
                continue;
            }
            // Prefer the active chain's block among equals, then the lower hash: a stable
            // choice, as the arrival order is not stored.
            let key = (
                e.chain_work,
                u32::from(self.hash_at(e.height) == Some(*h)),
                *h,
            );
            if best.is_none_or(|b| (key.0, key.1, Reverse(key.2)) > (b.0, b.1, Reverse(b.2))) {
                best = Some(key);
            }
        }
        self.best_header = best.map_or(self.tip(), |b| b.2);
    }

    fn note_header(&mut self, hash: BlockHash, entry: &IndexEntry) {
        let best = self
            .index
            .get(&self.best_header)
            .map_or(Work::ZERO, |e| e.chain_work);
        if !entry.is_failed() && entry.chain_work > best {
            self.best_header = hash;
        }
    }

    /// The best header (see [`Chain::best_header_entry`]).
    pub fn best_header(&self) -> BlockHash {
        self.best_header
    }

    /// The index entry of the best header: the most-work chain of headers not known invalid,
    /// which may be ahead of the tip while its blocks download.
    pub fn best_header_entry(&self) -> IndexEntry {
        self.index
            .get(&self.best_header)
            .copied()
            .unwrap_or_else(|| self.tip_entry())
    }

    /// A Bitcoin-style locator of the best header chain: its last ten hashes, then stepping
    /// back 2, 4, 8, … blocks, ending with the genesis; at most `max` hashes (at least 2).
    pub fn locator(&self, max: usize) -> Vec<BlockHash> {
        let max = max.max(2);
        let top = self.best_header_entry().height;
        let mut out = Vec::with_capacity(max);
        let (mut height, mut step, mut cur) = (top, 1u32, self.best_header);
        while let Some(h) = self.ancestor(&cur, height) {
            out.push(h);
            cur = h;
            if height == 0 || out.len() + 1 >= max {
                break;
            }
            if out.len() >= 10 {
                step = step.saturating_mul(2);
            }
            height = height.saturating_sub(step);
        }
        if out.last() != Some(&self.params.genesis_hash) {
            out.push(self.params.genesis_hash);
        }
        out
    }

    /// Blocks of the best header chain this node lacks, lowest first, at most `max`.
    pub fn blocks_to_fetch(&self, max: usize) -> Vec<BlockHash> {
        let mut branch = Vec::new();
        let mut cur = self.best_header;
        while !self.is_active(&cur) {
            let Some(e) = self.index.get(&cur) else {
                break;
            };
            if !e.has_data() {
                branch.push(cur);
            }
            cur = e.header.prev_blockhash;
        }
        branch.into_iter().rev().take(max).collect()
    }

    /// Makes `hash` (stored, its parent linked) and every waiting descendant linked, adding
    /// those with more work than the tip to the candidates. Returns whether any was added.
    fn link(&mut self, hash: BlockHash) -> bool {
        let tip_work = self.tip_entry().chain_work;
        let mut added = false;
        let mut stack = vec![hash];
        while let Some(h) = stack.pop() {
            self.waiting.remove(&h);
            if let Some(e) = self.index.get(&h).copied()
                && !e.is_failed()
                && e.chain_work > tip_work
            {
                self.add_candidate(h, e.chain_work);
                added = true;
            }
            if let Some(children) = self.unlinked.remove(&h) {
                stack.extend(children);
            }
        }
        added
    }

    /// Adds headers (in order, each linking to the previous or to a known header) to the
    /// index without their blocks, after checking proof of work and the header rules in
    /// context. Known headers are skipped. Returns how many were new; on the first bad
    /// header, the ones before it are kept and the error names it (`prev-blk-not-found`
    /// for a header that links to nothing known).
    pub fn accept_headers(
        &mut self,
        headers: &[Header],
        adjusted_time: u32,
    ) -> Result<usize, ChainError> {
        let mut new: Vec<(BlockHash, IndexEntry)> = Vec::new();
        let mut result = Ok(());
        for header in headers {
            let hash = header.block_hash();
            if let Some(e) = self.index.get(&hash) {
                if e.is_failed() {
                    result = Err(ChainError::invalid(
                        hash,
                        "duplicate-invalid",
                        "header of a block known to be invalid",
                    ));
                    break;
                }
                continue;
            }
            let parent_hash = header.prev_blockhash;
            let Some(parent) = self.index.get(&parent_hash).copied() else {
                result = Err(ChainError::invalid(
                    hash,
                    "prev-blk-not-found",
                    format!("header's parent {parent_hash} is unknown"),
                ));
                break;
            };
            if parent.is_failed() {
                result = Err(ChainError::invalid(
                    hash,
                    "bad-prevblk",
                    format!("parent {parent_hash} is invalid"),
                ));
                break;
            }
            if let Err(e) = check_proof_of_work(&hash, header.bits, self.params.pow_limit) {
                result = Err(ChainError::invalid(hash, "high-hash", e));
                break;
            }
            let Some(ctx) = self.context_after(&parent_hash, adjusted_time) else {
                result = Err(StoreError::Missing(format!("ancestors of {parent_hash}")).into());
                break;
            };
            if let Err(e) = check_block_contextual(header, &ctx, &self.params) {
                result = Err(ChainError::invalid(hash, e.reason(), &e));
                break;
            }
            let entry = IndexEntry {
                header: *header,
                height: ctx.height,
                chain_work: parent.chain_work.saturating_add(header.work()),
                status: 0,
            };
            self.index.insert(hash, entry);
            new.push((hash, entry));
        }
        if !new.is_empty() {
            if let Err(e) = self.store.put_entries(&new) {
                for (h, _) in &new {
                    self.index.remove(h);
                }
                return Err(e.into());
            }
            for (h, e) in &new {
                self.note_header(*h, e);
            }
        }
        result.map(|()| new.len())
    }

    fn rebuild_candidates(&mut self) {
        let tip_work = self.tip_entry().chain_work;
        self.candidates.clear();
        let mut entries: Vec<_> = self
            .index
            .iter()
            .filter(|(h, e)| {
                e.has_data()
                    && !e.is_failed()
                    && e.chain_work >= tip_work
                    && !self.waiting.contains(*h)
            })
            .map(|(h, e)| (e.height, *h, e.chain_work))
            .collect();
        entries.sort();
        for (_, hash, work) in entries {
            self.arrival = self.arrival.saturating_add(1);
            self.candidates.insert((work, Reverse(self.arrival)), hash);
        }
    }

    /// Drops candidates that can no longer beat the tip.
    fn prune_candidates(&mut self) {
        let (tip_work, tip) = (self.tip_entry().chain_work, self.tip());
        self.candidates
            .retain(|(w, _), h| *w > tip_work || *h == tip);
    }

    fn add_candidate(&mut self, hash: BlockHash, work: Work) {
        self.arrival = self.arrival.saturating_add(1);
        self.candidates.insert((work, Reverse(self.arrival)), hash);
    }

    /// Accepts a block from a peer, the miner or the API. `adjusted_time` is the node's
    /// clock (see [`now`]).
    pub fn accept_block(
        &mut self,
        block: Block,
        adjusted_time: u32,
    ) -> Result<AcceptOutcome, ChainError> {
        let hash = block.block_hash();
        let mut outcome = AcceptOutcome {
            hash,
            accepted: Accepted::Stored,
            change: TipChange::default(),
            invalidated: Vec::new(),
        };
        let mut queue = VecDeque::from([block]);
        let mut first = true;
        while let Some(block) = queue.pop_front() {
            let h = block.block_hash();
            match self.accept_one(block, adjusted_time) {
                Ok(Step::Stored) => {
                    let (change, invalidated) = self.activate_best()?;
                    outcome.change.append(change);
                    outcome.invalidated.extend(invalidated);
                    queue.extend(self.orphans.take_children(&h));
                }
                Ok(Step::Connected(block)) => {
                    outcome.change.connected.push(block);
                    self.prune_candidates();
                    // Blocks stored ahead of this one (headers-first sync) can now connect.
                    if self.unlinked.contains_key(&h) && self.link(h) {
                        let (change, invalidated) = self.activate_best()?;
                        outcome.change.append(change);
                        outcome.invalidated.extend(invalidated);
                    }
                    queue.extend(self.orphans.take_children(&h));
                }
                Ok(Step::Done(other)) => {
                    if first {
                        outcome.accepted = other;
                    }
                }
                Err(e) => {
                    if first {
                        return Err(e);
                    }
                    tracing::info!("orphan {h} rejected: {e}");
                }
            }
            first = false;
        }
        Ok(outcome)
    }

    fn accept_one(&mut self, block: Block, adjusted_time: u32) -> Result<Step, ChainError> {
        let hash = block.block_hash();
        if let Some(e) = self.index.get(&hash) {
            if e.is_failed() {
                return Err(ChainError::invalid(
                    hash,
                    "duplicate-invalid",
                    "block is known to be invalid",
                ));
            }
            if e.has_data() {
                return Ok(Step::Done(Accepted::Duplicate));
            }
            // Only its header was known: the body is new.
        }
        let parent_hash = block.header.prev_blockhash;
        if parent_hash == self.tip() {
            return self
                .extend_tip(hash, block, adjusted_time)
                .map(Step::Connected);
        }
        check_block(&block, &self.params).map_err(|e| ChainError::invalid(hash, e.reason(), &e))?;
        let Some(parent) = self.index.get(&parent_hash).copied() else {
            self.orphans.insert(hash, block);
            return Ok(Step::Done(Accepted::Orphan));
        };
        let mut entry = IndexEntry {
            header: block.header,
            height: parent.height.saturating_add(1),
            chain_work: parent.chain_work.saturating_add(block.header.work()),
            status: status::HAVE_DATA,
        };
        if parent.is_failed() {
            entry.status |= status::FAILED_CHILD;
            self.store.put_block(&hash, &entry, &block)?;
            self.index.insert(hash, entry);
            self.rebuild_best_header();
            return Err(ChainError::invalid(
                hash,
                "bad-prevblk",
                format!("parent {parent_hash} is invalid"),
            ));
        }
        let ctx = self
            .context_after(&parent_hash, adjusted_time)
            .ok_or_else(|| StoreError::Missing(format!("ancestors of {parent_hash}")))?;
        if let Err(e) = check_block_contextual(&block.header, &ctx, &self.params) {
            let reason = e.reason();
            // A block from the future may become valid later: it is not remembered.
            if reason != "time-too-new" {
                entry.status |= status::FAILED;
                self.store.put_block(&hash, &entry, &block)?;
                self.index.insert(hash, entry);
                self.rebuild_best_header();
            }
            return Err(ChainError::invalid(hash, reason, &e));
        }
        self.store.put_block(&hash, &entry, &block)?;
        self.index.insert(hash, entry);
        self.note_header(hash, &entry);
        if self.is_linked(&parent_hash) {
            self.link(hash);
        } else {
            self.waiting.insert(hash);
            self.unlinked.entry(parent_hash).or_default().push(hash);
        }
        Ok(Step::Stored)
    }

    /// The common case: a block that extends the active tip is validated at once, and
    /// stored with its index entry and undo data in one transaction (its coins join the
    /// store's layers in memory). A block that fails is stored marked invalid, unless the
    /// failure may be the sender's (a body that does not match its header, or a time ahead of
    /// our clock): then nothing is kept.
    fn extend_tip(
        &mut self,
        hash: BlockHash,
        block: Block,
        adjusted_time: u32,
    ) -> Result<Block, ChainError> {
        let parent = self.tip_entry();
        let mut entry = IndexEntry {
            header: block.header,
            height: parent.height.saturating_add(1),
            chain_work: parent.chain_work.saturating_add(block.header.work()),
            status: status::HAVE_DATA,
        };
        match self.validate_and_write(&hash, &entry, &block, adjusted_time, true) {
            Ok(()) => {
                entry.status |= status::VALID;
                self.index.insert(hash, entry);
                self.active.push(hash);
                self.note_header(hash, &entry);
                Ok(block)
            }
            Err(ChainError::Invalid {
                hash,
                reason,
                message,
            }) => {
                let senders_fault = matches!(
                    reason.as_str(),
                    "bad-txnmrklroot" | "high-hash" | "time-too-new"
                ) || message.contains("CVE-2012-2459");
                if !senders_fault {
                    entry.status |= status::FAILED;
                    self.store.put_block(&hash, &entry, &block)?;
                    self.index.insert(hash, entry);
                    self.rebuild_best_header();
                }
                Err(ChainError::Invalid {
                    hash,
                    reason,
                    message,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Switches to the best valid chain; returns the blocks disconnected and connected and
    /// those found invalid on the way.
    fn activate_best(&mut self) -> Result<(TipChange, Vec<ChainError>), ChainError> {
        let mut change = TipChange::default();
        let mut invalidated = Vec::new();
        loop {
            let tip = self.tip_entry();
            let Some((&(work, _), &best)) = self.candidates.last_key_value() else {
                break;
            };
            if work <= tip.chain_work || best == self.tip() {
                break;
            }
            // The branch from the fork point up to `best`.
            let mut branch = Vec::new();
            let mut cur = best;
            while !self.is_active(&cur) {
                branch.push(cur);
                cur = self
                    .index
                    .get(&cur)
                    .map(|e| e.header.prev_blockhash)
                    .ok_or_else(|| StoreError::Missing(format!("ancestor {cur}")))?;
            }
            let fork = cur;
            while self.tip() != fork {
                change.disconnected.push(self.disconnect_tip()?);
            }
            let mut failed = None;
            for hash in branch.into_iter().rev() {
                match self.connect_tip(&hash) {
                    Ok(block) => change.connected.push(block),
                    Err(e @ ChainError::Invalid { .. }) => {
                        failed = Some((hash, e));
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            match failed {
                Some((bad, e)) => {
                    tracing::warn!("{e}");
                    self.mark_invalid(&bad)?;
                    invalidated.push(e);
                }
                None => self.prune_candidates(),
            }
        }
        Ok((change, invalidated))
    }

    fn load_block(&self, hash: &BlockHash) -> Result<Block, ChainError> {
        self.store
            .block(hash)?
            .ok_or_else(|| StoreError::Missing(format!("block {hash}")).into())
    }

    /// Validates and connects the stored block `hash` on top of the active tip.
    fn connect_tip(&mut self, hash: &BlockHash) -> Result<Block, ChainError> {
        let block = self.load_block(hash)?;
        let mut entry = *self
            .index
            .get(hash)
            .ok_or_else(|| StoreError::Missing(format!("index entry {hash}")))?;
        self.validate_and_write(hash, &entry, &block, now_or(entry.header.time), false)?;
        entry.status |= status::VALID;
        self.index.insert(*hash, entry);
        self.active.push(*hash);
        Ok(block)
    }

    /// Validates `block` (index entry `entry`) against the active chain, whose tip must be
    /// its parent, and connects it. The scripts start first, on `script_threads` threads,
    /// from inputs resolved ahead of the rules ([`early_checks`]), while this thread checks
    /// the contextual rules and transaction inputs and then prepares the store's write
    /// transaction, which is committed only if the rules and every script pass (and aborted
    /// otherwise). An early check counts only where it is identical to the check the rules
    /// produced for that transaction; any other is run afterwards. The verdict is the same
    /// as running the rules and then the scripts, without a core idle while the rules run.
    fn validate_and_write(
        &self,
        hash: &BlockHash,
        entry: &IndexEntry,
        block: &Block,
        adjusted_time: u32,
        store_body: bool,
    ) -> Result<(), ChainError> {
        let ctx = self
            .context_after(&block.header.prev_blockhash, adjusted_time)
            .ok_or_else(|| StoreError::Missing(format!("parent of {hash}")))?;
        debug_assert_eq!(ctx.height, entry.height);
        let view: Snapshot = self.store.snapshot()?;
        let (early, found) = early_checks(block, &view);
        let coins = Resolved { found, view: &view };
        let valid = IndexEntry {
            status: entry.status | status::VALID,
            ..*entry
        };
        let (oracle, threads) = (self.oracle.as_ref(), self.script_threads);
        let cancel = AtomicBool::new(false);
        let queue = CheckQueue::new(&early, &cancel);
        let (rules, early_verdict) = std::thread::scope(|s| {
            // Helpers start on the scripts; this thread joins them after its own work.
            let helpers = queue.spawn_helpers(s, oracle, threads.saturating_sub(1));
            // The rules' checks with the write they lead to, prepared while scripts run.
            let rules =
                connect_block(block, &ctx, &coins, &view, &self.params).map(|(changes, checks)| {
                    let pending = self
                        .store
                        .prepare_connect(hash, &valid, block, changes, store_body);
                    (checks, pending)
                });
            if rules.is_err() {
                cancel.store(true, Ordering::Relaxed);
            }
            let mine = queue.work(oracle);
            (rules, queue.finish(mine, helpers))
        });
        if let Some(e) = view.take_error() {
            return Err(e.into());
        }
        drop(coins);
        drop(view);
        let (checks, pending) = rules.map_err(|e| ChainError::invalid(*hash, e.reason(), &e))?;
        let pending = pending?;
        // The real checks the early run covered: same transaction, same spent outputs.
        let covered: Vec<bool> = checks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                early
                    .get(i)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| std::ptr::eq(c.tx, e.tx) && c.spent == e.spent)
            })
            .collect();
        let is_covered = |i: usize| covered.get(i).copied().unwrap_or(false);
        let scripts = match early_verdict {
            // Every early check passed: run the checks it did not cover.
            Ok(()) => {
                let rest: Vec<usize> = (0..checks.len()).filter(|i| !is_covered(*i)).collect();
                let owned: Vec<TxScriptChecks<'_>> = rest
                    .iter()
                    .filter_map(|i| checks.get(*i).cloned())
                    .collect();
                run_script_checks(&owned, oracle, threads)
                    .map_err(|(j, e)| (rest.get(j).copied().unwrap_or(j), e))
            }
            // An early check failed: its verdict stands if the rules produced the same check;
            // otherwise every real check runs.
            Err((j, e)) => {
                let failed = early.get(j).and_then(Option::as_ref).map(|c| c.tx);
                match checks
                    .iter()
                    .position(|c| failed.is_some_and(|f| std::ptr::eq(c.tx, f)))
                {
                    Some(i) if is_covered(i) => Err((i, e)),
                    _ => run_script_checks(&checks, oracle, threads),
                }
            }
        };
        match scripts {
            Ok(()) => Ok(pending.commit()?),
            Err((i, e)) => {
                pending.abort()?;
                Err(ChainError::invalid(
                    *hash,
                    e.reason(),
                    format!("{e} (script check {i})"),
                ))
            }
        }
    }

    fn disconnect_tip(&mut self) -> Result<Block, ChainError> {
        let hash = self.tip();
        let entry = *self
            .index
            .get(&hash)
            .ok_or_else(|| StoreError::Missing(format!("index entry {hash}")))?;
        if entry.height == 0 {
            return Err(
                StoreError::Missing("a block below genesis to reorganise to".into()).into(),
            );
        }
        let block = self.load_block(&hash)?;
        self.store.disconnect_block(&hash, entry.height, &block)?;
        self.active.pop();
        Ok(block)
    }

    /// Marks `bad` failed and every indexed descendant failed-child, in one transaction.
    fn mark_invalid(&mut self, bad: &BlockHash) -> Result<(), ChainError> {
        let Some(mut entry) = self.index.get(bad).copied() else {
            return Ok(());
        };
        entry.status |= status::FAILED;
        let mut changed = vec![(*bad, entry)];
        let mut later: Vec<(u32, BlockHash)> = self
            .index
            .iter()
            .filter(|(_, e)| e.height > entry.height)
            .map(|(h, e)| (e.height, *h))
            .collect();
        later.sort();
        let mut failed: std::collections::HashSet<BlockHash> = [*bad].into();
        for (_, h) in later {
            if let Some(e) = self.index.get(&h)
                && failed.contains(&e.header.prev_blockhash)
            {
                failed.insert(h);
                let mut e = *e;
                e.status |= status::FAILED_CHILD;
                changed.push((h, e));
            }
        }
        self.store.put_entries(&changed)?;
        for (h, e) in changed {
            self.index.insert(h, e);
        }
        self.rebuild_best_header();
        self.rebuild_candidates();
        Ok(())
    }
}

/// The node's clock, but never earlier than `block_time` minus the future limit: blocks
/// already accepted are not re-judged on time when they are (re)connected.
fn now_or(block_time: u32) -> u32 {
    now().max(block_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use camel_core::block::Header;
    use camel_core::hash::Hash256;
    use camel_core::params::Params;
    use camel_core::script::Script;
    use camel_core::transaction::TxOut;

    /// A block (not valid, the pool does not care) whose coinbase has `outputs` outputs of
    /// 9,000 script bytes each.
    fn orphan(parent: u8, n: u32, outputs: usize) -> Block {
        let out = TxOut {
            value: camel_core::Amount::ZERO,
            script_pubkey: Script::new(vec![0x6a; 9_000]),
        };
        let coinbase = camel_core::block::build_coinbase(n, b"", vec![out; outputs]).unwrap();
        Block {
            header: Header {
                version: 1,
                prev_blockhash: BlockHash::hash(&[parent]),
                merkle_root: Hash256::ZERO,
                time: n,
                bits: Params::regtest().pow_limit_bits,
                nonce: n,
            },
            txdata: vec![coinbase],
        }
    }

    #[test]
    fn orphan_pool_is_bounded_by_count_and_bytes() {
        let mut pool = OrphanPool::default();
        let blocks: Vec<Block> = (0..MAX_ORPHANS as u32 + 10)
            .map(|n| orphan((n % 3) as u8, n, 0))
            .collect();
        for b in &blocks {
            pool.insert(b.block_hash(), b.clone());
        }
        assert_eq!(pool.blocks.len(), MAX_ORPHANS);
        // The oldest went first.
        assert!(!pool.blocks.contains_key(&blocks[0].block_hash()));
        assert!(
            pool.blocks
                .contains_key(&blocks[MAX_ORPHANS + 9].block_hash())
        );
        let counted: usize = pool.blocks.values().map(|(_, s)| *s).sum();
        assert_eq!(pool.bytes, counted);
        // Children come out by parent, and leave every map.
        let parent = BlockHash::hash(&[1]);
        let children = pool.take_children(&parent);
        assert!(!children.is_empty());
        assert!(children.iter().all(|b| b.header.prev_blockhash == parent));
        assert!(pool.take_children(&parent).is_empty());
        assert_eq!(pool.order.len(), pool.blocks.len());
        // Big blocks (about 225 kB): the byte bound evicts before the count bound.
        let mut pool = OrphanPool::default();
        let per_block = orphan(0, 0, 25).encoded_len();
        let fit = MAX_ORPHAN_BYTES / per_block;
        assert!(fit < MAX_ORPHANS);
        for n in 0..MAX_ORPHANS as u32 {
            let b = orphan(0, n, 25);
            pool.insert(b.block_hash(), b);
        }
        assert!(pool.bytes <= MAX_ORPHAN_BYTES);
        assert_eq!(pool.blocks.len(), fit);
    }
}
