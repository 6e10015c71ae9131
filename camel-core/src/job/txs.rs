//! Building and signing the job protocol's transactions (`docs/protocol.md` §8.9, §13.7): the
//! client's job, payment, refund and slash, the worker's stake, claim and reclaim. Every
//! party builds them the same way, so they live here beside the rules they must satisfy.

use crate::amount::Amount;
use crate::hash::JobId;
use crate::keys::PrivateKey;
use crate::script::Script;
use crate::sighash::{SighashCache, SighashError};
use crate::templates::{self, Escrow, Payment, Stake, TemplateError, input_signature};
use crate::transaction::{OutPoint, Transaction, TxIn, TxOut};

/// The sequence every input gets: not final, so that `lock_time` applies (refunds, reclaims).
pub const INPUT_SEQUENCE: u32 = 0xffff_fffe;

/// How an input is unlocked.
#[derive(Debug, Clone)]
pub enum Unlock {
    /// A pay-to-public-key-hash coin of the key.
    P2pkh(PrivateKey),
    /// The client pays an escrow out (its job's payment transaction).
    EscrowPay(PrivateKey),
    /// The client takes an escrow back (lock time ≥ its refund height).
    EscrowRefund(PrivateKey),
    /// The worker claims a payment, revealing the delivery key.
    Claim(PrivateKey, [u8; 32]),
    /// The client takes an unclaimed payment back (lock time ≥ its timeout).
    PaymentRefund(PrivateKey),
    /// The client slashes a stake with fraud-proof evidence.
    Slash(PrivateKey, Vec<u8>),
    /// The worker takes a stake back (lock time ≥ its window end).
    Reclaim(PrivateKey),
}

/// One input: the coin it spends and how.
#[derive(Debug, Clone)]
pub struct Spend {
    pub outpoint: OutPoint,
    pub output: TxOut,
    pub unlock: Unlock,
}

/// Why a transaction could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// The inputs do not cover the outputs and the fee.
    Insufficient {
        have: Amount,
        need: Amount,
    },
    Sighash(String),
    Template(String),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Insufficient { have, need } => {
                write!(f, "the coins hold {have}, {need} needed (outputs and fee)")
            }
            Self::Sighash(e) => write!(f, "signature hash: {e}"),
            Self::Template(e) => write!(f, "script: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<SighashError> for BuildError {
    fn from(e: SighashError) -> Self {
        Self::Sighash(format!("{e:?}"))
    }
}

impl From<TemplateError> for BuildError {
    fn from(e: TemplateError) -> Self {
        Self::Template(format!("{e:?}"))
    }
}

/// A transaction spending `spends` into `outputs`, every input signed.
pub fn signed_tx(
    spends: &[Spend],
    outputs: Vec<TxOut>,
    job_id: JobId,
    lock_time: u32,
) -> Result<Transaction, BuildError> {
    let mut tx = Transaction {
        version: 1,
        inputs: spends
            .iter()
            .map(|s| TxIn {
                prev_out: s.outpoint,
                script_sig: Script::default(),
                sequence: INPUT_SEQUENCE,
            })
            .collect(),
        outputs,
        lock_time,
        job_id,
    };
    let mut sigs = Vec::with_capacity(spends.len());
    {
        let cache = SighashCache::new(&tx);
        for (i, s) in spends.iter().enumerate() {
            let sign = |k: &PrivateKey| input_signature(k, &cache, i, &s.output);
            let script = match &s.unlock {
                Unlock::P2pkh(k) => templates::p2pkh_script_sig(&sign(k)?, &k.public_key())?,
                Unlock::EscrowPay(k) => Escrow::pay_script_sig(&sign(k)?)?,
                Unlock::EscrowRefund(k) => Escrow::refund_script_sig(&sign(k)?)?,
                Unlock::Claim(k, key) => Payment::claim_script_sig(&sign(k)?, key)?,
                Unlock::PaymentRefund(k) => Payment::refund_script_sig(&sign(k)?)?,
                Unlock::Slash(k, evidence) => Stake::slash_script_sig(&sign(k)?, evidence)?,
                Unlock::Reclaim(k) => Stake::reclaim_script_sig(&sign(k)?)?,
            };
            sigs.push(script);
        }
    }
    for (input, sig) in tx.inputs.iter_mut().zip(sigs) {
        input.script_sig = sig;
    }
    Ok(tx)
}

/// `spends` plus as many of `coins` (P2PKH coins of `key`, in order) as it takes to pay
/// `outputs` and `fee`; the rest goes back to `change` when it is worth keeping.
#[allow(clippy::too_many_arguments)]
pub fn funded_tx(
    spends: Vec<Spend>,
    outputs: Vec<TxOut>,
    coins: &[(OutPoint, TxOut)],
    key: &PrivateKey,
    change: Script,
    fee: Amount,
    job_id: JobId,
    lock_time: u32,
) -> Result<Transaction, BuildError> {
    let keyed: Vec<(OutPoint, TxOut, PrivateKey)> = coins
        .iter()
        .map(|(op, out)| (*op, out.clone(), *key))
        .collect();
    funded_tx_keyed(spends, outputs, &keyed, change, fee, job_id, lock_time)
}

/// [`funded_tx`] over P2PKH coins of several keys, each coin with the key that spends it (a
/// wallet's coins sit on many addresses).
pub fn funded_tx_keyed(
    mut spends: Vec<Spend>,
    mut outputs: Vec<TxOut>,
    coins: &[(OutPoint, TxOut, PrivateKey)],
    change: Script,
    fee: Amount,
    job_id: JobId,
    lock_time: u32,
) -> Result<Transaction, BuildError> {
    let need = Amount::checked_sum(outputs.iter().map(|o| o.value))
        .and_then(|v| v.checked_add(fee))
        .unwrap_or(Amount::MAX);
    let mut have =
        Amount::checked_sum(spends.iter().map(|s| s.output.value)).unwrap_or(Amount::MAX);
    for (op, out, key) in coins {
        if have >= need {
            break;
        }
        have = have.checked_add(out.value).unwrap_or(Amount::MAX);
        spends.push(Spend {
            outpoint: *op,
            output: out.clone(),
            unlock: Unlock::P2pkh(*key),
        });
    }
    if have < need {
        return Err(BuildError::Insufficient { have, need });
    }
    if let Some(rest) = have.checked_sub(need)
        && rest.to_base() > 0
    {
        outputs.push(TxOut {
            value: rest,
            script_pubkey: change,
        });
    }
    signed_tx(&spends, outputs, job_id, lock_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::p2pkh;

    #[test]
    fn funds_with_change_and_refuses_short() {
        let k = PrivateKey::from_slice(&[5; 32]).unwrap();
        let script = p2pkh(&k.public_key().pubkey_hash());
        let coin = |n: u8, v: u64| {
            (
                OutPoint::new(crate::hash::Txid::hash(&[n]), 0),
                TxOut {
                    value: Amount::from_base(v).unwrap(),
                    script_pubkey: script.clone(),
                },
            )
        };
        let coins = [coin(1, 600), coin(2, 700), coin(3, 800)];
        let out = TxOut {
            value: Amount::from_base(1_000).unwrap(),
            script_pubkey: script.clone(),
        };
        let fee = Amount::from_base(100).unwrap();
        let tx = funded_tx(
            vec![],
            vec![out.clone()],
            &coins,
            &k,
            script.clone(),
            fee,
            JobId::ZERO,
            0,
        )
        .unwrap();
        assert_eq!(tx.inputs.len(), 2);
        assert_eq!(tx.outputs[1].value.to_base(), 200);
        let big = TxOut {
            value: Amount::from_base(5_000).unwrap(),
            script_pubkey: script.clone(),
        };
        assert!(matches!(
            funded_tx(vec![], vec![big], &coins, &k, script, fee, JobId::ZERO, 0),
            Err(BuildError::Insufficient { .. })
        ));
    }
}
