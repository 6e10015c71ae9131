//! The worker's executor (`docs/protocol.md` §13.7, worker policy): announces the model it
//! serves, bids on offers its pricing accepts, stakes when assigned, generates, commits and
//! delivers, claims once the payment is `claim_depth` deep, and takes its stakes back when
//! the job rules allow.
//!
//! Every step is driven from the job pool's view of a job (its messages and the chain's
//! record), so a restarted worker picks up where it was: what it cannot recompute (the
//! prompt, the delivery key, its commit) and the job's offer and assignment are written to
//! `<data-dir>/worker/<job id>.json` before they are acted on. The pool is in memory: after
//! a restart the executor puts its jobs' messages back and asks peers for what it missed
//! while it was down (an assignment, say).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use camel_core::Amount;
use camel_core::encode::{decode_from_slice, encode_to_vec};
use camel_core::hash::{JobId, from_hex, sha256, to_hex};
use camel_core::job::commitment::{COMMITMENT_VERSION, Commitment};
use camel_core::job::envelope::{Purpose, Sealed};
use camel_core::job::message::{Announce, Bid, Commit, JobMessage, ModelOffer, Release};
use camel_core::job::output::{Delivery, seal_delivery};
use camel_core::job::txs::{Spend, Unlock, funded_tx, signed_tx};
use camel_core::job::{JobParams, claim_depth};
use camel_core::keys::PrivateKey;
use camel_core::rastic::TokenId;
use camel_core::script::Script;
use camel_core::templates::{self, Payment, Stake, Template, p2pkh};
use camel_core::transaction::{OutPoint, Transaction, TxOut};
use camel_node::jobpool::{JobPool, JobState, JobView};
use camel_node::node::{Announcement, INDEX_WAIT, Node};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::judge::{SharedEngine, prompt_tokens, spec, text_of};

/// How a worker misbehaves, for the testnet's cheating scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Cheat {
    /// Commits to an output with one token changed.
    Substitute,
    /// Delivers bytes that do not open to the committed output.
    GarbageDelivery,
    /// Never claims, so never reveals the key.
    NoReveal,
}

/// The executor's settings.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Least reward per maximum token, base units.
    pub min_price_per_token: u64,
    /// Jobs taken at once and not yet committed to (bid on, staked, generating): the queue
    /// in front of the engine. Committed jobs wait for their payment without the engine.
    pub max_jobs: usize,
    /// The stake it puts up, at least (the job's `min_stake` if higher).
    pub stake: Amount,
    /// Most output tokens it takes a job for.
    pub max_tokens: u32,
    /// Fee of each transaction it makes, base units.
    pub fee: u64,
    pub cheat: Option<Cheat>,
    /// The model's display name in announcements.
    pub model_name: String,
    /// Announcement interval.
    pub announce_every: Duration,
    /// Peer id of this node, for bids and announcements.
    pub peer: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    /// Bid sent; waiting for an assignment.
    Bid,
    /// Assigned; the acceptance stake is in flight.
    Staked,
    /// The Commit is published.
    Committed,
    /// The payment is claimed.
    Claimed,
    /// Nothing left to do.
    Done,
}

/// What the worker must remember about one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Task {
    job_id: String,
    phase: Phase,
    prompt: Option<String>,
    stake_tx: Option<String>,
    stake_window_end: u32,
    key: Option<String>,
    commit: Option<String>,
    claim_tx: Option<String>,
    claim_window_end: u32,
    reclaimed: Vec<String>,
    /// The job's offer and the assignment acted on, encoded: what a restart puts back.
    #[serde(default)]
    messages: Vec<String>,
}

impl Task {
    fn new(job_id: &JobId) -> Self {
        Self {
            job_id: job_id.to_string(),
            phase: Phase::Bid,
            prompt: None,
            stake_tx: None,
            stake_window_end: 0,
            key: None,
            commit: None,
            claim_tx: None,
            claim_window_end: 0,
            reclaimed: Vec::new(),
            messages: Vec::new(),
        }
    }
}

fn decode_hex<T: camel_core::encode::Decodable>(s: &Option<String>) -> Option<T> {
    let b = from_hex(s.as_deref()?).ok()?;
    decode_from_slice(&b).ok()
}

/// The worker.
pub struct Executor {
    pool: Arc<JobPool>,
    node: Arc<Node>,
    engine: SharedEngine,
    key: PrivateKey,
    script: Script,
    config: ExecutorConfig,
    dir: PathBuf,
    tasks: HashMap<JobId, Task>,
    /// When each job missing from the pool was last looked for.
    sought: HashMap<JobId, Instant>,
    /// Jobs whose output is being generated.
    generating: HashSet<JobId>,
    /// The last bid was withheld for want of coins.
    short_of_coins: bool,
    generated_tx: mpsc::UnboundedSender<GenerationDone>,
    generated_rx: Option<mpsc::UnboundedReceiver<GenerationDone>>,
}

/// A generated output, before it is committed to.
#[derive(Debug)]
struct Generated {
    tokens: Vec<TokenId>,
    text: Vec<u8>,
}

type GenerationDone = (JobId, JobParams, OutPoint, Result<Generated, String>);

/// How often a job missing from the pool is put back or asked of peers.
const SEEK_EVERY: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

/// Loads the node's job key from `path`, or makes one (mode 0600).
pub fn load_or_create_key(path: &Path) -> std::io::Result<PrivateKey> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let bytes = from_hex(text.trim()).map_err(std::io::Error::other)?;
        return PrivateKey::from_slice(&bytes).map_err(std::io::Error::other);
    }
    let key = PrivateKey::generate(&mut secp256k1::rand::rng());
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, to_hex(&key.secret_bytes()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(key)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Executor {
    pub fn new(
        pool: Arc<JobPool>,
        engine: SharedEngine,
        key: PrivateKey,
        config: ExecutorConfig,
        dir: PathBuf,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut tasks = HashMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(task) = serde_json::from_str::<Task>(&text)
                && let Ok(id) = task.job_id.parse::<JobId>()
            {
                tasks.insert(id, task);
            }
        }
        if !tasks.is_empty() {
            tracing::info!("worker resumes {} jobs", tasks.len());
        }
        let node = pool.node().clone();
        let script = p2pkh(&key.public_key().pubkey_hash());
        let (generated_tx, generated_rx) = mpsc::unbounded_channel();
        Ok(Self {
            pool,
            node,
            engine,
            key,
            script,
            config,
            dir,
            tasks,
            sought: HashMap::new(),
            generating: HashSet::new(),
            short_of_coins: false,
            generated_tx,
            generated_rx: Some(generated_rx),
        })
    }

    fn save(&self, id: &JobId) {
        let Some(task) = self.tasks.get(id) else {
            return;
        };
        let path = self.dir.join(format!("{id}.json"));
        let tmp = path.with_extension("tmp");
        let ok = serde_json::to_vec_pretty(task)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = ok {
            tracing::error!("cannot save the state of job {id}: {e}");
        }
    }

    /// Runs until `shutdown`, then releases the jobs it was assigned but has not committed.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut events = self.pool.subscribe();
        let mut last_announce = None::<tokio::time::Instant>;
        let Some(mut generated) = self.generated_rx.take() else {
            return;
        };
        loop {
            if last_announce.is_none_or(|t| t.elapsed() >= self.config.announce_every) {
                self.announce().await;
                last_announce = Some(tokio::time::Instant::now());
            }
            self.step().await;
            let done = tokio::select! {
                _ = events.recv() => None,
                d = generated.recv() => d,
                _ = tokio::time::sleep(Duration::from_millis(500)) => None,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            if let Some((id, p, stake, out)) = done {
                self.generating.remove(&id);
                let r = match out {
                    Ok(g) => self.commit_generated(&p, stake, g).await,
                    Err(e) => Err(format!("generation failed: {e}")),
                };
                if let Err(e) = r {
                    tracing::warn!("job {id}: {e}");
                }
            }
        }
        let open: Vec<JobId> = self
            .tasks
            .iter()
            .filter(|(_, t)| matches!(t.phase, Phase::Bid | Phase::Staked))
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            let assigned = self
                .pool
                .view(&id)
                .and_then(|v| v.job.assign)
                .is_some_and(|a| a.worker == self.key.public_key());
            if assigned {
                let mut r = Release {
                    job_id: id,
                    worker: self.key.public_key(),
                    reason: "worker shutting down".into(),
                    sig: Vec::new(),
                };
                r.sign(&self.key);
                let _ = self.pool.publish(&JobMessage::Release(r)).await;
                tracing::info!("released job {id} at shutdown");
            }
        }
    }

    async fn announce(&self) {
        let mut a = Announce {
            worker: self.key.public_key(),
            peer: self.config.peer.as_bytes().to_vec(),
            verifier: true,
            time: now(),
            models: vec![ModelOffer {
                model: self.engine.model_id(),
                name: self.config.model_name.clone(),
                price_per_token: self.config.min_price_per_token,
                max_tokens: self.config.max_tokens,
            }],
            sig: Vec::new(),
        };
        a.sign(&self.key);
        if let Err(e) = self.pool.publish(&JobMessage::Announce(a)).await {
            tracing::debug!("announcement not taken: {e}");
        }
    }

    fn active(&self) -> usize {
        self.tasks
            .values()
            .filter(|t| matches!(t.phase, Phase::Bid | Phase::Staked))
            .count()
    }

    /// Whether its coins (confirmed, or its own change) cover one more stake and its fee.
    fn can_stake(&self, p: &JobParams) -> bool {
        let have =
            Amount::checked_sum(self.coins().iter().map(|(_, o)| o.value)).unwrap_or(Amount::MAX);
        let need = self
            .stake_for(p)
            .checked_add(self.fee())
            .unwrap_or(Amount::MAX);
        have >= need
    }

    async fn step(&mut self) {
        let pool = self.pool.clone();
        let views = match tokio::task::spawn_blocking(move || pool.views()).await {
            Ok(v) => v,
            Err(_) => return,
        };
        let mut present = HashSet::new();
        for v in views {
            let id = v.job.offer.params.job_id();
            // An unassigned job this worker bid on may have been assigned while it was down.
            if v.job.assign.is_none()
                && self.tasks.get(&id).is_some_and(|t| t.phase == Phase::Bid)
                && self.restarted_since(&id)
            {
                continue;
            }
            present.insert(id);
            if !self.tasks.contains_key(&id) {
                self.consider(&v).await;
                continue;
            }
            if let Err(e) = self.advance(&id, &v).await {
                tracing::warn!("job {id}: {e}");
            }
        }
        self.seek(&present).await;
    }

    /// Whether this job's task was loaded from disk and has not been looked for since.
    fn restarted_since(&self, id: &JobId) -> bool {
        self.tasks.get(id).is_some_and(|t| !t.messages.is_empty()) && !self.sought.contains_key(id)
    }

    /// Puts back the jobs this worker is a party to that the pool lacks (after a restart, or
    /// once pruned while a stake is still locked), from its own records and then from peers.
    async fn seek(&mut self, present: &HashSet<JobId>) {
        let lost: Vec<JobId> = self
            .tasks
            .iter()
            .filter(|(id, t)| t.phase != Phase::Done && !present.contains(id))
            .filter(|(id, _)| {
                self.sought
                    .get(id)
                    .is_none_or(|t| t.elapsed() >= SEEK_EVERY)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.sought.insert(id, Instant::now());
            let Some(task) = self.tasks.get(&id) else {
                continue;
            };
            let mut mine: Vec<Vec<u8>> = task
                .messages
                .iter()
                .filter_map(|m| from_hex(m).ok())
                .collect();
            mine.extend(task.commit.as_deref().and_then(|c| from_hex(c).ok()));
            for m in &mine {
                if let Err(e) = self.pool.submit(m) {
                    tracing::debug!("job {id}: stored message not taken: {e}");
                }
            }
            if self.pool.fetch(&id).await {
                tracing::info!("job {id} is back in the pool; resuming it");
            } else {
                tracing::debug!("job {id} is in no peer's pool yet");
            }
        }
    }

    /// Bids on an offer its policy accepts.
    async fn consider(&mut self, v: &JobView) {
        let p = &v.job.offer.params;
        if v.state != JobState::Created
            || v.record.is_none()
            || v.job.assign.is_some()
            || p.model != self.engine.model_id()
            || p.max_tokens > self.config.max_tokens
            || p.reward.to_base()
                < self
                    .config
                    .min_price_per_token
                    .saturating_mul(u64::from(p.max_tokens))
            || self.active() >= self.config.max_jobs
        {
            return;
        }
        if !self.can_stake(p) {
            // Said once per shortage, not at every step.
            if !self.short_of_coins {
                tracing::warn!(
                    "not bidding: the worker's coins do not cover a stake of {} and the fee; fund its address",
                    self.stake_for(p)
                );
            }
            self.short_of_coins = true;
            return;
        }
        self.short_of_coins = false;
        let id = p.job_id();
        let mut bid = Bid {
            job_id: id,
            worker: self.key.public_key(),
            peer: self.config.peer.as_bytes().to_vec(),
            stake: self.stake_for(p),
            time: now(),
            sig: Vec::new(),
        };
        bid.sign(&self.key);
        match self.pool.publish(&JobMessage::Bid(bid)).await {
            Ok(()) => {
                tracing::info!("bid on job {id}");
                let mut task = Task::new(&id);
                task.messages = vec![to_hex(&JobMessage::Offer(v.job.offer.clone()).to_bytes())];
                self.tasks.insert(id, task);
                self.sought.insert(id, Instant::now());
                self.save(&id);
            }
            Err(e) => tracing::debug!("bid on {id} not taken: {e}"),
        }
    }

    fn stake_for(&self, p: &JobParams) -> Amount {
        p.min_stake.max(self.config.stake)
    }

    /// Spendable coins of the worker's key: confirmed and mature, or its own unconfirmed
    /// change, less what the mempool already spends.
    fn coins(&self) -> Vec<(OutPoint, TxOut)> {
        let tip = self.node.chain().height();
        let maturity = self.node.params().coinbase_maturity;
        let mut out: Vec<(OutPoint, TxOut)> = match self.node.indexed_snapshot(INDEX_WAIT) {
            Ok(s) => s
                .coins_of_script(&self.script, 1_000)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, c)| {
                    !c.is_coinbase || tip.saturating_add(1) >= c.height.saturating_add(maturity)
                })
                .map(|(op, c)| (op, c.output))
                .collect(),
            Err(_) => Vec::new(),
        };
        let pool = self.node.mempool();
        for e in pool.entries() {
            for (i, o) in e.tx.outputs.iter().enumerate() {
                if o.script_pubkey == self.script {
                    out.push((OutPoint::new(e.txid, i as u32), o.clone()));
                }
            }
        }
        out.retain(|(op, _)| pool.spender(op).is_none());
        out.sort_by_key(|(_, o)| std::cmp::Reverse(o.value));
        out.dedup_by_key(|(op, _)| *op);
        out
    }

    fn submit(&self, tx: &Transaction) -> Result<(), String> {
        match self.node.submit_tx(tx.clone()) {
            Ok(_) => {
                self.node.announce(Announcement::Tx(tx.clone()));
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn fee(&self) -> Amount {
        Amount::from_base(self.config.fee).unwrap_or(Amount::ZERO)
    }

    async fn advance(&mut self, id: &JobId, v: &JobView) -> Result<(), String> {
        let me = self.key.public_key();
        let phase = self.tasks.get(id).map(|t| t.phase).unwrap_or(Phase::Done);
        let p = v.job.offer.params.clone();
        let tip = v.tip;
        match phase {
            Phase::Bid => {
                let Some(assign) = &v.job.assign else {
                    if v.state.is_final() {
                        self.finish(id);
                    }
                    return Ok(());
                };
                if assign.worker != me {
                    self.finish(id);
                    return Ok(());
                }
                let prompt = assign
                    .prompt
                    .open(&self.key, Purpose::Prompt, id)
                    .map_err(|e| format!("the assignment's prompt: {e}"))?;
                p.check_prompt(&prompt)
                    .map_err(|e| format!("prompt: {e}"))?;
                let record = v.record.as_ref().ok_or("the job is not on chain")?;
                let params = self.node.params().clone();
                let window_end = record.dispute_end(tip.saturating_add(1), &params).max(
                    p.timelock
                        .saturating_add(claim_depth(&params))
                        .saturating_add(params.dispute_window),
                );
                let stake_out = TxOut {
                    value: self.stake_for(&p),
                    script_pubkey: Stake {
                        job_id: *id,
                        worker: me,
                        client: p.client,
                        window_end_height: window_end,
                    }
                    .script_pubkey(),
                };
                let coins = self.coins();
                let tx = funded_tx(
                    vec![],
                    vec![stake_out],
                    &coins,
                    &self.key,
                    self.script.clone(),
                    self.fee(),
                    *id,
                    0,
                )
                .map_err(|e| format!("cannot fund the stake: {e}"))?;
                // Remember before acting: a restart must not stake twice.
                if let Some(t) = self.tasks.get_mut(id) {
                    t.messages.truncate(1);
                    t.messages
                        .push(to_hex(&JobMessage::Assign(assign.clone()).to_bytes()));
                    t.prompt = Some(to_hex(&prompt));
                    t.stake_tx = Some(to_hex(&encode_to_vec(&tx)));
                    t.stake_window_end = window_end;
                    t.phase = Phase::Staked;
                }
                self.save(id);
                self.submit(&tx)?;
                tracing::info!("staked on job {id} ({})", tx.txid());
            }
            Phase::Staked => {
                let task = self.tasks.get(id).cloned().ok_or("no task")?;
                let stake_tx: Transaction = decode_hex(&task.stake_tx).ok_or("no stake tx")?;
                let stake = OutPoint::new(stake_tx.txid(), 0);
                let record = v.record.as_ref().ok_or("the job is not on chain")?;
                if record.stake != Some(stake) {
                    if v.state.is_final() {
                        self.finish(id);
                    } else if self.node.mempool().get(&stake_tx.txid()).is_none() {
                        // Dropped (a reorg, a restart before it was relayed): offer it again.
                        let _ = self.submit(&stake_tx);
                    }
                    return Ok(());
                }
                if v.state.is_final() {
                    // Expired before it was generated: nothing to commit; the stake comes back.
                    return self.reclaim(id, v);
                }
                if self.generating.contains(id) {
                    return Ok(());
                }
                let prompt = from_hex(task.prompt.as_deref().unwrap_or_default())
                    .map_err(|e| e.to_string())?;
                self.start_generation(&p, prompt, stake);
            }
            Phase::Committed => {
                let task = self.tasks.get(id).cloned().ok_or("no task")?;
                let commit: Commit = match decode_hex::<JobMessage>(&task.commit) {
                    Some(JobMessage::Commit(c)) => c,
                    _ => return Err("no commit stored".into()),
                };
                if v.job.commit.is_none() {
                    let _ = self.pool.publish(&JobMessage::Commit(commit.clone())).await;
                }
                if matches!(v.state, JobState::Disputed | JobState::Expired) {
                    self.reclaim(id, v)?;
                    return Ok(());
                }
                if self.config.cheat == Some(Cheat::NoReveal) {
                    return Ok(());
                }
                let key: [u8; 32] = from_hex(task.key.as_deref().unwrap_or_default())
                    .ok()
                    .and_then(|k| k.try_into().ok())
                    .ok_or("no delivery key")?;
                self.claim(id, v, &key, &p)?;
            }
            Phase::Claimed => self.reclaim(id, v)?,
            Phase::Done => {}
        }
        Ok(())
    }

    /// Generates on a blocking thread, so that the executor goes on staking, claiming and
    /// bidding meanwhile; the output comes back through `generated` (the engine runs one pass
    /// at a time: generations and verification requests queue on it).
    fn start_generation(&mut self, p: &JobParams, prompt: Vec<u8>, stake: OutPoint) {
        let id = p.job_id();
        self.generating.insert(id);
        let engine = self.engine.clone();
        let params = p.clone();
        let cheat = self.config.cheat;
        let done = self.generated_tx.clone();
        tokio::task::spawn_blocking(move || {
            let out = engine.with(|e, cfg| {
                let prompt = prompt_tokens(e, &params, &prompt).map_err(|e| e.to_string())?;
                let g = e
                    .generate(cfg, &prompt, &spec(&params), |_, _| {})
                    .map_err(|e| e.to_string())?;
                let mut tokens = g.tokens;
                if cheat == Some(Cheat::Substitute) && !tokens.is_empty() {
                    // Change the middle token to another ordinary one: the text stays that of
                    // the tokens, so only a check of the inference can tell.
                    let i = tokens.len() / 2;
                    let mut t = (tokens[i] + 1) % e.n_vocab();
                    while e.is_eog(t) {
                        t = (t + 1) % e.n_vocab();
                    }
                    tokens[i] = t;
                }
                let text = text_of(e, &tokens);
                Ok::<_, String>(Generated { tokens, text })
            });
            let _ = done.send((id, params, stake, out));
        });
    }

    /// Seals, signs, records and publishes the commitment to a generated output.
    async fn commit_generated(
        &mut self,
        p: &JobParams,
        stake: OutPoint,
        out: Generated,
    ) -> Result<(), String> {
        let id = p.job_id();
        // Still staked on this job (not released, not expired meanwhile)?
        if self.tasks.get(&id).is_none_or(|t| t.phase != Phase::Staked) {
            return Ok(());
        }
        let Generated { tokens, text } = out;
        let cheat = self.config.cheat;
        let mut key = [0u8; 32];
        secp256k1::rand::RngCore::fill_bytes(&mut secp256k1::rand::rng(), &mut key);
        let delivery = Delivery {
            tokens: tokens.clone(),
            text: text.clone(),
        };
        let ciphertext = if cheat == Some(Cheat::GarbageDelivery) {
            let mut g = vec![0u8; 64];
            secp256k1::rand::RngCore::fill_bytes(&mut secp256k1::rand::rng(), &mut g);
            g
        } else {
            seal_delivery(&key, &id, &delivery).map_err(|e| e.to_string())?
        };
        let mut commitment = Commitment {
            job_id: id,
            worker: self.key.public_key(),
            stake,
            output_hash: camel_core::job::output::output_hash(&tokens),
            output_len: u32::try_from(tokens.len()).unwrap_or(u32::MAX),
            text_hash: sha256(&text),
            key_hash: sha256(&key),
            ciphertext_hash: sha256(&ciphertext),
            reward: self.key.public_key().pubkey_hash(),
            sig: Vec::new(),
        };
        let _ = COMMITMENT_VERSION;
        commitment.sign(&self.key);
        let sealed = Sealed::seal_random(
            &mut secp256k1::rand::rng(),
            &p.client,
            Purpose::Delivery,
            &id,
            &ciphertext,
        )
        .map_err(|e| e.to_string())?;
        let commit = Commit {
            commitment,
            delivery: sealed,
        };
        // Remember before publishing: a restart must deliver this output, not another.
        if let Some(t) = self.tasks.get_mut(&id) {
            t.key = Some(to_hex(&key));
            t.commit = Some(to_hex(&JobMessage::Commit(commit.clone()).to_bytes()));
            t.phase = Phase::Committed;
        }
        self.save(&id);
        self.pool
            .publish(&JobMessage::Commit(commit.clone()))
            .await
            .map_err(|e| format!("commit not taken: {e}"))?;
        tracing::info!(
            "committed job {id}: {} tokens",
            commit.commitment.output_len
        );
        Ok(())
    }

    /// Claims the job's payment once it is deep enough and pays what the job promised.
    fn claim(
        &mut self,
        id: &JobId,
        v: &JobView,
        key: &[u8; 32],
        p: &JobParams,
    ) -> Result<(), String> {
        let Some(record) = &v.record else {
            return Ok(());
        };
        let Some(paid) = record.paid_height else {
            return Ok(());
        };
        let params = self.node.params().clone();
        let tip = v.tip;
        if tip.saturating_add(1).saturating_sub(paid) < claim_depth(&params) {
            return Ok(());
        }
        let me = self.key.public_key();
        let snap = self.node.store().snapshot().map_err(|e| e.to_string())?;
        let mut spends = Vec::new();
        let mut claimed = Amount::ZERO;
        for op in &record.payments {
            let Some(coin) = snap.try_coin(op).map_err(|e| e.to_string())? else {
                continue;
            };
            let Some(Template::Payment(pay)) = templates::classify_job(&coin.output.script_pubkey)
            else {
                continue;
            };
            // Reveal the key only for a payment that pays what the job promised, to this
            // worker, on this key, with time to mine the claim.
            if pay.worker != me
                || pay.key_hash != Payment::key_hash_of(key)
                || coin.output.value < p.reward
                || pay.timeout_height <= tip.saturating_add(claim_depth(&params))
            {
                tracing::warn!(
                    "job {id}: payment {}:{} is not acceptable; not claiming it",
                    op.txid,
                    op.vout
                );
                continue;
            }
            claimed = claimed
                .checked_add(coin.output.value)
                .unwrap_or(Amount::MAX);
            spends.push(Spend {
                outpoint: *op,
                output: coin.output,
                unlock: Unlock::Claim(self.key, *key),
            });
        }
        if spends.is_empty() {
            return Ok(());
        }
        let window_end = record
            .dispute_end(tip.saturating_add(1), &params)
            .saturating_add(claim_depth(&params).saturating_mul(3));
        let lock = TxOut {
            value: claimed,
            script_pubkey: Stake {
                job_id: *id,
                worker: me,
                client: p.client,
                window_end_height: window_end,
            }
            .script_pubkey(),
        };
        let coins = self.coins();
        let tx = funded_tx(
            spends,
            vec![lock],
            &coins,
            &self.key,
            self.script.clone(),
            self.fee(),
            *id,
            0,
        )
        .map_err(|e| format!("cannot fund the claim: {e}"))?;
        self.submit(&tx)?;
        if let Some(t) = self.tasks.get_mut(id) {
            t.claim_tx = Some(to_hex(&encode_to_vec(&tx)));
            t.claim_window_end = window_end;
            t.phase = Phase::Claimed;
        }
        self.save(id);
        tracing::info!("claimed job {id} ({claimed})");
        Ok(())
    }

    /// Takes back the acceptance stake and the claimed payment once the rules allow.
    fn reclaim(&mut self, id: &JobId, v: &JobView) -> Result<(), String> {
        let Some(task) = self.tasks.get(id).cloned() else {
            return Ok(());
        };
        let Some(record) = &v.record else {
            return Ok(());
        };
        let h = v.tip.saturating_add(1);
        if h < record.reclaimable_from() {
            return Ok(());
        }
        let snap = self.node.store().snapshot().map_err(|e| e.to_string())?;
        let mut outs: Vec<(OutPoint, u32)> = Vec::new();
        if let Some(tx) = decode_hex::<Transaction>(&task.stake_tx) {
            outs.push((OutPoint::new(tx.txid(), 0), task.stake_window_end));
        }
        if let Some(tx) = decode_hex::<Transaction>(&task.claim_tx) {
            outs.push((OutPoint::new(tx.txid(), 0), task.claim_window_end));
        }
        let mut pending = false;
        let mut spends = Vec::new();
        let mut lock_time = 0;
        for (op, end) in outs {
            if self.node.mempool().spender(&op).is_some() {
                pending = true;
                continue;
            }
            let Some(coin) = snap.try_coin(&op).map_err(|e| e.to_string())? else {
                continue;
            };
            if h < end {
                pending = true;
                continue;
            }
            lock_time = lock_time.max(end).max(h);
            spends.push(Spend {
                outpoint: op,
                output: coin.output,
                unlock: Unlock::Reclaim(self.key),
            });
        }
        if spends.is_empty() {
            if !pending {
                self.finish(id);
            }
            return Ok(());
        }
        let total =
            Amount::checked_sum(spends.iter().map(|s| s.output.value)).unwrap_or(Amount::ZERO);
        let back = total
            .checked_sub(self.fee())
            .ok_or("the stake does not cover the fee")?;
        let tx = signed_tx(
            &spends,
            vec![TxOut {
                value: back,
                script_pubkey: self.script.clone(),
            }],
            JobId::ZERO,
            lock_time.min(h),
        )
        .map_err(|e| e.to_string())?;
        self.submit(&tx)?;
        tracing::info!("reclaimed {back} of job {id}");
        Ok(())
    }

    fn finish(&mut self, id: &JobId) {
        if let Some(t) = self.tasks.get_mut(id)
            && t.phase != Phase::Done
        {
            t.phase = Phase::Done;
            self.save(id);
        }
    }
}
