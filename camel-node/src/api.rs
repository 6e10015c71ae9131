//! The node's HTTP API: JSON over HTTP, on loopback by default. See `docs/api.md` for every
//! endpoint with examples.
//!
//! Reads are open. Anything that controls the node (`POST /block`, `POST /generate`,
//! `POST /shutdown`) needs `Authorization: Bearer <token>`, the token being the content of
//! the data directory's cookie file (fresh each start, mode 0600). `POST /tx` is open: it is
//! what a wallet broadcasts with, and peers may relay the same transaction anyway; so are
//! `POST /job/message` and `POST /verify`, what a job's client sends.
//!
//! Every error is JSON, `{"error": {"code": "...", "message": "..."}}`, with status 400
//! for bad input (the code is the rejection reason for transactions and blocks), 401 for
//! a missing or wrong token, 404 for unknown objects, 409 for a job message not taken,
//! 413 for a body over the limit, 500 for storage and internal failures, 502 for a peer's
//! failed verification and 503 while shutting down or without a part the request needs.
//! `docs/api.md` lists every code.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use camel_core::block::Block;
use camel_core::encode::{Decodable, Encodable, decode_from_slice, encode_to_vec};
use camel_core::hash::{BlockHash, Txid, from_hex, to_hex};
use camel_core::params::Network;
use camel_core::transaction::Transaction;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::chain::{Accepted, ChainError};
use crate::jobpool::{JobPool, JobView, PoolError};
use crate::mempool::MempoolError;
use crate::node::{Announcement, INDEX_WAIT, Node, NodeError};
use crate::store::{IndexEntry, StoreError};

/// Most coins `/address/{addr}/utxos` lists.
pub const MAX_UTXOS_LISTED: usize = 1_000;
/// Most headers one `/headers/{from}` answer carries.
pub const MAX_HEADERS_SERVED: u32 = 2_000;
/// Most blocks one `/generate` call mines.
pub const MAX_GENERATE: u32 = 1_000;
/// Largest request body (a hex-encoded maximum-size block, with room).
const MAX_BODY: usize = 4 * camel_core::block::MAX_BLOCK_SIZE + 1024;

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct ApiState {
    pub node: Arc<Node>,
    pub token: Arc<str>,
    /// Set to `true` by `POST /shutdown`.
    pub shutdown: watch::Sender<bool>,
    /// Threads `/generate` mines with.
    pub mine_threads: usize,
    /// The peer-to-peer network, when the node runs one.
    pub network: Option<camel_p2p::NetworkHandle>,
    /// The job pool, when the node runs the job protocol.
    pub jobs: Option<Arc<JobPool>>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

/// An API error: status, code, message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl ToString) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.to_string(),
        }
    }
    fn bad(code: &str, message: impl ToString) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn not_found(message: impl ToString) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!("{e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e)
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Chain(ChainError::Invalid {
                reason, message, ..
            })
            | NodeError::Mempool(MempoolError::Rejected { reason, message }) => {
                Self::bad(&reason, message)
            }
            NodeError::Chain(ChainError::Store(e))
            | NodeError::Mempool(MempoolError::Store(e))
            | NodeError::Store(e) => e.into(),
            NodeError::Stopped => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                "the node is shutting down",
            ),
            e @ NodeError::Mining { .. } => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "mining", e)
            }
        }
    }
}

type ApiResult = Result<axum::Json<Value>, ApiError>;

fn path_error(e: PathRejection) -> ApiError {
    ApiError::bad("bad-path", e.body_text())
}

fn body_error(e: BytesRejection) -> ApiError {
    ApiError::new(e.status(), "bad-body", e.body_text())
}

/// Runs blocking node work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("request failed: {e}"),
        )
    })?
}

/// The router for `state`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/tip", get(tip))
        .route("/chainstate", get(chainstate))
        .route("/block/{id}", get(block))
        .route("/tx/{txid}", get(tx))
        .route("/tx/{txid}/proof", get(tx_proof))
        .route("/headers/{from}", get(headers))
        .route("/metrics", get(metrics))
        .route("/address/{addr}/balance", get(balance))
        .route("/address/{addr}/utxos", get(utxos))
        .route("/mempool", get(mempool))
        .route("/peers", get(peers))
        .route("/tx", post(post_tx))
        .route("/block", post(post_block))
        .route("/generate", post(generate))
        .route("/shutdown", post(shutdown))
        .route("/jobs", get(jobs))
        .route("/job/{id}", get(job))
        .route("/job/message", post(post_job_message))
        .route("/models", get(models))
        .route("/verify", post(post_verify))
        .fallback(|| async { ApiError::not_found("no such endpoint; see docs/api.md") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this endpoint takes another HTTP method; see docs/api.md",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn check_auth(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let ok = given.is_some_and(|g| {
        let (a, b) = (g.as_bytes(), state.token.as_bytes());
        // Constant time in the token's content.
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs 'Authorization: Bearer <token>' with the token from the data directory's .cookie file",
        ))
    }
}

fn entry_json(hash: &BlockHash, e: &IndexEntry, active: bool, tip_height: u32) -> Value {
    json!({
        "hash": hash.to_string(),
        "height": e.height,
        "prev": e.header.prev_blockhash.to_string(),
        "merkle_root": e.header.merkle_root.to_string(),
        "time": e.header.time,
        "bits": format!("{:08x}", e.header.bits),
        "nonce": e.header.nonce,
        "version": e.header.version,
        "chain_work": e.chain_work.to_string(),
        "in_active_chain": active,
        "confirmations": if active { tip_height.saturating_sub(e.height).saturating_add(1) } else { 0 },
        "invalid": e.is_failed(),
    })
}

async fn tip(State(s): State<ApiState>) -> ApiResult {
    let node = s.node.clone();
    blocking(move || {
        let (hash, entry) = {
            let chain = node.chain();
            (chain.tip(), chain.tip_entry())
        };
        let mempool = node.mempool();
        Ok(axum::Json(json!({
            "network": node.params().network.name(),
            "hash": hash.to_string(),
            "height": entry.height,
            "time": entry.header.time,
            "bits": format!("{:08x}", entry.header.bits),
            "chain_work": entry.chain_work.to_string(),
            "mempool": {"count": mempool.len(), "bytes": mempool.bytes()},
            "hashes_tried": node.hashes.load(std::sync::atomic::Ordering::Relaxed),
        })))
    })
    .await
}

async fn chainstate(State(s): State<ApiState>) -> ApiResult {
    let node = s.node.clone();
    blocking(move || {
        // A snapshot taken under the chain lock is in step with the tip; the scan of the
        // UTXO set then runs on the snapshot alone, without holding up blocks.
        let (snap, mut state) = {
            let chain = node.chain();
            let snap = node.store().snapshot()?;
            let state = json!({
                "hash": chain.tip().to_string(),
                "height": chain.height(),
                "orphans": chain.orphan_count(),
                "best_header": {
                    "hash": chain.best_header().to_string(),
                    "height": chain.best_header_entry().height,
                },
            });
            (snap, state)
        };
        let stats = snap.utxo_stats()?;
        state["utxo_set_hash"] = json!(stats.hash.to_string());
        state["coins"] = json!(stats.coins);
        state["total"] = json!(stats.total);
        Ok(axum::Json(state))
    })
    .await
}

async fn block(State(s): State<ApiState>, id: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(id) = id.map_err(path_error)?;
    let node = s.node.clone();
    blocking(move || {
        let chain = node.chain();
        let hash = if id.len() == 64 {
            id.parse::<BlockHash>()
                .map_err(|e| ApiError::bad("bad-hash", format!("{id:?}: {e}")))?
        } else {
            let height: u32 = id.parse().map_err(|_| {
                ApiError::bad(
                    "bad-block-id",
                    format!("{id:?} is neither a 64-hex-digit block hash nor a height"),
                )
            })?;
            chain
                .hash_at(height)
                .ok_or_else(|| ApiError::not_found(format!("no block at height {height}")))?
        };
        let entry = *chain
            .entry(&hash)
            .ok_or_else(|| ApiError::not_found(format!("block {hash} is unknown")))?;
        let mut v = entry_json(&hash, &entry, chain.is_active(&hash), chain.height());
        drop(chain);
        if let Some(bytes) = node.store().block_bytes(&hash)? {
            let block: Block = decode_from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                what: "block",
                source: e,
            })?;
            v["txids"] = block
                .txdata
                .iter()
                .map(|t| Value::String(t.txid().to_string()))
                .collect();
            v["size"] = json!(bytes.len());
            v["hex"] = json!(to_hex(&bytes));
        }
        Ok(axum::Json(v))
    })
    .await
}

fn parse_txid(txid: Result<Path<String>, PathRejection>) -> Result<Txid, ApiError> {
    let Path(txid) = txid.map_err(path_error)?;
    txid.parse()
        .map_err(|e| ApiError::bad("bad-txid", format!("{txid:?}: {e}")))
}

/// A transaction of the active chain: its block's hash, its index there (checked), the block.
fn mined_tx(
    node: &Node,
    txid: &Txid,
    missing: &str,
) -> Result<(BlockHash, usize, Block), ApiError> {
    let snapshot = node.indexed_snapshot(INDEX_WAIT)?;
    let (block_hash, pos) = snapshot
        .tx_location(txid)?
        .ok_or_else(|| ApiError::not_found(format!("transaction {txid} {missing}")))?;
    let block = node
        .store()
        .block(&block_hash)?
        .ok_or_else(|| StoreError::Missing(format!("block {block_hash}")))?;
    let index = usize::try_from(pos)
        .ok()
        .filter(|&i| i < block.txdata.len())
        .ok_or_else(|| StoreError::Missing(format!("transaction {pos} of {block_hash}")))?;
    Ok((block_hash, index, block))
}

async fn tx(State(s): State<ApiState>, txid: Result<Path<String>, PathRejection>) -> ApiResult {
    let txid = parse_txid(txid)?;
    let node = s.node.clone();
    blocking(move || {
        if let Some(e) = node.mempool().get(&txid) {
            return Ok(axum::Json(json!({
                "txid": txid.to_string(),
                "in_mempool": true,
                "fee": e.fee.to_base(),
                "size": e.size,
                "hex": to_hex(&encode_to_vec(&e.tx)),
            })));
        }
        let (block_hash, pos, block) = mined_tx(&node, &txid, "is unknown")?;
        let tx = &block.txdata[pos];
        let chain = node.chain();
        let height = chain.entry(&block_hash).map(|e| e.height).unwrap_or(0);
        Ok(axum::Json(json!({
            "txid": txid.to_string(),
            "in_mempool": false,
            "block": block_hash.to_string(),
            "height": height,
            "position": pos,
            "confirmations": chain.height().saturating_sub(height).saturating_add(1),
            "hex": to_hex(&encode_to_vec(tx)),
        })))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadersQuery {
    count: Option<u32>,
}

/// Raw 80-byte headers of the active chain from `from`, for light clients that check proof of
/// work and linkage themselves.
async fn headers(
    State(s): State<ApiState>,
    from: Result<Path<String>, PathRejection>,
    q: Result<Query<HeadersQuery>, QueryRejection>,
) -> ApiResult {
    let Path(from) = from.map_err(path_error)?;
    let from: u32 = from
        .parse()
        .map_err(|_| ApiError::bad("bad-height", format!("{from:?} is not a height")))?;
    let Query(q) = q.map_err(|e| ApiError::bad("bad-query", e.body_text()))?;
    let count = q.count.unwrap_or(MAX_HEADERS_SERVED);
    if count == 0 || count > MAX_HEADERS_SERVED {
        return Err(ApiError::bad(
            "bad-count",
            format!("count must be in 1..={MAX_HEADERS_SERVED}"),
        ));
    }
    let node = s.node.clone();
    blocking(move || {
        let chain = node.chain();
        let tip = chain.height();
        let mut out = Vec::new();
        let end = from.saturating_add(count).min(tip.saturating_add(1));
        for h in from..end {
            let Some(e) = chain.hash_at(h).and_then(|hash| chain.entry(&hash)) else {
                break;
            };
            out.push(Value::String(to_hex(&encode_to_vec(&e.header))));
        }
        Ok(axum::Json(json!({
            "from": from,
            "tip": tip,
            "tip_hash": chain.tip().to_string(),
            "headers": out,
        })))
    })
    .await
}

/// A mined transaction with the merkle branch that ties it to its block's header.
async fn tx_proof(
    State(s): State<ApiState>,
    txid: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let txid = parse_txid(txid)?;
    let node = s.node.clone();
    blocking(move || {
        let (block_hash, index, block) = mined_tx(&node, &txid, "is not in a block")?;
        let (pos, tx) = (index, &block.txdata[index]);
        let txids: Vec<Txid> = block.txdata.iter().map(Transaction::txid).collect();
        let branch = camel_core::merkle::merkle_branch(&txids, index)
            .ok_or_else(|| StoreError::Missing(format!("merkle branch {pos} of {block_hash}")))?;
        let height = node
            .chain()
            .entry(&block_hash)
            .map(|e| e.height)
            .unwrap_or(0);
        Ok(axum::Json(json!({
            "txid": txid.to_string(),
            "block": block_hash.to_string(),
            "height": height,
            "position": pos,
            "header": to_hex(&encode_to_vec(&block.header)),
            "branch": branch.iter().map(|h| to_hex(h.as_bytes())).collect::<Vec<_>>(),
            "hex": to_hex(&encode_to_vec(tx)),
        })))
    })
    .await
}

/// The node's counters in Prometheus' text format.
async fn metrics(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let node = s.node.clone();
    let jobs = s.jobs.clone();
    let network = s.network.clone();
    let peers = match &network {
        Some(n) => n.peers().await.ok().map(|p| {
            let connected = p.iter().filter(|p| p.connected_since.is_some()).count();
            let banned = p.iter().filter(|p| p.banned).count();
            (connected, banned)
        }),
        None => None,
    };
    let text = blocking(move || {
        use std::fmt::Write;
        let mut t = String::new();
        let mut metric = |name: &str, help: &str, kind: &str, samples: &[(&str, f64)]| {
            let _ = writeln!(t, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(t, "{name}{labels} {v}");
            }
        };
        let (height, header_height, orphans, time) = {
            let chain = node.chain();
            (
                chain.height(),
                chain.best_header_entry().height,
                chain.orphan_count(),
                chain.tip_entry().header.time,
            )
        };
        metric(
            "camel_chain_height",
            "Height of the active chain's tip.",
            "gauge",
            &[("", f64::from(height))],
        );
        metric(
            "camel_best_header_height",
            "Height of the best known header.",
            "gauge",
            &[("", f64::from(header_height))],
        );
        metric(
            "camel_tip_time_seconds",
            "Header time of the tip.",
            "gauge",
            &[("", f64::from(time))],
        );
        metric(
            "camel_orphan_blocks",
            "Blocks held whose parent is unknown.",
            "gauge",
            &[("", orphans as f64)],
        );
        let (count, bytes) = {
            let m = node.mempool();
            (m.len(), m.bytes())
        };
        metric(
            "camel_mempool_transactions",
            "Transactions in the mempool.",
            "gauge",
            &[("", count as f64)],
        );
        metric(
            "camel_mempool_bytes",
            "Encoded bytes of the mempool's transactions.",
            "gauge",
            &[("", bytes as f64)],
        );
        if let Some((connected, banned)) = peers {
            metric(
                "camel_peers_connected",
                "Peers with an open connection.",
                "gauge",
                &[("", connected as f64)],
            );
            metric(
                "camel_peers_banned",
                "Peers banned for misbehaviour.",
                "gauge",
                &[("", banned as f64)],
            );
        }
        if let Some(pool) = jobs {
            let views = pool.views();
            let states = [
                "created",
                "accepted",
                "committed",
                "paid",
                "settled",
                "disputed",
                "expired",
            ];
            let labels: Vec<String> = states
                .iter()
                .map(|s| format!("{{state=\"{s}\"}}"))
                .collect();
            let samples: Vec<(&str, f64)> = states
                .iter()
                .zip(&labels)
                .map(|(st, l)| {
                    let n = views.iter().filter(|v| v.state.as_str() == *st).count();
                    (l.as_str(), n as f64)
                })
                .collect();
            metric(
                "camel_jobs",
                "Jobs in the job pool, by state.",
                "gauge",
                &samples,
            );
            metric(
                "camel_workers_announced",
                "Workers with a live announcement.",
                "gauge",
                &[("", pool.announcements().len() as f64)],
            );
        }
        Ok(t)
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

fn address_script(node: &Node, addr: &str) -> Result<camel_core::script::Script, ApiError> {
    node.payout_script(addr)
        .map_err(|e| ApiError::bad("bad-address", format!("{addr:?}: {e}")))
}

async fn balance(
    State(s): State<ApiState>,
    addr: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(addr) = addr.map_err(path_error)?;
    let node = s.node.clone();
    blocking(move || {
        let script = address_script(&node, &addr)?;
        let coins = node
            .indexed_snapshot(INDEX_WAIT)?
            .coins_of_script(&script, usize::MAX)?;
        let total: u64 = coins
            .iter()
            .map(|(_, c)| c.output.value.to_base())
            .fold(0, u64::saturating_add);
        Ok(axum::Json(json!({
            "address": addr,
            "confirmed": total,
            "coins": coins.len(),
        })))
    })
    .await
}

async fn utxos(State(s): State<ApiState>, addr: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(addr) = addr.map_err(path_error)?;
    let node = s.node.clone();
    blocking(move || {
        let script = address_script(&node, &addr)?;
        let coins = node
            .indexed_snapshot(INDEX_WAIT)?
            .coins_of_script(&script, MAX_UTXOS_LISTED)?;
        let list: Vec<Value> = coins
            .iter()
            .map(|(op, c)| {
                json!({
                    "txid": op.txid.to_string(),
                    "vout": op.vout,
                    "value": c.output.value.to_base(),
                    "height": c.height,
                    "coinbase": c.is_coinbase,
                    "script_pubkey": to_hex(c.output.script_pubkey.as_bytes()),
                })
            })
            .collect();
        Ok(axum::Json(json!({
            "address": addr,
            "utxos": list,
            "truncated": coins.len() >= MAX_UTXOS_LISTED,
        })))
    })
    .await
}

async fn mempool(State(s): State<ApiState>) -> ApiResult {
    let node = s.node.clone();
    blocking(move || {
        let pool = node.mempool();
        let txs: Vec<Value> = pool
            .entries()
            .map(|e| {
                json!({
                    "txid": e.txid.to_string(),
                    "fee": e.fee.to_base(),
                    "size": e.size,
                })
            })
            .collect();
        Ok(axum::Json(json!({
            "count": pool.len(),
            "bytes": pool.bytes(),
            "min_fee_rate": pool.policy().min_fee_rate,
            "txs": txs,
        })))
    })
    .await
}

/// A body that is hex, or JSON `{"hex": "..."}`.
fn hex_body<T: Decodable>(body: &[u8], what: &str) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad("bad-body", "the body is not UTF-8 text"))?
        .trim();
    let hex = if text.starts_with('{') {
        #[derive(Deserialize)]
        struct HexBody {
            hex: String,
        }
        serde_json::from_str::<HexBody>(text)
            .map_err(|e| ApiError::bad("bad-json", format!("expected {{\"hex\": \"...\"}}: {e}")))?
            .hex
    } else {
        text.to_owned()
    };
    let bytes = from_hex(hex.trim())
        .map_err(|e| ApiError::bad("bad-hex", format!("the {what} is not hex: {e}")))?;
    decode_from_slice(&bytes)
        .map_err(|e| ApiError::bad("bad-encoding", format!("the {what} does not decode: {e}")))
}

async fn post_tx(State(s): State<ApiState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = body.map_err(body_error)?;
    let tx: Transaction = hex_body(&body, "transaction")?;
    let node = s.node.clone();
    blocking(move || {
        let txid = node.submit_tx(tx.clone())?;
        node.announce(Announcement::Tx(tx));
        Ok(axum::Json(json!({"txid": txid.to_string()})))
    })
    .await
}

async fn post_block(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    check_auth(&s, &headers)?;
    let body = body.map_err(body_error)?;
    let block: Block = hex_body(&body, "block")?;
    let size = block.encoded_len();
    let node = s.node.clone();
    blocking(move || {
        let outcome = node.submit_block(block.clone())?;
        if outcome.accepted == Accepted::Stored {
            node.announce(Announcement::Block(block));
        }
        let chain = node.chain();
        let status = match outcome.accepted {
            Accepted::Stored if chain.is_active(&outcome.hash) => "active",
            Accepted::Stored => "side-chain",
            Accepted::Duplicate => "duplicate",
            Accepted::Orphan => "orphan",
        };
        Ok(axum::Json(json!({
            "hash": outcome.hash.to_string(),
            "status": status,
            "size": size,
            "tip": chain.tip().to_string(),
            "height": chain.height(),
        })))
    })
    .await
}

async fn generate(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    check_auth(&s, &headers)?;
    if s.node.params().network != Network::Regtest {
        return Err(ApiError::bad(
            "regtest-only",
            "on-demand mining is for regtest; run the node with --mine instead",
        ));
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Generate {
        n: u32,
        address: String,
    }
    let body = body.map_err(body_error)?;
    let req: Generate = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(
            "bad-json",
            format!("expected {{\"n\": <blocks>, \"address\": \"<address>\"}}: {e}"),
        )
    })?;
    if req.n == 0 || req.n > MAX_GENERATE {
        return Err(ApiError::bad(
            "bad-n",
            format!("n must be 1..={MAX_GENERATE}, got {}", req.n),
        ));
    }
    let script = address_script(&s.node, &req.address)?;
    let node = s.node.clone();
    let threads = s.mine_threads;
    blocking(move || {
        let hashes = node.generate(req.n, &script, threads)?;
        Ok(axum::Json(json!({
            "blocks": hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            "height": node.chain().height(),
        })))
    })
    .await
}

async fn peers(State(s): State<ApiState>) -> ApiResult {
    let Some(network) = &s.network else {
        return Ok(axum::Json(json!({"enabled": false, "peers": []})));
    };
    let list = network
        .peers()
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "network-down", e))?;
    let peers: Vec<Value> = list
        .iter()
        .map(|p| {
            let since = p.connected_since.and_then(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs())
            });
            json!({
                "peer_id": p.peer_id.to_string(),
                "addresses": p.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "score": p.score,
                "connected_since": since,
                "banned": p.banned,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "enabled": true,
        "peer_id": network.peer_id().to_string(),
        "listen": network.listen_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "peers": peers,
    })))
}

async fn shutdown(State(s): State<ApiState>, headers: HeaderMap) -> ApiResult {
    check_auth(&s, &headers)?;
    let _ = s.shutdown.send(true);
    Ok(axum::Json(json!({"shutting_down": true})))
}

fn pool(s: &ApiState) -> Result<Arc<JobPool>, ApiError> {
    s.jobs.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-job-pool",
            "this node does not run the job protocol",
        )
    })
}

fn job_summary(v: &JobView) -> Value {
    let p = &v.job.offer.params;
    json!({
        "job_id": p.job_id().to_string(),
        "state": v.state.as_str(),
        "model": p.model.to_string(),
        "reward": p.reward.to_base(),
        "max_tokens": p.max_tokens,
        "timelock": p.timelock,
        "client": to_hex(&p.client.to_bytes()),
        "assigned": v.job.assign.as_ref().map(|a| to_hex(&a.worker.to_bytes())),
        "bids": v.job.bids.len(),
    })
}

fn job_detail(v: &JobView) -> Value {
    use camel_core::job::message::JobMessage;
    let mut out = job_summary(v);
    let j = &v.job;
    let msg = |m: JobMessage| to_hex(&m.to_bytes());
    let record = v.record.as_ref().map(|r| {
        json!({
            "created_height": r.created_height,
            "stake": r.stake.map(|o| format!("{}:{}", o.txid, o.vout)),
            "payments": r.payments.iter().map(|o| format!("{}:{}", o.txid, o.vout)).collect::<Vec<_>>(),
            "paid_height": r.paid_height,
            "claimed_height": r.claimed_height,
            "disputed_height": r.disputed_height,
            "claimable_until": r.claimable_until,
            "claims_end": r.claims_end,
        })
    });
    out["tip"] = json!(v.tip);
    out["escrow"] = json!(format!("{}:{}", j.escrow.txid, j.escrow.vout));
    out["record"] = json!(record);
    out["revealed_key"] = json!(v.revealed_key.map(|k| to_hex(&k)));
    out["claim_tx"] = json!(v.claim.as_ref().map(|t| to_hex(&encode_to_vec(t))));
    out["commitment"] = json!(j.commit.as_ref().map(|c| json!({
        "worker": to_hex(&c.commitment.worker.to_bytes()),
        "stake": format!("{}:{}", c.commitment.stake.txid, c.commitment.stake.vout),
        "output_len": c.commitment.output_len,
        "id": c.commitment.id().to_string(),
    })));
    out["messages"] = json!({
        "offer": msg(JobMessage::Offer(j.offer.clone())),
        "bids": j.bids.iter().map(|b| msg(JobMessage::Bid(b.clone()))).collect::<Vec<_>>(),
        "assign": j.assign.as_ref().map(|a| msg(JobMessage::Assign(a.clone()))),
        "commit": j.commit.as_ref().map(|c| msg(JobMessage::Commit(c.clone()))),
        "releases": j.releases.iter().map(|r| msg(JobMessage::Release(r.clone()))).collect::<Vec<_>>(),
    });
    out
}

async fn jobs(State(s): State<ApiState>) -> ApiResult {
    let pool = pool(&s)?;
    blocking(move || {
        let views = pool.views();
        let list: Vec<Value> = views.iter().map(job_summary).collect();
        Ok(axum::Json(json!({"count": list.len(), "jobs": list})))
    })
    .await
}

async fn job(State(s): State<ApiState>, id: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(id) = id.map_err(path_error)?;
    let pool = pool(&s)?;
    let id: camel_core::JobId = id
        .parse()
        .map_err(|_| ApiError::bad("bad-job-id", "a job id is 64 hex digits"))?;
    blocking(move || match pool.view(&id) {
        Some(v) => Ok(axum::Json(job_detail(&v))),
        None => Err(ApiError::not_found(format!("job {id} is not in the pool"))),
    })
    .await
}

async fn post_job_message(
    State(s): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body.map_err(body_error)?;
    let pool = pool(&s)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad("bad-body", "the body is hex text"))?;
    let bytes = from_hex(text.trim())
        .map_err(|e| ApiError::bad("bad-hex", format!("the job message is not hex: {e}")))?;
    let msg = camel_core::job::message::JobMessage::from_bytes(&bytes)
        .map_err(|e| ApiError::bad("bad-job-message", e))?;
    match pool.publish(&msg).await {
        Ok(()) => Ok(axum::Json(json!({
            "accepted": true,
            "job_id": msg.job_id().map(|j| j.to_string()),
        }))),
        Err(PoolError::Invalid(why)) => Err(ApiError::bad("bad-job-message", why)),
        Err(PoolError::Ignored(why)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "job-message-not-taken",
            why,
        )),
    }
}

async fn models(State(s): State<ApiState>) -> ApiResult {
    let pool = pool(&s)?;
    let list: Vec<Value> = pool
        .announcements()
        .iter()
        .map(|a| {
            json!({
                "worker": to_hex(&a.worker.to_bytes()),
                "peer": String::from_utf8_lossy(&a.peer),
                "verifier": a.verifier,
                "time": a.time,
                "models": a.models.iter().map(|m| json!({
                    "model": m.model.to_string(),
                    "name": m.name,
                    "price_per_token": m.price_per_token,
                    "max_tokens": m.max_tokens,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(axum::Json(json!({"workers": list})))
}

/// `{"peer": "<peer id>" | null, "payload": "<hex verify request>"}`: the request goes to the
/// peer (or, with no peer, to this node's own verifier); the verdict comes back as hex.
async fn post_verify(State(s): State<ApiState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    #[derive(Deserialize)]
    struct VerifyBody {
        peer: Option<String>,
        payload: String,
    }
    let body = body.map_err(body_error)?;
    let req: VerifyBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(
            "bad-json",
            format!("expected {{\"peer\", \"payload\"}}: {e}"),
        )
    })?;
    let payload = from_hex(req.payload.trim())
        .map_err(|e| ApiError::bad("bad-hex", format!("the payload is not hex: {e}")))?;
    let pool = pool(&s)?;
    let local = match (&req.peer, &s.network) {
        (None, _) => true,
        (Some(p), Some(n)) => *p == n.peer_id().to_string(),
        (Some(_), None) => true,
    };
    let verdict = if local {
        let Some(v) = pool.verifier() else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-verifier",
                "this node verifies nothing; name a peer that does",
            ));
        };
        let Some(slot) = pool.verify_slot() else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "{} verifications are running or queued; retry later or name another verifier",
                    crate::jobpool::MAX_VERIFY_QUEUE
                ),
            ));
        };
        blocking(move || {
            let _slot = slot;
            v.verify(&payload)
                .map_err(|e| ApiError::bad("verify-refused", e))
        })
        .await?
    } else {
        let peer: camel_p2p::PeerId = req
            .peer
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|_| ApiError::bad("bad-peer", "not a peer id"))?;
        let Some(n) = &s.network else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "network-down",
                "no network",
            ));
        };
        n.request_verify(peer, payload).await.map_err(|e| match e {
            camel_p2p::NetworkError::Throttled { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e)
            }
            // The verifier's own queue is full: busy too, nobody's fault.
            camel_p2p::NetworkError::Refused { ref text, .. } if text.contains("busy") => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e)
            }
            e => ApiError::new(StatusCode::BAD_GATEWAY, "verify-failed", e),
        })?
    };
    Ok(axum::Json(json!({"verdict": to_hex(&verdict)})))
}
