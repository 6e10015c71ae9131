//! The RASTiC attack suite on the bundled model: every cheat is caught by the full check, and the
//! k-sample mode's detection rate matches the hypergeometric law (≈ 1 − (1 − f)^k).

mod common;

use camel_core::rastic::{self, CheckMode, Outcome, SamplingParams, TokenId, Tolerance};
use camel_core::{Hash256, JobId};
use camel_worker::engine::{Engine, EngineConfig, JobSpec, StopReason};
use camel_worker::ffi::{Quant, requantize};
use camel_worker::verify::{VerifyReport, VerifyRequest, verify};
use common::{cfg, engine};

const MAX: u32 = 40;

const PROMPTS: &[&str] = &[
    "Explain why the sky is blue in simple words.",
    "Write a short poem about the sea.",
    "List three facts about honeybees.",
    "Summarize the plot of Cinderella in two sentences.",
];

fn job(i: u64, sampling: SamplingParams, max_tokens: u32) -> JobSpec {
    JobSpec {
        job_id: JobId::hash(&i.to_le_bytes()),
        sampling,
        max_tokens,
    }
}

fn chat(e: &Engine, text: &str) -> Vec<TokenId> {
    e.tokenize(&e.chat_prompt(text).unwrap())
}

fn check(
    prompt: &[TokenId],
    output: &[TokenId],
    job: JobSpec,
    mode: CheckMode,
    nonce: u8,
) -> VerifyReport {
    // The verifier runs with a different batch and micro-batch size than the worker (thread
    // counts are varied by the calibration test).
    let vcfg = EngineConfig {
        ubatch_size: 64,
        batch_size: 256,
        ..cfg(1)
    };
    let req = VerifyRequest {
        prompt: prompt.to_vec(),
        output: output.to_vec(),
        job,
        mode,
        commitment: Hash256::hash(b"attack commitment"),
        nonce: [nonce; 32],
    };
    verify(engine(), &vcfg, &req, &Tolerance::DEFAULT).unwrap()
}

fn failing_positions(r: &VerifyReport) -> Vec<u32> {
    r.verdict.failures().map(|c| c.position).collect()
}

/// Measured k-sample detection rate over many verifier nonces, against the exact law.
/// Teacher-forced logits at a position do not depend on which other positions are checked
/// (the canonical configuration is bit-exact across batch shapes), so a nonce's verdict is
/// decided by whether its plan meets the full check's failing positions; a few nonces are
/// also run through the real k-mode verifier to confirm that.
fn sample_detection(
    name: &str,
    prompt: &[TokenId],
    output: &[TokenId],
    job: JobSpec,
    full: &VerifyReport,
    k: u32,
) {
    let bad = failing_positions(full);
    let n = output.len() as u32;
    let commitment = Hash256::hash(b"attack commitment");
    let trials = 4000u32;
    let mut caught = 0u32;
    for t in 0..trials {
        let mut nonce = [0u8; 32];
        nonce[..4].copy_from_slice(&t.to_le_bytes());
        let plan = rastic::plan(&commitment, &nonce, n, CheckMode::Sample { k });
        if plan.positions().iter().any(|p| bad.contains(p)) {
            caught += 1;
        }
    }
    let structural = !full.verdict.structure.is_empty();
    let ends_bad = bad.contains(&0) || bad.contains(&(n - 1));
    let interior = n.saturating_sub(2);
    let bad_interior = bad.iter().filter(|&&p| p != 0 && p != n - 1).count() as u32;
    let expected = if structural || ends_bad {
        1.0
    } else {
        1.0 - rastic::miss_probability(interior, bad_interior, k)
    };
    let measured = if structural {
        1.0
    } else {
        f64::from(caught) / f64::from(trials)
    };
    let f = f64::from(bad_interior) / f64::from(interior.max(1));
    let approx = 1.0 - (1.0 - f).powi(k as i32);
    let sigma = (expected * (1.0 - expected) / f64::from(trials)).sqrt();
    println!(
        "{name}: n={n} failing={bad:?} f={f:.3} k={k}: detection measured {measured:.4}, exact {expected:.4}, 1-(1-f)^k {approx:.4}"
    );
    assert!(
        (measured - expected).abs() <= 4.0 * sigma + 1e-9,
        "{name}: measured {measured} vs {expected}"
    );
    // Spot-check the prediction with the real k-mode verifier.
    for nonce in 0..1u8 {
        let r = check(prompt, output, job, CheckMode::Sample { k }, nonce);
        let plan = rastic::plan(&commitment, &[nonce; 32], n, CheckMode::Sample { k });
        let predicted_invalid = structural || plan.positions().iter().any(|p| bad.contains(p));
        assert_eq!(
            !r.verdict.is_valid(),
            predicted_invalid,
            "{name}: nonce {nonce}"
        );
    }
}

fn assert_caught(name: &str, r: &VerifyReport) {
    assert!(
        !r.verdict.is_valid(),
        "{name}: the full check accepted a cheat: {:?}",
        r.verdict
            .checks
            .iter()
            .filter(|c| c.outcome != Outcome::Pass)
            .collect::<Vec<_>>()
    );
}

/// Honest outputs pass; a substituted token followed by an honest continuation is caught by
/// the full check at exactly that position, and k-sampling catches it at the predicted rate.
#[test]
fn substitution_truncation_early_eos_and_filler() {
    let e = engine();
    let gcfg = cfg(1);
    for (pi, text) in PROMPTS.iter().enumerate().take(2) {
        let prompt = chat(e, text);
        let j = job(pi as u64, SamplingParams::GREEDY, MAX);
        let g = e.generate(&gcfg, &prompt, &j, |_, _| {}).unwrap();
        let honest = g.tokens.clone();
        let r = check(&prompt, &honest, j, CheckMode::Full, 0);
        assert!(
            r.verdict.is_valid(),
            "honest output rejected: {:?}",
            r.verdict
        );
        assert_eq!(r.verdict.checks.len(), honest.len());

        // One substituted token mid-output, honest continuation from the altered prefix.
        let m = honest.len() / 2;
        let sub = e.tokenize_continuation(" banana")[0];
        assert_ne!(sub, honest[m]);
        let mut forced: Vec<TokenId> = prompt.clone();
        forced.extend_from_slice(&honest[..m]);
        forced.push(sub);
        let rest = j.max_tokens - m as u32 - 1;
        let cont = e
            .generate(
                &gcfg,
                &forced,
                &job(pi as u64, SamplingParams::GREEDY, rest),
                |_, _| {},
            )
            .unwrap();
        let mut cheat = honest[..m].to_vec();
        cheat.push(sub);
        cheat.extend_from_slice(&cont.tokens);
        let full = check(&prompt, &cheat, j, CheckMode::Full, 0);
        assert_caught("substitution", &full);
        assert_eq!(
            failing_positions(&full),
            vec![m as u32],
            "only the substituted token is wrong"
        );
        sample_detection("substitution", &prompt, &cheat, j, &full, 3);
        sample_detection("substitution", &prompt, &cheat, j, &full, 12);

        // EOS too early: the honest prefix, then end-of-generation.
        let eos = e.eog()[0];
        let mut early = honest[..m].to_vec();
        early.push(eos);
        let full = check(&prompt, &early, j, CheckMode::Full, 0);
        assert_caught("early EOS", &full);
        assert!(full.verdict.structure.is_empty());
        assert_eq!(failing_positions(&full), vec![m as u32]);
        // The end position is always in the plan, so k-sampling catches it every time.
        assert!(
            !check(&prompt, &early, j, CheckMode::Sample { k: 2 }, 5)
                .verdict
                .is_valid()
        );

        // Repetition filler up to max tokens.
        let filler = vec![e.tokenize_continuation(" the")[0]; MAX as usize];
        let full = check(&prompt, &filler, j, CheckMode::Full, 0);
        assert_caught("filler", &full);
        sample_detection("filler", &prompt, &filler, j, &full, 3);

        // Truncation before EOS: a prefix of an output that had not reached max tokens.
        let trunc = &honest[..m];
        let full = check(&prompt, trunc, j, CheckMode::Full, 0);
        assert_caught("truncation", &full);
        assert!(matches!(
            full.verdict.structure[..],
            [rastic::StructureFault::MissingEos { .. }]
        ));
        assert!(
            !check(&prompt, trunc, j, CheckMode::Sample { k: 1 }, 0)
                .verdict
                .is_valid()
        );

        // More tokens than allowed.
        let mut long = honest.clone();
        long.truncate(long.len().saturating_sub(1));
        while long.len() <= MAX as usize {
            long.push(sub);
        }
        assert!(
            check(&prompt, &long, j, CheckMode::Full, 0)
                .verdict
                .structure
                .iter()
                .any(|f| matches!(f, rastic::StructureFault::TooLong { .. }))
        );
    }
}

/// Outputs that answer something else: an unrelated prompt's output, a swapped prompt, and
/// greedy output where sampling was asked.
#[test]
fn unrelated_output_prompt_swap_and_greedy_for_sampling() {
    let e = engine();
    let gcfg = cfg(1);
    let p0 = chat(e, PROMPTS[0]);
    let p1 = chat(e, PROMPTS[2]);
    let j = job(10, SamplingParams::GREEDY, MAX);
    let other = e.generate(&gcfg, &p1, &j, |_, _| {}).unwrap().tokens;
    let full = check(&p0, &other, j, CheckMode::Full, 0);
    assert_caught("unrelated output", &full);
    sample_detection("unrelated output", &p0, &other, j, &full, 3);

    // Prompt swap: the worker answered a cheaper, different prompt (the question without its
    // framing, and a one-word change) and claims the answer for the job's prompt.
    for swapped_text in [
        "Why is the sky blue?",
        "Explain why the sky is green in simple words.",
    ] {
        let swapped = chat(e, swapped_text);
        let out = e.generate(&gcfg, &swapped, &j, |_, _| {}).unwrap().tokens;
        let full = check(&p0, &out, j, CheckMode::Full, 0);
        assert_caught("prompt swap", &full);
        sample_detection("prompt swap", &p0, &out, j, &full, 3);
    }

    // Greedy output claimed for a sampled job.
    for seed in 0..3u64 {
        let sampled = job(
            20 + seed,
            SamplingParams {
                temperature_milli: 800,
                seed,
            },
            MAX,
        );
        let honest = e.generate(&gcfg, &p0, &sampled, |_, _| {}).unwrap();
        assert!(
            check(&p0, &honest.tokens, sampled, CheckMode::Full, 0)
                .verdict
                .is_valid()
        );
        let greedy = e
            .generate(
                &gcfg,
                &p0,
                &job(20 + seed, SamplingParams::GREEDY, MAX),
                |_, _| {},
            )
            .unwrap();
        if greedy.tokens == honest.tokens {
            continue;
        }
        let full = check(&p0, &greedy.tokens, sampled, CheckMode::Full, 0);
        assert_caught("greedy for sampling", &full);
        sample_detection(
            "greedy for sampling",
            &p0,
            &greedy.tokens,
            sampled,
            &full,
            3,
        );
    }
}

/// Output of a lower-quality quantization of the same model (requantized at test time).
#[test]
fn lower_quality_quantization() {
    let e = engine();
    let dir = std::env::temp_dir().join(format!("camel-requant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let low_path = dir.join("smollm2-q2k.gguf");
    requantize(&e.model_file().path, &low_path, Quant::Q2K, 2).unwrap();
    let low = Engine::load(&low_path, None, 0).unwrap();
    assert_ne!(low.model_id(), e.model_id());
    let gcfg = cfg(1);
    let mut differing = 0;
    for (pi, text) in PROMPTS.iter().enumerate() {
        let prompt = chat(e, text);
        let j = job(30 + pi as u64, SamplingParams::GREEDY, MAX);
        let cheap = low.generate(&gcfg, &prompt, &j, |_, _| {}).unwrap();
        let honest = e.generate(&gcfg, &prompt, &j, |_, _| {}).unwrap();
        if cheap.tokens == honest.tokens {
            continue;
        }
        differing += 1;
        let full = check(&prompt, &cheap.tokens, j, CheckMode::Full, 0);
        assert_caught("lower quantization", &full);
        sample_detection("lower quantization", &prompt, &cheap.tokens, j, &full, 3);
    }
    drop(low);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        differing >= 2,
        "the requantized model should answer differently ({differing} of {})",
        PROMPTS.len()
    );
}

/// Sanity of the generation loop itself: EOS is the last token when it stops early.
#[test]
fn generation_stops_at_eos_or_max() {
    let e = engine();
    let prompt = chat(e, "Say hello.");
    let g = e
        .generate(
            &cfg(1),
            &prompt,
            &job(40, SamplingParams::GREEDY, 64),
            |_, _| {},
        )
        .unwrap();
    match g.stop {
        StopReason::Eos => assert!(e.is_eog(*g.tokens.last().unwrap()) && g.tokens.len() <= 64),
        StopReason::MaxTokens => assert_eq!(g.tokens.len(), 64),
    }
    assert!(g.tokens[..g.tokens.len() - 1].iter().all(|&t| !e.is_eog(t)));
    let g2 = e
        .generate(
            &cfg(2),
            &prompt,
            &job(40, SamplingParams::GREEDY, 64),
            |_, _| {},
        )
        .unwrap();
    assert_eq!(
        g.tokens, g2.tokens,
        "greedy generation is deterministic across thread counts"
    );
}

/// Several jobs verified in one shared pass get the verdicts they get alone.
#[test]
fn shared_pass_matches_single_checks() {
    let e = engine();
    let vcfg = EngineConfig {
        ubatch_size: 64,
        batch_size: 256,
        ..cfg(1)
    };
    let mut reqs = Vec::new();
    for (i, text) in PROMPTS.iter().enumerate().take(3) {
        let prompt = chat(e, text);
        let j = job(50 + i as u64, SamplingParams::GREEDY, 24);
        let mut output = e.generate(&cfg(1), &prompt, &j, |_, _| {}).unwrap().tokens;
        if i == 1 {
            output[3] = e.tokenize_continuation(" banana")[0];
        }
        reqs.push(VerifyRequest {
            prompt,
            output,
            job: j,
            mode: CheckMode::Full,
            commitment: Hash256::ZERO,
            nonce: [0; 32],
        });
    }
    let shared = camel_worker::verify::verify_many(e, &vcfg, &reqs, &Tolerance::DEFAULT).unwrap();
    for (r, s) in reqs.iter().zip(&shared) {
        let alone = verify(e, &vcfg, r, &Tolerance::DEFAULT).unwrap();
        assert_eq!(alone.verdict.is_valid(), s.verdict.is_valid());
        assert_eq!(failing_positions(&alone), failing_positions(s));
        assert_eq!(alone.verdict.checks.len(), s.verdict.checks.len());
    }
    assert!(shared[0].verdict.is_valid() && shared[2].verdict.is_valid());
    assert_eq!(
        shared[1].verdict.first_failure().map(|c| c.position),
        Some(3)
    );
}
