//! Mempool policy: fees, replacement, eviction, standardness, templates and block updates.

mod common;

use std::sync::Arc;

use camel_core::block::Block;
use camel_core::hash::BlockHash;
use camel_core::interpreter::NoFraudProofs;
use camel_core::params::Params;
use camel_core::script::Script;
use camel_core::transaction::{OutPoint, Transaction, TxOut};
use camel_node::mempool::Policy;
use camel_node::node::{Node, NodeConfig, NodeError};
use common::*;

fn reason(e: NodeError) -> String {
    match e {
        NodeError::Mempool(m) => m.reason().unwrap_or("storage").to_owned(),
        other => panic!("not a mempool rejection: {other}"),
    }
}

/// A node with `n` mature coinbases paying key(1), and those coins.
fn funded(dir: &TempDir, policy: Policy, n: usize) -> (Node, Vec<(OutPoint, TxOut)>) {
    let node = Node::open(
        &dir.path().join("chain.redb"),
        Params::regtest(),
        NodeConfig {
            script_threads: 2,
            policy,
            ..NodeConfig::default()
        },
        Arc::new(NoFraudProofs),
    )
    .unwrap();
    let hashes = node
        .generate(100 + n as u32, &script_of(&key(1)), 1)
        .unwrap();
    let coins = hashes[..n]
        .iter()
        .map(|h| coinbase_coin(&block(&node, h)))
        .collect();
    (node, coins)
}

fn block(node: &Node, h: &BlockHash) -> Block {
    node.store().block(h).unwrap().unwrap()
}

fn pay(coin: (OutPoint, TxOut), fee: u64, to: u8) -> Transaction {
    let value = coin.1.value.to_base() - fee;
    spend(
        &key(1),
        &[coin],
        vec![TxOut {
            value: amount(value),
            script_pubkey: script_of(&key(to)),
        }],
    )
}

#[test]
fn fee_floor_standardness_and_double_spends() {
    let d = TempDir::new("mp-policy");
    let (node, coins) = funded(&d, Policy::default(), 2);
    assert_eq!(
        reason(node.submit_tx(pay(coins[0].clone(), 0, 2)).unwrap_err()),
        "min-relay-fee-not-met"
    );
    let mut odd = pay(coins[0].clone(), 10_000, 2);
    odd.outputs[0].script_pubkey = Script::new(vec![0x51]);
    let odd = spend(&key(1), &[coins[0].clone()], odd.outputs);
    assert_eq!(reason(node.submit_tx(odd).unwrap_err()), "scriptpubkey");
    let first = pay(coins[0].clone(), 10_000, 2);
    let txid = node.submit_tx(first.clone()).unwrap();
    assert_eq!(
        reason(node.submit_tx(first).unwrap_err()),
        "txn-already-in-mempool"
    );
    // Same fee: no replacement.
    assert_eq!(
        reason(
            node.submit_tx(pay(coins[0].clone(), 10_000, 3))
                .unwrap_err()
        ),
        "insufficient-fee"
    );
    assert!(node.mempool().get(&txid).is_some());
    // A bad signature fails the script check.
    let mut forged = pay(coins[1].clone(), 10_000, 2);
    forged.outputs[0].value = amount(forged.outputs[0].value.to_base() - 1);
    let good_sig = pay(coins[1].clone(), 10_000, 2).inputs[0]
        .script_sig
        .clone();
    forged.inputs[0].script_sig = good_sig;
    assert_ne!(reason(node.submit_tx(forged).unwrap_err()), "");
    assert_eq!(node.mempool().len(), 1);
}

#[test]
fn replacement_evicts_conflicts_and_their_children() {
    let d = TempDir::new("mp-rbf");
    let (node, coins) = funded(&d, Policy::default(), 1);
    let parent = pay(coins[0].clone(), 1_000, 1);
    let parent_id = node.submit_tx(parent.clone()).unwrap();
    let child = pay(coins_of(&parent)[0].clone(), 1_000, 2);
    let child_id = node.submit_tx(child).unwrap();
    assert_eq!(node.mempool().len(), 2);
    // Must pay more than both replaced transactions together, plus its own relay fee.
    assert_eq!(
        reason(node.submit_tx(pay(coins[0].clone(), 1_900, 3)).unwrap_err()),
        "insufficient-fee"
    );
    assert_eq!(node.mempool().spender(&coins[0].0), Some(parent_id));
    let replacement = node.submit_tx(pay(coins[0].clone(), 50_000, 3)).unwrap();
    let pool = node.mempool();
    assert_eq!(pool.spender(&coins[0].0), Some(replacement));
    assert!(pool.get(&parent_id).is_none());
    assert!(pool.get(&child_id).is_none());
    assert!(pool.get(&replacement).is_some());
    assert_eq!(pool.len(), 1);
}

#[test]
fn full_pool_evicts_the_lowest_fee_rate() {
    let d = TempDir::new("mp-evict");
    let policy = Policy {
        max_count: 3,
        ..Policy::default()
    };
    let (node, coins) = funded(&d, policy, 5);
    let ids: Vec<_> = [2_000, 3_000, 4_000]
        .iter()
        .zip(&coins)
        .map(|(fee, c)| node.submit_tx(pay(c.clone(), *fee, 2)).unwrap())
        .collect();
    // Lower than everything: refused.
    assert_eq!(
        reason(node.submit_tx(pay(coins[3].clone(), 1_000, 2)).unwrap_err()),
        "mempool-full"
    );
    // Higher: the 2,000 one goes.
    let high = node.submit_tx(pay(coins[4].clone(), 9_000, 2)).unwrap();
    let pool = node.mempool();
    assert_eq!(pool.len(), 3);
    assert!(pool.get(&ids[0]).is_none());
    assert!(pool.get(&ids[1]).is_some() && pool.get(&high).is_some());
}

#[test]
fn templates_order_by_fee_rate_parents_first_and_blocks_clear_the_pool() {
    let d = TempDir::new("mp-template");
    let (node, coins) = funded(&d, Policy::default(), 2);
    // A low-fee parent with a high-fee child, and a medium independent transaction.
    let parent = pay(coins[0].clone(), 500, 1);
    let child = pay(coins_of(&parent)[0].clone(), 90_000, 2);
    let medium = pay(coins[1].clone(), 20_000, 2);
    node.submit_tx(parent.clone()).unwrap();
    node.submit_tx(child.clone()).unwrap();
    node.submit_tx(medium.clone()).unwrap();
    let unit = node.work_unit(&script_of(&key(9))).unwrap();
    let order: Vec<_> = unit.txs.iter().map(Transaction::txid).collect();
    assert_eq!(order, vec![medium.txid(), parent.txid(), child.txid()]);
    let subsidy = node.params().block_subsidy(unit.height).to_base();
    assert_eq!(unit.reward.to_base(), subsidy + 500 + 90_000 + 20_000);
    // Mining takes them all out of the pool, and pays the fees.
    let h = node.generate(1, &script_of(&key(9)), 1).unwrap()[0];
    assert_eq!(node.mempool().len(), 0);
    let b = block(&node, &h);
    assert_eq!(b.txdata.len(), 4);
    assert_eq!(b.txdata[0].outputs[0].value.to_base(), subsidy + 110_500);
    // The confirmed transactions are found by txid in the chain once indexed.
    let snap = node
        .indexed_snapshot(std::time::Duration::from_secs(30))
        .unwrap();
    assert_eq!(snap.tx_location(&child.txid()).unwrap(), Some((h, 3)));
}

#[test]
fn a_transaction_conflicting_with_a_block_leaves_the_pool() {
    let (da, db) = (TempDir::new("mp-conf-a"), TempDir::new("mp-conf-b"));
    let (a, coins) = funded(&da, Policy::default(), 1);
    let b = open_node(db.path());
    let height = a.chain().height();
    for h in 1..=height {
        let hash = a.chain().hash_at(h).unwrap();
        b.submit_block(block(&a, &hash)).unwrap();
    }
    let in_pool = a.submit_tx(pay(coins[0].clone(), 1_000, 2)).unwrap();
    b.submit_tx(pay(coins[0].clone(), 5_000, 3)).unwrap();
    let mined = b.generate(1, &script_of(&key(9)), 1).unwrap()[0];
    a.submit_block(block(&b, &mined)).unwrap();
    assert!(a.mempool().get(&in_pool).is_none());
    assert_eq!(a.mempool().len(), 0);
}

#[test]
fn a_job_payment_waits_for_its_delay_height() {
    use camel_core::hash::JobId;
    use camel_core::sighash::SighashCache;
    use camel_core::templates::{Escrow, Payment, input_signature};
    use camel_core::transaction::{SEQUENCE_FINAL, TxIn};

    let d = TempDir::new("mp-job");
    let (node, coins) = funded(&d, Policy::default(), 1);
    let client = key(1);
    let worker = key(5);
    let job = JobId::hash(b"a job");
    let escrow = Escrow {
        job_id: job,
        client: client.public_key(),
        refund_height: 10_000,
    };
    // The job transaction: the client's coin into the escrow.
    let job_tx = spend_for_job(
        &client,
        &[coins[0].clone()],
        vec![TxOut {
            value: amount(coins[0].1.value.to_base() - 10_000),
            script_pubkey: escrow.script_pubkey(),
        }],
        job,
    );
    node.submit_tx(job_tx.clone()).unwrap();
    let created = node.chain().height() + 1;
    node.generate(1, &script_of(&key(9)), 1).unwrap();
    // The payment: the escrow into an HTLC for the worker, signed by the client.
    let escrow_coin = coins_of(&job_tx)[0].clone();
    let payment_out = TxOut {
        value: amount(escrow_coin.1.value.to_base() - 10_000),
        script_pubkey: Payment {
            job_id: job,
            key_hash: [7; 32],
            worker: worker.public_key(),
            client: client.public_key(),
            timeout_height: 20_000,
        }
        .script_pubkey(),
    };
    let mut payment = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: escrow_coin.0,
            script_sig: Script::new(vec![]),
            sequence: SEQUENCE_FINAL,
        }],
        outputs: vec![payment_out],
        lock_time: 0,
        job_id: job,
    };
    let sig = input_signature(&client, &SighashCache::new(&payment), 0, &escrow_coin.1).unwrap();
    payment.inputs[0].script_sig = Escrow::pay_script_sig(&sig).unwrap();
    let minable_from = created + node.params().job_payment_delay;
    // Too early at every height before the delay; accepted and mined at it.
    while node.chain().height() + 1 < minable_from {
        assert_eq!(
            reason(node.submit_tx(payment.clone()).unwrap_err()),
            "bad-job-payment-early"
        );
        node.generate(1, &script_of(&key(9)), 1).unwrap();
    }
    node.submit_tx(payment.clone()).unwrap();
    let h = node.generate(1, &script_of(&key(9)), 1).unwrap()[0];
    assert_eq!(node.chain().height(), minable_from);
    assert!(block(&node, &h).txdata.contains(&payment));
    assert_eq!(node.mempool().len(), 0);
}

#[test]
fn a_refused_replacement_leaves_the_pool_as_it_was() {
    let d = TempDir::new("mp-rbf-full");
    // Room for two one-output transactions, not for a three-output one beside one of them.
    let policy = Policy {
        max_bytes: 500,
        ..Policy::default()
    };
    let (node, coins) = funded(&d, policy, 2);
    let a = node.submit_tx(pay(coins[0].clone(), 1_000, 2)).unwrap();
    let b = node.submit_tx(pay(coins[1].clone(), 90_000, 2)).unwrap();
    assert_eq!(node.mempool().len(), 2);
    assert!(node.mempool().bytes() + 2 * 34 > 500);
    // Replaces `a` (more fee), but needs room that only evicting `b` would give, and `b`
    // pays a higher rate: refused, and `a` must still be there.
    let value = coins[0].1.value.to_base() - 2_500;
    let wide = spend(
        &key(1),
        &[coins[0].clone()],
        (0..3)
            .map(|i| TxOut {
                value: amount(value / 3),
                script_pubkey: script_of(&key(3 + i)),
            })
            .collect(),
    );
    assert_eq!(reason(node.submit_tx(wide).unwrap_err()), "mempool-full");
    let pool = node.mempool();
    assert!(pool.get(&a).is_some() && pool.get(&b).is_some());
    assert_eq!(pool.len(), 2);
}

/// Hole 2: with full replace-by-fee, a client that saw the delivery key in a claim of its
/// unconfirmed payment could replace the payment by one to itself. No node takes such a claim
/// into its pool; once the payment is mined, the claim goes through and the client can no
/// longer replace the payment.
#[test]
fn a_claim_waits_for_its_payment_to_be_mined() {
    use camel_core::hash::JobId;
    use camel_core::sighash::SighashCache;
    use camel_core::templates::{Escrow, Payment, Stake, input_signature};
    use camel_core::transaction::{SEQUENCE_FINAL, TxIn};

    let d = TempDir::new("mp-claim-race");
    let (node, coins) = funded(&d, Policy::default(), 2);
    let client = key(1);
    let worker = key(5);
    let job = JobId::hash(b"a raced job");
    let delivery_key = [42u8; 32];
    let escrow = Escrow {
        job_id: job,
        client: client.public_key(),
        refund_height: 10_000,
    };
    let job_tx = spend_for_job(
        &client,
        &[coins[0].clone()],
        vec![TxOut {
            value: amount(coins[0].1.value.to_base() - 10_000),
            script_pubkey: escrow.script_pubkey(),
        }],
        job,
    );
    node.submit_tx(job_tx.clone()).unwrap();
    node.generate(1 + node.params().job_payment_delay, &script_of(&key(9)), 1)
        .unwrap();
    let escrow_coin = coins_of(&job_tx)[0].clone();
    // A payment of the escrow to an HTLC on `key_hash`, paying `fee`.
    let pay_to = |key_hash: [u8; 32], fee: u64| {
        let mut tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: escrow_coin.0,
                script_sig: Script::new(vec![]),
                sequence: SEQUENCE_FINAL,
            }],
            outputs: vec![TxOut {
                value: amount(escrow_coin.1.value.to_base() - fee),
                script_pubkey: Payment {
                    job_id: job,
                    key_hash,
                    worker: worker.public_key(),
                    client: client.public_key(),
                    timeout_height: 20_000,
                }
                .script_pubkey(),
            }],
            lock_time: 0,
            job_id: job,
        };
        let sig = input_signature(&client, &SighashCache::new(&tx), 0, &escrow_coin.1).unwrap();
        tx.inputs[0].script_sig = Escrow::pay_script_sig(&sig).unwrap();
        tx
    };
    // The worker's claim of `payment`: the key, the claimed value re-staked, a fee coin.
    let fee_coin = coins[1].clone();
    let claim_of = |payment: &Transaction| {
        let paid = coins_of(payment)[0].clone();
        let lock_until = node.chain().height() + 1 + node.params().dispute_window;
        let mut tx = Transaction {
            version: 1,
            inputs: vec![
                TxIn {
                    prev_out: paid.0,
                    script_sig: Script::new(vec![]),
                    sequence: SEQUENCE_FINAL,
                },
                TxIn {
                    prev_out: fee_coin.0,
                    script_sig: Script::new(vec![]),
                    sequence: SEQUENCE_FINAL,
                },
            ],
            outputs: vec![
                TxOut {
                    value: paid.1.value,
                    script_pubkey: Stake {
                        job_id: job,
                        worker: worker.public_key(),
                        client: client.public_key(),
                        window_end_height: lock_until + 5,
                    }
                    .script_pubkey(),
                },
                TxOut {
                    value: amount(fee_coin.1.value.to_base() - 20_000),
                    script_pubkey: script_of(&key(1)),
                },
            ],
            lock_time: 0,
            job_id: job,
        };
        let cache = SighashCache::new(&tx);
        let wsig = input_signature(&worker, &cache, 0, &paid.1).unwrap();
        let csig = input_signature(&key(1), &cache, 1, &fee_coin.1).unwrap();
        tx.inputs[0].script_sig = Payment::claim_script_sig(&wsig, &delivery_key).unwrap();
        tx.inputs[1].script_sig =
            camel_core::templates::p2pkh_script_sig(&csig, &key(1).public_key()).unwrap();
        tx
    };

    let honest = pay_to(Payment::key_hash_of(&delivery_key), 10_000);
    node.submit_tx(honest.clone()).unwrap();
    // The claim would reveal the key while the payment can still be replaced: refused.
    assert_eq!(
        reason(node.submit_tx(claim_of(&honest)).unwrap_err()),
        "claim-unconfirmed-payment"
    );
    // The race it prevents: the unconfirmed payment can be replaced by one to a key of the
    // client's own.
    let theft = pay_to([0xEE; 32], 20_000);
    node.submit_tx(theft.clone()).unwrap();
    assert!(node.mempool().get(&honest.txid()).is_none());
    // The client pays honestly after all (a higher fee again), and the payment is mined.
    let honest = pay_to(Payment::key_hash_of(&delivery_key), 30_000);
    node.submit_tx(honest.clone()).unwrap();
    let h = node.generate(1, &script_of(&key(9)), 1).unwrap()[0];
    assert!(block(&node, &h).txdata.contains(&honest));
    // Now the payment cannot be replaced, and the claim is taken.
    assert!(node.submit_tx(pay_to([0xEE; 32], 90_000)).is_err());
    let claim = claim_of(&honest);
    node.submit_tx(claim.clone()).unwrap();
    let h = node.generate(1, &script_of(&key(9)), 1).unwrap()[0];
    assert!(block(&node, &h).txdata.contains(&claim));
}
