//! The RASTiC verifier: structural checks and a check plan from camel-core, logits from one
//! batched teacher-forced pass of the engine, a verdict from camel-core.

use std::time::{Duration, Instant};

use camel_core::Hash256;
use camel_core::rastic::{self, CheckMode, TokenId, Tolerance, Verdict};

use crate::engine::{Engine, EngineConfig, EngineError, ForwardSeq, JobSpec};

/// A claimed output to verify.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub prompt: Vec<TokenId>,
    pub output: Vec<TokenId>,
    pub job: JobSpec,
    pub mode: CheckMode,
    /// Hash of the worker's signed commitment; with `nonce` it fixes the sampled positions.
    pub commitment: Hash256,
    /// The verifier's nonce, chosen after the commitment.
    pub nonce: [u8; 32],
}

/// A verdict and what it cost.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub verdict: Verdict,
    /// Output positions the plan asked for (those past an out-of-vocabulary token are skipped).
    pub planned: Vec<u32>,
    /// Tokens fed through the model.
    pub forwarded_tokens: usize,
    /// Wall time of the whole batch this report was part of.
    pub elapsed: Duration,
}

struct Prepared {
    feed: Vec<TokenId>,
    logits_at: Vec<usize>,
    planned: Vec<u32>,
    structure: Vec<rastic::StructureFault>,
}

fn prepare(engine: &Engine, r: &VerifyRequest) -> Result<Prepared, EngineError> {
    r.job.sampling.validate()?;
    if r.job.max_tokens == 0 {
        return Err(EngineError::ZeroMaxTokens);
    }
    if r.prompt.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    if let Some(&token) = r.prompt.iter().find(|&&t| t >= engine.n_vocab()) {
        return Err(EngineError::TokenOutOfVocab {
            token,
            n_vocab: engine.n_vocab(),
        });
    }
    let structure =
        rastic::check_structure(&r.output, r.job.max_tokens, engine.eog(), engine.n_vocab());
    let len = u32::try_from(r.output.len()).unwrap_or(u32::MAX);
    let plan = rastic::plan(&r.commitment, &r.nonce, len, r.mode);
    // Positions up to and including the first out-of-vocabulary token can be checked: the
    // logits there depend only on the tokens before it.
    let first_bad = r
        .output
        .iter()
        .position(|&t| t >= engine.n_vocab())
        .unwrap_or(usize::MAX);
    let planned: Vec<u32> = plan
        .positions()
        .iter()
        .copied()
        .filter(|&p| (p as usize) <= first_bad)
        .collect();
    let last = planned.last().map_or(0, |&p| p as usize);
    let mut feed = r.prompt.clone();
    feed.extend_from_slice(&r.output[..last.min(r.output.len())]);
    let logits_at = planned
        .iter()
        .map(|&p| r.prompt.len() + p as usize - 1)
        .collect();
    Ok(Prepared {
        feed,
        logits_at,
        planned,
        structure,
    })
}

/// Verifies several claimed outputs with one shared teacher-forced pass.
pub fn verify_many(
    engine: &Engine,
    cfg: &EngineConfig,
    requests: &[VerifyRequest],
    tolerance: &Tolerance,
) -> Result<Vec<VerifyReport>, EngineError> {
    let start = Instant::now();
    let prepared = requests
        .iter()
        .map(|r| prepare(engine, r))
        .collect::<Result<Vec<_>, _>>()?;
    let seqs: Vec<ForwardSeq<'_>> = prepared
        .iter()
        .filter(|p| !p.planned.is_empty())
        .map(|p| ForwardSeq {
            tokens: &p.feed,
            logits_at: &p.logits_at,
        })
        .collect();
    // Sequence numbers in `seqs` skip requests with nothing to check (empty outputs).
    let seq_to_req: Vec<usize> = prepared
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.planned.is_empty())
        .map(|(i, _)| i)
        .collect();
    let mut checks: Vec<Vec<rastic::PositionCheck>> = requests.iter().map(|_| Vec::new()).collect();
    engine.forward(cfg, &seqs, |s, index, logits| {
        let ri = seq_to_req[s];
        let r = &requests[ri];
        let position = index + 1 - r.prompt.len();
        let claimed = r.output[position];
        let c = rastic::check_position(
            logits,
            claimed,
            position as u32,
            &r.job.sampling,
            &r.job.job_id,
            tolerance,
        )?;
        checks[ri].push(c);
        Ok(())
    })?;
    let elapsed = start.elapsed();
    Ok(prepared
        .into_iter()
        .zip(checks)
        .map(|(p, checks)| VerifyReport {
            verdict: Verdict {
                structure: p.structure,
                checks,
            },
            planned: p.planned,
            forwarded_tokens: p.feed.len(),
            elapsed,
        })
        .collect())
}

/// Verifies one claimed output.
pub fn verify(
    engine: &Engine,
    cfg: &EngineConfig,
    request: &VerifyRequest,
    tolerance: &Tolerance,
) -> Result<VerifyReport, EngineError> {
    let mut v = verify_many(engine, cfg, std::slice::from_ref(request), tolerance)?;
    v.pop()
        .ok_or_else(|| EngineError::Config("no verdict".into()))
}
