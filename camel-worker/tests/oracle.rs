//! The fraud-proof oracle with the real model, in process: a job is done honestly on chain,
//! then the client accuses the worker falsely. A node holding the model refuses the slash in
//! its mempool and refuses a block carrying it, staying on the honest chain; a node without the
//! model refuses malformed evidence too, and defers only what needs the model. A true fraud
//! proof (a substituted token) is accepted by the model holder.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use camel_core::Amount;
use camel_core::block::Block;
use camel_core::hash::{BlockHash, sha256};
use camel_core::interpreter::FraudProofOracle;
use camel_core::job::evidence::{Evidence, EvidenceBody, JobOracle, NoModels};
use camel_core::job::output::{Delivery, chain_hashes, output_hash, seal_delivery};
use camel_core::job::txs::{Spend, Unlock, funded_tx, signed_tx};
use camel_core::job::{Commitment, JobParams, PromptFormat};
use camel_core::keys::PrivateKey;
use camel_core::params::Params;
use camel_core::rastic::SamplingParams;
use camel_core::templates::{Escrow, Payment, Stake, p2pkh};
use camel_core::transaction::{OutPoint, Transaction, TxOut};
use camel_node::chain::Chain;
use camel_node::miner::{WorkUnit, mine};
use camel_node::node::{Node, NodeConfig, NodeError};
use camel_worker::engine::Engine;
use camel_worker::judge::{
    EngineJudge, SharedEngine, canonical_config, prompt_tokens, spec, text_of,
};

fn amount(n: u64) -> Amount {
    Amount::from_base(n).unwrap()
}

fn tmp(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("camel-oracle-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn block_on(
    chain: &Chain,
    txs: Vec<Transaction>,
    fees: u64,
    payout: &camel_core::script::Script,
) -> Block {
    let parent = chain.tip();
    let ctx = chain
        .context_after(&parent, camel_node::chain::now())
        .unwrap();
    let unit = WorkUnit {
        height: ctx.height,
        prev: parent,
        bits: ctx.expected_bits,
        time: ctx.median_time_past + 1,
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

fn reason(e: NodeError) -> String {
    match e {
        NodeError::Mempool(m) => m.reason().unwrap_or("storage").to_owned(),
        NodeError::Chain(c) => c.reason().unwrap_or("storage").to_owned(),
        other => format!("{other}"),
    }
}

/// Moves every block of `from` that `to` lacks.
fn sync(from: &Node, to: &Node) {
    let top = from.chain().height();
    // Bound first: the chain guard must not live through the loop that submits blocks.
    let start = to.chain().height() + 1;
    for h in start..=top {
        let hash: BlockHash = from.chain().hash_at(h).unwrap();
        to.submit_block(from.store().block(&hash).unwrap().unwrap())
            .unwrap();
    }
}

#[test]
fn oracle_nodes_refuse_false_accusations_and_accept_true_ones() {
    let engine = Engine::load(&common::model_path(), None, 0).unwrap();
    let shared = SharedEngine::new(engine, canonical_config(2));
    let judge = EngineJudge {
        engine: shared.clone(),
    };
    let da = tmp("a");
    let db = tmp("b");
    // A dispute window long enough for both jobs to stay disputable while the test goes on.
    let params = Params::regtest().with_job_windows(2, 60);
    let oracle_node = Node::open(
        &da.join("chain.redb"),
        params.clone(),
        NodeConfig::default(),
        Arc::new(JobOracle::new(judge.clone())),
    )
    .unwrap();
    let plain_node = Node::open(
        &db.join("chain.redb"),
        params.clone(),
        NodeConfig::default(),
        Arc::new(JobOracle::new(NoModels)),
    )
    .unwrap();

    let client = PrivateKey::from_slice(&[0x31; 32]).unwrap();
    let worker = PrivateKey::from_slice(&[0x32; 32]).unwrap();
    let miner = p2pkh(&[9; 20]);
    let script = |k: &PrivateKey| p2pkh(&k.public_key().pubkey_hash());
    let coin_of = |node: &Node, h: &BlockHash| {
        let b = node.store().block(h).unwrap().unwrap();
        (
            OutPoint::new(b.txdata[0].txid(), 0),
            b.txdata[0].outputs[0].clone(),
        )
    };
    let c_hashes = oracle_node.generate(2, &script(&client), 1).unwrap();
    let w_hashes = oracle_node.generate(2, &script(&worker), 1).unwrap();
    oracle_node.generate(100, &miner, 1).unwrap();
    let c_coins: Vec<_> = c_hashes.iter().map(|h| coin_of(&oracle_node, h)).collect();
    let w_coins: Vec<_> = w_hashes.iter().map(|h| coin_of(&oracle_node, h)).collect();
    let fee = amount(5_000);

    // Two jobs: one done honestly, one with a substituted token.
    let mut jobs = Vec::new();
    for (n, prompt) in ["The capital of France is", "Once upon a time"]
        .into_iter()
        .enumerate()
    {
        let tip = oracle_node.chain().height();
        let (prompt_hash, prompt_len) = JobParams::prompt_fields(prompt);
        let p = JobParams {
            model: shared.model_id(),
            prompt_format: PromptFormat::Raw,
            prompt_hash,
            prompt_len,
            max_tokens: 8,
            sampling: SamplingParams::GREEDY,
            created_at: 1_800_000_000,
            timelock: tip + 40,
            reward: amount(1_000_000),
            min_stake: amount(500_000),
            client: client.public_key(),
            contact: vec![],
            salt: [n as u8; 16],
        };
        let j = p.job_id();
        let escrow = TxOut {
            value: p.reward,
            script_pubkey: Escrow {
                job_id: j,
                client: client.public_key(),
                refund_height: p.timelock,
            }
            .script_pubkey(),
        };
        let job_tx = funded_tx(
            vec![],
            vec![escrow],
            &c_coins[n..=n],
            &client,
            script(&client),
            fee,
            j,
            0,
        )
        .unwrap();
        oracle_node.submit_tx(job_tx.clone()).unwrap();
        oracle_node.generate(1, &miner, 1).unwrap();
        let record =
            camel_core::job::rules::JobView::job(&oracle_node.store().snapshot().unwrap(), &j)
                .unwrap();
        let window_end = record.dispute_end(oracle_node.chain().height() + 1, &params) + 30;
        let stake = TxOut {
            value: amount(500_000),
            script_pubkey: Stake {
                job_id: j,
                worker: worker.public_key(),
                client: client.public_key(),
                window_end_height: window_end,
            }
            .script_pubkey(),
        };
        let stake_tx = funded_tx(
            vec![],
            vec![stake],
            &w_coins[n..=n],
            &worker,
            script(&worker),
            fee,
            j,
            0,
        )
        .unwrap();
        oracle_node.submit_tx(stake_tx.clone()).unwrap();
        oracle_node.generate(1, &miner, 1).unwrap();

        // The output, generated in the canonical configuration; job 1's is altered.
        let mut tokens = shared.with(|e, cfg| {
            let prompt = prompt_tokens(e, &p, prompt.as_bytes()).unwrap();
            e.generate(cfg, &prompt, &spec(&p), |_, _| {})
                .unwrap()
                .tokens
        });
        if n == 1 {
            tokens[2] = (tokens[2] + 1) % shared.engine.n_vocab();
        }
        let text = shared.with(|e, _| text_of(e, &tokens));
        let key = [0x40 + n as u8; 32];
        let ciphertext = seal_delivery(
            &key,
            &j,
            &Delivery {
                tokens: tokens.clone(),
                text: text.clone(),
            },
        )
        .unwrap();
        let mut c = Commitment {
            job_id: j,
            worker: worker.public_key(),
            stake: OutPoint::new(stake_tx.txid(), 0),
            output_hash: output_hash(&tokens),
            output_len: tokens.len() as u32,
            text_hash: sha256(&text),
            key_hash: sha256(&key),
            ciphertext_hash: sha256(&ciphertext),
            reward: worker.public_key().pubkey_hash(),
            sig: vec![],
        };
        c.sign(&worker);

        // Paid once payable, claimed two blocks later.
        oracle_node
            .generate(params.job_payment_delay, &miner, 1)
            .unwrap();
        let pay_out = TxOut {
            value: p.reward,
            script_pubkey: Payment {
                job_id: j,
                key_hash: c.key_hash,
                worker: worker.public_key(),
                client: client.public_key(),
                timeout_height: window_end,
            }
            .script_pubkey(),
        };
        // The escrow holds exactly the reward: the fee comes from the job transaction's change.
        let payment = funded_tx(
            vec![Spend {
                outpoint: OutPoint::new(job_tx.txid(), 0),
                output: job_tx.outputs[0].clone(),
                unlock: Unlock::EscrowPay(client),
            }],
            vec![pay_out],
            &[(OutPoint::new(job_tx.txid(), 1), job_tx.outputs[1].clone())],
            &client,
            script(&client),
            fee,
            j,
            0,
        )
        .unwrap();
        oracle_node.submit_tx(payment.clone()).unwrap();
        oracle_node.generate(2, &miner, 1).unwrap();
        let lock_end = record.dispute_end(oracle_node.chain().height() + 1, &params) + 30;
        let lock = TxOut {
            value: p.reward,
            script_pubkey: Stake {
                job_id: j,
                worker: worker.public_key(),
                client: client.public_key(),
                window_end_height: lock_end,
            }
            .script_pubkey(),
        };
        let claim = funded_tx(
            vec![Spend {
                outpoint: OutPoint::new(payment.txid(), 0),
                output: payment.outputs[0].clone(),
                unlock: Unlock::Claim(worker, key),
            }],
            vec![lock],
            &[(
                OutPoint::new(stake_tx.txid(), 1),
                stake_tx.outputs[1].clone(),
            )],
            &worker,
            script(&worker),
            fee,
            j,
            0,
        )
        .unwrap();
        oracle_node.submit_tx(claim.clone()).unwrap();
        oracle_node.generate(1, &miner, 1).unwrap();
        jobs.push((p, prompt, tokens, c, stake_tx, claim));
    }
    sync(&oracle_node, &plain_node);

    let slash_of = |stake_tx: &Transaction, claim: &Transaction, ev: &Evidence| {
        let spends = vec![
            Spend {
                outpoint: OutPoint::new(stake_tx.txid(), 0),
                output: stake_tx.outputs[0].clone(),
                unlock: Unlock::Slash(client, ev.to_bytes()),
            },
            Spend {
                outpoint: OutPoint::new(claim.txid(), 0),
                output: claim.outputs[0].clone(),
                unlock: Unlock::Slash(client, ev.to_bytes()),
            },
        ];
        let total = stake_tx.outputs[0]
            .value
            .checked_add(claim.outputs[0].value)
            .unwrap();
        signed_tx(
            &spends,
            vec![TxOut {
                value: total.checked_sub(fee).unwrap(),
                script_pubkey: script(&client),
            }],
            camel_core::JobId::ZERO,
            0,
        )
        .unwrap()
    };
    let inference =
        |p: &JobParams, prompt: &str, tokens: &[u32], c: &Commitment, x: usize| Evidence {
            commitment: c.clone(),
            body: EvidenceBody::Inference {
                params: p.clone(),
                prompt: prompt.as_bytes().to_vec(),
                prefix: tokens[..=x].to_vec(),
                suffix_hash: chain_hashes(tokens)[x + 1],
            },
        };

    // The false accusation: an honest position cited.
    let (p, prompt, tokens, c, stake_tx, claim) = &jobs[0];
    let false_slash = slash_of(stake_tx, claim, &inference(p, prompt, tokens, c, 2));
    assert_eq!(
        reason(oracle_node.submit_tx(false_slash.clone()).unwrap_err()),
        "fraud-proof-invalid"
    );
    // The node without the model cannot judge it, and does not take it into its pool either.
    assert_eq!(
        reason(plain_node.submit_tx(false_slash.clone()).unwrap_err()),
        "fraud-proof-unavailable"
    );
    // Garbage evidence is refused by both, model or not.
    let junk = signed_tx(
        &[Spend {
            outpoint: OutPoint::new(stake_tx.txid(), 0),
            output: stake_tx.outputs[0].clone(),
            unlock: Unlock::Slash(client, vec![1, 2, 3, 4]),
        }],
        vec![TxOut {
            value: stake_tx.outputs[0].value.checked_sub(fee).unwrap(),
            script_pubkey: script(&client),
        }],
        camel_core::JobId::ZERO,
        0,
    )
    .unwrap();
    assert_eq!(
        reason(oracle_node.submit_tx(junk.clone()).unwrap_err()),
        "fraud-proof-invalid"
    );
    assert_eq!(
        reason(plain_node.submit_tx(junk.clone()).unwrap_err()),
        "fraud-proof-invalid"
    );

    // A block carrying the false slash: the model holder refuses it and keeps its tip.
    let tip_before = oracle_node.chain().tip();
    let bad_block = block_on(
        &oracle_node.chain(),
        vec![false_slash.clone()],
        fee.to_base(),
        &miner,
    );
    let r = oracle_node.submit_block(bad_block.clone());
    assert!(
        r.is_err(),
        "the block with a false fraud proof was accepted"
    );
    assert_eq!(reason(r.unwrap_err()), "fraud-proof-invalid");
    assert_eq!(oracle_node.chain().tip(), tip_before);
    // A block with garbage evidence is refused by every node.
    let junk_block = block_on(&oracle_node.chain(), vec![junk], fee.to_base(), &miner);
    assert!(oracle_node.submit_block(junk_block.clone()).is_err());
    assert!(plain_node.submit_block(junk_block).is_err());
    assert_eq!(plain_node.chain().tip(), tip_before);
    // The honest chain goes on at both; the worker's stake and claim are untouched.
    oracle_node.generate(1, &miner, 1).unwrap();
    sync(&oracle_node, &plain_node);
    let snap = oracle_node.store().snapshot().unwrap();
    assert!(
        snap.try_coin(&OutPoint::new(stake_tx.txid(), 0))
            .unwrap()
            .is_some()
    );
    assert!(
        snap.try_coin(&OutPoint::new(claim.txid(), 0))
            .unwrap()
            .is_some()
    );

    // The true fraud proof: the substituted position of job 1.
    let (p, prompt, tokens, c, stake_tx, claim) = &jobs[1];
    let ev = inference(p, prompt, tokens, c, 2);
    assert_eq!(
        JobOracle::new(judge.clone()).check_fraud_proof(&c.job_id, &c.worker, &ev.to_bytes()),
        Ok(())
    );
    // Citing the position before it proves nothing.
    assert!(
        JobOracle::new(judge)
            .check_fraud_proof(
                &c.job_id,
                &c.worker,
                &inference(p, prompt, tokens, c, 1).to_bytes()
            )
            .is_err()
    );
    let slash = slash_of(stake_tx, claim, &ev);
    oracle_node.submit_tx(slash.clone()).unwrap();
    let h = oracle_node.generate(1, &miner, 1).unwrap()[0];
    assert!(
        oracle_node
            .store()
            .block(&h)
            .unwrap()
            .unwrap()
            .txdata
            .contains(&slash)
    );
    let record =
        camel_core::job::rules::JobView::job(&oracle_node.store().snapshot().unwrap(), &c.job_id)
            .unwrap();
    assert!(record.disputed_height.is_some());
    let _ = std::fs::remove_dir_all(&da);
    let _ = std::fs::remove_dir_all(&db);
}
