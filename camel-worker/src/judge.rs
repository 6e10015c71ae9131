//! The model's side of the job protocol: a job's prompt as tokens, the fraud-proof judge
//! (`camel_core::job::evidence::ModelJudge`) and the verification service that answers
//! peers' `Verify` requests with signed verdicts (`docs/protocol.md` §13.8, §13.9).
//!
//! Both run the engine in the canonical verification configuration
//! ([`canonical_config`]), one pass at a time (the engine lock): every honest node decides
//! the same, and a burst of requests queues instead of exhausting memory.

use std::sync::{Arc, Mutex, PoisonError};

use camel_core::encode::{Encodable, decode_from_slice, encode_to_vec};
use camel_core::hash::{JobId, ModelId};
use camel_core::interpreter::FraudProofError;
use camel_core::job::envelope::{Purpose, Sealed};
use camel_core::job::evidence::ModelJudge;
use camel_core::job::output::output_hash;
use camel_core::job::verdict::{
    Failure, MAX_VERDICT_FAILURES, MAX_VERDICT_FAULTS, SignedVerdict, VerifyBody, VerifyRequest,
    fault_code,
};
use camel_core::job::{JobParams, PromptFormat};
use camel_core::keys::PrivateKey;
use camel_core::rastic::{self, Outcome, PositionCheck, TokenId, Tolerance};
use camel_node::jobpool::VerifyService;
use camel_p2p::JobFault;

use crate::engine::{Engine, EngineConfig, EngineError, ForwardSeq, JobSpec};
use crate::verify::{VerifyRequest as EngineRequest, verify};

/// The configuration verdicts and fraud proofs are computed in: the engine defaults (flash
/// attention off, 512-token batches), with `threads` CPU threads.
pub fn canonical_config(threads: u32) -> EngineConfig {
    EngineConfig {
        threads,
        ..EngineConfig::default()
    }
}

/// A job's prompt tokens: the prompt text (UTF-8) as is, or wrapped in the model's chat
/// template, tokenized with the model's BOS. Worker, verifiers and oracles all use this.
pub fn prompt_tokens(
    engine: &Engine,
    params: &JobParams,
    prompt: &[u8],
) -> Result<Vec<TokenId>, EngineError> {
    let text = std::str::from_utf8(prompt)
        .map_err(|_| EngineError::Config("the prompt is not UTF-8".into()))?;
    let text = match params.prompt_format {
        PromptFormat::Raw => text.to_owned(),
        PromptFormat::Chat => engine.chat_prompt(text)?,
    };
    Ok(engine.tokenize(&text))
}

/// The job's generation parameters.
pub fn spec(params: &JobParams) -> JobSpec {
    JobSpec {
        job_id: params.job_id(),
        sampling: params.sampling,
        max_tokens: params.max_tokens,
    }
}

/// The bytes of a token sequence, as the delivery's text carries them.
pub fn text_of(engine: &Engine, tokens: &[TokenId]) -> Vec<u8> {
    tokens.iter().flat_map(|&t| engine.token_bytes(t)).collect()
}

/// Whether a failing check also fails at the oracle's tolerance: the margin is measured in
/// logits (greedy) or probability (sampled), negative when the claimed token loses.
pub fn provable(check: &PositionCheck, greedy: bool) -> bool {
    check.outcome == Outcome::Fail
        && if greedy {
            check.margin < -Tolerance::ORACLE.delta()
        } else {
            check.margin < -Tolerance::ORACLE.epsilon()
        }
}

/// The engine with its lock, shared by the executor, the verifier and the oracle.
#[derive(Clone)]
pub struct SharedEngine {
    pub engine: Arc<Engine>,
    pub config: EngineConfig,
    lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for SharedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedEngine").finish_non_exhaustive()
    }
}

impl SharedEngine {
    pub fn new(engine: Engine, config: EngineConfig) -> Self {
        Self {
            engine: Arc::new(engine),
            config,
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// Runs `f` with the engine, one caller at a time.
    pub fn with<T>(&self, f: impl FnOnce(&Engine, &EngineConfig) -> T) -> T {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        f(&self.engine, &self.config)
    }

    pub fn model_id(&self) -> ModelId {
        self.engine.model_id()
    }
}

/// The fraud-proof judge of a node holding the model.
#[derive(Debug, Clone)]
pub struct EngineJudge {
    pub engine: SharedEngine,
}

fn invalid(why: impl ToString) -> FraudProofError {
    FraudProofError::Invalid(why.to_string())
}

impl ModelJudge for EngineJudge {
    fn holds(&self, model: &ModelId) -> bool {
        *model == self.engine.model_id()
    }

    fn judge_inference(
        &self,
        params: &JobParams,
        prompt: &[u8],
        prefix: &[TokenId],
        output_len: u32,
    ) -> Result<(), FraudProofError> {
        let Some((&claimed, before)) = prefix.split_last() else {
            return Err(invalid("empty prefix"));
        };
        let x = u32::try_from(before.len()).map_err(|_| invalid("prefix too long"))?;
        self.engine.with(|engine, cfg| {
            // Structural faults within the prefix prove the output wrong without a forward pass.
            if prefix.iter().any(|&t| t >= engine.n_vocab()) {
                return Ok(());
            }
            if before.iter().any(|&t| engine.is_eog(t)) {
                return Ok(());
            }
            let last = x.saturating_add(1) == output_len;
            if engine.is_eog(claimed) && !last {
                return Ok(());
            }
            if last && output_len < params.max_tokens && !engine.is_eog(claimed) {
                return Ok(());
            }
            let mut feed = prompt_tokens(engine, params, prompt)
                .map_err(|e| invalid(format!("prompt: {e}")))?;
            if feed.is_empty() {
                return Err(invalid("empty prompt"));
            }
            feed.extend_from_slice(before);
            let at = [feed.len() - 1];
            let mut check = None;
            engine
                .forward(
                    cfg,
                    &[ForwardSeq {
                        tokens: &feed,
                        logits_at: &at,
                    }],
                    |_, _, logits| {
                        check = Some(rastic::check_position(
                            logits,
                            claimed,
                            x,
                            &params.sampling,
                            &params.job_id(),
                            &Tolerance::ORACLE,
                        )?);
                        Ok(())
                    },
                )
                .map_err(|e| {
                    FraudProofError::Unavailable(format!("the model could not be run: {e}"))
                })?;
            match check {
                Some(c) if c.outcome == Outcome::Fail => Ok(()),
                Some(_) => Err(invalid(format!(
                    "position {x} passes at the oracle tolerance"
                ))),
                None => Err(FraudProofError::Unavailable("no logits".into())),
            }
        })
    }

    fn judge_text(
        &self,
        _params: &JobParams,
        tokens: &[TokenId],
        text: &[u8],
    ) -> Result<(), FraudProofError> {
        if self.engine.with(|e, _| text_of(e, tokens)) != text {
            Ok(())
        } else {
            Err(invalid("the text is the tokens' detokenization"))
        }
    }
}

/// Answers verification requests with verdicts signed by the node's job key.
#[derive(Debug)]
pub struct Verifier {
    pub engine: SharedEngine,
    pub key: PrivateKey,
}

fn bad(why: impl ToString) -> JobFault {
    JobFault::Invalid(why.to_string())
}

impl Verifier {
    /// Checks a request body and produces the signed verdict.
    pub fn verdict(&self, body: &VerifyBody) -> Result<SignedVerdict, JobFault> {
        let c = &body.commitment;
        let job_id = body.params.job_id();
        if job_id != c.job_id {
            return Err(bad("the parameters are not the commitment's job"));
        }
        body.params
            .check_prompt(&body.prompt)
            .map_err(|e| bad(format!("prompt: {e}")))?;
        c.verify().map_err(|e| bad(format!("commitment: {e}")))?;
        if usize::try_from(c.output_len).ok() != Some(body.tokens.len())
            || output_hash(&body.tokens) != c.output_hash
        {
            return Err(bad("the tokens are not the committed output"));
        }
        if camel_core::hash::sha256(&body.text) != c.text_hash {
            return Err(bad("the text is not the committed text"));
        }
        if c.worker == self.key.public_key() {
            return Err(JobFault::Unsupported(
                "this node did the job: ask another verifier".into(),
            ));
        }
        if body.params.model != self.engine.model_id() {
            return Err(JobFault::Unsupported(format!(
                "this node does not hold model {}",
                body.params.model
            )));
        }
        let (report, text_ok) = self.engine.with(|engine, cfg| {
            let prompt = prompt_tokens(engine, &body.params, &body.prompt)
                .map_err(|e| bad(format!("prompt: {e}")))?;
            let req = EngineRequest {
                prompt,
                output: body.tokens.clone(),
                job: spec(&body.params),
                mode: body.mode,
                commitment: c.id(),
                nonce: body.nonce,
            };
            let report = verify(engine, cfg, &req, &Tolerance::DEFAULT)
                .map_err(|e| bad(format!("cannot verify: {e}")))?;
            Ok::<_, JobFault>((report, text_of(engine, &body.tokens) == body.text))
        })?;
        let greedy = body.params.sampling.is_greedy();
        let mut failures: Vec<Failure> = report
            .verdict
            .failures()
            .map(|f| Failure {
                position: f.position,
                claimed: f.claimed,
                expected: f.expected,
                margin_micro: if f.margin.is_finite() {
                    (f.margin * 1e6) as i64
                } else {
                    i64::MIN
                },
                provable: provable(f, greedy),
            })
            .collect();
        failures.sort_by_key(|f| f.margin_micro);
        failures.truncate(MAX_VERDICT_FAILURES);
        let mut v = SignedVerdict {
            job_id,
            commitment_id: c.id(),
            model: body.params.model,
            mode: body.mode,
            nonce: body.nonce,
            valid: report.verdict.is_valid(),
            text_ok,
            structure: report
                .verdict
                .structure
                .iter()
                .take(MAX_VERDICT_FAULTS)
                .map(fault_code)
                .collect(),
            checked: u32::try_from(report.verdict.checks.len()).unwrap_or(u32::MAX),
            abstained: u32::try_from(report.verdict.abstentions().count()).unwrap_or(u32::MAX),
            failures,
            verifier: self.key.public_key(),
            sig: Vec::new(),
        };
        v.sign(&self.key);
        Ok(v)
    }
}

impl VerifyService for Verifier {
    fn verify(&self, payload: &[u8]) -> Result<Vec<u8>, JobFault> {
        let req: VerifyRequest =
            decode_from_slice(payload).map_err(|e| bad(format!("verify request: {e}")))?;
        // The request is sealed under the zero job id: the job is named inside (§13.8).
        let body = req
            .body
            .open(&self.key, Purpose::VerifyRequest, &JobId::ZERO)
            .map_err(|e| bad(format!("verify request: {e}")))?;
        let body: VerifyBody =
            decode_from_slice(&body).map_err(|e| bad(format!("verify request body: {e}")))?;
        let verdict = self.verdict(&body)?;
        let sealed = Sealed::seal_random(
            &mut secp256k1::rand::rng(),
            &req.reply,
            Purpose::Verdict,
            &verdict.job_id,
            &verdict.to_bytes(),
        )
        .map_err(|e| JobFault::Internal(e.to_string()))?;
        Ok(encode_to_vec(&sealed))
    }
}

/// Bytes of a value's consensus encoding (a shorthand for the executor).
pub fn bytes_of<T: Encodable>(v: &T) -> Vec<u8> {
    encode_to_vec(v)
}
