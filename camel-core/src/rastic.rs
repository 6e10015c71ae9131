//! RASTiC (Random Autoregressive Subsampling for Token Integrity Checking): checkable sampling,
//! check plans and verdicts.
//!
//! Everything here is pure: the model work (a teacher-forced forward pass that yields the logits
//! at the checked positions) happens in the worker, which hands the logits to
//! [`check_position`]. The normative description, with the calibration that chose the default
//! tolerance, is `docs/rastic.md`.
//!
//! Positions are indices into the *output* (0 = the first generated token). The logits that
//! decide output position `i` are the model's next-token logits after `prompt ‖ output[..i]`.

use core::fmt;

use crate::hash::{Hash256, JobId, sha256d};

/// A token id of the model's vocabulary.
pub type TokenId = u32;

/// Largest temperature a job may ask for, in thousandths (10.0).
pub const MAX_TEMPERATURE_MILLI: u32 = 10_000;

/// Domain separator of the per-position random number.
pub const UNIFORM_TAG: &[u8] = b"camelid/rastic/u";

/// Domain separator of the interior check positions.
pub const PLAN_TAG: &[u8] = b"camelid/rastic/plan";

/// How a job's tokens are chosen from the model's logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SamplingParams {
    /// Temperature in thousandths; 0 means greedy (argmax, ties to the lowest token id).
    pub temperature_milli: u32,
    /// The client's seed; with the job id it fixes every position's random number.
    pub seed: u64,
}

impl SamplingParams {
    /// Greedy decoding (the seed is irrelevant and zero).
    pub const GREEDY: Self = Self {
        temperature_milli: 0,
        seed: 0,
    };

    pub fn is_greedy(&self) -> bool {
        self.temperature_milli == 0
    }

    /// The temperature as a float.
    pub fn temperature(&self) -> f64 {
        f64::from(self.temperature_milli) / 1000.0
    }

    /// Checks the parameters are within the protocol's limits.
    pub fn validate(&self) -> Result<(), RasticError> {
        if self.temperature_milli > MAX_TEMPERATURE_MILLI {
            return Err(RasticError::TemperatureTooHigh(self.temperature_milli));
        }
        Ok(())
    }
}

/// Why a RASTiC computation could not be carried out (as opposed to a failed check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RasticError {
    /// The temperature exceeds [`MAX_TEMPERATURE_MILLI`].
    TemperatureTooHigh(u32),
    /// No logit is finite, so no token can be chosen.
    NoFiniteLogits,
    /// A position lies outside the output.
    PositionOutOfRange { position: u32, output_len: u32 },
    /// A job asked for zero output tokens.
    ZeroMaxTokens,
}

impl fmt::Display for RasticError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TemperatureTooHigh(t) => {
                write!(
                    f,
                    "temperature {t} milli exceeds the maximum {MAX_TEMPERATURE_MILLI}"
                )
            }
            Self::NoFiniteLogits => f.write_str("no finite logit to choose a token from"),
            Self::PositionOutOfRange {
                position,
                output_len,
            } => {
                write!(
                    f,
                    "position {position} is outside an output of {output_len} tokens"
                )
            }
            Self::ZeroMaxTokens => f.write_str("max tokens is zero"),
        }
    }
}

impl std::error::Error for RasticError {}

/// The raw 64-bit random number of output position `position`: the first 8 bytes, read as a
/// little-endian `u64`, of SHA-256d(`"camelid/rastic/u"` ‖ job id (32 bytes) ‖ seed (u64 LE) ‖
/// position (u32 LE)).
pub fn position_random(job_id: &JobId, seed: u64, position: u32) -> u64 {
    let mut msg = Vec::with_capacity(UNIFORM_TAG.len().saturating_add(44));
    msg.extend_from_slice(UNIFORM_TAG);
    msg.extend_from_slice(job_id.as_bytes());
    msg.extend_from_slice(&seed.to_le_bytes());
    msg.extend_from_slice(&position.to_le_bytes());
    let h = sha256d(&msg);
    let mut first = [0u8; 8];
    first.copy_from_slice(h.first_chunk::<8>().unwrap_or(&[0u8; 8]));
    u64::from_le_bytes(first)
}

/// The uniform number u = [`position_random`] / 2^64, in [0, 1).
pub fn position_uniform(job_id: &JobId, seed: u64, position: u32) -> f64 {
    // 2^-64 is exact in f64; the product rounds to nearest and can reach 1.0 only for
    // values within 2^-53 of 2^64, which the CDF rule below treats like any u past the end.
    position_random(job_id, seed, position) as f64 * (1.0 / 18_446_744_073_709_551_616.0)
}

/// Greedy choice: the id of the largest finite logit, ties to the lowest id.
pub fn argmax(logits: &[f32]) -> Result<TokenId, RasticError> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if !l.is_finite() {
            continue;
        }
        match best {
            Some((_, b)) if l <= b => {}
            _ => best = Some((i, l)),
        }
    }
    best.and_then(|(i, _)| TokenId::try_from(i).ok())
        .ok_or(RasticError::NoFiniteLogits)
}

/// The softmax at temperature T of `logits`, as unnormalised f64 weights
/// w_j = exp((l_j − max) / T) (0 for non-finite logits) and their sequential sum in id order.
struct Weights {
    weights: Vec<f64>,
    total: f64,
}

fn weights(logits: &[f32], temperature: f64) -> Result<Weights, RasticError> {
    let max = logits
        .iter()
        .copied()
        .filter(|l| l.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return Err(RasticError::NoFiniteLogits);
    }
    let max = f64::from(max);
    let mut total = 0.0f64;
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| {
            let w = if l.is_finite() {
                ((f64::from(l) - max) / temperature).exp()
            } else {
                0.0
            };
            total += w;
            w
        })
        .collect();
    Ok(Weights { weights, total })
}

/// The token that the sampling rule picks for random number `u` at temperature `temperature`
/// (> 0): the smallest id j with W_j > u·S, where W_j is the sum of the weights of ids 0..=j in
/// id order and S the sum of all; if rounding leaves no such j, the largest id of non-zero weight.
fn inverse_cdf(w: &Weights, u: f64) -> Result<TokenId, RasticError> {
    let target = u * w.total;
    let mut cum = 0.0f64;
    let mut last_nonzero = None;
    for (j, &wj) in w.weights.iter().enumerate() {
        if wj > 0.0 {
            last_nonzero = Some(j);
        }
        cum += wj;
        if cum > target && wj > 0.0 {
            return TokenId::try_from(j).map_err(|_| RasticError::NoFiniteLogits);
        }
    }
    last_nonzero
        .and_then(|j| TokenId::try_from(j).ok())
        .ok_or(RasticError::NoFiniteLogits)
}

/// The token the job's sampler chooses from `logits` at output position `position`.
/// Workers generate with exactly this function; verifiers recompute it.
pub fn choose_token(
    logits: &[f32],
    params: &SamplingParams,
    job_id: &JobId,
    position: u32,
) -> Result<TokenId, RasticError> {
    params.validate()?;
    if params.is_greedy() {
        return argmax(logits);
    }
    let w = weights(logits, params.temperature())?;
    inverse_cdf(&w, position_uniform(job_id, params.seed, position))
}

/// How far from the verifier's own choice a claimed token may be before it is called wrong.
/// Fixed-point, because verdicts enter fraud proofs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tolerance {
    /// δ for greedy jobs, in thousandths of a logit: a claimed token whose logit is within δ of
    /// the largest logit is not accused.
    pub logit_delta_milli: u32,
    /// ε for sampled jobs, in millionths of probability: a claimed token whose CDF interval lies
    /// within ε of the position's random number is not accused.
    pub cdf_epsilon_ppm: u32,
}

impl Tolerance {
    /// Exact reproduction: only the verifier's own choice passes.
    pub const EXACT: Self = Self {
        logit_delta_milli: 0,
        cdf_epsilon_ppm: 0,
    };

    /// The protocol default, chosen by the calibration in `docs/rastic.md`
    /// (ADR `docs/adr/0002-rastic-tolerance.md`).
    pub const DEFAULT: Self = Self {
        logit_delta_milli: 500,
        cdf_epsilon_ppm: 150_000,
    };

    /// The fraud-proof oracle's tolerance (`docs/protocol.md` §13.9): three times the default,
    /// about five times the largest honest disagreement measured across kernels, so that no
    /// position where two honest machines might disagree can ever slash.
    pub const ORACLE: Self = Self {
        logit_delta_milli: 1_500,
        cdf_epsilon_ppm: 250_000,
    };

    pub fn delta(&self) -> f64 {
        f64::from(self.logit_delta_milli) / 1000.0
    }

    pub fn epsilon(&self) -> f64 {
        f64::from(self.cdf_epsilon_ppm) / 1_000_000.0
    }
}

impl Default for Tolerance {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The outcome at one checked position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The claimed token is the verifier's own choice.
    Pass,
    /// The claimed token differs from the verifier's choice but lies within the tolerance: the
    /// verifier cannot tell a cheat from floating-point noise and does not accuse.
    Abstain,
    /// The claimed token is outside the tolerance: evidence of a wrong output.
    Fail,
}

/// One checked position, with what the verifier saw there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionCheck {
    pub position: u32,
    pub claimed: TokenId,
    /// The verifier's own choice.
    pub expected: TokenId,
    pub outcome: Outcome,
    /// Greedy: the claimed token's logit minus the best logit among the other tokens (> 0 when
    /// it is the unique argmax, −gap when another token beats it). Sampling: the signed distance
    /// from u to the nearest edge of the claimed token's CDF interval (> 0 inside, < 0 outside).
    pub margin: f64,
    /// Greedy: the verifier's top-1 minus top-2 logit. Sampling: the verifier's distance from u
    /// to the nearest edge of its own token's interval. How sure the verifier is of its choice.
    pub confidence: f64,
}

/// Checks the claimed token at one output position against the verifier's logits there.
pub fn check_position(
    logits: &[f32],
    claimed: TokenId,
    position: u32,
    params: &SamplingParams,
    job_id: &JobId,
    tolerance: &Tolerance,
) -> Result<PositionCheck, RasticError> {
    params.validate()?;
    let claimed_logit = usize::try_from(claimed)
        .ok()
        .and_then(|i| logits.get(i))
        .copied();
    if params.is_greedy() {
        // One pass: the best finite logit (lowest id on ties) and the runner-up value.
        let mut top: Option<(usize, f32)> = None;
        let mut second = f32::NEG_INFINITY;
        for (i, &l) in logits.iter().enumerate() {
            if !l.is_finite() {
                continue;
            }
            match top {
                Some((_, b)) if l <= b => second = second.max(l),
                Some((_, b)) => {
                    second = b;
                    top = Some((i, l));
                }
                None => top = Some((i, l)),
            }
        }
        let (top_id, top_logit) = top.ok_or(RasticError::NoFiniteLogits)?;
        let expected = TokenId::try_from(top_id).map_err(|_| RasticError::NoFiniteLogits)?;
        let (best, second) = (f64::from(top_logit), f64::from(second));
        let confidence = best - second;
        let (outcome, margin) = match claimed_logit.filter(|l| l.is_finite()) {
            None => (Outcome::Fail, f64::NEG_INFINITY),
            Some(l) => {
                let l = f64::from(l);
                if claimed == expected {
                    (Outcome::Pass, l - second)
                } else if best - l <= tolerance.delta() {
                    (Outcome::Abstain, l - best)
                } else {
                    (Outcome::Fail, l - best)
                }
            }
        };
        return Ok(PositionCheck {
            position,
            claimed,
            expected,
            outcome,
            margin,
            confidence,
        });
    }
    let w = weights(logits, params.temperature())?;
    let u = position_uniform(job_id, params.seed, position);
    let expected = inverse_cdf(&w, u)?;
    let interval = |id: TokenId| -> Option<(f64, f64)> {
        let idx = usize::try_from(id).ok()?;
        let wj = *w.weights.get(idx)?;
        let below: f64 = w.weights.get(..idx)?.iter().sum();
        Some((below / w.total, (below + wj) / w.total))
    };
    let signed_distance = |(lo, hi): (f64, f64)| -> f64 {
        if u < lo {
            u - lo
        } else if u >= hi {
            hi - u
        } else {
            (u - lo).min(hi - u)
        }
    };
    let confidence = interval(expected).map(signed_distance).unwrap_or(0.0);
    let (outcome, margin) = match interval(claimed) {
        None => (Outcome::Fail, f64::NEG_INFINITY),
        Some((lo, hi)) => {
            let margin = signed_distance((lo, hi));
            let outcome = if claimed == expected {
                Outcome::Pass
            } else if hi > lo && margin >= -tolerance.epsilon() {
                Outcome::Abstain
            } else {
                Outcome::Fail
            };
            (outcome, margin)
        }
    };
    Ok(PositionCheck {
        position,
        claimed,
        expected,
        outcome,
        margin,
        confidence,
    })
}

/// Which positions a verifier checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckMode {
    /// Every output position.
    Full,
    /// The first and last positions and `k` interior ones drawn from H(commitment ‖ nonce).
    Sample { k: u32 },
}

/// The output positions to recompute, in increasing order, without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckPlan {
    positions: Vec<u32>,
}

impl CheckPlan {
    pub fn positions(&self) -> &[u32] {
        &self.positions
    }

    /// The last position checked: the forward pass need not go beyond it.
    pub fn last(&self) -> Option<u32> {
        self.positions.last().copied()
    }
}

/// Draws the check plan for an output of `output_len` tokens: continuity (position 0), the end
/// position (`output_len − 1`) and, in sample mode, `k` distinct interior positions. Interior
/// draw j (j = 0, 1, …) is 1 + (x_j · (output_len − 2)) >> 64, where x_j is the first 8 bytes
/// (LE u64) of SHA-256d(`"camelid/rastic/plan"` ‖ commitment ‖ nonce ‖ j as u32 LE); repeats are
/// skipped until k distinct positions are drawn (or every interior position is).
pub fn plan(commitment: &Hash256, nonce: &[u8; 32], output_len: u32, mode: CheckMode) -> CheckPlan {
    let Some(last) = output_len.checked_sub(1) else {
        return CheckPlan {
            positions: Vec::new(),
        };
    };
    let interior = output_len.saturating_sub(2);
    let k = match mode {
        CheckMode::Full => interior,
        CheckMode::Sample { k } => k.min(interior),
    };
    let mut positions: Vec<u32> = vec![0, last];
    if k == interior {
        positions.extend(1..=interior);
    } else {
        let mut chosen = std::collections::BTreeSet::new();
        let mut j: u32 = 0;
        while u32::try_from(chosen.len()).unwrap_or(u32::MAX) < k {
            let mut msg = Vec::with_capacity(PLAN_TAG.len().saturating_add(68));
            msg.extend_from_slice(PLAN_TAG);
            msg.extend_from_slice(commitment.as_bytes());
            msg.extend_from_slice(nonce);
            msg.extend_from_slice(&j.to_le_bytes());
            let h = sha256d(&msg);
            let x = u64::from_le_bytes(*h.first_chunk::<8>().unwrap_or(&[0u8; 8]));
            let scaled = u128::from(x)
                .wrapping_mul(u128::from(interior))
                .checked_shr(64);
            let offset = scaled.and_then(|s| u32::try_from(s).ok()).unwrap_or(0);
            chosen.insert(offset.saturating_add(1));
            j = j.wrapping_add(1);
        }
        positions.extend(chosen);
    }
    positions.sort_unstable();
    positions.dedup();
    CheckPlan { positions }
}

/// A structural fault of an output, found without the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StructureFault {
    /// The output is empty: even an immediate end of generation is one (EOS) token.
    Empty,
    /// More tokens than the job allows.
    TooLong { len: u32, max_tokens: u32 },
    /// An end-of-generation token before the last position.
    EosBeforeEnd { position: u32, token: TokenId },
    /// Fewer tokens than the job allows but the last is not end-of-generation: truncated.
    MissingEos {
        len: u32,
        max_tokens: u32,
        last: TokenId,
    },
    /// A token id outside the model's vocabulary.
    TokenOutOfVocab {
        position: u32,
        token: TokenId,
        n_vocab: u32,
    },
}

impl fmt::Display for StructureFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty output"),
            Self::TooLong { len, max_tokens } => {
                write!(
                    f,
                    "output has {len} tokens, more than max tokens {max_tokens}"
                )
            }
            Self::EosBeforeEnd { position, token } => {
                write!(
                    f,
                    "end-of-generation token {token} at position {position} before the end"
                )
            }
            Self::MissingEos {
                len,
                max_tokens,
                last,
            } => write!(
                f,
                "output stops after {len} of {max_tokens} tokens on token {last}, not end-of-generation"
            ),
            Self::TokenOutOfVocab {
                position,
                token,
                n_vocab,
            } => {
                write!(
                    f,
                    "token {token} at position {position} is outside the vocabulary of {n_vocab}"
                )
            }
        }
    }
}

/// The end/truncation rule: a non-empty output of at most `max_tokens` tokens, no
/// end-of-generation token (any of `eog`) before the last position, and, when shorter than
/// `max_tokens`, an end-of-generation token last; every token below `n_vocab`.
pub fn check_structure(
    output: &[TokenId],
    max_tokens: u32,
    eog: &[TokenId],
    n_vocab: u32,
) -> Vec<StructureFault> {
    let mut faults = Vec::new();
    let len = u32::try_from(output.len()).unwrap_or(u32::MAX);
    let Some((&last, body)) = output.split_last() else {
        faults.push(StructureFault::Empty);
        return faults;
    };
    if len > max_tokens {
        faults.push(StructureFault::TooLong { len, max_tokens });
    }
    for (i, t) in body.iter().enumerate() {
        if eog.contains(t) {
            let position = u32::try_from(i).unwrap_or(u32::MAX);
            faults.push(StructureFault::EosBeforeEnd {
                position,
                token: *t,
            });
        }
    }
    if len < max_tokens && !eog.contains(&last) {
        faults.push(StructureFault::MissingEos {
            len,
            max_tokens,
            last,
        });
    }
    for (i, &token) in output.iter().enumerate() {
        if token >= n_vocab {
            let position = u32::try_from(i).unwrap_or(u32::MAX);
            faults.push(StructureFault::TokenOutOfVocab {
                position,
                token,
                n_vocab,
            });
        }
    }
    faults
}

/// The verdict on one output.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Structural faults (no model needed).
    pub structure: Vec<StructureFault>,
    /// Every checked position, in increasing order.
    pub checks: Vec<PositionCheck>,
}

impl Verdict {
    /// Valid when nothing failed; abstentions do not make an output invalid.
    pub fn is_valid(&self) -> bool {
        self.structure.is_empty() && self.failures().next().is_none()
    }

    pub fn failures(&self) -> impl Iterator<Item = &PositionCheck> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Fail)
    }

    pub fn abstentions(&self) -> impl Iterator<Item = &PositionCheck> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Abstain)
    }

    /// The first failing position, if any (the one a fraud proof would cite).
    pub fn first_failure(&self) -> Option<&PositionCheck> {
        self.failures().next()
    }
}

/// Probability that checking `k` uniformly drawn positions (without replacement) out of `n`
/// misses all `bad` altered ones: C(n−bad, k) / C(n, k). Detection probability is one minus
/// this; for small k/n it approaches 1 − (1 − f)^k with f = bad/n.
pub fn miss_probability(n: u32, bad: u32, k: u32) -> f64 {
    if k >= n {
        return if bad == 0 { 1.0 } else { 0.0 };
    }
    let mut p = 1.0f64;
    for i in 0..k {
        let good = n.saturating_sub(bad);
        if good <= i {
            return 0.0;
        }
        p *= f64::from(good.saturating_sub(i)) / f64::from(n.saturating_sub(i));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobId {
        JobId::from_byte_array([7u8; 32])
    }

    #[test]
    fn uniform_vector_is_pinned() {
        // Pinned so that the documented rule cannot drift from the code.
        let mut msg = b"camelid/rastic/u".to_vec();
        msg.extend_from_slice(&[7u8; 32]);
        msg.extend_from_slice(&42u64.to_le_bytes());
        msg.extend_from_slice(&3u32.to_le_bytes());
        let h = sha256d(&msg);
        let expect = u64::from_le_bytes(h[..8].try_into().unwrap());
        assert_eq!(position_random(&job(), 42, 3), expect);
        let u = position_uniform(&job(), 42, 3);
        assert!((0.0..1.0).contains(&u));
        assert_ne!(
            position_random(&job(), 42, 3),
            position_random(&job(), 42, 4)
        );
        assert_ne!(
            position_random(&job(), 42, 3),
            position_random(&job(), 43, 3)
        );
    }

    #[test]
    fn uniform_is_roughly_uniform() {
        let n = 20_000u32;
        let mean: f64 = (0..n).map(|i| position_uniform(&job(), 1, i)).sum::<f64>() / f64::from(n);
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn argmax_ties_to_lowest_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), Ok(1));
        assert_eq!(argmax(&[f32::NAN, 0.5, f32::INFINITY, 0.5]), Ok(1));
        assert_eq!(argmax(&[f32::NAN]), Err(RasticError::NoFiniteLogits));
        assert_eq!(argmax(&[]), Err(RasticError::NoFiniteLogits));
    }

    #[test]
    fn inverse_cdf_picks_by_interval() {
        // Weights at T=1 of logits ln(1), ln(2), ln(1): probabilities 1/4, 1/2, 1/4.
        let logits = [0.0f32, 2f32.ln(), 0.0];
        let w = weights(&logits, 1.0).unwrap();
        assert_eq!(inverse_cdf(&w, 0.0), Ok(0));
        assert_eq!(inverse_cdf(&w, 0.2499), Ok(0));
        assert_eq!(inverse_cdf(&w, 0.2501), Ok(1));
        assert_eq!(inverse_cdf(&w, 0.7499), Ok(1));
        assert_eq!(inverse_cdf(&w, 0.7501), Ok(2));
        assert_eq!(inverse_cdf(&w, 1.0), Ok(2));
        // Zero-weight tokens are never picked, even at the ends.
        let w = weights(&[f32::NEG_INFINITY, 0.0, f32::NAN], 1.0).unwrap();
        assert_eq!(inverse_cdf(&w, 0.0), Ok(1));
        assert_eq!(inverse_cdf(&w, 1.0), Ok(1));
    }

    #[test]
    fn sampling_follows_distribution() {
        let logits = [0.0f32, 1.0, 2.0];
        let params = SamplingParams {
            temperature_milli: 1000,
            seed: 9,
        };
        let mut counts = [0u32; 3];
        for i in 0..30_000u32 {
            counts[choose_token(&logits, &params, &job(), i).unwrap() as usize] += 1;
        }
        let z: f64 = [0.0f64, 1.0, 2.0].iter().map(|l| l.exp()).sum();
        for (j, c) in counts.iter().enumerate() {
            let p = (j as f64).exp() / z;
            assert!(
                (f64::from(*c) / 30_000.0 - p).abs() < 0.01,
                "token {j}: {c}"
            );
        }
        // Low temperature concentrates on the argmax.
        let cold = SamplingParams {
            temperature_milli: 10,
            seed: 9,
        };
        assert!((0..100).all(|i| choose_token(&logits, &cold, &job(), i) == Ok(2)));
    }

    #[test]
    fn temperature_limit() {
        let p = SamplingParams {
            temperature_milli: MAX_TEMPERATURE_MILLI + 1,
            seed: 0,
        };
        assert_eq!(
            choose_token(&[0.0], &p, &job(), 0),
            Err(RasticError::TemperatureTooHigh(10_001))
        );
    }

    #[test]
    fn greedy_check_tolerance() {
        let logits = [1.0f32, 5.0, 4.9, 0.0];
        let tol = Tolerance {
            logit_delta_milli: 200,
            cdf_epsilon_ppm: 0,
        };
        let g = SamplingParams::GREEDY;
        let c = check_position(&logits, 1, 0, &g, &job(), &tol).unwrap();
        assert_eq!((c.outcome, c.expected), (Outcome::Pass, 1));
        assert!((c.margin - 0.1).abs() < 1e-6 && (c.confidence - 0.1).abs() < 1e-6);
        let c = check_position(&logits, 2, 0, &g, &job(), &tol).unwrap();
        assert_eq!((c.outcome, c.expected), (Outcome::Abstain, 1));
        assert!((c.margin + 0.1).abs() < 1e-6);
        let c = check_position(&logits, 0, 0, &g, &job(), &tol).unwrap();
        assert_eq!(c.outcome, Outcome::Fail);
        let exact = check_position(&logits, 2, 0, &g, &job(), &Tolerance::EXACT).unwrap();
        assert_eq!(exact.outcome, Outcome::Fail);
        // A token outside the vocabulary always fails.
        let c = check_position(&logits, 99, 0, &g, &job(), &tol).unwrap();
        assert_eq!(c.outcome, Outcome::Fail);
    }

    #[test]
    fn sampled_check_tolerance() {
        let logits = [0.0f32, 0.0, 0.0, 0.0];
        let params = SamplingParams {
            temperature_milli: 700,
            seed: 5,
        };
        let pos = (0..)
            .find(|&p| position_uniform(&job(), 5, p) < 0.24)
            .unwrap();
        let u = position_uniform(&job(), 5, pos);
        let tol = Tolerance {
            logit_delta_milli: 0,
            cdf_epsilon_ppm: 20_000,
        };
        let c = check_position(&logits, 0, pos, &params, &job(), &tol).unwrap();
        assert_eq!(c.outcome, Outcome::Pass);
        assert!((c.margin - u.min(0.25 - u)).abs() < 1e-12);
        // Token 1 spans [0.25, 0.5): within ε only when u is close to 0.25.
        let c = check_position(&logits, 1, pos, &params, &job(), &tol).unwrap();
        assert!((c.margin - (u - 0.25)).abs() < 1e-12);
        let want = if 0.25 - u <= 0.02 {
            Outcome::Abstain
        } else {
            Outcome::Fail
        };
        assert_eq!(c.outcome, want);
        let c = check_position(&logits, 3, pos, &params, &job(), &tol).unwrap();
        assert_eq!(c.outcome, Outcome::Fail);
    }

    #[test]
    fn plan_full_and_sample() {
        let c = Hash256::from_byte_array([1u8; 32]);
        let n = [2u8; 32];
        assert_eq!(plan(&c, &n, 0, CheckMode::Full).positions(), &[] as &[u32]);
        assert_eq!(plan(&c, &n, 1, CheckMode::Full).positions(), &[0]);
        assert_eq!(
            plan(&c, &n, 5, CheckMode::Full).positions(),
            &[0, 1, 2, 3, 4]
        );
        assert_eq!(
            plan(&c, &n, 5, CheckMode::Sample { k: 9 }).positions(),
            &[0, 1, 2, 3, 4]
        );
        let p = plan(&c, &n, 100, CheckMode::Sample { k: 3 });
        assert_eq!(p.positions().len(), 5);
        assert_eq!(p.positions()[0], 0);
        assert_eq!(p.last(), Some(99));
        assert!(p.positions().windows(2).all(|w| w[0] < w[1]));
        // Deterministic in (commitment, nonce), different for another nonce.
        assert_eq!(p, plan(&c, &n, 100, CheckMode::Sample { k: 3 }));
        let others: Vec<_> = (0..8u8)
            .map(|b| plan(&c, &[b; 32], 100, CheckMode::Sample { k: 3 }))
            .collect();
        assert!(others.iter().any(|o| o != &p));
    }

    #[test]
    fn plan_draws_cover_interior_evenly() {
        let c = Hash256::from_byte_array([3u8; 32]);
        let mut hits = vec![0u32; 10];
        for b in 0..=255u8 {
            for q in 0..8u8 {
                let mut nonce = [b; 32];
                nonce[0] = q;
                for &p in plan(&c, &nonce, 12, CheckMode::Sample { k: 1 }).positions() {
                    if (1..=10).contains(&p) {
                        hits[p as usize - 1] += 1;
                    }
                }
            }
        }
        assert!(hits.iter().all(|&h| (150..=260).contains(&h)), "{hits:?}");
    }

    #[test]
    fn structure_rules() {
        let eog = [0u32, 2];
        assert_eq!(
            check_structure(&[], 4, &eog, 100),
            vec![StructureFault::Empty]
        );
        assert!(check_structure(&[5, 6, 2], 4, &eog, 100).is_empty());
        assert!(check_structure(&[5, 6, 7, 8], 4, &eog, 100).is_empty());
        assert!(check_structure(&[5, 6, 7, 0], 4, &eog, 100).is_empty());
        assert_eq!(
            check_structure(&[5, 6, 7], 4, &eog, 100),
            vec![StructureFault::MissingEos {
                len: 3,
                max_tokens: 4,
                last: 7
            }]
        );
        assert_eq!(
            check_structure(&[5, 2, 7, 0], 4, &eog, 100),
            vec![StructureFault::EosBeforeEnd {
                position: 1,
                token: 2
            }]
        );
        assert_eq!(
            check_structure(&[5, 6, 7, 8, 9], 4, &eog, 100),
            vec![StructureFault::TooLong {
                len: 5,
                max_tokens: 4
            }]
        );
        assert_eq!(
            check_structure(&[5, 100, 2], 4, &eog, 100),
            vec![StructureFault::TokenOutOfVocab {
                position: 1,
                token: 100,
                n_vocab: 100
            }]
        );
    }

    #[test]
    fn miss_probability_matches_formula() {
        assert_eq!(miss_probability(10, 0, 3), 1.0);
        assert_eq!(miss_probability(10, 8, 3), 0.0);
        assert!((miss_probability(10, 1, 3) - 0.7).abs() < 1e-12);
        let (n, bad, k) = (10_000u32, 500u32, 8u32);
        let approx = (1.0 - f64::from(bad) / f64::from(n)).powi(k as i32);
        assert!((miss_probability(n, bad, k) - approx).abs() < 1e-3);
    }

    #[test]
    fn verdict_validity() {
        let pass = PositionCheck {
            position: 0,
            claimed: 1,
            expected: 1,
            outcome: Outcome::Pass,
            margin: 1.0,
            confidence: 1.0,
        };
        let abstain = PositionCheck {
            outcome: Outcome::Abstain,
            claimed: 2,
            ..pass
        };
        let fail = PositionCheck {
            outcome: Outcome::Fail,
            position: 4,
            claimed: 3,
            ..pass
        };
        let v = Verdict {
            structure: vec![],
            checks: vec![pass, abstain],
        };
        assert!(v.is_valid());
        assert_eq!(v.abstentions().count(), 1);
        let v = Verdict {
            structure: vec![],
            checks: vec![pass, fail],
        };
        assert!(!v.is_valid());
        assert_eq!(v.first_failure().map(|c| c.position), Some(4));
        let v = Verdict {
            structure: vec![StructureFault::Empty],
            checks: vec![],
        };
        assert!(!v.is_valid());
    }
}
