//! Headers-first chain sync, sans-I/O.
//!
//! A peer whose status claims more work than our best header chain is asked for headers
//! (one headers request in flight at a time, continuing from the last header received while
//! batches come back full). The chain checks each header's proof of work and linkage; every
//! header whose block we lack joins the download queue. Blocks are then fetched in batches
//! from every peer that is ahead of our tip (or gave us the headers), several requests per
//! peer in flight, round-robin across peers, each peer paced below the rate limit the
//! serving side enforces. Blocks a peer does not have go back to the queue for another peer.
//! A block whose parent is unknown (an orphan from gossip) triggers a headers request to
//! its sender, which is how a node that was partitioned finds the fork point and reorgs.
//! When the queue runs low it is topped up from the chain's own list of blocks it lacks on
//! its best header chain ([`ChainAccess::blocks_to_fetch`]), so headers accepted before a
//! restart, or from a peer that left, still get their blocks.
//!
//! The caller (the network service) sends the returned requests and feeds back responses
//! and failures; the chain, not this module, decides which chain is best.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use camel_core::BlockHash;
use camel_core::block::{Block, Header};
use camel_core::pow::Work;
use libp2p::PeerId;

use crate::chain::ChainAccess;
use crate::message::{MAX_BLOCKS_PER_REQUEST, MAX_HEADERS, MAX_LOCATOR, Request, Status};
use crate::rate::{Limit, TokenBucket};
use crate::score::Misbehaviour;

/// Tuning of the sync.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Headers asked for per request (at most [`MAX_HEADERS`]).
    pub headers_per_request: u16,
    /// Blocks asked for per request (at most [`MAX_BLOCKS_PER_REQUEST`]).
    pub blocks_per_request: usize,
    /// Block requests in flight per peer.
    pub requests_per_peer: usize,
    /// How fast we ask one peer for blocks: below the serving side's `blocks` rate limit,
    /// so an honest syncing node is never penalised for flooding.
    pub pace: Limit,
    /// How fast we ask one peer for headers: below the serving side's `headers` limit.
    pub headers_pace: Limit,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            headers_per_request: MAX_HEADERS as u16,
            blocks_per_request: 64,
            requests_per_peer: 8,
            pace: Limit::new(8_000.0, 1_024.0),
            headers_pace: Limit::new(8.0, 16.0),
        }
    }
}

#[derive(Debug)]
struct PeerState {
    status: Option<Status>,
    block_requests: usize,
    /// The status work at which a headers sync with this peer last ran out of headers.
    headers_done_at: Option<Work>,
    /// Ask this peer for headers at the next chance (it sent an orphan, or a full batch).
    want_headers: bool,
    /// Continue a headers sync from this hash.
    continue_from: Option<BlockHash>,
    /// It gave us headers, so it has their blocks.
    served_headers: bool,
    pace: TokenBucket,
    headers_pace: TokenBucket,
}

/// Progress figures, for logs and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncProgress {
    /// Blocks waiting to be requested.
    pub queued: usize,
    /// Blocks requested and not yet answered.
    pub in_flight: usize,
    /// Whether a headers request is outstanding.
    pub headers_in_flight: bool,
}

/// The sync state machine.
#[derive(Debug)]
pub struct Sync {
    config: SyncConfig,
    peers: HashMap<PeerId, PeerState>,
    blocks: BlockQueue,
    in_flight: HashMap<BlockHash, PeerId>,
    headers_from: Option<PeerId>,
    rotation: usize,
    last_refill: Option<Instant>,
}

/// Blocks waiting to be requested, and what is known of who lacks them.
#[derive(Debug, Default)]
struct BlockQueue {
    queue: VecDeque<BlockHash>,
    queued: HashSet<BlockHash>,
    lacking: HashMap<BlockHash, HashSet<PeerId>>,
    /// Blocks no eligible peer had: not taken from the chain's list again until a peer's
    /// status or headers bring news.
    given_up: HashSet<BlockHash>,
}

/// How often the queue may be topped up from the chain.
const REFILL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

impl Sync {
    pub fn new(mut config: SyncConfig) -> Self {
        config.headers_per_request = config.headers_per_request.clamp(1, MAX_HEADERS as u16);
        config.blocks_per_request = config.blocks_per_request.clamp(1, MAX_BLOCKS_PER_REQUEST);
        config.requests_per_peer = config.requests_per_peer.max(1);
        Self {
            config,
            peers: HashMap::new(),
            blocks: BlockQueue::default(),
            in_flight: HashMap::new(),
            headers_from: None,
            rotation: 0,
            last_refill: None,
        }
    }

    pub fn progress(&self) -> SyncProgress {
        SyncProgress {
            queued: self.blocks.queue.len(),
            in_flight: self.in_flight.len(),
            headers_in_flight: self.headers_from.is_some(),
        }
    }

    pub fn add_peer(&mut self, peer: PeerId, now: Instant) {
        let (pace, headers_pace) = (self.config.pace, self.config.headers_pace);
        self.peers.entry(peer).or_insert_with(|| PeerState {
            status: None,
            block_requests: 0,
            headers_done_at: None,
            want_headers: false,
            continue_from: None,
            served_headers: false,
            pace: TokenBucket::new(pace, now),
            headers_pace: TokenBucket::new(headers_pace, now),
        });
    }

    /// Forgets a peer; its outstanding blocks go back to the queue.
    pub fn remove_peer(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
        if self.headers_from == Some(*peer) {
            self.headers_from = None;
        }
        let mine: Vec<BlockHash> = self
            .in_flight
            .iter()
            .filter(|(_, p)| *p == peer)
            .map(|(h, _)| *h)
            .collect();
        self.requeue_front(&mine);
        for set in self.blocks.lacking.values_mut() {
            set.remove(peer);
        }
    }

    pub fn on_status(&mut self, peer: PeerId, status: Status, now: Instant) {
        self.add_peer(peer, now);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.status = Some(status);
        }
        self.blocks.given_up.clear();
    }

    /// `peer` sent a block whose parent we do not know: ask it for headers.
    pub fn on_orphan(&mut self, peer: PeerId, now: Instant) {
        self.add_peer(peer, now);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.want_headers = true;
        }
    }

    /// Requests to send now.
    pub fn poll<C: ChainAccess>(&mut self, chain: &C, now: Instant) -> Vec<(PeerId, Request)> {
        let mut out = Vec::new();
        if self.headers_from.is_none()
            && let Some((peer, req)) = self.next_headers_request(chain, now)
        {
            self.headers_from = Some(peer);
            out.push((peer, req));
        }
        self.refill(chain, now);
        self.block_requests(chain, now, &mut out);
        out
    }

    /// Tops the queue up with blocks the chain lacks on its best header chain: enough for
    /// every peer's requests in flight.
    fn refill<C: ChainAccess>(&mut self, chain: &C, now: Instant) {
        let want = self
            .config
            .blocks_per_request
            .saturating_mul(self.config.requests_per_peer)
            .saturating_mul(self.peers.len().max(1));
        if self.peers.is_empty() || self.blocks.queue.len() >= want / 2 {
            return;
        }
        // The chain walks its best header chain for the list: not on every poll.
        if self
            .last_refill
            .is_some_and(|t| now.saturating_duration_since(t) < REFILL_INTERVAL)
        {
            return;
        }
        self.last_refill = Some(now);
        let max = want.saturating_add(self.in_flight.len());
        for h in chain.blocks_to_fetch(max) {
            if self.blocks.queue.len() >= want {
                break;
            }
            if self.blocks.queued.contains(&h)
                || self.in_flight.contains_key(&h)
                || self.blocks.given_up.contains(&h)
            {
                continue;
            }
            self.blocks.queued.insert(h);
            self.blocks.queue.push_back(h);
        }
    }

    fn next_headers_request<C: ChainAccess>(
        &mut self,
        chain: &C,
        now: Instant,
    ) -> Option<(PeerId, Request)> {
        let best = chain.best_header_work();
        let mut ready: Vec<PeerId> = Vec::new();
        for (id, p) in &mut self.peers {
            if p.headers_pace.wait_for(1.0, now).is_zero() {
                ready.push(*id);
            }
        }
        let pick = self
            .peers
            .iter()
            .filter(|(id, _)| ready.contains(id))
            .filter(|(_, p)| p.want_headers)
            .map(|(id, _)| *id)
            .next()
            .or_else(|| {
                self.peers
                    .iter()
                    .filter(|(id, _)| ready.contains(id))
                    .filter_map(|(id, p)| {
                        let s = p.status?;
                        (s.work > best && p.headers_done_at != Some(s.work)).then_some((id, s.work))
                    })
                    .max_by_key(|(_, w)| *w)
                    .map(|(id, _)| *id)
            })?;
        let p = self.peers.get_mut(&pick)?;
        p.want_headers = false;
        p.headers_pace.try_take(1.0, now);
        let mut locator = Vec::with_capacity(MAX_LOCATOR);
        if let Some(h) = p.continue_from.take() {
            locator.push(h);
        }
        locator.extend(chain.locator());
        locator.truncate(MAX_LOCATOR);
        Some((
            pick,
            Request::GetHeaders {
                locator,
                stop: BlockHash::ZERO,
                max: self.config.headers_per_request,
            },
        ))
    }

    fn block_requests<C: ChainAccess>(
        &mut self,
        chain: &C,
        now: Instant,
        out: &mut Vec<(PeerId, Request)>,
    ) {
        if self.blocks.queue.is_empty() {
            return;
        }
        let tip_work = chain.tip().work;
        let mut eligible: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.served_headers || p.status.is_some_and(|s| s.work > tip_work))
            .map(|(id, _)| *id)
            .collect();
        if eligible.is_empty() {
            return;
        }
        eligible.sort();
        let n = eligible.len();
        self.rotation = self.rotation.wrapping_add(1);
        let per = self.config.blocks_per_request;
        let mut progress = true;
        while progress && !self.blocks.queue.is_empty() {
            progress = false;
            for i in 0..n {
                let Some(peer) = eligible.get(self.rotation.wrapping_add(i) % n).copied() else {
                    continue;
                };
                let Some(state) = self.peers.get_mut(&peer) else {
                    continue;
                };
                if state.block_requests >= self.config.requests_per_peer
                    || state.pace.wait_for(per as f64, now) > std::time::Duration::ZERO
                {
                    continue;
                }
                let hashes = take_batch(&mut self.blocks, chain, peer, per, n);
                if hashes.is_empty() {
                    continue;
                }
                state.block_requests = state.block_requests.saturating_add(1);
                state.pace.try_take(hashes.len() as f64, now);
                for h in &hashes {
                    self.in_flight.insert(*h, peer);
                }
                out.push((peer, Request::GetBlocks(hashes)));
                progress = true;
            }
        }
    }

    /// A headers response from `peer` that asked for at most `max`.
    pub fn on_headers<C: ChainAccess>(
        &mut self,
        chain: &C,
        peer: PeerId,
        max: u16,
        headers: &[Header],
    ) -> Result<(), Misbehaviour> {
        if self.headers_from == Some(peer) {
            self.headers_from = None;
        }
        if headers.len() > usize::from(max) {
            return Err(Misbehaviour::UnrequestedData);
        }
        chain
            .submit_headers(headers)
            .map_err(|f| f.misbehaviour())?;
        let Some(state) = self.peers.get_mut(&peer) else {
            return Ok(());
        };
        if !headers.is_empty() {
            state.served_headers = true;
            self.blocks.given_up.clear();
        }
        if headers.len() == usize::from(max) && max > 0 {
            state.want_headers = true;
            state.continue_from = headers.last().map(Header::block_hash);
        } else {
            state.headers_done_at = state.status.map(|s| s.work);
        }
        for h in headers {
            let hash = h.block_hash();
            if !self.blocks.queued.contains(&hash)
                && !self.in_flight.contains_key(&hash)
                && !chain.has_block(&hash)
            {
                self.blocks.queued.insert(hash);
                self.blocks.queue.push_back(hash);
            }
        }
        Ok(())
    }

    /// The headers request to `peer` failed (timeout, closed connection, bad response).
    pub fn on_headers_failed(&mut self, peer: &PeerId) {
        if self.headers_from == Some(*peer) {
            self.headers_from = None;
        }
        if let Some(p) = self.peers.get_mut(peer) {
            // Do not ask again until its status changes.
            p.headers_done_at = p.status.map(|s| s.work);
            p.continue_from = None;
        }
    }

    /// A blocks response from `peer` to a request for `requested`. Returns the faults found
    /// (each block is submitted to the chain; blocks not asked for are dropped).
    pub fn on_blocks<C: ChainAccess>(
        &mut self,
        chain: &C,
        peer: PeerId,
        requested: &[BlockHash],
        blocks: Vec<Block>,
    ) -> Vec<Misbehaviour> {
        self.finish_request(&peer, requested);
        let wanted: HashSet<&BlockHash> = requested.iter().collect();
        let mut got = HashSet::with_capacity(blocks.len());
        let mut faults = Vec::new();
        let mut unrequested = false;
        let mut batch = Vec::with_capacity(blocks.len());
        for block in blocks {
            let hash = block.block_hash();
            if !wanted.contains(&hash) || !got.insert(hash) {
                unrequested = true;
                continue;
            }
            self.blocks.lacking.remove(&hash);
            batch.push(block);
        }
        for result in chain.submit_blocks(batch) {
            if let Err(f) = result {
                faults.push(f.misbehaviour());
            }
        }
        if unrequested {
            faults.push(Misbehaviour::UnrequestedData);
        }
        let missing: Vec<BlockHash> = requested
            .iter()
            .filter(|h| !got.contains(h))
            .copied()
            .collect();
        for h in &missing {
            self.blocks.lacking.entry(*h).or_default().insert(peer);
        }
        self.requeue_front(&missing);
        faults
    }

    /// A blocks request failed: its hashes go back to the queue.
    pub fn on_blocks_failed(&mut self, peer: &PeerId, requested: &[BlockHash]) {
        self.finish_request(peer, requested);
        self.requeue_front(requested);
    }

    fn finish_request(&mut self, peer: &PeerId, requested: &[BlockHash]) {
        for h in requested {
            if self.in_flight.get(h) == Some(peer) {
                self.in_flight.remove(h);
            }
        }
        if let Some(p) = self.peers.get_mut(peer) {
            p.block_requests = p.block_requests.saturating_sub(1);
        }
    }

    fn requeue_front(&mut self, hashes: &[BlockHash]) {
        for h in hashes.iter().rev() {
            self.in_flight.remove(h);
            if self.blocks.queued.insert(*h) {
                self.blocks.queue.push_front(*h);
            }
        }
    }
}

/// Takes up to `max` hashes from the queue that `peer` is not known to lack, dropping hashes
/// we already have and hashes every eligible peer lacks.
fn take_batch<C: ChainAccess>(
    blocks: &mut BlockQueue,
    chain: &C,
    peer: PeerId,
    max: usize,
    eligible: usize,
) -> Vec<BlockHash> {
    let mut out = Vec::with_capacity(max);
    let mut skipped = Vec::new();
    while out.len() < max {
        let Some(h) = blocks.queue.pop_front() else {
            break;
        };
        if chain.has_block(&h) {
            blocks.queued.remove(&h);
            blocks.lacking.remove(&h);
            continue;
        }
        match blocks.lacking.get(&h) {
            Some(set) if set.len() >= eligible => {
                // No one we know has it; news from a peer will queue it again.
                blocks.queued.remove(&h);
                blocks.lacking.remove(&h);
                blocks.given_up.insert(h);
            }
            Some(set) if set.contains(&peer) => skipped.push(h),
            _ => {
                blocks.queued.remove(&h);
                out.push(h);
            }
        }
        if skipped.len() > 4 * max {
            break;
        }
    }
    for h in skipped.into_iter().rev() {
        blocks.queue.push_front(h);
    }
    out
}
