//! The worker's commitment (`docs/protocol.md` §13.3): what it generated, where its stake is,
//! which key unlocks the delivery and which ciphertext it delivered, signed by its job key.

use core::fmt;

use crate::encode::{Decodable, DecodeError, Encodable, Reader, encode_to_vec, write_var_bytes};
use crate::hash::{Hash256, JobId, sha256};
use crate::keys::{KeyError, PrivateKey, PublicKey};
use crate::transaction::OutPoint;

use super::{read_pubkey, read_sig, sign_tagged, tagged_digest, verify_tagged};

pub const COMMITMENT_VERSION: u8 = 1;
const TAG: &[u8] = b"camelid/commitment";
/// Longest encoded commitment.
pub const MAX_COMMITMENT_SIZE: usize = UNSIGNED_SIZE + 1 + super::MAX_SIG_LEN;
const UNSIGNED_SIZE: usize = 1 + 32 + 33 + 36 + 32 + 4 + 32 + 32 + 32 + 20;

/// A signed commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commitment {
    pub job_id: JobId,
    pub worker: PublicKey,
    /// The worker's acceptance stake.
    pub stake: OutPoint,
    pub output_hash: [u8; 32],
    pub output_len: u32,
    /// SHA-256 of the output text.
    pub text_hash: [u8; 32],
    /// SHA-256 of the delivery key: the payment's hash lock.
    pub key_hash: [u8; 32],
    /// SHA-256 of the delivery ciphertext.
    pub ciphertext_hash: [u8; 32],
    /// HASH160 of the key the worker's reclaims pay.
    pub reward: [u8; 20],
    /// DER signature by `worker` over [`Commitment::id`].
    pub sig: Vec<u8>,
}

/// Why a commitment is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitmentError {
    Signature(KeyError),
}

impl fmt::Display for CommitmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signature(e) => write!(f, "commitment signature: {e}"),
        }
    }
}

impl std::error::Error for CommitmentError {}

impl Commitment {
    fn unsigned(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(UNSIGNED_SIZE);
        out.push(COMMITMENT_VERSION);
        self.job_id.encode(&mut out);
        out.extend_from_slice(&self.worker.to_bytes());
        self.stake.encode(&mut out);
        out.extend_from_slice(&self.output_hash);
        self.output_len.encode(&mut out);
        out.extend_from_slice(&self.text_hash);
        out.extend_from_slice(&self.key_hash);
        out.extend_from_slice(&self.ciphertext_hash);
        out.extend_from_slice(&self.reward);
        out
    }

    /// `SHA256d("camelid/commitment" ‖ fields)`: what the worker signs and what RASTiC plans
    /// are drawn from.
    pub fn id(&self) -> Hash256 {
        tagged_digest(TAG, &self.unsigned())
    }

    /// Signs with the worker's key (which must be `self.worker`'s).
    pub fn sign(&mut self, key: &PrivateKey) {
        self.sig = sign_tagged(key, TAG, &self.unsigned());
    }

    pub fn verify(&self) -> Result<(), CommitmentError> {
        verify_tagged(&self.worker, TAG, &self.unsigned(), &self.sig)
            .map_err(CommitmentError::Signature)
    }

    /// Whether `key` is the delivery key this commitment locks to.
    pub fn key_matches(&self, key: &[u8; 32]) -> bool {
        sha256(key) == self.key_hash
    }

    /// Whether `ciphertext` is the one this commitment names.
    pub fn ciphertext_matches(&self, ciphertext: &[u8]) -> bool {
        sha256(ciphertext) == self.ciphertext_hash
    }
}

impl Encodable for Commitment {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.unsigned());
        write_var_bytes(out, &self.sig);
    }
}

impl Decodable for Commitment {
    const MIN_ENCODED_SIZE: usize = UNSIGNED_SIZE + 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.read_u8()? != COMMITMENT_VERSION {
            return Err(DecodeError::Invalid("commitment version"));
        }
        Ok(Self {
            job_id: JobId::decode(r)?,
            worker: read_pubkey(r)?,
            stake: OutPoint::decode(r)?,
            output_hash: r.read_array()?,
            output_len: r.read_u32()?,
            text_hash: r.read_array()?,
            key_hash: r.read_array()?,
            ciphertext_hash: r.read_array()?,
            reward: r.read_array()?,
            sig: read_sig(r)?,
        })
    }
}

impl Commitment {
    /// The encoding, for callers that hash or size it.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_to_vec(self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::encode::decode_from_slice;
    use crate::hash::Txid;

    pub(crate) fn signed(key: &PrivateKey, job_id: JobId) -> Commitment {
        let mut c = Commitment {
            job_id,
            worker: key.public_key(),
            stake: OutPoint::new(Txid::hash(b"stake"), 0),
            output_hash: [1; 32],
            output_len: 3,
            text_hash: [2; 32],
            key_hash: sha256(&[3; 32]),
            ciphertext_hash: [4; 32],
            reward: key.public_key().pubkey_hash(),
            sig: Vec::new(),
        };
        c.sign(key);
        c
    }

    #[test]
    fn sign_verify_roundtrip() {
        let key = PrivateKey::from_slice(&[8; 32]).unwrap();
        let c = signed(&key, JobId::hash(b"j"));
        c.verify().unwrap();
        let bytes = encode_to_vec(&c);
        assert!(bytes.len() <= MAX_COMMITMENT_SIZE);
        let back: Commitment = decode_from_slice(&bytes).unwrap();
        assert_eq!(back, c);
        assert!(c.key_matches(&[3; 32]));
        assert!(!c.key_matches(&[4; 32]));
        let mut t = c.clone();
        t.output_len = 4;
        assert!(t.verify().is_err());
        assert_ne!(t.id(), c.id());
        let mut other = c.clone();
        other.worker = PrivateKey::from_slice(&[9; 32]).unwrap().public_key();
        assert!(other.verify().is_err());
        for n in 0..bytes.len() {
            assert!(decode_from_slice::<Commitment>(&bytes[..n]).is_err());
        }
    }
}
