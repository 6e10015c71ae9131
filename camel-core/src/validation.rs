//! Context-free checks of transactions and blocks: what can be decided from the bytes and the
//! network's parameters alone, before looking at the chain or the UTXO set.
//!
//! Each rejection is an enum variant whose [`reason`](TxRejection::reason) is a Bitcoin-style
//! string (`bad-txns-vin-empty`, `high-hash`, …) and whose `Display` names the offending
//! value. Rules run in a fixed order and the first failure is reported, so the reason for a
//! given invalid input is deterministic.
//!
//! Values above the money supply (Bitcoin's `bad-txns-vout-negative` / `-toolarge`) cannot
//! occur here: [`Amount`] is bounded by construction and decoding rejects such
//! values. Their sum can still exceed it (`bad-txns-txouttotal-toolarge`).

use core::fmt;
use std::collections::HashSet;

use crate::amount::Amount;
use crate::block::{
    Block, Header, MAX_COINBASE_SCRIPT_SIG, MIN_COINBASE_SCRIPT_SIG, coinbase_height,
};
use crate::encode::Encodable;
use crate::hash::{Hash256, JobId, Txid};
use crate::merkle;
use crate::params::Params;
use crate::pow::{PowError, check_proof_of_work};
use crate::script::{MAX_SCRIPT_PUBKEY_SIZE, MAX_SCRIPT_SIG_SIZE};
use crate::transaction::{MAX_TX_SIZE, OutPoint, SEQUENCE_FINAL, Transaction};

/// Why a transaction fails the context-free checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxRejection {
    /// No inputs.
    VinEmpty,
    /// No outputs.
    VoutEmpty,
    /// Encoded size above [`MAX_TX_SIZE`].
    Oversize { size: usize },
    /// A scriptSig above [`MAX_SCRIPT_SIG_SIZE`].
    ScriptSigSize { index: usize, size: usize },
    /// A scriptPubKey above [`MAX_SCRIPT_PUBKEY_SIZE`].
    ScriptPubKeySize { index: usize, size: usize },
    /// The outputs sum to more than the money supply.
    TxOutTotalTooLarge,
    /// Two inputs spend the same outpoint.
    InputsDuplicate { index: usize, prev_out: OutPoint },
    /// A coinbase scriptSig outside 2..=100 bytes.
    CoinbaseLength { len: usize },
    /// A coinbase with a non-zero job id.
    CoinbaseJobId { job_id: JobId },
    /// A non-coinbase input spends the null outpoint.
    PrevoutNull { index: usize },
}

impl TxRejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::VinEmpty => "bad-txns-vin-empty",
            Self::VoutEmpty => "bad-txns-vout-empty",
            Self::Oversize { .. } => "bad-txns-oversize",
            Self::ScriptSigSize { .. } => "bad-txns-scriptsig-size",
            Self::ScriptPubKeySize { .. } => "bad-txns-scriptpubkey-size",
            Self::TxOutTotalTooLarge => "bad-txns-txouttotal-toolarge",
            Self::InputsDuplicate { .. } => "bad-txns-inputs-duplicate",
            Self::CoinbaseLength { .. } => "bad-cb-length",
            Self::CoinbaseJobId { .. } => "bad-cb-jobid",
            Self::PrevoutNull { .. } => "bad-txns-prevout-null",
        }
    }
}

impl fmt::Display for TxRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.reason();
        match self {
            Self::VinEmpty => write!(f, "{r}: transaction has no inputs"),
            Self::VoutEmpty => write!(f, "{r}: transaction has no outputs"),
            Self::Oversize { size } => {
                write!(f, "{r}: transaction is {size} bytes, limit {MAX_TX_SIZE}")
            }
            Self::ScriptSigSize { index, size } => {
                write!(
                    f,
                    "{r}: input {index} scriptSig is {size} bytes, limit {MAX_SCRIPT_SIG_SIZE}"
                )
            }
            Self::ScriptPubKeySize { index, size } => {
                write!(
                    f,
                    "{r}: output {index} scriptPubKey is {size} bytes, limit {MAX_SCRIPT_PUBKEY_SIZE}"
                )
            }
            Self::TxOutTotalTooLarge => write!(f, "{r}: outputs sum to more than the money supply"),
            Self::InputsDuplicate { index, prev_out } => {
                write!(
                    f,
                    "{r}: input {index} spends {}:{} a second time",
                    prev_out.txid, prev_out.vout
                )
            }
            Self::CoinbaseLength { len } => write!(
                f,
                "{r}: coinbase scriptSig is {len} bytes, allowed {MIN_COINBASE_SCRIPT_SIG}..={MAX_COINBASE_SCRIPT_SIG}"
            ),
            Self::CoinbaseJobId { job_id } => {
                write!(f, "{r}: coinbase carries job id {job_id}, must be zero")
            }
            Self::PrevoutNull { index } => write!(
                f,
                "{r}: input {index} of a non-coinbase spends the null outpoint"
            ),
        }
    }
}

impl std::error::Error for TxRejection {}

/// Context-free transaction checks, in this order: inputs present, outputs present, size,
/// script sizes, output total, duplicate inputs, then for a coinbase its scriptSig length
/// and zero job id, and for any other transaction no null previous outputs.
pub fn check_transaction(tx: &Transaction) -> Result<(), TxRejection> {
    if tx.inputs.is_empty() {
        return Err(TxRejection::VinEmpty);
    }
    if tx.outputs.is_empty() {
        return Err(TxRejection::VoutEmpty);
    }
    let size = tx.encoded_len();
    if size > MAX_TX_SIZE {
        return Err(TxRejection::Oversize { size });
    }
    if let Some((index, input)) = tx
        .inputs
        .iter()
        .enumerate()
        .find(|(_, i)| i.script_sig.len() > MAX_SCRIPT_SIG_SIZE)
    {
        return Err(TxRejection::ScriptSigSize {
            index,
            size: input.script_sig.len(),
        });
    }
    if let Some((index, output)) = tx
        .outputs
        .iter()
        .enumerate()
        .find(|(_, o)| o.script_pubkey.len() > MAX_SCRIPT_PUBKEY_SIZE)
    {
        return Err(TxRejection::ScriptPubKeySize {
            index,
            size: output.script_pubkey.len(),
        });
    }
    if tx.total_output().is_none() {
        return Err(TxRejection::TxOutTotalTooLarge);
    }
    let mut seen = HashSet::with_capacity(tx.inputs.len());
    for (index, input) in tx.inputs.iter().enumerate() {
        if !seen.insert(input.prev_out) {
            return Err(TxRejection::InputsDuplicate {
                index,
                prev_out: input.prev_out,
            });
        }
    }
    if tx.is_coinbase() {
        let len = tx.inputs.first().map(|i| i.script_sig.len()).unwrap_or(0);
        if !(MIN_COINBASE_SCRIPT_SIG..=MAX_COINBASE_SCRIPT_SIG).contains(&len) {
            return Err(TxRejection::CoinbaseLength { len });
        }
        if !tx.job_id.is_zero() {
            return Err(TxRejection::CoinbaseJobId { job_id: tx.job_id });
        }
    } else if let Some(index) = tx.inputs.iter().position(|i| i.prev_out.is_null()) {
        return Err(TxRejection::PrevoutNull { index });
    }
    Ok(())
}

/// Why a block fails the context-free checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockRejection {
    /// The header's `bits` or hash fail [`check_proof_of_work`] (`bad-diffbits` or `high-hash`).
    Pow(PowError),
    /// No transactions.
    Empty,
    /// The header's merkle root differs from the transactions'.
    BadMerkleRoot { header: Hash256, computed: Hash256 },
    /// The transaction list is a CVE-2012-2459 mutation of another with the same root.
    MerkleMutated,
    /// The same transaction appears twice.
    DuplicateTx { txid: Txid },
    /// Encoded size above the network's `max_block_size`.
    Oversize { size: usize, max: usize },
    /// The first transaction is not a coinbase.
    CoinbaseMissing,
    /// A transaction after the first is a coinbase.
    CoinbaseMultiple { index: usize },
    /// A transaction fails [`check_transaction`].
    Transaction {
        index: usize,
        txid: Txid,
        rejection: TxRejection,
    },
    /// Contextual: `bits` differs from what the chain requires at this height.
    UnexpectedBits { expected: u32, got: u32 },
    /// Contextual: the time is not after the median time past.
    TimeTooOld { time: u32, median_time_past: u32 },
    /// Contextual: the time is too far ahead of the node's clock.
    TimeTooNew { time: u32, max: u32 },
    /// Contextual: the coinbase does not open with the block's height.
    CoinbaseHeight { expected: u32, got: Option<u32> },
    /// Contextual: a transaction's lock time is above the block's height.
    NonFinal {
        index: usize,
        txid: Txid,
        lock_time: u32,
        height: u32,
    },
    /// Contextual: the coinbase claims more than the subsidy plus fees.
    CoinbaseAmount {
        claimed: Option<Amount>,
        allowed: Option<Amount>,
    },
}

impl BlockRejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Pow(e) => e.reason(),
            Self::Empty => "bad-blk-empty",
            Self::BadMerkleRoot { .. } => "bad-txnmrklroot",
            Self::MerkleMutated | Self::DuplicateTx { .. } => "bad-txns-duplicate",
            Self::Oversize { .. } => "bad-blk-length",
            Self::CoinbaseMissing => "bad-cb-missing",
            Self::CoinbaseMultiple { .. } => "bad-cb-multiple",
            Self::Transaction { rejection, .. } => rejection.reason(),
            Self::UnexpectedBits { .. } => "bad-diffbits",
            Self::TimeTooOld { .. } => "time-too-old",
            Self::TimeTooNew { .. } => "time-too-new",
            Self::CoinbaseHeight { .. } => "bad-cb-height",
            Self::NonFinal { .. } => "bad-txns-nonfinal",
            Self::CoinbaseAmount { .. } => "bad-cb-amount",
        }
    }

    /// Whether the block this header names is invalid for good, so the node may remember its
    /// hash as invalid and reject its descendants.
    ///
    /// False when the body received may simply not be the body the header commits to (no
    /// transactions, a merkle root mismatch, a mutated list: a peer can cause these for a
    /// valid header, so fetch the body elsewhere), and for `time-too-new`, which passes later.
    /// Once the merkle root matches an unmutated list, every later failure is a property of
    /// the committed block itself.
    pub fn header_invalid(&self) -> bool {
        !matches!(
            self,
            Self::Empty
                | Self::BadMerkleRoot { .. }
                | Self::MerkleMutated
                | Self::TimeTooNew { .. }
        )
    }
}

impl fmt::Display for BlockRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.reason();
        match self {
            Self::Pow(e) => write!(f, "{e}"),
            Self::Empty => write!(f, "{r}: block has no transactions"),
            Self::BadMerkleRoot { header, computed } => {
                write!(
                    f,
                    "{r}: header merkle root {header} but transactions give {computed}"
                )
            }
            Self::MerkleMutated => write!(
                f,
                "{r}: transaction list repeats a merkle node (CVE-2012-2459)"
            ),
            Self::DuplicateTx { txid } => write!(f, "{r}: transaction {txid} appears twice"),
            Self::Oversize { size, max } => write!(f, "{r}: block is {size} bytes, limit {max}"),
            Self::CoinbaseMissing => write!(f, "{r}: first transaction is not a coinbase"),
            Self::CoinbaseMultiple { index } => {
                write!(f, "{r}: transaction {index} is a second coinbase")
            }
            Self::Transaction {
                index,
                txid,
                rejection,
            } => write!(f, "{rejection} (transaction {index}, {txid})"),
            Self::UnexpectedBits { expected, got } => {
                write!(
                    f,
                    "{r}: bits {got:#010x}, the chain requires {expected:#010x}"
                )
            }
            Self::TimeTooOld {
                time,
                median_time_past,
            } => {
                write!(
                    f,
                    "{r}: time {time} is not after the median time past {median_time_past}"
                )
            }
            Self::TimeTooNew { time, max } => {
                write!(f, "{r}: time {time} is after {max}, too far in the future")
            }
            Self::CoinbaseHeight {
                expected,
                got: Some(got),
            } => {
                write!(
                    f,
                    "{r}: coinbase commits to height {got}, block is at {expected}"
                )
            }
            Self::CoinbaseHeight {
                expected,
                got: None,
            } => {
                write!(
                    f,
                    "{r}: coinbase does not open with the height {expected} push"
                )
            }
            Self::NonFinal {
                index,
                txid,
                lock_time,
                height,
            } => {
                write!(
                    f,
                    "{r}: transaction {index} ({txid}) is locked until height {lock_time}, block is at {height}"
                )
            }
            Self::CoinbaseAmount { claimed, allowed } => {
                let show = |a: &Option<Amount>| {
                    a.map_or_else(
                        || "more than the money supply".to_owned(),
                        |a| a.to_string(),
                    )
                };
                write!(
                    f,
                    "{r}: coinbase pays {}, at most {} allowed",
                    show(claimed),
                    show(allowed)
                )
            }
        }
    }
}

impl std::error::Error for BlockRejection {}

/// Context-free block checks, in this order: proof of work (`bits` within the network's
/// limit, hash within target), at least one transaction, merkle root, merkle mutation,
/// duplicate txids, size, coinbase first and only first, then each transaction.
pub fn check_block(block: &Block, params: &Params) -> Result<(), BlockRejection> {
    let txids: Vec<Txid> = block.txdata.iter().map(Transaction::txid).collect();
    check_block_with_txids(block, &txids, params)
}

/// [`check_block`] given the block's transaction ids, in order (the caller computed them
/// for other steps too).
pub(crate) fn check_block_with_txids(
    block: &Block,
    txids: &[Txid],
    params: &Params,
) -> Result<(), BlockRejection> {
    debug_assert_eq!(txids.len(), block.txdata.len());
    let header = &block.header;
    check_proof_of_work(&header.block_hash(), header.bits, params.pow_limit)
        .map_err(BlockRejection::Pow)?;
    if block.txdata.is_empty() {
        return Err(BlockRejection::Empty);
    }
    let (root, mutated) = merkle::merkle_root(txids);
    if root != header.merkle_root {
        return Err(BlockRejection::BadMerkleRoot {
            header: header.merkle_root,
            computed: root,
        });
    }
    if mutated {
        return Err(BlockRejection::MerkleMutated);
    }
    let mut seen = HashSet::with_capacity(txids.len());
    if let Some(txid) = txids.iter().find(|t| !seen.insert(**t)) {
        return Err(BlockRejection::DuplicateTx { txid: *txid });
    }
    let size = block.encoded_len();
    if size > params.max_block_size {
        return Err(BlockRejection::Oversize {
            size,
            max: params.max_block_size,
        });
    }
    if !block.txdata.first().is_some_and(Transaction::is_coinbase) {
        return Err(BlockRejection::CoinbaseMissing);
    }
    if let Some(index) = block
        .txdata
        .iter()
        .skip(1)
        .position(Transaction::is_coinbase)
    {
        return Err(BlockRejection::CoinbaseMultiple {
            index: index.saturating_add(1),
        });
    }
    for (index, (tx, txid)) in block.txdata.iter().zip(txids).enumerate() {
        check_transaction(tx).map_err(|rejection| BlockRejection::Transaction {
            index,
            txid: *txid,
            rejection,
        })?;
    }
    Ok(())
}

/// The median of the times of the previous `params.median_time_span` blocks (fewer near the
/// genesis): sorted, the element at index `len / 2`. Zero for no times.
pub fn median_time_past(times: &[u32]) -> u32 {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

/// Header checks that need the chain: `bits` equals `expected_bits` (the parent's bits, or
/// [`next_bits`](crate::pow::next_bits) at a retarget height), the time is after
/// `median_time_past`, and at most `max_future_block_time` after `now` (the node's clock).
pub fn check_header_contextual(
    header: &Header,
    expected_bits: u32,
    median_time_past: u32,
    now: u32,
    params: &Params,
) -> Result<(), BlockRejection> {
    if header.bits != expected_bits {
        return Err(BlockRejection::UnexpectedBits {
            expected: expected_bits,
            got: header.bits,
        });
    }
    if header.time <= median_time_past {
        return Err(BlockRejection::TimeTooOld {
            time: header.time,
            median_time_past,
        });
    }
    let max = now.saturating_add(params.max_future_block_time);
    if header.time > max {
        return Err(BlockRejection::TimeTooNew {
            time: header.time,
            max,
        });
    }
    Ok(())
}

/// Whether `tx` may be mined in a block at `height`: its lock time is zero, at most
/// `height`, or every input's sequence is final.
pub fn is_final(tx: &Transaction, height: u32) -> bool {
    tx.lock_time == 0
        || tx.lock_time <= height
        || tx.inputs.iter().all(|i| i.sequence == SEQUENCE_FINAL)
}

/// Block checks that need the block's height but not the UTXO set: the coinbase commits to
/// `height` ([`coinbase_height`]), and every transaction is final at `height`. Run after
/// [`check_block`].
pub fn check_block_contextual(block: &Block, height: u32) -> Result<(), BlockRejection> {
    let got = block.txdata.first().and_then(coinbase_height);
    if got != Some(height) {
        return Err(BlockRejection::CoinbaseHeight {
            expected: height,
            got,
        });
    }
    for (index, tx) in block.txdata.iter().enumerate() {
        if !is_final(tx, height) {
            return Err(BlockRejection::NonFinal {
                index,
                txid: tx.txid(),
                lock_time: tx.lock_time,
                height,
            });
        }
    }
    Ok(())
}

/// The coinbase may pay at most the subsidy at `height` plus `fees` (the block's inputs
/// minus outputs over its other transactions, computed against the UTXO set).
pub fn check_coinbase_amount(
    block: &Block,
    height: u32,
    fees: Amount,
    params: &Params,
) -> Result<(), BlockRejection> {
    let claimed = block.txdata.first().and_then(Transaction::total_output);
    let allowed = params.block_subsidy(height).checked_add(fees);
    match (claimed, allowed) {
        (Some(c), Some(a)) if c <= a => Ok(()),
        // Subsidy plus fees above the money supply cannot bound anything tighter than the
        // supply itself, and every valid claim is within it.
        (Some(_), None) => Ok(()),
        _ => Err(BlockRejection::CoinbaseAmount { claimed, allowed }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amount::{Amount, MAX_MONEY};
    use crate::block::{Header, build_coinbase};
    use crate::script::Script;
    use crate::transaction::{TxIn, TxOut};

    fn out(value: u64, script_len: usize) -> TxOut {
        TxOut {
            value: Amount::from_base(value).unwrap(),
            script_pubkey: Script::new(vec![0x51; script_len]),
        }
    }

    fn input(n: u32, script_len: usize) -> TxIn {
        TxIn {
            prev_out: OutPoint::new(Txid::hash(b"prev"), n),
            script_sig: Script::new(vec![0x51; script_len]),
            sequence: 0,
        }
    }

    fn spend() -> Transaction {
        Transaction {
            version: 1,
            inputs: vec![input(0, 1)],
            outputs: vec![out(1, 1)],
            lock_time: 0,
            job_id: JobId::ZERO,
        }
    }

    fn reason(tx: &Transaction) -> Option<&'static str> {
        check_transaction(tx).err().map(|e| e.reason())
    }

    #[test]
    fn empty_inputs_and_outputs() {
        assert_eq!(reason(&spend()), None);
        let mut tx = spend();
        tx.inputs.clear();
        assert_eq!(reason(&tx), Some("bad-txns-vin-empty"));
        let mut tx = spend();
        tx.outputs.clear();
        assert_eq!(reason(&tx), Some("bad-txns-vout-empty"));
    }

    #[test]
    fn size_at_and_past_limit() {
        // Grow with outputs of 10,000-byte scripts, then pad one input's scriptSig to land exactly on the limit.
        let mut tx = spend();
        while tx.encoded_len() + 10_020 < MAX_TX_SIZE {
            tx.outputs.push(out(0, MAX_SCRIPT_PUBKEY_SIZE));
        }
        let pad = MAX_TX_SIZE - tx.encoded_len();
        tx.inputs[0].script_sig = Script::new(vec![0x51; 1 + pad]);
        // The scriptSig's CompactSize grew from 1 to 3 bytes when it passed 252.
        let excess = tx.encoded_len() - MAX_TX_SIZE;
        tx.inputs[0].script_sig = Script::new(vec![0x51; 1 + pad - excess]);
        assert_eq!(tx.encoded_len(), MAX_TX_SIZE);
        assert_eq!(reason(&tx), None);
        tx.inputs[0].script_sig = Script::new(vec![0x51; 2 + pad - excess]);
        assert_eq!(
            check_transaction(&tx),
            Err(TxRejection::Oversize {
                size: MAX_TX_SIZE + 1
            })
        );
    }

    #[test]
    fn script_sizes_at_and_past_limit() {
        let mut tx = spend();
        tx.inputs[0].script_sig = Script::new(vec![0; MAX_SCRIPT_SIG_SIZE]);
        tx.outputs[0].script_pubkey = Script::new(vec![0; MAX_SCRIPT_PUBKEY_SIZE]);
        assert_eq!(reason(&tx), None);
        tx.inputs.push(input(1, MAX_SCRIPT_SIG_SIZE + 1));
        assert_eq!(
            check_transaction(&tx),
            Err(TxRejection::ScriptSigSize {
                index: 1,
                size: MAX_SCRIPT_SIG_SIZE + 1
            })
        );
        let mut tx = spend();
        tx.outputs.push(out(0, MAX_SCRIPT_PUBKEY_SIZE + 1));
        assert_eq!(
            check_transaction(&tx),
            Err(TxRejection::ScriptPubKeySize {
                index: 1,
                size: MAX_SCRIPT_PUBKEY_SIZE + 1
            })
        );
    }

    #[test]
    fn output_total_at_and_past_limit() {
        let mut tx = spend();
        tx.outputs = vec![out(MAX_MONEY - 1, 1), out(1, 1)];
        assert_eq!(reason(&tx), None);
        tx.outputs.push(out(1, 1));
        assert_eq!(reason(&tx), Some("bad-txns-txouttotal-toolarge"));
    }

    #[test]
    fn duplicate_inputs() {
        let mut tx = spend();
        tx.inputs = vec![input(0, 1), input(1, 1)];
        assert_eq!(reason(&tx), None);
        tx.inputs.push(input(0, 5));
        let err = check_transaction(&tx).unwrap_err();
        assert_eq!(
            err,
            TxRejection::InputsDuplicate {
                index: 2,
                prev_out: tx.inputs[0].prev_out
            }
        );
        assert!(
            err.to_string()
                .contains(&tx.inputs[0].prev_out.txid.to_string()),
            "{err}"
        );
    }

    #[test]
    fn coinbase_rules() {
        let cb = |len: usize| {
            let mut tx = build_coinbase(1, b"", vec![out(1, 1)]).unwrap();
            tx.inputs[0].script_sig = Script::new(vec![0x51; len]);
            tx
        };
        assert_eq!(reason(&cb(2)), None);
        assert_eq!(reason(&cb(100)), None);
        assert_eq!(
            check_transaction(&cb(1)),
            Err(TxRejection::CoinbaseLength { len: 1 })
        );
        assert_eq!(
            check_transaction(&cb(101)),
            Err(TxRejection::CoinbaseLength { len: 101 })
        );
        let mut tx = cb(2);
        tx.job_id = JobId::hash(b"job");
        assert_eq!(reason(&tx), Some("bad-cb-jobid"));
        // A non-coinbase may carry a job id, but not a null prevout.
        let mut tx = spend();
        tx.job_id = JobId::hash(b"job");
        assert_eq!(reason(&tx), None);
        tx.inputs.push(TxIn {
            prev_out: OutPoint::NULL,
            script_sig: Script::default(),
            sequence: 0,
        });
        assert_eq!(
            check_transaction(&tx),
            Err(TxRejection::PrevoutNull { index: 1 })
        );
        // Zero txid with another index is not null.
        tx.inputs[1].prev_out.vout = 0;
        tx.inputs[1].prev_out.txid = Txid::ZERO;
        assert_eq!(reason(&tx), None);
    }

    /// A valid regtest block over `txdata` (the merkle root set and the nonce mined).
    fn mined(params: &Params, txdata: Vec<Transaction>) -> Block {
        let mut header = Header {
            version: 1,
            prev_blockhash: params.genesis_hash,
            merkle_root: Hash256::ZERO,
            time: params.genesis_time + 60,
            bits: params.pow_limit_bits,
            nonce: 0,
        };
        let (root, _) =
            merkle::merkle_root(&txdata.iter().map(Transaction::txid).collect::<Vec<_>>());
        header.merkle_root = root;
        remine(Block { header, txdata })
    }

    fn remine(mut block: Block) -> Block {
        assert!(block.header.solve());
        block
    }

    fn coinbase(height: u32) -> Transaction {
        build_coinbase(height, b"test", vec![out(50, 25)]).unwrap()
    }

    fn block_reason(b: &Block, p: &Params) -> Option<&'static str> {
        check_block(b, p).err().map(|e| e.reason())
    }

    #[test]
    fn genesis_blocks_pass() {
        for net in crate::params::Network::ALL {
            let p = Params::new(net);
            assert_eq!(check_block(&p.genesis_block(), &p), Ok(()), "{net}");
        }
    }

    #[test]
    fn proof_of_work_rules() {
        let p = Params::regtest();
        let b = mined(&p, vec![coinbase(1)]);
        assert_eq!(check_block(&b, &p), Ok(()));
        // A hash above target: search for a nonce that fails.
        let mut bad = b.clone();
        let target = crate::pow::Target::from_compact(bad.header.bits).unwrap();
        bad.header.nonce = (0..)
            .find(|n| {
                !target.is_met_by(
                    &Header {
                        nonce: *n,
                        ..bad.header
                    }
                    .block_hash(),
                )
            })
            .unwrap();
        assert_eq!(block_reason(&bad, &p), Some("high-hash"));
        // Bits above the limit.
        let mut easy = b.clone();
        easy.header.bits = 0x2080_0000 | 0x0100_0000 | 0x7fff; // 0x21807fff: negative
        assert_eq!(block_reason(&easy, &p), Some("bad-diffbits"));
        easy.header.bits = 0x2100_ffff;
        let easy = remine(easy);
        assert!(matches!(
            check_block(&easy, &p),
            Err(BlockRejection::Pow(PowError::AboveLimit { .. }))
        ));
        // On main, regtest's limit is above the limit.
        let m = Params::main();
        let b = mined(&p, vec![coinbase(1)]);
        assert_eq!(block_reason(&b, &m), Some("bad-diffbits"));
        assert!(check_block(&b, &m).unwrap_err().header_invalid());
    }

    #[test]
    fn empty_block() {
        let p = Params::regtest();
        let b = mined(&p, vec![]);
        assert_eq!(check_block(&b, &p), Err(BlockRejection::Empty));
        assert!(!BlockRejection::Empty.header_invalid());
    }

    #[test]
    fn merkle_rules() {
        let p = Params::regtest();
        let txs = vec![coinbase(1), spend(), {
            let mut t = spend();
            t.inputs[0].prev_out.vout = 7;
            t
        }];
        let b = mined(&p, txs);
        assert_eq!(check_block(&b, &p), Ok(()));
        // Changing a transaction breaks the root.
        let mut bad = b.clone();
        bad.txdata[1].lock_time = 5;
        let bad = remine(bad);
        let err = check_block(&bad, &p).unwrap_err();
        assert_eq!(err.reason(), "bad-txnmrklroot");
        assert!(!err.header_invalid());
        // Repeating the last transaction keeps the root and is caught as a mutation.
        let mut dup = b.clone();
        dup.txdata.push(dup.txdata[2].clone());
        assert_eq!(dup.compute_merkle_root().0, b.header.merkle_root);
        assert_eq!(check_block(&dup, &p), Err(BlockRejection::MerkleMutated));
        assert!(!BlockRejection::MerkleMutated.header_invalid());
        // A non-adjacent duplicate changes the root but is still a duplicate.
        let d = mined(&p, vec![coinbase(1), spend(), b.txdata[2].clone(), spend()]);
        assert_eq!(
            check_block(&d, &p),
            Err(BlockRejection::DuplicateTx {
                txid: spend().txid()
            })
        );
    }

    #[test]
    fn block_size_at_and_past_limit() {
        let p = Params::regtest().clone();
        let small = Params {
            max_block_size: 2_000,
            ..p.clone()
        };
        let mut txs = vec![coinbase(1)];
        let cb_len = |txs: &Vec<Transaction>| {
            Block {
                header: Header::from_bytes(&[0; 80]),
                txdata: txs.clone(),
            }
            .encoded_len()
        };
        let mut i = 0;
        while cb_len(&txs) + 200 < small.max_block_size {
            let mut t = spend();
            t.inputs[0].prev_out.vout = i;
            i += 1;
            txs.push(t);
        }
        // Pad the coinbase output script so the block is exactly the limit.
        let pad = small.max_block_size - cb_len(&txs);
        txs[0].outputs[0].script_pubkey = Script::new(vec![0x51; 25 + pad]);
        let excess = cb_len(&txs) - small.max_block_size; // CompactSize growth
        txs[0].outputs[0].script_pubkey = Script::new(vec![0x51; 25 + pad - excess]);
        let b = mined(&small, txs.clone());
        assert_eq!(b.encoded_len(), small.max_block_size);
        assert_eq!(check_block(&b, &small), Ok(()));
        txs[0].outputs[0].script_pubkey = Script::new(vec![0x51; 26 + pad - excess]);
        let b = mined(&small, txs);
        assert_eq!(
            check_block(&b, &small),
            Err(BlockRejection::Oversize {
                size: 2_001,
                max: 2_000
            })
        );
        assert_eq!(check_block(&b, &p), Ok(()));
    }

    #[test]
    fn coinbase_position() {
        let p = Params::regtest();
        let b = mined(&p, vec![spend()]);
        assert_eq!(block_reason(&b, &p), Some("bad-cb-missing"));
        // The header commits to this very list: the block is invalid for good.
        assert!(check_block(&b, &p).unwrap_err().header_invalid());
        let b = mined(&p, vec![coinbase(1), spend(), coinbase(2)]);
        assert_eq!(
            check_block(&b, &p),
            Err(BlockRejection::CoinbaseMultiple { index: 2 })
        );
    }

    #[test]
    fn transaction_failures_carry_index_and_reason() {
        let p = Params::regtest();
        let mut bad = spend();
        bad.outputs.clear();
        let b = mined(&p, vec![coinbase(1), spend(), bad.clone()]);
        let err = check_block(&b, &p).unwrap_err();
        assert_eq!(
            err,
            BlockRejection::Transaction {
                index: 2,
                txid: bad.txid(),
                rejection: TxRejection::VoutEmpty
            }
        );
        assert_eq!(err.reason(), "bad-txns-vout-empty");
        assert!(err.to_string().contains(&bad.txid().to_string()), "{err}");
        let mut cb = coinbase(1);
        cb.job_id = JobId::hash(b"j");
        let b = mined(&p, vec![cb]);
        assert_eq!(block_reason(&b, &p), Some("bad-cb-jobid"));
    }

    #[test]
    fn median_time() {
        assert_eq!(median_time_past(&[]), 0);
        assert_eq!(median_time_past(&[5]), 5);
        assert_eq!(median_time_past(&[9, 1]), 9);
        assert_eq!(median_time_past(&[3, 1, 2]), 2);
        let times: Vec<u32> = (0..11).map(|i| (i * 7919) % 101).collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(median_time_past(&times), sorted[5]);
    }

    #[test]
    fn header_context_rules() {
        let p = Params::main();
        let h = Header {
            time: 10_000,
            bits: 0x1f00_ffff,
            ..Header::from_bytes(&[0; 80])
        };
        let reason = |bits, mtp, now| {
            check_header_contextual(&h, bits, mtp, now, &p)
                .err()
                .map(|e| e.reason())
        };
        assert_eq!(reason(0x1f00_ffff, 9_999, 10_000), None);
        assert_eq!(reason(0x1f00_fffe, 9_999, 10_000), Some("bad-diffbits"));
        assert_eq!(reason(0x1f00_ffff, 10_000, 10_000), Some("time-too-old"));
        // Exactly max_future_block_time ahead is accepted; one second more is not.
        assert_eq!(reason(0x1f00_ffff, 0, 10_000 - 7_200), None);
        let err = check_header_contextual(&h, 0x1f00_ffff, 0, 10_000 - 7_201, &p).unwrap_err();
        assert_eq!(
            err,
            BlockRejection::TimeTooNew {
                time: 10_000,
                max: 9_999
            }
        );
        assert!(!err.header_invalid());
        assert!(
            check_header_contextual(&h, 1, 0, 0, &p)
                .unwrap_err()
                .header_invalid()
        );
    }

    #[test]
    fn block_context_rules() {
        let p = Params::regtest();
        let b = mined(&p, vec![coinbase(7), spend()]);
        assert_eq!(check_block_contextual(&b, 7), Ok(()));
        assert_eq!(
            check_block_contextual(&b, 8),
            Err(BlockRejection::CoinbaseHeight {
                expected: 8,
                got: Some(7)
            })
        );
        // Lock time: minable at its own height, not one earlier, unless every input is final.
        let mut locked = spend();
        locked.lock_time = 7;
        let b = mined(&p, vec![coinbase(7), locked.clone()]);
        assert_eq!(check_block_contextual(&b, 7), Ok(()));
        locked.lock_time = 8;
        let b = mined(&p, vec![coinbase(7), locked.clone()]);
        let err = check_block_contextual(&b, 7).unwrap_err();
        assert_eq!(err.reason(), "bad-txns-nonfinal");
        assert!(
            err.to_string().contains(&locked.txid().to_string()),
            "{err}"
        );
        locked.inputs[0].sequence = SEQUENCE_FINAL;
        assert!(is_final(&locked, 7));
    }

    #[test]
    fn coinbase_amount_rules() {
        let p = Params::regtest();
        let subsidy = p.block_subsidy(150);
        let fees = Amount::from_base(1_000).unwrap();
        let pay = |v: u64| {
            let cb = build_coinbase(150, b"", vec![out(v, 1)]).unwrap();
            mined(&p, vec![cb])
        };
        let limit = subsidy.to_base() + fees.to_base();
        assert_eq!(check_coinbase_amount(&pay(limit), 150, fees, &p), Ok(()));
        let err = check_coinbase_amount(&pay(limit + 1), 150, fees, &p).unwrap_err();
        assert_eq!(err.reason(), "bad-cb-amount");
        assert_eq!(
            err.to_string(),
            "bad-cb-amount: coinbase pays 25.00001001, at most 25.00001000 allowed"
        );
        // Height 149 still pays 50 coins.
        assert_eq!(
            check_coinbase_amount(&pay(limit + 1), 149, fees, &p),
            Ok(())
        );
    }
}
