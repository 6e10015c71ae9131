//! The chain store, on redb: the header index, block bodies, the UTXO set, undo data, job
//! records, and the transaction and address indexes.
//!
//! Every change the chain manager makes is one redb write transaction, committed with
//! `Durability::Immediate` (or deferred to the end of a batch, [`Store::deferring`]),
//! two-phase commit (the data comes from peers, see redb's `set_two_phase_commit`) and quick
//! repair: storing a received block, connecting one block (block, undo record with its coin
//! changes, new tip), disconnecting one block, or marking blocks invalid. A process killed at
//! any instant reopens at the last commit and replays the coins below, so the tip and the UTXO
//! set always agree.
//!
//! The connect does not write the UTXO table (ADR 0006): a connected block's coin
//! changes stay in memory as a layer over the table, which reads see, until
//! [`Store::write_coins`] writes the layers out in one transaction (from the node's background
//! thread after each block, or at once when [`MAX_LAYERS`] or [`MAX_UNWRITTEN_COINS`] is
//! reached), recording the block the table reflects under `utxo_tip`. The block's undo record
//! holds its coin changes, so a store reopened after a crash replays the blocks from
//! `utxo_tip` to `tip` before anything reads it (as Bitcoin Core's coins cache and its replay
//! of blocks after an unclean shutdown).
//!
//! The transaction and address indexes are not on that path: [`Store::index_step`] brings
//! them up to the tip afterwards (run by the node's indexer thread), from the blocks and their
//! undo records, recording how far they reach under `index_tip` in the same transaction, so
//! they too always agree with the block they name (as Bitcoin Core's optional indexes follow
//! the chain in the background).
//!
//! Tables (keys and values are byte strings; integers little-endian):
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | `tip` → block hash; `utxo_tip` → the block the `utxo` table reflects (an ancestor of `tip`; all zeros before genesis); `index_tip` → the block the indexes reflect |
//! | `headers` | block hash | [`IndexEntry`]: header ‖ height u32 ‖ chain work (32) ‖ status u8 |
//! | `blocks` | block hash | the block, consensus-encoded |
//! | `undo` | block hash | [`Undo`]: coins spent and created, job records created and updated (kept after a disconnect: the indexes need it) |
//! | `active` | height u32 (big-endian) | block hash of the active chain at that height |
//! | `utxo` | encoded outpoint (36) | encoded [`Coin`] |
//! | `jobs` | job id | encoded [`JobRecord`] |
//! | `txindex` | txid | block hash ‖ position u32 (active chain only) |
//! | `addrindex` | SHA-256(scriptPubKey) ‖ outpoint | empty (unspent outputs only) |

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use camel_core::block::{Block, Header};
use camel_core::contextual::BlockChanges;
use camel_core::encode::{
    Decodable, DecodeError, Encodable, Reader, decode_from_slice, encode_to_vec, write_compact_size,
};
use camel_core::hash::{BlockHash, Hash256, JobId, Txid, sha256};
use camel_core::job::rules::{JobRecord, JobView};
use camel_core::pow::Work;
use camel_core::script::Script;
use camel_core::transaction::OutPoint;
use camel_core::utxo::{Coin, UtxoSetHasher, UtxoView};
use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, WriteTransaction,
};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const HEADERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("headers");
const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
const UNDO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("undo");
const ACTIVE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("active");
const UTXO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("utxo");
const JOBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("jobs");
const TXINDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("txindex");
const ADDRINDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("addrindex");

const TIP_KEY: &str = "tip";
const UTXO_TIP_KEY: &str = "utxo_tip";
const INDEX_TIP_KEY: &str = "index_tip";

/// Why the store failed. Storage errors are not about the data's validity: the node stops
/// (or the request fails) rather than marking anything invalid because of them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("chain store: {0}")]
    Db(#[from] redb::Error),
    #[error("chain store holds a corrupt {what}: {source}")]
    Corrupt {
        what: &'static str,
        #[source]
        source: DecodeError,
    },
    #[error("chain store is missing {0}")]
    Missing(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

fn corrupt(what: &'static str) -> impl FnOnce(DecodeError) -> StoreError {
    move |source| StoreError::Corrupt { what, source }
}

/// Status flags of a header index entry.
pub mod status {
    /// The block body is stored.
    pub const HAVE_DATA: u8 = 1;
    /// The block was connected at least once: it passed every rule.
    pub const VALID: u8 = 2;
    /// The block broke a rule.
    pub const FAILED: u8 = 4;
    /// An ancestor broke a rule.
    pub const FAILED_CHILD: u8 = 8;
    /// Either failure flag.
    pub const ANY_FAILED: u8 = FAILED | FAILED_CHILD;
}

/// What the store knows about one header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub header: Header,
    pub height: u32,
    /// Work of the chain from genesis up to and including this block.
    pub chain_work: Work,
    pub status: u8,
}

impl IndexEntry {
    pub fn is_failed(&self) -> bool {
        self.status & status::ANY_FAILED != 0
    }
    pub fn has_data(&self) -> bool {
        self.status & status::HAVE_DATA != 0
    }
}

impl Encodable for IndexEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        self.header.encode(out);
        self.height.encode(out);
        out.extend_from_slice(&self.chain_work.to_le_bytes());
        self.status.encode(out);
    }
}

impl Decodable for IndexEntry {
    const MIN_ENCODED_SIZE: usize = 80 + 4 + 32 + 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            header: Header::decode(r)?,
            height: r.read_u32()?,
            chain_work: Work::from_le_bytes(r.read_array()?),
            status: r.read_u8()?,
        })
    }
}

/// What disconnecting a block must undo: the coins it spent (restored), the coins it
/// created (removed), the job records it created (removed) and updated (restored to the
/// old record).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Undo {
    pub spent: Vec<(OutPoint, Coin)>,
    pub created: Vec<(OutPoint, Coin)>,
    pub jobs_created: Vec<JobId>,
    pub jobs_updated: Vec<(JobId, JobRecord)>,
}

/// Most items of any undo list: far above what a 2 MB block can spend or create.
const MAX_UNDO_ITEMS: usize = 10_000_000;

impl Undo {
    /// The encoded undo record of a block whose connection made `changes`: the bytes an
    /// [`Undo`] holding the same lists encodes to, written without copying the lists.
    pub fn encode_changes(changes: &BlockChanges) -> Vec<u8> {
        let mut out = Vec::new();
        write_pairs(&mut out, changes.spent.iter().map(|(a, b)| (a, b)));
        write_pairs(&mut out, changes.created.iter().map(|(a, b)| (a, b)));
        write_compact_size(&mut out, changes.jobs_created.len() as u64);
        for (id, _) in &changes.jobs_created {
            id.encode(&mut out);
        }
        write_pairs(
            &mut out,
            changes.jobs_updated.iter().map(|(id, old, _)| (id, old)),
        );
        out
    }
}

fn write_pairs<'x, A: Encodable + 'x, B: Encodable + 'x>(
    out: &mut Vec<u8>,
    items: impl ExactSizeIterator<Item = (&'x A, &'x B)>,
) {
    write_compact_size(out, items.len() as u64);
    for (a, b) in items {
        a.encode(out);
        b.encode(out);
    }
}

fn read_pairs<A: Decodable, B: Decodable>(r: &mut Reader<'_>) -> Result<Vec<(A, B)>, DecodeError> {
    let n = r.read_length(
        "undo items",
        MAX_UNDO_ITEMS,
        A::MIN_ENCODED_SIZE.saturating_add(B::MIN_ENCODED_SIZE),
    )?;
    let mut out = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let a = A::decode(r)?;
        let b = B::decode(r)?;
        out.push((a, b));
    }
    Ok(out)
}

impl Encodable for Undo {
    fn encode(&self, out: &mut Vec<u8>) {
        write_pairs(out, self.spent.iter().map(|(a, b)| (a, b)));
        write_pairs(out, self.created.iter().map(|(a, b)| (a, b)));
        camel_core::encode::write_vec(out, &self.jobs_created);
        write_pairs(out, self.jobs_updated.iter().map(|(a, b)| (a, b)));
    }
}

impl Decodable for Undo {
    const MIN_ENCODED_SIZE: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            spent: read_pairs(r)?,
            created: read_pairs(r)?,
            jobs_created: r.read_vec("undo jobs", MAX_UNDO_ITEMS)?,
            jobs_updated: read_pairs(r)?,
        })
    }
}

/// Key of the address index: SHA-256 of the output script (so any script can be looked up,
/// not only addresses), then the outpoint.
pub fn script_hash(script: &Script) -> [u8; 32] {
    sha256(script.as_bytes())
}

fn addr_key(script: &Script, outpoint: &OutPoint) -> Vec<u8> {
    let mut k = script_hash(script).to_vec();
    outpoint.encode(&mut k);
    k
}

/// An outpoint as the `utxo` table's key: txid ‖ vout (little-endian), its consensus
/// encoding.
fn outpoint_key(op: &OutPoint) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(op.txid.as_bytes());
    k[32..].copy_from_slice(&op.vout.to_le_bytes());
    k
}

fn height_key(height: u32) -> [u8; 4] {
    height.to_be_bytes()
}

/// A summary of the UTXO set: the hash that two nodes on the same chain agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtxoStats {
    /// The consensus UTXO-set hash (`camel_core::utxo`): SHA-256 over every entry in order
    /// of encoded outpoint.
    pub hash: Hash256,
    pub coins: u64,
    /// Sum of coin values, base units.
    pub total: u64,
}

/// Removes `removed` and inserts `added` in the UTXO table, each in key order (sorted
/// inserts touch each B-tree page once, random ones once per key).
fn apply_coins(
    txn: &WriteTransaction,
    removed: &[(OutPoint, Coin)],
    added: &[(OutPoint, Coin)],
) -> Result<(), StoreError> {
    write_utxo(
        txn,
        removed.iter().map(|(op, _)| outpoint_key(op)).collect(),
        added
            .iter()
            .map(|(op, c)| (outpoint_key(op), encode_to_vec(c)))
            .collect(),
    )
}

/// Removes the `removed` keys from the UTXO table and inserts the `added` entries, each in key
/// order.
fn write_utxo(
    txn: &WriteTransaction,
    mut removed: Vec<[u8; 36]>,
    mut added: Vec<([u8; 36], Vec<u8>)>,
) -> Result<(), StoreError> {
    removed.sort_unstable();
    added.sort_unstable();
    let mut utxo = txn.open_table(UTXO)?;
    for k in &removed {
        utxo.remove(k.as_slice())?;
    }
    for (k, v) in &added {
        utxo.insert(k.as_slice(), v.as_slice())?;
    }
    Ok(())
}

/// Moves the address index across one block: keys of `removed` coins out, of `added` in,
/// each in key order.
fn apply_addr(
    addr: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    removed: &[(OutPoint, Coin)],
    added: &[(OutPoint, Coin)],
) -> Result<(), StoreError> {
    let mut out: Vec<Vec<u8>> = removed
        .iter()
        .map(|(op, c)| addr_key(&c.output.script_pubkey, op))
        .collect();
    let mut into: Vec<Vec<u8>> = added
        .iter()
        .map(|(op, c)| addr_key(&c.output.script_pubkey, op))
        .collect();
    out.sort_unstable();
    into.sort_unstable();
    for k in &out {
        addr.remove(k.as_slice())?;
    }
    for k in &into {
        addr.insert(k.as_slice(), &[][..])?;
    }
    Ok(())
}

/// How far [`Store::index_step`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexProgress {
    /// The indexes reflect the tip.
    CaughtUp,
    /// More blocks to go.
    Behind,
}

fn read_hash(
    v: Option<redb::AccessGuard<'_, &'static [u8]>>,
) -> Result<Option<BlockHash>, StoreError> {
    v.map(|v| decode_from_slice(v.value()).map_err(corrupt("block hash")))
        .transpose()
}

/// The record of block `hash` in `table`, decoded: `what` names it in errors, for a record
/// that does not decode or is not there.
fn read_record<T: Decodable>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    hash: &BlockHash,
    what: &'static str,
) -> Result<T, StoreError> {
    let v = table
        .get(hash.as_bytes().as_slice())?
        .ok_or_else(|| StoreError::Missing(format!("{what} of block {hash}")))?;
    decode_from_slice(v.value()).map_err(corrupt(what))
}

/// Most connected blocks whose coins may wait in memory: a read looks through every layer
/// before the table, and a crash replays them.
pub const MAX_LAYERS: usize = 16;
/// Most coin changes that may wait in memory (about 150 bytes each).
pub const MAX_UNWRITTEN_COINS: usize = 250_000;

/// One connected block's coin changes: `None` for a coin it spent, the coin for one it
/// created.
#[derive(Debug)]
struct CoinLayer {
    block: BlockHash,
    coins: HashMap<OutPoint, Option<Coin>>,
}

impl CoinLayer {
    fn new(block: BlockHash, spent: Vec<(OutPoint, Coin)>, created: Vec<(OutPoint, Coin)>) -> Self {
        let mut coins = HashMap::with_capacity(spent.len() + created.len());
        coins.extend(spent.into_iter().map(|(op, _)| (op, None)));
        coins.extend(created.into_iter().map(|(op, c)| (op, Some(c))));
        Self { block, coins }
    }
}

/// Coin changes of connected blocks not yet in the `utxo` table, oldest first.
type Unwritten = Vec<Arc<CoinLayer>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state changes only after the store transaction it mirrors commits.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A prepared write transaction: [`PendingWrite::commit`] makes it durable, dropping or
/// [`PendingWrite::abort`] discards it.
#[must_use]
pub struct PendingWrite<'s> {
    txn: WriteTransaction,
    store: &'s Store,
    /// The block's coin changes, which join the store's unwritten layers on commit.
    layer: CoinLayer,
}

impl std::fmt::Debug for PendingWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingWrite")
    }
}

impl PendingWrite<'_> {
    pub fn commit(self) -> Result<(), StoreError> {
        let store = self.store;
        let full = {
            // Under the lock, so that a snapshot sees the commit and its layer together.
            let mut unwritten = lock(&store.unwritten);
            self.txn.commit()?;
            unwritten.push(Arc::new(self.layer));
            let coins: usize = unwritten.iter().map(|l| l.coins.len()).sum();
            unwritten.len() >= MAX_LAYERS || coins >= MAX_UNWRITTEN_COINS
        };
        if full {
            // The block is connected either way; a failed write is retried by the next one.
            if let Err(e) = store.write_coins() {
                tracing::error!("writing the UTXO set: {e}");
            }
        }
        Ok(())
    }

    pub fn abort(self) -> Result<(), StoreError> {
        self.txn.abort()?;
        Ok(())
    }
}

/// Turns deferred durability off when dropped; see [`Store::deferring`].
#[derive(Debug)]
pub struct DeferGuard<'s>(&'s Store);

impl Drop for DeferGuard<'_> {
    fn drop(&mut self) {
        self.0.defer_durability(false);
    }
}

/// The redb database.
#[derive(Debug)]
pub struct Store {
    db: Database,
    /// Commits are made durable later, by [`Store::flush`] (see [`Store::deferring`]).
    deferred: AtomicBool,
    /// Coin changes of connected blocks not yet in the `utxo` table.
    unwritten: Mutex<Unwritten>,
    /// Blocks whose coin changes the last open replayed (0 after a clean stop).
    replayed: u32,
}

fn begin_write(db: &Database, deferred: bool) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(if deferred {
        Durability::None
    } else {
        Durability::Immediate
    })?;
    txn.set_two_phase_commit(true);
    txn.set_quick_repair(true);
    Ok(txn)
}

impl Store {
    /// Opens (or creates) the store at `path` with a page cache of at most `cache_bytes`,
    /// and makes sure every table exists.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
        let txn = begin_write(&db, false)?;
        for def in [
            HEADERS, BLOCKS, UNDO, ACTIVE, UTXO, JOBS, TXINDEX, ADDRINDEX,
        ] {
            txn.open_table(def)?;
        }
        {
            let mut meta = txn.open_table(META)?;
            if meta.get(UTXO_TIP_KEY)?.is_none() {
                // A new store (nothing connected yet: zeros, genesis's parent), or one whose
                // table was written with every block.
                let reflects = read_hash(meta.get(TIP_KEY)?)?.unwrap_or(BlockHash::ZERO);
                meta.insert(UTXO_TIP_KEY, reflects.as_bytes().as_slice())?;
            }
        }
        txn.commit()?;
        let mut store = Self {
            db,
            deferred: AtomicBool::new(false),
            unwritten: Mutex::new(Unwritten::default()),
            replayed: 0,
        };
        store.replayed = store.replay_coins()?;
        Ok(store)
    }

    /// How many blocks' coin changes opening the store replayed: 0 unless the last run
    /// stopped without writing them (a crash).
    pub fn replayed_at_open(&self) -> u32 {
        self.replayed
    }

    /// Brings the `utxo` table from `utxo_tip` up to `tip` after an unclean shutdown, from
    /// the undo records of the active blocks between them (each holds its block's coin
    /// changes), in one transaction. Returns the number of blocks replayed.
    fn replay_coins(&self) -> Result<u32, StoreError> {
        let txn = begin_write(&self.db, false)?;
        let replayed;
        {
            let mut meta = txn.open_table(META)?;
            let Some(tip) = read_hash(meta.get(TIP_KEY)?)? else {
                return Ok(0);
            };
            let reflects = read_hash(meta.get(UTXO_TIP_KEY)?)?.unwrap_or(BlockHash::ZERO);
            if reflects == tip {
                return Ok(0);
            }
            let headers = txn.open_table(HEADERS)?;
            let active = txn.open_table(ACTIVE)?;
            let undo = txn.open_table(UNDO)?;
            let height_of = |hash: &BlockHash| -> Result<u32, StoreError> {
                let entry: IndexEntry = read_record(&headers, hash, "header index entry")?;
                Ok(entry.height)
            };
            let from = if reflects == BlockHash::ZERO {
                0
            } else {
                let h = height_of(&reflects)?;
                if read_hash(active.get(height_key(h).as_slice())?)? != Some(reflects) {
                    return Err(StoreError::Missing(format!(
                        "UTXO set's block {reflects} on the active chain"
                    )));
                }
                h.saturating_add(1)
            };
            let to = height_of(&tip)?;
            replayed = to.saturating_add(1).saturating_sub(from);
            tracing::info!("replaying the coin changes of {replayed} blocks into the UTXO set");
            for height in from..=to {
                let hash = read_hash(active.get(height_key(height).as_slice())?)?
                    .ok_or_else(|| StoreError::Missing(format!("active block at {height}")))?;
                let record: Undo = read_record(&undo, &hash, "undo record")?;
                apply_coins(&txn, &record.spent, &record.created)?;
            }
            meta.insert(UTXO_TIP_KEY, tip.as_bytes().as_slice())?;
        }
        txn.commit()?;
        Ok(replayed)
    }

    /// Writes the coin changes of connected blocks held in memory to the `utxo` table, in
    /// one transaction (made durable by the next durable commit: a crash before it replays
    /// them from the undo records). Readers see the same coins before and after.
    pub fn write_coins(&self) -> Result<(), StoreError> {
        if self.unwritten_blocks() == 0 {
            return Ok(());
        }
        // Holding the write transaction, nothing else adds or removes layers (a connect's
        // layer arrives as its transaction commits; another writer of coins waits here).
        let txn = begin_write(&self.db, true)?;
        let layers = lock(&self.unwritten).clone();
        let Some(last) = layers.last() else {
            return Ok(());
        };
        // A later block's change to a coin replaces an earlier one's.
        let mut merged: HashMap<&OutPoint, &Option<Coin>> = HashMap::new();
        for layer in &layers {
            merged.extend(layer.coins.iter());
        }
        let mut removed: Vec<[u8; 36]> = Vec::new();
        let mut added: Vec<([u8; 36], Vec<u8>)> = Vec::new();
        for (op, coin) in merged {
            let key = outpoint_key(op);
            match coin {
                None => removed.push(key),
                Some(c) => added.push((key, encode_to_vec(c))),
            }
        }
        write_utxo(&txn, removed, added)?;
        txn.open_table(META)?
            .insert(UTXO_TIP_KEY, last.block.as_bytes().as_slice())?;
        let mut unwritten = lock(&self.unwritten);
        txn.commit()?;
        unwritten.clear();
        Ok(())
    }

    /// Connected blocks whose coin changes are still in memory only.
    pub fn unwritten_blocks(&self) -> usize {
        lock(&self.unwritten).len()
    }

    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        begin_write(&self.db, self.deferred.load(Ordering::Relaxed))
    }

    /// While on, commits skip the disk sync: each is still atomic, and a crash returns the
    /// store to the last durable commit, losing the deferred ones together. The chain
    /// manager turns it on for a batch of blocks received from peers (which sync would fetch
    /// again) and calls [`Store::flush`] at the batch's end, so a sync pays one disk sync per
    /// batch rather than one per block.
    fn defer_durability(&self, on: bool) {
        self.deferred.store(on, Ordering::Relaxed);
    }

    /// Defers durability until the returned guard is dropped (even by a panic), so that no
    /// later caller's commits are deferred by mistake.
    pub fn deferring(&self) -> DeferGuard<'_> {
        self.defer_durability(true);
        DeferGuard(self)
    }

    /// Makes every earlier commit durable (an empty commit with immediate durability).
    pub fn flush(&self) -> Result<(), StoreError> {
        let txn = begin_write(&self.db, false)?;
        txn.commit()?;
        Ok(())
    }

    /// Every header index entry (loaded once at start into memory).
    pub fn load_index(&self) -> Result<Vec<(BlockHash, IndexEntry)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HEADERS)?;
        let mut out = Vec::with_capacity(usize::try_from(table.len()?).unwrap_or(0));
        for item in table.iter()? {
            let (k, v) = item?;
            let hash: BlockHash = decode_from_slice(k.value()).map_err(corrupt("block hash"))?;
            let entry: IndexEntry =
                decode_from_slice(v.value()).map_err(corrupt("header index entry"))?;
            out.push((hash, entry));
        }
        Ok(out)
    }

    /// The active chain's tip, `None` for a fresh store.
    pub fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        match meta.get(TIP_KEY)? {
            Some(v) => Ok(Some(
                decode_from_slice(v.value()).map_err(corrupt("tip hash"))?,
            )),
            None => Ok(None),
        }
    }

    /// Hashes of the active chain by height, genesis first.
    pub fn active_chain(&self) -> Result<Vec<BlockHash>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACTIVE)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (_, v) = item?;
            out.push(decode_from_slice(v.value()).map_err(corrupt("block hash"))?);
        }
        Ok(out)
    }

    /// Stores a received block and its index entry (not connected).
    pub fn put_block(
        &self,
        hash: &BlockHash,
        entry: &IndexEntry,
        block: &Block,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            txn.open_table(HEADERS)?
                .insert(hash.as_bytes().as_slice(), encode_to_vec(entry).as_slice())?;
            txn.open_table(BLOCKS)?
                .insert(hash.as_bytes().as_slice(), encode_to_vec(block).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Writes index entries (status changes), all in one transaction.
    pub fn put_entries(&self, entries: &[(BlockHash, IndexEntry)]) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut headers = txn.open_table(HEADERS)?;
            for (hash, entry) in entries {
                headers.insert(hash.as_bytes().as_slice(), encode_to_vec(entry).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// A stored block body.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        match table.get(hash.as_bytes().as_slice())? {
            Some(v) => Ok(Some(
                decode_from_slice(v.value()).map_err(corrupt("block"))?,
            )),
            None => Ok(None),
        }
    }

    /// The encoded block body.
    pub fn block_bytes(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        Ok(table
            .get(hash.as_bytes().as_slice())?
            .map(|v| v.value().to_vec()))
    }

    /// Connects `block` (already validated, with the `changes` its validation produced) on
    /// top of the active chain: one transaction writes the job records, undo data (with the
    /// block's coin changes), the entry's status and the tip, and stores the block itself
    /// when `store_body` (a block that extends the tip as it arrives is written once); the
    /// coin changes join the unwritten layers as it commits.
    pub fn connect_block(
        &self,
        hash: &BlockHash,
        entry: &IndexEntry,
        block: &Block,
        changes: BlockChanges,
        store_body: bool,
    ) -> Result<(), StoreError> {
        self.prepare_connect(hash, entry, block, changes, store_body)?
            .commit()
    }

    /// [`Store::connect_block`]'s write transaction, ready to commit: the caller checks the
    /// block's scripts meanwhile and commits or aborts.
    pub fn prepare_connect(
        &self,
        hash: &BlockHash,
        entry: &IndexEntry,
        block: &Block,
        changes: BlockChanges,
        store_body: bool,
    ) -> Result<PendingWrite<'_>, StoreError> {
        let txn = self.begin_write()?;
        {
            if store_body {
                txn.open_table(BLOCKS)?
                    .insert(hash.as_bytes().as_slice(), encode_to_vec(block).as_slice())?;
            }
            let mut jobs = txn.open_table(JOBS)?;
            for (id, record) in &changes.jobs_created {
                jobs.insert(id.as_bytes().as_slice(), encode_to_vec(record).as_slice())?;
            }
            for (id, _, new) in &changes.jobs_updated {
                jobs.insert(id.as_bytes().as_slice(), encode_to_vec(new).as_slice())?;
            }
            txn.open_table(UNDO)?.insert(
                hash.as_bytes().as_slice(),
                Undo::encode_changes(&changes).as_slice(),
            )?;
            txn.open_table(ACTIVE)?.insert(
                height_key(entry.height).as_slice(),
                hash.as_bytes().as_slice(),
            )?;
            txn.open_table(HEADERS)?
                .insert(hash.as_bytes().as_slice(), encode_to_vec(entry).as_slice())?;
            txn.open_table(META)?
                .insert(TIP_KEY, hash.as_bytes().as_slice())?;
        }
        Ok(PendingWrite {
            txn,
            store: self,
            layer: CoinLayer::new(*hash, changes.spent, changes.created),
        })
    }

    /// Disconnects the tip `block` (at `height`), restoring from its undo record (which is
    /// kept: the indexer undoes the block's index entries from it); the new tip is its
    /// parent. The coins in memory are written first, so the table reflects the tip and then
    /// its parent. Returns the undo record applied.
    pub fn disconnect_block(
        &self,
        hash: &BlockHash,
        height: u32,
        block: &Block,
    ) -> Result<Undo, StoreError> {
        self.write_coins()?;
        let txn = self.begin_write()?;
        if self.unwritten_blocks() != 0 {
            return Err(StoreError::Missing(
                "the UTXO table's coins before a disconnect (a block connected meanwhile)".into(),
            ));
        }
        let undo: Undo = {
            let table = txn.open_table(UNDO)?;
            let v = table
                .get(hash.as_bytes().as_slice())?
                .ok_or_else(|| StoreError::Missing(format!("undo data of block {hash}")))?;
            decode_from_slice(v.value()).map_err(corrupt("undo record"))?
        };
        {
            apply_coins(&txn, &undo.created, &undo.spent)?;
            let mut jobs = txn.open_table(JOBS)?;
            for id in &undo.jobs_created {
                jobs.remove(id.as_bytes().as_slice())?;
            }
            for (id, old) in &undo.jobs_updated {
                jobs.insert(id.as_bytes().as_slice(), encode_to_vec(old).as_slice())?;
            }
            txn.open_table(ACTIVE)?
                .remove(height_key(height).as_slice())?;
            let parent = block.header.prev_blockhash;
            let mut meta = txn.open_table(META)?;
            meta.insert(TIP_KEY, parent.as_bytes().as_slice())?;
            meta.insert(UTXO_TIP_KEY, parent.as_bytes().as_slice())?;
        }
        txn.commit()?;
        Ok(undo)
    }

    /// A read snapshot: UTXO and job lookups, indexes.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        // The read and the layers are taken under the lock that commits and layer changes
        // hold, so they show the same blocks.
        let (txn, layers) = {
            let unwritten = lock(&self.unwritten);
            (self.db.begin_read()?, unwritten.clone())
        };
        Ok(Snapshot {
            utxo: txn.open_table(UTXO)?,
            jobs: txn.open_table(JOBS)?,
            txn,
            layers,
            error: RefCell::new(None),
        })
    }

    /// Hash, count and total of the UTXO set at the tip ([`Snapshot::utxo_stats`]).
    pub fn utxo_stats(&self) -> Result<UtxoStats, StoreError> {
        self.snapshot()?.utxo_stats()
    }
}

impl Store {
    /// Moves the transaction and address indexes up to `max_blocks` blocks towards the tip
    /// in one write transaction: blocks the indexes reflect that left the active chain are
    /// taken out (newest first, from their undo records), then active blocks are added in
    /// order. The new `index_tip` is written in the same transaction, which is not synced
    /// to disk on its own (a later chain commit makes it durable; after a crash the indexer
    /// resumes from the last durable `index_tip`).
    pub fn index_step(&self, max_blocks: usize) -> Result<IndexProgress, StoreError> {
        let txn = begin_write(&self.db, true)?;
        let progress = {
            let mut meta = txn.open_table(META)?;
            let headers = txn.open_table(HEADERS)?;
            let active = txn.open_table(ACTIVE)?;
            let undo = txn.open_table(UNDO)?;
            let blocks = txn.open_table(BLOCKS)?;
            let mut txindex = txn.open_table(TXINDEX)?;
            let mut addr = txn.open_table(ADDRINDEX)?;
            let Some(tip) = read_hash(meta.get(TIP_KEY)?)? else {
                return Ok(IndexProgress::CaughtUp);
            };
            let mut itip = read_hash(meta.get(INDEX_TIP_KEY)?)?;
            let load = |hash: &BlockHash| -> Result<(Block, Undo), StoreError> {
                let key = hash.as_bytes().as_slice();
                let block = blocks
                    .get(key)?
                    .ok_or_else(|| StoreError::Missing(format!("block {hash}")))?;
                let record = undo
                    .get(key)?
                    .ok_or_else(|| StoreError::Missing(format!("undo data of block {hash}")))?;
                Ok((
                    decode_from_slice(block.value()).map_err(corrupt("block"))?,
                    decode_from_slice(record.value()).map_err(corrupt("undo record"))?,
                ))
            };
            let mut progress = IndexProgress::Behind;
            for _ in 0..max_blocks.max(1) {
                if itip == Some(tip) {
                    progress = IndexProgress::CaughtUp;
                    break;
                }
                let next_height = match itip {
                    None => 0,
                    Some(h) => {
                        let entry: IndexEntry = read_record(&headers, &h, "header index entry")?;
                        let on_chain = read_hash(active.get(height_key(entry.height).as_slice())?)?;
                        if on_chain != Some(h) {
                            let (block, record) = load(&h)?;
                            for tx in &block.txdata {
                                txindex.remove(tx.txid().as_bytes().as_slice())?;
                            }
                            apply_addr(&mut addr, &record.created, &record.spent)?;
                            itip = (entry.height > 0).then_some(block.header.prev_blockhash);
                            continue;
                        }
                        entry.height.saturating_add(1)
                    }
                };
                let Some(next) = read_hash(active.get(height_key(next_height).as_slice())?)? else {
                    return Err(StoreError::Missing(format!(
                        "active block at height {next_height} below the tip {tip}"
                    )));
                };
                let (block, record) = load(&next)?;
                let mut locations: Vec<([u8; 32], [u8; 36])> = block
                    .txdata
                    .iter()
                    .enumerate()
                    .map(|(pos, tx)| {
                        let mut loc = [0u8; 36];
                        loc[..32].copy_from_slice(next.as_bytes());
                        loc[32..]
                            .copy_from_slice(&u32::try_from(pos).unwrap_or(u32::MAX).to_le_bytes());
                        (tx.txid().to_byte_array(), loc)
                    })
                    .collect();
                locations.sort_unstable();
                for (txid, loc) in &locations {
                    txindex.insert(txid.as_slice(), loc.as_slice())?;
                }
                apply_addr(&mut addr, &record.spent, &record.created)?;
                itip = Some(next);
            }
            if let Some(h) = itip {
                meta.insert(INDEX_TIP_KEY, h.as_bytes().as_slice())?;
            }
            if itip == Some(tip) {
                IndexProgress::CaughtUp
            } else {
                progress
            }
        };
        txn.commit()?;
        Ok(progress)
    }

    /// Whether the address index holds exactly the UTXO set's outputs (for tests and
    /// checks; meaningful when the indexes have caught up with the tip).
    pub fn address_index_matches_utxo_set(&self) -> Result<bool, StoreError> {
        let snap = self.snapshot()?;
        let mut expected = Vec::new();
        snap.for_each_coin(|op, coin| {
            expected.push(addr_key(&coin.output.script_pubkey, op));
            Ok(())
        })?;
        expected.sort_unstable();
        let addr = snap.txn.open_table(ADDRINDEX)?;
        let mut found = Vec::new();
        for item in addr.iter()? {
            found.push(item?.0.value().to_vec());
        }
        Ok(found == expected)
    }
}

/// A consistent read view of the store. As a [`UtxoView`] and [`JobView`] it answers
/// `None` for a failed read and remembers the first failure: callers check
/// [`Snapshot::take_error`] before trusting a "missing input" verdict.
#[derive(Debug)]
pub struct Snapshot {
    txn: ReadTransaction,
    /// Opened once: a block's validation looks up thousands of coins.
    utxo: ReadOnlyTable<&'static [u8], &'static [u8]>,
    jobs: ReadOnlyTable<&'static [u8], &'static [u8]>,
    /// Coin changes not in `utxo` as of this snapshot, oldest first.
    layers: Vec<Arc<CoinLayer>>,
    error: RefCell<Option<StoreError>>,
}

impl Snapshot {
    /// The first storage error any view lookup hit.
    pub fn take_error(&self) -> Option<StoreError> {
        self.error.borrow_mut().take()
    }

    fn note<T>(&self, r: Result<Option<T>, StoreError>) -> Option<T> {
        match r {
            Ok(v) => v,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                None
            }
        }
    }

    pub fn try_coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        for layer in self.layers.iter().rev() {
            if let Some(change) = layer.coins.get(outpoint) {
                return Ok(change.clone());
            }
        }
        match self.utxo.get(outpoint_key(outpoint).as_slice())? {
            Some(v) => Ok(Some(decode_from_slice(v.value()).map_err(corrupt("coin"))?)),
            None => Ok(None),
        }
    }

    /// Every coin of the UTXO set as of this snapshot, in key order (the consensus order of
    /// the UTXO-set hash): the table's entries merged with the layers in memory, newest
    /// change winning.
    pub fn for_each_coin(
        &self,
        mut f: impl FnMut(&OutPoint, &Coin) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // Spent coins (`None`) are left out; created ones are passed on.
        let mut changes: BTreeMap<[u8; 36], (&OutPoint, Option<&Coin>)> = BTreeMap::new();
        for layer in &self.layers {
            for (op, coin) in &layer.coins {
                changes.insert(outpoint_key(op), (op, coin.as_ref()));
            }
        }
        let mut changes = changes.into_iter().peekable();
        for item in self.utxo.iter()? {
            let (k, v) = item?;
            let key = k.value();
            // Coins created in memory that sort before this entry.
            while let Some((_, (op, coin))) = changes.next_if(|(ck, _)| ck.as_slice() < key) {
                if let Some(coin) = coin {
                    f(op, coin)?;
                }
            }
            // An entry changed in memory (spent, or replaced) gives way to the change.
            if let Some((_, (op, coin))) = changes.next_if(|(ck, _)| ck.as_slice() == key) {
                if let Some(coin) = coin {
                    f(op, coin)?;
                }
                continue;
            }
            let op: OutPoint = decode_from_slice(key).map_err(corrupt("outpoint"))?;
            let coin: Coin = decode_from_slice(v.value()).map_err(corrupt("coin"))?;
            f(&op, &coin)?;
        }
        for (_, (op, coin)) in changes {
            if let Some(coin) = coin {
                f(op, coin)?;
            }
        }
        Ok(())
    }

    /// Hash, count and total of the UTXO set as of this snapshot, streamed in key order. It
    /// reads the snapshot only: no lock is held while it runs.
    pub fn utxo_stats(&self) -> Result<UtxoStats, StoreError> {
        let mut hasher = UtxoSetHasher::new();
        let mut total = 0u64;
        self.for_each_coin(|op, coin| {
            total = total.saturating_add(coin.output.value.to_base());
            hasher
                .add(op, coin)
                .map_err(|_| corrupt("utxo table order")(DecodeError::Invalid("key order")))
        })?;
        Ok(UtxoStats {
            coins: hasher.count(),
            hash: hasher.finish(),
            total,
        })
    }

    pub fn try_job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        match self.jobs.get(id.as_bytes().as_slice())? {
            Some(v) => Ok(Some(
                decode_from_slice(v.value()).map_err(corrupt("job record"))?,
            )),
            None => Ok(None),
        }
    }

    /// The tip and the block the indexes reflect, as of this snapshot.
    pub fn tips(&self) -> Result<(Option<BlockHash>, Option<BlockHash>), StoreError> {
        let meta = self.txn.open_table(META)?;
        Ok((
            read_hash(meta.get(TIP_KEY)?)?,
            read_hash(meta.get(INDEX_TIP_KEY)?)?,
        ))
    }

    /// Where an active-chain transaction is: its block and position.
    pub fn tx_location(&self, txid: &Txid) -> Result<Option<(BlockHash, u32)>, StoreError> {
        let table = self.txn.open_table(TXINDEX)?;
        match table.get(txid.as_bytes().as_slice())? {
            Some(v) => {
                let mut r = Reader::new(v.value());
                let hash = BlockHash::decode(&mut r).map_err(corrupt("tx index"))?;
                let pos = r.read_u32().map_err(corrupt("tx index"))?;
                Ok(Some((hash, pos)))
            }
            None => Ok(None),
        }
    }

    /// The active chain's block at `height`.
    pub fn hash_at(&self, height: u32) -> Result<Option<BlockHash>, StoreError> {
        let table = self.txn.open_table(ACTIVE)?;
        match table.get(height_key(height).as_slice())? {
            Some(v) => Ok(Some(
                decode_from_slice(v.value()).map_err(corrupt("block hash"))?,
            )),
            None => Ok(None),
        }
    }

    /// Unspent outputs locked by `script`, at most `limit` of them, in outpoint order.
    pub fn coins_of_script(
        &self,
        script: &Script,
        limit: usize,
    ) -> Result<Vec<(OutPoint, Coin)>, StoreError> {
        let prefix = script_hash(script);
        let mut lo = prefix.to_vec();
        lo.extend_from_slice(&[0u8; 36]);
        let mut hi = prefix.to_vec();
        hi.extend_from_slice(&[0xffu8; 36]);
        let index = self.txn.open_table(ADDRINDEX)?;
        let mut out = Vec::new();
        for item in index.range(lo.as_slice()..=hi.as_slice())? {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            let op_bytes = k.value().get(32..).unwrap_or_default();
            let op: OutPoint = decode_from_slice(op_bytes).map_err(corrupt("address index"))?;
            // An index behind the tip may still list a coin the tip has spent.
            if let Some(coin) = self.try_coin(&op)? {
                out.push((op, coin));
            }
        }
        Ok(out)
    }
}

impl UtxoView for Snapshot {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        self.note(self.try_coin(outpoint))
    }
}

impl JobView for Snapshot {
    fn job(&self, id: &JobId) -> Option<JobRecord> {
        self.note(self.try_job(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The undo record written from a block's changes is the `Undo` that decodes back to the
    /// same lists.
    #[test]
    fn undo_written_from_changes_decodes_to_the_same_lists() {
        use camel_core::Amount;
        use camel_core::transaction::TxOut;
        let op = |b: u8, vout: u32| OutPoint::new(Txid::from_byte_array([b; 32]), vout);
        let coin = |v: u64, height: u32| Coin {
            output: TxOut {
                value: Amount::from_base(v).unwrap(),
                script_pubkey: Script::new(vec![0x51, v as u8]),
            },
            height,
            is_coinbase: height.is_multiple_of(2),
        };
        let job = |b: u8| JobId::from_byte_array([b; 32]);
        let record = |h: u32| JobRecord::new(h, op(9, h));
        let changes = BlockChanges {
            spent: vec![(op(1, 0), coin(5, 3)), (op(2, 7), coin(6, 4))],
            created: vec![(op(3, 1), coin(7, 10))],
            jobs_created: vec![(job(4), record(10))],
            jobs_updated: vec![
                (job(5), record(2), record(3)),
                (job(6), record(4), record(5)),
            ],
            fees: Amount::ZERO,
        };
        let bytes = Undo::encode_changes(&changes);
        let undo: Undo = decode_from_slice(&bytes).unwrap();
        assert_eq!(undo.spent, changes.spent);
        assert_eq!(undo.created, changes.created);
        assert_eq!(undo.jobs_created, vec![job(4)]);
        assert_eq!(
            undo.jobs_updated,
            vec![(job(5), record(2)), (job(6), record(4))]
        );
        assert_eq!(encode_to_vec(&undo), bytes);
    }

    /// The table's key is the outpoint's consensus encoding, which orders the UTXO-set hash.
    #[test]
    fn outpoint_key_is_the_consensus_encoding() {
        let mut txid = [0u8; 32];
        for (i, b) in txid.iter_mut().enumerate() {
            *b = i as u8 ^ 0xa5;
        }
        for vout in [0, 1, 255, 256, 0x0102_0304, u32::MAX] {
            let op = OutPoint::new(Txid::from_byte_array(txid), vout);
            assert_eq!(outpoint_key(&op).to_vec(), encode_to_vec(&op));
        }
    }
}
