//! The client's side of the job protocol (`docs/protocol.md` §13.7, client policy): offer a
//! job with its escrow, assign it, check the commitment and the stake before paying, read the
//! revealed key, decrypt, have peers verify, and dispute or take the money back when the
//! worker does not deliver.
//!
//! [`JobClient::run`] drives one job from offer to a final outcome; the steps are public for
//! the CLI and the testnet demo to show progress.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use camel_core::Amount;
use camel_core::address::Address;
use camel_core::encode::{decode_from_slice, encode_to_vec};
use camel_core::hash::{JobId, ModelId, sha256};
use camel_core::job::commitment::Commitment;
use camel_core::job::envelope::{Purpose, Sealed};
use camel_core::job::evidence::{Evidence, EvidenceBody};
use camel_core::job::message::{Assign, Bid, Commit, JobMessage, Offer};
use camel_core::job::output::{Delivery, chain_hashes, open_delivery, output_hash};
use camel_core::job::txs::{BuildError, Spend, Unlock, funded_tx_keyed, signed_tx};
use camel_core::job::verdict::{SignedVerdict, VerifyBody, VerifyRequest};
use camel_core::job::{JobParams, PromptFormat};
use camel_core::keys::{PrivateKey, PublicKey};
use camel_core::params::Params;
use camel_core::rastic::{CheckMode, SamplingParams};
use camel_core::script::Script;
use camel_core::templates::{self, Escrow, Payment, Template, p2pkh};
use camel_core::transaction::{OutPoint, Transaction, TxOut};

use crate::node::{JobInfo, NodeClient, NodeError};

/// Why a job step failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("building a transaction: {0}")]
    Build(#[from] BuildError),
    #[error("{0}")]
    Protocol(String),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

fn protocol(why: impl ToString) -> JobError {
    JobError::Protocol(why.to_string())
}

/// What a client asks for.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub model: ModelId,
    pub prompt: String,
    pub format: PromptFormat,
    pub max_tokens: u32,
    pub sampling: SamplingParams,
    pub reward: Amount,
    pub min_stake: Amount,
    /// Blocks from now until the escrow can be refunded.
    pub timelock_blocks: u32,
    /// Fee of each transaction, base units.
    pub fee: u64,
    /// Verifiers to ask (other than the worker), at least.
    pub verifiers: usize,
    /// Take bids only from these workers (empty: from any).
    pub workers: Vec<PublicKey>,
}

/// How a job ended for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Paid, decrypted, verified by `verifiers` peers.
    Settled {
        delivery: Delivery,
        verdicts: Vec<SignedVerdict>,
    },
    /// The output was wrong: the stakes were slashed back to the client.
    Disputed {
        why: String,
        slash: camel_core::Txid,
    },
    /// Nobody delivered: the escrow (or the payment) came back.
    Refunded { refund: camel_core::Txid },
}

/// What happened to a job, step by step, as [`JobClient::follow`] sees it: the CLI
/// (`job submit --wait`) and the testnet demo show these.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The job was assigned to a bidder (the prompt sealed to it).
    Assigned { worker: PublicKey, stake: Amount },
    /// The worker's commitment checked out (signature, stake, sealed delivery).
    Committed { commitment: Commitment },
    /// The escrow was paid into the HTLC on the delivery key's hash.
    Paid {
        txid: camel_core::Txid,
        timeout: u32,
    },
    /// The worker claimed the payment, revealing the delivery key.
    Revealed { claim: Option<camel_core::Txid> },
    /// The output decrypted to what was committed.
    Delivered { delivery: Delivery },
    /// A verifier answered.
    Verdict { verdict: SignedVerdict },
    /// The output is wrong: a fraud proof is being filed.
    Disputing { why: String },
    /// Nobody delivered in time: the money is being taken back.
    Refunding,
}

/// A job the client created.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub params: JobParams,
    pub prompt: Vec<u8>,
    pub job_id: JobId,
    pub job_tx: Transaction,
}

/// A client: one key for the job (it receives deliveries, refunds and change), paying with the
/// P2PKH coins of its funding keys (by default the job key alone).
#[derive(Debug)]
pub struct JobClient {
    pub node: NodeClient,
    pub key: PrivateKey,
    /// Keys whose P2PKH coins pay for jobs.
    pub funding: Vec<PrivateKey>,
    pub params: Params,
    /// Poll interval.
    pub poll: Duration,
    /// Coins spent by this client's transactions not yet mined.
    spent: Mutex<HashSet<OutPoint>>,
    progress: Option<tokio::sync::mpsc::UnboundedSender<Progress>>,
}

impl JobClient {
    pub fn new(node: NodeClient, key: PrivateKey, params: Params) -> Self {
        Self {
            node,
            key,
            funding: vec![key],
            params,
            poll: Duration::from_millis(300),
            spent: Mutex::new(HashSet::new()),
            progress: None,
        }
    }

    /// Reports each step of the jobs it follows on `tx`.
    pub fn with_progress(mut self, tx: tokio::sync::mpsc::UnboundedSender<Progress>) -> Self {
        self.progress = Some(tx);
        self
    }

    fn report(&self, p: Progress) {
        if let Some(tx) = &self.progress {
            // Nobody listening is fine: progress is informative.
            let _ = tx.send(p);
        }
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    pub fn address(&self) -> String {
        Address::p2pkh(&self.key.public_key(), self.params.address_version).to_string()
    }

    fn script(&self) -> Script {
        p2pkh(&self.key.public_key().pubkey_hash())
    }

    /// Pays with the coins of `keys` (a wallet's addresses) instead of the job key's alone.
    pub fn with_funding(mut self, keys: Vec<PrivateKey>) -> Self {
        if !keys.is_empty() {
            self.funding = keys;
        }
        self
    }

    /// Spendable coins of the funding keys, largest first: mature, and not spent by this
    /// client's pending transactions.
    pub async fn coins(&self) -> Result<Vec<(OutPoint, TxOut, PrivateKey)>, JobError> {
        let tip = self.node.height().await?;
        let spent = self.spent.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut coins = Vec::new();
        for key in &self.funding {
            let address = Address::p2pkh(&key.public_key(), self.params.address_version);
            let list = self.node.utxos(&address.to_string()).await?;
            coins.extend(
                list.into_iter()
                    .filter(|(op, _, h, cb)| {
                        !spent.contains(op)
                            && (!cb
                                || tip.saturating_add(1)
                                    >= h.saturating_add(self.params.coinbase_maturity))
                    })
                    .map(|(op, o, _, _)| (op, o, *key)),
            );
        }
        coins.sort_by_key(|(_, o, _)| std::cmp::Reverse(o.value));
        Ok(coins)
    }

    async fn send(&self, tx: &Transaction) -> Result<camel_core::Txid, JobError> {
        let txid = self.node.send_tx(tx).await?;
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        spent.extend(tx.inputs.iter().map(|i| i.prev_out));
        Ok(txid)
    }

    fn fee(&self, req: &JobRequest) -> Amount {
        Amount::from_base(req.fee).unwrap_or(Amount::ZERO)
    }

    /// Creates the job: parameters, the escrow transaction, the offer.
    pub async fn submit(&self, req: &JobRequest) -> Result<Submitted, JobError> {
        let tip = self.node.height().await?;
        let (prompt_hash, prompt_len) = JobParams::prompt_fields(&req.prompt);
        let mut salt = [0u8; 16];
        secp256k1::rand::RngCore::fill_bytes(&mut secp256k1::rand::rng(), &mut salt);
        let contact = self.node.peer_id().await?.unwrap_or_default().into_bytes();
        let params = JobParams {
            model: req.model,
            prompt_format: req.format,
            prompt_hash,
            prompt_len,
            max_tokens: req.max_tokens,
            sampling: req.sampling,
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            timelock: tip.saturating_add(req.timelock_blocks),
            reward: req.reward,
            min_stake: req.min_stake,
            client: self.key.public_key(),
            contact: contact
                .into_iter()
                .take(camel_core::job::params::MAX_CONTACT_LEN)
                .collect(),
            salt,
        };
        params.validate().map_err(protocol)?;
        let job_id = params.job_id();
        let escrow = TxOut {
            value: req.reward,
            script_pubkey: Escrow {
                job_id,
                client: self.key.public_key(),
                refund_height: params.timelock,
            }
            .script_pubkey(),
        };
        let coins = self.coins().await?;
        let tx = funded_tx_keyed(
            vec![],
            vec![escrow],
            &coins,
            self.script(),
            self.fee(req),
            job_id,
            0,
        )?;
        let offer = JobMessage::Offer(Offer {
            params: params.clone(),
            tx: tx.clone(),
        });
        // The node takes the job transaction into its mempool with the offer.
        self.node.send_job_message(&offer).await?;
        self.spent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(tx.inputs.iter().map(|i| i.prev_out));
        Ok(Submitted {
            params,
            prompt: req.prompt.clone().into_bytes(),
            job_id,
            job_tx: tx,
        })
    }

    /// Assigns the job to a bidder, sealing the prompt to it.
    pub async fn assign(&self, job: &Submitted, bid: &Bid, seq: u32) -> Result<(), JobError> {
        let prompt = Sealed::seal_random(
            &mut secp256k1::rand::rng(),
            &bid.worker,
            Purpose::Prompt,
            &job.job_id,
            &job.prompt,
        )
        .map_err(protocol)?;
        let mut a = Assign {
            job_id: job.job_id,
            worker: bid.worker,
            seq,
            prompt,
            sig: Vec::new(),
        };
        a.sign(&self.key);
        self.node.send_job_message(&JobMessage::Assign(a)).await?;
        Ok(())
    }

    /// Checks a commit before paying for it: signed by the assigned worker, naming the job's
    /// mined acceptance stake of enough value, with a sealed delivery that opens to the
    /// committed ciphertext. Returns the ciphertext.
    pub async fn check_commit(
        &self,
        job: &Submitted,
        info: &JobInfo,
        worker: &PublicKey,
    ) -> Result<(Commit, Vec<u8>), JobError> {
        let Some(JobMessage::Commit(c)) = &info.commit else {
            return Err(protocol("no commit"));
        };
        c.commitment.verify().map_err(protocol)?;
        if c.commitment.worker != *worker || c.commitment.job_id != job.job_id {
            return Err(protocol(
                "the commit is not the assigned worker's for this job",
            ));
        }
        if info.stake != Some(c.commitment.stake) {
            return Err(protocol(
                "the commitment names another stake than the job's acceptance",
            ));
        }
        let ciphertext = c
            .delivery
            .open(&self.key, Purpose::Delivery, &job.job_id)
            .map_err(|e| protocol(format!("the delivery does not open: {e}")))?;
        if !c.commitment.ciphertext_matches(&ciphertext) {
            return Err(protocol("the delivery is not the committed ciphertext"));
        }
        Ok((c.clone(), ciphertext))
    }

    /// Pays the escrow into the payment HTLC on the commitment's key hash.
    pub async fn pay(
        &self,
        job: &Submitted,
        info: &JobInfo,
        c: &Commitment,
        req: &JobRequest,
        timeout: u32,
    ) -> Result<Transaction, JobError> {
        let escrow_out = job
            .job_tx
            .outputs
            .get(info.escrow.vout as usize)
            .cloned()
            .ok_or_else(|| protocol("escrow output"))?;
        let payment = TxOut {
            value: job.params.reward,
            script_pubkey: Payment {
                job_id: job.job_id,
                key_hash: c.key_hash,
                worker: c.worker,
                client: self.key.public_key(),
                timeout_height: timeout,
            }
            .script_pubkey(),
        };
        let coins = self.coins().await?;
        let tx = funded_tx_keyed(
            vec![Spend {
                outpoint: info.escrow,
                output: escrow_out,
                unlock: Unlock::EscrowPay(self.key),
            }],
            vec![payment],
            &coins,
            self.script(),
            self.fee(req),
            job.job_id,
            0,
        )?;
        self.send(&tx).await?;
        Ok(tx)
    }

    /// Asks a verifier (by peer id, with its job key) for a verdict on the delivered output.
    pub async fn verify_with(
        &self,
        peer: &str,
        verifier: &PublicKey,
        job: &Submitted,
        c: &Commitment,
        d: &Delivery,
    ) -> Result<SignedVerdict, JobError> {
        let mut nonce = [0u8; 32];
        secp256k1::rand::RngCore::fill_bytes(&mut secp256k1::rand::rng(), &mut nonce);
        let body = VerifyBody {
            params: job.params.clone(),
            prompt: job.prompt.clone(),
            commitment: c.clone(),
            tokens: d.tokens.clone(),
            text: d.text.clone(),
            mode: CheckMode::Full,
            nonce,
        };
        let reply = PrivateKey::generate(&mut secp256k1::rand::rng());
        let sealed = Sealed::seal_random(
            &mut secp256k1::rand::rng(),
            verifier,
            Purpose::VerifyRequest,
            &JobId::ZERO,
            &encode_to_vec(&body),
        )
        .map_err(protocol)?;
        let req = VerifyRequest {
            reply: reply.public_key(),
            body: sealed,
        };
        let answer = self.node.verify(Some(peer), &encode_to_vec(&req)).await?;
        let sealed: Sealed = decode_from_slice(&answer).map_err(protocol)?;
        let bytes = sealed
            .open(&reply, Purpose::Verdict, &job.job_id)
            .map_err(protocol)?;
        let v: SignedVerdict = decode_from_slice(&bytes).map_err(protocol)?;
        v.verify().map_err(protocol)?;
        if v.verifier != *verifier
            || v.commitment_id != c.id()
            || v.nonce != nonce
            || v.job_id != job.job_id
            || v.model != job.params.model
            || v.mode != CheckMode::Full
        {
            return Err(protocol("the verdict is not for this request"));
        }
        // A full check that passes has looked at every position.
        if v.accepts() && v.checked as usize != d.tokens.len() {
            return Err(protocol(format!(
                "the verdict accepts after checking {} of {} positions, not a full check",
                v.checked,
                d.tokens.len()
            )));
        }
        Ok(v)
    }

    /// Slashes every unspent stake of the job naming `worker`, citing `evidence`.
    pub async fn slash(
        &self,
        job: &Submitted,
        info: &JobInfo,
        worker: &PublicKey,
        evidence: &Evidence,
        req: &JobRequest,
    ) -> Result<camel_core::Txid, JobError> {
        let mut candidates: Vec<(OutPoint, TxOut)> = Vec::new();
        let snapshot = self.stake_outputs(info).await?;
        for (op, out) in snapshot {
            if let Some(Template::Stake(s)) = templates::classify_job(&out.script_pubkey)
                && s.worker == *worker
                && s.job_id == job.job_id
            {
                candidates.push((op, out));
            }
        }
        if candidates.is_empty() {
            return Err(protocol("no stake of the worker to slash"));
        }
        let ev = evidence.to_bytes();
        let spends: Vec<Spend> = candidates
            .iter()
            .map(|(op, out)| Spend {
                outpoint: *op,
                output: out.clone(),
                unlock: Unlock::Slash(self.key, ev.clone()),
            })
            .collect();
        let total =
            Amount::checked_sum(candidates.iter().map(|(_, o)| o.value)).unwrap_or(Amount::ZERO);
        let back = total
            .checked_sub(self.fee(req))
            .ok_or_else(|| protocol("stakes below the fee"))?;
        let tx = signed_tx(
            &spends,
            vec![TxOut {
                value: back,
                script_pubkey: self.script(),
            }],
            JobId::ZERO,
            0,
        )?;
        self.send(&tx).await
    }

    /// The acceptance stake and the claim's stake outputs of a job, as outputs.
    async fn stake_outputs(&self, info: &JobInfo) -> Result<Vec<(OutPoint, TxOut)>, JobError> {
        let mut out = Vec::new();
        if let Some(claim) = &info.claim_tx {
            for (i, o) in claim.outputs.iter().enumerate() {
                out.push((OutPoint::new(claim.txid(), i as u32), o.clone()));
            }
        }
        if let Some(stake) = info.stake {
            // The acceptance's transaction: fetched from the node.
            if let Some(o) = self.output_of(&stake).await? {
                out.push((stake, o));
            }
        }
        Ok(out)
    }

    async fn output_of(&self, op: &OutPoint) -> Result<Option<TxOut>, JobError> {
        let v = match self.node_tx(&op.txid).await? {
            Some(v) => v,
            None => return Ok(None),
        };
        Ok(v.outputs.get(op.vout as usize).cloned())
    }

    async fn node_tx(&self, txid: &camel_core::Txid) -> Result<Option<Transaction>, JobError> {
        self.node.tx(txid).await.map_err(JobError::from)
    }

    /// Takes the escrow back once its timelock has passed.
    pub async fn refund_escrow(
        &self,
        job: &Submitted,
        info: &JobInfo,
        req: &JobRequest,
    ) -> Result<camel_core::Txid, JobError> {
        let out = job
            .job_tx
            .outputs
            .get(info.escrow.vout as usize)
            .cloned()
            .ok_or_else(|| protocol("escrow"))?;
        let back = out
            .value
            .checked_sub(self.fee(req))
            .ok_or_else(|| protocol("escrow below the fee"))?;
        let tx = signed_tx(
            &[Spend {
                outpoint: info.escrow,
                output: out,
                unlock: Unlock::EscrowRefund(self.key),
            }],
            vec![TxOut {
                value: back,
                script_pubkey: self.script(),
            }],
            JobId::ZERO,
            job.params.timelock,
        )?;
        self.send(&tx).await
    }

    /// Takes an unclaimed payment back once its timeout has passed.
    pub async fn refund_payment(
        &self,
        payment: &Transaction,
        timeout: u32,
        req: &JobRequest,
    ) -> Result<camel_core::Txid, JobError> {
        let out = payment
            .outputs
            .first()
            .cloned()
            .ok_or_else(|| protocol("payment"))?;
        let back = out
            .value
            .checked_sub(self.fee(req))
            .ok_or_else(|| protocol("payment below the fee"))?;
        let tx = signed_tx(
            &[Spend {
                outpoint: OutPoint::new(payment.txid(), 0),
                output: out,
                unlock: Unlock::PaymentRefund(self.key),
            }],
            vec![TxOut {
                value: back,
                script_pubkey: self.script(),
            }],
            JobId::ZERO,
            timeout,
        )?;
        self.send(&tx).await
    }

    async fn info(&self, id: &JobId) -> Result<JobInfo, JobError> {
        self.node
            .job(id)
            .await?
            .ok_or_else(|| protocol("the node's pool does not hold the job"))
    }

    /// Drives a job from offer to its outcome.
    pub async fn run(&self, req: &JobRequest) -> Result<(Submitted, Outcome), JobError> {
        let job = self.submit(req).await?;
        let outcome = self.follow(&job, req).await?;
        Ok((job, outcome))
    }

    /// Follows a submitted job to its outcome.
    pub async fn follow(&self, job: &Submitted, req: &JobRequest) -> Result<Outcome, JobError> {
        let id = job.job_id;
        let timelock = job.params.timelock;
        // 1. The first acceptable bid gets the job.
        let mut assigned: Option<Bid> = None;
        let mut seq = 0u32;
        let mut excluded: HashSet<PublicKey> = HashSet::new();
        let mut payment: Option<(Transaction, u32)> = None;
        loop {
            let info = self.info(&id).await?;
            if let Some(a) = &assigned
                && info
                    .releases
                    .iter()
                    .any(|r| matches!(r, JobMessage::Release(r) if r.worker == a.worker))
            {
                excluded.insert(a.worker);
                assigned = None;
            }
            if payment.is_none() && info.tip >= timelock {
                self.report(Progress::Refunding);
                let refund = self.refund_escrow(job, &info, req).await?;
                return Ok(Outcome::Refunded { refund });
            }
            if assigned.is_none() {
                let bid = info.bids.iter().find_map(|b| match b {
                    JobMessage::Bid(b)
                        if b.stake >= job.params.min_stake
                            && !excluded.contains(&b.worker)
                            && (req.workers.is_empty() || req.workers.contains(&b.worker)) =>
                    {
                        Some(b.clone())
                    }
                    _ => None,
                });
                if let Some(b) = bid {
                    seq = seq.saturating_add(1);
                    self.assign(job, &b, seq).await?;
                    self.report(Progress::Assigned {
                        worker: b.worker,
                        stake: b.stake,
                    });
                    assigned = Some(b);
                }
            }
            let Some(bid) = assigned.clone() else {
                tokio::time::sleep(self.poll).await;
                continue;
            };
            // 2. Pay for a good commit.
            // The escrow can be paid from C + D on.
            let payable = info.created_height.is_some_and(|c| {
                info.tip.saturating_add(1) >= c.saturating_add(self.params.job_payment_delay)
            });
            if payment.is_none() && info.commit.is_some() && payable {
                match self.check_commit(job, &info, &bid.worker).await {
                    Ok((c, _)) => {
                        let stake_out = match info.stake {
                            Some(s) => self.output_of(&s).await?,
                            None => None,
                        };
                        let Some(stake_out) = stake_out else {
                            tokio::time::sleep(self.poll).await;
                            continue;
                        };
                        let s =
                            match check_stake(job, &self.public_key(), &c.commitment, &stake_out) {
                                Ok(s) => s,
                                Err(why) => {
                                    tracing_warn(&format!("job {id}: not paying: {why}"));
                                    excluded.insert(bid.worker);
                                    assigned = None;
                                    continue;
                                }
                            };
                        let timeout = s.window_end_height;
                        self.report(Progress::Committed {
                            commitment: c.commitment.clone(),
                        });
                        let paid_tx = self.pay(job, &info, &c.commitment, req, timeout).await?;
                        self.report(Progress::Paid {
                            txid: paid_tx.txid(),
                            timeout,
                        });
                        payment = Some((paid_tx, timeout));
                    }
                    Err(e) => {
                        // A commit that does not check out: never pay for it; the worker's
                        // stake comes back to it, our escrow to us at the timelock.
                        tracing_warn(&format!("job {id}: commit refused: {e}"));
                        excluded.insert(bid.worker);
                    }
                }
            }
            // 3. Once the key is out, read and verify.
            if let Some((ptx, timeout)) = &payment {
                if let Some(key) = info.revealed_key {
                    self.report(Progress::Revealed {
                        claim: info.claim_tx.as_ref().map(Transaction::txid),
                    });
                    let (c, ciphertext) = self.check_commit(job, &info, &bid.worker).await?;
                    return self.settle(job, req, &c.commitment, &ciphertext, key).await;
                }
                if info.tip >= *timeout {
                    self.report(Progress::Refunding);
                    let refund = self.refund_payment(ptx, *timeout, req).await?;
                    return Ok(Outcome::Refunded { refund });
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn settle(
        &self,
        job: &Submitted,
        req: &JobRequest,
        c: &Commitment,
        ciphertext: &[u8],
        key: [u8; 32],
    ) -> Result<Outcome, JobError> {
        let delivery = open_delivery(&key, &job.job_id, ciphertext)
            .ok()
            .filter(|d| {
                usize::try_from(c.output_len).ok() == Some(d.tokens.len())
                    && output_hash(&d.tokens) == c.output_hash
                    && sha256(&d.text) == c.text_hash
            });
        let Some(delivery) = delivery else {
            // Garbage for the committed key and ciphertext: any node can judge it.
            let ev = Evidence {
                commitment: c.clone(),
                body: EvidenceBody::Delivery {
                    key,
                    ciphertext: ciphertext.to_vec(),
                },
            };
            let why = "the delivery does not open to the committed output".to_owned();
            self.report(Progress::Disputing { why: why.clone() });
            let slash = self.slash_when_claimed(job, req, &c.worker, &ev).await?;
            return Ok(Outcome::Disputed { why, slash });
        };
        self.report(Progress::Delivered {
            delivery: delivery.clone(),
        });
        // Verifiers that are not the worker, by key and by peer.
        let worker_hex = camel_core::hash::to_hex(&c.worker.to_bytes());
        let worker_peer = self
            .node
            .workers()
            .await?
            .into_iter()
            .find(|w| w.worker == worker_hex)
            .map(|w| w.peer);
        let mut verdicts = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        while verdicts.len() < req.verifiers {
            let candidates: Vec<_> = self
                .node
                .workers()
                .await?
                .into_iter()
                .filter(|w| {
                    w.verifier
                        && w.worker != worker_hex
                        && Some(&w.peer) != worker_peer.as_ref()
                        && w.models.contains(&job.params.model.to_string())
                })
                .collect();
            for w in candidates {
                if verdicts.len() >= req.verifiers {
                    break;
                }
                if verdicts.iter().any(|v: &SignedVerdict| {
                    camel_core::hash::to_hex(&v.verifier.to_bytes()) == w.worker
                }) {
                    continue;
                }
                let Ok(bytes) = camel_core::hash::from_hex(&w.worker) else {
                    continue;
                };
                let Ok(vk) = PublicKey::from_slice(&bytes) else {
                    continue;
                };
                match self.verify_with(&w.peer, &vk, job, c, &delivery).await {
                    Ok(v) => {
                        self.report(Progress::Verdict { verdict: v.clone() });
                        verdicts.push(v)
                    }
                    Err(e) => tracing_warn(&format!("verifier {} failed: {e}", w.peer)),
                }
            }
            if verdicts.len() >= req.verifiers {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(JobError::Timeout("enough verifiers"));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if let Some(f) = verdicts.iter().find_map(|v| v.provable_failure().copied()) {
            let x = f.position as usize;
            let chain = chain_hashes(&delivery.tokens);
            let ev = Evidence {
                commitment: c.clone(),
                body: EvidenceBody::Inference {
                    params: job.params.clone(),
                    prompt: job.prompt.clone(),
                    prefix: delivery.tokens.get(..=x).unwrap_or_default().to_vec(),
                    suffix_hash: chain.get(x + 1).copied().unwrap_or_default(),
                },
            };
            let why = format!(
                "position {x}: token {} where the model gives {}",
                f.claimed, f.expected
            );
            self.report(Progress::Disputing { why: why.clone() });
            let slash = self.slash_when_claimed(job, req, &c.worker, &ev).await?;
            return Ok(Outcome::Disputed { why, slash });
        }
        if let Some(v) = verdicts.iter().find(|v| !v.text_ok) {
            let _ = v;
            let ev = Evidence {
                commitment: c.clone(),
                body: EvidenceBody::Text {
                    params: job.params.clone(),
                    tokens: delivery.tokens.clone(),
                    text: delivery.text.clone(),
                },
            };
            let why = "the text is not the tokens' text".to_owned();
            self.report(Progress::Disputing { why: why.clone() });
            let slash = self.slash_when_claimed(job, req, &c.worker, &ev).await?;
            return Ok(Outcome::Disputed { why, slash });
        }
        Ok(Outcome::Settled { delivery, verdicts })
    }

    /// Slashes once the claim is mined (its stake outputs must exist to be spent).
    async fn slash_when_claimed(
        &self,
        job: &Submitted,
        req: &JobRequest,
        worker: &PublicKey,
        ev: &Evidence,
    ) -> Result<camel_core::Txid, JobError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        loop {
            let info = self.info(&job.job_id).await?;
            if info.claimed_height.is_some() {
                return self.slash(job, &info, worker, ev, req).await;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(JobError::Timeout("the claim to be mined"));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// Checks the job's acceptance stake before paying for `c`: it must be slashable by this
/// client for this commitment — a stake template for this job, naming the committing worker
/// and this client, of at least the job's minimum. A stake naming anyone else would leave
/// nothing to take back when the output is wrong.
pub fn check_stake(
    job: &Submitted,
    client: &PublicKey,
    c: &Commitment,
    out: &TxOut,
) -> Result<templates::Stake, String> {
    let Some(Template::Stake(s)) = templates::classify_job(&out.script_pubkey) else {
        return Err("the acceptance output is not a stake".into());
    };
    if s.job_id != job.job_id {
        return Err("the stake is for another job".into());
    }
    if s.worker != c.worker {
        return Err("the stake names another worker than the commitment's".into());
    }
    if s.client != *client {
        return Err("the stake names another client".into());
    }
    if out.value < job.params.min_stake {
        return Err(format!(
            "the stake holds {} base units, below the job's minimum {}",
            out.value.to_base(),
            job.params.min_stake.to_base()
        ));
    }
    Ok(s)
}

fn tracing_warn(msg: &str) {
    tracing::warn!("{msg}");
}

/// One line saying what a step means, for people (the CLI's stderr, the TUI's job list).
pub fn describe_progress(p: &Progress) -> String {
    let short = |b: &[u8]| {
        camel_core::hash::to_hex(b)
            .chars()
            .take(16)
            .collect::<String>()
    };
    match p {
        Progress::Assigned { worker, stake } => format!(
            "assigned to worker {}… (bid stake {} base units)",
            short(&worker.to_bytes()),
            stake.to_base()
        ),
        Progress::Committed { commitment } => format!(
            "committed: {} tokens, output hash {}…, stake {}:{}",
            commitment.output_len,
            short(&commitment.output_hash),
            commitment.stake.txid,
            commitment.stake.vout
        ),
        Progress::Paid { txid, timeout } => {
            format!("paid: {txid} (refundable from height {timeout} if no key is revealed)")
        }
        Progress::Revealed { claim } => match claim {
            Some(t) => format!("the worker claimed its payment ({t}): the delivery key is out"),
            None => "the delivery key is out".into(),
        },
        Progress::Delivered { delivery } => format!(
            "decrypted {} tokens matching the commitment; asking verifiers",
            delivery.tokens.len()
        ),
        Progress::Verdict { verdict } => format!(
            "verdict from {}…: {} ({} positions checked)",
            short(&verdict.verifier.to_bytes()),
            if verdict.accepts() {
                "valid"
            } else {
                "INVALID"
            },
            verdict.checked
        ),
        Progress::Disputing { why } => format!("disputing: {why}"),
        Progress::Refunding => "nobody delivered in time: taking the money back".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PrivateKey {
        PrivateKey::from_slice(&[b; 32]).unwrap()
    }

    fn job(client: &PrivateKey) -> Submitted {
        let (prompt_hash, prompt_len) = JobParams::prompt_fields("p");
        let params = JobParams {
            model: ModelId::default(),
            prompt_format: PromptFormat::Raw,
            prompt_hash,
            prompt_len,
            max_tokens: 4,
            sampling: SamplingParams::GREEDY,
            created_at: 0,
            timelock: 100,
            reward: Amount::from_base(1_000).unwrap(),
            min_stake: Amount::from_base(5_000).unwrap(),
            client: client.public_key(),
            contact: Vec::new(),
            salt: [0; 16],
        };
        let job_id = params.job_id();
        Submitted {
            params,
            prompt: b"p".to_vec(),
            job_id,
            job_tx: Transaction {
                version: 1,
                inputs: Vec::new(),
                outputs: Vec::new(),
                lock_time: 0,
                job_id,
            },
        }
    }

    fn commitment(job: &Submitted, worker: &PrivateKey) -> Commitment {
        Commitment {
            job_id: job.job_id,
            worker: worker.public_key(),
            stake: OutPoint::new(camel_core::Txid::default(), 0),
            output_hash: [0; 32],
            output_len: 0,
            text_hash: [0; 32],
            key_hash: [0; 32],
            ciphertext_hash: [0; 32],
            reward: [0; 20],
            sig: Vec::new(),
        }
    }

    fn stake(job_id: JobId, worker: &PrivateKey, client: &PrivateKey, value: u64) -> TxOut {
        TxOut {
            value: Amount::from_base(value).unwrap(),
            script_pubkey: templates::Stake {
                job_id,
                worker: worker.public_key(),
                client: client.public_key(),
                window_end_height: 50,
            }
            .script_pubkey(),
        }
    }

    #[test]
    fn only_a_stake_slashable_for_the_commitment_is_paid_for() {
        let (client, worker, other) = (key(1), key(2), key(3));
        let j = job(&client);
        let c = commitment(&j, &worker);
        let me = client.public_key();
        assert!(check_stake(&j, &me, &c, &stake(j.job_id, &worker, &client, 5_000)).is_ok());
        // Another worker's stake (say, a colluder's) would leave nothing to slash.
        let e = check_stake(&j, &me, &c, &stake(j.job_id, &other, &client, 5_000)).unwrap_err();
        assert!(e.contains("another worker"), "{e}");
        let e = check_stake(&j, &me, &c, &stake(j.job_id, &worker, &other, 5_000)).unwrap_err();
        assert!(e.contains("another client"), "{e}");
        let e = check_stake(&j, &me, &c, &stake(JobId::ZERO, &worker, &client, 5_000)).unwrap_err();
        assert!(e.contains("another job"), "{e}");
        let e = check_stake(&j, &me, &c, &stake(j.job_id, &worker, &client, 4_999)).unwrap_err();
        assert!(e.contains("below"), "{e}");
        let plain = TxOut {
            value: Amount::from_base(5_000).unwrap(),
            script_pubkey: p2pkh(&worker.public_key().pubkey_hash()),
        };
        assert!(check_stake(&j, &me, &c, &plain).is_err());
    }
}
