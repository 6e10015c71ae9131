//! `camel-wallet serve`: an OpenAI-compatible endpoint over the job protocol. Each completion
//! request becomes a job paid from this wallet: escrow, a worker's stake and commitment, the
//! payment, the decrypted output checked by verifiers that are not the worker. The answer
//! carries the job id, its transactions and the verdicts (`camel` field, `x-camel-*` headers).
//!
//! The gateway lives in the wallet because it spends the wallet's coins (ADR 0012): a node
//! holds no keys. Jobs run one at a time: they are funded from the same coins, and the output of
//! one is decrypted only after it is paid (fair exchange), so tokens arrive all at once; a
//! streamed answer sends them as one chunk, then the finish and usage chunks and `[DONE]`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use camel_core::Amount;
use camel_core::hash::{ModelId, to_hex};
use camel_core::job::PromptFormat;
use camel_core::params::Params;
use camel_core::rastic::SamplingParams;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::job::{JobClient, JobError, JobRequest, Outcome};
use crate::keys::Chain;
use crate::node::NodeClient;
use crate::wallet::{JobEntry, Wallet};

/// Most output tokens one request may ask for.
pub const MAX_TOKENS: u32 = 512;
/// Idempotency keys remembered (the oldest are forgotten first).
const MAX_REMEMBERED: usize = 1_000;

/// What every request pays and asks for, unless it says otherwise in its `camel` field.
#[derive(Debug, Clone)]
pub struct Pricing {
    /// Reward per maximum output token, base units.
    pub price_per_token: u64,
    pub fee: u64,
    pub verifiers: usize,
    pub timelock_blocks: u32,
}

/// The gateway's state.
pub struct Gateway {
    pub node: NodeClient,
    pub params: Params,
    pub api_key: String,
    pub pricing: Pricing,
    wallet: Mutex<Wallet>,
    /// One job at a time, see the module's documentation.
    running: Mutex<()>,
    /// Answers by idempotency key: a retried request waits for the first one's answer (if
    /// it is still running) and gets it; it is never paid again.
    answers: std::sync::Mutex<(HashMap<String, Slot>, Vec<String>)>,
}

type Slot = Arc<Mutex<Option<Answer>>>;

#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Gateway")
            .field("node", &self.node.url())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    pub fn new(node: NodeClient, wallet: Wallet, api_key: String, pricing: Pricing) -> Self {
        Self {
            node,
            params: wallet.params.clone(),
            api_key,
            pricing,
            wallet: Mutex::new(wallet),
            running: Mutex::new(()),
            answers: std::sync::Mutex::new((HashMap::new(), Vec::new())),
        }
    }
}

/// The router: `/v1/models`, `/v1/completions`, `/v1/chat/completions`.
pub fn router(g: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .fallback(|| async {
            oai_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "no such endpoint: this gateway serves /v1/models, /v1/completions and /v1/chat/completions",
                None,
            )
        })
        .with_state(g)
}

/// An error in OpenAI's shape.
fn oai_error(status: StatusCode, kind: &str, message: &str, code: Option<&str>) -> Response {
    (
        status,
        axum::Json(
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        ),
    )
        .into_response()
}

/// `Some(401 answer)` unless the request carries the key.
fn unauthorized(g: &Gateway, headers: &HeaderMap) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let (a, b) = (given.as_bytes(), g.api_key.as_bytes());
    let ok = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    (!ok).then(|| {
        oai_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "missing or wrong API key: send 'Authorization: Bearer <key>' with the key `camel-wallet serve` printed",
            Some("invalid_api_key"),
        )
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn models(State(g): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&g, &headers) {
        return r;
    }
    let workers = match g.node.workers().await {
        Ok(w) => w,
        Err(e) => {
            return oai_error(
                StatusCode::BAD_GATEWAY,
                "api_error",
                &format!("the node: {e}"),
                None,
            );
        }
    };
    let mut ids: Vec<String> = workers.iter().flat_map(|w| w.models.clone()).collect();
    ids.sort();
    ids.dedup();
    let data: Vec<Value> = ids
        .iter()
        .map(|id| {
            let serving = workers.iter().filter(|w| w.models.contains(id)).count();
            json!({"id": id, "object": "model", "created": 0, "owned_by": "camelidcoin",
                   "camel": {"workers": serving}})
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct CamelOptions {
    /// Reward for the whole job, base units.
    reward: Option<u64>,
    /// The least stake a worker must put up, base units.
    min_stake: Option<u64>,
    verifiers: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: String,
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: String,
    prompt: Option<Value>,
    messages: Option<Vec<Message>>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f64>,
    seed: Option<u64>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    stop: Option<Value>,
    n: Option<u32>,
    camel: Option<CamelOptions>,
}

enum Kind {
    Text,
    Chat,
}

async fn completions(State(g): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    serve(g, headers, body, Kind::Text).await
}

async fn chat(State(g): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    serve(g, headers, body, Kind::Chat).await
}

fn bad(message: &str) -> Response {
    oai_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
        None,
    )
}

/// The prompt and its format from a request, or what is wrong with it.
fn prompt_of(req: &CompletionRequest, kind: &Kind) -> Result<(String, PromptFormat), String> {
    match kind {
        Kind::Text => match &req.prompt {
            Some(Value::String(s)) => Ok((s.clone(), PromptFormat::Raw)),
            Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => Ok((
                a[0].as_str().unwrap_or_default().to_owned(),
                PromptFormat::Raw,
            )),
            _ => Err("'prompt' must be one string".into()),
        },
        Kind::Chat => {
            let msgs = req.messages.as_deref().unwrap_or_default();
            match msgs {
                [m] if m.role == "user" => Ok((m.content.clone(), PromptFormat::Chat)),
                _ => Err("'messages' must be one user message: a job's chat format is one user turn in the model's template".into()),
            }
        }
    }
}

async fn serve(g: Arc<Gateway>, headers: HeaderMap, body: Bytes, kind: Kind) -> Response {
    if let Some(r) = unauthorized(&g, &headers) {
        return r;
    }
    let req: CompletionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad(&format!(
                "the request body is not a completion request: {e}"
            ));
        }
    };
    if req.n.is_some_and(|n| n != 1) {
        return bad("'n' must be 1: each completion is one paid job");
    }
    if req.stop.as_ref().is_some_and(|s| !s.is_null()) {
        return bad(
            "'stop' is not supported: a job's output ends at its token limit or the model's end of text",
        );
    }
    let (prompt, format) = match prompt_of(&req, &kind) {
        Ok(p) => p,
        Err(why) => return bad(&why),
    };
    let model: ModelId = match req.model.parse() {
        Ok(m) => m,
        Err(_) => {
            return oai_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                &format!(
                    "model '{}' is not a model id; GET /v1/models lists them",
                    req.model
                ),
                Some("model_not_found"),
            );
        }
    };
    let max_tokens = req.max_completion_tokens.or(req.max_tokens).unwrap_or(16);
    if max_tokens == 0 || max_tokens > MAX_TOKENS {
        return bad(&format!("'max_tokens' must be in 1..={MAX_TOKENS}"));
    }
    let temperature = req.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return bad("'temperature' must be between 0 and 2");
    }
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let idem = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The key's slot, taken for the whole request: a retry of a request still running waits
    // here, then finds its answer.
    let slot = idem.as_ref().map(|k| {
        let mut m = g.answers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = m.0.get(k) {
            return s.clone();
        }
        if m.0.len() >= MAX_REMEMBERED && !m.1.is_empty() {
            let old = m.1.remove(0);
            m.0.remove(&old);
        }
        let s: Slot = Arc::new(Mutex::new(None));
        m.1.push(k.clone());
        m.0.insert(k.clone(), s.clone());
        s
    });
    let mut held = match &slot {
        Some(s) => Some(s.lock().await),
        None => None,
    };
    if let Some(a) = held.as_ref().and_then(|h| h.as_ref()) {
        return respond(a.clone(), req.stream, include_usage, &kind);
    }
    // Everything is checked before a coin moves: the model is served, the balance covers it.
    match g.node.workers().await {
        Ok(ws) if ws.iter().any(|w| w.models.contains(&model.to_string())) => {}
        Ok(_) => {
            return oai_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                &format!("no worker serves model {model}; GET /v1/models lists them"),
                Some("model_not_found"),
            );
        }
        Err(e) => {
            return oai_error(
                StatusCode::BAD_GATEWAY,
                "api_error",
                &format!("the node: {e}"),
                None,
            );
        }
    }
    let camel = req.camel.as_ref();
    let reward = camel.and_then(|c| c.reward).unwrap_or(
        g.pricing
            .price_per_token
            .saturating_mul(u64::from(max_tokens)),
    );
    let min_stake = camel.and_then(|c| c.min_stake).unwrap_or(reward);
    let verifiers = camel
        .and_then(|c| c.verifiers)
        .unwrap_or(g.pricing.verifiers);
    let (Some(reward_a), Some(stake_a)) = (Amount::from_base(reward), Amount::from_base(min_stake))
    else {
        return bad("'camel.reward' or 'camel.min_stake' exceeds the money supply");
    };
    let need = reward.saturating_add(g.pricing.fee.saturating_mul(3));
    {
        let w = g.wallet.lock().await;
        match w.balance(&g.node).await {
            Ok(b) if b.spendable_base >= need => {}
            Ok(b) => {
                return oai_error(
                    StatusCode::PAYMENT_REQUIRED,
                    "insufficient_quota",
                    &format!(
                        "the wallet holds {} spendable base units; this job needs {need} (reward and fees)",
                        b.spendable_base
                    ),
                    Some("insufficient_quota"),
                );
            }
            Err(e) => {
                return oai_error(
                    StatusCode::BAD_GATEWAY,
                    "api_error",
                    &format!("the wallet: {e}"),
                    None,
                );
            }
        }
    }
    let job_req = JobRequest {
        model,
        prompt,
        format,
        max_tokens,
        sampling: SamplingParams {
            temperature_milli: (temperature * 1000.0).round() as u32,
            seed: req.seed.unwrap_or(0),
        },
        reward: reward_a,
        min_stake: stake_a,
        timelock_blocks: g.pricing.timelock_blocks,
        fee: g.pricing.fee,
        verifiers,
        workers: vec![],
    };
    let answer = run_job(&g, &job_req, &req.model, &kind).await;
    if let Some(h) = held.as_mut() {
        **h = Some(answer.clone());
    }
    respond(answer, req.stream, include_usage, &kind)
}

async fn run_job(g: &Gateway, req: &JobRequest, model: &str, kind: &Kind) -> Answer {
    let _one = g.running.lock().await;
    let fail = |status: StatusCode, kind: &str, message: String, job: Option<String>| Answer {
        status,
        body: json!({"error": {"message": message, "type": kind, "param": null, "code": null},
                     "camel": {"job_id": job}}),
        headers: vec![("x-should-retry", "false".into())],
    };
    let (client, index) = {
        let mut w = g.wallet.lock().await;
        let (index, key) = match w.next_key(Chain::Job) {
            Ok(k) => k,
            Err(e) => {
                return fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    e.to_string(),
                    None,
                );
            }
        };
        let funding = w.keys().unwrap_or_default();
        let client = JobClient::new(g.node.clone(), key, g.params.clone()).with_funding(funding);
        (client, index)
    };
    let submitted = match client.submit(req).await {
        Ok(s) => s,
        Err(JobError::Build(e)) => {
            return fail(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_quota",
                e.to_string(),
                None,
            );
        }
        Err(e) => return fail(StatusCode::BAD_GATEWAY, "api_error", e.to_string(), None),
    };
    let job_id = submitted.job_id.to_string();
    {
        let mut w = g.wallet.lock().await;
        let _ = w.record_job(JobEntry {
            job_id: job_id.clone(),
            index,
            reward_base: req.reward.to_base(),
            model: model.to_owned(),
        });
    }
    let outcome = match client.follow(&submitted, req).await {
        Ok(o) => o,
        Err(e) => {
            return fail(
                StatusCode::GATEWAY_TIMEOUT,
                "api_error",
                format!(
                    "job {job_id}: {e}; it is paid for: follow it with `camel-wallet job status {job_id}`"
                ),
                Some(job_id),
            );
        }
    };
    match outcome {
        Outcome::Settled { delivery, verdicts } => {
            let text = String::from_utf8_lossy(&delivery.text).into_owned();
            let finish = if (delivery.tokens.len() as u32) < req.max_tokens {
                "stop"
            } else {
                "length"
            };
            let completion = delivery.tokens.len();
            let verdicts: Vec<Value> = verdicts
                .iter()
                .map(|v| {
                    json!({"verifier": to_hex(&v.verifier.to_bytes()), "valid": v.valid,
                                 "text_ok": v.text_ok, "checked": v.checked})
                })
                .collect();
            let created = now();
            let (object, choice) = match kind {
                Kind::Text => (
                    "text_completion",
                    json!({"index": 0, "text": text, "finish_reason": finish, "logprobs": null}),
                ),
                Kind::Chat => (
                    "chat.completion",
                    json!({"index": 0, "message": {"role": "assistant", "content": text},
                           "finish_reason": finish, "logprobs": null}),
                ),
            };
            Answer {
                status: StatusCode::OK,
                body: json!({
                    "id": format!("camel-{job_id}"),
                    "object": object,
                    "created": created,
                    "model": model,
                    "choices": [choice],
                    "usage": {"prompt_tokens": null, "completion_tokens": completion, "total_tokens": null},
                    "camel": {"job_id": job_id, "job_txid": submitted.job_tx.txid().to_string(),
                              "verdicts": verdicts, "tokens": delivery.tokens},
                }),
                headers: vec![
                    ("x-camel-job-id", job_id),
                    ("x-camel-verdicts", verdicts.len().to_string()),
                ],
            }
        }
        Outcome::Disputed { why, slash } => fail(
            StatusCode::BAD_GATEWAY,
            "api_error",
            format!(
                "the worker's output failed verification ({why}); its stake was slashed to this wallet (transaction {slash})"
            ),
            Some(job_id),
        ),
        Outcome::Refunded { refund } => fail(
            StatusCode::GATEWAY_TIMEOUT,
            "api_error",
            format!("no worker delivered; the escrow came back (transaction {refund})"),
            Some(job_id),
        ),
    }
}

/// The answer as JSON, or as server-sent events.
fn respond(a: Answer, stream: bool, include_usage: bool, kind: &Kind) -> Response {
    let mut resp = if !stream || a.status != StatusCode::OK {
        (a.status, axum::Json(a.body.clone())).into_response()
    } else {
        let b = &a.body;
        let object = match kind {
            Kind::Text => "text_completion",
            Kind::Chat => "chat.completion.chunk",
        };
        let base = |choices: Value| {
            json!({"id": b["id"], "object": object, "created": b["created"], "model": b["model"],
                   "choices": choices, "camel": b["camel"]})
        };
        let choice = &b["choices"][0];
        let (first, last) = match kind {
            Kind::Text => (
                json!([{"index": 0, "text": choice["text"], "finish_reason": null, "logprobs": null}]),
                json!([{"index": 0, "text": "", "finish_reason": choice["finish_reason"], "logprobs": null}]),
            ),
            Kind::Chat => (
                json!([{"index": 0, "delta": {"role": "assistant", "content": choice["message"]["content"]},
                        "finish_reason": null, "logprobs": null}]),
                json!([{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"], "logprobs": null}]),
            ),
        };
        let mut events = vec![base(first), base(last)];
        if include_usage {
            let mut u = base(json!([]));
            u["usage"] = b["usage"].clone();
            events.push(u);
        }
        let mut text = String::new();
        for e in events {
            text.push_str(&format!("data: {e}\n\n"));
        }
        text.push_str("data: [DONE]\n\n");
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            text,
        )
            .into_response()
    };
    for (k, v) in &a.headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            resp.headers_mut().insert(*k, v);
        }
    }
    resp
}
