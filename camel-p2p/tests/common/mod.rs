//! Test support: an in-memory [`ChainAccess`] (a header tree, block bodies, most-work tip with
//! reorgs, a mempool without UTXO checks), a regtest miner, and helpers to start nodes.
#![allow(dead_code)]

pub mod blocks;
pub mod raw;

#[allow(unused_imports)]
pub use blocks::{mine_on, test_tx};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use camel_core::block::{Block, Header};
use camel_core::params::Params;
use camel_core::pow::{Work, check_proof_of_work};
use camel_core::transaction::Transaction;
use camel_core::validation::{
    BlockRejection, check_block, check_block_contextual, check_transaction,
};
use camel_core::{BlockHash, Txid};
use camel_p2p::message::MAX_LOCATOR;
use camel_p2p::{
    BlockOutcome, ChainAccess, ChainTip, Config, Network, NoJobs, PeerFault, TxOutcome,
};
use tokio::sync::watch;

#[derive(Debug, Clone)]
struct Entry {
    header: Header,
    height: u32,
    work: Work,
}

#[derive(Debug)]
struct Inner {
    headers: HashMap<BlockHash, Entry>,
    blocks: HashMap<BlockHash, Block>,
    /// Blocks whose whole ancestry has bodies.
    connected: HashSet<BlockHash>,
    /// Stored blocks waiting for their parent to connect, by parent.
    waiting: HashMap<BlockHash, Vec<BlockHash>>,
    best_header: BlockHash,
    tip: BlockHash,
    /// The tip's chain, by height.
    active: Vec<BlockHash>,
    mempool: HashMap<Txid, Transaction>,
}

/// An in-memory chain: what a node's chain manager does, minus the UTXO set.
#[derive(Debug)]
pub struct MemChain {
    params: Params,
    inner: Mutex<Inner>,
    height_tx: watch::Sender<u32>,
    mempool_tx: watch::Sender<usize>,
}

impl MemChain {
    pub fn new(params: Params) -> Arc<Self> {
        let genesis = params.genesis_block();
        let hash = genesis.block_hash();
        let mut headers = HashMap::new();
        headers.insert(
            hash,
            Entry {
                header: genesis.header,
                height: 0,
                work: genesis.header.work(),
            },
        );
        let mut blocks = HashMap::new();
        blocks.insert(hash, genesis);
        Arc::new(Self {
            params,
            inner: Mutex::new(Inner {
                headers,
                blocks,
                connected: HashSet::from([hash]),
                waiting: HashMap::new(),
                best_header: hash,
                tip: hash,
                active: vec![hash],
                mempool: HashMap::new(),
            }),
            height_tx: watch::channel(0).0,
            mempool_tx: watch::channel(0).0,
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn height(&self) -> u32 {
        self.tip().height
    }

    pub fn tip_hash(&self) -> BlockHash {
        self.tip().hash
    }

    pub fn has_tx(&self, txid: &Txid) -> bool {
        self.inner.lock().unwrap().mempool.contains_key(txid)
    }

    /// The block at `height` on the active chain.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.inner
            .lock()
            .unwrap()
            .active
            .get(height as usize)
            .copied()
    }

    pub fn watch_height(&self) -> watch::Receiver<u32> {
        self.height_tx.subscribe()
    }

    /// Mines a block on the tip (coinbase extra data `tag`, so two miners make different
    /// blocks) and submits it. Returns the block.
    pub fn mine(&self, tag: &[u8]) -> Block {
        let (parent, height) = {
            let i = self.inner.lock().unwrap();
            let e = &i.headers[&i.tip];
            (e.header, e.height + 1)
        };
        let block = mine_on(&self.params, &parent, height, tag, vec![]);
        let outcome = self
            .submit_block(block.clone())
            .expect("mined block is valid");
        assert_eq!(outcome, BlockOutcome::NewTip);
        block
    }

    pub fn mine_n(&self, n: u32, tag: &[u8]) {
        for _ in 0..n {
            self.mine(tag);
        }
    }

    fn locator_from(i: &Inner, mut hash: BlockHash) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut step = 1u32;
        loop {
            out.push(hash);
            let e = &i.headers[&hash];
            if e.height == 0 || out.len() + 1 >= MAX_LOCATOR {
                break;
            }
            if out.len() >= 10 {
                step = step.saturating_mul(2);
            }
            let target = e.height.saturating_sub(step);
            while i.headers[&hash].height > target {
                hash = i.headers[&hash].header.prev_blockhash;
            }
        }
        let genesis = i.active[0];
        if out.last() != Some(&genesis) {
            out.push(genesis);
        }
        out
    }

    fn add_header(&self, i: &mut Inner, h: &Header) -> Result<BlockHash, PeerFault> {
        let hash = h.block_hash();
        if i.headers.contains_key(&hash) {
            return Ok(hash);
        }
        let parent = i
            .headers
            .get(&h.prev_blockhash)
            .cloned()
            .ok_or(PeerFault::UnconnectedHeaders)?;
        check_proof_of_work(&hash, h.bits, self.params.pow_limit)
            .map_err(|e| fault(BlockRejection::Pow(e)))?;
        if h.bits != parent.header.bits {
            return Err(fault(BlockRejection::UnexpectedBits {
                expected: parent.header.bits,
                got: h.bits,
            }));
        }
        let e = Entry {
            header: *h,
            height: parent.height + 1,
            work: parent.work.saturating_add(h.work()),
        };
        if e.work > i.headers[&i.best_header].work {
            i.best_header = hash;
        }
        i.headers.insert(hash, e);
        Ok(hash)
    }

    /// Connects `hash` and every stored descendant waiting on it; moves the tip to the most
    /// work connected block, rebuilding the active chain (a reorg when it forks).
    fn connect(&self, i: &mut Inner, hash: BlockHash) -> bool {
        let mut stack = vec![hash];
        let mut best = i.tip;
        while let Some(h) = stack.pop() {
            i.connected.insert(h);
            if i.headers[&h].work > i.headers[&best].work {
                best = h;
            }
            if let Some(children) = i.waiting.remove(&h) {
                stack.extend(children);
            }
        }
        if best == i.tip {
            return false;
        }
        let mut branch = Vec::new();
        let mut h = best;
        loop {
            let height = i.headers[&h].height as usize;
            if i.active.get(height) == Some(&h) {
                i.active.truncate(height + 1);
                break;
            }
            branch.push(h);
            h = i.headers[&h].header.prev_blockhash;
        }
        i.active.extend(branch.into_iter().rev());
        i.tip = best;
        self.height_tx.send_replace(i.headers[&best].height);
        true
    }
}

impl ChainAccess for MemChain {
    fn genesis(&self) -> BlockHash {
        self.params.genesis_hash
    }

    fn tip(&self) -> ChainTip {
        let i = self.inner.lock().unwrap();
        let e = &i.headers[&i.tip];
        ChainTip {
            hash: i.tip,
            height: e.height,
            work: e.work,
        }
    }

    fn best_header_work(&self) -> Work {
        let i = self.inner.lock().unwrap();
        i.headers[&i.best_header].work
    }

    fn locator(&self) -> Vec<BlockHash> {
        let i = self.inner.lock().unwrap();
        Self::locator_from(&i, i.best_header)
    }

    fn headers_after(
        &self,
        locator: &[BlockHash],
        stop: Option<BlockHash>,
        max: usize,
    ) -> Vec<Header> {
        let i = self.inner.lock().unwrap();
        let start = locator
            .iter()
            .find_map(|h| {
                let e = i.headers.get(h)?;
                (i.active.get(e.height as usize) == Some(h)).then_some(e.height as usize + 1)
            })
            .unwrap_or(1);
        let mut out = Vec::new();
        for h in i.active.iter().skip(start).take(max) {
            out.push(i.headers[h].header);
            if Some(*h) == stop {
                break;
            }
        }
        out
    }

    fn block(&self, hash: &BlockHash) -> Option<Block> {
        self.inner.lock().unwrap().blocks.get(hash).cloned()
    }

    fn has_block(&self, hash: &BlockHash) -> bool {
        self.inner.lock().unwrap().blocks.contains_key(hash)
    }

    fn submit_headers(&self, headers: &[Header]) -> Result<usize, PeerFault> {
        let mut i = self.inner.lock().unwrap();
        let mut new = 0;
        let mut prev: Option<BlockHash> = None;
        for h in headers {
            if prev.is_some_and(|p| p != h.prev_blockhash) {
                return Err(PeerFault::UnconnectedHeaders);
            }
            let known = i.headers.contains_key(&h.block_hash());
            prev = Some(self.add_header(&mut i, h)?);
            if !known {
                new += 1;
            }
        }
        Ok(new)
    }

    fn submit_block(&self, block: Block) -> Result<BlockOutcome, PeerFault> {
        let hash = block.block_hash();
        let mut i = self.inner.lock().unwrap();
        if i.blocks.contains_key(&hash) {
            return Ok(BlockOutcome::AlreadyHave);
        }
        check_block(&block, &self.params).map_err(fault)?;
        if !i.headers.contains_key(&block.header.prev_blockhash) && !i.headers.contains_key(&hash) {
            return Ok(BlockOutcome::Orphan);
        }
        self.add_header(&mut i, &block.header)?;
        let height = i.headers[&hash].height;
        check_block_contextual(&block, height).map_err(fault)?;
        for tx in &block.txdata {
            i.mempool.remove(&tx.txid());
        }
        let parent = block.header.prev_blockhash;
        i.blocks.insert(hash, block);
        if i.connected.contains(&parent) {
            if self.connect(&mut i, hash) {
                return Ok(BlockOutcome::NewTip);
            }
        } else {
            i.waiting.entry(parent).or_default().push(hash);
        }
        Ok(BlockOutcome::Stored)
    }

    fn submit_tx(&self, tx: Transaction) -> Result<TxOutcome, PeerFault> {
        check_transaction(&tx).map_err(PeerFault::from)?;
        let mut i = self.inner.lock().unwrap();
        let txid = tx.txid();
        if i.mempool.contains_key(&txid) {
            return Ok(TxOutcome::AlreadyHave);
        }
        i.mempool.insert(txid, tx);
        self.mempool_tx.send_replace(i.mempool.len());
        Ok(TxOutcome::Accepted)
    }
}

/// The fault a rejection this test chain can produce proves (it never checks times, so every
/// rejection is one).
fn fault(r: BlockRejection) -> PeerFault {
    PeerFault::from_block_rejection(r).expect("not time-too-new")
}

pub struct TestNode {
    pub chain: Arc<MemChain>,
    pub net: Network,
}

impl TestNode {
    pub async fn start(config: Config, chain: Arc<MemChain>) -> Self {
        let net = Network::start(config, chain.clone(), Arc::new(NoJobs))
            .await
            .expect("network starts");
        Self { chain, net }
    }

    pub fn addr(&self) -> camel_p2p::Multiaddr {
        self.net.handle().listen_addrs()[0].clone()
    }
}

pub fn config(bootstrap: &[camel_p2p::Multiaddr]) -> Config {
    let mut c = Config::local(Params::regtest());
    c.bootstrap = bootstrap.to_vec();
    c
}

/// Polls `cond` every 50 ms until it holds or `secs` pass; panics with `what` on timeout.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A TCP relay on 127.0.0.1 in front of `target` that can be frozen: while frozen it keeps
/// both sockets open but moves no bytes, like a peer that hung or a path that went dark.
pub struct FreezableProxy {
    pub addr: camel_p2p::Multiaddr,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

impl FreezableProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                for (mut r, mut w, f) in [
                    (
                        Box::new(ri) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        Box::new(wo) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                        f.clone(),
                    ),
                    (Box::new(ro), Box::new(wi), f.clone()),
                ] {
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16384];
                        loop {
                            while f.load(Ordering::Relaxed) {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            let n = match r.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            while f.load(Ordering::Relaxed) {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            if w.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Self {
            addr: format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap(),
            frozen,
        }
    }

    pub fn freeze(&self) {
        self.frozen
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The TCP socket address of a `/ip4/../tcp/..` multiaddress.
pub fn socket_addr(addr: &camel_p2p::Multiaddr) -> std::net::SocketAddr {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(a),
            Protocol::Tcp(t) => port = Some(t),
            _ => {}
        }
    }
    std::net::SocketAddr::from((ip.unwrap(), port.unwrap()))
}
