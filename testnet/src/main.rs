//! `camel-testnet`: a local CamelidCoin network on loopback.
//!
//! - `demo`: the product end to end (see [`camel_testnet::demo`]), exit 0 only if every step
//!   happened as expected; `--json` puts a machine-readable summary on stdout.
//! - `up` / `down`: keep a network running for the wallet; `mine` funds an address.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use camel_core::keys::PrivateKey;
use camel_testnet::demo::{self, DemoConfig};
use camel_testnet::{NodeSpec, Testnet, stop_all, stop_pids};
use clap::{Parser, Subcommand};
use serde_json::json;

/// The bundled model's file name, as `scripts/fetch-model.sh` writes it.
const BUNDLED_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// CamelidCoin local testnet: starts workers on loopback with regtest parameters and the
/// bundled model, and runs scenarios (`demo`, honest and cheating workers).
#[derive(Debug, Parser)]
#[command(name = "camel-testnet", version, about, long_about = None)]
struct Cli {
    /// The GGUF model the workers serve (default: the bundled model in $CAMEL_MODEL_DIR, else
    /// ./models).
    #[arg(long, global = true, env = "CAMEL_MODEL")]
    model: Option<PathBuf>,
    /// The `camel-worker` binary (default: the one built beside this binary).
    #[arg(long, global = true, env = "CAMEL_WORKER_BIN")]
    worker_bin: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Three workers, a fresh wallet, an honest job verified by peers, then a cheating worker
    /// caught and slashed. Exit 0 only if every step happened as expected.
    Demo {
        /// A machine-readable summary on stdout (the narration goes to stderr).
        #[arg(long)]
        json: bool,
        /// Keep the nodes' data and logs (printed at the end).
        #[arg(long)]
        keep: bool,
        #[arg(long, default_value = "Llamas and alpacas are")]
        prompt: String,
        #[arg(long, default_value = "The best way to learn a language is")]
        cheat_prompt: String,
        #[arg(long, default_value_t = 24)]
        max_tokens: u32,
        /// Milliseconds between blocks.
        #[arg(long, default_value_t = 500)]
        block_ms: u64,
    },
    /// Starts a network and keeps it running until Ctrl-C or `camel-testnet down`.
    Up {
        /// Where the network lives (reused when it holds one already).
        #[arg(long, default_value = "camel-testnet-data")]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        workers: usize,
        /// Of the workers, this many cheat (substitute a token in their answers).
        #[arg(long, default_value_t = 0)]
        cheaters: usize,
        /// Milliseconds between blocks.
        #[arg(long, default_value_t = 2000)]
        block_ms: u64,
    },
    /// Submits many jobs at once to a fresh network and follows each to its final state;
    /// counts every coin afterwards. With --bare, times the same completions on bare
    /// `camel-worker complete` processes (one per worker) for the throughput ratio.
    /// Exit 0 only if every job ended and no coin was created or destroyed.
    Load {
        #[arg(long, default_value_t = 30)]
        jobs: usize,
        #[arg(long, default_value_t = 3)]
        workers: usize,
        #[arg(long, default_value_t = 64)]
        max_tokens: u32,
        /// Jobs each worker takes at once.
        #[arg(long, default_value_t = 4)]
        max_jobs: usize,
        /// Verifiers each client asks for a full check of its output (other workers).
        #[arg(long, default_value_t = 2)]
        verifiers: usize,
        /// Milliseconds between blocks.
        #[arg(long, default_value_t = 500)]
        block_ms: u64,
        #[arg(long)]
        bare: bool,
        /// The report as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Keep the nodes' data and logs.
        #[arg(long)]
        keep: bool,
    },
    /// Stops the network `up` started in `--dir`.
    Down {
        #[arg(long, default_value = "camel-testnet-data")]
        dir: PathBuf,
    },
    /// Mines blocks to an address on the network `up` started (to fund a wallet).
    Mine {
        #[arg(long, default_value = "camel-testnet-data")]
        dir: PathBuf,
        /// The address the blocks pay.
        #[arg(long)]
        to: String,
        /// Blocks; coinbases mature after 100 more.
        #[arg(short, long, default_value_t = 101)]
        n: u32,
    },
}

fn worker_bin(cli: &Cli) -> anyhow::Result<PathBuf> {
    let p = match &cli.worker_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .with_file_name(format!("camel-worker{}", std::env::consts::EXE_SUFFIX)),
    };
    if !p.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p camel-worker` (scripts/demo.sh builds both), or pass --worker-bin",
            p.display()
        );
    }
    Ok(p)
}

fn model(cli: &Cli) -> anyhow::Result<PathBuf> {
    let p = match &cli.model {
        Some(p) => p.clone(),
        None => std::env::var_os("CAMEL_MODEL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("models"))
            .join(BUNDLED_MODEL_FILE),
    };
    if !p.is_file() {
        bail!(
            "no model at {}: fetch the bundled one with `scripts/fetch-model.sh`, or pass --model",
            p.display()
        );
    }
    Ok(p)
}

/// Stops this process's nodes on Ctrl-C or SIGTERM, removes `cleanup` if given, and exits.
fn on_signal(cleanup: Option<PathBuf>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async {
                    match term.as_mut() {
                        Some(t) => { t.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {}
            }
        });
        camel_testnet::set_interrupted();
        eprintln!("\ninterrupted: stopping the nodes");
        stop_all(Duration::from_secs(15));
        if let Some(dir) = cleanup {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(130);
    });
}

fn main() {
    let cli = Cli::parse();
    let code = match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            if !camel_testnet::interrupted() {
                eprintln!("camel-testnet: {e:#}");
            }
            1
        }
    };
    // Interrupted: the signal thread is stopping the nodes and exits with 130.
    while camel_testnet::interrupted() {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::process::exit(code);
}

fn run(cli: &Cli) -> anyhow::Result<i32> {
    match &cli.cmd {
        Cmd::Demo {
            json,
            keep,
            prompt,
            cheat_prompt,
            max_tokens,
            block_ms,
        } => {
            let root = std::env::temp_dir().join(format!("camel-demo-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            on_signal((!keep).then(|| root.clone()));
            let cfg = DemoConfig {
                worker_bin: worker_bin(cli)?,
                model: model(cli)?,
                root,
                keep: *keep,
                prompt: prompt.clone(),
                cheat_prompt: cheat_prompt.clone(),
                max_tokens: *max_tokens,
                block_interval: Duration::from_millis(*block_ms),
                json: *json,
            };
            let summary = demo::run(cfg);
            if *json && !camel_testnet::interrupted() {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            }
            Ok(if summary.ok { 0 } else { 1 })
        }
        Cmd::Up {
            dir,
            workers,
            cheaters,
            block_ms,
        } => up(cli, dir, *workers, *cheaters, *block_ms),
        Cmd::Load {
            jobs,
            workers,
            max_tokens,
            max_jobs,
            verifiers,
            block_ms,
            bare,
            json,
            keep,
        } => {
            if *jobs == 0 || *workers == 0 {
                bail!("--jobs and --workers must be at least 1");
            }
            if *verifiers >= *workers {
                bail!(
                    "--verifiers {verifiers} needs more than {verifiers} workers (a worker never verifies its own job)"
                );
            }
            let root = std::env::temp_dir().join(format!("camel-load-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            on_signal((!keep).then(|| root.clone()));
            let cfg = camel_testnet::load::LoadConfig {
                worker_bin: worker_bin(cli)?,
                model: model(cli)?,
                root: root.clone(),
                keep: *keep,
                workers: *workers,
                jobs: *jobs,
                max_tokens: *max_tokens,
                max_jobs: (*max_jobs).max(1),
                verifiers: *verifiers,
                block_interval: Duration::from_millis(*block_ms),
                bare: *bare,
            };
            eprintln!(
                "{jobs} jobs of up to {max_tokens} tokens on {workers} workers (data in {})",
                root.display()
            );
            let report = camel_testnet::load::run(&cfg)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                eprint!("{}", camel_testnet::load::render(&report));
            } else {
                print!("{}", camel_testnet::load::render(&report));
            }
            if !report.ok() && root.exists() {
                eprintln!("the nodes' data and logs are in {}", root.display());
            }
            Ok(if report.ok() { 0 } else { 1 })
        }
        Cmd::Down { dir } => down(dir),
        Cmd::Mine { dir, to, n } => {
            let state = read_state(dir)?;
            let api = state["nodes"][0]["api"]
                .as_str()
                .ok_or_else(|| anyhow!("{} names no node", state_path(dir).display()))?;
            let token = std::fs::read_to_string(dir.join("node0").join(".cookie"))
                .context("the first node's cookie")?;
            let client = camel_wallet::node::NodeClient::new(api, Some(token.trim().to_owned()));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let h = rt.block_on(client.generate(*n, to))?;
            println!("mined {n} blocks to {to}; height {h}");
            Ok(0)
        }
    }
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("testnet.json")
}

fn read_state(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let p = state_path(dir);
    let s = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "no network at {} (start one with `camel-testnet up --dir {}`)",
            p.display(),
            dir.display()
        )
    })?;
    Ok(serde_json::from_str(&s)?)
}

fn pid_alive(pid: u64) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn up(
    cli: &Cli,
    dir: &Path,
    workers: usize,
    cheaters: usize,
    block_ms: u64,
) -> anyhow::Result<i32> {
    if workers == 0 {
        bail!("--workers must be at least 1");
    }
    if cheaters > workers {
        bail!("--cheaters ({cheaters}) cannot exceed --workers ({workers})");
    }
    if let Ok(s) = read_state(dir)
        && s["pid"].as_u64().is_some_and(pid_alive)
    {
        bail!(
            "a network is running in {} already; stop it with `camel-testnet down --dir {}`",
            dir.display(),
            dir.display()
        );
    }
    let bin = worker_bin(cli)?;
    let model = model(cli)?;
    on_signal(None);
    let miner = PrivateKey::generate(&mut secp256k1::rand::rng());
    let miner_addr = camel_core::address::Address::p2pkh(
        &miner.public_key(),
        camel_core::params::Params::regtest().address_version,
    )
    .to_string();
    let specs: Vec<NodeSpec> = (0..workers)
        .map(|i| NodeSpec {
            model: Some(model.clone()),
            cheat: (i >= workers - cheaters).then(|| "substitute".to_owned()),
            args: vec![],
        })
        .collect();
    eprintln!("starting {workers} workers in {}", dir.display());
    let mut net = Testnet::start(&bin, dir, specs, &miner_addr)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if rt.block_on(net.nodes[0].client().height())? < 100 {
        eprintln!("funding the workers (2 coinbases each, matured)");
        for i in 0..net.nodes.len() {
            let a = net.nodes[i].worker.clone().map(|w| w.1).unwrap_or_default();
            net.mine_to(2, &a)?;
        }
        net.mine(100)?;
    }
    net.pace(Duration::from_millis(block_ms));
    let nodes: Vec<_> = net
        .nodes
        .iter()
        .map(|n| {
            json!({
                "api": n.api,
                "p2p": n.p2p,
                "pid": n.pid(),
                "worker": n.worker.as_ref().map(|w| &w.0),
                "address": n.worker.as_ref().map(|w| &w.1),
                "cheat": n.spec.cheat,
                "log": n.log,
            })
        })
        .collect();
    let state = json!({"pid": std::process::id(), "nodes": nodes});
    std::fs::write(state_path(dir), serde_json::to_vec_pretty(&state)?)?;
    let api = net.nodes[0].api.clone();
    println!("network up: {workers} workers ({cheaters} cheating), a block every {block_ms} ms");
    for (i, n) in net.nodes.iter().enumerate() {
        println!(
            "  node{i}  {}  worker {}{}",
            n.api,
            n.worker.as_ref().map_or("-", |w| w.0.as_str()),
            n.spec
                .cheat
                .as_ref()
                .map_or(String::new(), |c| format!("  (cheats: {c})"))
        );
    }
    let me = std::env::current_exe()
        .ok()
        .map_or("camel-testnet".into(), |p| p.display().to_string());
    println!(
        "\npoint the wallet at it:\n  export CAMEL_NODE={api}\n  camel-wallet init --network regtest\n  {me} mine --dir {} --to \"$(camel-wallet address)\"\n  camel-wallet job workers\n  camel-wallet job submit --model <id from job workers> --prompt 'Llamas are' --max-tokens 16 --reward-base 50000 --min-stake-base 50000 --wait\n\nstop it with Ctrl-C or `{me} down --dir {}`",
        dir.display(),
        dir.display()
    );
    // Runs until a signal stops the nodes and exits; a node that dies is reported.
    loop {
        std::thread::sleep(Duration::from_secs(1));
        for (i, n) in net.nodes.iter_mut().enumerate() {
            if n.pid().is_some() && !n.is_running() {
                eprintln!(
                    "node{i} exited; its log: {} (the others keep running)",
                    n.log.display()
                );
                n.kill();
            }
        }
    }
}

fn down(dir: &Path) -> anyhow::Result<i32> {
    let state = read_state(dir)?;
    let mut pids: Vec<u32> = Vec::new();
    if let Some(p) = state["pid"].as_u64().and_then(|p| u32::try_from(p).ok()) {
        pids.push(p);
    }
    let nodes: Vec<u32> = state["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["pid"].as_u64().and_then(|p| u32::try_from(p).ok()))
        .collect();
    // The owner first: it stops its nodes cleanly; then any node left.
    stop_pids(&pids, Duration::from_secs(30));
    stop_pids(&nodes, Duration::from_secs(10));
    std::fs::remove_file(state_path(dir))?;
    println!("stopped the network in {}", dir.display());
    Ok(0)
}
