//! `camel-testnet demo`: the product on one machine. Three workers on loopback serve the
//! bundled model; a fresh wallet is funded by mining, pays for a completion, reads it and has it
//! verified by the two workers that did not write it. Then a fourth worker joins that
//! substitutes a token in its answers: its output fails verification, the client files a fraud
//! proof, and the worker's stake goes to the client.
//!
//! Every step is checked, balances to the base unit and the network's coins against the
//! subsidies mined: [`Summary::ok`] is true only if everything happened as it should.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use camel_core::Amount;
use camel_core::address::Address;
use camel_core::hash::{ModelId, from_hex, to_hex};
use camel_core::job::PromptFormat;
use camel_core::keys::{PrivateKey, PublicKey};
use camel_core::params::Params;
use camel_core::rastic::SamplingParams;
use camel_wallet::job::{JobClient, JobRequest, Outcome, Progress};
use camel_wallet::keys::{Chain, new_mnemonic};
use camel_wallet::keystore::DEFAULT_COSTS;
use camel_wallet::node::NodeClient;
use camel_wallet::wallet::Wallet;
use serde::Serialize;

use crate::{NodeSpec, Testnet};

/// Fee of each client transaction, base units.
pub const FEE: u64 = 2_000;
/// Fee of each worker transaction (stake, claim, reclaim), base units.
pub const WORKER_FEE: u64 = 2_000;
/// What each worker stakes on a job, base units.
pub const STAKE: u64 = 100_000;
/// What the client pays for a job, base units.
pub const REWARD: u64 = 50_000;
/// The cheating mode of the fourth worker.
pub const CHEAT: &str = "substitute";

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The `camel-worker` binary.
    pub worker_bin: PathBuf,
    /// The GGUF model the workers serve.
    pub model: PathBuf,
    /// Where the nodes and the wallet live (created; removed afterwards unless `keep`).
    pub root: PathBuf,
    pub keep: bool,
    pub prompt: String,
    pub cheat_prompt: String,
    pub max_tokens: u32,
    /// Seconds between blocks.
    pub block_interval: Duration,
    /// Human-readable progress goes to stderr (stdout keeps the JSON summary).
    pub json: bool,
}

/// One step of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub seconds: f64,
}

/// A verifier's answer.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictSummary {
    pub verifier: String,
    pub valid: bool,
    pub text_ok: bool,
    pub checked: u32,
}

/// One job, as the client saw it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobSummary {
    pub job_id: String,
    pub worker: String,
    /// `settled`, `slashed` or `refunded`.
    pub outcome: String,
    pub text: Option<String>,
    pub tokens: usize,
    pub commitment: Option<String>,
    pub payment_txid: Option<String>,
    pub claim_txid: Option<String>,
    pub slash_txid: Option<String>,
    pub why: Option<String>,
    pub verdicts: Vec<VerdictSummary>,
    /// Balance changes, base units: measured and expected.
    pub client_change: i64,
    pub client_expected: i64,
    pub worker_change: i64,
    pub worker_expected: i64,
    pub seconds: f64,
}

/// A balance at the start and at the end.
#[derive(Debug, Clone, Serialize)]
pub struct BalanceRow {
    pub who: String,
    pub address: String,
    pub start: u64,
    pub end: u64,
}

/// What the demo did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Every step happened as expected.
    pub ok: bool,
    pub steps: Vec<Step>,
    pub honest: Option<JobSummary>,
    pub cheat: Option<JobSummary>,
    pub balances: Vec<BalanceRow>,
    /// Coins held by everyone equal the subsidies mined.
    pub supply_ok: bool,
    pub seconds: f64,
}

struct Demo {
    cfg: DemoConfig,
    start: Instant,
    summary: Summary,
    out: Box<dyn Write>,
}

fn short(hex: &str) -> String {
    format!("{}…", hex.chars().take(12).collect::<String>())
}

fn address(k: &PrivateKey) -> String {
    Address::p2pkh(&k.public_key(), Params::regtest().address_version).to_string()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

impl Demo {
    fn say(&mut self, line: &str) {
        if crate::interrupted() {
            return;
        }
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    fn at(&self) -> String {
        format!("[{:>5.1}s]", self.start.elapsed().as_secs_f64())
    }

    fn step(&mut self, name: &str, ok: bool, detail: String, since: Instant) {
        let mark = if ok { "ok" } else { "FAILED" };
        let line = format!("{} {mark}: {name}: {detail}", self.at());
        self.say(&line);
        self.summary.steps.push(Step {
            name: name.to_owned(),
            ok,
            detail,
            seconds: since.elapsed().as_secs_f64(),
        });
    }

    /// Runs `f` as the step `name`; an error fails the step and stops the demo.
    fn run<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Self) -> anyhow::Result<(T, String)>,
    ) -> anyhow::Result<T> {
        let since = Instant::now();
        match f(self) {
            Ok((v, detail)) => {
                self.step(name, true, detail, since);
                Ok(v)
            }
            Err(e) => {
                self.step(name, false, format!("{e:#}"), since);
                Err(e)
            }
        }
    }
}

fn worker_spec(model: &std::path::Path, cheat: Option<&str>) -> NodeSpec {
    NodeSpec {
        model: Some(model.to_path_buf()),
        cheat: cheat.map(str::to_owned),
        args: vec![
            "--stake".into(),
            STAKE.to_string(),
            "--fee".into(),
            WORKER_FEE.to_string(),
        ],
    }
}

fn worker_key(net: &Testnet, i: usize) -> anyhow::Result<PublicKey> {
    let (hex, _) = net.nodes[i]
        .worker
        .clone()
        .ok_or_else(|| anyhow!("node {i} is not a worker"))?;
    Ok(PublicKey::from_slice(&from_hex(&hex)?)?)
}

fn worker_address(net: &Testnet, i: usize) -> String {
    net.nodes[i].worker.clone().map(|w| w.1).unwrap_or_default()
}

/// Waits until `f` gives `want`, or fails with what it gave last.
async fn await_value(
    what: &str,
    timeout: Duration,
    want: i64,
    mut f: impl AsyncFnMut() -> anyhow::Result<i64>,
) -> anyhow::Result<i64> {
    let start = Instant::now();
    loop {
        let got = f().await?;
        if got == want {
            return Ok(got);
        }
        if start.elapsed() > timeout {
            bail!("{what}: {got} base units, expected {want}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Runs the demo. The summary says whether every step happened as expected; an `Err` is
/// only for what stopped the demo from running at all.
pub fn run(cfg: DemoConfig) -> Summary {
    let out: Box<dyn Write> = if cfg.json {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let mut demo = Demo {
        cfg,
        start: Instant::now(),
        summary: Summary::default(),
        out,
    };
    let net = demo.scenario();
    if crate::interrupted() {
        // The signal handler stops the nodes and cleans up; nothing here is news.
        return demo.summary;
    }
    demo.summary.ok = net.is_ok() && demo.summary.steps.iter().all(|s| s.ok);
    if let Ok(mut net) = net {
        demo.say(&format!("{} stopping the workers", demo.at()));
        net.stop_pace();
        for n in &mut net.nodes {
            n.stop(Duration::from_secs(20));
        }
    }
    // On failure the network is dropped with the error (its processes killed) already.
    if demo.cfg.keep || !demo.summary.ok {
        demo.say(&format!(
            "the nodes' data and logs are in {}",
            demo.cfg.root.display()
        ));
    } else {
        let _ = std::fs::remove_dir_all(&demo.cfg.root);
    }
    demo.summary.seconds = demo.start.elapsed().as_secs_f64();
    let table = render_summary(&demo.summary);
    demo.say(&table);
    demo.summary
}

impl Demo {
    fn scenario(&mut self) -> anyhow::Result<Testnet> {
        let cfg = self.cfg.clone();
        let rt = runtime()?;
        let miner = PrivateKey::generate(&mut secp256k1::rand::rng());
        self.say(&format!(
            "CamelidCoin demo: a regtest network on loopback in {}",
            cfg.root.display()
        ));
        self.say(&format!(
            "model {}; each worker stakes {STAKE} base units per job; a job pays {REWARD}",
            cfg.model.display()
        ));

        let mut net = self.run("start three workers", |_| {
            let specs = (0..3).map(|_| worker_spec(&cfg.model, None)).collect();
            let net = Testnet::start(&cfg.worker_bin, &cfg.root, specs, &address(&miner))?;
            let apis: Vec<&str> = net.nodes.iter().map(|n| n.api.as_str()).collect();
            let detail = format!("APIs {}", apis.join(", "));
            Ok((net, detail))
        })?;
        let node = net.nodes[0].client();

        let mut wallet = self.run("create a wallet", |_| {
            let phrase = new_mnemonic(12)?.to_string();
            let w = Wallet::create(
                &cfg.root.join("wallet"),
                Params::regtest(),
                &phrase,
                "demo passphrase",
                DEFAULT_COSTS,
            )?;
            Ok((w, "12-word recovery phrase, keystore under argon2id".into()))
        })?;
        let (_, receive) = wallet.next_key(Chain::Receive)?;
        let wallet_addr = wallet.address_of(&receive);

        self.run("mine funds", |_| {
            net.mine_to(3, &wallet_addr)?;
            for i in 0..net.nodes.len() {
                net.mine_to(2, &worker_address(&net, i))?;
            }
            let h = net.mine(100)?;
            Ok((
                (),
                format!(
                    "3 coinbases to the wallet ({wallet_addr}), 2 to each worker, matured; height {h}"
                ),
            ))
        })?;
        net.pace(cfg.block_interval);

        let model = self.run("workers announce the model", |_| {
            rt.block_on(async {
                let start = Instant::now();
                loop {
                    let ws = node.workers().await?;
                    if ws.len() >= 3 {
                        let model = ws[0]
                            .models
                            .first()
                            .cloned()
                            .ok_or_else(|| anyhow!("the worker serves no model"))?;
                        let id: ModelId = model.parse().map_err(|_| anyhow!("model id {model}"))?;
                        return Ok((
                            id,
                            format!("{} workers serve model {}", ws.len(), short(&model)),
                        ));
                    }
                    if start.elapsed() > Duration::from_secs(60) {
                        bail!("{} of 3 workers announced within 60 s", ws.len());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        })?;

        let mut everyone_start = self.balances(&rt, &net, &wallet, &miner)?;

        // 1. The honest job: any of the three may take it.
        let req = |prompt: &str, workers: Vec<PublicKey>| JobRequest {
            model,
            prompt: prompt.into(),
            format: PromptFormat::Raw,
            max_tokens: cfg.max_tokens,
            sampling: SamplingParams::GREEDY,
            reward: Amount::from_base(REWARD).unwrap_or(Amount::ZERO),
            min_stake: Amount::from_base(STAKE).unwrap_or(Amount::ZERO),
            timelock_blocks: 40,
            fee: FEE,
            verifiers: 2,
            workers,
        };
        self.say("");
        self.say(&format!(
            "== an honest job: \"{}\", up to {} tokens, greedy",
            cfg.prompt, cfg.max_tokens
        ));
        let honest = self.job(&rt, &net, &mut wallet, &req(&cfg.prompt, vec![]), false)?;
        self.summary.honest = Some(honest);

        // 2. A cheating worker joins; the next job goes to it.
        self.say("");
        self.say(&format!(
            "== a cheating worker (--cheat {CHEAT}: one token of each answer replaced)"
        ));
        let cheater = self.run("start a cheating worker", |_| {
            let i = net.add(worker_spec(&cfg.model, Some(CHEAT)))?;
            let key = worker_key(&net, i)?;
            // Funds to stake with, matured.
            net.mine_to(2, &worker_address(&net, i))?;
            net.mine(100)?;
            rt.block_on(async {
                let hex = to_hex(&key.to_bytes());
                let start = Instant::now();
                while !node.workers().await?.iter().any(|w| w.worker == hex) {
                    if start.elapsed() > Duration::from_secs(60) {
                        bail!("the cheating worker did not announce within 60 s");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(())
            })?;
            Ok((
                key,
                format!(
                    "worker {}, funded with 2 coinbases",
                    short(&to_hex(&key.to_bytes()))
                ),
            ))
        })?;
        let funded = rt.block_on(node.balance(&worker_address(&net, net.nodes.len() - 1)))?;
        everyone_start.push(BalanceRow {
            who: String::new(),
            address: worker_address(&net, net.nodes.len() - 1),
            start: 0,
            end: funded,
        });
        let cheat_req = req(&cfg.cheat_prompt, vec![cheater]);
        self.say(&format!(
            "== a job for the cheater: \"{}\"",
            cfg.cheat_prompt
        ));
        let cheat = self.job(&rt, &net, &mut wallet, &cheat_req, true)?;
        self.summary.cheat = Some(cheat);

        // 3. Nothing created or destroyed.
        let miner_addr = address(&miner);
        let mut end = self.balances(&rt, &net, &wallet, &miner)?;
        for row in &mut end {
            row.start = everyone_start
                .iter()
                .find(|r| r.address == row.address)
                .map_or(0, |r| r.end);
        }
        self.summary.balances = end;
        let supply = self.run("count every coin", |_| {
            rt.block_on(async {
                let params = Params::regtest();
                let start = Instant::now();
                let mut addrs: Vec<String> = wallet
                    .keys()?
                    .iter()
                    .map(|k| wallet.address_of(k))
                    .collect();
                addrs.extend((0..net.nodes.len()).map(|i| worker_address(&net, i)));
                addrs.push(miner_addr.clone());
                loop {
                    let tip = node.height().await?;
                    let minted: u64 = (1..=tip).map(|h| params.block_subsidy(h).to_base()).sum();
                    let mut held = 0u64;
                    for a in &addrs {
                        held += node.balance(a).await?;
                    }
                    if held == minted && node.height().await? == tip {
                        return Ok((
                            true,
                            format!("{held} base units held = the subsidies of {tip} blocks"),
                        ));
                    }
                    if start.elapsed() > Duration::from_secs(60) {
                        bail!("{held} base units held, {minted} minted at height {tip}");
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            })
        });
        self.summary.supply_ok = supply.unwrap_or(false);
        Ok(net)
    }

    fn balances(
        &mut self,
        rt: &tokio::runtime::Runtime,
        net: &Testnet,
        wallet: &Wallet,
        miner: &PrivateKey,
    ) -> anyhow::Result<Vec<BalanceRow>> {
        let node = net.nodes[0].client();
        rt.block_on(async {
            let mut rows = Vec::new();
            let b = wallet.balance(&node).await?;
            rows.push(BalanceRow {
                who: "wallet".into(),
                address: "(its addresses)".into(),
                start: 0,
                end: b.spendable_base + b.immature_base,
            });
            for (i, n) in net.nodes.iter().enumerate() {
                let a = worker_address(net, i);
                let who = match &n.spec.cheat {
                    Some(c) => format!("worker {i} (cheats: {c})"),
                    None => format!("worker {i}"),
                };
                rows.push(BalanceRow {
                    who,
                    end: node.balance(&a).await?,
                    address: a,
                    start: 0,
                });
            }
            let a = address(miner);
            rows.push(BalanceRow {
                who: "miner".into(),
                end: node.balance(&a).await?,
                address: a,
                start: 0,
            });
            Ok(rows)
        })
    }

    /// Runs one job through the wallet's library, showing each step, and checks its outcome
    /// and the balances it moved.
    fn job(
        &mut self,
        rt: &tokio::runtime::Runtime,
        net: &Testnet,
        wallet: &mut Wallet,
        req: &JobRequest,
        expect_cheat: bool,
    ) -> anyhow::Result<JobSummary> {
        let since = Instant::now();
        let node = net.nodes[0].client();
        let (_, key) = wallet.next_key(Chain::Job)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let client = JobClient::new(node.clone(), key, Params::regtest())
            .with_funding(wallet.keys()?)
            .with_progress(tx);
        let mut s = JobSummary::default();
        let client_before = rt.block_on(wallet.balance(&node))?;
        let client_before = client_before.spendable_base + client_before.immature_base;

        let submitted = self.run("offer the job", |_| {
            let job = rt.block_on(client.submit(req))?;
            Ok((
                job.clone(),
                format!(
                    "job {} with {REWARD} base units in escrow (tx {})",
                    short(&job.job_id.to_string()),
                    short(&job.job_tx.txid().to_string())
                ),
            ))
        })?;
        s.job_id = submitted.job_id.to_string();
        let mut worker_before: Option<(String, u64)> = None;
        let outcome = rt.block_on(async {
            let follow = client.follow(&submitted, req);
            tokio::pin!(follow);
            loop {
                tokio::select! {
                    r = &mut follow => break r,
                    Some(p) = rx.recv() => {
                        self.progress(&p, &mut s, net, &node, &mut worker_before).await;
                    }
                }
            }
        });
        // Steps reported just before the outcome.
        while let Ok(p) = rx.try_recv() {
            rt.block_on(self.progress(&p, &mut s, net, &node, &mut worker_before));
        }
        let outcome = outcome.context("following the job")?;
        let (waddr, wbefore) = worker_before.ok_or_else(|| anyhow!("no worker took the job"))?;
        match (&outcome, expect_cheat) {
            (Outcome::Settled { delivery, verdicts }, false) => {
                s.outcome = "settled".into();
                s.tokens = delivery.tokens.len();
                s.text = Some(String::from_utf8_lossy(&delivery.text).into_owned());
                let all = verdicts.iter().all(|v| v.accepts());
                let full = verdicts
                    .iter()
                    .all(|v| v.checked as usize == delivery.tokens.len());
                let detail = format!(
                    "{} verdicts, all valid: {all}, every position checked: {full}",
                    verdicts.len()
                );
                let ok = all && full && verdicts.len() >= 2;
                self.step("verified by two other workers", ok, detail, since);
                s.client_expected = -((REWARD + 2 * FEE) as i64);
                s.worker_expected = (REWARD - 3 * WORKER_FEE) as i64;
            }
            (Outcome::Disputed { why, slash }, true) => {
                s.outcome = "slashed".into();
                s.why = Some(why.clone());
                s.slash_txid = Some(slash.to_string());
                let slash = *slash;
                let id = submitted.job_id;
                self.run("the fraud proof is mined", |_| {
                    rt.block_on(async {
                        let start = Instant::now();
                        loop {
                            if let Some(info) = node.job(&id).await?
                                && let Some(h) = info.disputed_height
                            {
                                return Ok((
                                    (),
                                    format!("slash {} in block {h}", short(&slash.to_string())),
                                ));
                            }
                            if start.elapsed() > Duration::from_secs(90) {
                                bail!("the slash {slash} was not mined within 90 s");
                            }
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                    })
                })?;
                // The client gets the reward back (it was locked in the claim's stake) and
                // the acceptance stake, less three fees: job, payment, slash.
                s.client_expected = STAKE as i64 - (3 * FEE) as i64;
                s.worker_expected = -((STAKE + 2 * WORKER_FEE) as i64);
            }
            (other, _) => {
                let since = Instant::now();
                self.step(
                    "job outcome",
                    false,
                    format!("unexpected outcome: {other:?}"),
                    since,
                );
                bail!("unexpected outcome");
            }
        }
        let what = if expect_cheat {
            "the cheater loses its stake, the client is made whole"
        } else {
            let at = self.at();
            self.say(&format!(
                "{at} waiting for the dispute window ({} blocks) to close: only then can the worker take its stakes back",
                Params::regtest().dispute_window
            ));
            "the client paid the reward, the worker earned it"
        };
        let (ce, we) = (s.client_expected, s.worker_expected);
        let (cc, wc) = self.run(what, |_| {
            rt.block_on(async {
                let cc = await_value(
                    "the client's change",
                    Duration::from_secs(120),
                    ce,
                    async || {
                        let b = wallet.balance(&node).await?;
                        Ok((b.spendable_base + b.immature_base) as i64 - client_before as i64)
                    },
                )
                .await?;
                let wc = await_value(
                    "the worker's change",
                    Duration::from_secs(120),
                    we,
                    async || Ok(node.balance(&waddr).await? as i64 - wbefore as i64),
                )
                .await?;
                Ok(((cc, wc), format!("client {cc:+}, worker {wc:+} base units")))
            })
        })?;
        s.client_change = cc;
        s.worker_change = wc;
        s.seconds = since.elapsed().as_secs_f64();
        Ok(s)
    }

    async fn progress(
        &mut self,
        p: &Progress,
        s: &mut JobSummary,
        net: &Testnet,
        node: &NodeClient,
        worker_before: &mut Option<(String, u64)>,
    ) {
        let at = self.at();
        let line = match p {
            Progress::Assigned { worker, stake } => {
                let hex = to_hex(&worker.to_bytes());
                s.worker = hex.clone();
                let i = (0..net.nodes.len())
                    .find(|&i| net.nodes[i].worker.as_ref().is_some_and(|w| w.0 == hex));
                if let Some(i) = i {
                    let a = worker_address(net, i);
                    let b = node.balance(&a).await.unwrap_or(0);
                    *worker_before = Some((a, b));
                }
                format!(
                    "assigned to worker {} (it bid a stake of {} base units); the prompt is sealed to its key; it stakes, generates and commits",
                    i.map_or_else(|| short(&hex), |i| i.to_string()),
                    stake.to_base()
                )
            }
            Progress::Committed { commitment } => {
                s.commitment = Some(commitment.id().to_string());
                format!(
                    "commitment {}: {} tokens, output hash {}, delivery key hash {}, stake {}:{} — checked, and the sealed delivery opens to the committed ciphertext",
                    short(&commitment.id().to_string()),
                    commitment.output_len,
                    short(&to_hex(&commitment.output_hash)),
                    short(&to_hex(&commitment.key_hash)),
                    short(&commitment.stake.txid.to_string()),
                    commitment.stake.vout
                )
            }
            Progress::Paid { txid, timeout } => {
                s.payment_txid = Some(txid.to_string());
                format!(
                    "paid: the escrow moves into a hash-locked payment (tx {}); it comes back at height {timeout} unless the worker reveals the key",
                    short(&txid.to_string())
                )
            }
            Progress::Revealed { claim } => {
                s.claim_txid = claim.map(|t| t.to_string());
                format!(
                    "the worker claimed the payment (tx {}), revealing the delivery key on chain",
                    claim.map_or_else(|| "?".into(), |t| short(&t.to_string()))
                )
            }
            Progress::Delivered { delivery } => {
                s.tokens = delivery.tokens.len();
                let text = String::from_utf8_lossy(&delivery.text).into_owned();
                format!(
                    "decrypted {} tokens matching the commitment:\n\n    {}\n",
                    delivery.tokens.len(),
                    text.trim().replace('\n', "\n    ")
                )
            }
            Progress::Verdict { verdict } => {
                let hex = to_hex(&verdict.verifier.to_bytes());
                s.verdicts.push(VerdictSummary {
                    verifier: hex.clone(),
                    valid: verdict.valid,
                    text_ok: verdict.text_ok,
                    checked: verdict.checked,
                });
                let failure = verdict
                    .provable_failure()
                    .map(|f| {
                        format!(
                            " — position {}: the model gives token {}, the worker wrote {}",
                            f.position, f.expected, f.claimed
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "signed verdict from worker {}: {} ({} of {} positions checked by RASTiC){failure}",
                    short(&hex),
                    if verdict.accepts() {
                        "valid"
                    } else {
                        "INVALID"
                    },
                    verdict.checked,
                    s.tokens.max(verdict.checked as usize)
                )
            }
            Progress::Disputing { why } => format!(
                "filing a fraud proof ({why}): nodes holding the model recompute that position before they mine the slash"
            ),
            Progress::Refunding => "nobody delivered in time: taking the money back".into(),
        };
        self.say(&format!("{at} {line}"));
    }
}

/// The closing tables: steps, jobs and balances.
pub fn render_summary(s: &Summary) -> String {
    let mut t = String::new();
    t.push_str("\nsteps\n");
    for st in &s.steps {
        t.push_str(&format!(
            "  {:<6} {:>6.1}s  {}\n",
            if st.ok { "ok" } else { "FAILED" },
            st.seconds,
            st.name
        ));
    }
    for (name, j) in [("honest job", &s.honest), ("cheating job", &s.cheat)] {
        if let Some(j) = j {
            t.push_str(&format!(
                "{name}: {} in {:.1}s; client {:+} (expected {:+}), worker {:+} (expected {:+}) base units\n",
                j.outcome,
                j.seconds,
                j.client_change,
                j.client_expected,
                j.worker_change,
                j.worker_expected
            ));
        }
    }
    if !s.balances.is_empty() {
        t.push_str("\nbalances, base units\n");
        t.push_str(&format!(
            "  {:<28} {:>16} {:>16} {:>12}\n",
            "who", "start", "end", "change"
        ));
        for b in &s.balances {
            t.push_str(&format!(
                "  {:<28} {:>16} {:>16} {:>+12}\n",
                b.who,
                b.start,
                b.end,
                b.end as i128 - b.start as i128
            ));
        }
    }
    t.push_str(&format!(
        "\n{} in {:.0}s\n",
        if s.ok {
            "demo: every step happened as expected"
        } else {
            "demo: FAILED (see the steps above)"
        },
        s.seconds
    ));
    t
}
