//! The off-chain job pool (`docs/protocol.md` §13.5, §13.6): the job messages a node has
//! checked, per job, with the state derived from them, the chain's job record and the tip.
//!
//! It is the node's [`JobHandler`]: gossiped messages are checked here before the network
//! relays them, and a failure that is the sender's fault scores the sender down. Local
//! parties (the worker's executor, the wallet over the API) submit through
//! [`JobPool::publish`], which checks the same way and then gossips.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use camel_core::hash::{Hash256, JobId};
use camel_core::job::message::{
    Announce, Assign, Bid, Commit, JobMessage, Offer, Release, decode_job_answer, encode_job_answer,
};
use camel_core::job::rules::JobRecord;
use camel_core::keys::PublicKey;
use camel_core::templates::{self, Payment, Template};
use camel_core::transaction::{OutPoint, Transaction};
use camel_p2p::{JobAcceptance, JobFault, JobHandler, NetworkHandle, PeerId};
use tokio::sync::broadcast;

use crate::node::{Node, NodeError};

/// Most jobs the pool keeps.
pub const MAX_JOBS: usize = 10_000;
/// Most message bytes the pool keeps.
pub const MAX_POOL_BYTES: usize = 64 << 20;
/// Most worker announcements kept.
pub const MAX_ANNOUNCEMENTS: usize = 1_000;
/// How long an announcement is kept, seconds.
pub const ANNOUNCE_TTL: u64 = 600;
/// Most bids kept per job.
pub const MAX_BIDS: usize = 16;
/// How far a message's `time` may be from the node's clock, seconds.
pub const MAX_CLOCK_SKEW: u64 = 2 * 60 * 60;
/// Blocks a final job is kept after it became final.
pub const PRUNE_AFTER: u32 = 100;
/// Verifications (API and peers together) running or queued at once.
pub const MAX_VERIFY_QUEUE: usize = 4;
/// Most peers asked for one job by [`JobPool::fetch`].
pub const MAX_FETCH_PEERS: usize = 8;

/// A job's state (§13.6). The last three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Created,
    Accepted,
    Committed,
    Paid,
    Settled,
    Disputed,
    Expired,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Settled | Self::Disputed | Self::Expired)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Accepted => "accepted",
            Self::Committed => "committed",
            Self::Paid => "paid",
            Self::Settled => "settled",
            Self::Disputed => "disputed",
            Self::Expired => "expired",
        }
    }
}

/// Why the pool refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The sender's fault: malformed, tampered, mis-addressed, replayed.
    #[error("{0}")]
    Invalid(String),
    /// Not taken, nobody's fault: unknown or finished job, an older version, a duplicate.
    #[error("{0}")]
    Ignored(String),
}

fn invalid(why: impl ToString) -> PoolError {
    PoolError::Invalid(why.to_string())
}

fn ignored(why: impl ToString) -> PoolError {
    PoolError::Ignored(why.to_string())
}

/// One job as the pool keeps it.
#[derive(Debug, Clone)]
pub struct PooledJob {
    pub offer: Offer,
    pub escrow: OutPoint,
    pub bids: Vec<Bid>,
    pub assign: Option<Assign>,
    pub commit: Option<Commit>,
    pub releases: Vec<Release>,
    /// Hashes of the messages taken, to drop duplicates.
    seen: HashSet<Hash256>,
    bytes: usize,
    /// Arrival order, for eviction.
    arrival: u64,
    /// The tip height at which the job was first seen final.
    final_since: Option<u32>,
}

/// A job with what the chain says about it: what the API shows and the executors act on.
#[derive(Debug, Clone)]
pub struct JobView {
    pub job: PooledJob,
    pub record: Option<JobRecord>,
    pub state: JobState,
    pub tip: u32,
    /// The delivery key, once a claim revealed it (mempool or chain).
    pub revealed_key: Option<[u8; 32]>,
    /// The transaction that revealed it: its stake outputs hold the claimed payment.
    pub claim: Option<Transaction>,
}

#[derive(Debug, Default)]
struct State {
    jobs: HashMap<JobId, PooledJob>,
    announces: HashMap<PublicKey, Announce>,
    bytes: usize,
    arrivals: u64,
}

/// Answers verification requests (`Verify` requests from peers, `POST /verify` locally):
/// implemented by a node holding models. Blocking: it runs on a blocking thread.
pub trait VerifyService: Send + Sync + 'static {
    fn verify(&self, payload: &[u8]) -> Result<Vec<u8>, JobFault>;
}

/// The node's job pool.
pub struct JobPool {
    node: Arc<Node>,
    state: Mutex<State>,
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
    network: Mutex<Option<NetworkHandle>>,
    verifier: Mutex<Option<Arc<dyn VerifyService>>>,
    /// Verifications running or waiting for the engine; more are refused as busy.
    verify_slots: Arc<tokio::sync::Semaphore>,
    events: broadcast::Sender<Arc<JobMessage>>,
}

impl std::fmt::Debug for JobPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobPool").finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The delivery key a claim of a payment of `job` in `tx` reveals.
pub fn claimed_key(tx: &Transaction, job: &JobId) -> Option<[u8; 32]> {
    if tx.job_id != *job {
        return None;
    }
    tx.inputs
        .iter()
        .find_map(|i| Payment::revealed_key(&i.script_sig))
}

impl JobPool {
    pub fn new(node: Arc<Node>) -> Self {
        Self::with_clock(node, Box::new(unix_now))
    }

    /// A pool reading the time from `clock` (unix seconds): tests move it.
    pub fn with_clock(node: Arc<Node>, clock: Box<dyn Fn() -> u64 + Send + Sync>) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            node,
            state: Mutex::new(State::default()),
            clock,
            network: Mutex::new(None),
            verifier: Mutex::new(None),
            verify_slots: Arc::new(tokio::sync::Semaphore::new(MAX_VERIFY_QUEUE)),
            events,
        }
    }

    /// A place in the verification queue, if one is free: each verification costs a model
    /// pass, so the API and peers together may queue at most [`MAX_VERIFY_QUEUE`].
    pub fn verify_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.verify_slots.clone().try_acquire_owned().ok()
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The network the pool gossips local messages on.
    pub fn set_network(&self, handle: NetworkHandle) {
        *self.network.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
    }

    pub fn network(&self) -> Option<NetworkHandle> {
        self.network
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The service answering verification requests (a node holding models).
    pub fn set_verifier(&self, v: Arc<dyn VerifyService>) {
        *self.verifier.lock().unwrap_or_else(PoisonError::into_inner) = Some(v);
    }

    pub fn verifier(&self) -> Option<Arc<dyn VerifyService>> {
        self.verifier
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every message the pool takes, as it takes it.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<JobMessage>> {
        self.events.subscribe()
    }

    /// Checks and stores a message from a peer or a local party. `Ok(true)`: new, to be
    /// relayed; `Ok(false)`: a request answered, nothing to relay.
    pub fn submit(&self, bytes: &[u8]) -> Result<JobMessage, PoolError> {
        let msg = JobMessage::from_bytes(bytes).map_err(invalid)?;
        msg.check().map_err(invalid)?;
        let id = Hash256::hash(bytes);
        let now = (self.clock)();
        let tip = self.node.chain().height();
        match &msg {
            JobMessage::Offer(o) => self.take_offer(o, id, bytes.len(), tip)?,
            JobMessage::Announce(a) => {
                check_time(a.time, now)?;
                let mut st = self.state();
                if let Some(old) = st.announces.get(&a.worker)
                    && old.time >= a.time
                {
                    return Err(ignored("not newer than the stored announcement"));
                }
                st.announces
                    .retain(|_, a| a.time.saturating_add(ANNOUNCE_TTL) > now);
                if st.announces.len() >= MAX_ANNOUNCEMENTS && !st.announces.contains_key(&a.worker)
                {
                    let oldest = st
                        .announces
                        .values()
                        .min_by_key(|a| a.time)
                        .map(|a| a.worker);
                    if let Some(w) = oldest {
                        st.announces.remove(&w);
                    }
                }
                st.announces.insert(a.worker, a.clone());
            }
            JobMessage::Bid(b) => {
                check_time(b.time, now)?;
                self.with_open_job(&b.job_id, id, bytes.len(), |job| {
                    if job.bids.iter().any(|x| x.worker == b.worker) {
                        return Err(ignored("this worker already bid"));
                    }
                    if job.bids.len() >= MAX_BIDS {
                        return Err(ignored("enough bids for this job"));
                    }
                    job.bids.push(b.clone());
                    Ok(())
                })?;
            }
            JobMessage::Assign(a) => self.with_open_job(&a.job_id, id, bytes.len(), |job| {
                a.verify(&job.offer.params.client).map_err(|e| {
                    invalid(format!("assignment not signed by the job's client: {e}"))
                })?;
                if let Some(old) = &job.assign
                    && old.seq >= a.seq
                {
                    return Err(ignored("an assignment with this or a higher seq is stored"));
                }
                job.assign = Some(a.clone());
                Ok(())
            })?,
            JobMessage::Commit(c) => {
                let record = self.record(&c.commitment.job_id);
                self.with_open_job(&c.commitment.job_id, id, bytes.len(), |job| {
                    let Some(assign) = &job.assign else {
                        return Err(ignored("the job is not assigned"));
                    };
                    if assign.worker != c.commitment.worker {
                        return Err(invalid("the commitment is not the assigned worker's"));
                    }
                    if let Some(stake) = record.as_ref().and_then(|r| r.stake) {
                        if stake != c.commitment.stake {
                            return Err(invalid(
                                "the commitment names another stake than the job's",
                            ));
                        }
                        // The stake must be slashable for this worker's commitment.
                        if let Some(Template::Stake(s)) = stake_template(&self.node, &stake)
                            && s.worker != c.commitment.worker
                        {
                            return Err(invalid(
                                "the job's stake names another worker than the commitment's",
                            ));
                        }
                    }
                    if job.commit.is_some() {
                        return Err(ignored("a commitment is stored already"));
                    }
                    job.commit = Some(c.clone());
                    Ok(())
                })?
            }
            JobMessage::Release(r) => self.with_open_job(&r.job_id, id, bytes.len(), |job| {
                match &job.assign {
                    Some(a) if a.worker == r.worker => {}
                    _ => return Err(invalid("release from a worker not assigned")),
                }
                job.releases.push(r.clone());
                Ok(())
            })?,
            JobMessage::GetJob(_) => return Ok(msg),
        }
        let _ = self.events.send(Arc::new(msg.clone()));
        Ok(msg)
    }

    fn take_offer(&self, o: &Offer, id: Hash256, len: usize, tip: u32) -> Result<(), PoolError> {
        let job_id = o.params.job_id();
        o.params.validate().map_err(invalid)?;
        let record = self.record(&job_id);
        // A job the chain records is taken whatever its timelock: a restarted node fetches
        // the jobs it is a party to, and their stakes and payments outlive the timelock.
        if o.params.timelock <= tip && record.is_none() {
            return Err(invalid("the job's timelock is not above the tip"));
        }
        if self.state().jobs.contains_key(&job_id) {
            return Err(ignored("the job is in the pool"));
        }
        let escrow = o.escrow().map_err(invalid)?;
        match record {
            Some(r) if r.escrow != escrow => {
                return Err(invalid("the chain's job has another escrow"));
            }
            Some(_) => {}
            None => {
                let in_pool = self.node.mempool().get(&escrow.txid).is_some();
                if !in_pool {
                    match self.node.submit_tx(o.tx.clone()) {
                        Ok(_) => self
                            .node
                            .announce(crate::node::Announcement::Tx(o.tx.clone())),
                        Err(NodeError::Mempool(e)) => {
                            let reason = e.reason().unwrap_or("storage").to_owned();
                            return Err(if reason.starts_with("bad-") {
                                invalid(format!("the job transaction is invalid: {e}"))
                            } else {
                                ignored(format!("the job transaction is not taken: {e}"))
                            });
                        }
                        Err(e) => return Err(ignored(e)),
                    }
                }
            }
        }
        let mut st = self.state();
        make_room(&mut st, len, &o.params, tip)?;
        st.arrivals = st.arrivals.saturating_add(1);
        let arrival = st.arrivals;
        st.bytes = st.bytes.saturating_add(len);
        st.jobs.insert(
            job_id,
            PooledJob {
                offer: o.clone(),
                escrow,
                bids: Vec::new(),
                assign: None,
                commit: None,
                releases: Vec::new(),
                seen: HashSet::from([id]),
                bytes: len,
                arrival,
                final_since: None,
            },
        );
        Ok(())
    }

    fn with_open_job(
        &self,
        job_id: &JobId,
        id: Hash256,
        len: usize,
        f: impl FnOnce(&mut PooledJob) -> Result<(), PoolError>,
    ) -> Result<(), PoolError> {
        let mut st = self.state();
        if st.bytes.saturating_add(len) > MAX_POOL_BYTES {
            return Err(ignored("the job pool is full"));
        }
        let job = st
            .jobs
            .get_mut(job_id)
            .ok_or_else(|| ignored("unknown job"))?;
        if job.final_since.is_some() {
            return Err(ignored("the job is final"));
        }
        if job.seen.contains(&id) {
            return Err(ignored("duplicate"));
        }
        f(job)?;
        job.seen.insert(id);
        job.bytes = job.bytes.saturating_add(len);
        st.bytes = st.bytes.saturating_add(len);
        Ok(())
    }

    fn record(&self, job_id: &JobId) -> Option<JobRecord> {
        self.node
            .store()
            .snapshot()
            .ok()
            .and_then(|s| s.try_job(job_id).ok().flatten())
    }

    /// Submits a local party's message and gossips it.
    pub async fn publish(&self, msg: &JobMessage) -> Result<(), PoolError> {
        // A GetJob is asked of one peer, never gossiped: peers score gossiped ones down.
        if matches!(msg, JobMessage::GetJob(_)) {
            return Err(invalid(
                "GetJob is a request to one peer, not a message to publish",
            ));
        }
        let bytes = msg.to_bytes();
        self.submit(&bytes)?;
        if let Some(net) = self.network()
            && let Err(e) = net.broadcast_job(bytes).await
        {
            tracing::debug!("job message not gossiped: {e}");
        }
        Ok(())
    }

    /// Asks connected peers for a job this pool lacks or holds unassigned (a restart empties
    /// the pool; a worker that was down missed its assignment) and takes what they answer,
    /// checked as gossip is. A peer whose answer carries an invalid message, or another job's,
    /// is scored down. Returns whether the pool holds the job afterwards.
    pub async fn fetch(&self, job_id: &JobId) -> bool {
        let complete = |pool: &Self| {
            pool.state()
                .jobs
                .get(job_id)
                .is_some_and(|j| j.assign.is_some())
        };
        let Some(net) = self.network() else {
            return self.state().jobs.contains_key(job_id);
        };
        let peers = net.peers().await.unwrap_or_default();
        let ask = JobMessage::GetJob(*job_id).to_bytes();
        let connected = peers
            .into_iter()
            .filter(|p| p.connected_since.is_some() && !p.banned)
            .take(MAX_FETCH_PEERS);
        for peer in connected {
            if complete(self) {
                break;
            }
            let answer = match net.request_job(peer.peer_id, ask.clone()).await {
                Ok(a) if a.is_empty() => continue,
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("GetJob {job_id} from {}: {e}", peer.peer_id);
                    continue;
                }
            };
            let fault = match decode_job_answer(&answer) {
                Err(e) => Some(format!("undecodable GetJob answer: {e}")),
                Ok(msgs) => msgs.iter().find_map(|m| {
                    match JobMessage::from_bytes(m) {
                        Ok(msg) if msg.job_id() == Some(*job_id) => {}
                        _ => return Some("a GetJob answer carries another job's message".into()),
                    }
                    match self.submit(m) {
                        Err(PoolError::Invalid(why)) => Some(format!("GetJob answer: {why}")),
                        _ => None,
                    }
                }),
            };
            if let Some(why) = fault {
                tracing::info!("peer {}: {why}", peer.peer_id);
                let _ = net.report_invalid_job(peer.peer_id, why).await;
            }
        }
        self.state().jobs.contains_key(job_id)
    }

    /// The job with its chain state.
    pub fn view(&self, job_id: &JobId) -> Option<JobView> {
        let job = self.state().jobs.get(job_id).cloned()?;
        Some(self.view_of(job))
    }

    fn view_of(&self, job: PooledJob) -> JobView {
        let job_id = job.offer.params.job_id();
        let record = self.record(&job_id);
        let tip = self.node.chain().height();
        let claim = self.claim_of(&job_id, record.as_ref());
        let revealed_key = claim.as_ref().and_then(|tx| claimed_key(tx, &job_id));
        let state = derive_state(&job, record.as_ref(), tip, revealed_key.is_some());
        JobView {
            job,
            record,
            state,
            tip,
            revealed_key,
            claim,
        }
    }

    /// Every job, newest first.
    pub fn views(&self) -> Vec<JobView> {
        let mut jobs: Vec<PooledJob> = self.state().jobs.values().cloned().collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.arrival));
        jobs.into_iter().map(|j| self.view_of(j)).collect()
    }

    /// Live announcements, by worker.
    pub fn announcements(&self) -> Vec<Announce> {
        let now = (self.clock)();
        let mut v: Vec<Announce> = self
            .state()
            .announces
            .values()
            .filter(|a| a.time.saturating_add(ANNOUNCE_TTL) > now)
            .cloned()
            .collect();
        v.sort_by_key(|a| std::cmp::Reverse(a.time));
        v
    }

    /// The key a claim of the job revealed: from a claim in the mempool, else from the block
    /// the chain records the first claim in.
    fn claim_of(&self, job_id: &JobId, record: Option<&JobRecord>) -> Option<Transaction> {
        let record = record?;
        {
            let pool = self.node.mempool();
            for p in &record.payments {
                if let Some(txid) = pool.spender(p)
                    && let Some(e) = pool.get(&txid)
                    && claimed_key(&e.tx, job_id).is_some()
                {
                    return Some(e.tx.clone());
                }
            }
        }
        let h = record.claimed_height?;
        let hash = self.node.chain().hash_at(h)?;
        let block = self.node.store().block(&hash).ok()??;
        block
            .txdata
            .into_iter()
            .find(|tx| claimed_key(tx, job_id).is_some())
    }

    /// Marks final jobs and prunes those final for [`PRUNE_AFTER`] blocks. Run on tip changes.
    pub fn maintain(&self) {
        let tip = self.node.chain().height();
        let ids: Vec<JobId> = self.state().jobs.keys().copied().collect();
        for id in ids {
            let Some(view) = self.view(&id) else { continue };
            let mut st = self.state();
            let mut freed = 0;
            if let Some(job) = st.jobs.get_mut(&id) {
                if view.state.is_final() {
                    let since = *job.final_since.get_or_insert(tip);
                    if tip >= since.saturating_add(PRUNE_AFTER) {
                        freed = job.bytes;
                    }
                } else {
                    // A reorg can undo what made a job final.
                    job.final_since = None;
                }
            }
            if freed > 0 {
                st.jobs.remove(&id);
                st.bytes = st.bytes.saturating_sub(freed);
            }
        }
    }

    /// Answers a GetJob: the offer, the latest assignment and the commitment.
    pub fn job_answer(&self, job_id: &JobId) -> Vec<u8> {
        let st = self.state();
        let mut msgs = Vec::new();
        if let Some(j) = st.jobs.get(job_id) {
            msgs.push(JobMessage::Offer(j.offer.clone()).to_bytes());
            if let Some(a) = &j.assign {
                msgs.push(JobMessage::Assign(a.clone()).to_bytes());
            }
            if let Some(c) = &j.commit {
                msgs.push(JobMessage::Commit(c.clone()).to_bytes());
            }
        }
        encode_job_answer(&msgs)
    }
}

fn check_time(time: u64, now: u64) -> Result<(), PoolError> {
    if time.abs_diff(now) > MAX_CLOCK_SKEW {
        return Err(invalid(format!(
            "message time {time} is more than {MAX_CLOCK_SKEW} s from this node's clock {now}"
        )));
    }
    Ok(())
}

/// Reward per maximum token, the eviction order of live jobs.
fn value_of(p: &camel_core::job::JobParams) -> u64 {
    p.reward.to_base() / u64::from(p.max_tokens.max(1))
}

/// Frees room for a new job of `len` bytes: the oldest final job first, else the live job
/// worth the least per token, unless that is worth no more than the newcomer.
fn make_room(
    st: &mut State,
    len: usize,
    newcomer: &camel_core::job::JobParams,
    _tip: u32,
) -> Result<(), PoolError> {
    while st.jobs.len() >= MAX_JOBS || st.bytes.saturating_add(len) > MAX_POOL_BYTES {
        let victim = st
            .jobs
            .iter()
            .filter(|(_, j)| j.final_since.is_some())
            .min_by_key(|(_, j)| j.arrival)
            .map(|(id, _)| *id)
            .or_else(|| {
                st.jobs
                    .iter()
                    .min_by_key(|(_, j)| (value_of(&j.offer.params), j.arrival))
                    .filter(|(_, j)| value_of(&j.offer.params) < value_of(newcomer))
                    .map(|(id, _)| *id)
            });
        let Some(id) = victim else {
            return Err(ignored("the job pool is full of jobs worth more"));
        };
        if let Some(j) = st.jobs.remove(&id) {
            st.bytes = st.bytes.saturating_sub(j.bytes);
        }
    }
    Ok(())
}

/// The state of a job from its messages, its chain record and the tip height `tip`.
pub fn derive_state(
    job: &PooledJob,
    record: Option<&JobRecord>,
    tip: u32,
    key_revealed: bool,
) -> JobState {
    let params = &job.offer.params;
    let Some(r) = record else {
        return if tip >= params.timelock {
            JobState::Expired
        } else {
            JobState::Created
        };
    };
    if r.disputed_height.is_some() {
        return JobState::Disputed;
    }
    if r.claimed_height.is_some() {
        return if tip >= r.claims_end.unwrap_or(0) {
            JobState::Settled
        } else {
            JobState::Paid
        };
    }
    if r.paid_height.is_some() {
        let timeout = r.claimable_until.unwrap_or(u32::MAX);
        return if tip >= timeout && !key_revealed {
            JobState::Expired
        } else {
            JobState::Paid
        };
    }
    if tip >= params.timelock {
        return JobState::Expired;
    }
    match (&r.stake, &job.commit) {
        (Some(s), Some(c)) if c.commitment.stake == *s => JobState::Committed,
        (Some(_), _) => JobState::Accepted,
        (None, _) => JobState::Created,
    }
}

/// The template of an unspent coin, if `node` knows it.
fn stake_template(node: &Node, op: &OutPoint) -> Option<Template> {
    let snap = node.store().snapshot().ok()?;
    let coin = snap.try_coin(op).ok()??;
    templates::classify_job(&coin.output.script_pubkey)
}

/// The stake output (value) a job's acceptance holds, if its coin is known to `node`.
pub fn acceptance_value(node: &Node, record: &JobRecord) -> Option<camel_core::Amount> {
    let stake = record.stake?;
    let snap = node.store().snapshot().ok()?;
    let coin = snap.try_coin(&stake).ok()??;
    match templates::classify_job(&coin.output.script_pubkey) {
        Some(Template::Stake(_)) => Some(coin.output.value),
        _ => None,
    }
}

impl JobHandler for JobPool {
    fn on_gossip(&self, from: PeerId, payload: &[u8]) -> Result<JobAcceptance, JobFault> {
        match self.submit(payload) {
            Ok(JobMessage::GetJob(_)) => {
                Err(JobFault::Invalid("GetJob is a request, not gossip".into()))
            }
            // An old job's offer (taken because the chain records it) is kept, not relayed:
            // nobody needs it spread again, and relaying would let anyone replay old offers.
            Ok(JobMessage::Offer(o)) if o.params.timelock <= self.node.chain().height() => {
                Ok(JobAcceptance::Ignore)
            }
            Ok(_) => Ok(JobAcceptance::Accept),
            Err(PoolError::Ignored(why)) => {
                tracing::debug!("job message from {from} not taken: {why}");
                Ok(JobAcceptance::Ignore)
            }
            Err(PoolError::Invalid(why)) => {
                tracing::info!("invalid job message from {from}: {why}");
                Err(JobFault::Invalid(why))
            }
        }
    }

    async fn on_job_request(&self, from: PeerId, payload: Vec<u8>) -> Result<Vec<u8>, JobFault> {
        match self.submit(&payload) {
            Ok(JobMessage::GetJob(id)) => Ok(self.job_answer(&id)),
            Ok(_) | Err(PoolError::Ignored(_)) => Ok(Vec::new()),
            Err(PoolError::Invalid(why)) => {
                tracing::info!("invalid job request from {from}: {why}");
                Err(JobFault::Invalid(why))
            }
        }
    }

    async fn on_verify_request(
        &self,
        _from: PeerId,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, JobFault> {
        let Some(v) = self.verifier() else {
            return Err(JobFault::Unsupported("this node verifies nothing".into()));
        };
        // Busy is nobody's fault: the asker tries another verifier.
        let Some(slot) = self.verify_slot() else {
            return Err(JobFault::Internal(
                "the verifier is busy; ask another".into(),
            ));
        };
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            v.verify(&payload)
        })
        .await
        .map_err(|e| JobFault::Internal(e.to_string()))?
    }
}
