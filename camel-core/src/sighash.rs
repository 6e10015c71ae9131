//! The digest an input's signature commits to.
//!
//! A BIP143-style digest (not Bitcoin's legacy one): it commits to the value of the output
//! being spent, so a light wallet can sign without fetching whole previous transactions,
//! and hashing is linear in the transaction size (the three aggregate hashes are computed
//! once per transaction by [`SighashCache`]). Only `SIGHASH_ALL` exists.
//!
//! ```text
//! digest = SHA-256d( version: i32
//!                  ‖ hash_prevouts   = SHA-256d(all inputs' outpoints)
//!                  ‖ hash_sequences  = SHA-256d(all inputs' sequences, u32 each)
//!                  ‖ outpoint of this input (txid ‖ vout: u32)
//!                  ‖ var_bytes script_code (the scriptPubKey being spent)
//!                  ‖ spent value: u64
//!                  ‖ sequence of this input: u32
//!                  ‖ hash_outputs    = SHA-256d(all outputs, encoded)
//!                  ‖ lock_time: u32
//!                  ‖ job_id: [u8; 32]
//!                  ‖ sighash type: u32 )
//! ```

use core::fmt;

use crate::amount::Amount;
use crate::encode::{Encodable, write_var_bytes};
use crate::hash::{Hash256, sha256d};
use crate::script::Script;
use crate::transaction::Transaction;

/// The only sighash type: the signature covers every input and output.
pub const SIGHASH_ALL: u8 = 0x01;

/// Why a signature hash could not be computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SighashError {
    /// The input index is past the transaction's inputs.
    InputIndex { index: usize, inputs: usize },
}

impl fmt::Display for SighashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InputIndex { index, inputs } => {
                write!(
                    f,
                    "input index {index} out of range for a transaction with {inputs} inputs"
                )
            }
        }
    }
}

impl std::error::Error for SighashError {}

/// Per-transaction hashes shared by every input's digest.
#[derive(Debug, Clone)]
pub struct SighashCache<'a> {
    tx: &'a Transaction,
    hash_prevouts: [u8; 32],
    hash_sequences: [u8; 32],
    hash_outputs: [u8; 32],
}

impl<'a> SighashCache<'a> {
    pub fn new(tx: &'a Transaction) -> Self {
        let mut prevouts = Vec::with_capacity(tx.inputs.len().saturating_mul(36));
        let mut sequences = Vec::with_capacity(tx.inputs.len().saturating_mul(4));
        for input in &tx.inputs {
            input.prev_out.encode(&mut prevouts);
            input.sequence.encode(&mut sequences);
        }
        let mut outputs = Vec::new();
        for output in &tx.outputs {
            output.encode(&mut outputs);
        }
        Self {
            tx,
            hash_prevouts: sha256d(&prevouts),
            hash_sequences: sha256d(&sequences),
            hash_outputs: sha256d(&outputs),
        }
    }

    pub fn transaction(&self) -> &'a Transaction {
        self.tx
    }

    /// The digest input `index` signs when spending an output of `spent_value` locked by `script_code`.
    pub fn signature_hash(
        &self,
        index: usize,
        script_code: &Script,
        spent_value: Amount,
    ) -> Result<Hash256, SighashError> {
        let input = self.tx.inputs.get(index).ok_or(SighashError::InputIndex {
            index,
            inputs: self.tx.inputs.len(),
        })?;
        let mut pre = Vec::with_capacity(script_code.len().saturating_add(220));
        self.tx.version.encode(&mut pre);
        pre.extend_from_slice(&self.hash_prevouts);
        pre.extend_from_slice(&self.hash_sequences);
        input.prev_out.encode(&mut pre);
        write_var_bytes(&mut pre, script_code.as_bytes());
        spent_value.encode(&mut pre);
        input.sequence.encode(&mut pre);
        pre.extend_from_slice(&self.hash_outputs);
        self.tx.lock_time.encode(&mut pre);
        self.tx.job_id.encode(&mut pre);
        u32::from(SIGHASH_ALL).encode(&mut pre);
        Ok(Hash256::hash(&pre))
    }
}

/// One-off digest for a single input (builds a [`SighashCache`]; reuse one for many inputs).
pub fn signature_hash(
    tx: &Transaction,
    index: usize,
    script_code: &Script,
    spent_value: Amount,
) -> Result<Hash256, SighashError> {
    SighashCache::new(tx).signature_hash(index, script_code, spent_value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{JobId, Txid};
    use crate::transaction::{OutPoint, TxIn, TxOut};

    fn sample() -> Transaction {
        Transaction {
            version: 1,
            inputs: (0..2u8)
                .map(|i| TxIn {
                    prev_out: OutPoint::new(Txid::from_byte_array([i + 1; 32]), u32::from(i)),
                    script_sig: Script::default(),
                    sequence: 0xffff_fffe,
                })
                .collect(),
            outputs: vec![TxOut {
                value: Amount::from_coins(1).unwrap(),
                script_pubkey: Script::new(vec![0x51]),
            }],
            lock_time: 7,
            job_id: JobId::from_byte_array([9; 32]),
        }
    }

    #[test]
    fn commits_to_every_field() {
        let tx = sample();
        let code = Script::new(vec![0x76, 0xa9]);
        let v = Amount::from_coins(2).unwrap();
        let base = signature_hash(&tx, 0, &code, v).unwrap();
        assert_ne!(
            base,
            signature_hash(&tx, 1, &code, v).unwrap(),
            "input index"
        );
        assert_ne!(
            base,
            signature_hash(&tx, 0, &Script::new(vec![0x76]), v).unwrap(),
            "script code"
        );
        assert_ne!(
            base,
            signature_hash(&tx, 0, &code, Amount::from_coins(3).unwrap()).unwrap(),
            "spent value"
        );
        let mutations: [fn(&mut Transaction); 7] = [
            |t| t.version = 2,
            |t| t.lock_time = 8,
            |t| t.job_id = JobId::ZERO,
            |t| t.inputs[1].sequence = 0,
            |t| t.inputs[1].prev_out.vout = 5,
            |t| t.outputs[0].value = Amount::ZERO,
            |t| t.outputs.push(t.outputs[0].clone()),
        ];
        for (i, m) in mutations.iter().enumerate() {
            let mut t = sample();
            m(&mut t);
            assert_ne!(
                base,
                signature_hash(&t, 0, &code, v).unwrap(),
                "mutation {i}"
            );
        }
        // scriptSigs are not signed (they hold the signatures).
        let mut t = sample();
        t.inputs[1].script_sig = Script::new(vec![1, 2, 3]);
        assert_eq!(base, signature_hash(&t, 0, &code, v).unwrap());
    }

    #[test]
    fn index_out_of_range() {
        let tx = sample();
        assert_eq!(
            signature_hash(&tx, 2, &Script::default(), Amount::ZERO),
            Err(SighashError::InputIndex {
                index: 2,
                inputs: 2
            })
        );
    }
}
