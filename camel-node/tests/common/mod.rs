//! Helpers shared by the integration tests and the benchmark: keys, signed P2PKH spends,
//! blocks mined on any parent, temporary directories, and a small HTTP client.
#![allow(dead_code)]

pub mod process;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use camel_core::Amount;
use camel_core::block::Block;
use camel_core::hash::BlockHash;
use camel_core::interpreter::NoFraudProofs;
use camel_core::keys::PrivateKey;
use camel_core::params::Params;
use camel_core::script::Script;
use camel_core::sighash::SighashCache;
use camel_core::templates::{input_signature, p2pkh, p2pkh_script_sig};
use camel_core::transaction::{OutPoint, SEQUENCE_FINAL, Transaction, TxIn, TxOut};
use camel_node::chain::Chain;
use camel_node::miner::{WorkUnit, mine};
use camel_node::node::{Node, NodeConfig};

/// A fresh, empty directory under the system's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "camel-node-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A node on a fresh regtest store in `dir`.
pub fn open_node(dir: &Path) -> Node {
    Node::open(
        &dir.join("chain.redb"),
        Params::regtest(),
        NodeConfig::default(),
        Arc::new(NoFraudProofs),
    )
    .unwrap()
}

/// A deterministic key.
pub fn key(n: u8) -> PrivateKey {
    let mut b = [0u8; 32];
    b[31] = n.max(1);
    b[0] = 0x11;
    PrivateKey::from_slice(&b).unwrap()
}

pub fn script_of(key: &PrivateKey) -> Script {
    p2pkh(&key.public_key().pubkey_hash())
}

pub fn amount(units: u64) -> Amount {
    Amount::from_base(units).unwrap()
}

/// A transaction spending P2PKH `coins` (all locked to `key`) to `outputs`, signed.
pub fn spend(key: &PrivateKey, coins: &[(OutPoint, TxOut)], outputs: Vec<TxOut>) -> Transaction {
    spend_for_job(key, coins, outputs, camel_core::JobId::ZERO)
}

/// [`spend`] with a job id.
pub fn spend_for_job(
    key: &PrivateKey,
    coins: &[(OutPoint, TxOut)],
    outputs: Vec<TxOut>,
    job_id: camel_core::JobId,
) -> Transaction {
    let mut tx = Transaction {
        version: 1,
        inputs: coins
            .iter()
            .map(|(op, _)| TxIn {
                prev_out: *op,
                script_sig: Script::new(vec![]),
                sequence: SEQUENCE_FINAL,
            })
            .collect(),
        outputs,
        lock_time: 0,
        job_id,
    };
    let sigs: Vec<Vec<u8>> = {
        let cache = SighashCache::new(&tx);
        coins
            .iter()
            .enumerate()
            .map(|(i, (_, out))| input_signature(key, &cache, i, out).unwrap())
            .collect()
    };
    for (input, sig) in tx.inputs.iter_mut().zip(sigs) {
        input.script_sig = p2pkh_script_sig(&sig, &key.public_key()).unwrap();
    }
    tx
}

/// Splits one coin into `n` equal outputs to `to`, paying `fee`.
pub fn split(
    key: &PrivateKey,
    coin: (OutPoint, TxOut),
    n: usize,
    to: &Script,
    fee: u64,
) -> Transaction {
    let each = (coin.1.value.to_base() - fee) / n as u64;
    let outputs = (0..n)
        .map(|_| TxOut {
            value: amount(each),
            script_pubkey: to.clone(),
        })
        .collect();
    spend(key, &[coin], outputs)
}

/// Mines a block with `txs` on `parent` (any known block, not only the tip) paying `payout`.
/// `salt` changes the time so that sibling blocks differ.
pub fn block_on(
    chain: &Chain,
    parent: BlockHash,
    txs: Vec<Transaction>,
    fees: u64,
    payout: &Script,
    salt: u32,
) -> Block {
    let ctx = chain
        .context_after(&parent, camel_node::chain::now())
        .unwrap();
    let unit = WorkUnit {
        height: ctx.height,
        prev: parent,
        bits: ctx.expected_bits,
        time: ctx.median_time_past + 1 + salt,
        version: 1,
        txs,
        reward: chain
            .params()
            .block_subsidy(ctx.height)
            .checked_add(amount(fees))
            .unwrap(),
        payout: payout.clone(),
    };
    mine(&unit, 1, &AtomicBool::new(false), &AtomicU64::new(0)).unwrap()
}

/// The coinbase output of a block as a spendable coin.
pub fn coinbase_coin(block: &Block) -> (OutPoint, TxOut) {
    let cb = &block.txdata[0];
    (OutPoint::new(cb.txid(), 0), cb.outputs[0].clone())
}

/// The outputs of `tx` as coins.
pub fn coins_of(tx: &Transaction) -> Vec<(OutPoint, TxOut)> {
    tx.outputs
        .iter()
        .enumerate()
        .map(|(i, o)| (OutPoint::new(tx.txid(), i as u32), o.clone()))
        .collect()
}

/// A minimal HTTP/1.1 client: one request per connection. Returns (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    send_request(&mut s, method, path, token, body)?;
    read_response(&mut s)
}

pub fn send_request(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<()> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()
}

pub fn read_response(s: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {text:?}")))?;
    let body = match text.split_once("\r\n\r\n") {
        Some((head, rest))
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked") =>
        {
            dechunk(rest)
        }
        Some((_, rest)) => rest.to_owned(),
        None => String::new(),
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
