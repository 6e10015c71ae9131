//! Inference and RASTiC benchmarks (`camel-worker bench`): the worker's generation against a
//! bare llama-cpp-2 decode loop, a full check against a bare prefill of the same tokens, and
//! verification cost relative to generation for 64- and 256-token outputs. All ratios come from
//! one run, on one machine, with the same model, threads and batch sizes.

use std::time::Duration;

use camel_core::JobId;
use camel_core::rastic::{CheckMode, SamplingParams, Tolerance};
use serde::Serialize;

use crate::engine::{Engine, EngineConfig, EngineError, JobSpec};
use crate::verify::{VerifyRequest, verify, verify_many};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub cfg: EngineConfig,
    pub lengths: Vec<u32>,
    /// Repetitions per measurement; the fastest is reported.
    pub reps: usize,
    /// Jobs verified together in the batched-verification row.
    pub batch_jobs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LengthRow {
    pub max_tokens: u32,
    pub output_tokens: usize,
    pub prompt_tokens: usize,
    pub generate_ms: f64,
    pub bare_decode_ms: f64,
    /// bare decode loop / worker generation (goal ≥ 0.95).
    pub generation_efficiency: f64,
    pub full_check_ms: f64,
    pub bare_prefill_ms: f64,
    /// bare prefill / full check (goal ≥ 0.9).
    pub check_efficiency: f64,
    pub sample_k3_ms: f64,
    /// full check / generation (goal ≤ 0.5 at 256 tokens).
    pub verify_over_generate: f64,
    pub sample_k3_over_generate: f64,
    pub generate_tokens_per_s: f64,
    pub check_tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchRow {
    pub jobs: usize,
    pub tokens_each: usize,
    pub one_by_one_ms: f64,
    pub batched_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model_id: String,
    pub threads: u32,
    pub batch_size: u32,
    pub ubatch_size: u32,
    pub flash_attention: bool,
    pub llamafile: bool,
    pub rows: Vec<LengthRow>,
    pub batch: Option<BatchRow>,
    pub peak_rss_mb: f64,
    pub loadavg: String,
}

/// The fastest repetition: on a host shared with other work, the least-disturbed estimate of
/// the cost itself.
fn best(v: Vec<Duration>) -> Duration {
    v.into_iter().min().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

const BENCH_PROMPT: &str = "Write a long, detailed essay about the history of the printing press, \
its inventors, and how it changed science, religion and politics in Europe.";

/// Peak resident set size of this process in MB (Linux `VmHWM`), 0 where unavailable.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn run(engine: &Engine, opts: &BenchOptions) -> Result<BenchReport, EngineError> {
    let cfg = &opts.cfg;
    let prompt = engine.tokenize(&engine.chat_prompt(BENCH_PROMPT)?);
    let mut rows = Vec::new();
    // Warm-up: page the model in.
    let warm = JobSpec {
        job_id: JobId::ZERO,
        sampling: SamplingParams::GREEDY,
        max_tokens: 8,
    };
    engine.generate(cfg, &prompt, &warm, |_, _| {})?;
    for &n in &opts.lengths {
        let job = JobSpec {
            job_id: JobId::hash(b"bench"),
            sampling: SamplingParams::GREEDY,
            max_tokens: n,
        };
        let mut gens = Vec::new();
        let mut bares = Vec::new();
        let mut fulls = Vec::new();
        let mut samples = Vec::new();
        let mut prefills = Vec::new();
        let mut output = Vec::new();
        for _ in 0..opts.reps.max(1) {
            let g = engine.generate(cfg, &prompt, &job, |_, _| {})?;
            gens.push(g.total);
            output = g.tokens;
            let count = u32::try_from(output.len()).unwrap_or(n);
            bares.push(engine.bare_decode_loop(cfg, &prompt, count)?);
            let mut req = VerifyRequest {
                prompt: prompt.clone(),
                output: output.clone(),
                job,
                mode: CheckMode::Full,
                commitment: camel_core::Hash256::hash(b"bench commitment"),
                nonce: [7u8; 32],
            };
            let r = verify(engine, cfg, &req, &Tolerance::DEFAULT)?;
            if !r.verdict.is_valid() {
                return Err(EngineError::Config(
                    "an honest bench output failed verification".into(),
                ));
            }
            fulls.push(r.elapsed);
            req.mode = CheckMode::Sample { k: 3 };
            samples.push(verify(engine, cfg, &req, &Tolerance::DEFAULT)?.elapsed);
            // The full check feeds prompt ‖ output[..len−1].
            let mut seq = prompt.clone();
            seq.extend_from_slice(&output[..output.len().saturating_sub(1)]);
            prefills.push(engine.bare_prefill(cfg, &seq)?);
        }
        let (g, b, f, s, p) = (
            best(gens),
            best(bares),
            best(fulls),
            best(samples),
            best(prefills),
        );
        rows.push(LengthRow {
            max_tokens: n,
            output_tokens: output.len(),
            prompt_tokens: prompt.len(),
            generate_ms: ms(g),
            bare_decode_ms: ms(b),
            generation_efficiency: b.as_secs_f64() / g.as_secs_f64(),
            full_check_ms: ms(f),
            bare_prefill_ms: ms(p),
            check_efficiency: p.as_secs_f64() / f.as_secs_f64(),
            sample_k3_ms: ms(s),
            verify_over_generate: f.as_secs_f64() / g.as_secs_f64(),
            sample_k3_over_generate: s.as_secs_f64() / g.as_secs_f64(),
            generate_tokens_per_s: output.len() as f64 / g.as_secs_f64(),
            check_tokens_per_s: (prompt.len() + output.len()) as f64 / f.as_secs_f64(),
        });
    }
    let batch = if opts.batch_jobs > 1 {
        let mut reqs = Vec::new();
        for j in 0..opts.batch_jobs {
            let p = engine.tokenize(
                &engine.chat_prompt(&format!("Write a paragraph about the number {j}."))?,
            );
            let job = JobSpec {
                job_id: JobId::hash(&[j as u8]),
                sampling: SamplingParams::GREEDY,
                max_tokens: 64,
            };
            let g = engine.generate(cfg, &p, &job, |_, _| {})?;
            reqs.push(VerifyRequest {
                prompt: p,
                output: g.tokens,
                job,
                mode: CheckMode::Full,
                commitment: camel_core::Hash256::ZERO,
                nonce: [0u8; 32],
            });
        }
        let mut singles = Vec::new();
        let mut batched = Vec::new();
        for _ in 0..opts.reps.max(1) {
            let t = std::time::Instant::now();
            for r in &reqs {
                verify(engine, cfg, r, &Tolerance::DEFAULT)?;
            }
            singles.push(t.elapsed());
            let t = std::time::Instant::now();
            let v = verify_many(engine, cfg, &reqs, &Tolerance::DEFAULT)?;
            batched.push(t.elapsed());
            if v.iter().any(|r| !r.verdict.is_valid()) {
                return Err(EngineError::Config(
                    "an honest output failed batched verification".into(),
                ));
            }
        }
        let tokens_each = reqs.iter().map(|r| r.output.len()).sum::<usize>() / reqs.len();
        Some(BatchRow {
            jobs: reqs.len(),
            tokens_each,
            one_by_one_ms: ms(best(singles)),
            batched_ms: ms(best(batched)),
        })
    } else {
        None
    };
    Ok(BenchReport {
        model_id: engine.model_id().to_string(),
        threads: cfg.threads,
        batch_size: cfg.batch_size,
        ubatch_size: cfg.ubatch_size,
        flash_attention: cfg.flash_attention,
        llamafile: crate::ffi::llamafile_enabled(),
        rows,
        batch,
        peak_rss_mb: peak_rss_mb(),
        loadavg: loadavg(),
    })
}

/// The report as a Markdown table.
pub fn table(r: &BenchReport) -> String {
    let mut s = format!(
        "model {} | threads {} | batch {} / ubatch {} | flash attention {} | llamafile {} | load avg {}\n\n",
        r.model_id,
        r.threads,
        r.batch_size,
        r.ubatch_size,
        r.flash_attention,
        r.llamafile,
        r.loadavg
    );
    s.push_str("| output tokens | generate ms | bare decode ms | bare/generate | full check ms | bare prefill ms | prefill/check | k=3 check ms | check/generate | k=3/generate |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for row in &r.rows {
        s.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.3} | {:.1} | {:.1} | {:.3} | {:.1} | {:.3} | {:.3} |\n",
            row.output_tokens,
            row.generate_ms,
            row.bare_decode_ms,
            row.generation_efficiency,
            row.full_check_ms,
            row.bare_prefill_ms,
            row.check_efficiency,
            row.sample_k3_ms,
            row.verify_over_generate,
            row.sample_k3_over_generate
        ));
    }
    if let Some(b) = &r.batch {
        s.push_str(&format!(
            "\nverification of {} jobs (~{} output tokens each): one by one {:.1} ms, one shared pass {:.1} ms\n",
            b.jobs, b.tokens_each, b.one_by_one_ms, b.batched_ms
        ));
    }
    s.push_str(&format!("\npeak RSS {:.0} MB\n", r.peak_rss_mb));
    s
}
