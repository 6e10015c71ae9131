//! Transactions: inputs, outputs, lock time and the job id that binds a transaction to a job.
//!
//! Encoding (all little-endian): `version: i32 ‖ CompactSize n_in ‖ inputs ‖ CompactSize n_out ‖
//! outputs ‖ lock_time: u32 ‖ job_id: [u8; 32]`; an input is `prev_txid ‖ prev_vout: u32 ‖
//! var_bytes script_sig ‖ sequence: u32`, an output `value: u64 ‖ var_bytes script_pubkey`.
//! The txid is SHA-256d of that encoding.

use crate::amount::Amount;
use crate::encode::{
    Decodable, DecodeError, Encodable, Reader, compact_size_len, encode_to_vec, write_var_bytes,
    write_vec,
};
use crate::hash::{JobId, Txid};
use crate::script::{MAX_SCRIPT_PUBKEY_SIZE, MAX_SCRIPT_SIG_SIZE, Script};

/// Largest encoded transaction accepted anywhere (a block holds more than one).
pub const MAX_TX_SIZE: usize = 1_000_000;
/// `sequence` value that marks an input final (CHECKLOCKTIMEVERIFY refuses to run on it).
pub const SEQUENCE_FINAL: u32 = 0xffff_ffff;
/// The `vout` of a coinbase's null previous output.
pub const COINBASE_VOUT: u32 = 0xffff_ffff;

/// Smallest possible encoded input: 32 + 4 + 1 + 4.
const MIN_TXIN_SIZE: usize = 41;
/// Smallest possible encoded output: 8 + 1.
const MIN_TXOUT_SIZE: usize = 9;

/// A reference to an output of an earlier transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutPoint {
    pub txid: Txid,
    pub vout: u32,
}

impl OutPoint {
    pub const fn new(txid: Txid, vout: u32) -> Self {
        Self { txid, vout }
    }
    /// The previous output a coinbase input names.
    pub const NULL: Self = Self {
        txid: Txid::ZERO,
        vout: COINBASE_VOUT,
    };
    pub fn is_null(&self) -> bool {
        *self == Self::NULL
    }
}

/// A transaction input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxIn {
    pub prev_out: OutPoint,
    pub script_sig: Script,
    pub sequence: u32,
}

/// A transaction output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOut {
    pub value: Amount,
    pub script_pubkey: Script,
}

/// A transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub version: i32,
    pub inputs: Vec<TxIn>,
    pub outputs: Vec<TxOut>,
    /// Earliest block height at which the transaction may be mined (0 = any). Always a height.
    pub lock_time: u32,
    /// The job this transaction belongs to; `JobId::ZERO` when none.
    pub job_id: JobId,
}

impl Transaction {
    /// SHA-256d of the consensus encoding.
    pub fn txid(&self) -> Txid {
        Txid::hash(&encode_to_vec(self))
    }

    /// A coinbase has exactly one input, spending the null outpoint.
    pub fn is_coinbase(&self) -> bool {
        matches!(self.inputs.as_slice(), [only] if only.prev_out.is_null())
    }

    /// Sum of output values, `None` if it exceeds the money supply.
    pub fn total_output(&self) -> Option<Amount> {
        Amount::checked_sum(self.outputs.iter().map(|o| o.value))
    }
}

impl Encodable for OutPoint {
    fn encode(&self, out: &mut Vec<u8>) {
        self.txid.encode(out);
        self.vout.encode(out);
    }
    fn encoded_len(&self) -> usize {
        36
    }
}

impl Decodable for OutPoint {
    const MIN_ENCODED_SIZE: usize = 36;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            txid: Txid::decode(r)?,
            vout: r.read_u32()?,
        })
    }
}

impl Encodable for TxIn {
    fn encode(&self, out: &mut Vec<u8>) {
        self.prev_out.encode(out);
        write_var_bytes(out, self.script_sig.as_bytes());
        self.sequence.encode(out);
    }
    fn encoded_len(&self) -> usize {
        let n = self.script_sig.len();
        36usize
            .saturating_add(compact_size_len(n as u64))
            .saturating_add(n)
            .saturating_add(4)
    }
}

impl Decodable for TxIn {
    const MIN_ENCODED_SIZE: usize = MIN_TXIN_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            prev_out: OutPoint::decode(r)?,
            script_sig: Script::new(r.read_var_bytes("script_sig", MAX_SCRIPT_SIG_SIZE)?),
            sequence: r.read_u32()?,
        })
    }
}

impl Encodable for TxOut {
    fn encode(&self, out: &mut Vec<u8>) {
        self.value.encode(out);
        write_var_bytes(out, self.script_pubkey.as_bytes());
    }
    fn encoded_len(&self) -> usize {
        let n = self.script_pubkey.len();
        8usize
            .saturating_add(compact_size_len(n as u64))
            .saturating_add(n)
    }
}

impl Decodable for TxOut {
    const MIN_ENCODED_SIZE: usize = MIN_TXOUT_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            value: Amount::decode(r)?,
            script_pubkey: Script::new(r.read_var_bytes("script_pubkey", MAX_SCRIPT_PUBKEY_SIZE)?),
        })
    }
}

impl Encodable for Transaction {
    fn encode(&self, out: &mut Vec<u8>) {
        self.version.encode(out);
        write_vec(out, &self.inputs);
        write_vec(out, &self.outputs);
        self.lock_time.encode(out);
        self.job_id.encode(out);
    }
    fn encoded_len(&self) -> usize {
        let ins: usize = self
            .inputs
            .iter()
            .map(Encodable::encoded_len)
            .fold(0, usize::saturating_add);
        let outs: usize = self
            .outputs
            .iter()
            .map(Encodable::encoded_len)
            .fold(0, usize::saturating_add);
        4usize
            .saturating_add(compact_size_len(self.inputs.len() as u64))
            .saturating_add(ins)
            .saturating_add(compact_size_len(self.outputs.len() as u64))
            .saturating_add(outs)
            .saturating_add(4 + 32)
    }
}

impl Decodable for Transaction {
    /// version, two empty counts, lock time, job id.
    const MIN_ENCODED_SIZE: usize = 4 + 1 + 1 + 4 + 32;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.remaining();
        let version = r.read_i32()?;
        let inputs = r.read_vec("inputs", MAX_TX_SIZE / MIN_TXIN_SIZE)?;
        let outputs = r.read_vec("outputs", MAX_TX_SIZE / MIN_TXOUT_SIZE)?;
        let lock_time = r.read_u32()?;
        let job_id = JobId::decode(r)?;
        let size = start.saturating_sub(r.remaining());
        if size > MAX_TX_SIZE {
            return Err(DecodeError::TooLong {
                what: "transaction",
                len: size as u64,
                max: MAX_TX_SIZE as u64,
            });
        }
        Ok(Self {
            version,
            inputs,
            outputs,
            lock_time,
            job_id,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::encode::decode_from_slice;
    use proptest::prelude::*;

    pub fn arb_script(max: usize) -> impl Strategy<Value = Script> {
        proptest::collection::vec(any::<u8>(), 0..max).prop_map(Script::new)
    }

    pub fn arb_tx() -> impl Strategy<Value = Transaction> {
        let txin = (
            any::<[u8; 32]>(),
            any::<u32>(),
            arb_script(120),
            any::<u32>(),
        )
            .prop_map(|(t, v, s, q)| TxIn {
                prev_out: OutPoint::new(Txid::from_byte_array(t), v),
                script_sig: s,
                sequence: q,
            });
        let txout = (0..=crate::amount::MAX_MONEY, arb_script(60)).prop_map(|(v, s)| TxOut {
            value: Amount::from_base(v).unwrap_or(Amount::ZERO),
            script_pubkey: s,
        });
        (
            any::<i32>(),
            proptest::collection::vec(txin, 0..4),
            proptest::collection::vec(txout, 0..4),
            any::<u32>(),
            any::<[u8; 32]>(),
        )
            .prop_map(|(version, inputs, outputs, lock_time, j)| Transaction {
                version,
                inputs,
                outputs,
                lock_time,
                job_id: JobId::from_byte_array(j),
            })
    }

    proptest! {
        #[test]
        fn roundtrip(tx in arb_tx()) {
            let bytes = encode_to_vec(&tx);
            prop_assert_eq!(bytes.len(), tx.encoded_len());
            let back: Transaction = decode_from_slice(&bytes).unwrap();
            prop_assert_eq!(&back, &tx);
            prop_assert_eq!(encode_to_vec(&back), bytes);
        }

        #[test]
        fn truncation_always_errors(tx in arb_tx(), cut in any::<proptest::sample::Index>()) {
            let bytes = encode_to_vec(&tx);
            let n = cut.index(bytes.len());
            prop_assert!(decode_from_slice::<Transaction>(&bytes[..n]).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_from_slice::<Transaction>(&bytes);
        }
    }

    #[test]
    fn trailing_bytes_rejected() {
        let tx = Transaction {
            version: 1,
            inputs: vec![],
            outputs: vec![],
            lock_time: 0,
            job_id: JobId::ZERO,
        };
        let mut bytes = encode_to_vec(&tx);
        bytes.push(0);
        assert_eq!(
            decode_from_slice::<Transaction>(&bytes),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn oversized_script_rejected() {
        let tx = Transaction {
            version: 1,
            inputs: vec![],
            outputs: vec![TxOut {
                value: Amount::ZERO,
                script_pubkey: Script::new(vec![0; MAX_SCRIPT_PUBKEY_SIZE + 1]),
            }],
            lock_time: 0,
            job_id: JobId::ZERO,
        };
        let err = decode_from_slice::<Transaction>(&encode_to_vec(&tx)).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::TooLong {
                    what: "script_pubkey",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn coinbase_detection() {
        let mut tx = Transaction {
            version: 1,
            inputs: vec![],
            outputs: vec![],
            lock_time: 0,
            job_id: JobId::ZERO,
        };
        assert!(!tx.is_coinbase());
        tx.inputs.push(TxIn {
            prev_out: OutPoint::NULL,
            script_sig: Script::default(),
            sequence: 0,
        });
        assert!(tx.is_coinbase());
        tx.inputs.push(tx.inputs[0].clone());
        assert!(!tx.is_coinbase());
    }
}
