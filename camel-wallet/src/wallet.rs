//! A wallet on disk: `keystore.json` (the encrypted mnemonic, [`crate::keystore`]) and
//! `wallet.json` (not secret: the network, how many keys of each chain were handed out, the
//! jobs submitted). Both are written atomically; an address index is saved before the address
//! is shown, so no address is ever handed out twice. `headers.bin` caches the header chain
//! the wallet verified ([`crate::spv`]), checked again when read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use camel_core::Amount;
use camel_core::address::Address;
use camel_core::block::Header;
use camel_core::encode::decode_from_slice;
use camel_core::job::txs::{BuildError, funded_tx_keyed};
use camel_core::keys::PrivateKey;
use camel_core::params::{Network, Params};
use camel_core::templates::p2pkh;
use camel_core::transaction::{OutPoint, Transaction, TxOut};
use camel_core::{JobId, Txid};
use serde::{Deserialize, Serialize};

use crate::keys::{Account, Chain, KeyError, parse_mnemonic};
use crate::keystore::{self, Costs, KeystoreError, MAX_KEYSTORE_SIZE};
use crate::node::{NodeClient, NodeError};
use crate::spv::{self, HeaderChain, SpvError, SyncError};

/// The verified header chain's cache in the wallet directory.
pub const HEADERS_FILE: &str = "headers.bin";

/// Consecutive unused addresses a restore scans past the last used one (BIP44's gap limit).
pub const GAP_LIMIT: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(
        "the wallet file {path} is unreadable ({why}); it holds no secret: delete it and run `camel-wallet restore`"
    )]
    State { path: String, why: String },
    #[error("'{0}' is not an address of the {1} network")]
    BadAddress(String, Network),
    #[error("not enough spendable coins: {have} base units, {need} needed (fee included)")]
    Insufficient { have: u64, need: u64 },
    #[error(
        "the fee would be {fee} base units, above the ceiling of {max}; raise --max-fee if you mean it"
    )]
    FeeTooHigh { fee: u64, max: u64 },
    #[error("could not build the transaction: {0}")]
    Build(String),
    /// The node served something its own proofs contradict.
    #[error("{0}; use another node (--node)")]
    Forged(#[from] SpvError),
    /// One of several nodes served something its own proofs contradict.
    #[error("{url}: {source}; leave that node out")]
    ForgedBy { url: String, source: SpvError },
    /// Nodes at the same tip list different coins: one hides coins, or lists spent ones.
    #[error("the nodes disagree: {0}")]
    NodesDisagree(String),
}

/// A job the wallet submitted, with the index of its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobEntry {
    pub job_id: String,
    pub index: u32,
    pub reward_base: u64,
    pub model: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Next {
    pub receive: u32,
    pub change: u32,
    pub job: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    version: u32,
    network: String,
    next: Next,
    #[serde(default)]
    jobs: Vec<JobEntry>,
}

/// The balance of the wallet's addresses, base units.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Balance {
    /// Confirmed and mature.
    pub spendable_base: u64,
    /// Coinbase outputs not yet mature.
    pub immature_base: u64,
    pub coins: usize,
    /// Height of the header chain the wallet verified itself; every coin counted has a merkle
    /// proof into it.
    pub verified_height: u32,
    /// Nodes behind the best verified tip, whose coins were not compared (several `--node`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub behind: Vec<String>,
}

/// An open wallet.
#[derive(Debug)]
pub struct Wallet {
    dir: PathBuf,
    pub params: Params,
    account: Account,
    state: State,
}

/// What a restore scanned and found.
#[derive(Debug, Clone, Serialize)]
pub struct Scan {
    pub chain: Chain,
    /// First and last path scanned.
    pub from: String,
    pub to: String,
    /// Addresses found in use (holding coins).
    pub used: u32,
}

fn network_of(name: &str) -> Option<Network> {
    Network::ALL.into_iter().find(|n| n.name() == name)
}

pub fn keystore_path(dir: &Path) -> PathBuf {
    dir.join("keystore.json")
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("wallet.json")
}

impl Wallet {
    /// Creates a wallet from a mnemonic phrase (new or restored) under `passphrase`.
    pub fn create(
        dir: &Path,
        params: Params,
        phrase: &str,
        passphrase: &str,
        costs: Costs,
    ) -> Result<Self, WalletError> {
        let ks = keystore_path(dir);
        if ks.exists() {
            return Err(KeystoreError::Exists(dir.display().to_string()).into());
        }
        let mnemonic = parse_mnemonic(phrase)?;
        let account = Account::new(&mnemonic, &params)?;
        let sealed = keystore::seal(&mnemonic.to_string(), passphrase, costs)?;
        let state = State {
            version: 1,
            network: params.network.name().to_owned(),
            next: Next::default(),
            jobs: vec![],
        };
        let w = Self {
            dir: dir.to_owned(),
            params,
            account,
            state,
        };
        // The state first: a wallet directory with a keystore always has its state.
        w.save()?;
        keystore::write_atomic(&ks, &sealed, true)?;
        Ok(w)
    }

    /// Opens the wallet in `dir` with its passphrase.
    pub fn open(dir: &Path, passphrase: &str) -> Result<Self, WalletError> {
        let ks = keystore_path(dir);
        let bytes = keystore::read_limited(&ks, MAX_KEYSTORE_SIZE)?;
        let phrase = keystore::open(&bytes, passphrase, &ks.display().to_string())?;
        let sp = state_path(dir);
        let bad = |why: String| WalletError::State {
            path: sp.display().to_string(),
            why,
        };
        let raw = keystore::read_limited(&sp, 16 * 1024 * 1024).map_err(|e| bad(e.to_string()))?;
        let state: State = serde_json::from_slice(&raw).map_err(|e| bad(e.to_string()))?;
        let network = network_of(&state.network).ok_or_else(|| bad("unknown network".into()))?;
        let params = Params::new(network);
        let account = Account::new(&parse_mnemonic(&phrase)?, &params)?;
        Ok(Self {
            dir: dir.to_owned(),
            params,
            account,
            state,
        })
    }

    fn save(&self) -> Result<(), WalletError> {
        let bytes = serde_json::to_vec_pretty(&self.state).unwrap_or_default();
        keystore::write_atomic(&state_path(&self.dir), &bytes, false)?;
        Ok(())
    }

    pub fn network(&self) -> Network {
        self.params.network
    }

    fn count(&self, chain: Chain) -> u32 {
        match chain {
            Chain::Receive => self.state.next.receive,
            Chain::Change => self.state.next.change,
            Chain::Job => self.state.next.job,
        }
    }

    fn count_mut(&mut self, chain: Chain) -> &mut u32 {
        match chain {
            Chain::Receive => &mut self.state.next.receive,
            Chain::Change => &mut self.state.next.change,
            Chain::Job => &mut self.state.next.job,
        }
    }

    /// Hands out the next key of `chain`: its index is saved before it is returned.
    pub fn next_key(&mut self, chain: Chain) -> Result<(u32, PrivateKey), WalletError> {
        let index = self.count(chain);
        let key = self.account.key(chain, index)?;
        *self.count_mut(chain) += 1;
        self.save()?;
        Ok((index, key))
    }

    /// The receive key handed out last, or a first one if none was.
    pub fn last_or_next_receive(&mut self) -> Result<(u32, PrivateKey), WalletError> {
        match self.count(Chain::Receive).checked_sub(1) {
            Some(i) => Ok((i, self.account.key(Chain::Receive, i)?)),
            None => self.next_key(Chain::Receive),
        }
    }

    pub fn address_of(&self, key: &PrivateKey) -> String {
        Address::p2pkh(&key.public_key(), self.params.address_version).to_string()
    }

    pub fn path(&self, chain: Chain, index: u32) -> String {
        self.account.path(chain, index)
    }

    pub fn job_key(&self, index: u32) -> Result<PrivateKey, WalletError> {
        Ok(self.account.key(Chain::Job, index)?)
    }

    /// Every key handed out so far, of every chain.
    pub fn keys(&self) -> Result<Vec<PrivateKey>, WalletError> {
        let mut keys = Vec::new();
        for chain in [Chain::Receive, Chain::Change, Chain::Job] {
            for i in 0..self.count(chain) {
                keys.push(self.account.key(chain, i)?);
            }
        }
        Ok(keys)
    }

    pub fn jobs(&self) -> &[JobEntry] {
        &self.state.jobs
    }

    pub fn record_job(&mut self, entry: JobEntry) -> Result<(), WalletError> {
        self.state.jobs.push(entry);
        self.save()
    }

    /// Spendable coins with their keys, largest first, and the immature total.
    /// The header chain verified so far (cached in the wallet directory), brought up to the
    /// node's tip and verified.
    pub async fn headers(&self, node: &NodeClient) -> Result<HeaderChain, WalletError> {
        let path = self.dir.join(HEADERS_FILE);
        let mut chain = HeaderChain::new(self.params.clone());
        // The cache is ours, but it is checked like any node's headers; a bad one is dropped.
        if let Ok(bytes) = std::fs::read(&path) {
            let headers: Vec<Header> = bytes
                .chunks_exact(80)
                .filter_map(|c| decode_from_slice(c).ok())
                .collect();
            if chain.extend(&headers, u32::MAX).is_err() {
                chain = HeaderChain::new(self.params.clone());
            }
        }
        match spv::sync(node, &mut chain).await {
            Ok(()) => {}
            Err(SyncError::Node(e)) => return Err(e.into()),
            Err(SyncError::Spv(e)) => return Err(e.into()),
        }
        let tmp = path.with_extension("tmp");
        // A lost cache costs a resync, nothing more: failures to write it are not errors.
        if std::fs::write(&tmp, chain.to_bytes()).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
        Ok(chain)
    }

    /// The wallet's confirmed coins, each proven by a merkle branch into the verified header
    /// chain, and the immature total; the height is the verified chain's.
    async fn coins(
        &self,
        node: &NodeClient,
    ) -> Result<(Vec<(OutPoint, TxOut, PrivateKey)>, u64), WalletError> {
        Ok(self.verified_coins(node).await?.0)
    }

    async fn verified_coins(
        &self,
        node: &NodeClient,
    ) -> Result<((Vec<(OutPoint, TxOut, PrivateKey)>, u64), u32), WalletError> {
        let chain = self.headers(node).await?;
        self.verified_coins_on(node, &chain).await
    }

    async fn verified_coins_on(
        &self,
        node: &NodeClient,
        chain: &HeaderChain,
    ) -> Result<((Vec<(OutPoint, TxOut, PrivateKey)>, u64), u32), WalletError> {
        let tip = chain.height();
        let mut proofs: HashMap<Txid, crate::spv::TxProof> = HashMap::new();
        let mut spendable = Vec::new();
        let mut immature = 0u64;
        for key in self.keys()? {
            for (op, out, height, coinbase) in node.utxos(&self.address_of(&key)).await? {
                // A coin is checked against the key it claims to pay, not trusted from the node.
                if out.script_pubkey != p2pkh(&key.public_key().pubkey_hash()) {
                    continue;
                }
                if let std::collections::hash_map::Entry::Vacant(slot) = proofs.entry(op.txid) {
                    let proof =
                        node.tx_proof(&op.txid)
                            .await?
                            .ok_or_else(|| SpvError::BadProof {
                                txid: op.txid,
                                why: "the node lists a coin of it but proves it in no block".into(),
                            })?;
                    slot.insert(proof);
                }
                let proof = &proofs[&op.txid];
                let tx = chain.check_proof(&op.txid, proof)?;
                let bad = |why: &str| SpvError::BadProof {
                    txid: op.txid,
                    why: why.into(),
                };
                if tx.outputs.get(op.vout as usize) != Some(&out) {
                    return Err(bad("the coin listed is not the transaction's output").into());
                }
                if proof.height != height || tx.is_coinbase() != coinbase {
                    return Err(bad("the coin's height or kind is not the proven one").into());
                }
                let height = proof.height;
                let mature = !coinbase
                    || tip.saturating_add(1)
                        >= height.saturating_add(self.params.coinbase_maturity);
                if mature {
                    spendable.push((op, out, key));
                } else {
                    immature = immature.saturating_add(out.value.to_base());
                }
            }
        }
        spendable.sort_by_key(|(_, o, _)| std::cmp::Reverse(o.value));
        Ok(((spendable, immature), tip))
    }

    /// The balance from several nodes, each verified on its own ([`Self::balance`]), then
    /// compared: nodes at the same verified tip must list the same coins (a coin one lists and
    /// another does not is either hidden by the second or spent and listed by the first, and
    /// neither may be believed). The answer is that of the node with the most verified work;
    /// a node behind it is only compared up to what it has.
    pub async fn balance_across(&self, nodes: &[NodeClient]) -> Result<Balance, WalletError> {
        if let [one] = nodes {
            return self.balance(one).await;
        }
        struct Seen {
            url: String,
            tip: (u32, camel_core::BlockHash),
            work: camel_core::pow::Work,
            coins: Vec<OutPoint>,
            balance: Balance,
        }
        let mut seen: Vec<Seen> = Vec::new();
        for node in nodes {
            let by = |e: WalletError| match e {
                WalletError::Forged(source) => WalletError::ForgedBy {
                    url: node.url().to_owned(),
                    source,
                },
                e => e,
            };
            let chain = self.headers(node).await.map_err(by)?;
            let tip = node.tip().await?;
            // The node's own tip must be on the verified chain (it may be behind it).
            if chain.hash_at(tip.0) != Some(tip.1) {
                return Err(WalletError::ForgedBy {
                    url: node.url().to_owned(),
                    source: SpvError::ForgedHeader {
                        height: tip.0,
                        why: format!("its tip {} is not on the chain it served", tip.1),
                    },
                });
            }
            let ((coins, immature), _) = self.verified_coins_on(node, &chain).await.map_err(by)?;
            let mut ops: Vec<OutPoint> = coins.iter().map(|(op, _, _)| *op).collect();
            ops.sort_by_key(|op| (op.txid.to_byte_array(), op.vout));
            let work = chain.work_at(tip.0);
            seen.push(Seen {
                url: node.url().to_owned(),
                tip,
                work,
                balance: Balance {
                    spendable_base: coins.iter().map(|(_, o, _)| o.value.to_base()).sum(),
                    immature_base: immature,
                    coins: coins.len(),
                    verified_height: tip.0,
                    behind: Vec::new(),
                },
                coins: ops,
            });
        }
        let best = seen
            .iter()
            .max_by_key(|s| s.work)
            .ok_or_else(|| WalletError::NodesDisagree("no node given".into()))?;
        let only = |a: &[OutPoint], b: &[OutPoint]| {
            a.iter()
                .filter(|op| !b.contains(op))
                .map(|op| format!("{}:{}", op.txid, op.vout))
                .collect::<Vec<_>>()
        };
        let mut behind = Vec::new();
        for other in &seen {
            if other.tip != best.tip {
                behind.push(format!("{} (height {})", other.url, other.tip.0));
                continue;
            }
            let (a, b) = (
                only(&best.coins, &other.coins),
                only(&other.coins, &best.coins),
            );
            if !a.is_empty() || !b.is_empty() {
                let list = |v: &[String]| {
                    if v.is_empty() {
                        "none".to_owned()
                    } else {
                        v.join(", ")
                    }
                };
                return Err(WalletError::NodesDisagree(format!(
                    "at the same tip {} (height {}), {} lists coins {} does not ({}) and {} lists coins {} does not ({}): one hides coins or lists spent ones",
                    best.tip.1,
                    best.tip.0,
                    best.url,
                    other.url,
                    list(&a),
                    other.url,
                    best.url,
                    list(&b),
                )));
            }
        }
        let mut b = best.balance.clone();
        b.behind = behind;
        Ok(b)
    }

    pub async fn balance(&self, node: &NodeClient) -> Result<Balance, WalletError> {
        let ((coins, immature), verified_height) = self.verified_coins(node).await?;
        Ok(Balance {
            spendable_base: coins.iter().map(|(_, o, _)| o.value.to_base()).sum(),
            immature_base: immature,
            coins: coins.len(),
            verified_height,
            behind: Vec::new(),
        })
    }

    /// Builds (and signs) a payment of `amount` to `to` at `fee_per_byte`, change to a fresh
    /// change address. Nothing is broadcast; the change index is taken only if `reserve`.
    pub async fn build_send(
        &mut self,
        node: &NodeClient,
        to: &str,
        amount: u64,
        fee_per_byte: u64,
        max_fee: u64,
        reserve: bool,
    ) -> Result<(Transaction, u64), WalletError> {
        let dest = Address::parse_for(to, self.params.address_version)
            .map_err(|_| WalletError::BadAddress(to.to_owned(), self.network()))?;
        let value = Amount::from_base(amount).ok_or_else(|| {
            WalletError::Build(format!("{amount} base units exceeds the money supply"))
        })?;
        let (coins, _) = self.coins(node).await?;
        let change_index = self.count(Chain::Change);
        let change_key = self.account.key(Chain::Change, change_index)?;
        let change = p2pkh(&change_key.public_key().pubkey_hash());
        let out = TxOut {
            value,
            script_pubkey: p2pkh(dest.pubkey_hash()),
        };
        let build = |fee: u64| {
            funded_tx_keyed(
                vec![],
                vec![out.clone()],
                &coins,
                change.clone(),
                Amount::from_base(fee).unwrap_or(Amount::MAX),
                JobId::ZERO,
                0,
            )
        };
        let have: u64 = coins.iter().map(|(_, o, _)| o.value.to_base()).sum();
        let insufficient = |need: u64| WalletError::Insufficient { have, need };
        // Size with no fee, then the fee for that size (plus room for a change output, which
        // the first build may not have had), checked against the ceiling.
        let mut fee = 0;
        for _ in 0..3 {
            let tx = match build(fee) {
                Ok(tx) => tx,
                Err(BuildError::Insufficient { need, .. }) => {
                    return Err(insufficient(need.to_base()));
                }
                Err(e) => return Err(WalletError::Build(e.to_string())),
            };
            let size = camel_core::encode::Encodable::encoded_len(&tx) as u64 + 34;
            let want = fee_per_byte.saturating_mul(size);
            if want > max_fee {
                return Err(WalletError::FeeTooHigh {
                    fee: want,
                    max: max_fee,
                });
            }
            if fee >= want {
                if reserve && tx.outputs.len() > 1 {
                    self.next_key(Chain::Change)?;
                }
                return Ok((tx, fee));
            }
            fee = want;
        }
        Err(WalletError::Build("the fee did not settle".into()))
    }

    /// Finds the keys a restored wallet has used: scans each chain until [`GAP_LIMIT`]
    /// consecutive addresses hold no coins, and hands out past the last used one.
    pub async fn scan(&mut self, node: &NodeClient) -> Result<Vec<Scan>, WalletError> {
        let mut report = Vec::new();
        for chain in [Chain::Receive, Chain::Change, Chain::Job] {
            let mut next = 0u32;
            let mut used = 0u32;
            let mut i = 0u32;
            while i < next.saturating_add(GAP_LIMIT) {
                let addr = self.account.address(chain, i)?;
                if !node.utxos(&addr).await?.is_empty() {
                    next = i + 1;
                    used += 1;
                }
                i += 1;
            }
            report.push(Scan {
                chain,
                from: self.account.path(chain, 0),
                to: self.account.path(chain, i.saturating_sub(1)),
                used,
            });
            let slot = self.count_mut(chain);
            *slot = (*slot).max(next);
        }
        self.save()?;
        Ok(report)
    }

    pub async fn broadcast(
        &self,
        node: &NodeClient,
        tx: &Transaction,
    ) -> Result<Txid, WalletError> {
        Ok(node.send_tx(tx).await?)
    }
}
