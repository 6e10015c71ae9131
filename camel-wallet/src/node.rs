//! The wallet's view of a node: its HTTP API (`docs/api.md`) over reqwest.

use std::time::Duration;

use camel_core::encode::{Decodable, decode_from_slice, encode_to_vec};
use camel_core::hash::{JobId, from_hex, to_hex};
use camel_core::job::message::JobMessage;
use camel_core::transaction::{OutPoint, Transaction, TxOut};
use camel_core::{Amount, Txid};
use serde_json::{Value, json};

/// Why a call to the node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node could not be reached.
    #[error("cannot reach the node at {url}: {source} (is it running? see --node)")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The node answered with an error.
    #[error("the node refused: {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The node answered something this wallet does not understand.
    #[error("unexpected answer from the node: {0}")]
    Protocol(String),
}

impl NodeError {
    /// The node's error code, for refusals.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A node's HTTP API.
#[derive(Debug, Clone)]
pub struct NodeClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, NodeError> {
    v.get(name)
        .ok_or_else(|| NodeError::Protocol(format!("no field {name:?} in {v}")))
}

fn hex_decode<T: Decodable>(s: &str) -> Result<T, NodeError> {
    let bytes = from_hex(s).map_err(|e| NodeError::Protocol(format!("not hex: {e}")))?;
    decode_from_slice(&bytes).map_err(|e| NodeError::Protocol(format!("does not decode: {e}")))
}

fn outpoint(s: &str) -> Result<OutPoint, NodeError> {
    let (t, v) = s
        .split_once(':')
        .ok_or_else(|| NodeError::Protocol(format!("not an outpoint: {s}")))?;
    let txid: Txid = t
        .parse()
        .map_err(|_| NodeError::Protocol(format!("not a txid: {t}")))?;
    let vout = v
        .parse()
        .map_err(|_| NodeError::Protocol(format!("not an output index: {v}")))?;
    Ok(OutPoint::new(txid, vout))
}

/// A job as the node's pool shows it (`GET /job/{id}`), decoded.
#[derive(Debug, Clone)]
pub struct JobInfo {
    pub state: String,
    pub created_height: Option<u32>,
    pub tip: u32,
    pub escrow: OutPoint,
    /// The messages the pool holds: offer, bids, assignment, commit, releases.
    pub offer: JobMessage,
    pub bids: Vec<JobMessage>,
    pub assign: Option<JobMessage>,
    pub commit: Option<JobMessage>,
    pub releases: Vec<JobMessage>,
    pub stake: Option<OutPoint>,
    pub payments: Vec<OutPoint>,
    pub paid_height: Option<u32>,
    pub claimed_height: Option<u32>,
    pub disputed_height: Option<u32>,
    pub claims_end: Option<u32>,
    pub revealed_key: Option<[u8; 32]>,
    pub claim_tx: Option<Transaction>,
    pub raw: Value,
}

/// A worker's announcement (`GET /models`).
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    pub worker: String,
    pub peer: String,
    pub verifier: bool,
    pub models: Vec<String>,
}

impl NodeClient {
    /// A client of the node at `url` (e.g. `http://127.0.0.1:18832`); `token` is the node's
    /// cookie, needed only for the node's control endpoints.
    pub fn new(url: &str, token: Option<String>) -> Self {
        let base = url.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(180))
            .build()
            .unwrap_or_default();
        Self { base, http, token }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, NodeError> {
        let resp = req.send().await.map_err(|source| NodeError::Unreachable {
            url: self.base.clone(),
            source,
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|source| NodeError::Unreachable {
            url: self.base.clone(),
            source,
        })?;
        if status.is_success() {
            return Ok(body);
        }
        let e = &body["error"];
        Err(NodeError::Refused {
            status: status.as_u16(),
            code: e["code"].as_str().unwrap_or("error").to_owned(),
            message: e["message"].as_str().unwrap_or_default().to_owned(),
        })
    }

    async fn get(&self, path: &str) -> Result<Value, NodeError> {
        self.call(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: String, auth: bool) -> Result<Value, NodeError> {
        let mut req = self.http.post(format!("{}{path}", self.base)).body(body);
        if auth && let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        self.call(req).await
    }

    /// The tip height.
    pub async fn height(&self) -> Result<u32, NodeError> {
        let v = self.get("/tip").await?;
        field(&v, "height")?
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .ok_or_else(|| NodeError::Protocol("height".into()))
    }

    /// Confirmed unspent coins of an address.
    /// Each with its height and whether it is a coinbase.
    pub async fn utxos(
        &self,
        address: &str,
    ) -> Result<Vec<(OutPoint, TxOut, u32, bool)>, NodeError> {
        let v = self.get(&format!("/address/{address}/utxos")).await?;
        let list = v["utxos"]
            .as_array()
            .or_else(|| v["coins"].as_array())
            .or_else(|| v.as_array())
            .cloned()
            .unwrap_or_default();
        list.iter()
            .map(|c| {
                let txid: Txid = c["txid"]
                    .as_str()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|_| NodeError::Protocol("utxo txid".into()))?;
                let vout = c["vout"].as_u64().unwrap_or(0) as u32;
                let value = Amount::from_base(c["value"].as_u64().unwrap_or(0))
                    .ok_or_else(|| NodeError::Protocol("utxo value".into()))?;
                let script = from_hex(c["script_pubkey"].as_str().unwrap_or_default())
                    .map_err(|_| NodeError::Protocol("utxo script".into()))?;
                let height = c["height"].as_u64().unwrap_or(0) as u32;
                let coinbase = c["coinbase"].as_bool().unwrap_or(false);
                Ok((
                    OutPoint::new(txid, vout),
                    TxOut {
                        value,
                        script_pubkey: camel_core::script::Script::new(script),
                    },
                    height,
                    coinbase,
                ))
            })
            .collect()
    }

    /// The network the node runs (`main`, `test`, `regtest`).
    pub async fn network(&self) -> Result<String, NodeError> {
        let v = self.get("/tip").await?;
        field(&v, "network")?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| NodeError::Protocol("network".into()))
    }

    /// The tip's height and hash, as the node says.
    pub async fn tip(&self) -> Result<(u32, camel_core::BlockHash), NodeError> {
        let v = self.get("/tip").await?;
        let height = field(&v, "height")?
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .ok_or_else(|| NodeError::Protocol("height".into()))?;
        let hash = field(&v, "hash")?
            .as_str()
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| NodeError::Protocol("hash".into()))?;
        Ok((height, hash))
    }

    /// Up to `count` raw headers of the node's active chain from `from`, and its tip height.
    pub async fn headers(
        &self,
        from: u32,
        count: u32,
    ) -> Result<(Vec<camel_core::block::Header>, u32), NodeError> {
        let v = self.get(&format!("/headers/{from}?count={count}")).await?;
        let list = field(&v, "headers")?
            .as_array()
            .ok_or_else(|| NodeError::Protocol("headers".into()))?;
        if list.len() > count as usize {
            return Err(NodeError::Protocol(format!(
                "{} headers asked for, {} served",
                count,
                list.len()
            )));
        }
        let headers = list
            .iter()
            .map(|h| hex_decode(h.as_str().unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?;
        let tip = field(&v, "tip")?
            .as_u64()
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| NodeError::Protocol("tip".into()))?;
        Ok((headers, tip))
    }

    /// A mined transaction with its merkle branch; `None` when the node knows it in no block.
    pub async fn tx_proof(&self, txid: &Txid) -> Result<Option<crate::spv::TxProof>, NodeError> {
        let v = match self.get(&format!("/tx/{txid}/proof")).await {
            Ok(v) => v,
            Err(NodeError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let num = |name: &str| {
            field(&v, name)?
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| NodeError::Protocol(name.into()))
        };
        let branch = field(&v, "branch")?
            .as_array()
            .ok_or_else(|| NodeError::Protocol("branch".into()))?
            .iter()
            .take(33)
            .map(|h| {
                let b = from_hex(h.as_str().unwrap_or_default())
                    .map_err(|e| NodeError::Protocol(format!("branch: {e}")))?;
                let a: [u8; 32] = b
                    .try_into()
                    .map_err(|_| NodeError::Protocol("branch hash length".into()))?;
                Ok(camel_core::Hash256::from_byte_array(a))
            })
            .collect::<Result<Vec<_>, NodeError>>()?;
        Ok(Some(crate::spv::TxProof {
            tx: hex_decode(field(&v, "hex")?.as_str().unwrap_or_default())?,
            height: num("height")?,
            position: num("position")?,
            header: hex_decode(field(&v, "header")?.as_str().unwrap_or_default())?,
            branch,
        }))
    }

    /// The confirmed balance of an address, base units.
    pub async fn balance(&self, address: &str) -> Result<u64, NodeError> {
        let v = self.get(&format!("/address/{address}/balance")).await?;
        field(&v, "confirmed")?
            .as_u64()
            .ok_or_else(|| NodeError::Protocol("balance".into()))
    }

    /// Broadcasts a transaction.
    pub async fn send_tx(&self, tx: &Transaction) -> Result<Txid, NodeError> {
        let v = self.post("/tx", to_hex(&encode_to_vec(tx)), false).await?;
        field(&v, "txid")?
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| NodeError::Protocol("txid".into()))
    }

    /// A transaction from the mempool or the chain; `None` if the node does not know it.
    pub async fn tx(&self, txid: &Txid) -> Result<Option<Transaction>, NodeError> {
        match self.get(&format!("/tx/{txid}")).await {
            Ok(v) => hex_decode(field(&v, "hex")?.as_str().unwrap_or_default()).map(Some),
            Err(NodeError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Publishes a job message through the node's pool.
    pub async fn send_job_message(&self, msg: &JobMessage) -> Result<(), NodeError> {
        self.post("/job/message", to_hex(&msg.to_bytes()), false)
            .await
            .map(|_| ())
    }

    /// A job in the node's pool; `None` if the pool does not hold it.
    pub async fn job(&self, id: &JobId) -> Result<Option<JobInfo>, NodeError> {
        let v = match self.get(&format!("/job/{id}")).await {
            Ok(v) => v,
            Err(NodeError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let m = &v["messages"];
        let msg = |x: &Value| -> Result<JobMessage, NodeError> {
            let b = from_hex(x.as_str().unwrap_or_default())
                .map_err(|e| NodeError::Protocol(e.to_string()))?;
            JobMessage::from_bytes(&b).map_err(|e| NodeError::Protocol(e.to_string()))
        };
        let list = |x: &Value| -> Result<Vec<JobMessage>, NodeError> {
            x.as_array().into_iter().flatten().map(msg).collect()
        };
        let opt = |x: &Value| -> Result<Option<JobMessage>, NodeError> {
            if x.is_null() {
                Ok(None)
            } else {
                msg(x).map(Some)
            }
        };
        let r = &v["record"];
        let h = |x: &Value| x.as_u64().and_then(|h| u32::try_from(h).ok());
        Ok(Some(JobInfo {
            state: v["state"].as_str().unwrap_or_default().to_owned(),
            created_height: h(&r["created_height"]),
            tip: h(&v["tip"]).unwrap_or(0),
            escrow: outpoint(v["escrow"].as_str().unwrap_or_default())?,
            offer: msg(&m["offer"])?,
            bids: list(&m["bids"])?,
            assign: opt(&m["assign"])?,
            commit: opt(&m["commit"])?,
            releases: list(&m["releases"])?,
            stake: r["stake"].as_str().map(outpoint).transpose()?,
            payments: r["payments"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| outpoint(p.as_str().unwrap_or_default()))
                .collect::<Result<_, _>>()?,
            paid_height: h(&r["paid_height"]),
            claimed_height: h(&r["claimed_height"]),
            disputed_height: h(&r["disputed_height"]),
            claims_end: h(&r["claims_end"]),
            revealed_key: v["revealed_key"]
                .as_str()
                .and_then(|k| from_hex(k).ok())
                .and_then(|k| k.try_into().ok()),
            claim_tx: v["claim_tx"].as_str().map(hex_decode).transpose()?,
            raw: v,
        }))
    }

    /// Live worker announcements.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, NodeError> {
        let v = self.get("/models").await?;
        Ok(v["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| WorkerInfo {
                worker: w["worker"].as_str().unwrap_or_default().to_owned(),
                peer: w["peer"].as_str().unwrap_or_default().to_owned(),
                verifier: w["verifier"].as_bool().unwrap_or(false),
                models: w["models"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["model"].as_str().map(str::to_owned))
                    .collect(),
            })
            .collect())
    }

    /// Sends a verification request to `peer` through the node; the sealed verdict comes back.
    pub async fn verify(&self, peer: Option<&str>, payload: &[u8]) -> Result<Vec<u8>, NodeError> {
        let body = json!({"peer": peer, "payload": to_hex(payload)}).to_string();
        let v = self.post("/verify", body, false).await?;
        from_hex(field(&v, "verdict")?.as_str().unwrap_or_default())
            .map_err(|e| NodeError::Protocol(e.to_string()))
    }

    /// This node's peer id.
    /// The node's peer-to-peer view (`GET /peers`), as it answers.
    pub async fn peers(&self) -> Result<Value, NodeError> {
        self.get("/peers").await
    }

    pub async fn peer_id(&self) -> Result<Option<String>, NodeError> {
        let v = self.get("/peers").await?;
        Ok(v["peer_id"].as_str().map(str::to_owned))
    }

    /// Mines `n` blocks to `address` (regtest; needs the node's token).
    pub async fn generate(&self, n: u32, address: &str) -> Result<u32, NodeError> {
        let v = self
            .post(
                "/generate",
                json!({"n": n, "address": address}).to_string(),
                true,
            )
            .await?;
        h32(field(&v, "height")?)
    }
}

fn h32(v: &Value) -> Result<u32, NodeError> {
    v.as_u64()
        .and_then(|h| u32::try_from(h).ok())
        .ok_or_else(|| NodeError::Protocol("height".into()))
}

/// GETs a JSON document (for tools that poll a node before they know it is up).
pub async fn get_json(url: &str) -> Result<Value, NodeError> {
    let resp = reqwest::get(url)
        .await
        .map_err(|source| NodeError::Unreachable {
            url: url.to_owned(),
            source,
        })?;
    resp.json().await.map_err(|source| NodeError::Unreachable {
        url: url.to_owned(),
        source,
    })
}
