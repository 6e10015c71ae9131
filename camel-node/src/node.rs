//! The node: the chain and the mempool behind one handle that the API, the miner and tests
//! share, and the indexer thread that keeps the transaction and address indexes up with the
//! tip. Locks are always taken chain first, then mempool.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use camel_core::Amount;
use camel_core::address::{Address, AddressError};
use camel_core::block::{Block, HEADER_SIZE};
use camel_core::hash::{BlockHash, Txid};
use camel_core::interpreter::FraudProofOracle;
use camel_core::params::Params;
use camel_core::script::Script;
use camel_core::templates;
use camel_core::transaction::Transaction;

use crate::chain::{AcceptOutcome, Chain, ChainError, now};
use crate::mempool::{Mempool, MempoolError, Policy};
use crate::miner::{WorkUnit, mine};
use crate::store::{IndexProgress, Snapshot, Store, StoreError};

/// Parses an address of `params`' network into its P2PKH script.
pub fn payout_script_for(params: &Params, address: &str) -> Result<Script, AddressError> {
    let a = Address::parse_for(address, params.address_version)?;
    Ok(templates::p2pkh(a.pubkey_hash()))
}

/// What the node hands the network to gossip: blocks it mined or was given over the API,
/// and transactions accepted over the API. Blocks and transactions that arrive from peers
/// are relayed by the network itself and are not announced again.
#[derive(Debug, Clone)]
pub enum Announcement {
    Block(Block),
    Tx(Transaction),
}

/// Blocks `generate` makes durable together (one disk sync each batch), as a sync response.
const GENERATE_BATCH: u32 = 64;
/// Stale blocks in a row after which on-demand mining gives up (something keeps taking the tip).
const MAX_STALE_GENERATED: u32 = 16;

/// Bytes kept free in a template for the header, the transaction count and the coinbase.
const COINBASE_RESERVE: usize = 1_000;

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("mined block {hash} was not accepted: {why}")]
    Mining { hash: BlockHash, why: String },
    #[error("mining stopped")]
    Stopped,
}

/// Node settings that are not network parameters.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Threads that check a block's scripts.
    pub script_threads: usize,
    pub policy: Policy,
    /// The store's page cache, bytes.
    pub cache_bytes: usize,
}

/// Default page cache of the store: enough for the UTXO set's hot pages, and a bound on
/// the node's memory whatever the chain's length.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            script_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            policy: Policy::default(),
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// Blocks the indexer moves per write transaction.
const INDEX_BATCH: usize = 64;

/// How far behind the best header the tip may be for the indexer to keep up block by block.
const INDEX_DEFER_BEHIND: u32 = 144;

/// Least time between the indexer's disk syncs.
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// How long an index query waits for the indexer to reach the tip before answering from
/// the indexes as they are.
pub const INDEX_WAIT: Duration = Duration::from_secs(5);

/// The indexer thread's mailbox: woken on every tip change, it writes the coins the new
/// blocks changed to the UTXO table ([`Store::write_coins`]) and runs [`Store::index_step`]
/// until the indexes reach the tip, then tells whoever waits.
#[derive(Debug, Default)]
struct IndexerShared {
    state: Mutex<IndexerState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct IndexerState {
    pending: bool,
    stop: bool,
    /// Completed catch-up runs, so waiters see progress.
    rounds: u64,
}

impl IndexerShared {
    fn wake(&self) {
        lock(&self.state).pending = true;
        self.changed.notify_all();
    }

    fn run(&self, store: &Store) {
        // The indexer's commits are not synced: redb keeps their pages to write with the
        // next durable commit, which would be the next block's. The indexer syncs them itself
        // when no block waits, at most every SYNC_INTERVAL (a burst of blocks, as `generate`
        // or a sync makes, would otherwise pay a disk sync per block); one left over is
        // made once the node has been idle that long.
        let mut syncs = Syncs {
            last: Instant::now(),
            owed: false,
        };
        loop {
            {
                let mut st = lock(&self.state);
                while !st.pending && !st.stop {
                    st = match syncs.due_in() {
                        None => self.changed.wait(st).unwrap_or_else(|p| p.into_inner()),
                        Some(left) if left.is_zero() => break,
                        Some(left) => self
                            .changed
                            .wait_timeout(st, left)
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0),
                    };
                }
                if st.stop {
                    return;
                }
                if !st.pending {
                    drop(st);
                    syncs.sync(store);
                    continue;
                }
                st.pending = false;
            }
            if let Err(e) = store.write_coins() {
                tracing::error!("writing the UTXO set: {e}; retrying at the next block");
            }
            loop {
                match store.index_step(INDEX_BATCH) {
                    Ok(IndexProgress::CaughtUp) => break,
                    Ok(IndexProgress::Behind) => {
                        if lock(&self.state).stop {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::error!("indexer: {e}; retrying at the next block");
                        break;
                    }
                }
            }
            syncs.owed = true;
            if !lock(&self.state).pending && syncs.due_in() == Some(Duration::ZERO) {
                syncs.sync(store);
            }
            let mut st = lock(&self.state);
            st.rounds = st.rounds.wrapping_add(1);
            self.changed.notify_all();
        }
    }
}

/// When the indexer last synced its commits to disk, and whether it owes one.
struct Syncs {
    last: Instant,
    owed: bool,
}

impl Syncs {
    /// How long until the owed sync is due; `None` when none is owed.
    fn due_in(&self) -> Option<Duration> {
        self.owed
            .then(|| SYNC_INTERVAL.saturating_sub(self.last.elapsed()))
    }

    fn sync(&mut self, store: &Store) {
        if let Err(e) = store.flush() {
            tracing::error!("syncing the UTXO set and indexes: {e}");
        }
        self.last = Instant::now();
        self.owed = false;
    }
}

/// A full node's state.
pub struct Node {
    params: Params,
    store: Arc<Store>,
    chain: Mutex<Chain>,
    mempool: Mutex<Mempool>,
    oracle: Arc<dyn FraudProofOracle + Send + Sync>,
    /// Set whenever the tip changes or the node shuts down: miners rebuild their work.
    miner_interrupt: AtomicBool,
    shutting_down: AtomicBool,
    /// Hashes tried by this node's miners.
    pub hashes: AtomicU64,
    /// Where announcements go (the network task), once a network runs.
    announcer: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Announcement>>>,
    indexer: Arc<IndexerShared>,
    indexer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        lock(&self.indexer.state).stop = true;
        self.indexer.changed.notify_all();
        if let Some(t) = lock(&self.indexer_thread).take() {
            let _ = t.join();
        }
        // A clean stop leaves the next start nothing to replay.
        if let Err(e) = self.store.write_coins().and_then(|()| self.store.flush()) {
            tracing::warn!("writing the UTXO set at shutdown: {e}");
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("network", &self.params.network)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the state as the last completed store
    // transaction left it; carry on with it rather than poison every later call.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Node {
    /// Opens the node's store at `store_path`.
    pub fn open(
        store_path: &std::path::Path,
        params: Params,
        config: NodeConfig,
        oracle: Arc<dyn FraudProofOracle + Send + Sync>,
    ) -> Result<Self, NodeError> {
        let store = Arc::new(Store::open(store_path, config.cache_bytes)?);
        let chain = Chain::open(
            store.clone(),
            params.clone(),
            oracle.clone(),
            config.script_threads,
        )?;
        let indexer = Arc::new(IndexerShared::default());
        let thread = {
            let (indexer, store) = (indexer.clone(), store.clone());
            std::thread::Builder::new()
                .name("indexer".into())
                .spawn(move || indexer.run(&store))
                .map_err(|e| StoreError::Missing(format!("an indexer thread ({e})")))?
        };
        // Catch up with whatever the last run left.
        indexer.wake();
        Ok(Self {
            indexer,
            indexer_thread: Mutex::new(Some(thread)),
            params,
            store,
            chain: Mutex::new(chain),
            mempool: Mutex::new(Mempool::new(config.policy)),
            oracle,
            miner_interrupt: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            hashes: AtomicU64::new(0),
            announcer: Mutex::new(None),
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The chain, locked. Hold it briefly.
    pub fn chain(&self) -> MutexGuard<'_, Chain> {
        lock(&self.chain)
    }

    /// The mempool, locked (take the chain lock first if both are needed).
    pub fn mempool(&self) -> MutexGuard<'_, Mempool> {
        lock(&self.mempool)
    }

    /// A read snapshot whose transaction and address indexes reflect its tip, waiting up to
    /// `wait` for the indexer; after that, the snapshot as it is (its indexes may then lag
    /// the tip by the blocks still being indexed).
    pub fn indexed_snapshot(&self, wait: Duration) -> Result<Snapshot, StoreError> {
        let deadline = Instant::now() + wait;
        loop {
            let rounds = lock(&self.indexer.state).rounds;
            let snapshot = self.store.snapshot()?;
            let (tip, indexed) = snapshot.tips()?;
            let now = Instant::now();
            if tip == indexed || now >= deadline {
                return Ok(snapshot);
            }
            drop(snapshot);
            self.indexer.wake();
            let st = lock(&self.indexer.state);
            if st.rounds == rounds {
                let _ = self
                    .indexer
                    .changed
                    .wait_timeout(st, (deadline - now).min(Duration::from_millis(50)));
            }
        }
    }

    /// Sends announcements to `to` from now on.
    pub fn set_announcer(&self, to: tokio::sync::mpsc::UnboundedSender<Announcement>) {
        *lock(&self.announcer) = Some(to);
    }

    /// Hands a block or transaction to the network for gossip (nothing without a network).
    pub fn announce(&self, what: Announcement) {
        let mut announcer = lock(&self.announcer);
        if let Some(to) = announcer.as_ref()
            && to.send(what).is_err()
        {
            // The network has stopped.
            *announcer = None;
        }
    }

    /// Accepts a block and brings the mempool up to date with any tip change.
    pub fn submit_block(&self, block: Block) -> Result<AcceptOutcome, NodeError> {
        let mut chain = self.chain();
        self.accept_locked(&mut chain, block)
    }

    /// Accepts blocks received together from a peer under one chain lock, with one disk
    /// sync for the batch instead of one per block ([`Store::deferring`]: a crash
    /// loses the whole batch or none of it, and sync fetches lost blocks again). The outer
    /// error is a failure to make the batch durable; the inner results are per block, in
    /// order.
    pub fn submit_blocks(
        &self,
        blocks: Vec<Block>,
    ) -> Result<Vec<Result<AcceptOutcome, NodeError>>, NodeError> {
        let mut chain = self.chain();
        let deferring = self.store.deferring();
        let results = blocks
            .into_iter()
            .map(|b| self.accept_locked(&mut chain, b))
            .collect();
        drop(deferring);
        self.store.flush()?;
        Ok(results)
    }

    fn accept_locked(&self, chain: &mut Chain, block: Block) -> Result<AcceptOutcome, NodeError> {
        let mut outcome = chain.accept_block(block, now())?;
        if !outcome.change.is_empty() {
            // While far behind the best header (a sync), the indexer waits: it would compete
            // with the sync for the store's write lock and the cores. It catches up when the
            // tip comes within reach, or when an index query asks.
            let behind = chain
                .best_header_entry()
                .height
                .saturating_sub(chain.height());
            if behind <= INDEX_DEFER_BEHIND {
                self.indexer.wake();
            }
            self.miner_interrupt.store(true, Ordering::Relaxed);
            self.mempool()
                .update_for_tip_change(&outcome.change, chain, self.oracle.as_ref())?;
        }
        if let Some(pos) = outcome.rejection() {
            return Err(outcome.invalidated.swap_remove(pos).into());
        }
        Ok(outcome)
    }

    /// Validates a transaction and adds it to the mempool.
    pub fn submit_tx(&self, tx: Transaction) -> Result<Txid, NodeError> {
        let chain = self.chain();
        Ok(self.mempool().accept(tx, &chain, self.oracle.as_ref())?)
    }

    /// Work for a block on the current tip paying `payout`: mempool transactions by fee
    /// rate, time at least the median time past plus one.
    pub fn work_unit(&self, payout: &Script) -> Result<WorkUnit, NodeError> {
        let chain = self.chain();
        let tip = chain.tip();
        let ctx = chain
            .context_after(&tip, now())
            .ok_or_else(|| StoreError::Missing(format!("ancestors of the tip {tip}")))?;
        let max = self
            .params
            .max_block_size
            .saturating_sub(HEADER_SIZE + COINBASE_RESERVE);
        let template = self.mempool().template(&chain, max)?;
        let reward = self
            .params
            .block_subsidy(ctx.height)
            .checked_add(template.fees)
            .unwrap_or(Amount::MAX);
        Ok(WorkUnit {
            height: ctx.height,
            prev: tip,
            bits: ctx.expected_bits,
            time: now().max(ctx.median_time_past.saturating_add(1)),
            version: 1,
            txs: template.txs,
            reward,
            payout: payout.clone(),
        })
    }

    /// Parses an address of this node's network into its P2PKH script.
    pub fn payout_script(&self, address: &str) -> Result<Script, AddressError> {
        payout_script_for(&self.params, address)
    }

    /// Mines `n` blocks on the current tip paying `payout` (regtest's on-demand mining;
    /// also used by tests). Returns their hashes.
    ///
    /// The blocks are made durable 64 at a time and all of them before the call returns (not
    /// one disk sync per block); a crash loses only blocks this call has not yet returned.
    pub fn generate(
        &self,
        n: u32,
        payout: &Script,
        threads: usize,
    ) -> Result<Vec<BlockHash>, NodeError> {
        let mut hashes = Vec::new();
        let mined = self.generate_into(n, payout, threads, &mut hashes);
        self.store.flush()?;
        mined.map(|()| hashes)
    }

    fn generate_into(
        &self,
        n: u32,
        payout: &Script,
        threads: usize,
        hashes: &mut Vec<BlockHash>,
    ) -> Result<(), NodeError> {
        let mut stale = 0u32;
        let mut i = 0;
        while i < n {
            // Bounded batches, as a sync's: redb holds a deferred commit's pages until the
            // durable one.
            if i > 0 && i % GENERATE_BATCH == 0 && stale == 0 {
                self.store.flush()?;
            }
            if self.shutting_down.load(Ordering::Relaxed) {
                return Err(NodeError::Stopped);
            }
            let unit = self.work_unit(payout)?;
            let block = mine(&unit, threads, &self.shutting_down, &self.hashes)
                .ok_or(NodeError::Stopped)?;
            let hash = block.block_hash();
            let (outcome, tip) = {
                // Deferred durability only under the chain lock, so that no other caller's
                // write is deferred with it.
                let mut chain = self.chain();
                let deferring = self.store.deferring();
                let outcome = self.accept_locked(&mut chain, block.clone());
                drop(deferring);
                (outcome?, chain.tip())
            };
            if tip != hash {
                // Another block took the tip while this one was mined (a peer's, or another
                // caller's): a stale block, as in any mining; mine again on the new tip.
                let side = matches!(
                    outcome.accepted,
                    crate::chain::Accepted::Stored | crate::chain::Accepted::Duplicate
                );
                stale += 1;
                if !side || stale > MAX_STALE_GENERATED {
                    return Err(NodeError::Mining {
                        hash,
                        why: format!("{:?}, tip is {tip}", outcome.accepted),
                    });
                }
                continue;
            }
            stale = 0;
            self.announce(Announcement::Block(block));
            hashes.push(hash);
            i += 1;
        }
        Ok(())
    }

    /// Mines on `threads` threads until shutdown, rebuilding work on every tip change.
    pub fn mine_forever(&self, payout: &Script, threads: usize) {
        while !self.shutting_down.load(Ordering::Relaxed) {
            self.miner_interrupt.store(false, Ordering::Relaxed);
            let unit = match self.work_unit(payout) {
                Ok(u) => u,
                Err(e) => {
                    tracing::error!("miner cannot build a block: {e}");
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    continue;
                }
            };
            if let Some(block) = mine(&unit, threads, &self.miner_interrupt, &self.hashes) {
                let hash = block.block_hash();
                match self.submit_block(block.clone()) {
                    Ok(_) => {
                        tracing::info!("mined block {hash} at height {}", unit.height);
                        self.announce(Announcement::Block(block));
                    }
                    Err(e) => tracing::warn!("mined block {hash} refused: {e}"),
                }
            }
        }
    }

    /// Stops miners and refuses further mining.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.miner_interrupt.store(true, Ordering::Relaxed);
    }

    /// Interrupts miners so they pick up new transactions (called on a timer).
    pub fn refresh_miners(&self) {
        self.miner_interrupt.store(true, Ordering::Relaxed);
    }
}
