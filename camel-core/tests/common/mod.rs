//! Builders for contextual-validation tests: a regtest chain state in memory (a `HashMap`
//! UTXO view and job map), real keys, signed transactions and mined blocks.

#![allow(dead_code)]

use std::collections::HashMap;

use camel_core::amount::{Amount, COIN};
use camel_core::block::{Block, Header, build_coinbase};
use camel_core::contextual::{
    BlockChanges, BlockContext, BlockError, connect_block, run_script_checks,
};
use camel_core::hash::{BlockHash, Hash256, JobId, Txid};
use camel_core::interpreter::{FraudProofError, FraudProofOracle, NoFraudProofs};
use camel_core::job::rules::JobRecord;
use camel_core::keys::{PrivateKey, PublicKey};
use camel_core::params::Params;
use camel_core::script::Script;
use camel_core::sighash::SighashCache;
use camel_core::templates::{self, Escrow, Payment, Stake, input_signature};
use camel_core::transaction::{OutPoint, Transaction, TxIn, TxOut};
use camel_core::utxo::Coin;

/// Height of the block every test connects.
pub const HEIGHT: u32 = 300;
/// Median time past of its parent chain.
pub const MTP: u32 = 1_795_700_000;
/// The node's clock.
pub const NOW: u32 = MTP + 1_000;
/// A sequence that leaves the lock time in force.
pub const SEQ: u32 = 0xffff_fffe;
/// The evidence [`TestOracle`] accepts.
pub const FRAUD: &[u8] = b"token 17 is not the argmax";
/// The delivery key the payment HTLCs lock to.
pub const DELIVERY_KEY: [u8; 32] = [0x5a; 32];

pub fn key(b: u8) -> PrivateKey {
    PrivateKey::from_slice(&[b; 32]).unwrap()
}

pub fn client() -> PrivateKey {
    key(0x11)
}
pub fn worker() -> PrivateKey {
    key(0x22)
}
pub fn miner() -> PrivateKey {
    key(0x33)
}

pub fn coins(n: u64) -> Amount {
    Amount::from_base(n * COIN).unwrap()
}

pub fn units(n: u64) -> Amount {
    Amount::from_base(n).unwrap()
}

pub fn p2pkh_of(k: &PrivateKey) -> Script {
    templates::p2pkh(&k.public_key().pubkey_hash())
}

pub fn out(value: Amount, script_pubkey: Script) -> TxOut {
    TxOut {
        value,
        script_pubkey,
    }
}

pub fn job() -> JobId {
    JobId::hash(b"job: summarise the camelid family")
}

pub fn escrow_script(j: JobId, refund_height: u32) -> Script {
    Escrow {
        job_id: j,
        client: client().public_key(),
        refund_height,
    }
    .script_pubkey()
}

pub fn stake_script(j: JobId, window_end_height: u32) -> Script {
    stake_script_for(
        j,
        worker().public_key(),
        client().public_key(),
        window_end_height,
    )
}

pub fn stake_script_for(
    j: JobId,
    worker: PublicKey,
    client: PublicKey,
    window_end_height: u32,
) -> Script {
    Stake {
        job_id: j,
        worker,
        client,
        window_end_height,
    }
    .script_pubkey()
}

pub fn payment_script(timeout_height: u32) -> Script {
    Payment {
        job_id: job(),
        key_hash: Payment::key_hash_of(&DELIVERY_KEY),
        worker: worker().public_key(),
        client: client().public_key(),
        timeout_height,
    }
    .script_pubkey()
}

/// How an input is unlocked.
#[derive(Debug, Clone)]
pub enum Unlock {
    P2pkh(PrivateKey),
    EscrowPay(PrivateKey),
    EscrowRefund(PrivateKey),
    Claim(PrivateKey, [u8; 32]),
    PaymentRefund(PrivateKey),
    Slash(PrivateKey, Vec<u8>),
    Reclaim(PrivateKey),
}

/// An input to sign: the coin it spends and how.
#[derive(Debug, Clone)]
pub struct Spend {
    pub outpoint: OutPoint,
    pub output: TxOut,
    pub unlock: Unlock,
}

impl Spend {
    pub fn new(outpoint: OutPoint, coin: &Coin, unlock: Unlock) -> Self {
        Self {
            outpoint,
            output: coin.output.clone(),
            unlock,
        }
    }

    /// Spends output `vout` of `tx` (created in the same block or earlier).
    pub fn of(tx: &Transaction, vout: u32, unlock: Unlock) -> Self {
        Self {
            outpoint: OutPoint::new(tx.txid(), vout),
            output: tx.outputs[vout as usize].clone(),
            unlock,
        }
    }
}

/// A transaction spending `spends` into `outputs`, every input signed for real.
pub fn signed_tx(
    spends: &[Spend],
    outputs: Vec<TxOut>,
    job_id: JobId,
    lock_time: u32,
) -> Transaction {
    let mut tx = Transaction {
        version: 1,
        inputs: spends
            .iter()
            .map(|s| TxIn {
                prev_out: s.outpoint,
                script_sig: Script::default(),
                sequence: SEQ,
            })
            .collect(),
        outputs,
        lock_time,
        job_id,
    };
    let sigs: Vec<Script> = {
        let cache = SighashCache::new(&tx);
        spends
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let sign = |k: &PrivateKey| input_signature(k, &cache, i, &s.output).unwrap();
                match &s.unlock {
                    Unlock::P2pkh(k) => templates::p2pkh_script_sig(&sign(k), &k.public_key()),
                    Unlock::EscrowPay(k) => Escrow::pay_script_sig(&sign(k)),
                    Unlock::EscrowRefund(k) => Escrow::refund_script_sig(&sign(k)),
                    Unlock::Claim(k, key) => Payment::claim_script_sig(&sign(k), key),
                    Unlock::PaymentRefund(k) => Payment::refund_script_sig(&sign(k)),
                    Unlock::Slash(k, evidence) => Stake::slash_script_sig(&sign(k), evidence),
                    Unlock::Reclaim(k) => Stake::reclaim_script_sig(&sign(k)),
                }
                .unwrap()
            })
            .collect()
    };
    for (input, sig) in tx.inputs.iter_mut().zip(sigs) {
        input.script_sig = sig;
    }
    tx
}

/// Accepts exactly [`FRAUD`] against the worker's key for any job.
#[derive(Debug, Clone, Copy)]
pub struct TestOracle;

impl FraudProofOracle for TestOracle {
    fn check_fraud_proof(
        &self,
        _job: &JobId,
        w: &PublicKey,
        evidence: &[u8],
    ) -> Result<(), FraudProofError> {
        if *w == worker().public_key() && evidence == FRAUD {
            Ok(())
        } else {
            Err(FraudProofError::Invalid(
                "evidence does not show a wrong token".into(),
            ))
        }
    }
}

/// A regtest chain state in memory and the context of the block at [`HEIGHT`].
pub struct Fixture {
    pub params: Params,
    pub utxos: HashMap<OutPoint, Coin>,
    pub jobs: HashMap<JobId, JobRecord>,
    pub ctx: BlockContext,
    /// Header time and bits of the next block built.
    pub time: u32,
    pub bits: u32,
    /// What the coinbase pays; `None` pays the subsidy.
    pub coinbase_value: Option<Amount>,
    /// The height the coinbase commits to; `None` commits to `ctx.height`.
    pub coinbase_height: Option<u32>,
    pub oracle: Box<dyn FraudProofOracle>,
    next_fund: u8,
}

impl Fixture {
    pub fn new() -> Self {
        let params = Params::regtest();
        Self {
            ctx: BlockContext {
                height: HEIGHT,
                median_time_past: MTP,
                expected_bits: params.pow_limit_bits,
                adjusted_time: NOW,
            },
            time: MTP + 1,
            bits: params.pow_limit_bits,
            params,
            utxos: HashMap::new(),
            jobs: HashMap::new(),
            coinbase_value: None,
            coinbase_height: None,
            oracle: Box::new(NoFraudProofs),
            next_fund: 0,
        }
    }

    /// Adds a coin to the view under a fresh outpoint.
    pub fn add_coin(&mut self, output: TxOut, height: u32, is_coinbase: bool) -> (OutPoint, Coin) {
        self.next_fund += 1;
        let outpoint = OutPoint::new(Txid::hash(&[b'f', self.next_fund]), 0);
        let coin = Coin {
            output,
            height,
            is_coinbase,
        };
        self.utxos.insert(outpoint, coin.clone());
        (outpoint, coin)
    }

    /// An ordinary P2PKH coin of `value` for `owner`, created long ago.
    pub fn fund(&mut self, owner: &PrivateKey, value: Amount) -> Spend {
        let (o, c) = self.add_coin(out(value, p2pkh_of(owner)), 100, false);
        Spend::new(o, &c, Unlock::P2pkh(*owner))
    }

    /// Job `job()` created at `created_height` with an escrow of 5 coins refundable from
    /// `refund_height`; returns the escrow's outpoint and coin.
    pub fn add_job(&mut self, created_height: u32, refund_height: u32) -> (OutPoint, Coin) {
        let (o, c) = self.add_coin(
            out(coins(5), escrow_script(job(), refund_height)),
            created_height,
            false,
        );
        self.jobs.insert(job(), JobRecord::new(created_height, o));
        (o, c)
    }

    /// A stake of 2 coins for `job()` created at `height`, locked until `window_end`.
    pub fn add_stake(&mut self, height: u32, window_end: u32) -> (OutPoint, Coin) {
        let (o, c) = self.add_coin(
            out(coins(2), stake_script(job(), window_end)),
            height,
            false,
        );
        if let Some(r) = self.jobs.get_mut(&job()) {
            r.stake.get_or_insert(o);
        }
        (o, c)
    }

    /// A payment HTLC of 5 coins for `job()` mined at `height`, recorded as the job's payment.
    pub fn add_payment(&mut self, height: u32) -> (OutPoint, Coin) {
        let (o, c) = self.add_coin(out(coins(5), payment_script(900)), height, false);
        let r = self.jobs.get_mut(&job()).expect("add_job first");
        r.payments.push(o);
        r.paid_height.get_or_insert(height);
        (o, c)
    }

    pub fn coinbase(&self) -> Transaction {
        let height = self.coinbase_height.unwrap_or(self.ctx.height);
        let value = self
            .coinbase_value
            .unwrap_or_else(|| self.params.block_subsidy(self.ctx.height));
        build_coinbase(height, b"camel test", vec![out(value, p2pkh_of(&miner()))]).unwrap()
    }

    /// A mined block: the coinbase, then `txs`.
    pub fn block(&self, txs: Vec<Transaction>) -> Block {
        let mut txdata = vec![self.coinbase()];
        txdata.extend(txs);
        let mut block = Block {
            header: Header {
                version: 1,
                prev_blockhash: BlockHash::hash(b"parent"),
                merkle_root: Hash256::ZERO,
                time: self.time,
                bits: self.bits,
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().0;
        mine(&mut block);
        block
    }

    /// Connects `block` and runs its script checks with the fixture's oracle.
    pub fn connect(&self, block: &Block) -> Result<BlockChanges, BlockError> {
        let (changes, checks) =
            connect_block(block, &self.ctx, &self.utxos, &self.jobs, &self.params)?;
        run_script_checks(&checks, self.oracle.as_ref())?;
        Ok(changes)
    }

    /// Writes a connected block's changes into the state, as the node's store does.
    pub fn apply(&mut self, changes: &BlockChanges) {
        for (o, _) in &changes.spent {
            assert!(self.utxos.remove(o).is_some(), "spent coin {o:?} missing");
        }
        for (o, c) in &changes.created {
            assert!(self.utxos.insert(*o, c.clone()).is_none());
        }
        for (id, r) in &changes.jobs_created {
            assert!(self.jobs.insert(*id, r.clone()).is_none());
        }
        for (id, before, after) in &changes.jobs_updated {
            assert_eq!(self.jobs.insert(*id, after.clone()).as_ref(), Some(before));
        }
    }

    /// Undoes [`Fixture::apply`].
    pub fn undo(&mut self, changes: &BlockChanges) {
        for (o, _) in &changes.created {
            assert!(self.utxos.remove(o).is_some());
        }
        for (o, c) in &changes.spent {
            assert!(self.utxos.insert(*o, c.clone()).is_none());
        }
        for (id, _) in &changes.jobs_created {
            assert!(self.jobs.remove(id).is_some());
        }
        for (id, before, _) in &changes.jobs_updated {
            self.jobs.insert(*id, before.clone());
        }
    }

    /// Moves the next block up by `n` heights (the view stays as it is).
    pub fn advance(&mut self, n: u32) {
        self.ctx.height += n;
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// Finds a nonce that meets the header's target.
pub fn mine(block: &mut Block) {
    assert!(block.header.solve());
}

/// Recomputes the merkle root and mines again (after changing the transactions).
pub fn remine(block: &mut Block) {
    assert!(block.solve());
}

/// `"ok"` or the rejection reason.
pub fn reason<T>(r: &Result<T, BlockError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.reason(),
    }
}
