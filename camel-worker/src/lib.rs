//! The CamelidCoin worker, as a library; `src/main.rs` is a thin command-line shell over it.
//!
//! Modules:
//! - [`model`]: model files: locating the bundled model, the SHA-256 model id, clear errors.
//! - [`engine`]: the llama.cpp glue: load, tokenize, generate with the checkable sampler,
//!   batched teacher-forced forward passes.
//! - [`verify`]: the RASTiC verifier (plan and verdict from `camel_core::rastic`, logits from
//!   the engine), one or many jobs per pass.
//! - [`judge`]: the model's side of the job protocol: prompt tokens, the fraud-proof judge,
//!   the verification service.
//! - [`executor`]: the worker's job executor inside `camel-worker node`.
//! - [`calibrate`]: honest outputs checked in other configurations, to choose δ and ε.
//! - [`bench`]: generation and verification timings against bare llama.cpp loops.
//! - [`report`]: the JSON shapes the command line prints.
//! - [`ffi`]: the two llama.cpp calls llama-cpp-2 does not wrap (requantize, system info).

pub mod bench;
pub mod calibrate;
pub mod engine;
pub mod executor;
pub mod ffi;
pub mod judge;
pub mod model;
pub mod report;
pub mod verify;

use camel_core::JobId;
use camel_core::ModelId;
use camel_core::rastic::{SamplingParams, TokenId};

/// The job id the command line uses when none is given: SHA-256d of
/// `"camel-worker/cli-job"` ‖ model id ‖ max tokens (u32 LE) ‖ temperature milli (u32 LE) ‖
/// seed (u64 LE) ‖ prompt token count (u32 LE) ‖ prompt tokens (u32 LE each). Network jobs use
/// the id of their consensus encoding instead.
pub fn cli_job_id(
    model: &ModelId,
    prompt: &[TokenId],
    max_tokens: u32,
    sampling: &SamplingParams,
) -> JobId {
    let mut m = b"camel-worker/cli-job".to_vec();
    m.extend_from_slice(model.as_bytes());
    m.extend_from_slice(&max_tokens.to_le_bytes());
    m.extend_from_slice(&sampling.temperature_milli.to_le_bytes());
    m.extend_from_slice(&sampling.seed.to_le_bytes());
    m.extend_from_slice(&(prompt.len() as u32).to_le_bytes());
    for t in prompt {
        m.extend_from_slice(&t.to_le_bytes());
    }
    JobId::hash(&m)
}

/// Parses a temperature written as a decimal ("0", "0.7", "1.25") into thousandths, exactly.
pub fn parse_temperature_milli(s: &str) -> Result<u32, String> {
    let bad = || format!("temperature {s:?} is not a decimal number with at most 3 decimals");
    let (int, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if frac.len() > 3 || (int.is_empty() && frac.is_empty()) {
        return Err(bad());
    }
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let int: u32 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut f = frac.to_string();
    while f.len() < 3 {
        f.push('0');
    }
    let frac: u32 = f.parse().map_err(|_| bad())?;
    int.checked_mul(1000)
        .and_then(|v| v.checked_add(frac))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_parsing() {
        assert_eq!(parse_temperature_milli("0"), Ok(0));
        assert_eq!(parse_temperature_milli("0.7"), Ok(700));
        assert_eq!(parse_temperature_milli("1.25"), Ok(1250));
        assert_eq!(parse_temperature_milli(".5"), Ok(500));
        assert!(parse_temperature_milli("0.0001").is_err());
        assert!(parse_temperature_milli("-1").is_err());
        assert!(parse_temperature_milli("abc").is_err());
        assert!(parse_temperature_milli(".").is_err());
    }

    #[test]
    fn cli_job_id_depends_on_everything() {
        let m = ModelId::ZERO;
        let g = SamplingParams::GREEDY;
        let a = cli_job_id(&m, &[1, 2], 8, &g);
        assert_ne!(a, cli_job_id(&m, &[1, 3], 8, &g));
        assert_ne!(a, cli_job_id(&m, &[1, 2], 9, &g));
        assert_ne!(
            a,
            cli_job_id(
                &m,
                &[1, 2],
                8,
                &SamplingParams {
                    temperature_milli: 1,
                    seed: 0
                }
            )
        );
        assert_eq!(a, cli_job_id(&m, &[1, 2], 8, &g));
    }
}
