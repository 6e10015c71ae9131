//! JSON shapes printed by `camel-worker complete --json` and `camel-worker verify --json`.
//! camel-core has no serde; these map its types.

use camel_core::rastic::{Outcome, PositionCheck, StructureFault, TokenId};
use serde::Serialize;

use crate::engine::{Engine, Generation, StopReason};
use crate::verify::VerifyReport;

#[derive(Debug, Serialize)]
pub struct TokenJson {
    pub id: TokenId,
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct CompletionJson {
    pub model_id: String,
    pub job_id: String,
    pub prompt_tokens: usize,
    pub max_tokens: u32,
    pub temperature_milli: u32,
    pub seed: u64,
    pub stop: &'static str,
    pub text: String,
    pub ids: Vec<TokenId>,
    pub tokens: Vec<TokenJson>,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub total_ms: f64,
    pub decode_tokens_per_s: f64,
}

impl CompletionJson {
    pub fn new(
        engine: &Engine,
        job_id: String,
        max_tokens: u32,
        temperature_milli: u32,
        seed: u64,
        g: &Generation,
    ) -> Self {
        let decode_tokens = g.tokens.len().saturating_sub(1) as f64;
        Self {
            model_id: engine.model_id().to_string(),
            job_id,
            prompt_tokens: g.prompt_tokens,
            max_tokens,
            temperature_milli,
            seed,
            stop: match g.stop {
                StopReason::Eos => "eos",
                StopReason::MaxTokens => "max_tokens",
            },
            text: engine.detokenize(&g.tokens),
            ids: g.tokens.clone(),
            tokens: g
                .tokens
                .iter()
                .map(|&id| TokenJson {
                    id,
                    text: String::from_utf8_lossy(&engine.token_bytes(id)).into_owned(),
                })
                .collect(),
            prefill_ms: g.prefill.as_secs_f64() * 1e3,
            decode_ms: g.decode.as_secs_f64() * 1e3,
            total_ms: g.total.as_secs_f64() * 1e3,
            decode_tokens_per_s: if g.decode.is_zero() {
                0.0
            } else {
                decode_tokens / g.decode.as_secs_f64()
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PositionJson {
    pub position: u32,
    pub outcome: &'static str,
    pub claimed: TokenId,
    pub claimed_text: String,
    pub expected: TokenId,
    pub expected_text: String,
    pub margin: f64,
    pub confidence: f64,
}

impl PositionJson {
    pub fn new(engine: &Engine, c: &PositionCheck) -> Self {
        let text = |t| String::from_utf8_lossy(&engine.token_bytes(t)).into_owned();
        Self {
            position: c.position,
            outcome: outcome_str(c.outcome),
            claimed: c.claimed,
            claimed_text: text(c.claimed),
            expected: c.expected,
            expected_text: text(c.expected),
            margin: finite(c.margin),
            confidence: finite(c.confidence),
        }
    }
}

fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { f64::MIN }
}

pub fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Abstain => "abstain",
        Outcome::Fail => "fail",
    }
}

#[derive(Debug, Serialize)]
pub struct VerdictJson {
    pub verdict: &'static str,
    pub model_id: String,
    pub job_id: String,
    pub mode: String,
    pub output_tokens: usize,
    pub checked: usize,
    pub passed: usize,
    pub planned: Vec<u32>,
    pub structure_faults: Vec<String>,
    pub failures: Vec<PositionJson>,
    pub abstentions: Vec<PositionJson>,
    pub forwarded_tokens: usize,
    pub elapsed_ms: f64,
}

impl VerdictJson {
    pub fn new(
        engine: &Engine,
        job_id: String,
        mode: String,
        output_tokens: usize,
        r: &VerifyReport,
    ) -> Self {
        let v = &r.verdict;
        Self {
            verdict: if v.is_valid() { "valid" } else { "invalid" },
            model_id: engine.model_id().to_string(),
            job_id,
            mode,
            output_tokens,
            checked: v.checks.len(),
            passed: v
                .checks
                .iter()
                .filter(|c| c.outcome == Outcome::Pass)
                .count(),
            planned: r.planned.clone(),
            structure_faults: v.structure.iter().map(StructureFault::to_string).collect(),
            failures: v.failures().map(|c| PositionJson::new(engine, c)).collect(),
            abstentions: v
                .abstentions()
                .map(|c| PositionJson::new(engine, c))
                .collect(),
            forwarded_tokens: r.forwarded_tokens,
            elapsed_ms: r.elapsed.as_secs_f64() * 1e3,
        }
    }
}
