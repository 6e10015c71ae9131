//! `camel-worker`: the CamelidCoin worker. A thin shell over the `camel_worker` library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use camel_core::rastic::{CheckMode, SamplingParams, TokenId, Tolerance};
use camel_core::{Hash256, JobId, ModelId};
use camel_worker::engine::{Engine, EngineConfig, JobSpec};
use camel_worker::report::{CompletionJson, VerdictJson};
use camel_worker::verify::{VerifyRequest, verify};
use camel_worker::{bench, calibrate, cli_job_id, model, parse_temperature_milli};
use clap::{Args, Parser, Subcommand};

/// CamelidCoin worker: runs LLM completion jobs and verifies others' with RASTiC.
#[derive(Debug, Parser)]
#[command(name = "camel-worker", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the full node: chain store, mempool, HTTP API and (with --mine) the miner.
    Node(NodeCmd),
    /// Generates a completion, streaming its text (exit 0, or 2 on error).
    Complete(CompleteArgs),
    /// Verifies a claimed completion with RASTiC (exit 0 valid, 1 invalid, 2 error).
    Verify(VerifyArgs),
    /// Generates honest outputs in several configurations and checks every token in another.
    Calibrate(CalibrateArgs),
    /// Benchmarks generation and verification against bare llama.cpp loops.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
struct ModelArgs {
    /// GGUF model file (default: the bundled model in $CAMEL_MODEL_DIR).
    #[arg(long, env = "CAMEL_MODEL")]
    model: Option<PathBuf>,
    /// Expected model id (SHA-256 of the file); a different file is refused.
    #[arg(long)]
    model_id: Option<ModelId>,
    /// CPU threads.
    #[arg(long, default_value_t = EngineConfig::default().threads)]
    threads: u32,
    /// Context size in tokens.
    #[arg(long, default_value_t = 2048)]
    ctx_size: u32,
    /// Logical batch size.
    #[arg(long, default_value_t = 512)]
    batch_size: u32,
    /// Physical micro-batch size.
    #[arg(long, default_value_t = 512)]
    ubatch_size: u32,
    /// Layers to offload to the GPU (build with --features cuda).
    #[arg(long, default_value_t = 0)]
    gpu_layers: u32,
    /// Enable flash attention (outside the canonical verification configuration).
    #[arg(long)]
    flash_attn: bool,
}

impl ModelArgs {
    fn load(&self) -> anyhow::Result<(Engine, EngineConfig)> {
        let path = self.model.clone().unwrap_or_else(model::bundled_model_path);
        let engine = Engine::load(&path, self.model_id, self.gpu_layers)?;
        let cfg = EngineConfig {
            threads: self.threads,
            ctx_size: self.ctx_size,
            batch_size: self.batch_size,
            ubatch_size: self.ubatch_size,
            gpu_layers: self.gpu_layers,
            flash_attention: self.flash_attn,
        };
        Ok((engine, cfg))
    }
}

#[derive(Debug, Args)]
struct JobArgs {
    /// Prompt text, or @FILE to read it from a file.
    #[arg(long)]
    prompt: String,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Most output tokens.
    #[arg(long, default_value_t = 128)]
    max_tokens: u32,
    /// Sampling temperature (decimal, up to 3 places); 0 = greedy.
    #[arg(long, default_value = "0")]
    temperature: String,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Job id (hex); default: derived from model, prompt and settings (see `cli_job_id`).
    #[arg(long)]
    job_id: Option<JobId>,
}

impl JobArgs {
    fn resolve(&self, engine: &Engine) -> anyhow::Result<(Vec<TokenId>, JobSpec)> {
        let text = read_arg(&self.prompt)?;
        let text = if self.chat {
            engine.chat_prompt(&text)?
        } else {
            text
        };
        let prompt = engine.tokenize(&text);
        let temperature_milli =
            parse_temperature_milli(&self.temperature).map_err(anyhow::Error::msg)?;
        let sampling = SamplingParams {
            temperature_milli,
            seed: self.seed,
        };
        sampling.validate()?;
        let job_id = self
            .job_id
            .unwrap_or_else(|| cli_job_id(&engine.model_id(), &prompt, self.max_tokens, &sampling));
        Ok((
            prompt,
            JobSpec {
                job_id,
                sampling,
                max_tokens: self.max_tokens,
            },
        ))
    }
}

fn read_arg(s: &str) -> anyhow::Result<String> {
    match s.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}")),
        None => Ok(s.to_string()),
    }
}

#[derive(Debug, Args)]
struct CompleteArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    job: JobArgs,
    /// Print one JSON object (tokens, ids, timings) instead of streaming text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    job: JobArgs,
    /// Claimed output as token ids ("12,345,2"), or @FILE holding them, or a `complete --json`
    /// object.
    #[arg(long, conflicts_with = "output_text")]
    output_ids: Option<String>,
    /// Claimed output as text (tokenized without BOS; may not reproduce the worker's tokens).
    #[arg(long)]
    output_text: Option<String>,
    /// Check every output position.
    #[arg(long, conflicts_with = "k")]
    full: bool,
    /// Check the first, the last and K interior positions drawn from H(commitment ‖ nonce).
    #[arg(long)]
    k: Option<u32>,
    /// Commitment hash (hex) the positions are drawn from; default: SHA-256d of the job id and output ids.
    #[arg(long)]
    commitment: Option<Hash256>,
    /// Verifier nonce (hex, 32 bytes); default: random.
    #[arg(long)]
    nonce: Option<Hash256>,
    /// Greedy tolerance δ, thousandths of a logit.
    #[arg(long, default_value_t = Tolerance::DEFAULT.logit_delta_milli)]
    delta_milli: u32,
    /// Sampling tolerance ε, millionths of probability.
    #[arg(long, default_value_t = Tolerance::DEFAULT.cdf_epsilon_ppm)]
    epsilon_ppm: u32,
    /// Print the verdict as JSON, with every failing and abstaining position.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CalibrateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Index of the first calibration prompt.
    #[arg(long, default_value_t = 0)]
    first_prompt: usize,
    /// Number of prompts.
    #[arg(long, default_value_t = 200)]
    prompts: usize,
    #[arg(long, default_value_t = 48)]
    max_tokens: u32,
    /// Generation thread counts.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    gen_threads: Vec<u32>,
    /// Generation micro-batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "512,32")]
    gen_ubatches: Vec<u32>,
    /// Also verify with flash attention on.
    #[arg(long)]
    foreign: bool,
    /// Write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    lengths: Vec<u32>,
    #[arg(long, default_value_t = 3)]
    reps: usize,
    #[arg(long, default_value_t = 8)]
    batch_jobs: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_ids(s: &str) -> anyhow::Result<Vec<TokenId>> {
    let s = read_arg(s)?;
    let t = s.trim();
    if t.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(t).context("parsing the JSON claim")?;
        let ids = v
            .get("ids")
            .and_then(|x| x.as_array())
            .context("the JSON claim has no \"ids\" array")?;
        return ids
            .iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .context("token ids must be u32")
            })
            .collect();
    }
    t.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<TokenId>()
                .with_context(|| format!("bad token id {p:?}"))
        })
        .collect()
}

fn complete(a: &CompleteArgs) -> anyhow::Result<ExitCode> {
    let (engine, cfg) = a.model.load()?;
    let (prompt, job) = a.job.resolve(&engine)?;
    let mut out = std::io::stdout().lock();
    let json = a.json;
    let g = engine.generate(&cfg, &prompt, &job, |t, bytes| {
        if !json && !engine.is_eog(t) {
            let _ = out.write_all(bytes);
            let _ = out.flush();
        }
    })?;
    if json {
        let j = CompletionJson::new(
            &engine,
            job.job_id.to_string(),
            job.max_tokens,
            job.sampling.temperature_milli,
            job.sampling.seed,
            &g,
        );
        writeln!(out, "{}", serde_json::to_string_pretty(&j)?)?;
    } else {
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn random_nonce() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    // Not consensus-relevant: any unpredictable value will do for an interactive check.
    let mut seed = Vec::new();
    for _ in 0..4 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        seed.extend_from_slice(&h.finish().to_le_bytes());
    }
    Hash256::hash(&seed).to_byte_array()
}

fn verify_cmd(a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let (engine, cfg) = a.model.load()?;
    let (prompt, job) = a.job.resolve(&engine)?;
    let output = match (&a.output_ids, &a.output_text) {
        (Some(ids), _) => parse_ids(ids)?,
        (None, Some(text)) => engine.tokenize_continuation(&read_arg(text)?),
        (None, None) => bail!("give the claimed output with --output-ids or --output-text"),
    };
    let mode = match (a.full, a.k) {
        (_, Some(k)) => CheckMode::Sample { k },
        _ => CheckMode::Full,
    };
    let commitment = a.commitment.unwrap_or_else(|| {
        let mut m = job.job_id.to_byte_array().to_vec();
        for t in &output {
            m.extend_from_slice(&t.to_le_bytes());
        }
        Hash256::hash(&m)
    });
    let nonce = a
        .nonce
        .map(|n| n.to_byte_array())
        .unwrap_or_else(random_nonce);
    let tol = Tolerance {
        logit_delta_milli: a.delta_milli,
        cdf_epsilon_ppm: a.epsilon_ppm,
    };
    let req = VerifyRequest {
        prompt,
        output: output.clone(),
        job,
        mode,
        commitment,
        nonce,
    };
    let r = verify(&engine, &cfg, &req, &tol)?;
    let mode_s = match mode {
        CheckMode::Full => "full".to_string(),
        CheckMode::Sample { k } => format!("k={k}"),
    };
    let j = VerdictJson::new(&engine, job.job_id.to_string(), mode_s, output.len(), &r);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        println!(
            "{}: {} of {} checked positions passed, {} abstained, {} failed ({} output tokens, {:.1} ms)",
            j.verdict,
            j.passed,
            j.checked,
            j.abstentions.len(),
            j.failures.len(),
            j.output_tokens,
            j.elapsed_ms
        );
        for f in &j.structure_faults {
            println!("  structure: {f}");
        }
        for f in &j.failures {
            println!(
                "  position {}: claimed {} {:?}, expected {} {:?}, margin {:.4}",
                f.position, f.claimed, f.claimed_text, f.expected, f.expected_text, f.margin
            );
        }
    }
    Ok(if r.verdict.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn calibrate_cmd(a: &CalibrateArgs) -> anyhow::Result<ExitCode> {
    let (engine, cfg) = a.model.load()?;
    let opts = calibrate::CalibrateOptions {
        first_prompt: a.first_prompt,
        prompts: a.prompts,
        max_tokens: a.max_tokens,
        threads: a.gen_threads.clone(),
        ubatches: a.gen_ubatches.clone(),
        foreign: a.foreign,
        base: cfg,
        tolerance: Tolerance::DEFAULT,
    };
    let r = calibrate::run(&engine, &opts, |done, total| {
        if done % 20 == 0 || done == total {
            eprintln!("calibrate: {done}/{total}");
        }
    })?;
    let s = serde_json::to_string_pretty(&r)?;
    if let Some(p) = &a.out {
        std::fs::write(p, &s).with_context(|| format!("writing {}", p.display()))?;
    }
    println!("{s}");
    let rejected: u64 = r.configs.iter().map(|c| c.false_rejections).sum();
    Ok(if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn bench_cmd(a: &BenchArgs) -> anyhow::Result<ExitCode> {
    let (engine, cfg) = a.model.load()?;
    let opts = bench::BenchOptions {
        cfg,
        lengths: a.lengths.clone(),
        reps: a.reps,
        batch_jobs: a.batch_jobs,
    };
    let r = bench::run(&engine, &opts)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", bench::table(&r));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
struct NodeCmd {
    #[command(flatten)]
    node: camel_node::cli::NodeArgs,
    /// Run a plain full node: no model, no jobs, no verification (fraud proofs it cannot
    /// judge do not stop it following the most-work chain).
    #[arg(long, conflicts_with_all = ["model", "cheat"])]
    no_model: bool,
    /// GGUF model file to serve (default: the bundled model in $CAMEL_MODEL_DIR).
    #[arg(long, env = "CAMEL_MODEL")]
    model: Option<PathBuf>,
    /// CPU threads for inference and verification.
    #[arg(long, default_value_t = EngineConfig::default().threads)]
    threads: u32,
    /// Least reward per maximum output token the worker takes a job for, base units.
    #[arg(long, default_value_t = 100)]
    min_price_per_token: u64,
    /// Jobs the worker takes at once before it has committed to them (bid on, staked,
    /// generating); committed jobs waiting for their payment do not count.
    #[arg(long, default_value_t = 4)]
    max_jobs: usize,
    /// Stake the worker puts up per job, base units (the job's minimum if higher).
    #[arg(long, default_value_t = 100_000)]
    stake: u64,
    /// Most output tokens it takes a job for.
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    /// Fee of each transaction the worker makes, base units.
    #[arg(long, default_value_t = 2_000)]
    fee: u64,
    /// Misbehave on purpose (test networks only): substitute a token, deliver garbage, or
    /// never reveal the key.
    #[arg(long, value_enum)]
    cheat: Option<camel_worker::executor::Cheat>,
}

/// The node runs until SIGINT/SIGTERM or an authorised `POST /shutdown`. With a model it
/// judges fraud proofs, answers verification requests and takes jobs.
fn node_cmd(a: &NodeCmd) -> anyhow::Result<ExitCode> {
    use camel_core::job::evidence::JobOracle;
    use camel_worker::executor::{Executor, ExecutorConfig, load_or_create_key};
    use camel_worker::judge::{EngineJudge, SharedEngine, Verifier, canonical_config};
    use std::sync::Arc;

    let config = a.node.clone().into_config();
    if a.cheat.is_some() && config.network != camel_core::params::Network::Regtest {
        bail!("--cheat is for regtest networks only");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if a.no_model {
        runtime.block_on(camel_node::daemon::run(config, std::future::pending()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let path = a.model.clone().unwrap_or_else(model::bundled_model_path);
    let engine = Engine::load(&path, None, 0).with_context(|| {
        format!(
            "loading the model to serve from {} (give --model PATH, or --no-model for a plain node)",
            path.display()
        )
    })?;
    let shared = SharedEngine::new(engine, canonical_config(a.threads.max(1)));
    let data_dir = match &config.data_dir {
        Some(d) => d.clone(),
        None => camel_node::datadir::default_data_dir(config.network)?,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let key = load_or_create_key(&data_dir.join("job_key")).context("the node's job key")?;
    let params = camel_core::params::Params::new(config.network);
    let address =
        camel_core::address::Address::p2pkh(&key.public_key(), params.address_version).to_string();
    std::fs::write(
        data_dir.join("worker.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "worker": hex::encode(key.public_key().to_bytes()),
            "address": address,
            "model": shared.model_id().to_string(),
        }))?,
    )?;
    tracing::info!(
        "worker key {} pays to {address}",
        hex::encode(key.public_key().to_bytes())
    );
    let oracle = Arc::new(JobOracle::new(EngineJudge {
        engine: shared.clone(),
    }));
    let model_name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let exec_config = ExecutorConfig {
        min_price_per_token: a.min_price_per_token,
        max_jobs: a.max_jobs.max(1),
        stake: camel_core::Amount::from_base(a.stake).context("--stake")?,
        max_tokens: a.max_tokens,
        fee: a.fee,
        cheat: a.cheat,
        model_name,
        announce_every: if config.network == camel_core::params::Network::Regtest {
            std::time::Duration::from_secs(2)
        } else {
            std::time::Duration::from_secs(60)
        },
        peer: String::new(),
    };
    let worker_dir = data_dir.join("worker");
    let extension: camel_node::daemon::Extension = Box::new(move |pool, shutdown| {
        pool.set_verifier(Arc::new(Verifier {
            engine: shared.clone(),
            key,
        }));
        let mut exec_config = exec_config;
        exec_config.peer = pool
            .network()
            .map(|n| n.peer_id().to_string())
            .unwrap_or_default();
        tokio::spawn(async move {
            match Executor::new(pool, shared, key, exec_config, worker_dir) {
                Ok(e) => e.run(shutdown).await,
                Err(e) => tracing::error!("the worker cannot start: {e}"),
            }
        })
    });
    runtime.block_on(camel_node::daemon::run_full(
        config,
        oracle,
        Some(extension),
        std::future::pending(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A daemon reports what it does; the one-shot commands print only their results.
    let default_filter = match cli.command {
        Command::Node(_) => "info,llama_cpp_2=off",
        _ => "warn,llama_cpp_2=off",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        Command::Node(a) => node_cmd(a),
        Command::Complete(a) => complete(a),
        Command::Verify(a) => verify_cmd(a),
        Command::Calibrate(a) => calibrate_cmd(a),
        Command::Bench(a) => bench_cmd(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
