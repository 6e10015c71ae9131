//! The job protocol end to end, on a regtest network of `camel-worker node` processes with the
//! bundled model: an honest job, one whose worker is killed (SIGKILL) after committing and
//! restarted, a worker that substitutes a token, one that delivers garbage, one that never
//! reveals its key, and a client that never pays. Balances are checked to the
//! base unit, and the coins of the whole network are counted against the subsidies mined.
//!
//! One network serves every scenario, one after the other (each model process costs memory and
//! start-up time; the scenarios pick their worker by key).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use camel_core::Amount;
use camel_core::address::Address;
use camel_core::hash::{ModelId, from_hex};
use camel_core::job::PromptFormat;
use camel_core::job::message::JobMessage;
use camel_core::keys::{PrivateKey, PublicKey};
use camel_core::params::Params;
use camel_core::rastic::SamplingParams;
use camel_testnet::{NodeSpec, Testnet};
use camel_wallet::job::{JobClient, JobRequest, Outcome};
use camel_wallet::node::NodeClient;

const FEE: u64 = 2_000;
const WORKER_FEE: u64 = 2_000;
const STAKE: u64 = 100_000;
const REWARD: u64 = 50_000;

fn root(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("camel-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn address(k: &PrivateKey) -> String {
    Address::p2pkh(&k.public_key(), Params::regtest().address_version).to_string()
}

fn worker_key(net: &Testnet, i: usize) -> PublicKey {
    let (hex, _) = net.nodes[i].worker.clone().unwrap();
    PublicKey::from_slice(&from_hex(&hex).unwrap()).unwrap()
}

fn worker_address(net: &Testnet, i: usize) -> String {
    net.nodes[i].worker.clone().unwrap().1
}

async fn balance(node: &NodeClient, addr: &str) -> u64 {
    node.balance(addr).await.unwrap()
}

/// Waits until `addr`'s balance is `want` (the address index trails the tip a little).
async fn await_balance(node: &NodeClient, addr: &str, want: u64, what: &str) {
    let start = Instant::now();
    loop {
        let b = balance(node, addr).await;
        if b == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "{what}: balance {b}, expected {want} (difference {})",
            b as i128 - want as i128
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn request(model: ModelId, prompt: &str, worker: PublicKey) -> JobRequest {
    JobRequest {
        model,
        prompt: prompt.into(),
        format: PromptFormat::Raw,
        max_tokens: 12,
        sampling: SamplingParams::GREEDY,
        reward: Amount::from_base(REWARD).unwrap(),
        min_stake: Amount::from_base(STAKE).unwrap(),
        timelock_blocks: 30,
        fee: FEE,
        verifiers: 2,
        workers: vec![worker],
    }
}

/// Every coin of the network, against the subsidies of the blocks mined.
async fn assert_supply(node: &NodeClient, addrs: &[String]) {
    let params = Params::regtest();
    let start = Instant::now();
    loop {
        let tip = node.height().await.unwrap();
        let minted: u64 = (1..=tip).map(|h| params.block_subsidy(h).to_base()).sum();
        let mut held = 0;
        for a in addrs {
            held += balance(node, a).await;
        }
        // The tip may move between the two reads: retry until they agree.
        if held == minted && node.height().await.unwrap() == tip {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "coins held {held} differ from coins minted {minted} at height {tip}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[test]
fn jobs_end_to_end() {
    let model = common::model_path();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_camel-worker"));
    let root = root("jobs");
    let miner = PrivateKey::from_slice(&[0x22; 32]).unwrap();
    let client_key = PrivateKey::from_slice(&[0x11; 32]).unwrap();
    let worker = |cheat: Option<&str>| NodeSpec {
        model: Some(model.clone()),
        cheat: cheat.map(str::to_owned),
        args: vec![
            "--stake".into(),
            STAKE.to_string(),
            "--fee".into(),
            WORKER_FEE.to_string(),
        ],
    };
    // 0, 1: honest; 2: substitutes a token; 3: delivers garbage; 4: never reveals.
    let specs = vec![
        worker(None),
        worker(None),
        worker(Some("substitute")),
        worker(Some("garbage-delivery")),
        worker(Some("no-reveal")),
    ];
    let mut net = Testnet::start(&bin, &root, specs, &address(&miner)).unwrap();
    let model_id: ModelId = camel_worker::model::BUNDLED_MODEL_ID.parse().unwrap();

    // Funding: coinbases to the client and each worker, matured.
    net.mine_to(3, &address(&client_key)).unwrap();
    for i in 0..net.nodes.len() {
        net.mine_to(2, &worker_address(&net, i)).unwrap();
    }
    net.mine(100).unwrap();
    net.pace(Duration::from_millis(600));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let node = net.nodes[0].client();
    let client = JobClient::new(node.clone(), client_key, Params::regtest());
    let client_addr = address(&client_key);
    let mut everyone: Vec<String> = (0..net.nodes.len())
        .map(|i| worker_address(&net, i))
        .collect();
    everyone.push(client_addr.clone());
    everyone.push(address(&miner));

    rt.block_on(async {
        // Workers announce their model; wait until the client's node knows all five.
        let start = Instant::now();
        while node.workers().await.unwrap().len() < 5 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "workers did not announce"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // 1. Honest job: paid, delivered, verified by two other peers, settled.
        let c0 = balance(&node, &client_addr).await;
        let w0 = balance(&node, &worker_address(&net, 0)).await;
        let req = request(model_id, "The capital of France is", worker_key(&net, 0));
        let (job, outcome) = client.run(&req).await.unwrap();
        let Outcome::Settled { delivery, verdicts } = outcome else {
            panic!("honest job: {outcome:?}")
        };
        assert!(
            !delivery.tokens.is_empty() && delivery.tokens.len() <= 12,
            "{delivery:?}"
        );
        assert!(!delivery.text.is_empty());
        assert!(verdicts.len() >= 2);
        for v in &verdicts {
            assert!(v.accepts(), "{v:?}");
            assert_ne!(
                v.verifier,
                worker_key(&net, 0),
                "the worker verified itself"
            );
            assert_eq!(
                v.checked as usize,
                delivery.tokens.len(),
                "a full check covers every position"
            );
        }
        // The client paid the reward and two fees; the worker, once its stakes are back,
        // earned the reward less its three fees (stake, claim, reclaim).
        await_balance(
            &node,
            &client_addr,
            c0 - REWARD - 2 * FEE,
            "client after the honest job",
        )
        .await;
        await_balance(
            &node,
            &worker_address(&net, 0),
            w0 + REWARD - 3 * WORKER_FEE,
            "honest worker",
        )
        .await;
        let info = node.job(&job.job_id).await.unwrap().unwrap();
        assert!(info.claimed_height.is_some() && info.disputed_height.is_none());

        // 1b. A worker killed with SIGKILL right after its commitment restarts on its data
        // directory, puts the job back in its (in-memory) pool and still claims and settles.
        let c0 = balance(&node, &client_addr).await;
        let w0 = balance(&node, &worker_address(&net, 1)).await;
        let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
        let follower =
            JobClient::new(node.clone(), client_key, Params::regtest()).with_progress(tx);
        let req = request(model_id, "The capital of Italy is", worker_key(&net, 1));
        let running = tokio::spawn(async move { follower.run(&req).await });
        loop {
            match tokio::time::timeout(Duration::from_secs(180), progress.recv()).await {
                Ok(Some(camel_wallet::job::Progress::Committed { .. })) => break,
                Ok(Some(_)) => {}
                other => panic!("no commitment from the worker to kill: {other:?}"),
            }
        }
        let killed = net.nodes[1].pid();
        // Testnet's calls block on their own runtime: run the restart off this one.
        std::thread::scope(|s| s.spawn(|| net.restart(1)).join().unwrap()).unwrap();
        assert_ne!(net.nodes[1].pid(), killed, "a new worker process");
        let (job, outcome) = running.await.unwrap().unwrap();
        let Outcome::Settled { delivery, verdicts } = outcome else {
            panic!("job across a worker restart: {outcome:?}")
        };
        assert!(!delivery.tokens.is_empty());
        assert!(verdicts.len() >= 2 && verdicts.iter().all(|v| v.accepts()));
        await_balance(
            &node,
            &client_addr,
            c0 - REWARD - 2 * FEE,
            "client after the job across a restart",
        )
        .await;
        await_balance(
            &node,
            &worker_address(&net, 1),
            w0 + REWARD - 3 * WORKER_FEE,
            "restarted worker",
        )
        .await;
        let info = node.job(&job.job_id).await.unwrap().unwrap();
        assert!(info.claimed_height.is_some() && info.disputed_height.is_none());
        let log = std::fs::read_to_string(&net.nodes[1].log).unwrap();
        assert!(
            log.contains(&format!("job {} is back in the pool", job.job_id)),
            "the restarted worker did not resume the job from its records"
        );

        // 2. A worker that substitutes a token: the verifiers find a provable failure, the
        // fraud proof is mined (judged by model-holding nodes), stake and payment go back.
        let c0 = balance(&node, &client_addr).await;
        let w0 = balance(&node, &worker_address(&net, 2)).await;
        let req = request(model_id, "Once upon a time", worker_key(&net, 2));
        let (job, outcome) = client.run(&req).await.unwrap();
        let Outcome::Disputed { slash, why } = outcome else {
            panic!("substituting worker: {outcome:?}")
        };
        assert!(why.contains("position"), "{why}");
        let start = Instant::now();
        loop {
            let info = node.job(&job.job_id).await.unwrap().unwrap();
            if info.disputed_height.is_some() {
                assert_eq!(info.state, "disputed");
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "slash {slash} not mined"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Client: fees of the job, the payment and the slash; back: the reward and the stake.
        await_balance(
            &node,
            &client_addr,
            c0 - 3 * FEE + STAKE,
            "client after the slash",
        )
        .await;
        await_balance(
            &node,
            &worker_address(&net, 2),
            w0 - STAKE - 2 * WORKER_FEE,
            "cheating worker",
        )
        .await;

        // 3. Garbage delivery: provable by any node from the key and the ciphertext.
        let c0 = balance(&node, &client_addr).await;
        let req = request(model_id, "The sky is", worker_key(&net, 3));
        let (_, outcome) = client.run(&req).await.unwrap();
        let Outcome::Disputed { why, .. } = outcome else {
            panic!("garbage delivery: {outcome:?}")
        };
        assert!(why.contains("delivery"), "{why}");
        await_balance(
            &node,
            &client_addr,
            c0 - 3 * FEE + STAKE,
            "client after the garbage slash",
        )
        .await;

        // 4. A worker that never reveals: the payment comes back at its timeout.
        let c0 = balance(&node, &client_addr).await;
        let w0 = balance(&node, &worker_address(&net, 4)).await;
        let req = request(model_id, "Water boils at", worker_key(&net, 4));
        let (_, outcome) = client.run(&req).await.unwrap();
        assert!(matches!(outcome, Outcome::Refunded { .. }), "{outcome:?}");
        // Client: job fee, payment fee, refund fee; the worker gets its stake back (two fees).
        await_balance(
            &node,
            &client_addr,
            c0 - 3 * FEE,
            "client after the payment refund",
        )
        .await;
        await_balance(
            &node,
            &worker_address(&net, 4),
            w0 - 2 * WORKER_FEE,
            "silent worker",
        )
        .await;

        // 5. A client that never pays: the worker keeps its output and its stake, the escrow
        // comes back at the timelock.
        let c0 = balance(&node, &client_addr).await;
        let w0 = balance(&node, &worker_address(&net, 1)).await;
        let req = request(model_id, "Paris is", worker_key(&net, 1));
        let job = client.submit(&req).await.unwrap();
        let start = Instant::now();
        loop {
            let info = node.job(&job.job_id).await.unwrap().unwrap();
            let bid = info.bids.iter().find_map(|b| match b {
                JobMessage::Bid(b) if b.worker == worker_key(&net, 1) => Some(b.clone()),
                _ => None,
            });
            if info.assign.is_none()
                && let Some(b) = bid
            {
                client.assign(&job, &b, 1).await.unwrap();
            }
            if info.commit.is_some() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "no commit");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        loop {
            let info = node.job(&job.job_id).await.unwrap().unwrap();
            if info.tip >= job.params.timelock {
                client.refund_escrow(&job, &info, &req).await.unwrap();
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        await_balance(
            &node,
            &client_addr,
            c0 - 2 * FEE,
            "client after the escrow refund",
        )
        .await;
        await_balance(
            &node,
            &worker_address(&net, 1),
            w0 - 2 * WORKER_FEE,
            "unpaid worker",
        )
        .await;

        // Nothing was created or destroyed: every coin is in someone's balance.
        assert_supply(&node, &everyone).await;
    });
    net.stop_pace();
    for n in &mut net.nodes {
        n.stop(Duration::from_secs(20));
    }
    let _ = std::fs::remove_dir_all(&root);
}
