//! Calibration of the RASTiC tolerance: honest outputs are generated in several configurations
//! (threads × micro-batch size) and every token is checked by a verifier in a *different*
//! configuration, exactly (δ = ε = 0) so that every disagreement is seen, with its size.
//! The result gives the false-rejection count at any tolerance and the margin distribution
//! published in docs/rastic.md.

use camel_core::JobId;
use camel_core::rastic::{CheckMode, Outcome, SamplingParams, Tolerance};
use serde::Serialize;

use crate::engine::{Engine, EngineConfig, EngineError, JobSpec};
use crate::verify::{VerifyRequest, verify};

const SUBJECTS: &[&str] = &[
    "the water cycle",
    "how a bicycle stays upright",
    "the history of the printing press",
    "why the sky is blue",
    "photosynthesis",
    "the rules of chess",
    "how vaccines work",
    "the French Revolution",
    "black holes",
    "the stock market",
    "how to bake bread",
    "the life of honeybees",
    "volcanoes",
    "the internet",
    "climate and weather",
    "the Roman Empire",
    "how airplanes fly",
    "prime numbers",
    "the human heart",
    "renewable energy",
    "the moon landing",
    "coral reefs",
    "how a compiler works",
    "the Great Wall of China",
    "sleep and dreams",
    "electric cars",
    "the Silk Road",
    "earthquakes",
    "a healthy breakfast",
    "learning a new language",
];

const FORMS: &[&str] = &[
    "Explain {} to a ten-year-old.",
    "Write a short poem about {}.",
    "List three surprising facts about {}.",
    "Here is a short essay on {}:",
    "Q: What should everyone know about {}?\nA:",
    "Write the opening paragraph of a story that involves {}.",
    "Summarize {} in two sentences.",
    "My teacher asked me to describe {}. I wrote:",
];

const LONG_PARAGRAPH: &str = "The committee met again on Tuesday to review the budget for the coming year. \
Several members raised concerns about the cost of repairs to the old library, which has needed a new roof \
for some time, and about the rising price of heating oil. After a long discussion the committee agreed to \
ask the town for a small increase in funding and to postpone the purchase of new furniture. ";

/// The i-th calibration prompt (deterministic): subjects × forms, every third in the model's
/// chat template, every fortieth a long document (> 512 tokens with the output) to exercise
/// long-context kernels.
pub fn prompt_text(engine: &Engine, i: usize) -> Result<String, EngineError> {
    let subject = SUBJECTS[(i * 7) % SUBJECTS.len()];
    let form = FORMS[(i / SUBJECTS.len() + i * 3) % FORMS.len()];
    let base = form.replace("{}", subject);
    if i % 40 == 7 {
        let mut s = String::new();
        while s.len() < 2600 {
            s.push_str(LONG_PARAGRAPH);
        }
        s.push_str("\nIn one sentence, the committee decided to");
        return Ok(s);
    }
    if i.is_multiple_of(3) {
        engine.chat_prompt(&base)
    } else {
        Ok(base)
    }
}

/// The sampling of the i-th calibration job: even jobs greedy, odd ones at temperature 0.8.
pub fn sampling(i: usize) -> SamplingParams {
    if i.is_multiple_of(2) {
        SamplingParams::GREEDY
    } else {
        SamplingParams {
            temperature_milli: 800,
            seed: i as u64,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    /// Index of the first prompt (runs can be split into chunks).
    pub first_prompt: usize,
    pub prompts: usize,
    pub max_tokens: u32,
    /// Generation thread counts (each paired with a verifier at another count).
    pub threads: Vec<u32>,
    /// Generation micro-batch sizes (each paired with a verifier at another size).
    pub ubatches: Vec<u32>,
    /// Also verify every output with flash attention on (a configuration outside the canonical
    /// one, standing in for another machine's kernels).
    pub foreign: bool,
    pub base: EngineConfig,
    /// Tolerance whose false rejections are counted.
    pub tolerance: Tolerance,
}

/// Distribution buckets (upper bounds) for margins.
pub const BUCKETS: &[f64] = &[
    0.0,
    1e-4,
    1e-3,
    1e-2,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    f64::INFINITY,
];

#[derive(Debug, Clone, Default, Serialize)]
pub struct Histogram {
    /// Upper bounds (inclusive); the last is +inf.
    pub le: Vec<String>,
    pub counts: Vec<u64>,
}

impl Histogram {
    fn new() -> Self {
        Self {
            le: BUCKETS.iter().map(|b| format!("{b}")).collect(),
            counts: vec![0; BUCKETS.len()],
        }
    }
    fn add(&mut self, x: f64) {
        let i = BUCKETS
            .iter()
            .position(|&b| x <= b)
            .unwrap_or(BUCKETS.len() - 1);
        self.counts[i] += 1;
    }
}

/// What one verifier configuration saw over all honest outputs.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigStats {
    pub label: String,
    pub jobs: u64,
    pub tokens: u64,
    pub greedy_tokens: u64,
    pub sampled_tokens: u64,
    /// Positions where the verifier's own choice differed from the honest token.
    pub greedy_mismatches: u64,
    pub sampled_mismatches: u64,
    /// Largest (best − claimed) logit gap at a greedy mismatch: the δ needed.
    pub max_greedy_gap: f64,
    /// Largest distance from u to the claimed token's CDF interval: the ε needed.
    pub max_sampled_distance: f64,
    /// Honest positions the given tolerance would reject.
    pub false_rejections: u64,
    /// Honest positions the given tolerance abstains on.
    pub abstentions: u64,
    /// Greedy: verifier's top-1 − top-2 logit at every position.
    pub greedy_confidence: Histogram,
    /// Greedy mismatches: best − claimed logit.
    pub greedy_gaps: Histogram,
    /// Sampled mismatches: distance from u to the claimed interval.
    pub sampled_distances: Histogram,
    /// Sampled: distance from u to the nearest edge of the verifier's own interval.
    pub sampled_confidence: Histogram,
}

impl ConfigStats {
    fn new(label: String) -> Self {
        Self {
            label,
            jobs: 0,
            tokens: 0,
            greedy_tokens: 0,
            sampled_tokens: 0,
            greedy_mismatches: 0,
            sampled_mismatches: 0,
            max_greedy_gap: 0.0,
            max_sampled_distance: 0.0,
            false_rejections: 0,
            abstentions: 0,
            greedy_confidence: Histogram::new(),
            greedy_gaps: Histogram::new(),
            sampled_distances: Histogram::new(),
            sampled_confidence: Histogram::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CalibrationReport {
    pub model_id: String,
    pub first_prompt: usize,
    pub prompts: usize,
    pub max_tokens: u32,
    pub generations: u64,
    pub generated_tokens: u64,
    pub eos_stops: u64,
    pub tolerance_delta_milli: u32,
    pub tolerance_epsilon_ppm: u32,
    pub configs: Vec<ConfigStats>,
    pub llamafile: bool,
    pub seconds: f64,
}

fn record(
    stats: &mut ConfigStats,
    sampling: &SamplingParams,
    checks: &[camel_core::rastic::PositionCheck],
    tol: &Tolerance,
) {
    stats.jobs += 1;
    // Greedy positions are measured in logits against δ, sampled ones in CDF distance
    // against ε; otherwise they are tallied alike.
    let greedy = sampling.is_greedy();
    let (tokens, confidence, mismatches, gaps, max_gap, bound) = if greedy {
        (
            &mut stats.greedy_tokens,
            &mut stats.greedy_confidence,
            &mut stats.greedy_mismatches,
            &mut stats.greedy_gaps,
            &mut stats.max_greedy_gap,
            tol.delta(),
        )
    } else {
        (
            &mut stats.sampled_tokens,
            &mut stats.sampled_confidence,
            &mut stats.sampled_mismatches,
            &mut stats.sampled_distances,
            &mut stats.max_sampled_distance,
            tol.epsilon(),
        )
    };
    for c in checks {
        stats.tokens += 1;
        *tokens += 1;
        confidence.add(c.confidence);
        if c.claimed != c.expected {
            *mismatches += 1;
            let gap = -c.margin;
            gaps.add(gap);
            *max_gap = max_gap.max(gap);
            if gap > bound {
                stats.false_rejections += 1;
            } else {
                stats.abstentions += 1;
            }
        }
    }
}

/// Runs the calibration; `progress` is called after each generation.
pub fn run(
    engine: &Engine,
    opts: &CalibrateOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<CalibrationReport, EngineError> {
    let start = std::time::Instant::now();
    let other = |v: &[u32], x: u32| v.iter().copied().find(|&y| y != x).unwrap_or(x);
    let mut canonical = ConfigStats::new("canonical verifier (other threads, other ubatch)".into());
    let mut foreign = ConfigStats::new("flash attention on (other threads, other ubatch)".into());
    let mut generations = 0u64;
    let mut generated_tokens = 0u64;
    let mut eos_stops = 0u64;
    let total = opts.prompts * opts.threads.len() * opts.ubatches.len();
    let mut done = 0usize;
    for i in opts.first_prompt..opts.first_prompt + opts.prompts {
        let text = prompt_text(engine, i)?;
        let prompt = engine.tokenize(&text);
        let sampling = sampling(i);
        let job = JobSpec {
            job_id: JobId::hash(format!("calibration job {i}").as_bytes()),
            sampling,
            max_tokens: opts.max_tokens,
        };
        for &t in &opts.threads {
            for &u in &opts.ubatches {
                let gen_cfg = EngineConfig {
                    threads: t,
                    ubatch_size: u,
                    batch_size: u.max(opts.base.batch_size),
                    ..opts.base.clone()
                };
                let g = engine.generate(&gen_cfg, &prompt, &job, |_, _| {})?;
                generations += 1;
                generated_tokens += g.tokens.len() as u64;
                if g.stop == crate::engine::StopReason::Eos {
                    eos_stops += 1;
                }
                let vu = other(&opts.ubatches, u);
                let ver_cfg = EngineConfig {
                    threads: other(&opts.threads, t),
                    ubatch_size: vu,
                    batch_size: vu.max(opts.base.batch_size),
                    ..opts.base.clone()
                };
                let req = VerifyRequest {
                    prompt: prompt.clone(),
                    output: g.tokens.clone(),
                    job,
                    mode: CheckMode::Full,
                    commitment: camel_core::Hash256::ZERO,
                    nonce: [0u8; 32],
                };
                let r = verify(engine, &ver_cfg, &req, &Tolerance::EXACT)?;
                if !r.verdict.structure.is_empty() {
                    return Err(EngineError::Config(format!(
                        "honest output of prompt {i} has structure faults {:?}",
                        r.verdict.structure
                    )));
                }
                record(
                    &mut canonical,
                    &sampling,
                    &r.verdict.checks,
                    &opts.tolerance,
                );
                if opts.foreign {
                    let fcfg = EngineConfig {
                        flash_attention: true,
                        ..ver_cfg
                    };
                    let r = verify(engine, &fcfg, &req, &Tolerance::EXACT)?;
                    record(&mut foreign, &sampling, &r.verdict.checks, &opts.tolerance);
                }
                debug_assert!(
                    r.verdict
                        .checks
                        .iter()
                        .all(|c| c.outcome != Outcome::Pass || c.claimed == c.expected)
                );
                done += 1;
                progress(done, total);
            }
        }
    }
    let mut configs = vec![canonical];
    if opts.foreign {
        configs.push(foreign);
    }
    Ok(CalibrationReport {
        model_id: engine.model_id().to_string(),
        first_prompt: opts.first_prompt,
        prompts: opts.prompts,
        max_tokens: opts.max_tokens,
        generations,
        generated_tokens,
        eos_stops,
        tolerance_delta_milli: opts.tolerance.logit_delta_milli,
        tolerance_epsilon_ppm: opts.tolerance.cdf_epsilon_ppm,
        configs,
        llamafile: crate::ffi::llamafile_enabled(),
        seconds: start.elapsed().as_secs_f64(),
    })
}
