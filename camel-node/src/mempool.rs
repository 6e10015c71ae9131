//! The memory pool of unconfirmed transactions, and block templates built from it.
//!
//! Policy (what this node relays and mines; consensus allows more):
//! - **standard only**: every output script is one of the standard templates
//!   ([`templates::classify`]); at most [`MAX_STANDARD_TX_SIZE`] bytes; no coinbase.
//! - **minimum fee rate**: [`Policy::min_fee_rate`] base units per byte of the encoded
//!   transaction (default [`DEFAULT_MIN_FEE_RATE`] = 1), reason `min-relay-fee-not-met`.
//! - **limits**: at most [`Policy::max_count`] transactions and [`Policy::max_bytes`] bytes;
//!   when full, the transaction with the lowest fee rate is evicted with its descendants,
//!   and a newcomer that would itself be the lowest is refused (`mempool-full`).
//! - **no double spends** inside the pool. **Replacement** (full RBF, no signalling needed):
//!   a transaction that spends an outpoint a pool transaction already spends replaces the
//!   conflicting transactions and their descendants if its absolute fee exceeds theirs in
//!   total by at least the minimum fee rate times its own size, and its fee rate exceeds
//!   each directly conflicting transaction's; otherwise `insufficient-fee`. At most
//!   [`MAX_REPLACED`] transactions are evicted by one replacement (`too-many-replacements`).
//! - **consensus in context**: inputs, amounts, maturity, lock time and the job rules by
//!   `check_tx_inputs` at the next block's height, and every input's script.
//!
//! When a block connects, its transactions and everything conflicting with them leave the
//! pool. When blocks are disconnected (a reorganisation), their transactions return: the
//! pool is rebuilt from them and its former contents against the new tip.
//!
//! Templates take transactions by fee rate, a transaction only after its in-pool parents
//! (so a child never precedes its parent), re-checking each with `check_tx_inputs` at the
//! template's height: a job payment before its delay height stays in the pool.

use std::collections::{BTreeSet, HashMap, HashSet};

use camel_core::Amount;
use camel_core::contextual::{TxScriptChecks, check_tx_inputs};
use camel_core::encode::Encodable;
use camel_core::hash::Txid;
use camel_core::interpreter::FraudProofOracle;
use camel_core::job::rules::{JobRecord, JobView};
use camel_core::templates;
use camel_core::transaction::{OutPoint, Transaction, TxOut};
use camel_core::utxo::{Coin, UtxoView};
use camel_core::validation::check_transaction;

use crate::chain::{Chain, TipChange};
use crate::store::{Snapshot, StoreError};

/// Largest transaction relayed.
pub const MAX_STANDARD_TX_SIZE: usize = 100_000;
/// Base units per byte.
pub const DEFAULT_MIN_FEE_RATE: u64 = 1;
/// Most transactions one replacement may evict.
pub const MAX_REPLACED: usize = 100;

/// Pool limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Base units per encoded byte.
    pub min_fee_rate: u64,
    pub max_count: usize,
    pub max_bytes: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_fee_rate: DEFAULT_MIN_FEE_RATE,
            max_count: 50_000,
            max_bytes: 100_000_000,
        }
    }
}

/// Why a transaction was refused.
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    /// A policy or consensus rule; `reason` is the code the API returns.
    #[error("{reason}: {message}")]
    Rejected { reason: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MempoolError {
    fn rejected(reason: &str, message: impl ToString) -> Self {
        Self::Rejected {
            reason: reason.to_owned(),
            message: message.to_string(),
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Rejected { reason, .. } => Some(reason),
            Self::Store(_) => None,
        }
    }
}

/// A pooled transaction.
#[derive(Debug, Clone)]
pub struct Entry {
    pub tx: Transaction,
    pub txid: Txid,
    pub fee: Amount,
    pub size: usize,
    /// Arrival order.
    pub seq: u64,
    /// In-pool transactions this one spends from.
    pub parents: HashSet<Txid>,
    /// In-pool transactions spending from this one.
    pub children: HashSet<Txid>,
}

/// Sort key "lower fee rate first, then newer first": (fee, size, seq) compared by rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RateKey {
    fee: u64,
    size: u64,
    seq: u64,
    txid: Txid,
}

impl Ord for RateKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // fee/size vs other.fee/other.size, exactly.
        let a = u128::from(self.fee) * u128::from(other.size);
        let b = u128::from(other.fee) * u128::from(self.size);
        a.cmp(&b)
            .then(other.seq.cmp(&self.seq))
            .then(self.txid.cmp(&other.txid))
    }
}

impl PartialOrd for RateKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Entry {
    fn rate_key(&self) -> RateKey {
        RateKey {
            fee: self.fee.to_base(),
            size: self.size as u64,
            seq: self.seq,
            txid: self.txid,
        }
    }
}

/// Chain coins overlaid with the pool: pool outputs are visible (at the next height, not
/// coinbase) and outpoints spent by pool transactions are not.
struct PoolView<'a> {
    chain: &'a Snapshot,
    pool: &'a Mempool,
    height: u32,
    /// Outpoints the transaction under test may spend although a pool transaction does
    /// (those it replaces).
    replacing: &'a HashSet<Txid>,
}

impl UtxoView for PoolView<'_> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        if let Some(spender) = self.pool.spends.get(outpoint)
            && !self.replacing.contains(spender)
        {
            return None;
        }
        if let Some(e) = self.pool.entries.get(&outpoint.txid) {
            if self.replacing.contains(&outpoint.txid) {
                return None;
            }
            let output = e.tx.outputs.get(usize::try_from(outpoint.vout).ok()?)?;
            return Some(Coin {
                output: output.clone(),
                height: self.height,
                is_coinbase: false,
            });
        }
        self.chain.coin(outpoint)
    }
}

impl JobView for PoolView<'_> {
    fn job(&self, id: &camel_core::hash::JobId) -> Option<JobRecord> {
        self.chain.job(id)
    }
}

/// The memory pool.
#[derive(Debug, Default)]
pub struct Mempool {
    policy: Policy,
    entries: HashMap<Txid, Entry>,
    spends: HashMap<OutPoint, Txid>,
    by_rate: BTreeSet<RateKey>,
    bytes: usize,
    seq: u64,
}

/// A block's worth of pool transactions.
#[derive(Debug, Clone)]
pub struct Template {
    pub height: u32,
    pub txs: Vec<Transaction>,
    pub fees: Amount,
}

impl Mempool {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn get(&self, txid: &Txid) -> Option<&Entry> {
        self.entries.get(txid)
    }

    /// Entries, highest fee rate first.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.by_rate
            .iter()
            .rev()
            .filter_map(|k| self.entries.get(&k.txid))
    }

    /// Which pool transaction spends `outpoint`.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spends.get(outpoint).copied()
    }

    /// Validates `tx` against the chain tip and the pool, and adds it.
    pub fn accept(
        &mut self,
        tx: Transaction,
        chain: &Chain,
        oracle: &dyn FraudProofOracle,
    ) -> Result<Txid, MempoolError> {
        let txid = tx.txid();
        if self.entries.contains_key(&txid) {
            return Err(MempoolError::rejected(
                "txn-already-in-mempool",
                format!("{txid} is already in the pool"),
            ));
        }
        check_transaction(&tx).map_err(|e| MempoolError::rejected(e.reason(), &e))?;
        if tx.is_coinbase() {
            return Err(MempoolError::rejected(
                "coinbase",
                "a coinbase is only valid in a block",
            ));
        }
        let size = tx.encoded_len();
        if size > MAX_STANDARD_TX_SIZE {
            return Err(MempoolError::rejected(
                "tx-size",
                format!("{size} bytes exceeds the relay limit of {MAX_STANDARD_TX_SIZE}"),
            ));
        }
        if let Some(i) = tx
            .outputs
            .iter()
            .position(|o| templates::classify(&o.script_pubkey).is_none())
        {
            return Err(MempoolError::rejected(
                "scriptpubkey",
                format!("output {i} has a non-standard script"),
            ));
        }
        let snapshot = chain.store().snapshot()?;
        // Known to the chain if one of its outputs is unspent there (the UTXO set is exact at
        // the tip, while the transaction index may trail it by a block being indexed).
        let mut in_chain = false;
        for vout in 0..u32::try_from(tx.outputs.len()).unwrap_or(u32::MAX) {
            if snapshot.try_coin(&OutPoint::new(txid, vout))?.is_some() {
                in_chain = true;
                break;
            }
        }
        if in_chain {
            return Err(MempoolError::rejected(
                "txn-already-known",
                format!("{txid} is already in the chain"),
            ));
        }
        // A claim reveals the delivery key. While the payment it spends is unconfirmed, the
        // client could read the key from the pool and replace its payment (full RBF): refuse
        // such claims, so that no node relays a key before the payment is mined
        // (docs/protocol.md §13.7, claim depth).
        for (i, input) in tx.inputs.iter().enumerate() {
            let parent_out = self
                .entries
                .get(&input.prev_out.txid)
                .and_then(|e| e.tx.outputs.get(input.prev_out.vout as usize));
            if let Some(out) = parent_out
                && matches!(
                    templates::classify_job(&out.script_pubkey),
                    Some(templates::Template::Payment(_))
                )
                && camel_core::job::rules::selects_first_branch(&input.script_sig) == Some(true)
            {
                return Err(MempoolError::rejected(
                    "claim-unconfirmed-payment",
                    format!(
                        "input {i} claims a payment that is not mined yet; claim once it is confirmed"
                    ),
                ));
            }
        }
        // Conflicts: pool transactions spending the same outpoints.
        let direct: HashSet<Txid> = tx
            .inputs
            .iter()
            .filter_map(|i| self.spends.get(&i.prev_out).copied())
            .collect();
        let mut replaced = HashSet::new();
        for c in &direct {
            self.collect_descendants(c, &mut replaced);
        }
        if replaced.len() > MAX_REPLACED {
            return Err(MempoolError::rejected(
                "too-many-replacements",
                format!(
                    "replacing would evict {} transactions, limit {MAX_REPLACED}",
                    replaced.len()
                ),
            ));
        }
        let height = chain.height().saturating_add(1);
        let view = PoolView {
            chain: &snapshot,
            pool: self,
            height,
            replacing: &replaced,
        };
        let fee = check_tx_inputs(&tx, &view, &view, height, chain.params());
        if let Some(e) = snapshot.take_error() {
            return Err(e.into());
        }
        let fee = fee.map_err(|e| MempoolError::rejected(e.reason(), &e))?;
        let min_fee = self.policy.min_fee_rate.saturating_mul(size as u64);
        if fee.to_base() < min_fee {
            return Err(MempoolError::rejected(
                "min-relay-fee-not-met",
                format!(
                    "fee {} base units is below {min_fee} ({} per byte for {size} bytes)",
                    fee.to_base(),
                    self.policy.min_fee_rate
                ),
            ));
        }
        if !replaced.is_empty() {
            let replaced_fees: u64 = replaced
                .iter()
                .filter_map(|t| self.entries.get(t))
                .map(|e| e.fee.to_base())
                .sum();
            if fee.to_base() < replaced_fees.saturating_add(min_fee) {
                return Err(MempoolError::rejected(
                    "insufficient-fee",
                    format!(
                        "replacement fee {} must be at least the replaced fees {replaced_fees} plus {min_fee}",
                        fee.to_base()
                    ),
                ));
            }
            let new_key = RateKey {
                fee: fee.to_base(),
                size: size as u64,
                seq: u64::MAX,
                txid,
            };
            if let Some(c) = direct
                .iter()
                .filter_map(|t| self.entries.get(t))
                .find(|e| new_key <= e.rate_key())
            {
                return Err(MempoolError::rejected(
                    "insufficient-fee",
                    format!(
                        "replacement fee rate must exceed that of conflicting {}",
                        c.txid
                    ),
                ));
            }
        }
        let spent: Vec<TxOut> = tx
            .inputs
            .iter()
            .map(|i| view.coin(&i.prev_out).map(|c| c.output))
            .collect::<Option<_>>()
            .ok_or_else(|| MempoolError::rejected("missing-inputs", "an input vanished"))?;
        let checks = TxScriptChecks { tx: &tx, spent };
        checks
            .run(oracle)
            .map_err(|e| MempoolError::rejected(e.reason(), &e))?;
        // Room: plan evicting the lowest fee rates (never the newcomer's own ancestors)
        // before changing anything, so a refusal leaves the pool as it was.
        let parents: HashSet<Txid> = tx
            .inputs
            .iter()
            .map(|i| i.prev_out.txid)
            .filter(|t| self.entries.contains_key(t) && !replaced.contains(t))
            .collect();
        let mut ancestors = HashSet::new();
        for p in &parents {
            self.collect_ancestors(p, &mut ancestors);
        }
        let new_key = RateKey {
            fee: fee.to_base(),
            size: size as u64,
            seq: self.seq.saturating_add(1),
            txid,
        };
        let mut removing = replaced;
        let removed_size = |pool: &Self, set: &HashSet<Txid>| -> usize {
            set.iter()
                .filter_map(|t| pool.entries.get(t))
                .map(|e| e.size)
                .sum()
        };
        let mut lowest_first = self.by_rate.iter();
        while self.entries.len().saturating_sub(removing.len()) >= self.policy.max_count
            || self
                .bytes
                .saturating_sub(removed_size(self, &removing))
                .saturating_add(size)
                > self.policy.max_bytes
        {
            let Some(lowest) = lowest_first.find(|k| !removing.contains(&k.txid)) else {
                break;
            };
            if *lowest >= new_key || ancestors.contains(&lowest.txid) {
                return Err(MempoolError::rejected(
                    "mempool-full",
                    "fee rate too low for a full pool",
                ));
            }
            self.collect_descendants(&lowest.txid, &mut removing);
        }
        for t in &removing {
            self.remove_one(t);
        }
        self.seq = self.seq.saturating_add(1);
        for p in &parents {
            if let Some(e) = self.entries.get_mut(p) {
                e.children.insert(txid);
            }
        }
        for i in &tx.inputs {
            self.spends.insert(i.prev_out, txid);
        }
        let entry = Entry {
            tx,
            txid,
            fee,
            size,
            seq: self.seq,
            parents,
            children: HashSet::new(),
        };
        self.by_rate.insert(entry.rate_key());
        self.bytes = self.bytes.saturating_add(size);
        self.entries.insert(txid, entry);
        Ok(txid)
    }

    fn collect_descendants(&self, txid: &Txid, out: &mut HashSet<Txid>) {
        self.collect_linked(txid, out, |e| &e.children);
    }

    fn collect_ancestors(&self, txid: &Txid, out: &mut HashSet<Txid>) {
        self.collect_linked(txid, out, |e| &e.parents);
    }

    /// `txid` and every entry reachable from it through `links`, into `out`.
    fn collect_linked(
        &self,
        txid: &Txid,
        out: &mut HashSet<Txid>,
        links: impl Fn(&Entry) -> &HashSet<Txid>,
    ) {
        let mut stack = vec![*txid];
        while let Some(t) = stack.pop() {
            if out.insert(t)
                && let Some(e) = self.entries.get(&t)
            {
                stack.extend(links(e).iter().copied());
            }
        }
    }

    /// Removes one entry, unlinking it from parents and children.
    fn remove_one(&mut self, txid: &Txid) -> Option<Entry> {
        let e = self.entries.remove(txid)?;
        self.by_rate.remove(&e.rate_key());
        self.bytes = self.bytes.saturating_sub(e.size);
        for i in &e.tx.inputs {
            if self.spends.get(&i.prev_out) == Some(txid) {
                self.spends.remove(&i.prev_out);
            }
        }
        for p in &e.parents {
            if let Some(pe) = self.entries.get_mut(p) {
                pe.children.remove(txid);
            }
        }
        for c in &e.children {
            if let Some(ce) = self.entries.get_mut(c) {
                ce.parents.remove(txid);
            }
        }
        Some(e)
    }

    fn remove_with_descendants(&mut self, txid: &Txid) {
        let mut all = HashSet::new();
        self.collect_descendants(txid, &mut all);
        for t in all {
            self.remove_one(&t);
        }
    }

    /// Follows the chain: removes confirmed and conflicting transactions; after a
    /// reorganisation, returns disconnected transactions to the pool and re-checks the rest
    /// against the new tip.
    pub fn update_for_tip_change(
        &mut self,
        change: &TipChange,
        chain: &Chain,
        oracle: &dyn FraudProofOracle,
    ) -> Result<(), StoreError> {
        if change.disconnected.is_empty() {
            if self.entries.is_empty() {
                // Nothing to take out (and no txids to compute for a large block).
                return Ok(());
            }
            for block in &change.connected {
                for tx in &block.txdata {
                    let txid = tx.txid();
                    // A confirmed transaction leaves; its children stay (their parent is
                    // now a chain coin).
                    if self.entries.contains_key(&txid) {
                        self.remove_one(&txid);
                    }
                    for i in &tx.inputs {
                        if let Some(conflict) = self.spends.get(&i.prev_out).copied() {
                            self.remove_with_descendants(&conflict);
                        }
                    }
                }
            }
            return Ok(());
        }
        // Reorganisation: disconnected transactions (oldest block first), then the former
        // pool in arrival order, each re-admitted against the new tip.
        let mut old: Vec<Entry> = self.entries.drain().map(|(_, e)| e).collect();
        old.sort_by_key(|e| e.seq);
        self.spends.clear();
        self.by_rate.clear();
        self.bytes = 0;
        let returning = change
            .disconnected
            .iter()
            .rev()
            .flat_map(|b| b.txdata.iter().skip(1).cloned());
        for tx in returning.chain(old.into_iter().map(|e| e.tx)) {
            match self.accept(tx, chain, oracle) {
                Ok(_) | Err(MempoolError::Rejected { .. }) => {}
                Err(MempoolError::Store(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Picks transactions for a block at the chain's next height, by fee rate, parents
    /// first, at most `max_bytes` of them, each re-checked with `check_tx_inputs` there.
    pub fn template(&self, chain: &Chain, max_bytes: usize) -> Result<Template, StoreError> {
        let height = chain.height().saturating_add(1);
        let snapshot = chain.store().snapshot()?;
        let mut included: HashSet<Txid> = HashSet::new();
        let mut overlay: HashMap<OutPoint, Coin> = HashMap::new();
        let mut spent: HashSet<OutPoint> = HashSet::new();
        let mut txs = Vec::new();
        let mut fees = Amount::ZERO;
        let mut bytes = 0usize;
        // Ready: every in-pool parent already included. Highest rate first.
        let mut ready: BTreeSet<RateKey> = self
            .entries
            .values()
            .filter(|e| e.parents.is_empty())
            .map(Entry::rate_key)
            .collect();
        while let Some(key) = ready.pop_last() {
            let Some(e) = self.entries.get(&key.txid) else {
                continue;
            };
            if bytes.saturating_add(e.size) > max_bytes {
                continue;
            }
            let view = TemplateView {
                chain: &snapshot,
                overlay: &overlay,
                spent: &spent,
            };
            match check_tx_inputs(&e.tx, &view, &snapshot, height, chain.params()) {
                Ok(fee) => {
                    if let Some(err) = snapshot.take_error() {
                        return Err(err);
                    }
                    bytes = bytes.saturating_add(e.size);
                    fees = fees.checked_add(fee).unwrap_or(fees);
                    for i in &e.tx.inputs {
                        spent.insert(i.prev_out);
                    }
                    for (vout, out) in e.tx.outputs.iter().enumerate() {
                        overlay.insert(
                            OutPoint::new(e.txid, u32::try_from(vout).unwrap_or(u32::MAX)),
                            Coin {
                                output: out.clone(),
                                height,
                                is_coinbase: false,
                            },
                        );
                    }
                    included.insert(e.txid);
                    txs.push(e.tx.clone());
                    for c in &e.children {
                        if let Some(ce) = self.entries.get(c)
                            && ce.parents.iter().all(|p| included.contains(p))
                        {
                            ready.insert(ce.rate_key());
                        }
                    }
                }
                Err(err) => {
                    if let Some(se) = snapshot.take_error() {
                        return Err(se);
                    }
                    tracing::debug!("template skips {}: {err}", e.txid);
                }
            }
        }
        Ok(Template { height, txs, fees })
    }
}

struct TemplateView<'a> {
    chain: &'a Snapshot,
    overlay: &'a HashMap<OutPoint, Coin>,
    spent: &'a HashSet<OutPoint>,
}

impl UtxoView for TemplateView<'_> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        if self.spent.contains(outpoint) {
            return None;
        }
        if let Some(c) = self.overlay.get(outpoint) {
            return Some(c.clone());
        }
        self.chain.coin(outpoint)
    }
}
