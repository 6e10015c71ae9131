//! The network task: runs the swarm, routes gossip and requests to the chain, the sync and
//! the job handler, scores peers, and answers the node through a [`NetworkHandle`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance, PublishError};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, identify, identity, kad, ping};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use camel_core::BlockHash;
use camel_core::block::Block;
use camel_core::encode::Encodable;
use camel_core::params::Params;
use camel_core::transaction::Transaction;

use crate::chain::{BlockOutcome, ChainAccess, JobAcceptance, JobFault, JobHandler, TxOutcome};
use crate::identity::{self as keys, KeyError};
use crate::message::{
    BLOCKS_RESPONSE_BUDGET, ErrorCode, GossipMessage, MAX_HEADERS, MAX_JOB_PAYLOAD,
    MAX_PEER_RECORDS, PeerRecord, Request, Response, Status, WireError,
};
use crate::rate::{RateClass, RateLimiter, RateLimits};
use crate::score::{Misbehaviour, PeerBook, PeerInfo, ScoreAction, ScoreConfig};
use crate::sync::{Sync, SyncConfig, SyncProgress};
use crate::wire::{self, Behaviour, BehaviourEvent, BuildError, Frame, Protocols, WireConfig};

/// Where the node's network key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `dir/p2p_key`, created on first start: the peer id survives restarts.
    DataDir(PathBuf),
    /// A fresh key for this run only (tests, throwaway nodes).
    Ephemeral,
    /// This key.
    Given(identity::Keypair),
}

/// Everything the network needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub params: Params,
    pub key: KeySource,
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/9733`.
    pub listen: Vec<Multiaddr>,
    /// Peers to join through (`--bootstrap`); a `/p2p/<peer id>` suffix is optional.
    pub bootstrap: Vec<Multiaddr>,
    /// Stop dialing discovered peers once this many are connected.
    pub target_peers: usize,
    /// Whether to look for peers (Kademlia, dialing peers learned from the routing table and
    /// from `Peers` answers). Off, the node runs no Kademlia and connects only to
    /// `bootstrap` and to what it is told to dial, like bitcoind's `-connect`.
    pub discovery: bool,
    pub wire: WireConfig,
    pub score: ScoreConfig,
    pub rates: RateLimits,
    pub sync: SyncConfig,
    /// Housekeeping period: score decay, ban expiry, status refresh and discovery checks.
    pub tick: Duration,
    /// How often each peer is asked for its status.
    pub status_interval: Duration,
    /// How often a Kademlia lookup for our own id runs while below `target_peers`.
    pub discovery_interval: Duration,
    /// Reported ping failures after which a peer is taken for offline and dropped. libp2p's
    /// ping reports a failure only from the second consecutive one on, so 1 means "two
    /// pings in a row went unanswered".
    pub max_ping_failures: u32,
}

impl Config {
    /// Production defaults for `params`' network. Regtest, where blocks are mined on demand
    /// (hundreds at once), allows 10,000 gossiped blocks a second per peer instead of 20.
    pub fn new(params: Params, key: KeySource) -> Self {
        let mut rates = RateLimits::default();
        if params.network == camel_core::params::Network::Regtest {
            rates.gossip_block = crate::rate::Limit::new(10_000.0, 100_000.0);
        }
        Self {
            params,
            key,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            target_peers: 16,
            discovery: true,
            wire: WireConfig::default(),
            score: ScoreConfig::default(),
            rates,
            sync: SyncConfig::default(),
            tick: Duration::from_secs(1),
            status_interval: Duration::from_secs(60),
            discovery_interval: Duration::from_secs(30),
            max_ping_failures: 1,
        }
    }

    /// Short timers for tests and local networks on loopback: one listen address on a free
    /// port of 127.0.0.1, an ephemeral key, pings every second, status every two.
    pub fn local(params: Params) -> Self {
        let mut c = Self::new(params, KeySource::Ephemeral);
        c.listen = vec![loopback_any_port()];
        c.wire.ping_interval = Duration::from_secs(1);
        c.wire.ping_timeout = Duration::from_secs(2);
        c.wire.gossip_heartbeat = Duration::from_millis(200);
        c.wire.request_timeout = Duration::from_secs(10);
        c.wire.kad_query_timeout = Duration::from_secs(5);
        c.tick = Duration::from_millis(200);
        c.status_interval = Duration::from_secs(2);
        c.discovery_interval = Duration::from_secs(1);
        c
    }
}

/// `/ip4/127.0.0.1/tcp/0`.
pub fn loopback_any_port() -> Multiaddr {
    Multiaddr::empty()
        .with(libp2p::multiaddr::Protocol::Ip4(
            std::net::Ipv4Addr::LOCALHOST,
        ))
        .with(libp2p::multiaddr::Protocol::Tcp(0))
}

/// Errors of the network layer.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("cannot dial {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    #[error("the network task has stopped")]
    Closed,
    #[error("payload of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("publish failed: {0}")]
    Publish(String),
    #[error("request to {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
    /// Sending now would exceed what `peer` accepts from this node (its limits are ours):
    /// nothing was sent, so this node is not scored down for its own clients' traffic.
    #[error("{peer} is asked more often than it accepts; retry shortly")]
    Throttled { peer: PeerId },
    #[error("{peer} refused the request ({code:?}): {text}")]
    Refused {
        peer: PeerId,
        code: ErrorCode,
        text: String,
    },
}

/// Counters for the API and for tests waiting on the network to settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkStatus {
    pub connected: usize,
    /// Peers in our gossip mesh for blocks.
    pub block_mesh: usize,
    /// Peers subscribed to the block topic.
    pub block_subscribers: usize,
    /// Peers in the Kademlia routing table.
    pub routing_table: usize,
    pub sync: SyncProgress,
}

#[derive(Debug, Clone, Copy)]
enum Topic {
    Tx,
    Block,
    Job,
}

enum Command {
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Status(oneshot::Sender<NetworkStatus>),
    Publish {
        topic: Topic,
        frame: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Request {
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, NetworkError>>,
    },
    Dial(Multiaddr, oneshot::Sender<Result<(), NetworkError>>),
    /// A peer's answer proved invalid above the network layer (e.g. a job message the pool
    /// refused as malformed).
    Report(PeerId, String),
    Shutdown,
}

/// A cheap, clonable handle on the running network.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    listen_addrs: Arc<Mutex<Vec<Multiaddr>>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Peers(_) => "Peers",
            Self::Status(_) => "Status",
            Self::Publish { .. } => "Publish",
            Self::Request { .. } => "Request",
            Self::Dial(..) => "Dial",
            Self::Report(..) => "Report",
            Self::Shutdown => "Shutdown",
        })
    }
}

impl NetworkHandle {
    /// This node's identifier on the network.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Addresses we listen on, each with our `/p2p/<peer id>` suffix (ready for
    /// `--bootstrap`).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        let addrs = self
            .listen_addrs
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        addrs
            .into_iter()
            .map(|a| a.with(libp2p::multiaddr::Protocol::P2p(self.peer_id)))
            .collect()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetworkError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetworkError::Closed)?;
        rx.await.map_err(|_| NetworkError::Closed)
    }

    /// Connected and banned peers, for the API.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetworkError> {
        self.ask(Command::Peers).await
    }

    pub async fn status(&self) -> Result<NetworkStatus, NetworkError> {
        self.ask(Command::Status).await
    }

    async fn publish(&self, topic: Topic, msg: GossipMessage) -> Result<(), NetworkError> {
        let frame = msg.to_frame();
        self.ask(|reply| Command::Publish {
            topic,
            frame,
            reply,
        })
        .await?
    }

    /// Gossips a transaction the node accepted.
    pub async fn broadcast_tx(&self, tx: &Transaction) -> Result<(), NetworkError> {
        self.publish(Topic::Tx, GossipMessage::Tx(tx.clone())).await
    }

    /// Gossips a block the node accepted (e.g. one it mined).
    pub async fn broadcast_block(&self, block: &Block) -> Result<(), NetworkError> {
        self.publish(Topic::Block, GossipMessage::Block(block.clone()))
            .await
    }

    /// Gossips a job-protocol message (at most [`MAX_JOB_PAYLOAD`] bytes).
    pub async fn broadcast_job(&self, payload: Vec<u8>) -> Result<(), NetworkError> {
        check_payload(&payload)?;
        self.publish(Topic::Job, GossipMessage::Job(payload)).await
    }

    async fn request(&self, peer: PeerId, request: Request) -> Result<Response, NetworkError> {
        self.ask(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Sends a job-exchange request and waits for the answer's payload.
    pub async fn request_job(
        &self,
        peer: PeerId,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, NetworkError> {
        match self.request(peer, Request::Job(payload)).await? {
            Response::Job(p) => Ok(p),
            Response::Error { code, text } => Err(NetworkError::Refused { peer, code, text }),
            other => Err(NetworkError::Request {
                peer,
                reason: format!("unexpected response type {:#04x}", other.type_byte()),
            }),
        }
    }

    /// Sends a verification request and waits for the verdict's payload.
    pub async fn request_verify(
        &self,
        peer: PeerId,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, NetworkError> {
        check_payload(&payload)?;
        match self.request(peer, Request::Verify(payload)).await? {
            Response::Verdict(p) => Ok(p),
            Response::Error { code, text } => Err(NetworkError::Refused { peer, code, text }),
            other => Err(NetworkError::Request {
                peer,
                reason: format!("unexpected response type {:#04x}", other.type_byte()),
            }),
        }
    }

    /// Dials an address (the connection is reported through `peers`).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Dial(addr, reply)).await?
    }

    /// Scores `peer` down for an invalid job answer that only the node could judge.
    pub async fn report_invalid_job(&self, peer: PeerId, why: String) -> Result<(), NetworkError> {
        self.commands
            .send(Command::Report(peer, why))
            .await
            .map_err(|_| NetworkError::Closed)
    }
}

/// Four fifths of the limits a peer with this node's configuration applies.
fn outgoing_limits(r: &RateLimits) -> RateLimits {
    let f = |l: crate::rate::Limit| crate::rate::Limit::new(l.per_second * 0.8, l.burst * 0.8);
    RateLimits {
        job: f(r.job),
        verify: f(r.verify),
        ..r.clone()
    }
}

/// Peers refuse job payloads over the limit as malformed: never send one.
fn check_payload(payload: &[u8]) -> Result<(), NetworkError> {
    if payload.len() > MAX_JOB_PAYLOAD {
        return Err(NetworkError::TooLarge {
            len: payload.len(),
            max: MAX_JOB_PAYLOAD,
        });
    }
    Ok(())
}

/// The running network: a handle and the task.
#[derive(Debug)]
pub struct Network {
    handle: NetworkHandle,
    task: tokio::task::JoinHandle<()>,
}

impl Network {
    /// Builds the swarm, binds the listen addresses (waiting until each is bound), dials the
    /// bootstrap peers and spawns the network task on the current tokio runtime.
    pub async fn start<C: ChainAccess, J: JobHandler>(
        config: Config,
        chain: Arc<C>,
        jobs: Arc<J>,
    ) -> Result<Self, NetworkError> {
        let key = match &config.key {
            KeySource::DataDir(dir) => keys::load_or_create(dir)?,
            KeySource::Ephemeral => identity::Keypair::generate_ed25519(),
            KeySource::Given(k) => k.clone(),
        };
        let peer_id = key.public().to_peer_id();
        let mut wire_config = config.wire.clone();
        wire_config.kademlia &= config.discovery;
        let mut swarm = wire::build_swarm(key, &config.params, &wire_config)?;
        let protocols = Protocols::new(&config.params);
        for topic in [
            &protocols.tx_topic,
            &protocols.block_topic,
            &protocols.job_topic,
        ] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(topic)
                .map_err(|e| BuildError::Gossipsub(e.to_string()))?;
        }
        let mut bound = Vec::new();
        for addr in &config.listen {
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|e| NetworkError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            // Wait for this listener's first address (the port the OS chose).
            let deadline = tokio::time::sleep(Duration::from_secs(10));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    ev = swarm.select_next_some() => match ev {
                        SwarmEvent::NewListenAddr { listener_id, address } if listener_id == id => {
                            bound.push(address);
                            break;
                        }
                        SwarmEvent::ListenerError { error, .. } | SwarmEvent::ListenerClosed { reason: Err(error), .. } => {
                            return Err(NetworkError::Listen { addr: addr.clone(), reason: error.to_string() });
                        }
                        _ => {}
                    },
                    _ = &mut deadline => {
                        return Err(NetworkError::Listen { addr: addr.clone(), reason: "no address after 10 s".into() });
                    }
                }
            }
        }
        for addr in &config.bootstrap {
            dial_addr(&mut swarm, addr)?;
        }
        let listen_addrs = Arc::new(Mutex::new(bound));
        let (commands, command_rx) = mpsc::channel(256);
        let (job_tx, job_rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let service = Service {
            local: peer_id,
            swarm,
            chain,
            jobs,
            protocols,
            book: PeerBook::new(config.score.clone()),
            limiter: RateLimiter::new(config.rates.clone()),
            outgoing: RateLimiter::new(outgoing_limits(&config.rates)),
            sync: Sync::new(config.sync.clone()),
            pending: HashMap::new(),
            job_tasks: JoinSet::new(),
            job_tx,
            listen_addrs: listen_addrs.clone(),
            kad_bootstrapped: false,
            last_status: now,
            last_discovery: now,
            config,
        };
        let task = tokio::spawn(service.run(command_rx, job_rx));
        Ok(Self {
            handle: NetworkHandle {
                commands,
                peer_id,
                listen_addrs,
            },
            task,
        })
    }

    pub fn handle(&self) -> NetworkHandle {
        self.handle.clone()
    }

    /// Stops the network task (closing every connection and aborting job-handler tasks)
    /// and waits for it to end.
    pub async fn shutdown(self) {
        let _ = self.handle.commands.send(Command::Shutdown).await;
        let _ = self.task.await;
    }
}

fn dial_addr(swarm: &mut Swarm<Behaviour>, addr: &Multiaddr) -> Result<(), NetworkError> {
    swarm.dial(addr.clone()).map_err(|e| NetworkError::Dial {
        addr: addr.clone(),
        reason: e.to_string(),
    })
}

/// Runs a chain call (validation, store reads and writes) so that, on a multi-thread runtime,
/// the worker thread's other tasks move elsewhere while it blocks (`block_in_place`).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Most job and verification requests answered at once (over all peers); more are refused
/// as busy, without penalty.
const MAX_JOB_TASKS: usize = 256;

/// What an outstanding outbound request was for.
#[derive(Debug)]
enum Pending {
    Status,
    Headers { max: u16 },
    Blocks(Vec<BlockHash>),
    Peers,
    User(oneshot::Sender<Result<Response, NetworkError>>),
}

type JobResult = (PeerId, ResponseChannel<Frame>, Result<Response, JobFault>);

struct Service<C, J> {
    local: PeerId,
    swarm: Swarm<Behaviour>,
    chain: Arc<C>,
    jobs: Arc<J>,
    protocols: Protocols,
    book: PeerBook,
    limiter: RateLimiter,
    /// What this node sends each peer on behalf of local parties, below [`Self::limiter`]'s.
    outgoing: RateLimiter,
    sync: Sync,
    pending: HashMap<OutboundRequestId, Pending>,
    job_tasks: JoinSet<()>,
    job_tx: mpsc::UnboundedSender<JobResult>,
    listen_addrs: Arc<Mutex<Vec<Multiaddr>>>,
    kad_bootstrapped: bool,
    last_status: Instant,
    last_discovery: Instant,
    config: Config,
}

impl<C: ChainAccess, J: JobHandler> Service<C, J> {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut job_results: mpsc::UnboundedReceiver<JobResult>,
    ) {
        let mut tick = tokio::time::interval(self.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                cmd = commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(c) => self.on_command(c),
                },
                Some((peer, channel, result)) = job_results.recv() => self.on_job_result(peer, channel, result),
                Some(_) = self.job_tasks.join_next(), if !self.job_tasks.is_empty() => {}
                _ = tick.tick() => self.on_tick(),
            }
            self.drive_sync();
        }
        self.job_tasks.shutdown().await;
        for peer in self.book.connected().copied().collect::<Vec<_>>() {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        tracing::debug!(peer = %self.local, "network task stopped");
    }

    // ---- commands ----

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Peers(reply) => {
                let _ = reply.send(self.book.list(Instant::now()));
            }
            Command::Status(reply) => {
                let b = self.swarm.behaviour_mut();
                let hash = self.protocols.block_topic.hash();
                let status = NetworkStatus {
                    connected: self.book.connected().count(),
                    block_mesh: b.gossipsub.mesh_peers(&hash).count(),
                    block_subscribers: b
                        .gossipsub
                        .all_peers()
                        .filter(|(_, topics)| topics.contains(&&hash))
                        .count(),
                    routing_table: b
                        .kad
                        .as_mut()
                        .map_or(0, |k| k.kbuckets().map(|b| b.num_entries()).sum()),
                    sync: self.sync.progress(),
                };
                let _ = reply.send(status);
            }
            Command::Publish {
                topic,
                frame,
                reply,
            } => {
                let topic = match topic {
                    Topic::Tx => self.protocols.tx_topic.hash(),
                    Topic::Block => self.protocols.block_topic.hash(),
                    Topic::Job => self.protocols.job_topic.hash(),
                };
                let r = match self.swarm.behaviour_mut().gossipsub.publish(topic, frame) {
                    Ok(_) | Err(PublishError::Duplicate) => Ok(()),
                    Err(e) => Err(NetworkError::Publish(e.to_string())),
                };
                let _ = reply.send(r);
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                // Requests on behalf of local parties (job exchange, verification) stay under
                // the limits peers apply, so that relaying many clients never gets this node
                // banned as a flooder.
                let class = match &request {
                    Request::Job(_) => Some(RateClass::Job),
                    Request::Verify(_) => Some(RateClass::Verify),
                    _ => None,
                };
                if let Some(class) = class
                    && !self.outgoing.allow(peer, class, 1.0, Instant::now())
                {
                    let _ = reply.send(Err(NetworkError::Throttled { peer }));
                    return;
                }
                self.send(peer, &request, Pending::User(reply))
            }
            Command::Dial(addr, reply) => {
                let _ = reply.send(dial_addr(&mut self.swarm, &addr));
            }
            Command::Report(peer, why) => {
                self.penalise(peer, Misbehaviour::InvalidJob, &why);
            }
            Command::Shutdown => {}
        }
    }

    // ---- housekeeping ----

    fn on_tick(&mut self) {
        let now = Instant::now();
        for peer in self.book.tick(now) {
            let b = self.swarm.behaviour_mut();
            b.blocked.unblock_peer(peer);
            b.gossipsub.remove_blacklisted_peer(&peer);
            tracing::info!(%peer, "ban expired");
        }
        if now.duration_since(self.last_status) >= self.config.status_interval {
            self.last_status = now;
            let peers: Vec<PeerId> = self.book.connected().copied().collect();
            for peer in peers {
                self.send_status(peer);
            }
        }
        let connected = self.book.connected().count();
        if self.config.discovery
            && now.duration_since(self.last_discovery) >= self.config.discovery_interval
            && connected < self.config.target_peers
        {
            self.last_discovery = now;
            if connected == 0 {
                for addr in self.config.bootstrap.clone() {
                    let _ = dial_addr(&mut self.swarm, &addr);
                }
            }
            let local = self.local;
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                kad.get_closest_peers(local);
            }
        }
    }

    fn drive_sync(&mut self) {
        let now = Instant::now();
        for (peer, req) in self.sync.poll(&*self.chain, now) {
            let pending = match &req {
                Request::GetHeaders { max, .. } => Pending::Headers { max: *max },
                Request::GetBlocks(h) => Pending::Blocks(h.clone()),
                _ => Pending::Status,
            };
            self.send(peer, &req, pending);
        }
    }

    fn send(&mut self, peer: PeerId, req: &Request, pending: Pending) {
        let id = self
            .swarm
            .behaviour_mut()
            .reqresp
            .send_request(&peer, Frame::Bytes(req.to_frame()));
        self.pending.insert(id, pending);
    }

    fn our_status(&self) -> Status {
        let tip = self.chain.tip();
        Status {
            genesis: self.chain.genesis(),
            tip: tip.hash,
            height: tip.height,
            work: tip.work,
        }
    }

    fn send_status(&mut self, peer: PeerId) {
        let s = self.our_status();
        self.send(peer, &Request::Status(s), Pending::Status);
    }

    fn penalise(&mut self, peer: PeerId, what: Misbehaviour, why: &str) {
        let action = self.book.report(peer, what, Instant::now());
        tracing::info!(%peer, ?what, ?action, why, "peer penalised");
        self.enforce(peer, action);
    }

    fn enforce(&mut self, peer: PeerId, action: ScoreAction) {
        match action {
            ScoreAction::None => {}
            ScoreAction::Disconnect => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            ScoreAction::Ban => {
                let b = self.swarm.behaviour_mut();
                b.blocked.block_peer(peer);
                b.gossipsub.blacklist_peer(&peer);
                if let Some(kad) = b.kad.as_mut() {
                    kad.remove_peer(&peer);
                }
                let _ = self.swarm.disconnect_peer_id(peer);
                self.sync.remove_peer(&peer);
            }
        }
    }

    fn maybe_dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if !self.config.discovery
            || peer == self.local
            || addrs.is_empty()
            || self.book.is_banned(&peer)
            || self.swarm.is_connected(&peer)
            || self.book.connected().count() >= self.config.target_peers
        {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        let _ = self.swarm.dial(opts);
    }

    // ---- swarm events ----

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                if let Ok(mut a) = self.listen_addrs.lock()
                    && !a.contains(&address)
                {
                    a.push(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                if let Ok(mut a) = self.listen_addrs.lock() {
                    a.retain(|x| x != &address);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if num_established.get() != 1 {
                    return;
                }
                let addr = endpoint
                    .is_dialer()
                    .then(|| endpoint.get_remote_address().clone());
                let action = self.book.on_connected(peer_id, addr, Instant::now());
                if action != ScoreAction::None {
                    self.enforce(peer_id, action);
                    return;
                }
                self.sync.add_peer(peer_id, Instant::now());
                self.send_status(peer_id);
                self.send(peer_id, &Request::GetPeers, Pending::Peers);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.book.on_disconnected(peer_id);
                self.sync.remove_peer(&peer_id);
                self.limiter.remove_peer(&peer_id);
            }
            SwarmEvent::Behaviour(ev) => self.on_behaviour_event(ev),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocol_version != self.protocols.identify {
                    tracing::debug!(peer = %peer_id, version = info.protocol_version, "other network");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                let addrs: Vec<Multiaddr> = info.listen_addrs.into_iter().take(8).collect();
                self.book
                    .set_listen_addrs(peer_id, addrs.clone(), Instant::now());
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    for a in addrs {
                        kad.add_address(&peer_id, a);
                    }
                    if !self.kad_bootstrapped {
                        self.kad_bootstrapped = kad.bootstrap().is_ok();
                    }
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) => self.maybe_dial(peer, addresses.into_vec()),
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::GetClosestPeers(Ok(ok)),
                ..
            }) => {
                for p in ok.peers {
                    self.maybe_dial(p.peer_id, p.addrs);
                }
            }
            BehaviourEvent::Ping(ping::Event { peer, result, .. }) => {
                let now = Instant::now();
                match result {
                    Ok(_) => self.book.ping_ok(peer, now),
                    Err(e) => {
                        let failures = self.book.ping_failed(peer, now);
                        if failures >= self.config.max_ping_failures {
                            tracing::info!(%peer, %e, failures, "peer stopped answering pings: dropped");
                            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                                kad.remove_peer(&peer);
                            }
                            let _ = self.swarm.disconnect_peer_id(peer);
                        }
                    }
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let acceptance = self.on_gossip(propagation_source, &message);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            BehaviourEvent::Reqresp(ev) => self.on_reqresp(ev),
            _ => {}
        }
    }

    // ---- gossip ----

    fn on_gossip(&mut self, from: PeerId, message: &gossipsub::Message) -> MessageAcceptance {
        let topic = if message.topic == self.protocols.tx_topic.hash() {
            Topic::Tx
        } else if message.topic == self.protocols.block_topic.hash() {
            Topic::Block
        } else if message.topic == self.protocols.job_topic.hash() {
            Topic::Job
        } else {
            return MessageAcceptance::Ignore;
        };
        let class = match topic {
            Topic::Tx => RateClass::GossipTx,
            Topic::Block => RateClass::GossipBlock,
            Topic::Job => RateClass::GossipJob,
        };
        if !self.limiter.allow(from, class, 1.0, Instant::now()) {
            self.penalise(from, Misbehaviour::Flooding, "gossip over the rate limit");
            return MessageAcceptance::Ignore;
        }
        let msg = match GossipMessage::from_frame(&message.data) {
            Ok(m) => m,
            Err(e) => return self.wire_error(from, &e),
        };
        match (topic, msg) {
            (Topic::Tx, GossipMessage::Tx(tx)) => match blocking(|| self.chain.submit_tx(tx)) {
                Ok(TxOutcome::Accepted) => MessageAcceptance::Accept,
                Ok(TxOutcome::AlreadyHave | TxOutcome::Ignored) => MessageAcceptance::Ignore,
                Err(f) => {
                    self.penalise(from, f.misbehaviour(), &f.to_string());
                    MessageAcceptance::Reject
                }
            },
            (Topic::Block, GossipMessage::Block(block)) => {
                match blocking(|| self.chain.submit_block(block)) {
                    Ok(BlockOutcome::NewTip | BlockOutcome::Stored) => MessageAcceptance::Accept,
                    Ok(BlockOutcome::AlreadyHave | BlockOutcome::Ignored) => {
                        MessageAcceptance::Ignore
                    }
                    Ok(BlockOutcome::Orphan) => {
                        self.sync.on_orphan(from, Instant::now());
                        MessageAcceptance::Ignore
                    }
                    Err(f) => {
                        self.penalise(from, f.misbehaviour(), &f.to_string());
                        MessageAcceptance::Reject
                    }
                }
            }
            (Topic::Job, GossipMessage::Job(payload)) => {
                match self.jobs.on_gossip(from, &payload) {
                    Ok(JobAcceptance::Accept) => MessageAcceptance::Accept,
                    Ok(JobAcceptance::Ignore) => MessageAcceptance::Ignore,
                    Err(JobFault::Invalid(why)) => {
                        self.penalise(from, Misbehaviour::InvalidJob, &why);
                        MessageAcceptance::Reject
                    }
                    Err(_) => MessageAcceptance::Ignore,
                }
            }
            (_, m) => {
                self.penalise(
                    from,
                    Misbehaviour::WrongType,
                    &format!("message type {:#04x} on the wrong topic", m.type_byte()),
                );
                MessageAcceptance::Reject
            }
        }
    }

    /// Scores a frame that did not decode; a newer envelope version is ignored.
    fn wire_error(&mut self, from: PeerId, e: &WireError) -> MessageAcceptance {
        let what = match e {
            WireError::UnsupportedVersion(_) => return MessageAcceptance::Ignore,
            WireError::UnknownType(_) => Misbehaviour::WrongType,
            WireError::Oversize { .. } => Misbehaviour::Oversize,
            WireError::Empty | WireError::Malformed(_) => Misbehaviour::Malformed,
        };
        self.penalise(from, what, &e.to_string());
        MessageAcceptance::Reject
    }

    // ---- request-response ----

    fn on_reqresp(&mut self, ev: request_response::Event<Frame, Frame>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_request(peer, &request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.on_response(peer, request_id, &response),
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(p) = self.pending.remove(&request_id) {
                    self.fail_pending(peer, p, error.to_string());
                }
            }
            request_response::Event::InboundFailure { .. }
            | request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn respond(&mut self, channel: ResponseChannel<Frame>, resp: &Response) {
        let _ = self
            .swarm
            .behaviour_mut()
            .reqresp
            .send_response(channel, Frame::Bytes(resp.to_frame()));
    }

    fn on_request(&mut self, peer: PeerId, frame: &Frame, channel: ResponseChannel<Frame>) {
        let frame = match frame {
            Frame::Bytes(b) => b,
            Frame::TooLarge { max } => {
                // No answer: the stream is dropped.
                self.penalise(
                    peer,
                    Misbehaviour::Oversize,
                    &format!("request over the {max}-byte frame limit"),
                );
                return;
            }
        };
        let req = match Request::from_frame(frame) {
            Ok(r) => r,
            Err(e) => {
                let code = match e {
                    WireError::UnsupportedVersion(_) => ErrorCode::Unsupported,
                    _ => ErrorCode::BadRequest,
                };
                self.wire_error(peer, &e);
                if self.swarm.is_connected(&peer) {
                    self.respond(channel, &Response::error(code, e.to_string()));
                }
                return;
            }
        };
        let (class, cost) = match &req {
            Request::Status(_) => (RateClass::Status, 1.0),
            Request::GetHeaders { .. } => (RateClass::Headers, 1.0),
            Request::GetBlocks(h) => (RateClass::Blocks, h.len().max(1) as f64),
            Request::GetPeers => (RateClass::Peers, 1.0),
            Request::Job(_) => (RateClass::Job, 1.0),
            Request::Verify(_) => (RateClass::Verify, 1.0),
        };
        if !self.limiter.allow(peer, class, cost, Instant::now()) {
            self.penalise(peer, Misbehaviour::Flooding, "request over the rate limit");
            if self.swarm.is_connected(&peer) {
                self.respond(
                    channel,
                    &Response::error(ErrorCode::RateLimited, format!("{class:?} rate limit")),
                );
            }
            return;
        }
        if matches!(req, Request::Job(_) | Request::Verify(_))
            && self.job_tasks.len() >= MAX_JOB_TASKS
        {
            self.respond(
                channel,
                &Response::error(
                    ErrorCode::Internal,
                    "busy: too many job requests in progress",
                ),
            );
            return;
        }
        let resp = match req {
            Request::Status(s) => {
                self.on_status(peer, s);
                Response::Status(self.our_status())
            }
            Request::GetHeaders { locator, stop, max } => {
                let stop = (!stop.is_zero()).then_some(stop);
                let max = usize::from(max).min(MAX_HEADERS);
                Response::Headers(blocking(|| self.chain.headers_after(&locator, stop, max)))
            }
            Request::GetBlocks(hashes) => blocking(|| {
                let mut blocks = Vec::new();
                let mut size = 0usize;
                for h in hashes {
                    if let Some(b) = self.chain.block(&h) {
                        let len = b.encoded_len();
                        if !blocks.is_empty() && size.saturating_add(len) > BLOCKS_RESPONSE_BUDGET {
                            break;
                        }
                        size = size.saturating_add(len);
                        blocks.push(b);
                    }
                }
                Response::Blocks(blocks)
            }),
            Request::GetPeers => {
                let records: Vec<PeerRecord> = self
                    .book
                    .connected()
                    .filter(|p| **p != peer)
                    .map(|p| PeerRecord {
                        peer_id: *p,
                        addrs: self.book.addrs(p),
                    })
                    .filter(|r| !r.addrs.is_empty())
                    .take(MAX_PEER_RECORDS)
                    .collect();
                Response::Peers(records)
            }
            Request::Job(payload) => {
                let (jobs, tx) = (self.jobs.clone(), self.job_tx.clone());
                self.job_tasks.spawn(async move {
                    let r = jobs.on_job_request(peer, payload).await.map(Response::Job);
                    let _ = tx.send((peer, channel, r));
                });
                return;
            }
            Request::Verify(payload) => {
                let (jobs, tx) = (self.jobs.clone(), self.job_tx.clone());
                self.job_tasks.spawn(async move {
                    let r = jobs
                        .on_verify_request(peer, payload)
                        .await
                        .map(Response::Verdict);
                    let _ = tx.send((peer, channel, r));
                });
                return;
            }
        };
        self.respond(channel, &resp);
    }

    fn on_job_result(
        &mut self,
        peer: PeerId,
        channel: ResponseChannel<Frame>,
        result: Result<Response, JobFault>,
    ) {
        let resp = match result {
            Ok(Response::Job(p) | Response::Verdict(p)) if p.len() > MAX_JOB_PAYLOAD => {
                tracing::warn!(
                    len = p.len(),
                    "job handler's answer is over the payload limit"
                );
                Response::error(ErrorCode::Internal, "answer over the payload limit")
            }
            Ok(r) => r,
            Err(JobFault::Invalid(why)) => {
                self.penalise(peer, Misbehaviour::InvalidJob, &why);
                Response::error(ErrorCode::BadRequest, why)
            }
            Err(JobFault::Unsupported(why)) => Response::error(ErrorCode::Unsupported, why),
            Err(JobFault::Internal(why)) => Response::error(ErrorCode::Internal, why),
        };
        self.respond(channel, &resp);
    }

    fn on_status(&mut self, peer: PeerId, s: Status) {
        if s.genesis != self.chain.genesis() {
            tracing::info!(%peer, genesis = %s.genesis, "peer is on another chain: disconnected");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        let now = Instant::now();
        self.book.set_status(peer, s, now);
        self.sync.on_status(peer, s, now);
    }

    fn on_response(&mut self, peer: PeerId, id: OutboundRequestId, frame: &Frame) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        let frame = match frame {
            Frame::Bytes(b) => b,
            Frame::TooLarge { max } => {
                self.penalise(
                    peer,
                    Misbehaviour::Oversize,
                    &format!("response over the {max}-byte frame limit"),
                );
                self.fail_pending(peer, pending, "oversize response".into());
                return;
            }
        };
        let resp = match Response::from_frame(frame) {
            Ok(r) => r,
            Err(e) => {
                self.wire_error(peer, &e);
                self.fail_pending(peer, pending, e.to_string());
                return;
            }
        };
        match (pending, resp) {
            (
                Pending::User(reply),
                r @ (Response::Job(_) | Response::Verdict(_) | Response::Error { .. }),
            ) => {
                let _ = reply.send(Ok(r));
            }
            (p, Response::Error { code, text }) => {
                tracing::debug!(%peer, ?code, text, "request refused");
                self.fail_pending(peer, p, text);
            }
            (Pending::Status, Response::Status(s)) => self.on_status(peer, s),
            (Pending::Headers { max }, Response::Headers(h)) => {
                if let Err(m) = blocking(|| self.sync.on_headers(&*self.chain, peer, max, &h)) {
                    self.penalise(peer, m, "headers response");
                }
            }
            (Pending::Blocks(requested), Response::Blocks(blocks)) => {
                let faults =
                    blocking(|| self.sync.on_blocks(&*self.chain, peer, &requested, blocks));
                for m in faults {
                    self.penalise(peer, m, "blocks response");
                }
            }
            (Pending::Peers, Response::Peers(records)) => {
                for r in records {
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        for a in &r.addrs {
                            kad.add_address(&r.peer_id, a.clone());
                        }
                    }
                    self.maybe_dial(r.peer_id, r.addrs);
                }
            }
            (p, r) => {
                self.penalise(
                    peer,
                    Misbehaviour::WrongType,
                    &format!(
                        "response type {:#04x} does not answer the request",
                        r.type_byte()
                    ),
                );
                self.fail_pending(peer, p, "wrong response type".into());
            }
        }
    }

    fn fail_pending(&mut self, peer: PeerId, pending: Pending, reason: String) {
        match pending {
            Pending::Headers { .. } => self.sync.on_headers_failed(&peer),
            Pending::Blocks(requested) => self.sync.on_blocks_failed(&peer, &requested),
            Pending::User(reply) => {
                let _ = reply.send(Err(NetworkError::Request { peer, reason }));
            }
            Pending::Status | Pending::Peers => {}
        }
    }
}
