//! The job pool's checks (`docs/protocol.md` §13.5): what it takes, what it ignores without
//! blame, and what it refuses as the sender's fault (which the network scores down).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use camel_core::job::envelope::{Purpose, Sealed};
use camel_core::job::message::{
    Announce, Assign, Bid, Commit, JobMessage, ModelOffer, Offer, size_limit,
};
use camel_core::job::params::JobParams;
use camel_core::job::txs::funded_tx;
use camel_core::job::{Commitment, PromptFormat};
use camel_core::keys::PrivateKey;
use camel_core::rastic::SamplingParams;
use camel_core::templates::{Escrow, Stake};
use camel_core::transaction::{OutPoint, TxOut};
use camel_core::{JobId, ModelId};
use camel_node::jobpool::{JobPool, JobState, PoolError};
use camel_p2p::{JobAcceptance, JobFault, JobHandler, PeerId};
use common::*;

const NOW: u64 = 1_800_000_000;

struct Fixture {
    pool: Arc<JobPool>,
    node: Arc<camel_node::node::Node>,
    clock: Arc<AtomicU64>,
    client: PrivateKey,
    coins: Vec<(OutPoint, TxOut)>,
    _dir: TempDir,
}

fn fixture() -> Fixture {
    let dir = TempDir::new("jobpool");
    let node = Arc::new(open_node(dir.path()));
    let client = key(1);
    let hashes = node.generate(103, &script_of(&client), 1).unwrap();
    let coins = hashes[..3]
        .iter()
        .map(|h| coinbase_coin(&node.store().block(h).unwrap().unwrap()))
        .collect();
    let clock = Arc::new(AtomicU64::new(NOW));
    let c = clock.clone();
    let pool = Arc::new(JobPool::with_clock(
        node.clone(),
        Box::new(move || c.load(Ordering::Relaxed)),
    ));
    Fixture {
        pool,
        node,
        clock,
        client,
        coins,
        _dir: dir,
    }
}

fn params(f: &Fixture, prompt: &str, salt: u8) -> JobParams {
    let (prompt_hash, prompt_len) = JobParams::prompt_fields(prompt);
    JobParams {
        model: ModelId::from_byte_array([7; 32]),
        prompt_format: PromptFormat::Raw,
        prompt_hash,
        prompt_len,
        max_tokens: 16,
        sampling: SamplingParams::GREEDY,
        created_at: NOW,
        timelock: f.node.chain().height() + 30,
        reward: amount(100_000),
        min_stake: amount(50_000),
        client: f.client.public_key(),
        contact: vec![],
        salt: [salt; 16],
    }
}

fn offer(f: &Fixture, p: &JobParams, coin: usize) -> JobMessage {
    let escrow = TxOut {
        value: p.reward,
        script_pubkey: Escrow {
            job_id: p.job_id(),
            client: p.client,
            refund_height: p.timelock,
        }
        .script_pubkey(),
    };
    let tx = funded_tx(
        vec![],
        vec![escrow],
        &f.coins[coin..=coin],
        &f.client,
        script_of(&f.client),
        amount(1_000),
        p.job_id(),
        0,
    )
    .unwrap();
    JobMessage::Offer(Offer {
        params: p.clone(),
        tx,
    })
}

fn peer() -> PeerId {
    PeerId::random()
}

fn gossip(f: &Fixture, m: &[u8]) -> Result<JobAcceptance, JobFault> {
    f.pool.on_gossip(peer(), m)
}

fn is_invalid(r: Result<JobAcceptance, JobFault>) -> bool {
    matches!(r, Err(JobFault::Invalid(_)))
}

fn bid(worker: &PrivateKey, job: JobId, time: u64) -> Bid {
    let mut b = Bid {
        job_id: job,
        worker: worker.public_key(),
        peer: b"peer".to_vec(),
        stake: amount(60_000),
        time,
        sig: vec![],
    };
    b.sign(worker);
    b
}

#[test]
fn offers_enter_the_pool_with_their_escrow() {
    let f = fixture();
    let p = params(&f, "hello", 1);
    let m = offer(&f, &p, 0);
    assert_eq!(gossip(&f, &m.to_bytes()).unwrap(), JobAcceptance::Accept);
    // The job transaction went into the mempool with it.
    let JobMessage::Offer(o) = &m else {
        unreachable!()
    };
    assert!(f.node.mempool().get(&o.tx.txid()).is_some());
    assert_eq!(f.pool.view(&p.job_id()).unwrap().state, JobState::Created);
    // Again: a duplicate, not relayed, not blamed.
    assert_eq!(gossip(&f, &m.to_bytes()).unwrap(), JobAcceptance::Ignore);
    // Mined: still created until a stake is recorded.
    f.node.generate(1, &script_of(&key(9)), 1).unwrap();
    assert!(f.pool.view(&p.job_id()).unwrap().record.is_some());
}

#[test]
fn tampered_oversized_replayed_and_misaddressed_messages_are_the_senders_fault() {
    let f = fixture();
    let p = params(&f, "hello", 2);
    let job = p.job_id();
    gossip(&f, &offer(&f, &p, 0).to_bytes()).unwrap();
    let worker = key(5);

    // Malformed and unknown kinds.
    assert!(is_invalid(gossip(&f, &[])));
    assert!(is_invalid(gossip(&f, &[0x7f, 1, 2])));
    let good = JobMessage::Bid(bid(&worker, job, NOW)).to_bytes();
    assert!(is_invalid(gossip(&f, &good[..good.len() - 3])));
    // Oversized for its kind, refused before decoding.
    let mut big = vec![3u8];
    big.resize(size_limit(3).unwrap() + 1, 0);
    assert!(is_invalid(gossip(&f, &big)));
    // Tampered: a changed stake breaks the bid's signature.
    let mut t = bid(&worker, job, NOW);
    t.stake = amount(1);
    assert!(is_invalid(gossip(&f, &JobMessage::Bid(t).to_bytes())));
    // Replayed from long ago, or from the future.
    assert!(is_invalid(gossip(
        &f,
        &JobMessage::Bid(bid(&worker, job, NOW - 3 * 3600)).to_bytes()
    )));
    assert!(is_invalid(gossip(
        &f,
        &JobMessage::Bid(bid(&worker, job, NOW + 3 * 3600)).to_bytes()
    )));
    // A good bid is taken once; the same again is ignored without blame.
    assert_eq!(gossip(&f, &good).unwrap(), JobAcceptance::Accept);
    assert_eq!(gossip(&f, &good).unwrap(), JobAcceptance::Ignore);
    // A bid for a job the pool does not hold: nobody's fault.
    let other = JobMessage::Bid(bid(&worker, JobId::hash(b"unknown"), NOW)).to_bytes();
    assert_eq!(gossip(&f, &other).unwrap(), JobAcceptance::Ignore);

    // Mis-addressed: an assignment signed by someone other than the job's client.
    let sealed = Sealed::seal_random(
        &mut secp256k1::rand::rng(),
        &worker.public_key(),
        Purpose::Prompt,
        &job,
        b"hello",
    )
    .unwrap();
    let mut a = Assign {
        job_id: job,
        worker: worker.public_key(),
        seq: 1,
        prompt: sealed.clone(),
        sig: vec![],
    };
    a.sign(&key(7));
    assert!(is_invalid(gossip(
        &f,
        &JobMessage::Assign(a.clone()).to_bytes()
    )));
    a.sign(&f.client);
    assert_eq!(
        gossip(&f, &JobMessage::Assign(a.clone()).to_bytes()).unwrap(),
        JobAcceptance::Accept
    );
    // An older or equal seq is ignored.
    let mut again = a.clone();
    again.prompt = Sealed::seal_random(
        &mut secp256k1::rand::rng(),
        &worker.public_key(),
        Purpose::Prompt,
        &job,
        b"hello",
    )
    .unwrap();
    again.sign(&f.client);
    assert_eq!(
        gossip(&f, &JobMessage::Assign(again).to_bytes()).unwrap(),
        JobAcceptance::Ignore
    );

    // A commit from a worker that is not the assigned one.
    let intruder = key(6);
    let mut c = Commitment {
        job_id: job,
        worker: intruder.public_key(),
        stake: OutPoint::new(camel_core::Txid::hash(b"s"), 0),
        output_hash: [1; 32],
        output_len: 3,
        text_hash: [2; 32],
        key_hash: [3; 32],
        ciphertext_hash: [4; 32],
        reward: intruder.public_key().pubkey_hash(),
        sig: vec![],
    };
    c.sign(&intruder);
    let delivery = Sealed::seal_random(
        &mut secp256k1::rand::rng(),
        &f.client.public_key(),
        Purpose::Delivery,
        &job,
        b"ct",
    )
    .unwrap();
    let commit = JobMessage::Commit(Commit {
        commitment: c.clone(),
        delivery: delivery.clone(),
    });
    assert!(is_invalid(gossip(&f, &commit.to_bytes())));
    // A commitment whose signature does not cover its fields.
    let mut forged = c.clone();
    forged.worker = worker.public_key();
    let forged = JobMessage::Commit(Commit {
        commitment: forged,
        delivery: delivery.clone(),
    });
    assert!(is_invalid(gossip(&f, &forged.to_bytes())));
    // The assigned worker's commit is taken.
    c.worker = worker.public_key();
    c.sign(&worker);
    assert_eq!(
        gossip(
            &f,
            &JobMessage::Commit(Commit {
                commitment: c,
                delivery
            })
            .to_bytes()
        )
        .unwrap(),
        JobAcceptance::Accept
    );
    assert!(f.pool.view(&job).unwrap().job.commit.is_some());
}

/// A commit naming the job's stake is refused when that stake is another worker's: the client
/// would be paying for an output nobody can slash.
#[test]
fn a_commit_over_another_workers_stake_is_refused() {
    let f = fixture();
    let p = params(&f, "hello", 9);
    let job = p.job_id();
    gossip(&f, &offer(&f, &p, 0).to_bytes()).unwrap();
    f.node.generate(1, &script_of(&key(9)), 1).unwrap();
    let (worker, other) = (key(5), key(6));
    // The job's first (so its acceptance) stake names `other`.
    let stake = TxOut {
        value: amount(60_000),
        script_pubkey: Stake {
            job_id: job,
            worker: other.public_key(),
            client: f.client.public_key(),
            window_end_height: f.node.chain().height() + 1_000,
        }
        .script_pubkey(),
    };
    let tx = funded_tx(
        vec![],
        vec![stake],
        &f.coins[1..=1],
        &f.client,
        script_of(&f.client),
        amount(1_000),
        job,
        0,
    )
    .unwrap();
    let stake_op = OutPoint::new(f.node.submit_tx(tx).unwrap(), 0);
    f.node.generate(1, &script_of(&key(9)), 1).unwrap();
    assert_eq!(
        f.node
            .store()
            .snapshot()
            .unwrap()
            .try_job(&job)
            .unwrap()
            .unwrap()
            .stake,
        Some(stake_op)
    );
    let sealed = Sealed::seal_random(
        &mut secp256k1::rand::rng(),
        &worker.public_key(),
        Purpose::Prompt,
        &job,
        b"hello",
    )
    .unwrap();
    let mut a = Assign {
        job_id: job,
        worker: worker.public_key(),
        seq: 1,
        prompt: sealed,
        sig: vec![],
    };
    a.sign(&f.client);
    gossip(&f, &JobMessage::Assign(a).to_bytes()).unwrap();
    let mut c = Commitment {
        job_id: job,
        worker: worker.public_key(),
        stake: stake_op,
        output_hash: [1; 32],
        output_len: 3,
        text_hash: [2; 32],
        key_hash: [3; 32],
        ciphertext_hash: [4; 32],
        reward: worker.public_key().pubkey_hash(),
        sig: vec![],
    };
    c.sign(&worker);
    let delivery = Sealed::seal_random(
        &mut secp256k1::rand::rng(),
        &f.client.public_key(),
        Purpose::Delivery,
        &job,
        b"ct",
    )
    .unwrap();
    let r = gossip(
        &f,
        &JobMessage::Commit(Commit {
            commitment: c,
            delivery,
        })
        .to_bytes(),
    );
    assert!(
        matches!(&r, Err(JobFault::Invalid(why)) if why.contains("another worker")),
        "{r:?}"
    );
    assert!(f.pool.view(&job).unwrap().job.commit.is_none());
}

/// A GetJob is a request to one peer: publishing it (gossip) is refused before it leaves.
#[tokio::test]
async fn get_job_is_not_published() {
    let f = fixture();
    let msg = JobMessage::GetJob(JobId::hash(b"any"));
    let r = f.pool.publish(&msg).await;
    assert!(matches!(r, Err(PoolError::Invalid(_))), "{r:?}");
}

#[test]
fn offers_that_do_not_match_their_transaction_are_refused() {
    let f = fixture();
    let p = params(&f, "hello", 3);
    let JobMessage::Offer(mut o) = offer(&f, &p, 0) else {
        unreachable!()
    };
    // Another reward than the escrow holds.
    o.params.reward = amount(99_999);
    assert!(is_invalid(gossip(
        &f,
        &JobMessage::Offer(o.clone()).to_bytes()
    )));
    // A timelock already passed.
    let mut late = params(&f, "hello", 4);
    late.timelock = f.node.chain().height();
    assert!(is_invalid(gossip(&f, &offer(&f, &late, 1).to_bytes())));
    // A job transaction spending coins the client does not have: invalid as a transaction.
    let q = params(&f, "hello", 5);
    let JobMessage::Offer(mut bad) = offer(&f, &q, 2) else {
        unreachable!()
    };
    bad.tx.inputs[0].prev_out = OutPoint::new(camel_core::Txid::hash(b"nothing"), 0);
    let r = f.pool.submit(&JobMessage::Offer(bad).to_bytes());
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn announcements_keep_the_latest_per_worker() {
    let f = fixture();
    let w = key(5);
    let ann = |time: u64, price: u64| {
        let mut a = Announce {
            worker: w.public_key(),
            peer: b"p".to_vec(),
            verifier: true,
            time,
            models: vec![ModelOffer {
                model: ModelId::from_byte_array([7; 32]),
                name: "m".into(),
                price_per_token: price,
                max_tokens: 64,
            }],
            sig: vec![],
        };
        a.sign(&w);
        JobMessage::Announce(a).to_bytes()
    };
    assert_eq!(gossip(&f, &ann(NOW, 10)).unwrap(), JobAcceptance::Accept);
    assert_eq!(
        gossip(&f, &ann(NOW - 5, 20)).unwrap(),
        JobAcceptance::Ignore
    );
    assert_eq!(
        gossip(&f, &ann(NOW + 5, 30)).unwrap(),
        JobAcceptance::Accept
    );
    let list = f.pool.announcements();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].models[0].price_per_token, 30);
    // Ten minutes later it is gone.
    f.clock.store(NOW + 700, Ordering::Relaxed);
    assert!(f.pool.announcements().is_empty());
    assert!(matches!(
        f.pool.submit(&ann(NOW - 3 * 3600 + 700, 1)),
        Err(PoolError::Invalid(_))
    ));
}

#[test]
fn a_restarted_pool_takes_back_a_recorded_job_past_its_timelock() {
    let f = fixture();
    let p = params(&f, "after a restart", 4);
    let m = offer(&f, &p, 0);
    assert_eq!(gossip(&f, &m.to_bytes()).unwrap(), JobAcceptance::Accept);
    f.node.generate(1, &script_of(&key(9)), 1).unwrap();
    // The timelock passes while the node is down; it comes back with an empty pool.
    let behind = p.timelock - f.node.chain().height();
    f.node.generate(behind, &script_of(&key(9)), 1).unwrap();
    let c = f.clock.clone();
    let fresh = JobPool::with_clock(f.node.clone(), Box::new(move || c.load(Ordering::Relaxed)));
    // The chain records the job: its offer is taken whatever its timelock, so the parties
    // can still follow it to its end (here, the escrow's refund); gossiped, it is kept but not
    // relayed (old offers are not spread again).
    assert_eq!(
        fresh.on_gossip(peer(), &m.to_bytes()).unwrap(),
        JobAcceptance::Ignore
    );
    assert_eq!(fresh.view(&p.job_id()).unwrap().state, JobState::Expired);
    // A job the chain does not know is refused once its timelock is past.
    let q = params(&f, "never mined", 5);
    let mut late = q.clone();
    late.timelock = f.node.chain().height();
    let n = offer(&f, &late, 1);
    assert!(matches!(
        fresh.submit(&n.to_bytes()),
        Err(PoolError::Invalid(_))
    ));
}
