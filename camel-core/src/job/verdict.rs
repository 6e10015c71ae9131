//! Verification requests and signed verdicts (`docs/protocol.md` §13.8). The request's body
//! and the verdict both travel sealed; the verdict is signed by the verifier's job key.

use crate::encode::{
    Decodable, DecodeError, Encodable, Reader, encode_to_vec, write_var_bytes, write_vec,
};
use crate::hash::{Hash256, JobId, ModelId};
use crate::keys::{KeyError, PrivateKey, PublicKey};
use crate::rastic::{CheckMode, StructureFault, TokenId};

use super::commitment::Commitment;
use super::envelope::Sealed;
use super::output::MAX_OUTPUT_TEXT;
use super::params::{JobParams, MAX_JOB_TOKENS, MAX_PROMPT_BYTES};
use super::{
    read_bool, read_pubkey, read_sig, read_tokens, sign_tagged, verify_tagged, write_tokens,
};

const VERDICT_TAG: &[u8] = b"camelid/job/verdict";
pub const VERDICT_VERSION: u8 = 1;
/// Most failures a verdict lists (the worst first).
pub const MAX_VERDICT_FAILURES: usize = 32;
/// Most structure faults a verdict lists.
pub const MAX_VERDICT_FAULTS: usize = 8;

/// What a client asks a verifier to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyBody {
    pub params: JobParams,
    pub prompt: Vec<u8>,
    pub commitment: Commitment,
    pub tokens: Vec<TokenId>,
    pub text: Vec<u8>,
    pub mode: CheckMode,
    pub nonce: [u8; 32],
}

fn write_mode(out: &mut Vec<u8>, mode: CheckMode) {
    match mode {
        CheckMode::Full => {
            out.push(0);
            0u32.encode(out);
        }
        CheckMode::Sample { k } => {
            out.push(1);
            k.encode(out);
        }
    }
}

fn read_mode(r: &mut Reader<'_>) -> Result<CheckMode, DecodeError> {
    let m = r.read_u8()?;
    let k = r.read_u32()?;
    match m {
        // One encoding per mode: a full check carries k = 0.
        0 if k == 0 => Ok(CheckMode::Full),
        0 => Err(DecodeError::Invalid("a full check's k must be 0")),
        1 => Ok(CheckMode::Sample { k }),
        _ => Err(DecodeError::Invalid("check mode")),
    }
}

impl Encodable for VerifyBody {
    fn encode(&self, out: &mut Vec<u8>) {
        self.params.encode(out);
        write_var_bytes(out, &self.prompt);
        self.commitment.encode(out);
        write_tokens(out, &self.tokens);
        write_var_bytes(out, &self.text);
        write_mode(out, self.mode);
        out.extend_from_slice(&self.nonce);
    }
}

impl Decodable for VerifyBody {
    const MIN_ENCODED_SIZE: usize = 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            params: JobParams::decode(r)?,
            prompt: r.read_var_bytes("prompt", MAX_PROMPT_BYTES)?,
            commitment: Commitment::decode(r)?,
            tokens: read_tokens(r, MAX_JOB_TOKENS as usize)?,
            text: r.read_var_bytes("text", MAX_OUTPUT_TEXT)?,
            mode: read_mode(r)?,
            nonce: r.read_array()?,
        })
    }
}

/// A `Verify` request's payload: the key to seal the verdict to, and the sealed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRequest {
    pub reply: PublicKey,
    pub body: Sealed,
}

impl Encodable for VerifyRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reply.to_bytes());
        self.body.encode(out);
    }
}

impl Decodable for VerifyRequest {
    const MIN_ENCODED_SIZE: usize = 33 + 34;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            reply: read_pubkey(r)?,
            body: Sealed::decode(r)?,
        })
    }
}

/// One failing position, as a verdict reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub position: u32,
    pub claimed: TokenId,
    pub expected: TokenId,
    /// The check's margin in millionths (logits or probability; negative: the claimed token
    /// loses).
    pub margin_micro: i64,
    /// Also a failure at the oracle's tolerance: a fraud proof citing it is accepted.
    pub provable: bool,
}

impl Encodable for Failure {
    fn encode(&self, out: &mut Vec<u8>) {
        self.position.encode(out);
        self.claimed.encode(out);
        self.expected.encode(out);
        self.margin_micro.to_le_bytes().encode(out);
        out.push(u8::from(self.provable));
    }
}

impl Decodable for Failure {
    const MIN_ENCODED_SIZE: usize = 21;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            position: r.read_u32()?,
            claimed: r.read_u32()?,
            expected: r.read_u32()?,
            margin_micro: i64::from_le_bytes(r.read_array()?),
            provable: read_bool(r)?,
        })
    }
}

/// Structure-fault codes of a verdict.
pub fn fault_code(f: &StructureFault) -> u8 {
    match f {
        StructureFault::Empty => 1,
        StructureFault::TooLong { .. } => 2,
        StructureFault::EosBeforeEnd { .. } => 3,
        StructureFault::MissingEos { .. } => 4,
        StructureFault::TokenOutOfVocab { .. } => 5,
    }
}

/// A verifier's signed verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedVerdict {
    pub job_id: JobId,
    pub commitment_id: Hash256,
    pub model: ModelId,
    pub mode: CheckMode,
    pub nonce: [u8; 32],
    /// RASTiC's verdict at the default tolerance, and the text check.
    pub valid: bool,
    pub text_ok: bool,
    pub structure: Vec<u8>,
    pub checked: u32,
    pub abstained: u32,
    pub failures: Vec<Failure>,
    pub verifier: PublicKey,
    pub sig: Vec<u8>,
}

impl SignedVerdict {
    fn unsigned(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(VERDICT_VERSION);
        self.job_id.encode(&mut out);
        self.commitment_id.encode(&mut out);
        self.model.encode(&mut out);
        write_mode(&mut out, self.mode);
        out.extend_from_slice(&self.nonce);
        out.push(u8::from(self.valid));
        out.push(u8::from(self.text_ok));
        write_var_bytes(&mut out, &self.structure);
        self.checked.encode(&mut out);
        self.abstained.encode(&mut out);
        write_vec(&mut out, &self.failures);
        out.extend_from_slice(&self.verifier.to_bytes());
        out
    }

    /// Whether the output passed every check (RASTiC, structure and text).
    pub fn accepts(&self) -> bool {
        self.valid && self.text_ok
    }

    /// The failing position a fraud proof should cite: provable, the largest loss first.
    pub fn provable_failure(&self) -> Option<&Failure> {
        self.failures
            .iter()
            .filter(|f| f.provable)
            .min_by_key(|f| f.margin_micro)
    }

    pub fn sign(&mut self, key: &PrivateKey) {
        self.sig = sign_tagged(key, VERDICT_TAG, &self.unsigned());
    }

    pub fn verify(&self) -> Result<(), KeyError> {
        verify_tagged(&self.verifier, VERDICT_TAG, &self.unsigned(), &self.sig)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        encode_to_vec(self)
    }
}

impl Encodable for SignedVerdict {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.unsigned());
        write_var_bytes(out, &self.sig);
    }
}

impl Decodable for SignedVerdict {
    const MIN_ENCODED_SIZE: usize = 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.read_u8()? != VERDICT_VERSION {
            return Err(DecodeError::Invalid("verdict version"));
        }
        Ok(Self {
            job_id: JobId::decode(r)?,
            commitment_id: Hash256::decode(r)?,
            model: ModelId::decode(r)?,
            mode: read_mode(r)?,
            nonce: r.read_array()?,
            valid: read_bool(r)?,
            text_ok: read_bool(r)?,
            structure: r.read_var_bytes("structure faults", MAX_VERDICT_FAULTS)?,
            checked: r.read_u32()?,
            abstained: r.read_u32()?,
            failures: r.read_vec("failures", MAX_VERDICT_FAILURES)?,
            verifier: read_pubkey(r)?,
            sig: read_sig(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::decode_from_slice;

    #[test]
    fn verdict_sign_roundtrip() {
        let v = PrivateKey::from_slice(&[6; 32]).unwrap();
        let mut verdict = SignedVerdict {
            job_id: JobId::hash(b"j"),
            commitment_id: Hash256::hash(b"c"),
            model: ModelId::from_byte_array([1; 32]),
            mode: CheckMode::Full,
            nonce: [2; 32],
            valid: false,
            text_ok: true,
            structure: vec![],
            checked: 10,
            abstained: 1,
            failures: vec![
                Failure {
                    position: 3,
                    claimed: 9,
                    expected: 8,
                    margin_micro: -600_000,
                    provable: false,
                },
                Failure {
                    position: 5,
                    claimed: 1,
                    expected: 2,
                    margin_micro: -4_000_000,
                    provable: true,
                },
            ],
            verifier: v.public_key(),
            sig: vec![],
        };
        verdict.sign(&v);
        verdict.verify().unwrap();
        assert_eq!(verdict.provable_failure().unwrap().position, 5);
        let bytes = verdict.to_bytes();
        let back: SignedVerdict = decode_from_slice(&bytes).unwrap();
        assert_eq!(back, verdict);
        // A full check has one encoding (k = 0): another k is refused, not silently dropped
        // (found by the decode_job fuzz target).
        let mut other_k = bytes.clone();
        let at = 1 + 32 * 3 + 1;
        other_k[at] = 5;
        assert!(decode_from_slice::<SignedVerdict>(&other_k).is_err());
        let mut t = back;
        t.valid = true;
        assert!(t.verify().is_err());
        for n in 0..bytes.len() {
            assert!(decode_from_slice::<SignedVerdict>(&bytes[..n]).is_err());
        }
    }
}
