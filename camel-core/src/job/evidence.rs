//! Fraud-proof evidence (`docs/protocol.md` §13.9) and the oracle's model-free half.
//!
//! [`JobOracle`] decodes evidence, checks the commitment and every hash binding, and decides a
//! bad delivery on its own. Only the judgement of one inference position (or of a detokenization)
//! needs the model: that goes to a [`ModelJudge`], which the worker implements with its engine.
//! A node without the model answers *unavailable* for those kinds, never *proven*.

use core::fmt;

use crate::encode::{
    Decodable, DecodeError, Encodable, Reader, decode_from_slice, write_var_bytes,
};
use crate::hash::{JobId, ModelId};
use crate::interpreter::{FraudProofError, FraudProofOracle};
use crate::keys::PublicKey;
use crate::rastic::TokenId;

use super::commitment::Commitment;
use super::output::{
    Delivery, MAX_DELIVERY_CIPHERTEXT, MAX_OUTPUT_TEXT, end_hash, open_delivery, output_hash,
    prefix_hash,
};
use super::params::{JobParams, MAX_JOB_TOKENS, MAX_PROMPT_BYTES};
use super::{read_tokens, write_tokens};

/// The evidence format's version byte.
pub const EVIDENCE_VERSION: u8 = 1;
/// Most bytes of an evidence item: one script element.
pub const MAX_EVIDENCE_SIZE: usize = 65_535;

/// What the evidence proves wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvidenceBody {
    /// The delivered ciphertext, with the revealed key: it does not open to the committed output.
    Delivery { key: [u8; 32], ciphertext: Vec<u8> },
    /// The output's first `prefix.len()` tokens and the chain hash after them: the last token of
    /// the prefix is the one the oracle rechecks.
    Inference {
        params: JobParams,
        prompt: Vec<u8>,
        prefix: Vec<TokenId>,
        suffix_hash: [u8; 32],
    },
    /// The whole output and its committed text: the text is not the tokens' detokenization.
    Text {
        params: JobParams,
        tokens: Vec<TokenId>,
        text: Vec<u8>,
    },
}

/// A fraud proof: the worker's signed commitment and what shows it wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub commitment: Commitment,
    pub body: EvidenceBody,
}

mod kind {
    pub const DELIVERY: u8 = 1;
    pub const INFERENCE: u8 = 2;
    pub const TEXT: u8 = 3;
}

impl Encodable for Evidence {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(EVIDENCE_VERSION);
        match &self.body {
            EvidenceBody::Delivery { .. } => out.push(kind::DELIVERY),
            EvidenceBody::Inference { .. } => out.push(kind::INFERENCE),
            EvidenceBody::Text { .. } => out.push(kind::TEXT),
        }
        self.commitment.encode(out);
        match &self.body {
            EvidenceBody::Delivery { key, ciphertext } => {
                out.extend_from_slice(key);
                write_var_bytes(out, ciphertext);
            }
            EvidenceBody::Inference {
                params,
                prompt,
                prefix,
                suffix_hash,
            } => {
                params.encode(out);
                write_var_bytes(out, prompt);
                write_tokens(out, prefix);
                out.extend_from_slice(suffix_hash);
            }
            EvidenceBody::Text {
                params,
                tokens,
                text,
            } => {
                params.encode(out);
                write_tokens(out, tokens);
                write_var_bytes(out, text);
            }
        }
    }
}

impl Decodable for Evidence {
    const MIN_ENCODED_SIZE: usize = 2;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.read_u8()? != EVIDENCE_VERSION {
            return Err(DecodeError::Invalid("evidence version"));
        }
        let k = r.read_u8()?;
        let commitment = Commitment::decode(r)?;
        let body = match k {
            kind::DELIVERY => EvidenceBody::Delivery {
                key: r.read_array()?,
                ciphertext: r.read_var_bytes("ciphertext", MAX_DELIVERY_CIPHERTEXT)?,
            },
            kind::INFERENCE => EvidenceBody::Inference {
                params: JobParams::decode(r)?,
                prompt: r.read_var_bytes("prompt", MAX_PROMPT_BYTES)?,
                prefix: read_tokens(r, MAX_JOB_TOKENS as usize)?,
                suffix_hash: r.read_array()?,
            },
            kind::TEXT => EvidenceBody::Text {
                params: JobParams::decode(r)?,
                tokens: read_tokens(r, MAX_JOB_TOKENS as usize)?,
                text: r.read_var_bytes("output text", MAX_OUTPUT_TEXT)?,
            },
            _ => return Err(DecodeError::Invalid("evidence kind")),
        };
        Ok(Self { commitment, body })
    }
}

impl Evidence {
    /// The evidence's bytes, as a slash pushes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::encode::encode_to_vec(self)
    }

    /// Decodes evidence, refusing anything over [`MAX_EVIDENCE_SIZE`] before decoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_EVIDENCE_SIZE {
            return Err(DecodeError::Invalid("evidence larger than 65,535 bytes"));
        }
        decode_from_slice(bytes)
    }

    /// The model whose judgement this evidence needs, if any.
    pub fn model(&self) -> Option<&ModelId> {
        match &self.body {
            EvidenceBody::Delivery { .. } => None,
            EvidenceBody::Inference { params, .. } | EvidenceBody::Text { params, .. } => {
                Some(&params.model)
            }
        }
    }
}

/// The half of the oracle that needs the model. Implementations must judge in the canonical
/// verification configuration and at [`crate::rastic::Tolerance::ORACLE`].
pub trait ModelJudge {
    /// Whether this judge holds `model`.
    fn holds(&self, model: &ModelId) -> bool;

    /// `Ok(())` iff, for the job `params` with `prompt`, the output whose first tokens are
    /// `prefix` (and whose committed length is `output_len`) is provably wrong at its last
    /// prefix position: a structural fault within the prefix, or the position's check failing
    /// at the oracle tolerance.
    fn judge_inference(
        &self,
        params: &JobParams,
        prompt: &[u8],
        prefix: &[TokenId],
        output_len: u32,
    ) -> Result<(), FraudProofError>;

    /// `Ok(())` iff `text` is not the detokenization of `tokens`.
    fn judge_text(
        &self,
        params: &JobParams,
        tokens: &[TokenId],
        text: &[u8],
    ) -> Result<(), FraudProofError>;
}

/// A judge holding no model.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoModels;

impl ModelJudge for NoModels {
    fn holds(&self, _: &ModelId) -> bool {
        false
    }
    fn judge_inference(
        &self,
        _: &JobParams,
        _: &[u8],
        _: &[TokenId],
        _: u32,
    ) -> Result<(), FraudProofError> {
        Err(unavailable())
    }
    fn judge_text(&self, _: &JobParams, _: &[TokenId], _: &[u8]) -> Result<(), FraudProofError> {
        Err(unavailable())
    }
}

fn unavailable() -> FraudProofError {
    FraudProofError::Unavailable("this node does not hold the job's model".into())
}

fn invalid(why: impl fmt::Display) -> FraudProofError {
    FraudProofError::Invalid(why.to_string())
}

/// The consensus fraud-proof oracle: the model-free checks here, the model's judgement in `J`.
#[derive(Debug, Clone, Default)]
pub struct JobOracle<J> {
    pub judge: J,
}

impl<J: ModelJudge> JobOracle<J> {
    pub fn new(judge: J) -> Self {
        Self { judge }
    }

    /// Judges decoded evidence against the job and worker the spent stake names.
    pub fn judge(
        &self,
        job_id: &JobId,
        worker: &PublicKey,
        ev: &Evidence,
    ) -> Result<(), FraudProofError> {
        let c = &ev.commitment;
        if c.job_id != *job_id {
            return Err(invalid("the commitment is for another job"));
        }
        if c.worker != *worker {
            return Err(invalid("the commitment is not the staking worker's"));
        }
        c.verify().map_err(invalid)?;
        match &ev.body {
            EvidenceBody::Delivery { key, ciphertext } => judge_delivery(c, key, ciphertext),
            EvidenceBody::Inference {
                params,
                prompt,
                prefix,
                suffix_hash,
            } => {
                bind_params(c, params)?;
                if params.check_prompt(prompt).is_err() {
                    return Err(invalid("the prompt does not match the job's prompt hash"));
                }
                let Some(x) = prefix.len().checked_sub(1) else {
                    return Err(invalid("empty prefix"));
                };
                let x = u32::try_from(x).map_err(|_| invalid("prefix too long"))?;
                if x >= c.output_len {
                    return Err(invalid("the prefix is longer than the committed output"));
                }
                if x.checked_add(1) == Some(c.output_len) && *suffix_hash != end_hash() {
                    return Err(invalid("a whole-output prefix must end in the end hash"));
                }
                if prefix_hash(prefix, suffix_hash) != c.output_hash {
                    return Err(invalid("the prefix does not hash to the committed output"));
                }
                // Too long an output is wrong whatever the model says.
                if c.output_len > params.max_tokens {
                    return Ok(());
                }
                if !self.judge.holds(&params.model) {
                    return Err(unavailable());
                }
                self.judge
                    .judge_inference(params, prompt, prefix, c.output_len)
            }
            EvidenceBody::Text {
                params,
                tokens,
                text,
            } => {
                bind_params(c, params)?;
                if usize::try_from(c.output_len).ok() != Some(tokens.len())
                    || output_hash(tokens) != c.output_hash
                {
                    return Err(invalid("the tokens are not the committed output"));
                }
                if Hash::of(text) != c.text_hash {
                    return Err(invalid("the text is not the committed text"));
                }
                if !self.judge.holds(&params.model) {
                    return Err(unavailable());
                }
                self.judge.judge_text(params, tokens, text)
            }
        }
    }
}

/// SHA-256 of a byte string, the digest commitments use for keys, ciphertexts and text.
struct Hash;
impl Hash {
    fn of(b: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(b).into()
    }
}

fn bind_params(c: &Commitment, params: &JobParams) -> Result<(), FraudProofError> {
    if params.job_id() != c.job_id {
        return Err(invalid("the parameters are not the job's"));
    }
    Ok(())
}

/// A bad delivery is proven by anyone: the revealed key and the delivered ciphertext are the
/// committed ones, and they do not open to the committed output.
fn judge_delivery(
    c: &Commitment,
    key: &[u8; 32],
    ciphertext: &[u8],
) -> Result<(), FraudProofError> {
    if !c.key_matches(key) {
        return Err(invalid("the key is not the committed delivery key"));
    }
    if !c.ciphertext_matches(ciphertext) {
        return Err(invalid("the ciphertext is not the committed ciphertext"));
    }
    match open_delivery(key, &c.job_id, ciphertext) {
        Err(_) => Ok(()),
        Ok(Delivery { tokens, text }) => {
            let len_ok = usize::try_from(c.output_len).ok() == Some(tokens.len());
            if !len_ok || output_hash(&tokens) != c.output_hash || Hash::of(&text) != c.text_hash {
                Ok(())
            } else {
                Err(invalid("the delivery opens to the committed output"))
            }
        }
    }
}

impl<J: ModelJudge> FraudProofOracle for JobOracle<J> {
    fn check_fraud_proof(
        &self,
        job_id: &JobId,
        worker: &PublicKey,
        evidence: &[u8],
    ) -> Result<(), FraudProofError> {
        let ev = Evidence::from_bytes(evidence).map_err(|e| invalid(format!("evidence: {e}")))?;
        self.judge(job_id, worker, &ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::output::seal_delivery;
    use crate::job::params::tests::sample;
    use crate::keys::PrivateKey;

    /// A judge that holds every model and proves what it is told to.
    struct Fixed(bool);
    impl ModelJudge for Fixed {
        fn holds(&self, _: &ModelId) -> bool {
            true
        }
        fn judge_inference(
            &self,
            _: &JobParams,
            _: &[u8],
            _: &[TokenId],
            _: u32,
        ) -> Result<(), FraudProofError> {
            if self.0 {
                Ok(())
            } else {
                Err(invalid("passes"))
            }
        }
        fn judge_text(
            &self,
            _: &JobParams,
            _: &[TokenId],
            _: &[u8],
        ) -> Result<(), FraudProofError> {
            if self.0 {
                Ok(())
            } else {
                Err(invalid("matches"))
            }
        }
    }

    struct Case {
        worker: PrivateKey,
        params: JobParams,
        prompt: Vec<u8>,
        tokens: Vec<TokenId>,
        text: Vec<u8>,
        key: [u8; 32],
    }

    fn case() -> Case {
        let prompt = "hello".to_string();
        Case {
            worker: PrivateKey::from_slice(&[7u8; 32]).unwrap(),
            params: sample(&prompt),
            prompt: prompt.into_bytes(),
            tokens: vec![11, 12, 13, 2],
            text: b"abc".to_vec(),
            key: [9u8; 32],
        }
    }

    fn commit(c: &Case, ciphertext: &[u8], tokens: &[TokenId], text: &[u8]) -> Commitment {
        let mut com = crate::job::commitment::tests::signed(&c.worker, c.params.job_id());
        com.output_hash = output_hash(tokens);
        com.output_len = u32::try_from(tokens.len()).unwrap();
        com.text_hash = Hash::of(text);
        com.key_hash = Hash::of(&c.key);
        com.ciphertext_hash = Hash::of(ciphertext);
        com.sign(&c.worker);
        com
    }

    #[test]
    fn honest_delivery_is_not_fraud_and_garbage_is() {
        let c = case();
        let job = c.params.job_id();
        let pk = c.worker.public_key();
        let oracle = JobOracle::new(NoModels);
        let good = seal_delivery(
            &c.key,
            &job,
            &Delivery {
                tokens: c.tokens.clone(),
                text: c.text.clone(),
            },
        )
        .unwrap();
        let com = commit(&c, &good, &c.tokens, &c.text);
        let ev = Evidence {
            commitment: com,
            body: EvidenceBody::Delivery {
                key: c.key,
                ciphertext: good.clone(),
            },
        };
        assert!(matches!(
            oracle.check_fraud_proof(&job, &pk, &ev.to_bytes()),
            Err(FraudProofError::Invalid(_))
        ));

        // Garbage bytes committed as the ciphertext: proven by any node.
        let garbage = vec![0xAB; 40];
        let com = commit(&c, &garbage, &c.tokens, &c.text);
        let ev = Evidence {
            commitment: com,
            body: EvidenceBody::Delivery {
                key: c.key,
                ciphertext: garbage.clone(),
            },
        };
        assert_eq!(oracle.check_fraud_proof(&job, &pk, &ev.to_bytes()), Ok(()));

        // A different, well-formed output than committed: proven.
        let other = seal_delivery(
            &c.key,
            &job,
            &Delivery {
                tokens: vec![1, 2],
                text: c.text.clone(),
            },
        )
        .unwrap();
        let com = commit(&c, &other, &c.tokens, &c.text);
        let ev = Evidence {
            commitment: com.clone(),
            body: EvidenceBody::Delivery {
                key: c.key,
                ciphertext: other,
            },
        };
        assert_eq!(oracle.check_fraud_proof(&job, &pk, &ev.to_bytes()), Ok(()));

        // The same proof against another worker or job is invalid.
        let other_pk = PrivateKey::from_slice(&[8u8; 32]).unwrap().public_key();
        assert!(
            oracle
                .check_fraud_proof(&job, &other_pk, &ev.to_bytes())
                .is_err()
        );
        assert!(
            oracle
                .check_fraud_proof(&JobId::hash(b"other job"), &pk, &ev.to_bytes())
                .is_err()
        );

        // A ciphertext other than the committed one proves nothing.
        let ev = Evidence {
            commitment: com,
            body: EvidenceBody::Delivery {
                key: c.key,
                ciphertext: garbage,
            },
        };
        assert!(oracle.check_fraud_proof(&job, &pk, &ev.to_bytes()).is_err());
    }

    #[test]
    fn tampered_commitment_signature_is_invalid() {
        let c = case();
        let job = c.params.job_id();
        let garbage = vec![1u8; 20];
        let mut com = commit(&c, &garbage, &c.tokens, &c.text);
        com.output_len += 1;
        let ev = Evidence {
            commitment: com,
            body: EvidenceBody::Delivery {
                key: c.key,
                ciphertext: garbage,
            },
        };
        assert!(
            JobOracle::new(NoModels)
                .check_fraud_proof(&job, &c.worker.public_key(), &ev.to_bytes())
                .is_err()
        );
    }

    #[test]
    fn inference_needs_the_model_after_every_binding_holds() {
        let c = case();
        let job = c.params.job_id();
        let pk = c.worker.public_key();
        let com = commit(&c, b"ct", &c.tokens, &c.text);
        let chain = crate::job::output::chain_hashes(&c.tokens);
        let ev = |prefix_len: usize, prompt: Vec<u8>| Evidence {
            commitment: com.clone(),
            body: EvidenceBody::Inference {
                params: c.params.clone(),
                prompt,
                prefix: c.tokens[..prefix_len].to_vec(),
                suffix_hash: chain[prefix_len],
            },
        };
        let good = ev(2, c.prompt.clone()).to_bytes();
        assert!(matches!(
            JobOracle::new(NoModels).check_fraud_proof(&job, &pk, &good),
            Err(FraudProofError::Unavailable(_))
        ));
        assert_eq!(
            JobOracle::new(Fixed(true)).check_fraud_proof(&job, &pk, &good),
            Ok(())
        );
        assert!(matches!(
            JobOracle::new(Fixed(false)).check_fraud_proof(&job, &pk, &good),
            Err(FraudProofError::Invalid(_))
        ));
        // Whole output as prefix.
        assert_eq!(
            JobOracle::new(Fixed(true)).check_fraud_proof(
                &job,
                &pk,
                &ev(4, c.prompt.clone()).to_bytes()
            ),
            Ok(())
        );
        // Bindings that fail are invalid even for a node without the model.
        let wrong_prompt = ev(2, b"another prompt".to_vec()).to_bytes();
        assert!(matches!(
            JobOracle::new(NoModels).check_fraud_proof(&job, &pk, &wrong_prompt),
            Err(FraudProofError::Invalid(_))
        ));
        let mut bad_suffix = ev(2, c.prompt.clone());
        if let EvidenceBody::Inference { suffix_hash, .. } = &mut bad_suffix.body {
            suffix_hash[0] ^= 1;
        }
        assert!(matches!(
            JobOracle::new(Fixed(true)).check_fraud_proof(&job, &pk, &bad_suffix.to_bytes()),
            Err(FraudProofError::Invalid(_))
        ));
        let empty = ev(0, c.prompt.clone()).to_bytes();
        assert!(matches!(
            JobOracle::new(Fixed(true)).check_fraud_proof(&job, &pk, &empty),
            Err(FraudProofError::Invalid(_))
        ));
    }

    #[test]
    fn text_evidence_binds_tokens_and_text() {
        let c = case();
        let job = c.params.job_id();
        let pk = c.worker.public_key();
        let com = commit(&c, b"ct", &c.tokens, &c.text);
        let ev = |tokens: Vec<TokenId>, text: Vec<u8>| {
            Evidence {
                commitment: com.clone(),
                body: EvidenceBody::Text {
                    params: c.params.clone(),
                    tokens,
                    text,
                },
            }
            .to_bytes()
        };
        assert!(matches!(
            JobOracle::new(NoModels).check_fraud_proof(
                &job,
                &pk,
                &ev(c.tokens.clone(), c.text.clone())
            ),
            Err(FraudProofError::Unavailable(_))
        ));
        assert_eq!(
            JobOracle::new(Fixed(true)).check_fraud_proof(
                &job,
                &pk,
                &ev(c.tokens.clone(), c.text.clone())
            ),
            Ok(())
        );
        assert!(matches!(
            JobOracle::new(Fixed(true)).check_fraud_proof(&job, &pk, &ev(vec![1], c.text.clone())),
            Err(FraudProofError::Invalid(_))
        ));
        assert!(matches!(
            JobOracle::new(Fixed(true)).check_fraud_proof(
                &job,
                &pk,
                &ev(c.tokens.clone(), b"x".to_vec())
            ),
            Err(FraudProofError::Invalid(_))
        ));
    }

    #[test]
    fn decoder_refuses_junk_and_trailing_bytes() {
        let c = case();
        let com = commit(&c, b"ct", &c.tokens, &c.text);
        let ev = Evidence {
            commitment: com,
            body: EvidenceBody::Delivery {
                key: c.key,
                ciphertext: b"ct".to_vec(),
            },
        };
        let mut bytes = ev.to_bytes();
        assert_eq!(Evidence::from_bytes(&bytes).unwrap(), ev);
        bytes.push(0);
        assert!(Evidence::from_bytes(&bytes).is_err());
        assert!(Evidence::from_bytes(&[]).is_err());
        assert!(Evidence::from_bytes(&[1, 9]).is_err());
        assert!(Evidence::from_bytes(&vec![1u8; MAX_EVIDENCE_SIZE + 1]).is_err());
        for cut in 0..bytes.len() - 1 {
            assert!(Evidence::from_bytes(&bytes[..cut]).is_err());
        }
    }
}
