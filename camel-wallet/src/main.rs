//! `camel-wallet`: the CamelidCoin light wallet's command line.
//!
//! stdout carries data only (text, or JSON with `--json`); prompts, progress and errors go to
//! stderr. Exit codes are in [`exit`] and docs/wallet.md.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use camel_core::Amount;
use camel_core::hash::ModelId;
use camel_core::job::PromptFormat;
use camel_core::keys::PublicKey;
use camel_core::params::{Network, Params};
use camel_core::rastic::SamplingParams;
use camel_wallet::job::{JobClient, JobError, JobRequest, Outcome};
use camel_wallet::keys::{Chain, new_mnemonic};
use camel_wallet::keystore::{DEFAULT_COSTS, KeystoreError};
use camel_wallet::node::{NodeClient, NodeError};
use camel_wallet::wallet::{JobEntry, Wallet, WalletError};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

/// Exit codes.
mod exit {
    pub const OK: i32 = 0;
    /// Anything not below.
    pub const ERROR: i32 = 1;
    /// Bad arguments (clap's own code).
    pub const USAGE: i32 = 2;
    /// The node could not be reached, or refused the request.
    pub const NODE: i32 = 3;
    /// The wallet could not be opened: missing, wrong passphrase, corrupt.
    pub const WALLET: i32 = 4;
    /// Not enough coins, or a fee above the ceiling.
    pub const FUNDS: i32 = 5;
    /// A job ended without a verified output (disputed or refunded).
    pub const JOB_FAILED: i32 = 6;
    /// The user declined the confirmation.
    pub const DECLINED: i32 = 7;
    /// The node served headers or proofs that fail the wallet's own checks.
    pub const FORGED: i32 = 8;
}

/// CamelidCoin wallet: holds your keys, pays for LLM completion jobs, follows them and checks
/// their answers through peers.
#[derive(Debug, Parser)]
#[command(name = "camel-wallet", version, about, long_about = None)]
struct Cli {
    /// The wallet's directory (default: the platform's data directory).
    #[arg(long, global = true, env = "CAMEL_WALLET_DIR")]
    wallet_dir: Option<PathBuf>,
    /// A node's API URL (default: http://127.0.0.1:8732). Repeat it (or separate URLs with
    /// commas in CAMEL_NODE) to cross-check several nodes: `balance` then verifies each one's
    /// headers and coins and reports where they disagree; other commands use the first.
    #[arg(long, global = true, env = "CAMEL_NODE", value_delimiter = ',')]
    node: Vec<String>,
    /// Print JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Without a command: the terminal wallet.
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Net {
    Main,
    Test,
    Regtest,
}

impl Net {
    fn params(self) -> Params {
        Params::new(match self {
            Self::Main => Network::Main,
            Self::Test => Network::Test,
            Self::Regtest => Network::Regtest,
        })
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Creates a wallet: prints its recovery phrase once. The passphrase is read from
    /// CAMEL_WALLET_PASSPHRASE, the terminal, or stdin's first line.
    Init {
        #[arg(long, value_enum, default_value = "main")]
        network: Net,
        /// Words of the recovery phrase.
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(12..=24))]
        words: u32,
    },
    /// Restores a wallet from its recovery phrase (read from the terminal or stdin's first
    /// line, the passphrase after it) and scans the node for the addresses it used.
    Restore {
        #[arg(long, value_enum, default_value = "main")]
        network: Net,
    },
    /// Hands out a fresh receive address (never the same twice).
    Address,
    /// The wallet's balance, base units.
    Balance,
    /// Pays an address.
    Send {
        #[arg(long)]
        to: String,
        /// Amount, base units.
        #[arg(long = "amount-base")]
        amount: u64,
        /// Fee rate, base units per byte.
        #[arg(long, default_value_t = 2)]
        fee_per_byte: u64,
        /// Refuse to pay a fee above this, base units.
        #[arg(long, default_value_t = 100_000)]
        max_fee: u64,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Build and show the transaction, do not broadcast it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Each node: its tip, whether that tip is on the header chain this wallet verified, and
    /// its peers.
    Peers,
    /// Serves an OpenAI-compatible API (/v1/models, /v1/completions, /v1/chat/completions)
    /// where every completion is a job paid from this wallet and verified by peers. The API
    /// key is CAMEL_GATEWAY_KEY, or one generated into the wallet directory (gateway.key).
    Serve {
        /// Address to listen on; keep it on loopback unless the key is well guarded.
        #[arg(long, default_value = "127.0.0.1:8740")]
        listen: std::net::SocketAddr,
        /// Reward per requested output token, base units (a request's camel.reward overrides).
        #[arg(long, default_value_t = 100)]
        price_per_token_base: u64,
        /// Fee of each of a job's transactions, base units.
        #[arg(long, default_value_t = 2_000)]
        fee_base: u64,
        /// Verifiers (not the worker) each answer must pass.
        #[arg(long, default_value_t = 2)]
        verifiers: usize,
        /// Blocks until an undelivered job's escrow can be refunded.
        #[arg(long, default_value_t = 30)]
        timelock_blocks: u32,
    },
    /// The terminal wallet (also what `camel-wallet` alone opens).
    Tui,
    /// Prints a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions { shell: clap_complete::Shell },
    /// Jobs: paid, verified completions.
    #[command(subcommand)]
    Job(JobCmd),
}

#[derive(Debug, Subcommand)]
enum JobCmd {
    /// Submits a job; with --wait follows it to the end and prints the output.
    Submit {
        /// The model's id (hex, as `camel-wallet job workers` lists).
        #[arg(long)]
        model: String,
        /// The prompt: text, @file, or - for stdin.
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 64)]
        max_tokens: u32,
        /// Sampling temperature (0: greedy).
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Reward paid to the worker, base units.
        #[arg(long = "reward-base")]
        reward: u64,
        /// Stake the worker must lock, base units (default: the reward).
        #[arg(long = "min-stake-base")]
        min_stake: Option<u64>,
        /// Fee of each of the job's transactions, base units.
        #[arg(long = "fee-base", default_value_t = 2_000)]
        fee: u64,
        /// Blocks until an undelivered job's escrow can be refunded.
        #[arg(long, default_value_t = 30)]
        timelock_blocks: u32,
        /// Verifiers (not the worker) whose signed verdicts are required.
        #[arg(long, default_value_t = 2)]
        verifiers: usize,
        /// Take bids only from this worker key (hex; repeatable).
        #[arg(long = "worker")]
        workers: Vec<String>,
        /// Follow the job until it is settled, disputed or refunded.
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        yes: bool,
    },
    /// The jobs this wallet submitted.
    List,
    /// A job's state as the node sees it.
    Status { job_id: String },
    /// Workers and verifiers the node knows, with their models.
    Workers,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("declined")]
    Declined,
    #[error("{0}")]
    JobFailed(String),
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("{0}")]
    Other(String),
}

impl From<NodeError> for CliError {
    fn from(e: NodeError) -> Self {
        Self::Wallet(WalletError::Node(e))
    }
}

impl CliError {
    fn code(&self) -> i32 {
        match self {
            Self::Usage(_) => exit::USAGE,
            Self::Declined => exit::DECLINED,
            Self::JobFailed(_) => exit::JOB_FAILED,
            Self::Wallet(WalletError::Node(_)) | Self::Job(JobError::Node(_)) => exit::NODE,
            Self::Wallet(WalletError::Insufficient { .. } | WalletError::FeeTooHigh { .. }) => {
                exit::FUNDS
            }
            Self::Job(JobError::Build(camel_core::job::txs::BuildError::Insufficient {
                ..
            })) => exit::FUNDS,
            Self::Wallet(WalletError::Keystore(_) | WalletError::State { .. }) => exit::WALLET,
            Self::Wallet(
                WalletError::Forged(_)
                | WalletError::ForgedBy { .. }
                | WalletError::NodesDisagree(_),
            ) => exit::FORGED,
            _ => exit::ERROR,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Wallet(WalletError::Node(NodeError::Unreachable { .. }))
            | Self::Job(JobError::Node(NodeError::Unreachable { .. })) => {
                Some("is the node running? pass its API URL with --node or CAMEL_NODE")
            }
            Self::Wallet(WalletError::Keystore(KeystoreError::WrongPassphrase)) => {
                Some("set CAMEL_WALLET_PASSPHRASE or type the passphrase chosen at init")
            }
            _ => None,
        }
    }
}

fn wallet_dir(cli: &Cli) -> Result<PathBuf, CliError> {
    if let Some(d) = &cli.wallet_dir {
        return Ok(d.clone());
    }
    directories::ProjectDirs::from("org", "camelidcoin", "camel-wallet")
        .map(|p| p.data_dir().to_owned())
        .ok_or_else(|| CliError::Usage("no home directory: pass --wallet-dir".into()))
}

fn node(cli: &Cli) -> NodeClient {
    nodes(cli).swap_remove(0)
}

fn nodes(cli: &Cli) -> Vec<NodeClient> {
    if cli.node.is_empty() {
        return vec![NodeClient::new("http://127.0.0.1:8732", None)];
    }
    cli.node.iter().map(|u| NodeClient::new(u, None)).collect()
}

/// Reads one secret line: from the terminal without echo, else from stdin.
fn read_secret(prompt: &str, stdin: &mut impl BufRead) -> Result<String, CliError> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt).map_err(|e| CliError::Other(e.to_string()));
    }
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|e| CliError::Other(e.to_string()))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn passphrase(stdin: &mut impl BufRead, confirm: bool) -> Result<String, CliError> {
    if let Ok(p) = std::env::var("CAMEL_WALLET_PASSPHRASE") {
        return Ok(p);
    }
    let p = read_secret("wallet passphrase: ", stdin)?;
    if confirm && std::io::stdin().is_terminal() && read_secret("again: ", stdin)? != p {
        return Err(CliError::Usage("the two passphrases differ".into()));
    }
    Ok(p)
}

fn confirm(what: &str, yes: bool) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "{what}: not confirmed (stdin is not a terminal); pass --yes"
        )));
    }
    eprint!("{what}. Go ahead? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    if line.trim().eq_ignore_ascii_case("y") || line.trim().eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        Err(CliError::Declined)
    }
}

fn open(cli: &Cli) -> Result<Wallet, CliError> {
    let dir = wallet_dir(cli)?;
    let mut stdin = std::io::stdin().lock();
    Ok(Wallet::open(&dir, &passphrase(&mut stdin, false)?)?)
}

/// The gateway's API key file in the wallet directory.
const GATEWAY_KEY_FILE: &str = "gateway.key";

/// The gateway's key, created (32 random bytes as hex, mode 0600) on first use.
fn gateway_key(dir: &std::path::Path) -> Result<String, CliError> {
    let path = dir.join(GATEWAY_KEY_FILE);
    if let Ok(k) = std::fs::read_to_string(&path) {
        return Ok(k.trim().to_owned());
    }
    let mut b = [0u8; 32];
    secp256k1::rand::RngCore::fill_bytes(&mut secp256k1::rand::rng(), &mut b);
    let k = camel_core::hash::to_hex(&b);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .map_err(|e| CliError::Other(format!("cannot write {}: {e}", path.display())))?;
    std::io::Write::write_all(&mut f, k.as_bytes())
        .map_err(|e| CliError::Other(format!("cannot write {}: {e}", path.display())))?;
    Ok(k)
}

fn prompt_text(arg: &str) -> Result<String, CliError> {
    if arg == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| CliError::Other(format!("reading the prompt from stdin: {e}")))?;
        return Ok(s);
    }
    if let Some(path) = arg.strip_prefix('@') {
        return std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("reading the prompt from {path}: {e}")));
    }
    Ok(arg.to_owned())
}

/// Prints `value` as JSON, or `text` otherwise.
fn emit(cli: &Cli, value: Value, text: impl FnOnce() -> String) {
    if cli.json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

async fn run(cli: &Cli) -> Result<(), CliError> {
    match cli.cmd.as_ref().unwrap_or(&Cmd::Tui) {
        Cmd::Init { network, words } => {
            if *words != 12 && *words != 24 {
                return Err(CliError::Usage("--words must be 12 or 24".into()));
            }
            let dir = wallet_dir(cli)?;
            let mnemonic = new_mnemonic(*words as usize).map_err(WalletError::from)?;
            let mut stdin = std::io::stdin().lock();
            let pass = passphrase(&mut stdin, true)?;
            let phrase = mnemonic.to_string();
            let mut w = Wallet::create(&dir, network.params(), &phrase, &pass, DEFAULT_COSTS)?;
            let (i, key) = w.next_key(Chain::Receive)?;
            let address = w.address_of(&key);
            eprintln!(
                "Write the recovery phrase down and keep it offline: it is shown only now, and it is the only way back to these coins."
            );
            emit(
                cli,
                json!({"wallet_dir": dir, "network": w.network().name(), "mnemonic": phrase,
                       "address": address, "path": w.path(Chain::Receive, i)}),
                || format!("{phrase}\n{address}"),
            );
        }
        Cmd::Restore { network } => {
            let dir = wallet_dir(cli)?;
            let mut stdin = std::io::stdin().lock();
            let phrase = read_secret("recovery phrase: ", &mut stdin)?;
            let pass = passphrase(&mut stdin, true)?;
            let mut w = Wallet::create(&dir, network.params(), &phrase, &pass, DEFAULT_COSTS)?;
            let node = node(cli);
            let scans = w.scan(&node).await?;
            for s in &scans {
                eprintln!(
                    "scanned {} .. {}: {} address(es) in use",
                    s.from, s.to, s.used
                );
            }
            let balance = w.balance(&node).await?;
            emit(
                cli,
                json!({"wallet_dir": dir, "network": w.network().name(), "scanned": scans,
                       "balance": balance}),
                || format!("restored; spendable {} base units", balance.spendable_base),
            );
        }
        Cmd::Address => {
            let mut w = open(cli)?;
            let (i, key) = w.next_key(Chain::Receive)?;
            let address = w.address_of(&key);
            emit(
                cli,
                json!({"address": address, "path": w.path(Chain::Receive, i)}),
                || address.clone(),
            );
        }
        Cmd::Peers => {
            // No secret needed: the headers are verified from the genesis of the node's
            // network, without the wallet's cache.
            let mut out = Vec::new();
            for n in nodes(cli) {
                let (height, tip) = n.tip().await?;
                let network = n.network().await?;
                let params = match network.as_str() {
                    "main" => camel_core::params::Params::main(),
                    "test" => camel_core::params::Params::test(),
                    "regtest" => camel_core::params::Params::regtest(),
                    other => {
                        return Err(CliError::Other(format!(
                            "{} serves an unknown network {other:?}",
                            n.url()
                        )));
                    }
                };
                let mut chain = camel_wallet::spv::HeaderChain::new(params);
                match camel_wallet::spv::sync(&n, &mut chain).await {
                    Ok(()) => {}
                    Err(camel_wallet::spv::SyncError::Node(e)) => return Err(e.into()),
                    Err(camel_wallet::spv::SyncError::Spv(e)) => {
                        return Err(CliError::Wallet(WalletError::ForgedBy {
                            url: n.url().to_owned(),
                            source: e,
                        }));
                    }
                }
                let p = n.peers().await?;
                let connected: Vec<Value> = p["peers"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|x| !x["connected_since"].is_null())
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(json!({
                    "node": n.url(),
                    "network": network,
                    "height": height,
                    "tip": tip.to_string(),
                    "verified_height": chain.height(),
                    "tip_verified": chain.hash_at(height) == Some(tip),
                    "peer_id": p["peer_id"],
                    "peers": connected,
                }));
            }
            emit(cli, json!({"nodes": out}), || {
                out.iter()
                    .map(|n| {
                        let peers: Vec<String> = n["peers"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .map(|p| format!("  {}", p["peer_id"].as_str().unwrap_or("?")))
                                    .collect()
                            })
                            .unwrap_or_default();
                        format!(
                            "{}: height {} tip {} ({}), {} peers\n{}",
                            n["node"].as_str().unwrap_or_default(),
                            n["height"],
                            n["tip"].as_str().unwrap_or_default(),
                            if n["tip_verified"] == true {
                                "headers verified"
                            } else {
                                "tip NOT on the verified chain"
                            },
                            peers.len(),
                            peers.join("\n")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Cmd::Serve {
            listen,
            price_per_token_base,
            fee_base,
            verifiers,
            timelock_blocks,
        } => {
            let dir = wallet_dir(cli)?;
            let w = open(cli)?;
            let key = match std::env::var("CAMEL_GATEWAY_KEY") {
                Ok(k) if !k.trim().is_empty() => k.trim().to_owned(),
                _ => gateway_key(&dir)?,
            };
            let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
                CliError::Other(format!(
                    "cannot listen on {listen}: {e} (choose another with --listen)"
                ))
            })?;
            let bound = listener
                .local_addr()
                .map_err(|e| CliError::Other(e.to_string()))?;
            if !bound.ip().is_loopback() {
                eprintln!(
                    "warning: listening on {bound}, beyond this machine: anyone with the key spends this wallet's coins"
                );
            }
            let g = std::sync::Arc::new(camel_wallet::gateway::Gateway::new(
                node(cli),
                w,
                key,
                camel_wallet::gateway::Pricing {
                    price_per_token: *price_per_token_base,
                    fee: *fee_base,
                    verifiers: *verifiers,
                    timelock_blocks: *timelock_blocks,
                },
            ));
            eprintln!(
                "serving the OpenAI API on http://{bound}/v1 (key: CAMEL_GATEWAY_KEY or {})",
                dir.join(GATEWAY_KEY_FILE).display()
            );
            emit(
                cli,
                json!({"listening": format!("http://{bound}/v1")}),
                || format!("listening on http://{bound}/v1"),
            );
            axum::serve(listener, camel_wallet::gateway::router(g))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
                .map_err(|e| CliError::Other(e.to_string()))?;
        }
        Cmd::Tui => {
            let w = open(cli)?;
            camel_wallet::tui::run(w, nodes(cli))
                .await
                .map_err(|e| CliError::Other(format!("the terminal: {e}")))?;
        }
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "camel-wallet",
                &mut std::io::stdout(),
            );
        }
        Cmd::Balance => {
            let w = open(cli)?;
            let b = w.balance_across(&nodes(cli)).await?;
            for n in &b.behind {
                eprintln!(
                    "note: node {n} is behind the best verified tip; its coins were not compared"
                );
            }
            emit(cli, serde_json::to_value(&b).unwrap_or_default(), || {
                format!(
                    "spendable {} base units\nimmature  {} base units\nverified to height {}",
                    b.spendable_base, b.immature_base, b.verified_height
                )
            });
        }
        Cmd::Send {
            to,
            amount,
            fee_per_byte,
            max_fee,
            yes,
            dry_run,
        } => {
            let mut w = open(cli)?;
            let node = node(cli);
            let (tx, fee) = w
                .build_send(&node, to, *amount, *fee_per_byte, *max_fee, !dry_run)
                .await?;
            let txid = tx.txid();
            let summary = format!(
                "pay {amount} base units to {to}, fee {fee} base units ({fee_per_byte}/byte), total {}",
                amount.saturating_add(fee)
            );
            if *dry_run {
                emit(
                    cli,
                    json!({"txid": txid.to_string(), "amount_base": amount, "fee_base": fee,
                           "broadcast": false, "tx": camel_core::hash::to_hex(&camel_core::encode::encode_to_vec(&tx))}),
                    || format!("{summary}\n(dry run) {txid}"),
                );
                return Ok(());
            }
            confirm(&summary, *yes)?;
            let txid = w.broadcast(&node, &tx).await?;
            emit(
                cli,
                json!({"txid": txid.to_string(), "amount_base": amount, "fee_base": fee, "broadcast": true}),
                || txid.to_string(),
            );
        }
        Cmd::Job(cmd) => job(cli, cmd).await?,
    }
    Ok(())
}

async fn job(cli: &Cli, cmd: &JobCmd) -> Result<(), CliError> {
    match cmd {
        JobCmd::Submit {
            model,
            prompt,
            max_tokens,
            temperature,
            seed,
            reward,
            min_stake,
            fee,
            timelock_blocks,
            verifiers,
            workers,
            wait,
            yes,
        } => {
            let model: ModelId = model.parse().map_err(|_| {
                CliError::Usage(format!(
                    "--model '{model}' is not a model id (64 hex digits); `camel-wallet job workers` lists the models served"
                ))
            })?;
            let prompt = prompt_text(prompt)?;
            if !(0.0..=10.0).contains(temperature) {
                return Err(CliError::Usage(
                    "--temperature must be between 0 and 10".into(),
                ));
            }
            let workers = workers
                .iter()
                .map(|w| {
                    camel_core::hash::from_hex(w)
                        .ok()
                        .and_then(|b| PublicKey::from_slice(&b).ok())
                        .ok_or_else(|| {
                            CliError::Usage(format!(
                                "--worker '{w}' is not a public key (66 hex digits)"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let amount = |v: u64, what: &str| {
                Amount::from_base(v).ok_or_else(|| CliError::Usage(format!("{what} is too large")))
            };
            let req = JobRequest {
                model,
                prompt,
                format: PromptFormat::Raw,
                max_tokens: *max_tokens,
                sampling: SamplingParams {
                    temperature_milli: (temperature * 1000.0).round() as u32,
                    seed: *seed,
                },
                reward: amount(*reward, "--reward-base")?,
                min_stake: amount(min_stake.unwrap_or(*reward), "--min-stake-base")?,
                timelock_blocks: *timelock_blocks,
                fee: *fee,
                verifiers: *verifiers,
                workers,
            };
            let mut w = open(cli)?;
            confirm(
                &format!(
                    "escrow {reward} base units for up to {max_tokens} tokens, fees {fee} base units per transaction (three transactions)"
                ),
                *yes,
            )?;
            let (index, key) = w.next_key(Chain::Job)?;
            let (progress, mut steps) = tokio::sync::mpsc::unbounded_channel();
            let client = JobClient::new(node(cli), key, w.params.clone())
                .with_funding(w.keys()?)
                .with_progress(progress);
            // Each step on stderr as it happens; stdout keeps the data only.
            tokio::spawn(async move {
                while let Some(p) = steps.recv().await {
                    eprintln!("{}", camel_wallet::job::describe_progress(&p));
                }
            });
            let submitted = client.submit(&req).await?;
            let job_id = submitted.job_id.to_string();
            w.record_job(JobEntry {
                job_id: job_id.clone(),
                index,
                reward_base: *reward,
                model: model.to_string(),
            })?;
            eprintln!("job {job_id} offered");
            if !wait {
                emit(cli, json!({"job_id": job_id, "state": "offered"}), || {
                    job_id.clone()
                });
                return Ok(());
            }
            let outcome = client.follow(&submitted, &req).await?;
            match outcome {
                Outcome::Settled { delivery, verdicts } => {
                    let text = String::from_utf8_lossy(&delivery.text).into_owned();
                    let checked: Vec<Value> = verdicts
                        .iter()
                        .map(|v| json!({"verifier": camel_core::hash::to_hex(&v.verifier.to_bytes()),
                                        "valid": v.valid, "text_ok": v.text_ok, "checked": v.checked}))
                        .collect();
                    emit(
                        cli,
                        json!({"job_id": job_id, "state": "settled", "text": text,
                               "tokens": delivery.tokens, "verdicts": checked}),
                        || text.clone(),
                    );
                    eprintln!(
                        "settled: {} tokens, verified by {} peer(s)",
                        delivery.tokens.len(),
                        verdicts.len()
                    );
                }
                Outcome::Disputed { why, slash } => {
                    emit(
                        cli,
                        json!({"job_id": job_id, "state": "disputed", "why": why, "slash_txid": slash.to_string()}),
                        || format!("disputed: {why}\nslash {slash}"),
                    );
                    return Err(CliError::JobFailed(format!(
                        "the output failed verification ({why}); the worker's stake was slashed to you"
                    )));
                }
                Outcome::Refunded { refund } => {
                    emit(
                        cli,
                        json!({"job_id": job_id, "state": "refunded", "refund_txid": refund.to_string()}),
                        || format!("refunded {refund}"),
                    );
                    return Err(CliError::JobFailed(
                        "nobody delivered; the escrow came back".into(),
                    ));
                }
            }
        }
        JobCmd::List => {
            let w = open(cli)?;
            let jobs = w.jobs().to_vec();
            emit(cli, serde_json::to_value(&jobs).unwrap_or_default(), || {
                jobs.iter()
                    .map(|j| format!("{} {} base units", j.job_id, j.reward_base))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        JobCmd::Status { job_id } => {
            let id = job_id.parse().map_err(|_| {
                CliError::Usage(format!("'{job_id}' is not a job id (64 hex digits)"))
            })?;
            let info = node(cli).job(&id).await?;
            match info {
                None => {
                    return Err(CliError::Other(format!(
                        "the node does not know job {job_id}"
                    )));
                }
                Some(info) => {
                    let state = info.state.clone();
                    emit(cli, json!({"job_id": job_id, "state": state}), || {
                        state.clone()
                    });
                }
            }
        }
        JobCmd::Workers => {
            let list = node(cli).workers().await?;
            let v: Vec<Value> = list
                .iter()
                .map(|w| json!({"worker": w.worker, "peer": w.peer, "verifier": w.verifier, "models": w.models}))
                .collect();
            emit(cli, Value::Array(v), || {
                list.iter()
                    .map(|w| format!("{} {}", w.worker, w.models.join(",")))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(exit::ERROR);
        }
    };
    let result = rt.block_on(run(&cli));
    // Leave pending requests behind rather than wait on them.
    rt.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => std::process::exit(exit::OK),
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            std::process::exit(e.code());
        }
    }
}
