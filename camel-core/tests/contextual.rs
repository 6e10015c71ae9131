//! The invalid-block matrix: each case builds a valid regtest chain state in memory, changes one
//! thing, connects a block with real signatures and names the reason it must be rejected with
//! (or `ok`). Every limit is tested at the limit (accepted) and one past it (rejected).

mod common;

use camel_core::amount::Amount;
use camel_core::block::Block;
use camel_core::hash::JobId;
use camel_core::pow::Target;
use camel_core::transaction::Transaction;
use common::*;

struct Case {
    name: &'static str,
    build: fn(&mut Fixture) -> Block,
    expect: &'static str,
}

const fn case(name: &'static str, expect: &'static str, build: fn(&mut Fixture) -> Block) -> Case {
    Case {
        name,
        build,
        expect,
    }
}

/// Alice pays `to` to the miner's key from a fresh 10-coin coin, leaving `fee` behind.
fn payment_tx(fx: &mut Fixture, fee: u64) -> Transaction {
    let s = fx.fund(&client(), coins(10));
    pay(&[s], units(10 * 100_000_000 - fee), &miner())
}

/// A transaction spending output `vout` of `prev` (held by the client) to the worker.
/// A plain payment of `amount` to `to`'s P2PKH address from `spends` (no job, no lock time).
fn pay(spends: &[Spend], amount: Amount, to: &camel_core::keys::PrivateKey) -> Transaction {
    signed_tx(spends, vec![out(amount, p2pkh_of(to))], JobId::ZERO, 0)
}

fn spend_of(prev: &Transaction, vout: u32, fee: u64) -> Transaction {
    let value = prev.outputs[vout as usize].value.to_base() - fee;
    pay(
        &[Spend::of(prev, vout, Unlock::P2pkh(client()))],
        units(value),
        &worker(),
    )
}

fn client_to_client(fx: &mut Fixture) -> Transaction {
    let s = fx.fund(&client(), coins(10));
    pay(&[s], coins(10), &client())
}

/// A transaction with lock time `lock_time`.
fn locked(fx: &mut Fixture, lock_time: u32) -> Block {
    let s = fx.fund(&client(), coins(10));
    let tx = signed_tx(
        &[s],
        vec![out(coins(9), p2pkh_of(&miner()))],
        JobId::ZERO,
        lock_time,
    );
    fx.block(vec![tx])
}

/// Spends a coinbase output created at `height`.
fn spend_coinbase_from(fx: &mut Fixture, height: u32) -> Block {
    let (o, c) = fx.add_coin(out(coins(50), p2pkh_of(&client())), height, true);
    let tx = pay(
        &[Spend::new(o, &c, Unlock::P2pkh(client()))],
        coins(50),
        &worker(),
    );
    fx.block(vec![tx])
}

/// Creates job `j` with an escrow of 5 coins (and 1 coin of change) from a fresh client coin.
fn create_job_tx(fx: &mut Fixture, j: JobId, escrow_job: JobId) -> Transaction {
    let s = fx.fund(&client(), coins(6));
    signed_tx(
        &[s],
        vec![
            out(coins(5), escrow_script(escrow_job, HEIGHT + 100)),
            out(units(99_990_000), p2pkh_of(&client())),
        ],
        j,
        0,
    )
}

/// The worker accepts `job()` with a 2-coin stake locked until `window_end`.
fn accept_tx(fx: &mut Fixture, j: JobId, window_end: u32) -> Transaction {
    let s = fx.fund(&worker(), coins(3));
    signed_tx(
        &[s],
        vec![
            out(coins(2), stake_script(j, window_end)),
            out(units(99_990_000), p2pkh_of(&worker())),
        ],
        j,
        0,
    )
}

/// The client pays the escrow of `job()` (created at `created`) into a payment HTLC.
fn pay_block(fx: &mut Fixture, created: u32, with_htlc: bool) -> Block {
    let (o, c) = fx.add_job(created, HEIGHT + 100);
    let to = if with_htlc {
        payment_script(HEIGHT + 200)
    } else {
        p2pkh_of(&worker())
    };
    let tx = signed_tx(
        &[Spend::new(o, &c, Unlock::EscrowPay(client()))],
        vec![out(units(499_990_000), to)],
        job(),
        0,
    );
    fx.block(vec![tx])
}

/// The client refunds an escrow refundable from `refund_height` with lock time `lock_time`.
fn refund_block(fx: &mut Fixture, refund_height: u32, lock_time: u32) -> Block {
    let (o, c) = fx.add_job(HEIGHT - 50, refund_height);
    let tx = signed_tx(
        &[Spend::new(o, &c, Unlock::EscrowRefund(client()))],
        vec![out(units(499_990_000), p2pkh_of(&client()))],
        JobId::ZERO,
        lock_time,
    );
    fx.block(vec![tx])
}

/// The worker claims the payment of a job created at 280, paid at 295, locking the claimed
/// value into `locked_into`, revealing `key`, in a transaction of job `tx_job`.
fn claim_block(
    fx: &mut Fixture,
    locked_into: camel_core::script::Script,
    key: [u8; 32],
    tx_job: JobId,
) -> Block {
    fx.add_job(280, HEIGHT + 100);
    let (o, c) = fx.add_payment(295);
    let tx = signed_tx(
        &[Spend::new(o, &c, Unlock::Claim(worker(), key))],
        vec![out(coins(5), locked_into)],
        tx_job,
        0,
    );
    fx.block(vec![tx])
}

/// The client slashes a stake of `job()` (created at `created`, stake mined at `stake_height`)
/// with `evidence`.
fn slash_block(fx: &mut Fixture, created: u32, stake_height: u32, evidence: &[u8]) -> Block {
    fx.add_job(created, HEIGHT + 100);
    let (o, c) = fx.add_stake(stake_height, HEIGHT + 50);
    let tx = signed_tx(
        &[Spend::new(
            o,
            &c,
            Unlock::Slash(client(), evidence.to_vec()),
        )],
        vec![out(units(199_990_000), p2pkh_of(&client()))],
        JobId::ZERO,
        0,
    );
    fx.block(vec![tx])
}

/// The worker reclaims a stake locked until `window_end`, with lock time `lock_time`.
fn reclaim_block(fx: &mut Fixture, window_end: u32, lock_time: u32) -> Block {
    fx.add_job(250, HEIGHT + 100);
    let (o, c) = fx.add_stake(255, window_end);
    let tx = signed_tx(
        &[Spend::new(o, &c, Unlock::Reclaim(worker()))],
        vec![out(units(199_990_000), p2pkh_of(&worker()))],
        JobId::ZERO,
        lock_time,
    );
    fx.block(vec![tx])
}

fn with_time(fx: &mut Fixture, time: u32) -> Block {
    fx.time = time;
    fx.block(vec![])
}

fn sized(fx: &mut Fixture, slack: isize) -> Block {
    let tx = payment_tx(fx, 1_000);
    let block = fx.block(vec![tx]);
    let size = camel_core::encode::Encodable::encoded_len(&block);
    fx.params.max_block_size = (size as isize + slack) as usize;
    block
}

const CASES: &[Case] = &[
    // --- the baseline ---
    case("coinbase only", "ok", |fx| fx.block(vec![])),
    case("one signed payment", "ok", |fx| {
        let tx = payment_tx(fx, 1_000);
        fx.block(vec![tx])
    }),
    case("zero fee: outputs equal inputs", "ok", |fx| {
        let tx = payment_tx(fx, 0);
        fx.block(vec![tx])
    }),
    // --- context-free failures surface through connect_block ---
    case("no transactions", "bad-blk-empty", |fx| {
        let mut b = fx.block(vec![]);
        b.txdata.clear();
        remine(&mut b);
        b
    }),
    case("first transaction not a coinbase", "bad-cb-missing", |fx| {
        let tx = payment_tx(fx, 1_000);
        let mut b = fx.block(vec![tx]);
        b.txdata.remove(0);
        remine(&mut b);
        b
    }),
    case("bad proof of work", "high-hash", |fx| {
        let mut b = fx.block(vec![]);
        let target = Target::from_compact(b.header.bits).unwrap();
        while target.is_met_by(&b.block_hash()) {
            b.header.nonce += 1;
        }
        b
    }),
    case("bad merkle root", "bad-txnmrklroot", |fx| {
        let tx = payment_tx(fx, 1_000);
        let mut b = fx.block(vec![tx]);
        b.header.merkle_root = camel_core::hash::Hash256::hash(b"not the root");
        mine(&mut b);
        b
    }),
    case(
        "merkle mutation: last transaction repeated",
        "bad-txns-duplicate",
        |fx| {
            let t1 = payment_tx(fx, 1_000);
            let t2 = payment_tx(fx, 2_000);
            let mut b = fx.block(vec![t1, t2.clone()]);
            b.txdata.push(t2);
            assert_eq!(b.compute_merkle_root().0, b.header.merkle_root);
            b
        },
    ),
    case("duplicate transaction", "bad-txns-duplicate", |fx| {
        let t1 = payment_tx(fx, 1_000);
        let t2 = payment_tx(fx, 2_000);
        fx.block(vec![t1.clone(), t2, t1])
    }),
    case("block size at the limit", "ok", |fx| sized(fx, 0)),
    case(
        "block size one byte past the limit",
        "bad-blk-length",
        |fx| sized(fx, -1),
    ),
    case(
        "outputs above the money supply",
        "bad-txns-txouttotal-toolarge",
        |fx| {
            let s = fx.fund(&client(), coins(10));
            let tx = signed_tx(
                &[s],
                vec![
                    out(Amount::MAX, p2pkh_of(&miner())),
                    out(units(1), p2pkh_of(&miner())),
                ],
                JobId::ZERO,
                0,
            );
            fx.block(vec![tx])
        },
    ),
    // --- header in context ---
    case("time at the future limit", "ok", |fx| {
        with_time(fx, NOW + 7_200)
    }),
    case(
        "time one second past the future limit",
        "time-too-new",
        |fx| with_time(fx, NOW + 7_201),
    ),
    case("time one second after median time past", "ok", |fx| {
        with_time(fx, MTP + 1)
    }),
    case("time equal to median time past", "time-too-old", |fx| {
        with_time(fx, MTP)
    }),
    case("bits other than expected", "bad-diffbits", |fx| {
        fx.bits = 0x207f_fffe;
        fx.block(vec![])
    }),
    // --- coinbase ---
    case(
        "coinbase commits to the wrong height",
        "bad-cb-height",
        |fx| {
            fx.coinbase_height = Some(HEIGHT + 1);
            fx.block(vec![])
        },
    ),
    case("coinbase pays subsidy plus fees", "ok", |fx| {
        let tx = payment_tx(fx, 1_000);
        fx.coinbase_value = Some(units(fx.params.block_subsidy(HEIGHT).to_base() + 1_000));
        fx.block(vec![tx])
    }),
    case(
        "coinbase pays one unit more than subsidy plus fees",
        "bad-cb-amount",
        |fx| {
            let tx = payment_tx(fx, 1_000);
            fx.coinbase_value = Some(units(fx.params.block_subsidy(HEIGHT).to_base() + 1_001));
            fx.block(vec![tx])
        },
    ),
    case("coinbase output spent at maturity", "ok", |fx| {
        spend_coinbase_from(fx, HEIGHT - 100)
    }),
    case(
        "coinbase output spent one block early",
        "bad-txns-premature-spend-of-coinbase",
        |fx| spend_coinbase_from(fx, HEIGHT - 99),
    ),
    // --- inputs ---
    case("missing input", "bad-txns-inputs-missingorspent", |fx| {
        let s = fx.fund(&client(), coins(10));
        fx.utxos.remove(&s.outpoint);
        let tx = pay(&[s], coins(9), &miner());
        fx.block(vec![tx])
    }),
    case(
        "double spend inside the block",
        "bad-txns-inputs-missingorspent",
        |fx| {
            let s = fx.fund(&client(), coins(10));
            let t1 = pay(std::slice::from_ref(&s), coins(9), &miner());
            let t2 = pay(&[s], coins(8), &worker());
            fx.block(vec![t1, t2])
        },
    ),
    case(
        "double spend of a coin an earlier block spent",
        "bad-txns-inputs-missingorspent",
        |fx| {
            let s = fx.fund(&client(), coins(10));
            let t1 = pay(std::slice::from_ref(&s), coins(9), &miner());
            let first = fx.block(vec![t1]);
            let changes = fx.connect(&first).unwrap();
            fx.apply(&changes);
            fx.advance(1);
            let t2 = pay(&[s], coins(8), &worker());
            fx.block(vec![t2])
        },
    ),
    case(
        "spends an output created earlier in the block",
        "ok",
        |fx| {
            let t1 = client_to_client(fx);
            let t2 = spend_of(&t1, 0, 1_000);
            fx.block(vec![t1, t2])
        },
    ),
    case(
        "spends an output created later in the block",
        "bad-txns-inputs-missingorspent",
        |fx| {
            let t1 = client_to_client(fx);
            let t2 = spend_of(&t1, 0, 1_000);
            fx.block(vec![t2, t1])
        },
    ),
    case(
        "bad signature: transaction changed after signing",
        "nullfail",
        |fx| {
            let mut tx = payment_tx(fx, 1_000);
            tx.outputs[0].value = units(tx.outputs[0].value.to_base() - 1);
            fx.block(vec![tx])
        },
    ),
    case("bad signature: someone else's key", "equalverify", |fx| {
        let mut s = fx.fund(&client(), coins(10));
        s.unlock = Unlock::P2pkh(worker());
        let tx = pay(&[s], coins(9), &worker());
        fx.block(vec![tx])
    }),
    case("overspend by one unit", "bad-txns-in-belowout", |fx| {
        let s = fx.fund(&client(), coins(10));
        let tx = pay(&[s], units(10 * 100_000_000 + 1), &miner());
        fx.block(vec![tx])
    }),
    case(
        "input values above the money supply",
        "bad-txns-inputvalues-outofrange",
        |fx| {
            let a = fx.fund(&client(), Amount::MAX);
            let b = fx.fund(&client(), units(1));
            let tx = pay(&[a, b], units(1), &miner());
            fx.block(vec![tx])
        },
    ),
    case(
        "fees above the money supply",
        "bad-txns-accumulated-fee-outofrange",
        |fx| {
            let a = fx.fund(&client(), Amount::MAX);
            let b = fx.fund(&client(), Amount::MAX);
            let t1 = pay(&[a], units(1), &miner());
            let t2 = pay(&[b], units(1), &miner());
            fx.block(vec![t1, t2])
        },
    ),
    case(
        "one coin spent twice by one transaction",
        "bad-txns-inputs-duplicate",
        |fx| {
            let s = fx.fund(&client(), coins(10));
            let tx = pay(&[s.clone(), s], coins(9), &miner());
            fx.block(vec![tx])
        },
    ),
    case("lock time equal to the height", "ok", |fx| {
        locked(fx, HEIGHT)
    }),
    case(
        "lock time one above the height",
        "bad-txns-nonfinal",
        |fx| locked(fx, HEIGHT + 1),
    ),
    // --- job creation ---
    case("job created", "ok", |fx| {
        let tx = create_job_tx(fx, job(), job());
        fx.block(vec![tx])
    }),
    case(
        "job created twice: already on chain",
        "bad-job-duplicate",
        |fx| {
            fx.add_job(HEIGHT - 5, HEIGHT + 100);
            let tx = create_job_tx(fx, job(), job());
            fx.block(vec![tx])
        },
    ),
    case(
        "job created twice in one block",
        "bad-job-duplicate",
        |fx| {
            let t1 = create_job_tx(fx, job(), job());
            let t2 = create_job_tx(fx, job(), job());
            fx.block(vec![t1, t2])
        },
    ),
    case("escrow for another job", "bad-job-escrow-mismatch", |fx| {
        let tx = create_job_tx(fx, job(), JobId::hash(b"another job"));
        fx.block(vec![tx])
    }),
    case("escrow in a coinbase", "bad-job-escrow-mismatch", |fx| {
        let mut b = fx.block(vec![]);
        b.txdata[0]
            .outputs
            .push(out(Amount::ZERO, escrow_script(job(), 400)));
        remine(&mut b);
        b
    }),
    // --- acceptance ---
    case("stake for an unknown job", "bad-job-unknown", |fx| {
        let tx = accept_tx(fx, job(), HEIGHT + 100);
        fx.block(vec![tx])
    }),
    case("job created and accepted in one block", "ok", |fx| {
        let t1 = create_job_tx(fx, job(), job());
        // Created at 300: disputes close at 300 + 10 + 15.
        let t2 = accept_tx(fx, job(), HEIGHT + 25);
        fx.block(vec![t1, t2])
    }),
    case("stake locked until disputes close", "ok", |fx| {
        fx.add_job(295, HEIGHT + 100);
        let tx = accept_tx(fx, job(), 295 + 10 + 15);
        fx.block(vec![tx])
    }),
    case(
        "stake unlocked one block before disputes close",
        "bad-job-stake-unlocked",
        |fx| {
            fx.add_job(295, HEIGHT + 100);
            let tx = accept_tx(fx, job(), 295 + 10 + 15 - 1);
            fx.block(vec![tx])
        },
    ),
    case("late stake locked for its own window", "ok", |fx| {
        // Created at 280: payment minable from 290, so a stake mined at 300 needs 300 + 15.
        fx.add_job(280, HEIGHT + 100);
        let tx = accept_tx(fx, job(), HEIGHT + 15);
        fx.block(vec![tx])
    }),
    case(
        "late stake unlocked one block early",
        "bad-job-stake-unlocked",
        |fx| {
            fx.add_job(280, HEIGHT + 100);
            let tx = accept_tx(fx, job(), HEIGHT + 14);
            fx.block(vec![tx])
        },
    ),
    case("stake for another job", "bad-job-stake-mismatch", |fx| {
        fx.add_job(295, HEIGHT + 100);
        let s = fx.fund(&worker(), coins(3));
        let tx = signed_tx(
            &[s],
            vec![out(
                coins(2),
                stake_script(JobId::hash(b"other"), HEIGHT + 100),
            )],
            job(),
            0,
        );
        fx.block(vec![tx])
    }),
    // --- payment ---
    case("escrow paid at creation + delay", "ok", |fx| {
        pay_block(fx, HEIGHT - 10, true)
    }),
    case(
        "escrow paid one block early",
        "bad-job-payment-early",
        |fx| pay_block(fx, HEIGHT - 9, true),
    ),
    case(
        "escrow paid without a payment HTLC",
        "bad-job-payment-template",
        |fx| pay_block(fx, HEIGHT - 10, false),
    ),
    case(
        "payment HTLC in a transaction of no job",
        "bad-job-payment-mismatch",
        |fx| {
            fx.add_job(HEIGHT - 20, HEIGHT + 100);
            let s = fx.fund(&client(), coins(6));
            let tx = signed_tx(
                &[s],
                vec![out(coins(5), payment_script(HEIGHT + 200))],
                JobId::ZERO,
                0,
            );
            fx.block(vec![tx])
        },
    ),
    case("payment HTLC funded outside the escrow", "ok", |fx| {
        fx.add_job(HEIGHT - 20, HEIGHT + 100);
        let s = fx.fund(&client(), coins(6));
        let tx = signed_tx(
            &[s],
            vec![out(coins(5), payment_script(HEIGHT + 200))],
            job(),
            0,
        );
        fx.block(vec![tx])
    }),
    case("escrow refunded at its refund height", "ok", |fx| {
        refund_block(fx, HEIGHT, HEIGHT)
    }),
    case(
        "escrow refunded one block before its refund height",
        "unsatisfied-locktime",
        |fx| refund_block(fx, HEIGHT + 1, HEIGHT),
    ),
    case("escrow refund not final yet", "bad-txns-nonfinal", |fx| {
        refund_block(fx, HEIGHT + 1, HEIGHT + 1)
    }),
    // --- claim ---
    case(
        "payment claimed into a stake locked for the window",
        "ok",
        |fx| claim_block(fx, stake_script(job(), HEIGHT + 15), DELIVERY_KEY, job()),
    ),
    case(
        "payment claimed into a stake unlocked one block early",
        "bad-job-claim-unlocked",
        |fx| claim_block(fx, stake_script(job(), HEIGHT + 14), DELIVERY_KEY, job()),
    ),
    case(
        "payment claimed into a plain output",
        "bad-job-claim-unlocked",
        |fx| claim_block(fx, p2pkh_of(&worker()), DELIVERY_KEY, job()),
    ),
    case(
        "payment claimed into a stake naming another client",
        "bad-job-claim-unlocked",
        |fx| {
            let lock = stake_script_for(
                job(),
                worker().public_key(),
                worker().public_key(),
                HEIGHT + 15,
            );
            claim_block(fx, lock, DELIVERY_KEY, job())
        },
    ),
    case(
        "payment claimed outside its job",
        "bad-job-claim-mismatch",
        |fx| claim_block(fx, p2pkh_of(&worker()), DELIVERY_KEY, JobId::ZERO),
    ),
    case("payment claimed with the wrong key", "equalverify", |fx| {
        claim_block(fx, stake_script(job(), HEIGHT + 15), [0x5b; 32], job())
    }),
    // --- dispute ---
    case(
        "stake slashed without a valid fraud proof",
        "fraud-proof-invalid",
        |fx| slash_block(fx, 290, 292, FRAUD),
    ),
    case(
        "stake slashed with a fraud proof in the window's last block",
        "ok",
        |fx| {
            fx.oracle = Box::new(TestOracle);
            // Disputes close at max(280, 276 + 10) + 15 = 301.
            slash_block(fx, 276, 280, FRAUD)
        },
    ),
    case(
        "stake slashed with a fraud proof after the window",
        "bad-job-dispute-late",
        |fx| {
            fx.oracle = Box::new(TestOracle);
            slash_block(fx, 275, 280, FRAUD)
        },
    ),
    case(
        "stake slashed with evidence the oracle rejects",
        "fraud-proof-invalid",
        |fx| {
            fx.oracle = Box::new(TestOracle);
            slash_block(fx, 290, 292, b"no fraud here")
        },
    ),
    case("stake reclaimed at its window end", "ok", |fx| {
        reclaim_block(fx, HEIGHT, HEIGHT)
    }),
    case(
        "stake reclaimed one block before its window end",
        "unsatisfied-locktime",
        |fx| reclaim_block(fx, HEIGHT + 1, HEIGHT),
    ),
];

#[test]
fn invalid_block_matrix() {
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    let mut names = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for c in CASES {
        assert!(names.insert(c.name), "duplicate case name {}", c.name);
        let mut fx = Fixture::new();
        let block = (c.build)(&mut fx);
        let result = fx.connect(&block);
        let got = reason(&result);
        if got != c.expect {
            failures.push(format!(
                "{}: expected {}, got {} ({:?})",
                c.name,
                c.expect,
                got,
                result.err().map(|e| e.to_string())
            ));
        } else if let Err(e) = &result {
            // Only a body that may not be the one the header commits to, or a time that
            // passes later, leaves the block open to a retry.
            let for_good = !matches!(
                c.name,
                "no transactions"
                    | "bad merkle root"
                    | "merkle mutation: last transaction repeated"
                    | "time one second past the future limit"
            );
            if e.header_invalid() != for_good {
                failures.push(format!("{}: header_invalid() is {}", c.name, !for_good));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

use camel_core::contextual::{
    BlockContext, BlockError, TxError, TxScriptChecks, check_tx_inputs, check_tx_inputs_full,
    connect_block, median_time_past, run_script_checks,
};
use camel_core::interpreter::FraudProofsUnavailable;
use camel_core::templates::data_carrier;
use camel_core::transaction::OutPoint;
use camel_core::utxo::utxo_set_hash;

#[test]
fn changes_apply_and_undo() {
    let mut fx = Fixture::new();
    let before_utxos = {
        fx.fund(&client(), coins(1)); // an untouched coin
        fx.utxos.clone()
    };
    // t1 pays the client (and an OP_RETURN), t2 spends t1's first output, t3 creates a job.
    let s1 = fx.fund(&client(), coins(10));
    let t1 = signed_tx(
        std::slice::from_ref(&s1),
        vec![
            out(coins(9), p2pkh_of(&client())),
            out(Amount::ZERO, data_carrier(b"memo").unwrap()),
            out(coins(1), p2pkh_of(&worker())),
        ],
        JobId::ZERO,
        0,
    );
    let t2 = spend_of(&t1, 0, 1_000);
    let t3 = create_job_tx(&mut fx, job(), job());
    let s3 = t3.inputs[0].prev_out;
    let start = fx.utxos.clone();
    let block = fx.block(vec![t1.clone(), t2.clone(), t3.clone()]);
    let changes = fx.connect(&block).unwrap();

    let cb = block.txdata[0].txid();
    assert_eq!(
        changes.spent.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        vec![s1.outpoint, s3]
    );
    assert_eq!(changes.spent[0].1, start[&s1.outpoint]);
    assert_eq!(
        changes.created.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        vec![
            OutPoint::new(cb, 0),
            OutPoint::new(t1.txid(), 2),
            OutPoint::new(t2.txid(), 0),
            OutPoint::new(t3.txid(), 0),
            OutPoint::new(t3.txid(), 1),
        ],
        "t1:0 is spent inside the block and t1:1 is unspendable"
    );
    assert!(changes.created[0].1.is_coinbase);
    assert!(
        changes
            .created
            .iter()
            .skip(1)
            .all(|(_, c)| !c.is_coinbase && c.height == HEIGHT)
    );
    assert_eq!(changes.fees, units(1_000 + 10_000));
    assert_eq!(changes.jobs_created.len(), 1);
    assert_eq!(changes.jobs_created[0].0, job());
    assert_eq!(changes.jobs_created[0].1.created_height, HEIGHT);
    assert_eq!(
        changes.jobs_created[0].1.escrow,
        OutPoint::new(t3.txid(), 0)
    );
    assert!(changes.jobs_updated.is_empty());

    let hash_before = utxo_set_hash(&fx.utxos);
    fx.apply(&changes);
    assert_ne!(utxo_set_hash(&fx.utxos), hash_before);
    assert_eq!(fx.utxos.len(), start.len() - 2 + 5);
    fx.undo(&changes);
    assert_eq!(fx.utxos, start);
    assert_eq!(utxo_set_hash(&fx.utxos), hash_before);
    assert!(fx.jobs.is_empty());
    assert!(before_utxos.keys().all(|o| fx.utxos.contains_key(o)));
}

/// A job from creation to dispute, one block at a time, each block's changes written into the
/// state the next block is checked against.
#[test]
fn job_lifecycle_across_blocks() {
    let mut fx = Fixture::new();
    fx.oracle = Box::new(TestOracle);
    let connect = |fx: &mut Fixture, txs: Vec<Transaction>, height: u32| {
        fx.ctx.height = height;
        let block = fx.block(txs);
        let changes = fx
            .connect(&block)
            .unwrap_or_else(|e| panic!("height {height}: {e}"));
        fx.apply(&changes);
        changes
    };

    // 300: created. Payment minable from 310.
    let create = create_job_tx(&mut fx, job(), job());
    let c = connect(&mut fx, vec![create.clone()], 300);
    assert_eq!(c.jobs_created[0].1.created_height, 300);

    // 301: accepted with a stake locked until 325.
    let accept = accept_tx(&mut fx, job(), 325);
    let c = connect(&mut fx, vec![accept.clone()], 301);
    let (id, before, after) = &c.jobs_updated[0];
    assert_eq!(*id, job());
    assert_eq!(before.stake, None);
    assert_eq!(after.stake, Some(OutPoint::new(accept.txid(), 0)));

    // 309: paying is one block early.
    let pay = signed_tx(
        &[Spend::of(&create, 0, Unlock::EscrowPay(client()))],
        vec![out(units(499_990_000), payment_script(400))],
        job(),
        0,
    );
    fx.ctx.height = 309;
    let early = fx.block(vec![pay.clone()]);
    assert_eq!(reason(&fx.connect(&early)), "bad-job-payment-early");

    // 310: paid.
    let c = connect(&mut fx, vec![pay.clone()], 310);
    let after = &c.jobs_updated[0].2;
    assert_eq!(after.payments, vec![OutPoint::new(pay.txid(), 0)]);
    assert_eq!(after.paid_height, Some(310));

    // 312: claimed into a stake locked until 312 + 15.
    let claim = signed_tx(
        &[Spend::of(&pay, 0, Unlock::Claim(worker(), DELIVERY_KEY))],
        vec![out(units(499_990_000), stake_script(job(), 327))],
        job(),
        0,
    );
    let c = connect(&mut fx, vec![claim.clone()], 312);
    assert_eq!(c.jobs_updated[0].2.claimed_height, Some(312));
    assert_eq!(
        c.jobs_updated[0].2.stake,
        Some(OutPoint::new(accept.txid(), 0)),
        "the claim's lock is not an acceptance"
    );

    // The acceptance stake's own window closed at 325, but a claim of its job is disputable
    // until 326 inclusive: the worker can neither reclaim it (the payment could still be
    // claimed until 400) nor escape the slash.
    let reclaim = signed_tx(
        &[Spend::of(&accept, 0, Unlock::Reclaim(worker()))],
        vec![out(units(199_990_000), p2pkh_of(&worker()))],
        JobId::ZERO,
        325,
    );
    fx.ctx.height = 325;
    let early = fx.block(vec![reclaim]);
    assert_eq!(reason(&fx.connect(&early)), "bad-job-reclaim-early");

    // 326: the client proves fraud: both the claimed payment and the acceptance stake.
    let slash_payment = signed_tx(
        &[Spend::of(
            &claim,
            0,
            Unlock::Slash(client(), FRAUD.to_vec()),
        )],
        vec![out(units(499_980_000), p2pkh_of(&client()))],
        JobId::ZERO,
        0,
    );
    let slash_stake = signed_tx(
        &[Spend::of(
            &accept,
            0,
            Unlock::Slash(client(), FRAUD.to_vec()),
        )],
        vec![out(units(199_990_000), p2pkh_of(&client()))],
        JobId::ZERO,
        0,
    );
    // One block later, the claim's window is closed too: the slash is late.
    fx.ctx.height = 327;
    let late = fx.block(vec![slash_stake.clone()]);
    assert_eq!(reason(&fx.connect(&late)), "bad-job-dispute-late");
    let c = connect(&mut fx, vec![slash_payment, slash_stake], 326);
    assert_eq!(c.jobs_updated[0].2.disputed_height, Some(326));

    let record = &fx.jobs[&job()];
    assert_eq!(
        (
            record.created_height,
            record.paid_height,
            record.claimed_height,
            record.disputed_height,
            record.claims_end,
            record.claimable_until,
        ),
        (300, Some(310), Some(312), Some(326), Some(327), Some(400))
    );
}

#[test]
fn mempool_checks() {
    let mut fx = Fixture::new();
    let tx = payment_tx(&mut fx, 1_234);
    assert_eq!(
        check_tx_inputs(&tx, &fx.utxos, &fx.jobs, HEIGHT, &fx.params),
        Ok(units(1_234))
    );
    let full = check_tx_inputs_full(&tx, &fx.utxos, &fx.jobs, HEIGHT, &fx.params).unwrap();
    assert_eq!(full.spent.len(), 1);
    assert_eq!(full.spent[0], fx.utxos[&tx.inputs[0].prev_out]);
    assert!(full.job_changes.is_empty());

    let mut twice = tx.clone();
    twice.inputs.push(tx.inputs[0].clone());
    let err = check_tx_inputs(&twice, &fx.utxos, &fx.jobs, HEIGHT, &fx.params).unwrap_err();
    assert_eq!(err.reason(), "bad-txns-inputs-duplicate");

    let mut late = tx.clone();
    late.lock_time = HEIGHT + 1;
    let err = check_tx_inputs(&late, &fx.utxos, &fx.jobs, HEIGHT, &fx.params).unwrap_err();
    assert_eq!(
        err,
        TxError::NonFinal {
            txid: late.txid(),
            lock_time: HEIGHT + 1,
            height: HEIGHT
        }
    );
    assert!(err.to_string().contains(&late.txid().to_string()), "{err}");
    // Final sequences lift the lock time.
    late.inputs[0].sequence = u32::MAX;
    assert!(check_tx_inputs(&late, &fx.utxos, &fx.jobs, HEIGHT, &fx.params).is_ok());

    let mut over = tx.clone();
    over.outputs[0].value = coins(11);
    let err = check_tx_inputs(&over, &fx.utxos, &fx.jobs, HEIGHT, &fx.params).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "bad-txns-in-belowout: {} spends 10.00000000 but its outputs are worth 11.00000000",
            over.txid()
        )
    );

    // Job rules apply in the mempool too.
    let create = create_job_tx(&mut fx, job(), job());
    let changes = check_tx_inputs_full(&create, &fx.utxos, &fx.jobs, HEIGHT, &fx.params)
        .unwrap()
        .job_changes;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].before, None);
}

#[test]
fn script_checks_run_per_transaction() {
    let mut fx = Fixture::new();
    let good = payment_tx(&mut fx, 1_000);
    let mut bad = payment_tx(&mut fx, 1_000);
    bad.outputs[0].value = units(1);
    let block = fx.block(vec![good.clone(), bad.clone()]);
    let (_, checks) = connect_block(&block, &fx.ctx, &fx.utxos, &fx.jobs, &fx.params).unwrap();
    assert_eq!(checks.len(), 2);
    assert!(std::ptr::eq(checks[0].tx, &block.txdata[1]));
    assert_eq!(checks[0].run(&TestOracle), Ok(()));
    let err = run_script_checks(&checks, &TestOracle).unwrap_err();
    match &err {
        BlockError::Tx { index, txid, error } => {
            assert_eq!((*index, *txid), (2, bad.txid()));
            assert!(matches!(**error, TxError::Script { input: 0, .. }));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.reason(), "nullfail");
    assert!(
        err.header_invalid(),
        "the header commits to the bad transaction"
    );
    assert!(err.to_string().contains(&bad.txid().to_string()), "{err}");

    let short = TxScriptChecks {
        tx: &good,
        spent: vec![],
    };
    assert_eq!(
        short.run(&TestOracle).unwrap_err().reason(),
        "bad-txns-spent-mismatch"
    );
}

#[test]
fn fraud_proofs_a_node_cannot_judge() {
    let mut fx = Fixture::new();
    fx.oracle = Box::new(FraudProofsUnavailable);
    let block = slash_block(&mut fx, 290, 292, FRAUD);
    let err = fx.connect(&block).unwrap_err();
    assert_eq!(err.reason(), "fraud-proof-unavailable");
    assert!(err.fraud_proof_unavailable());
    assert!(!err.header_invalid(), "a node with the model may accept it");
    fx.oracle = Box::new(TestOracle);
    assert!(fx.connect(&block).is_ok());
}

#[test]
fn which_failures_condemn_a_block_for_good() {
    let mut fx = Fixture::new();
    fx.bits = 0x207f_fffe;
    let err = fx.connect(&fx.block(vec![])).unwrap_err();
    assert!(err.header_invalid(), "{err}");
    let mut fx = Fixture::new();
    fx.time = NOW + 7_201;
    let err = fx.connect(&fx.block(vec![])).unwrap_err();
    assert_eq!(err.reason(), "time-too-new");
    assert!(
        !err.header_invalid(),
        "a block from the future may become valid"
    );
    assert_eq!(median_time_past(&[5, 1, 9, 3, 7]), 5);
}

#[test]
fn context_from_ancestor_times() {
    let p = camel_core::params::Params::regtest();
    // Twelve ancestors: the oldest (a huge outlier) is beyond the 11-block span.
    let mut times: Vec<u32> = vec![u32::MAX];
    times.extend((1..=11).map(|i| 1_000 + i * 60));
    let ctx = BlockContext::new(12, &times, p.pow_limit_bits, 5_000, &p);
    assert_eq!(ctx.median_time_past, 1_000 + 6 * 60);
    assert_eq!(
        (ctx.height, ctx.expected_bits, ctx.adjusted_time),
        (12, p.pow_limit_bits, 5_000)
    );
    // Near the genesis, fewer times.
    assert_eq!(BlockContext::new(1, &[77], 0, 0, &p).median_time_past, 77);
    assert_eq!(BlockContext::new(0, &[], 0, 0, &p).median_time_past, 0);
}

/// A block exercising most rules: a payment, a spend of an output created in the block, a job
/// creation, an acceptance, an escrow payment, a claim and a slash.
fn rich_block(fx: &mut Fixture) -> Block {
    fx.oracle = Box::new(TestOracle);
    let t1 = client_to_client(fx);
    let t2 = spend_of(&t1, 0, 1_000);
    let create = create_job_tx(fx, JobId::hash(b"new job"), JobId::hash(b"new job"));
    let (escrow, escrow_coin) = fx.add_job(HEIGHT - 10, HEIGHT + 100);
    let pay = signed_tx(
        &[Spend::new(
            escrow,
            &escrow_coin,
            Unlock::EscrowPay(client()),
        )],
        vec![out(units(499_990_000), payment_script(HEIGHT + 200))],
        job(),
        0,
    );
    let claim = signed_tx(
        &[Spend::of(&pay, 0, Unlock::Claim(worker(), DELIVERY_KEY))],
        vec![out(units(499_990_000), stake_script(job(), HEIGHT + 15))],
        job(),
        0,
    );
    let (stake, stake_coin) = fx.add_stake(HEIGHT - 5, HEIGHT + 20);
    let slash = signed_tx(
        &[Spend::new(
            stake,
            &stake_coin,
            Unlock::Slash(client(), FRAUD.to_vec()),
        )],
        vec![out(units(199_990_000), p2pkh_of(&client()))],
        JobId::ZERO,
        0,
    );
    fx.block(vec![t1, t2, create, pay, claim, slash])
}

#[test]
fn rich_block_connects() {
    let mut fx = Fixture::new();
    let block = rich_block(&mut fx);
    let changes = fx.connect(&block).unwrap();
    assert_eq!(changes.jobs_created.len(), 1);
    let (_, before, after) = &changes.jobs_updated[0];
    assert_eq!(before.paid_height, None);
    assert_eq!(
        (
            after.paid_height,
            after.claimed_height,
            after.disputed_height
        ),
        (Some(HEIGHT), Some(HEIGHT), Some(HEIGHT))
    );
    // The payment HTLC was created and claimed inside the block: in neither list.
    let pay_txid = block.txdata[4].txid();
    assert!(changes.created.iter().all(|(o, _)| o.txid != pay_txid));
    assert!(changes.spent.iter().all(|(o, _)| o.txid != pay_txid));
}

mod properties {
    use super::*;
    use camel_core::encode::{decode_from_slice, encode_to_vec};
    use proptest::prelude::*;

    /// A pool of transactions over a small state: chains inside the pool, conflicting spends,
    /// a job creation and its acceptance.
    fn pool(fx: &mut Fixture) -> Vec<Transaction> {
        let t1 = client_to_client(fx);
        let t2 = spend_of(&t1, 0, 1_000);
        // t2 pays the worker, who spends it on.
        let t3 = signed_tx(
            &[Spend::of(&t2, 0, Unlock::P2pkh(worker()))],
            vec![out(
                coins(9).checked_sub(units(3_000)).unwrap(),
                p2pkh_of(&miner()),
            )],
            JobId::ZERO,
            0,
        );
        let s = fx.fund(&client(), coins(4));
        let c1 = pay(std::slice::from_ref(&s), coins(3), &worker());
        let c2 = pay(&[s], coins(2), &miner());
        let create = create_job_tx(fx, job(), job());
        let accept = accept_tx(fx, job(), HEIGHT + 25);
        vec![t1, t2, t3, c1, c2, create, accept]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever subset and order of the pool a block holds: if it connects, its changes
        /// only spend coins of the state and only create new ones, and undoing them restores
        /// the state and its hash exactly.
        #[test]
        fn apply_then_undo_restores_the_state(order in Just((0..7usize).collect::<Vec<_>>()).prop_shuffle(), take in 0usize..=7) {
            let mut fx = Fixture::new();
            let txs = pool(&mut fx);
            let chosen: Vec<Transaction> = order[..take].iter().map(|&i| txs[i].clone()).collect();
            let block = fx.block(chosen);
            // Valid exactly when the two conflicting spends are not both in, and every
            // transaction comes after the one it depends on.
            let chosen_ids = &order[..take];
            let pos = |i: usize| chosen_ids.iter().position(|&j| j == i);
            let after = |dep: usize, on: usize| match (pos(dep), pos(on)) {
                (Some(d), Some(o)) => o < d,
                (Some(_), None) => false,
                (None, _) => true,
            };
            let expect_ok = !(pos(3).is_some() && pos(4).is_some())
                && after(1, 0)
                && after(2, 1)
                && after(6, 5);
            let result = fx.connect(&block);
            prop_assert_eq!(result.is_ok(), expect_ok, "{:?}: {:?}", chosen_ids, result.as_ref().err().map(|e| e.to_string()));
            if let Ok(changes) = result {
                let before = fx.utxos.clone();
                let jobs_before = fx.jobs.clone();
                let hash = utxo_set_hash(&fx.utxos);
                for (o, c) in &changes.spent {
                    prop_assert_eq!(before.get(o), Some(c));
                }
                for (o, _) in &changes.created {
                    prop_assert!(!before.contains_key(o));
                }
                fx.apply(&changes);
                fx.undo(&changes);
                prop_assert_eq!(&fx.utxos, &before);
                prop_assert_eq!(&fx.jobs, &jobs_before);
                prop_assert_eq!(utxo_set_hash(&fx.utxos), hash);
            }
        }

        /// Any decodable corruption of a valid block is connected without a panic, and its
        /// script checks run without one.
        #[test]
        fn corrupted_blocks(flips in proptest::collection::vec((any::<proptest::sample::Index>(), 1u8..=255), 1..4)) {
            let mut fx = Fixture::new();
            let block = rich_block(&mut fx);
            let mut bytes = encode_to_vec(&block);
            for (at, mask) in &flips {
                let i = at.index(bytes.len());
                bytes[i] ^= mask;
            }
            if let Ok(mutated) = decode_from_slice::<Block>(&bytes) {
                let _ = fx.connect(&mutated);
                // Repair the proof of work and merkle root so the transactions themselves get
                // exercised (only while the bits still name the easy regtest target).
                if mutated.header.bits == fx.bits {
                    let mut remined = mutated.clone();
                    remine(&mut remined);
                    let _ = fx.connect(&remined);
                }
            }
        }
    }
}
