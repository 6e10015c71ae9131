//! Contextual validation: the checks that need the chain (the parent's header chain and the
//! node's clock, given as a [`BlockContext`]), the UTXO set (a [`UtxoView`]) and the job records
//! (a [`JobView`]); and [`connect_block`], which turns a valid block into the changes the node
//! writes to its store.
//!
//! `connect_block` is a pipeline of small steps run in order; the first failure is reported:
//!
//! 1. [`validate_block_context_free`]: [`validation::check_block`] (proof of work, merkle root,
//!    duplicates, size, coinbase placement, every transaction's context-free checks);
//! 2. [`check_block_contextual`]: the header against the chain (`bad-diffbits`,
//!    `time-too-old`, `time-too-new`);
//! 3. [`validate_height_and_finality`]: the coinbase commits to the height (BIP34,
//!    `bad-cb-height`) and every transaction is final at it (`bad-txns-nonfinal`);
//! 4. each transaction in block order (`validate_transaction`): its inputs exist in the view
//!    or among outputs created earlier in the block and not yet spent
//!    (`bad-txns-inputs-missingorspent`, which also covers double spends and spends of outputs
//!    created later in the block), coinbase maturity, value in ≥ value out, then the job rules
//!    ([`rules::check_job_rules`]) against the job records as the block's earlier transactions
//!    left them; its spent outputs are removed and its outputs added to the block's overlay,
//!    and its fee is added to the block's (`bad-txns-accumulated-fee-outofrange` past the money
//!    supply);
//! 5. the coinbase pays at most subsidy + fees (`bad-cb-amount`).
//!
//! `docs/protocol.md` section 10 is the normative description.
//!
//! Scripts are not run inside `connect_block`: it returns one [`TxScriptChecks`] per
//! non-coinbase transaction, which the node runs (in parallel if it likes) before committing
//! the [`BlockChanges`]. A block is valid only if every check passes.

use core::fmt;
use std::collections::{HashMap, HashSet};

use crate::amount::Amount;
use crate::block::{Block, Header};
use crate::hash::{JobId, Txid};
use crate::interpreter::{self, FraudProofOracle, ScriptError};
use crate::job::rules::{self, JobChange, JobError, JobOverlay, JobRecord, JobView};
use crate::params::Params;
use crate::sighash::SighashCache;
use crate::transaction::{OutPoint, Transaction, TxOut};
use crate::utxo::{Coin, UtxoView};
use crate::validation::{self, BlockRejection, TxRejection};

/// What the node knows about the chain a block extends, computed from its header chain and
/// clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockContext {
    /// The block's height (the parent's height + 1).
    pub height: u32,
    /// [`median_time_past`] of the `params.median_time_span` blocks up to the parent.
    pub median_time_past: u32,
    /// The `bits` the block must carry: the parent's, or [`crate::pow::next_bits`] at a
    /// retarget height.
    pub expected_bits: u32,
    /// The node's clock (network-adjusted, seconds since the Unix epoch).
    pub adjusted_time: u32,
}

impl BlockContext {
    /// The context of the block at `height` whose ancestors' times, oldest first and ending
    /// with the parent's, are `ancestor_times` (only the last `params.median_time_span` are
    /// used, so a node may pass more).
    pub fn new(
        height: u32,
        ancestor_times: &[u32],
        expected_bits: u32,
        adjusted_time: u32,
        params: &Params,
    ) -> Self {
        let skip = ancestor_times.len().saturating_sub(params.median_time_span);
        Self {
            height,
            median_time_past: median_time_past(ancestor_times.get(skip..).unwrap_or(&[])),
            expected_bits,
            adjusted_time,
        }
    }
}

/// The median of `times` (the previous `params.median_time_span` block times, fewer near the
/// genesis): sorted, the element at index `len / 2`; zero for none.
pub fn median_time_past(times: &[u32]) -> u32 {
    validation::median_time_past(times)
}

/// The header's checks against the chain: `bits == ctx.expected_bits` (`bad-diffbits`),
/// `time > ctx.median_time_past` (`time-too-old`), `time ≤ ctx.adjusted_time +
/// params.max_future_block_time` (`time-too-new`).
pub fn check_block_contextual(
    header: &Header,
    ctx: &BlockContext,
    params: &Params,
) -> Result<(), BlockError> {
    validation::check_header_contextual(
        header,
        ctx.expected_bits,
        ctx.median_time_past,
        ctx.adjusted_time,
        params,
    )
    .map_err(BlockError::Rejection)
}

/// Why a transaction's inputs, values, job rules or scripts are invalid in its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxError {
    /// A context-free rule of [`validation::check_transaction`] (re-checked here where the
    /// value sums need it).
    Rejection(TxRejection),
    /// The input's previous output does not exist or is already spent.
    MissingOrSpent {
        txid: Txid,
        input: usize,
        prev_out: OutPoint,
    },
    /// The input spends a coinbase output before it matured.
    PrematureCoinbaseSpend {
        txid: Txid,
        input: usize,
        coin_height: u32,
        spendable_from: Option<u32>,
        height: u32,
    },
    /// The spent values sum to more than the money supply.
    InputValuesOutOfRange { txid: Txid },
    /// The outputs are worth more than the inputs.
    InBelowOut {
        txid: Txid,
        value_in: Amount,
        value_out: Amount,
    },
    /// The lock time is above the spending height.
    NonFinal {
        txid: Txid,
        lock_time: u32,
        height: u32,
    },
    /// A job rule ([`rules::check_job_rules`]).
    Job { txid: Txid, error: JobError },
    /// An input's script failed.
    Script {
        txid: Txid,
        input: usize,
        error: ScriptError,
    },
    /// A [`TxScriptChecks`] whose spent outputs do not match the inputs one to one.
    SpentMismatch {
        txid: Txid,
        inputs: usize,
        spent: usize,
    },
}

impl TxError {
    /// The Bitcoin-style reason; for a script failure the interpreter's reason (`nullfail`,
    /// `eval-false`, `unsatisfied-locktime`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rejection(r) => r.reason(),
            Self::MissingOrSpent { .. } => "bad-txns-inputs-missingorspent",
            Self::PrematureCoinbaseSpend { .. } => "bad-txns-premature-spend-of-coinbase",
            Self::InputValuesOutOfRange { .. } => "bad-txns-inputvalues-outofrange",
            Self::InBelowOut { .. } => "bad-txns-in-belowout",
            Self::NonFinal { .. } => "bad-txns-nonfinal",
            Self::Job { error, .. } => error.reason(),
            Self::Script { error, .. } => error.reason(),
            Self::SpentMismatch { .. } => "bad-txns-spent-mismatch",
        }
    }

    /// Whether the only failure is a fraud proof this node cannot judge (it holds no model):
    /// such a node follows the most-work chain instead of rejecting the block.
    pub fn fraud_proof_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Script {
                error: ScriptError::FraudProofUnavailable(_),
                ..
            }
        )
    }
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.reason();
        match self {
            Self::Rejection(rejection) => write!(f, "{rejection}"),
            Self::MissingOrSpent {
                txid,
                input,
                prev_out,
            } => write!(
                f,
                "{r}: input {input} of {txid} spends {}:{}, which is missing or spent",
                prev_out.txid, prev_out.vout
            ),
            Self::PrematureCoinbaseSpend {
                txid,
                input,
                coin_height,
                spendable_from,
                height,
            } => {
                write!(
                    f,
                    "{r}: input {input} of {txid} spends a coinbase output of height {coin_height} at height {height}, "
                )?;
                match spendable_from {
                    Some(h) => write!(f, "spendable from {h}"),
                    None => write!(f, "never spendable"),
                }
            }
            Self::InputValuesOutOfRange { txid } => write!(
                f,
                "{r}: the outputs {txid} spends sum to more than the money supply"
            ),
            Self::InBelowOut {
                txid,
                value_in,
                value_out,
            } => write!(
                f,
                "{r}: {txid} spends {value_in} but its outputs are worth {value_out}"
            ),
            Self::NonFinal {
                txid,
                lock_time,
                height,
            } => write!(
                f,
                "{r}: {txid} is locked until height {lock_time}, spending height is {height}"
            ),
            Self::Job { txid, error } => write!(f, "{error} (transaction {txid})"),
            Self::Script { txid, input, error } => {
                write!(f, "{r}: script of input {input} of {txid} failed: {error}")
            }
            Self::SpentMismatch {
                txid,
                inputs,
                spent,
            } => write!(
                f,
                "{r}: {txid} has {inputs} inputs but {spent} spent outputs were given"
            ),
        }
    }
}

impl std::error::Error for TxError {}

/// Why a block is invalid in its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// A rule of [`validation`]: context-free ([`validation::check_block`]) or needing only the
    /// header chain and height (bits, times, coinbase height, finality, coinbase amount).
    Rejection(BlockRejection),
    /// Transaction `index` of the block is invalid.
    Tx {
        index: usize,
        txid: Txid,
        error: Box<TxError>,
    },
    /// The fees of the block's transactions sum to more than the money supply.
    FeesOutOfRange,
}

impl BlockError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rejection(r) => r.reason(),
            Self::Tx { error, .. } => error.reason(),
            Self::FeesOutOfRange => "bad-txns-accumulated-fee-outofrange",
        }
    }

    /// Whether the block is invalid for good, so the node may remember its hash as invalid
    /// and reject its descendants (see [`BlockRejection::header_invalid`]). A transaction
    /// failure is: the header commits to the transactions and, through its parent, to the
    /// UTXO set they are checked against. Except a fraud proof this node cannot judge (another
    /// node may find it valid) and a [`TxError::SpentMismatch`] (a caller's mistake).
    pub fn header_invalid(&self) -> bool {
        match self {
            Self::Rejection(r) => r.header_invalid(),
            Self::Tx { error, .. } => !matches!(
                **error,
                TxError::SpentMismatch { .. }
                    | TxError::Script {
                        error: ScriptError::FraudProofUnavailable(_),
                        ..
                    }
            ),
            Self::FeesOutOfRange => true,
        }
    }

    /// See [`TxError::fraud_proof_unavailable`].
    pub fn fraud_proof_unavailable(&self) -> bool {
        matches!(self, Self::Tx { error, .. } if error.fraud_proof_unavailable())
    }
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejection(r) => write!(f, "{r}"),
            Self::Tx { index, error, .. } => write!(f, "{error} (transaction {index})"),
            Self::FeesOutOfRange => write!(
                f,
                "{}: the block's fees sum to more than the money supply",
                self.reason()
            ),
        }
    }
}

impl std::error::Error for BlockError {}

impl From<BlockRejection> for BlockError {
    fn from(r: BlockRejection) -> Self {
        Self::Rejection(r)
    }
}

/// A transaction's inputs as checked against a view: what it spends and what it pays in fees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedInputs {
    /// The coins it spends, one per input, in input order.
    pub spent: Vec<Coin>,
    /// Value in minus value out.
    pub fee: Amount,
    /// The job records it creates or changes.
    pub job_changes: Vec<JobChange>,
}

/// Checks a non-coinbase transaction against a UTXO view and the job records, as if mined at
/// `spend_height`, and returns its fee. See [`check_tx_inputs_full`].
pub fn check_tx_inputs(
    tx: &Transaction,
    view: &impl UtxoView,
    jobs: &impl JobView,
    spend_height: u32,
    params: &Params,
) -> Result<Amount, TxError> {
    check_tx_inputs_full(tx, view, jobs, spend_height, params).map(|c| c.fee)
}

/// Checks a non-coinbase transaction against a UTXO view and the job records, as if mined at
/// `spend_height`, in this order: final at `spend_height` (`bad-txns-nonfinal`), each input in
/// order exists and is unspent (`bad-txns-inputs-missingorspent`; an outpoint spent twice by
/// the transaction is `bad-txns-inputs-duplicate`) and, if a coinbase output, is mature
/// (`bad-txns-premature-spend-of-coinbase`), the spent values sum within the money supply
/// (`bad-txns-inputvalues-outofrange`), the outputs too (`bad-txns-txouttotal-toolarge`), value
/// in ≥ value out (`bad-txns-in-belowout`), then the job rules. Scripts are not run: see
/// [`TxScriptChecks`]. The mempool calls this with `spend_height` = tip height + 1.
pub fn check_tx_inputs_full(
    tx: &Transaction,
    view: &impl UtxoView,
    jobs: &impl JobView,
    spend_height: u32,
    params: &Params,
) -> Result<CheckedInputs, TxError> {
    inputs_in_context(tx, tx.txid(), view, jobs, spend_height, params)
}

/// [`check_tx_inputs_full`] for a transaction whose txid the caller already computed.
fn inputs_in_context(
    tx: &Transaction,
    txid: Txid,
    view: &impl UtxoView,
    jobs: &impl JobView,
    spend_height: u32,
    params: &Params,
) -> Result<CheckedInputs, TxError> {
    if !validation::is_final(tx, spend_height) {
        return Err(TxError::NonFinal {
            txid,
            lock_time: tx.lock_time,
            height: spend_height,
        });
    }
    let mut spent = Vec::with_capacity(tx.inputs.len());
    let mut seen = HashSet::with_capacity(tx.inputs.len());
    for (input, txin) in tx.inputs.iter().enumerate() {
        if !seen.insert(txin.prev_out) {
            return Err(TxError::Rejection(TxRejection::InputsDuplicate {
                index: input,
                prev_out: txin.prev_out,
            }));
        }
        let coin = view.coin(&txin.prev_out).ok_or(TxError::MissingOrSpent {
            txid,
            input,
            prev_out: txin.prev_out,
        })?;
        if coin.is_coinbase {
            let spendable_from = coin.spendable_from(params.coinbase_maturity);
            if spendable_from.is_none_or(|h| spend_height < h) {
                return Err(TxError::PrematureCoinbaseSpend {
                    txid,
                    input,
                    coin_height: coin.height,
                    spendable_from,
                    height: spend_height,
                });
            }
        }
        spent.push(coin);
    }
    let value_in = Amount::checked_sum(spent.iter().map(|c| c.output.value))
        .ok_or(TxError::InputValuesOutOfRange { txid })?;
    let value_out = tx
        .total_output()
        .ok_or(TxError::Rejection(TxRejection::TxOutTotalTooLarge))?;
    let fee = value_in.checked_sub(value_out).ok_or(TxError::InBelowOut {
        txid,
        value_in,
        value_out,
    })?;
    let job_changes = rules::check_job_rules_of(tx, txid, &spent, jobs, spend_height, params)
        .map_err(|error| TxError::Job { txid, error })?;
    Ok(CheckedInputs {
        spent,
        fee,
        job_changes,
    })
}

/// The script checks of one transaction: every input against the output it spends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxScriptChecks<'a> {
    pub tx: &'a Transaction,
    /// The spent outputs, one per input, in input order.
    pub spent: Vec<TxOut>,
}

impl TxScriptChecks<'_> {
    /// Runs every input's scripts through [`interpreter::verify_input`] with one
    /// [`SighashCache`] for the transaction; the first failing input is reported.
    pub fn run(&self, oracle: &dyn FraudProofOracle) -> Result<(), TxError> {
        if self.spent.len() != self.tx.inputs.len() {
            return Err(TxError::SpentMismatch {
                txid: self.tx.txid(),
                inputs: self.tx.inputs.len(),
                spent: self.spent.len(),
            });
        }
        let cache = SighashCache::new(self.tx);
        for (input, spent) in self.spent.iter().enumerate() {
            interpreter::verify_input(self.tx, input, spent, &cache, oracle).map_err(|error| {
                TxError::Script {
                    txid: self.tx.txid(),
                    input,
                    error,
                }
            })?;
        }
        Ok(())
    }
}

/// Runs a block's script checks in order on this thread, reporting a failure as the block's
/// error (the checks of [`connect_block`] are for transactions 1, 2, … of the block).
pub fn run_script_checks(
    checks: &[TxScriptChecks<'_>],
    oracle: &dyn FraudProofOracle,
) -> Result<(), BlockError> {
    for (i, check) in checks.iter().enumerate() {
        check.run(oracle).map_err(|error| BlockError::Tx {
            index: i.saturating_add(1),
            txid: check.tx.txid(),
            error: Box::new(error),
        })?;
    }
    Ok(())
}

/// What connecting a block changes, for the node to write in one store transaction.
///
/// Applying: remove every `spent` outpoint, insert every `created` coin, insert
/// `jobs_created`, overwrite each `jobs_updated` record with its `after`. Disconnecting (the
/// undo): remove every `created` outpoint, re-insert every `spent` coin, delete
/// `jobs_created`, restore each `jobs_updated` record to its `before`. Outputs created and
/// spent inside the block appear in neither list, and provably unspendable outputs
/// (`OP_RETURN`, see [`crate::script::Script::is_provably_unspendable`]) are never created.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockChanges {
    /// Coins of the view the block spends, in spending order (transaction, then input): the
    /// undo data.
    pub spent: Vec<(OutPoint, Coin)>,
    /// Coins the block leaves unspent, in creation order (transaction, then output).
    pub created: Vec<(OutPoint, Coin)>,
    /// Jobs created by the block, in the order of the transactions that created them, with
    /// their records as the block leaves them.
    pub jobs_created: Vec<(JobId, JobRecord)>,
    /// Existing jobs the block changes: the record before the block and after it.
    pub jobs_updated: Vec<(JobId, JobRecord, JobRecord)>,
    /// Sum of the fees of the block's transactions.
    pub fees: Amount,
}

/// The UTXO set part-way through a block: the view, minus what the block spent so far, plus
/// what it created so far.
struct BlockUtxoOverlay<'a, V: UtxoView + ?Sized> {
    base: &'a V,
    spent_from_base: HashSet<OutPoint>,
    created: HashMap<OutPoint, Coin>,
}

impl<'a, V: UtxoView + ?Sized> BlockUtxoOverlay<'a, V> {
    fn new(base: &'a V) -> Self {
        Self {
            base,
            spent_from_base: HashSet::new(),
            created: HashMap::new(),
        }
    }
}

impl<V: UtxoView + ?Sized> UtxoView for BlockUtxoOverlay<'_, V> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        if let Some(c) = self.created.get(outpoint) {
            return Some(c.clone());
        }
        if self.spent_from_base.contains(outpoint) {
            return None;
        }
        self.base.coin(outpoint)
    }
}

/// The state [`connect_block`] carries from one transaction to the next.
struct ConnectState<'v, V: UtxoView + ?Sized, J: JobView + ?Sized> {
    utxos: BlockUtxoOverlay<'v, V>,
    jobs: JobOverlay<'v, J>,
    spent: Vec<(OutPoint, Coin)>,
    created_order: Vec<OutPoint>,
    /// Per job touched, in first-touch order: the record before the block.
    job_before: Vec<(JobId, Option<JobRecord>)>,
    fees: Amount,
}

impl<'v, V: UtxoView + ?Sized, J: JobView + ?Sized> ConnectState<'v, V, J> {
    fn new(view: &'v V, jobs: &'v J) -> Self {
        Self {
            utxos: BlockUtxoOverlay::new(view),
            jobs: JobOverlay::new(jobs),
            spent: Vec::new(),
            created_order: Vec::new(),
            job_before: Vec::new(),
            fees: Amount::ZERO,
        }
    }

    fn spend(&mut self, outpoint: OutPoint, coin: Coin) {
        if self.utxos.created.remove(&outpoint).is_none() {
            self.utxos.spent_from_base.insert(outpoint);
            self.spent.push((outpoint, coin));
        }
    }

    fn create(&mut self, tx: &Transaction, txid: Txid, height: u32) {
        let is_coinbase = tx.is_coinbase();
        for (vout, output) in (0u32..).zip(&tx.outputs) {
            if output.script_pubkey.is_provably_unspendable() {
                continue;
            }
            let outpoint = OutPoint::new(txid, vout);
            self.created_order.push(outpoint);
            self.utxos.created.insert(
                outpoint,
                Coin {
                    output: output.clone(),
                    height,
                    is_coinbase,
                },
            );
        }
    }

    fn record_jobs(&mut self, changes: &[JobChange]) {
        for c in changes {
            if !self.job_before.iter().any(|(id, _)| *id == c.job_id) {
                self.job_before.push((c.job_id, c.before.clone()));
            }
        }
        self.jobs.apply(changes);
    }

    fn finish(mut self) -> BlockChanges {
        let created = self
            .created_order
            .iter()
            .filter_map(|o| self.utxos.created.remove(o).map(|c| (*o, c)))
            .collect();
        let mut jobs_created = Vec::new();
        let mut jobs_updated = Vec::new();
        for (id, before) in self.job_before {
            let Some(after) = self.jobs.job(&id) else {
                continue;
            };
            match before {
                None => jobs_created.push((id, after)),
                Some(before) if before != after => jobs_updated.push((id, before, after)),
                Some(_) => {}
            }
        }
        BlockChanges {
            spent: self.spent,
            created,
            jobs_created,
            jobs_updated,
            fees: self.fees,
        }
    }
}

/// Step 1: the context-free checks, given the block's transaction ids.
pub fn validate_block_context_free(
    block: &Block,
    txids: &[Txid],
    params: &Params,
) -> Result<(), BlockError> {
    validation::check_block_with_txids(block, txids, params).map_err(BlockError::Rejection)
}

/// Step 3: the coinbase commits to `height` and every transaction is final at it.
pub fn validate_height_and_finality(block: &Block, height: u32) -> Result<(), BlockError> {
    validation::check_block_contextual(block, height).map_err(BlockError::Rejection)
}

/// Step 4 for one transaction: checks it against the state the block's earlier transactions
/// left, then applies it. Returns its script checks (none for the coinbase).
fn validate_transaction<'a, V: UtxoView + ?Sized, J: JobView + ?Sized>(
    state: &mut ConnectState<'_, V, J>,
    index: usize,
    (tx, txid): (&'a Transaction, Txid),
    height: u32,
    params: &Params,
) -> Result<Option<TxScriptChecks<'a>>, BlockError> {
    let fail = |error| BlockError::Tx {
        index,
        txid,
        error: Box::new(error),
    };
    if tx.is_coinbase() {
        // The coinbase spends nothing; its outputs still obey the job templates' rule 1.
        let changes = rules::check_job_rules_of(tx, txid, &[], &state.jobs, height, params)
            .map_err(|error| fail(TxError::Job { txid, error }))?;
        state.record_jobs(&changes);
        state.create(tx, txid, height);
        return Ok(None);
    }
    let checked =
        inputs_in_context(tx, txid, &state.utxos, &state.jobs, height, params).map_err(fail)?;
    state.fees = state
        .fees
        .checked_add(checked.fee)
        .ok_or(BlockError::FeesOutOfRange)?;
    state.record_jobs(&checked.job_changes);
    let spent_outputs = checked.spent.iter().map(|c| c.output.clone()).collect();
    for (txin, coin) in tx.inputs.iter().zip(checked.spent) {
        state.spend(txin.prev_out, coin);
    }
    state.create(tx, txid, height);
    Ok(Some(TxScriptChecks {
        tx,
        spent: spent_outputs,
    }))
}

/// Validates `block` at `ctx.height` on top of `view` and `jobs` (the state after its parent)
/// through the pipeline in the module documentation, and returns the changes connecting it
/// makes with the script checks still to run (one per non-coinbase transaction, in block
/// order). The block is valid only if every returned check passes.
pub fn connect_block<'a>(
    block: &'a Block,
    ctx: &BlockContext,
    view: &impl UtxoView,
    jobs: &impl JobView,
    params: &Params,
) -> Result<(BlockChanges, Vec<TxScriptChecks<'a>>), BlockError> {
    // Each transaction id is hashed once, for the merkle root and the steps after it.
    let txids: Vec<Txid> = block.txdata.iter().map(Transaction::txid).collect();
    validate_block_context_free(block, &txids, params)?;
    check_block_contextual(&block.header, ctx, params)?;
    validate_height_and_finality(block, ctx.height)?;
    let mut state = ConnectState::new(view, jobs);
    let mut checks = Vec::with_capacity(block.txdata.len().saturating_sub(1));
    for (index, tx) in block.txdata.iter().zip(txids).enumerate() {
        if let Some(check) = validate_transaction(&mut state, index, tx, ctx.height, params)? {
            checks.push(check);
        }
    }
    validation::check_coinbase_amount(block, ctx.height, state.fees, params)?;
    Ok((state.finish(), checks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::build_coinbase;
    use crate::hash::{BlockHash, Hash256};
    use crate::script::Script;
    use crate::transaction::TxIn;

    fn anyone(value: u64) -> TxOut {
        TxOut {
            value: Amount::from_base(value).unwrap(),
            script_pubkey: Script::new(vec![0x51]),
        }
    }

    fn spend(prev: OutPoint, value: u64) -> Transaction {
        Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: prev,
                script_sig: Script::default(),
                sequence: u32::MAX,
            }],
            outputs: vec![anyone(value)],
            lock_time: 0,
            job_id: JobId::ZERO,
        }
    }

    fn coin(value: u64, height: u32, is_coinbase: bool) -> Coin {
        Coin {
            output: anyone(value),
            height,
            is_coinbase,
        }
    }

    fn block(height: u32, cb_value: u64, txs: Vec<Transaction>, p: &Params) -> Block {
        let mut txdata = vec![build_coinbase(height, b"", vec![anyone(cb_value)]).unwrap()];
        txdata.extend(txs);
        let mut b = Block {
            header: Header {
                version: 1,
                prev_blockhash: BlockHash::ZERO,
                merkle_root: Hash256::ZERO,
                time: 1_000,
                bits: p.pow_limit_bits,
                nonce: 0,
            },
            txdata,
        };
        assert!(b.solve());
        b
    }

    fn ctx(height: u32, p: &Params) -> BlockContext {
        BlockContext {
            height,
            median_time_past: 999,
            expected_bits: p.pow_limit_bits,
            adjusted_time: 1_000,
        }
    }

    #[test]
    fn overlay_hides_spent_and_shows_created() {
        let a = OutPoint::new(Txid::hash(b"a"), 0);
        let b = OutPoint::new(Txid::hash(b"b"), 0);
        let base = HashMap::from([(a, coin(5, 1, false))]);
        let jobs: HashMap<JobId, JobRecord> = HashMap::new();
        let mut state = ConnectState::new(&base, &jobs);
        assert_eq!(state.utxos.coin(&a), Some(coin(5, 1, false)));
        state.spend(a, coin(5, 1, false));
        assert_eq!(state.utxos.coin(&a), None, "spent from the base");
        let tx = spend(a, 4);
        state.create(&tx, tx.txid(), 7);
        let created = OutPoint::new(tx.txid(), 0);
        assert_eq!(state.utxos.coin(&created), Some(coin(4, 7, false)));
        assert_eq!(state.utxos.coin(&b), None);
        // Spending what the block created leaves no trace in either list.
        state.spend(created, coin(4, 7, false));
        assert_eq!(state.utxos.coin(&created), None);
        let changes = state.finish();
        assert_eq!(changes.spent, vec![(a, coin(5, 1, false))]);
        assert!(changes.created.is_empty());
    }

    #[test]
    fn unspendable_outputs_are_not_created() {
        let jobs: HashMap<JobId, JobRecord> = HashMap::new();
        let base: HashMap<OutPoint, Coin> = HashMap::new();
        let mut state = ConnectState::new(&base, &jobs);
        let mut tx = spend(OutPoint::new(Txid::hash(b"x"), 0), 1);
        tx.outputs.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: Script::new(vec![0x6a, 0x01, 0x07]),
        });
        state.create(&tx, tx.txid(), 3);
        assert_eq!(
            state.finish().created,
            vec![(OutPoint::new(tx.txid(), 0), coin(1, 3, false))]
        );
    }

    #[test]
    fn pipeline_order_and_fees() {
        let p = Params::regtest();
        let a = OutPoint::new(Txid::hash(b"a"), 0);
        let view = HashMap::from([(a, coin(1_000, 1, false))]);
        let jobs: HashMap<JobId, JobRecord> = HashMap::new();
        let subsidy = p.block_subsidy(10).to_base();
        // Fee 100: the coinbase may take subsidy + 100.
        let b = block(10, subsidy + 100, vec![spend(a, 900)], &p);
        let (changes, checks) = connect_block(&b, &ctx(10, &p), &view, &jobs, &p).unwrap();
        assert_eq!(changes.fees, Amount::from_base(100).unwrap());
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].spent, vec![anyone(1_000)]);
        let b = block(10, subsidy + 101, vec![spend(a, 900)], &p);
        let err = connect_block(&b, &ctx(10, &p), &view, &jobs, &p).unwrap_err();
        assert_eq!(err.reason(), "bad-cb-amount");
        assert!(err.header_invalid());
        // The header is checked before the transactions: a block that is wrong in both ways
        // reports its time.
        let mut late = ctx(10, &p);
        late.median_time_past = 1_000;
        let err = connect_block(&b, &late, &view, &jobs, &p).unwrap_err();
        assert_eq!(err.reason(), "time-too-old");
        // And the height commitment before the transactions.
        let err = connect_block(&b, &ctx(11, &p), &view, &jobs, &p).unwrap_err();
        assert_eq!(err.reason(), "bad-cb-height");
    }

    #[test]
    fn tx_errors_name_their_values() {
        let txid = Txid::hash(b"t");
        let prev = OutPoint::new(Txid::hash(b"p"), 3);
        let e = TxError::MissingOrSpent {
            txid,
            input: 1,
            prev_out: prev,
        };
        assert_eq!(
            e.to_string(),
            format!(
                "bad-txns-inputs-missingorspent: input 1 of {txid} spends {}:3, which is missing or spent",
                prev.txid
            )
        );
        let e = TxError::PrematureCoinbaseSpend {
            txid,
            input: 0,
            coin_height: 5,
            spendable_from: Some(105),
            height: 104,
        };
        assert!(
            e.to_string().ends_with("at height 104, spendable from 105"),
            "{e}"
        );
        let e = BlockError::Tx {
            index: 3,
            txid,
            error: Box::new(TxError::InputValuesOutOfRange { txid }),
        };
        assert_eq!(e.reason(), "bad-txns-inputvalues-outofrange");
        assert!(e.to_string().ends_with("(transaction 3)"), "{e}");
        assert!(e.header_invalid());
        assert!(!e.fraud_proof_unavailable());
        let unavailable = BlockError::Tx {
            index: 1,
            txid,
            error: Box::new(TxError::Script {
                txid,
                input: 0,
                error: ScriptError::FraudProofUnavailable("no model".into()),
            }),
        };
        assert!(unavailable.fraud_proof_unavailable());
        assert!(!unavailable.header_invalid());
        assert_eq!(
            BlockError::FeesOutOfRange.reason(),
            "bad-txns-accumulated-fee-outofrange"
        );
        assert_eq!(
            TxError::Job {
                txid,
                error: JobError::Unknown {
                    job_id: JobId::ZERO
                }
            }
            .reason(),
            "bad-job-unknown"
        );
    }
}
