//! Scripts end to end: every standard template's spending paths through `verify_input` with
//! real keys, signatures and sighashes; the job protocol's chain of transactions; and the
//! fixed vectors in `tests/data/`.

use camel_core::amount::Amount;
use camel_core::hash::{JobId, Txid, from_hex, to_hex};
use camel_core::interpreter::{
    FraudProofError, FraudProofOracle, FraudProofsUnavailable, NoFraudProofs, ScriptError,
    SpendContext, TransactionChecker, verify_input, verify_script,
};
use camel_core::keys::{PrivateKey, PublicKey};
use camel_core::script::Script;
use camel_core::sighash::SighashCache;
use camel_core::templates::{
    Escrow, Payment, SpendPath, Stake, Template, classify, input_signature, p2pkh,
    p2pkh_script_sig, spend_path,
};
use camel_core::transaction::{OutPoint, SEQUENCE_FINAL, Transaction, TxIn, TxOut};

const J: JobId = JobId::from_byte_array([0x4a; 32]);

fn key(b: u8) -> PrivateKey {
    PrivateKey::from_slice(&[b; 32]).unwrap()
}

fn client() -> PrivateKey {
    key(1)
}

fn worker() -> PrivateKey {
    key(2)
}

fn coins(n: u64) -> Amount {
    Amount::from_coins(n).unwrap()
}

fn out(script_pubkey: Script, value: Amount) -> TxOut {
    TxOut {
        value,
        script_pubkey,
    }
}

/// A one-input transaction spending `prev` to a P2PKH output of the client.
fn spending(lock_time: u32, job_id: JobId) -> Transaction {
    Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: OutPoint::new(Txid::from_byte_array([0x99; 32]), 0),
            script_sig: Script::default(),
            sequence: 0xffff_fffe,
        }],
        outputs: vec![out(p2pkh(&client().public_key().pubkey_hash()), coins(1))],
        lock_time,
        job_id,
    }
}

fn sign(tx: &Transaction, spent: &TxOut, key: &PrivateKey) -> Vec<u8> {
    input_signature(key, &SighashCache::new(tx), 0, spent).unwrap()
}

fn check_with(
    tx: &Transaction,
    spent: &TxOut,
    oracle: &dyn FraudProofOracle,
) -> Result<(), ScriptError> {
    verify_input(tx, 0, spent, &SighashCache::new(tx), oracle)
}

fn check(tx: &Transaction, spent: &TxOut) -> Result<(), ScriptError> {
    check_with(tx, spent, &NoFraudProofs)
}

/// Signs `tx`'s only input with `key`, then sets the scriptSig `make(sig)` returns.
fn signed(
    mut tx: Transaction,
    spent: &TxOut,
    key: &PrivateKey,
    make: impl Fn(&[u8]) -> Script,
) -> Transaction {
    let sig = sign(&tx, spent, key);
    tx.inputs[0].script_sig = make(&sig);
    tx
}

/// S → n − S: the same signature, in its high-S (malleated) form.
fn high_s(sig_with_type: &[u8]) -> Vec<u8> {
    let (der, hash_type) = sig_with_type.split_at(sig_with_type.len() - 1);
    let compact = secp256k1::ecdsa::Signature::from_der(der)
        .unwrap()
        .serialize_compact();
    let n = from_hex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141").unwrap();
    let mut high = compact;
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let v = i16::from(n[i]) - i16::from(compact[32 + i]) - borrow;
        high[32 + i] = v.rem_euclid(256) as u8;
        borrow = i16::from(v < 0);
    }
    let mut out = secp256k1::ecdsa::Signature::from_compact(&high)
        .unwrap()
        .serialize_der()
        .to_vec();
    out.extend_from_slice(hash_type);
    out
}

#[test]
fn p2pkh_spends() {
    let c = client();
    let spent = out(p2pkh(&c.public_key().pubkey_hash()), coins(5));
    let tx = spending(0, JobId::ZERO);
    let pk = c.public_key();
    let good = signed(tx.clone(), &spent, &c, |s| {
        p2pkh_script_sig(s, &pk).unwrap()
    });
    assert_eq!(check(&good, &spent), Ok(()));

    // Signed by another key but presenting the right public key.
    let wrong_sig = signed(tx.clone(), &spent, &worker(), |s| {
        p2pkh_script_sig(s, &pk).unwrap()
    });
    assert_eq!(check(&wrong_sig, &spent), Err(ScriptError::NullFail));
    // Another key and its own public key: the hash does not match.
    let wk = worker().public_key();
    let wrong_key = signed(tx.clone(), &spent, &worker(), |s| {
        p2pkh_script_sig(s, &wk).unwrap()
    });
    assert_eq!(check(&wrong_key, &spent), Err(ScriptError::EqualVerify));
    // The signature commits to the outputs, the spent value and the job id.
    let mut changed = good.clone();
    changed.outputs[0].value = coins(2);
    assert_eq!(check(&changed, &spent), Err(ScriptError::NullFail));
    let mut changed = good.clone();
    changed.job_id = J;
    assert_eq!(check(&changed, &spent), Err(ScriptError::NullFail));
    assert_eq!(
        check(&good, &out(spent.script_pubkey.clone(), coins(6))),
        Err(ScriptError::NullFail)
    );
    // Encodings.
    let sig = sign(&tx, &spent, &c);
    let with_sig = |s: &[u8]| {
        let mut t = tx.clone();
        t.inputs[0].script_sig = p2pkh_script_sig(s, &pk).unwrap();
        t
    };
    assert_eq!(
        check(&with_sig(&high_s(&sig)), &spent),
        Err(ScriptError::SigHighS)
    );
    let mut not_der = sig.clone();
    not_der[1] ^= 1;
    assert_eq!(check(&with_sig(&not_der), &spent), Err(ScriptError::SigDer));
    let mut other_type = sig.clone();
    *other_type.last_mut().unwrap() = 0x02;
    assert_eq!(
        check(&with_sig(&other_type), &spent),
        Err(ScriptError::SigHashType)
    );
    assert_eq!(check(&with_sig(&[]), &spent), Err(ScriptError::EvalFalse));
}

#[test]
fn escrow_payment_path_needs_the_job_id_and_the_client() {
    let c = client();
    let escrow = Escrow {
        job_id: J,
        client: c.public_key(),
        refund_height: 500,
    };
    let spent = out(escrow.script_pubkey(), coins(10));
    let pay = |tx: Transaction, k: &PrivateKey| {
        signed(tx, &spent, k, |s| Escrow::pay_script_sig(s).unwrap())
    };
    assert_eq!(check(&pay(spending(0, J), &c), &spent), Ok(()));
    // Any height, even after the refund height.
    assert_eq!(check(&pay(spending(10_000, J), &c), &spent), Ok(()));
    let other_job = JobId::from_byte_array([0x4b; 32]);
    assert_eq!(
        check(&pay(spending(0, other_job), &c), &spent),
        Err(ScriptError::JobMismatch)
    );
    assert_eq!(
        check(&pay(spending(0, JobId::ZERO), &c), &spent),
        Err(ScriptError::JobMismatch)
    );
    assert_eq!(
        check(&pay(spending(0, J), &worker()), &spent),
        Err(ScriptError::NullFail)
    );
}

#[test]
fn escrow_refund_path_opens_at_the_refund_height() {
    let c = client();
    let escrow = Escrow {
        job_id: J,
        client: c.public_key(),
        refund_height: 500,
    };
    let spent = out(escrow.script_pubkey(), coins(10));
    let refund = |tx: Transaction, k: &PrivateKey| {
        signed(tx, &spent, k, |s| Escrow::refund_script_sig(s).unwrap())
    };
    assert_eq!(
        check(&refund(spending(499, JobId::ZERO), &c), &spent),
        Err(ScriptError::UnsatisfiedLocktime)
    );
    assert_eq!(
        check(&refund(spending(500, JobId::ZERO), &c), &spent),
        Ok(())
    );
    assert_eq!(check(&refund(spending(501, J), &c), &spent), Ok(()));
    assert_eq!(
        check(&refund(spending(500, JobId::ZERO), &worker()), &spent),
        Err(ScriptError::NullFail)
    );
    // A final input disables the lock time, so CLTV refuses it.
    let mut tx = spending(500, JobId::ZERO);
    tx.inputs[0].sequence = SEQUENCE_FINAL;
    assert_eq!(
        check(&refund(tx, &c), &spent),
        Err(ScriptError::UnsatisfiedLocktime)
    );
}

#[test]
fn payment_claim_reveals_the_delivery_key() {
    let (c, w) = (client(), worker());
    let delivery_key = [0x5e; 32];
    let payment = Payment {
        job_id: J,
        key_hash: Payment::key_hash_of(&delivery_key),
        worker: w.public_key(),
        client: c.public_key(),
        timeout_height: 800,
    };
    let spent = out(payment.script_pubkey(), coins(10));
    let claim = |tx: Transaction, k: &PrivateKey, key: [u8; 32]| {
        signed(tx, &spent, k, |s| {
            Payment::claim_script_sig(s, &key).unwrap()
        })
    };
    let ok = claim(spending(0, J), &w, delivery_key);
    assert_eq!(check(&ok, &spent), Ok(()));
    assert_eq!(
        Payment::revealed_key(&ok.inputs[0].script_sig),
        Some(delivery_key)
    );
    assert_eq!(
        check(&claim(spending(0, J), &w, [0x5f; 32]), &spent),
        Err(ScriptError::EqualVerify)
    );
    assert_eq!(
        check(&claim(spending(0, J), &c, delivery_key), &spent),
        Err(ScriptError::NullFail)
    );
    // The claim must carry the job id (so the job rules can see it is a claim for J).
    assert_eq!(
        check(&claim(spending(0, JobId::ZERO), &w, delivery_key), &spent),
        Err(ScriptError::JobMismatch)
    );

    let refund = |tx: Transaction, k: &PrivateKey| {
        signed(tx, &spent, k, |s| Payment::refund_script_sig(s).unwrap())
    };
    assert_eq!(
        check(&refund(spending(799, J), &c), &spent),
        Err(ScriptError::UnsatisfiedLocktime)
    );
    assert_eq!(check(&refund(spending(800, J), &c), &spent), Ok(()));
    assert_eq!(
        check(&refund(spending(800, J), &w), &spent),
        Err(ScriptError::NullFail)
    );
}

/// Accepts exactly one piece of evidence against one worker for one job; says "unavailable"
/// for evidence starting with "?".
struct EvidenceOracle {
    job: JobId,
    worker: PublicKey,
    evidence: Vec<u8>,
}

impl FraudProofOracle for EvidenceOracle {
    fn check_fraud_proof(
        &self,
        job: &JobId,
        worker: &PublicKey,
        evidence: &[u8],
    ) -> Result<(), FraudProofError> {
        if evidence.first() == Some(&b'?') {
            return Err(FraudProofError::Unavailable("model not held".into()));
        }
        if *job == self.job && *worker == self.worker && evidence == self.evidence {
            Ok(())
        } else {
            Err(FraudProofError::Invalid(
                "position 3 matches the model".into(),
            ))
        }
    }
}

#[test]
fn stake_slash_and_reclaim() {
    let (c, w) = (client(), worker());
    let stake = Stake {
        job_id: J,
        worker: w.public_key(),
        client: c.public_key(),
        window_end_height: 900,
    };
    let spent = out(stake.script_pubkey(), coins(20));
    let evidence = b"commitment, output, failing position".to_vec();
    let oracle = EvidenceOracle {
        job: J,
        worker: w.public_key(),
        evidence: evidence.clone(),
    };
    let slash = |k: &PrivateKey, ev: &[u8]| {
        signed(spending(0, JobId::ZERO), &spent, k, |s| {
            Stake::slash_script_sig(s, ev).unwrap()
        })
    };
    assert_eq!(check_with(&slash(&c, &evidence), &spent, &oracle), Ok(()));
    assert_eq!(
        check_with(&slash(&c, b"an honest output"), &spent, &oracle),
        Err(ScriptError::FraudProofInvalid(
            "position 3 matches the model".into()
        ))
    );
    assert!(matches!(
        check_with(&slash(&c, &evidence), &spent, &NoFraudProofs),
        Err(ScriptError::FraudProofInvalid(_))
    ));
    assert!(matches!(
        check_with(&slash(&c, &evidence), &spent, &FraudProofsUnavailable),
        Err(ScriptError::FraudProofUnavailable(_))
    ));
    assert_eq!(
        check_with(&slash(&c, b"?needs the model"), &spent, &oracle),
        Err(ScriptError::FraudProofUnavailable("model not held".into()))
    );
    // Someone else holding the proof cannot take the stake, whatever the oracle says.
    assert_eq!(
        check_with(&slash(&key(3), &evidence), &spent, &oracle),
        Err(ScriptError::NullFail)
    );
    assert_eq!(
        check_with(&slash(&key(3), b"?needs the model"), &spent, &oracle),
        Err(ScriptError::NullFail)
    );
    // Evidence against another worker of the same job does not slash this one.
    let other = Stake {
        worker: key(4).public_key(),
        ..stake
    };
    let other_spent = out(other.script_pubkey(), coins(20));
    let tx = signed(spending(0, JobId::ZERO), &other_spent, &c, |s| {
        Stake::slash_script_sig(s, &evidence).unwrap()
    });
    assert!(matches!(
        check_with(&tx, &other_spent, &oracle),
        Err(ScriptError::FraudProofInvalid(_))
    ));

    let reclaim = |lock: u32, k: &PrivateKey| {
        signed(spending(lock, JobId::ZERO), &spent, k, |s| {
            Stake::reclaim_script_sig(s).unwrap()
        })
    };
    assert_eq!(
        check(&reclaim(899, &w), &spent),
        Err(ScriptError::UnsatisfiedLocktime)
    );
    assert_eq!(check(&reclaim(900, &w), &spent), Ok(()));
    assert_eq!(check(&reclaim(900, &c), &spent), Err(ScriptError::NullFail));
}

#[test]
fn verify_input_checks_its_arguments() {
    let c = client();
    let spent = out(p2pkh(&c.public_key().pubkey_hash()), coins(5));
    let pk = c.public_key();
    let tx = signed(spending(0, JobId::ZERO), &spent, &c, |s| {
        p2pkh_script_sig(s, &pk).unwrap()
    });
    let cache = SighashCache::new(&tx);
    assert_eq!(
        verify_input(&tx, 1, &spent, &cache, &NoFraudProofs),
        Err(ScriptError::InputIndex {
            index: 1,
            inputs: 1
        })
    );
    // An equal copy is fine; a different transaction is refused.
    let copy = tx.clone();
    assert_eq!(
        verify_input(&copy, 0, &spent, &cache, &NoFraudProofs),
        Ok(())
    );
    let mut other = tx.clone();
    other.lock_time = 1;
    assert_eq!(
        verify_input(&other, 0, &spent, &cache, &NoFraudProofs),
        Err(ScriptError::SighashCacheMismatch)
    );
    // The checker reads the spending transaction's fields.
    let checker = TransactionChecker::new(&cache, 0, spent.value);
    assert_eq!(checker.lock_time(), 0);
    assert_eq!(checker.input_sequence(), 0xffff_fffe);
    assert_eq!(checker.job_id(), JobId::ZERO);
    assert_eq!(
        TransactionChecker::new(&cache, 7, spent.value).check_sig(
            &sign(&tx, &spent, &c),
            &pk.to_bytes(),
            &spent.script_pubkey
        ),
        Err(ScriptError::InputIndex {
            index: 7,
            inputs: 1
        })
    );
}

/// The job protocol as a chain of transactions: create, accept, pay, claim, then either settle
/// or dispute.
#[test]
fn job_protocol_chain() {
    let (c, w) = (client(), worker());
    let (cp, wp) = (c.public_key(), w.public_key());
    let dispute_window = 15;
    let created_at = 100;
    let evidence = b"signed commitment + revealed output + failing position".to_vec();
    let oracle = EvidenceOracle {
        job: J,
        worker: wp,
        evidence: evidence.clone(),
    };
    let txin = |txid: Txid, vout: u32| TxIn {
        prev_out: OutPoint::new(txid, vout),
        script_sig: Script::default(),
        sequence: 0xffff_fffe,
    };
    let sign_input = |tx: &mut Transaction,
                      i: usize,
                      spent: &TxOut,
                      k: &PrivateKey,
                      make: &dyn Fn(&[u8]) -> Script| {
        let sig = input_signature(k, &SighashCache::new(&*tx), i, spent).unwrap();
        tx.inputs[i].script_sig = make(&sig);
    };
    let verify_all = |tx: &Transaction, spent: &[&TxOut], oracle: &dyn FraudProofOracle| {
        let cache = SighashCache::new(tx);
        for (i, s) in spent.iter().enumerate() {
            verify_input(tx, i, s, &cache, oracle)?;
        }
        Ok::<(), ScriptError>(())
    };

    // 1. Create: the client's coin funds the escrow, in a transaction carrying the job id.
    let client_coin = out(p2pkh(&cp.pubkey_hash()), coins(11));
    let escrow = Escrow {
        job_id: J,
        client: cp,
        refund_height: created_at + 50,
    };
    let mut job_tx = Transaction {
        version: 1,
        inputs: vec![txin(Txid::from_byte_array([1; 32]), 0)],
        outputs: vec![out(escrow.script_pubkey(), coins(10))],
        lock_time: created_at,
        job_id: J,
    };
    sign_input(&mut job_tx, 0, &client_coin, &c, &|s| {
        p2pkh_script_sig(s, &cp).unwrap()
    });
    assert_eq!(verify_all(&job_tx, &[&client_coin], &NoFraudProofs), Ok(()));

    // 2. Accept: the worker stakes.
    let worker_coin = out(p2pkh(&wp.pubkey_hash()), coins(6));
    let window_end = created_at + 10 + dispute_window;
    let stake = Stake {
        job_id: J,
        worker: wp,
        client: cp,
        window_end_height: window_end,
    };
    let mut accept_tx = Transaction {
        version: 1,
        inputs: vec![txin(Txid::from_byte_array([2; 32]), 0)],
        outputs: vec![out(stake.script_pubkey(), coins(5))],
        lock_time: created_at + 1,
        job_id: J,
    };
    sign_input(&mut accept_tx, 0, &worker_coin, &w, &|s| {
        p2pkh_script_sig(s, &wp).unwrap()
    });
    assert_eq!(
        verify_all(&accept_tx, &[&worker_coin], &NoFraudProofs),
        Ok(())
    );
    let stake_out = accept_tx.outputs[0].clone();
    assert_eq!(
        classify(&stake_out.script_pubkey),
        Some(Template::Stake(stake))
    );

    // 3-4. Commit, then pay: the client spends the escrow into a payment HTLC locked to the
    // delivery key's hash from the worker's commitment.
    let delivery_key = [0x77; 32];
    let payment = Payment {
        job_id: J,
        key_hash: Payment::key_hash_of(&delivery_key),
        worker: wp,
        client: cp,
        timeout_height: created_at + 40,
    };
    let escrow_out = job_tx.outputs[0].clone();
    let mut pay_tx = Transaction {
        version: 1,
        inputs: vec![txin(job_tx.txid(), 0)],
        outputs: vec![out(payment.script_pubkey(), coins(10))],
        lock_time: created_at + 10,
        job_id: J,
    };
    sign_input(&mut pay_tx, 0, &escrow_out, &c, &|s| {
        Escrow::pay_script_sig(s).unwrap()
    });
    assert_eq!(verify_all(&pay_tx, &[&escrow_out], &NoFraudProofs), Ok(()));
    assert_eq!(
        spend_path(&Template::Escrow(escrow), &pay_tx.inputs[0].script_sig),
        Some(SpendPath::EscrowPay)
    );

    // The worker claims, revealing the key, into a stake-template output that stays open to
    // fraud proofs until the window ends.
    let payment_out = pay_tx.outputs[0].clone();
    let claimed = Stake {
        window_end_height: created_at + 11 + dispute_window,
        ..stake
    };
    let mut claim_tx = Transaction {
        version: 1,
        inputs: vec![txin(pay_tx.txid(), 0)],
        outputs: vec![out(claimed.script_pubkey(), coins(10))],
        lock_time: created_at + 11,
        job_id: J,
    };
    sign_input(&mut claim_tx, 0, &payment_out, &w, &|s| {
        Payment::claim_script_sig(s, &delivery_key).unwrap()
    });
    assert_eq!(
        verify_all(&claim_tx, &[&payment_out], &NoFraudProofs),
        Ok(())
    );
    assert_eq!(
        spend_path(&Template::Payment(payment), &claim_tx.inputs[0].script_sig),
        Some(SpendPath::PaymentClaim { delivery_key })
    );
    assert_eq!(
        Payment::revealed_key(&claim_tx.inputs[0].script_sig),
        Some(delivery_key)
    );
    let claimed_out = claim_tx.outputs[0].clone();

    // 7a. Settle: after the window the worker takes both its stake and its payment.
    let settle = |lock_time: u32| {
        let mut tx = Transaction {
            version: 1,
            inputs: vec![txin(accept_tx.txid(), 0), txin(claim_tx.txid(), 0)],
            outputs: vec![out(p2pkh(&wp.pubkey_hash()), coins(15))],
            lock_time,
            job_id: JobId::ZERO,
        };
        sign_input(&mut tx, 0, &stake_out, &w, &|s| {
            Stake::reclaim_script_sig(s).unwrap()
        });
        sign_input(&mut tx, 1, &claimed_out, &w, &|s| {
            Stake::reclaim_script_sig(s).unwrap()
        });
        tx
    };
    let last = claimed.window_end_height;
    assert_eq!(
        verify_all(
            &settle(last - 1),
            &[&stake_out, &claimed_out],
            &NoFraudProofs
        ),
        Err(ScriptError::UnsatisfiedLocktime)
    );
    assert_eq!(
        verify_all(&settle(last), &[&stake_out, &claimed_out], &NoFraudProofs),
        Ok(())
    );

    // 6. Dispute instead: inside the window the client's fraud proof takes both.
    let mut dispute = Transaction {
        version: 1,
        inputs: vec![txin(accept_tx.txid(), 0), txin(claim_tx.txid(), 0)],
        outputs: vec![out(p2pkh(&cp.pubkey_hash()), coins(15))],
        lock_time: created_at + 12,
        job_id: J,
    };
    let ev = evidence.clone();
    sign_input(&mut dispute, 0, &stake_out, &c, &|s| {
        Stake::slash_script_sig(s, &ev).unwrap()
    });
    sign_input(&mut dispute, 1, &claimed_out, &c, &|s| {
        Stake::slash_script_sig(s, &ev).unwrap()
    });
    assert_eq!(
        verify_all(&dispute, &[&stake_out, &claimed_out], &oracle),
        Ok(())
    );
    assert_eq!(
        spend_path(&Template::Stake(claimed), &dispute.inputs[1].script_sig),
        Some(SpendPath::StakeSlash {
            evidence: evidence.clone()
        })
    );
    assert!(matches!(
        verify_all(&dispute, &[&stake_out, &claimed_out], &NoFraudProofs),
        Err(ScriptError::FraudProofInvalid(_))
    ));

    // A client that never pays: the escrow only returns to the client after the refund
    // height, and the worker never revealed the key, so the client never reads the output.
    let mut refund_tx = Transaction {
        version: 1,
        inputs: vec![txin(job_tx.txid(), 0)],
        outputs: vec![out(p2pkh(&cp.pubkey_hash()), coins(10))],
        lock_time: escrow.refund_height,
        job_id: JobId::ZERO,
    };
    sign_input(&mut refund_tx, 0, &escrow_out, &c, &|s| {
        Escrow::refund_script_sig(s).unwrap()
    });
    assert_eq!(
        verify_all(&refund_tx, &[&escrow_out], &NoFraudProofs),
        Ok(())
    );
    assert_eq!(
        spend_path(&Template::Escrow(escrow), &refund_tx.inputs[0].script_sig),
        Some(SpendPath::EscrowRefund)
    );
}

/// A context for the vector file: no signature is ever valid.
struct VectorContext {
    lock_time: u32,
    sequence: u32,
    job_id: JobId,
}

impl SpendContext for VectorContext {
    fn check_sig(&self, _: &[u8], _: &[u8], _: &Script) -> Result<bool, ScriptError> {
        Ok(false)
    }
    fn lock_time(&self) -> u32 {
        self.lock_time
    }
    fn input_sequence(&self) -> u32 {
        self.sequence
    }
    fn job_id(&self) -> JobId {
        self.job_id
    }
}

fn data_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Columns (tab-separated): scriptSig hex, scriptPubKey hex, lock time, input sequence,
/// job id hex, expected result (`ok` or a `ScriptError::reason`), comment.
#[test]
fn script_vectors() {
    let text = data_file("script_vectors.tsv");
    let mut count = 0;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 7, "line {}: {line}", n + 1);
        let sig = Script::new(from_hex(cols[0]).unwrap());
        let pk = Script::new(from_hex(cols[1]).unwrap());
        let ctx = VectorContext {
            lock_time: cols[2].parse().unwrap(),
            sequence: cols[3].parse().unwrap(),
            job_id: cols[4].parse().unwrap(),
        };
        let got = match verify_script(&sig, &pk, &ctx, &FraudProofsUnavailable) {
            Ok(()) => "ok",
            Err(e) => e.reason(),
        };
        assert_eq!(got, cols[5], "line {} ({}): {sig} | {pk}", n + 1, cols[6]);
        count += 1;
    }
    assert!(count >= 40, "only {count} vectors");
}

/// Columns: template name, parameters, expected scriptPubKey hex. Keys are those of private
/// keys 0x01…01 (client) and 0x02…02 (worker).
#[test]
fn template_vectors() {
    let text = data_file("template_vectors.tsv");
    let (c, w) = (client().public_key(), worker().public_key());
    let mut count = 0;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 3, "line {}", n + 1);
        let param = |name: &str| -> &str {
            cols[1]
                .split(' ')
                .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .unwrap_or_else(|| panic!("line {}: no {name}", n + 1))
        };
        let template = match cols[0] {
            "p2pkh" => Template::P2pkh {
                pubkey_hash: c.pubkey_hash(),
            },
            "escrow" => Template::Escrow(Escrow {
                job_id: param("job").parse().unwrap(),
                client: c,
                refund_height: param("refund_height").parse().unwrap(),
            }),
            "payment" => Template::Payment(Payment {
                job_id: param("job").parse().unwrap(),
                key_hash: Payment::key_hash_of(
                    &from_hex(param("key")).unwrap().try_into().unwrap(),
                ),
                worker: w,
                client: c,
                timeout_height: param("timeout_height").parse().unwrap(),
            }),
            "stake" => Template::Stake(Stake {
                job_id: param("job").parse().unwrap(),
                worker: w,
                client: c,
                window_end_height: param("window_end_height").parse().unwrap(),
            }),
            "data" => Template::DataCarrier(from_hex(param("data")).unwrap()),
            other => panic!("line {}: unknown template {other}", n + 1),
        };
        let script = template.script_pubkey().unwrap();
        assert_eq!(
            to_hex(script.as_bytes()),
            cols[2],
            "line {}: {script}",
            n + 1
        );
        assert_eq!(classify(&script), Some(template));
        count += 1;
    }
    assert!(count >= 5);
    // The keys the file names.
    assert_eq!(
        c.to_string(),
        "031b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f"
    );
}

/// Builds a scriptSig around a signature.
type MakeSig = fn(&[u8]) -> Script;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// For any height, every timelocked branch opens exactly at its height.
    #[test]
    fn timelocked_branches_open_exactly_at_their_height(height in 1u32.., job in proptest::prelude::any::<[u8; 32]>()) {
        let (c, w) = (client(), worker());
        let job_id = JobId::from_byte_array(job);
        let cases: [(TxOut, &PrivateKey, MakeSig); 3] = [
            (
                out(Escrow { job_id, client: c.public_key(), refund_height: height }.script_pubkey(), coins(1)),
                &c,
                |s| Escrow::refund_script_sig(s).unwrap(),
            ),
            (
                out(Payment { job_id, key_hash: [3; 32], worker: w.public_key(), client: c.public_key(), timeout_height: height }.script_pubkey(), coins(1)),
                &c,
                |s| Payment::refund_script_sig(s).unwrap(),
            ),
            (
                out(Stake { job_id, worker: w.public_key(), client: c.public_key(), window_end_height: height }.script_pubkey(), coins(1)),
                &w,
                |s| Stake::reclaim_script_sig(s).unwrap(),
            ),
        ];
        for (spent, k, make) in &cases {
            let early = signed(spending(height - 1, JobId::ZERO), spent, k, make);
            proptest::prop_assert_eq!(check(&early, spent), Err(ScriptError::UnsatisfiedLocktime));
            let on_time = signed(spending(height, JobId::ZERO), spent, k, make);
            proptest::prop_assert_eq!(check(&on_time, spent), Ok(()));
        }
    }
}
