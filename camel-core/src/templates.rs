//! The standard output scripts, their spending scriptSigs, and a recogniser.
//!
//! | template | scriptPubKey |
//! |---|---|
//! | P2PKH | `OP_DUP OP_HASH160 <pkh:20> OP_EQUALVERIFY OP_CHECKSIG` |
//! | escrow | `OP_IF <J:32> OP_CHECKJOBVERIFY OP_DROP <client:33> OP_CHECKSIG OP_ELSE <refund_height> OP_CHECKLOCKTIMEVERIFY OP_DROP <client:33> OP_CHECKSIG OP_ENDIF` |
//! | payment | `OP_IF <J:32> OP_CHECKJOBVERIFY OP_DROP OP_SHA256 <key_hash:32> OP_EQUALVERIFY <worker:33> OP_CHECKSIG OP_ELSE <timeout_height> OP_CHECKLOCKTIMEVERIFY OP_DROP <client:33> OP_CHECKSIG OP_ENDIF` |
//! | stake | `OP_IF <J:32> <worker:33> OP_CHECKFRAUDPROOFVERIFY <client:33> OP_CHECKSIG OP_ELSE <window_end_height> OP_CHECKLOCKTIMEVERIFY OP_DROP <worker:33> OP_CHECKSIG OP_ENDIF` |
//! | data carrier | `OP_RETURN <data: 0..=80 bytes>` |
//!
//! Heights are script numbers pushed minimally ([`Builder::push_int`]). [`classify`] accepts
//! exactly the bytes these builders produce and nothing else, so "standard" has one encoding.
//! `docs/protocol.md` section 8 describes how the job protocol strings them together.

use core::fmt;

use crate::hash::{JobId, sha256};
use crate::interpreter::MAX_LOCKTIME_NUM_SIZE;
use crate::keys::{self, PrivateKey, PublicKey};
use crate::script::opcodes::*;
use crate::script::{BuildError, Builder, Instruction, Script, decode_script_num};
use crate::sighash::{SIGHASH_ALL, SighashCache, SighashError};
use crate::transaction::TxOut;

/// Most bytes a data-carrier output may carry.
pub const MAX_DATA_CARRIER_SIZE: usize = 80;

/// Why a template could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// Data-carrier payload above [`MAX_DATA_CARRIER_SIZE`].
    DataCarrierTooLong(usize),
    /// A scriptSig item too long for one push.
    Push(BuildError),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataCarrierTooLong(n) => write!(
                f,
                "data carrier of {n} bytes exceeds the limit of {MAX_DATA_CARRIER_SIZE}"
            ),
            Self::Push(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TemplateError {}

impl From<BuildError> for TemplateError {
    fn from(e: BuildError) -> Self {
        Self::Push(e)
    }
}

/// The client's escrow for job `job_id`: spent by a transaction whose own job id is `job_id`
/// and which the client signs (the payment), or by the client alone from `refund_height` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escrow {
    pub job_id: JobId,
    pub client: PublicKey,
    pub refund_height: u32,
}

/// The payment HTLC for job `job_id`: the worker claims it, in a transaction whose job id is
/// `job_id`, by revealing the delivery key whose SHA-256 is `key_hash`; the client takes it
/// back from `timeout_height` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payment {
    pub job_id: JobId,
    pub key_hash: [u8; 32],
    pub worker: PublicKey,
    pub client: PublicKey,
    pub timeout_height: u32,
}

/// The worker's stake on job `job_id` (and, with the same layout, its claimed payment while the
/// dispute window is open): the client takes it with a fraud proof against `worker`'s
/// commitment; the worker takes it back from `window_end_height` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stake {
    pub job_id: JobId,
    pub worker: PublicKey,
    pub client: PublicKey,
    pub window_end_height: u32,
}

/// A recognised standard scriptPubKey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    P2pkh {
        pubkey_hash: [u8; 20],
    },
    Escrow(Escrow),
    Payment(Payment),
    Stake(Stake),
    /// Unspendable; carries at most [`MAX_DATA_CARRIER_SIZE`] bytes.
    DataCarrier(Vec<u8>),
}

impl Template {
    /// The scriptPubKey; only a data carrier over 80 bytes fails.
    pub fn script_pubkey(&self) -> Result<Script, TemplateError> {
        Ok(match self {
            Self::P2pkh { pubkey_hash } => p2pkh(pubkey_hash),
            Self::Escrow(e) => e.script_pubkey(),
            Self::Payment(p) => p.script_pubkey(),
            Self::Stake(s) => s.script_pubkey(),
            Self::DataCarrier(d) => data_carrier(d)?,
        })
    }
}

/// `OP_DUP OP_HASH160 <pubkey_hash> OP_EQUALVERIFY OP_CHECKSIG`.
pub fn p2pkh(pubkey_hash: &[u8; 20]) -> Script {
    Builder::new()
        .push_opcode(OP_DUP)
        .push_opcode(OP_HASH160)
        .push_array(pubkey_hash)
        .push_opcode(OP_EQUALVERIFY)
        .push_opcode(OP_CHECKSIG)
        .into_script()
}

/// `<sig> <pubkey>`: spends a P2PKH output.
pub fn p2pkh_script_sig(sig: &[u8], pubkey: &PublicKey) -> Result<Script, TemplateError> {
    Ok(Builder::new()
        .push_slice(sig)?
        .push_key(pubkey)
        .into_script())
}

/// `OP_RETURN <data>` with `data` pushed minimally (an empty payload is `OP_RETURN OP_0`).
pub fn data_carrier(data: &[u8]) -> Result<Script, TemplateError> {
    if data.len() > MAX_DATA_CARRIER_SIZE {
        return Err(TemplateError::DataCarrierTooLong(data.len()));
    }
    Ok(Builder::new()
        .push_opcode(OP_RETURN)
        .push_slice(data)?
        .into_script())
}

/// `<sig> OP_1` or `<sig> OP_0`: the two branch selectors every job template uses.
fn branch_sig(sig: &[u8], first_branch: bool) -> Result<Script, TemplateError> {
    let selector = if first_branch { OP_1 } else { OP_0 };
    Ok(Builder::new()
        .push_slice(sig)?
        .push_opcode(selector)
        .into_script())
}

impl Escrow {
    pub fn script_pubkey(&self) -> Script {
        Builder::new()
            .push_opcode(OP_IF)
            .push_array(self.job_id.as_bytes())
            .push_opcode(OP_CHECKJOBVERIFY)
            .push_opcode(OP_DROP)
            .push_key(&self.client)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ELSE)
            .push_int(i64::from(self.refund_height))
            .push_opcode(OP_CHECKLOCKTIMEVERIFY)
            .push_opcode(OP_DROP)
            .push_key(&self.client)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ENDIF)
            .into_script()
    }

    /// `<client_sig> OP_1`: the client's payment (its transaction's job id must be `job_id`).
    pub fn pay_script_sig(client_sig: &[u8]) -> Result<Script, TemplateError> {
        branch_sig(client_sig, true)
    }

    /// `<client_sig> OP_0`: the client's refund (lock time ≥ `refund_height`, input not final).
    pub fn refund_script_sig(client_sig: &[u8]) -> Result<Script, TemplateError> {
        branch_sig(client_sig, false)
    }
}

impl Payment {
    pub fn script_pubkey(&self) -> Script {
        Builder::new()
            .push_opcode(OP_IF)
            .push_array(self.job_id.as_bytes())
            .push_opcode(OP_CHECKJOBVERIFY)
            .push_opcode(OP_DROP)
            .push_opcode(OP_SHA256)
            .push_array(&self.key_hash)
            .push_opcode(OP_EQUALVERIFY)
            .push_key(&self.worker)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ELSE)
            .push_int(i64::from(self.timeout_height))
            .push_opcode(OP_CHECKLOCKTIMEVERIFY)
            .push_opcode(OP_DROP)
            .push_key(&self.client)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ENDIF)
            .into_script()
    }

    /// The hash a payment locks to for a given delivery key.
    pub fn key_hash_of(delivery_key: &[u8; 32]) -> [u8; 32] {
        sha256(delivery_key)
    }

    /// `<worker_sig> <delivery_key> OP_1`: the worker's claim, revealing the key (its
    /// transaction's job id must be `job_id`).
    pub fn claim_script_sig(
        worker_sig: &[u8],
        delivery_key: &[u8; 32],
    ) -> Result<Script, TemplateError> {
        Ok(Builder::new()
            .push_slice(worker_sig)?
            .push_array(delivery_key)
            .push_opcode(OP_1)
            .into_script())
    }

    /// `<client_sig> OP_0`: the client's reclaim (lock time ≥ `timeout_height`).
    pub fn refund_script_sig(client_sig: &[u8]) -> Result<Script, TemplateError> {
        branch_sig(client_sig, false)
    }

    /// The delivery key revealed by a claim scriptSig (`<sig> <key:32> OP_1`), if it is one.
    pub fn revealed_key(script_sig: &Script) -> Option<[u8; 32]> {
        let ins: Vec<Instruction<'_>> = script_sig.instructions().collect::<Result<_, _>>().ok()?;
        match ins.as_slice() {
            [
                Instruction::Push(_),
                Instruction::Push(key),
                Instruction::Op(OP_1),
            ] => <[u8; 32]>::try_from(*key).ok(),
            _ => None,
        }
    }
}

impl Stake {
    pub fn script_pubkey(&self) -> Script {
        Builder::new()
            .push_opcode(OP_IF)
            .push_array(self.job_id.as_bytes())
            .push_key(&self.worker)
            .push_opcode(OP_CHECKFRAUDPROOFVERIFY)
            .push_key(&self.client)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ELSE)
            .push_int(i64::from(self.window_end_height))
            .push_opcode(OP_CHECKLOCKTIMEVERIFY)
            .push_opcode(OP_DROP)
            .push_key(&self.worker)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ENDIF)
            .into_script()
    }

    /// `<client_sig> <evidence> OP_1`: the client's slash with a fraud proof.
    pub fn slash_script_sig(client_sig: &[u8], evidence: &[u8]) -> Result<Script, TemplateError> {
        Ok(Builder::new()
            .push_slice(client_sig)?
            .push_slice(evidence)?
            .push_opcode(OP_1)
            .into_script())
    }

    /// `<worker_sig> OP_0`: the worker's reclaim (lock time ≥ `window_end_height`).
    pub fn reclaim_script_sig(worker_sig: &[u8]) -> Result<Script, TemplateError> {
        branch_sig(worker_sig, false)
    }
}

/// The scriptSig signature for input `input_index` of the cache's transaction, spending `spent`:
/// DER ‖ `SIGHASH_ALL`.
pub fn input_signature(
    key: &PrivateKey,
    cache: &SighashCache<'_>,
    input_index: usize,
    spent: &TxOut,
) -> Result<Vec<u8>, SighashError> {
    let digest = cache.signature_hash(input_index, &spent.script_pubkey, spent.value)?;
    let mut sig = keys::sign_hash(key, &digest);
    sig.push(SIGHASH_ALL);
    Ok(sig)
}

/// Which branch of a standard template an input takes, read from its scriptSig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendPath {
    P2pkh,
    /// The client's payment out of an escrow.
    EscrowPay,
    EscrowRefund,
    /// The worker's claim of a payment, revealing the delivery key.
    PaymentClaim {
        delivery_key: [u8; 32],
    },
    PaymentRefund,
    /// The client's slash of a stake with fraud-proof evidence.
    StakeSlash {
        evidence: Vec<u8>,
    },
    StakeReclaim,
}

/// The branch `script_sig` takes through an output of `template`, `None` if it does not have the
/// shape of one of that template's spending scriptSigs (data carriers have none).
///
/// Exact for inputs that passed verification: the clean-stack, minimal-push and MINIMALIF rules
/// leave a valid spend no other shape. The job rules and the job pool use it to see payments,
/// claims, slashes and refunds.
pub fn spend_path(template: &Template, script_sig: &Script) -> Option<SpendPath> {
    let ins: Vec<Instruction<'_>> = script_sig.instructions().collect::<Result<_, _>>().ok()?;
    let [first, rest @ ..] = ins.as_slice() else {
        return None;
    };
    pushed_bytes(first)?;
    let path = match (template, rest) {
        (Template::P2pkh { .. }, [Instruction::Push(pk)]) if pk.len() == 33 => SpendPath::P2pkh,
        (Template::Escrow(_), [Instruction::Op(OP_1)]) => SpendPath::EscrowPay,
        (Template::Escrow(_), [Instruction::Push([])]) => SpendPath::EscrowRefund,
        (Template::Payment(_), [Instruction::Push(key), Instruction::Op(OP_1)]) => {
            SpendPath::PaymentClaim {
                delivery_key: (*key).try_into().ok()?,
            }
        }
        (Template::Payment(_), [Instruction::Push([])]) => SpendPath::PaymentRefund,
        (Template::Stake(_), [evidence, Instruction::Op(OP_1)]) => SpendPath::StakeSlash {
            evidence: pushed_bytes(evidence)?,
        },
        (Template::Stake(_), [Instruction::Push([])]) => SpendPath::StakeReclaim,
        _ => return None,
    };
    Some(path)
}

/// Recognises a standard scriptPubKey in exactly the encoding the builders above produce.
pub fn classify(script: &Script) -> Option<Template> {
    let ins: Vec<Instruction<'_>> = script.instructions().collect::<Result<_, _>>().ok()?;
    let template = match ins.as_slice() {
        [
            Instruction::Op(OP_DUP),
            Instruction::Op(OP_HASH160),
            Instruction::Push(pkh),
            Instruction::Op(OP_EQUALVERIFY),
            Instruction::Op(OP_CHECKSIG),
        ] => Template::P2pkh {
            pubkey_hash: (*pkh).try_into().ok()?,
        },
        [Instruction::Op(OP_RETURN), data] => Template::DataCarrier(pushed_bytes(data)?),
        [
            Instruction::Op(OP_IF),
            Instruction::Push(job),
            Instruction::Op(OP_CHECKJOBVERIFY),
            Instruction::Op(OP_DROP),
            Instruction::Push(client),
            Instruction::Op(OP_CHECKSIG),
            Instruction::Op(OP_ELSE),
            height,
            Instruction::Op(OP_CHECKLOCKTIMEVERIFY),
            Instruction::Op(OP_DROP),
            Instruction::Push(client2),
            Instruction::Op(OP_CHECKSIG),
            Instruction::Op(OP_ENDIF),
        ] if client == client2 => Template::Escrow(Escrow {
            job_id: job_id(job)?,
            client: PublicKey::from_slice(client).ok()?,
            refund_height: height_of(height)?,
        }),
        [
            Instruction::Op(OP_IF),
            Instruction::Push(job),
            Instruction::Op(OP_CHECKJOBVERIFY),
            Instruction::Op(OP_DROP),
            Instruction::Op(OP_SHA256),
            Instruction::Push(key_hash),
            Instruction::Op(OP_EQUALVERIFY),
            Instruction::Push(worker),
            Instruction::Op(OP_CHECKSIG),
            Instruction::Op(OP_ELSE),
            height,
            Instruction::Op(OP_CHECKLOCKTIMEVERIFY),
            Instruction::Op(OP_DROP),
            Instruction::Push(client),
            Instruction::Op(OP_CHECKSIG),
            Instruction::Op(OP_ENDIF),
        ] => Template::Payment(Payment {
            job_id: job_id(job)?,
            key_hash: (*key_hash).try_into().ok()?,
            worker: PublicKey::from_slice(worker).ok()?,
            client: PublicKey::from_slice(client).ok()?,
            timeout_height: height_of(height)?,
        }),
        [
            Instruction::Op(OP_IF),
            Instruction::Push(job),
            Instruction::Push(worker),
            Instruction::Op(OP_CHECKFRAUDPROOFVERIFY),
            Instruction::Push(client),
            Instruction::Op(OP_CHECKSIG),
            Instruction::Op(OP_ELSE),
            height,
            Instruction::Op(OP_CHECKLOCKTIMEVERIFY),
            Instruction::Op(OP_DROP),
            Instruction::Push(worker2),
            Instruction::Op(OP_CHECKSIG),
            Instruction::Op(OP_ENDIF),
        ] if worker == worker2 => Template::Stake(Stake {
            job_id: job_id(job)?,
            worker: PublicKey::from_slice(worker).ok()?,
            client: PublicKey::from_slice(client).ok()?,
            window_end_height: height_of(height)?,
        }),
        _ => return None,
    };
    // Only the builders' exact bytes (minimal pushes, minimal numbers) are standard.
    (template.script_pubkey().ok()? == *script).then_some(template)
}

/// The job protocol's templates (escrow, payment, stake) as [`classify`] recognises them,
/// `None` for any other script. Each of them opens with `OP_IF`, so the scripts of ordinary
/// payments are ruled out by their first byte, without parsing: the job rules ask this of
/// every output and every spent coin of a block.
pub fn classify_job(script: &Script) -> Option<Template> {
    if script.as_bytes().first() != Some(&OP_IF) {
        return None;
    }
    classify(script).filter(|t| {
        matches!(
            t,
            Template::Escrow(_) | Template::Payment(_) | Template::Stake(_)
        )
    })
}

/// Whether a scriptPubKey is one of the standard templates.
pub fn is_standard(script: &Script) -> bool {
    classify(script).is_some()
}

fn job_id(bytes: &[u8]) -> Option<JobId> {
    Some(JobId::from_byte_array(bytes.try_into().ok()?))
}

/// The bytes an instruction pushes, counting `OP_1NEGATE` and `OP_1`..`OP_16`.
fn pushed_bytes(ins: &Instruction<'_>) -> Option<Vec<u8>> {
    match *ins {
        Instruction::Push(data) => Some(data.to_vec()),
        Instruction::Op(OP_1NEGATE) => Some(vec![0x81]),
        Instruction::Op(op @ OP_1..=OP_16) => Some(vec![op.wrapping_sub(OP_1).wrapping_add(1)]),
        Instruction::Op(_) => None,
    }
}

/// A block height pushed as a script number the way `OP_CHECKLOCKTIMEVERIFY` reads it.
fn height_of(ins: &Instruction<'_>) -> Option<u32> {
    let n = decode_script_num(&pushed_bytes(ins)?, MAX_LOCKTIME_NUM_SIZE).ok()?;
    u32::try_from(n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        PrivateKey::from_slice(&[b; 32]).unwrap().public_key()
    }

    fn samples() -> Vec<Template> {
        let (c, w) = (key(1), key(2));
        let j = JobId::from_byte_array([0xab; 32]);
        let mut v = vec![
            Template::P2pkh {
                pubkey_hash: c.pubkey_hash(),
            },
            Template::DataCarrier(Vec::new()),
            Template::DataCarrier(vec![5]),
            Template::DataCarrier(vec![0x81]),
            Template::DataCarrier(b"camelid".to_vec()),
            Template::DataCarrier(vec![0xee; MAX_DATA_CARRIER_SIZE]),
        ];
        for h in [
            0u32,
            1,
            16,
            17,
            127,
            128,
            255,
            256,
            1_000_000,
            0x7fff_ffff,
            0x8000_0000,
            u32::MAX,
        ] {
            v.push(Template::Escrow(Escrow {
                job_id: j,
                client: c,
                refund_height: h,
            }));
            v.push(Template::Payment(Payment {
                job_id: j,
                key_hash: [0x11; 32],
                worker: w,
                client: c,
                timeout_height: h,
            }));
            v.push(Template::Stake(Stake {
                job_id: j,
                worker: w,
                client: c,
                window_end_height: h,
            }));
        }
        v
    }

    #[test]
    fn classify_roundtrips_every_template() {
        for t in samples() {
            let s = t.script_pubkey().unwrap();
            assert_eq!(classify(&s), Some(t.clone()), "{s}");
            assert!(is_standard(&s));
            assert_eq!(
                s.is_provably_unspendable(),
                matches!(t, Template::DataCarrier(_)),
                "{s}"
            );
        }
    }

    /// `classify_job` agrees with `classify` on every template, and on scripts that differ
    /// from one in a byte or lose their tail.
    #[test]
    fn classify_job_is_classify_for_the_job_templates() {
        let is_job = |t: &Template| {
            matches!(
                t,
                Template::Escrow(_) | Template::Payment(_) | Template::Stake(_)
            )
        };
        let mut jobs = 0;
        for t in samples() {
            let s = t.script_pubkey().unwrap();
            jobs += usize::from(is_job(&t));
            let bytes = s.as_bytes().to_vec();
            let mut variants = vec![s.clone(), Script::new(bytes[1..].to_vec())];
            for i in 0..bytes.len() {
                let mut b = bytes.clone();
                b[i] ^= 0x01;
                variants.push(Script::new(b));
                variants.push(Script::new(bytes[..i].to_vec()));
            }
            for v in variants {
                assert_eq!(classify_job(&v), classify(&v).filter(is_job), "{v}");
            }
        }
        assert!(jobs >= 3);
    }

    #[test]
    fn exact_layouts() {
        let (c, w) = (key(1), key(2));
        let j = JobId::from_byte_array([0xab; 32]);
        let hex = |s: Script| crate::hash::to_hex(s.as_bytes());
        let (ch, wh, jh) = (c.to_string(), w.to_string(), j.to_string());
        assert_eq!(
            hex(p2pkh(&[0x22; 20])),
            format!("76a914{}88ac", "22".repeat(20))
        );
        assert_eq!(
            hex(Escrow {
                job_id: j,
                client: c,
                refund_height: 1000
            }
            .script_pubkey()),
            format!("6320{jh}b37521{ch}ac6702e803b17521{ch}ac68")
        );
        assert_eq!(
            hex(Payment {
                job_id: j,
                key_hash: [0x11; 32],
                worker: w,
                client: c,
                timeout_height: 5
            }
            .script_pubkey()),
            format!(
                "6320{jh}b375a820{}8821{wh}ac6755b17521{ch}ac68",
                "11".repeat(32)
            )
        );
        assert_eq!(
            hex(Stake {
                job_id: j,
                worker: w,
                client: c,
                window_end_height: 70_000
            }
            .script_pubkey()),
            format!("6320{jh}21{wh}b421{ch}ac6703701101b17521{wh}ac68")
        );
        assert_eq!(hex(data_carrier(b"hi").unwrap()), "6a026869");
        assert_eq!(hex(data_carrier(&[]).unwrap()), "6a00");
        assert_eq!(
            data_carrier(&[0; MAX_DATA_CARRIER_SIZE + 1]),
            Err(TemplateError::DataCarrierTooLong(MAX_DATA_CARRIER_SIZE + 1))
        );
    }

    #[test]
    fn near_misses_are_not_standard() {
        let (c, w) = (key(1), key(2));
        let j = JobId::from_byte_array([0xab; 32]);
        let escrow = Escrow {
            job_id: j,
            client: c,
            refund_height: 1000,
        }
        .script_pubkey()
        .into_bytes();
        let stake = Stake {
            job_id: j,
            worker: w,
            client: c,
            window_end_height: 1000,
        }
        .script_pubkey()
        .into_bytes();
        let payment = Payment {
            job_id: j,
            key_hash: [0x11; 32],
            worker: w,
            client: c,
            timeout_height: 1000,
        }
        .script_pubkey()
        .into_bytes();
        let p2 = p2pkh(&[0x22; 20]).into_bytes();
        let mut misses: Vec<Vec<u8>> = Vec::new();
        for base in [&escrow, &stake, &payment, &p2] {
            // A change to any opcode or push-length byte (changes inside pushed data give
            // other valid templates), every truncation, one extension.
            let script = Script::new(base.clone());
            let mut it = script.instructions();
            let mut starts = vec![0];
            while let Some(Ok(_)) = it.next() {
                starts.push(it.offset());
            }
            starts.pop();
            assert_eq!(
                starts.len(),
                if base.len() == 25 {
                    5
                } else if *base == payment {
                    16
                } else {
                    13
                }
            );
            for &i in &starts {
                for flip in [0x01, 0x80, 0xff] {
                    let mut m = base.clone();
                    m[i] ^= flip;
                    misses.push(m);
                }
            }
            for i in 0..base.len() {
                misses.push(base[..i].to_vec());
            }
            let mut longer = base.clone();
            longer.push(OP_1);
            misses.push(longer);
        }
        // Non-minimal height: 1000 pushed with a superfluous zero byte.
        let mut nm = escrow.clone();
        let at = nm.windows(3).position(|w| w == [0x02, 0xe8, 0x03]).unwrap();
        nm.splice(at..at + 3, [0x03, 0xe8, 0x03, 0x00]);
        misses.push(nm);
        // Height 5 pushed as data instead of OP_5.
        let e5 = Escrow {
            job_id: j,
            client: c,
            refund_height: 5,
        }
        .script_pubkey()
        .into_bytes();
        let at = e5.iter().position(|&b| b == 0x55).unwrap();
        let mut d5 = e5.clone();
        d5.splice(at..at + 1, [0x01, 0x05]);
        misses.push(d5);
        // Negative and over-u32 heights.
        let mut neg = e5.clone();
        neg[at] = OP_1NEGATE;
        misses.push(neg);
        let mut big = e5.clone();
        big.splice(at..at + 1, [0x05, 0, 0, 0, 0, 0x01]);
        misses.push(big);
        // Escrow with two different client keys; stake with two different worker keys.
        let mut two = escrow.clone();
        let second = two.len() - 2 - 33;
        two[second..second + 33].copy_from_slice(&key(3).to_bytes());
        misses.push(two);
        let mut two = stake.clone();
        let second = two.len() - 2 - 33;
        two[second..second + 33].copy_from_slice(&key(3).to_bytes());
        misses.push(two);
        // A worker key that is not a point (x above the field size).
        let mut not_a_point = [0xff; 33];
        not_a_point[0] = 0x02;
        assert!(PublicKey::from_slice(&not_a_point).is_err());
        misses.push(stake_with_worker_bytes(&not_a_point));
        assert!(classify(&Script::new(stake_with_worker_bytes(&key(2).to_bytes()))).is_some());
        // Data carriers: too long, two pushes, non-minimal push, no push.
        let mut long = vec![OP_RETURN, OP_PUSHDATA1, 81];
        long.extend([0; 81]);
        misses.push(long);
        misses.push(vec![OP_RETURN, 1, 2, 1, 3]);
        misses.push(vec![OP_RETURN, 1, 5]);
        misses.push(vec![OP_RETURN, OP_PUSHDATA1, 2, 1, 2]);
        misses.push(vec![OP_RETURN]);
        misses.push(vec![OP_RETURN, OP_DUP]);
        for m in misses {
            let s = Script::new(m);
            assert_eq!(classify(&s), None, "{s}");
        }
    }

    /// A stake script whose worker key bytes are `k` (both places).
    fn stake_with_worker_bytes(k: &[u8; 33]) -> Vec<u8> {
        Builder::new()
            .push_opcode(OP_IF)
            .push_array(&[0xab; 32])
            .push_array(k)
            .push_opcode(OP_CHECKFRAUDPROOFVERIFY)
            .push_key(&key(1))
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ELSE)
            .push_int(9)
            .push_opcode(OP_CHECKLOCKTIMEVERIFY)
            .push_opcode(OP_DROP)
            .push_array(k)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ENDIF)
            .into_script()
            .into_bytes()
    }

    proptest::proptest! {
        #[test]
        fn classify_never_panics_and_only_accepts_its_own_bytes(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let s = Script::new(bytes);
            if let Some(t) = classify(&s) {
                proptest::prop_assert_eq!(t.script_pubkey().unwrap(), s);
            }
        }

        #[test]
        fn templates_roundtrip_for_any_parameters(
            job in proptest::prelude::any::<[u8; 32]>(),
            hash in proptest::prelude::any::<[u8; 32]>(),
            height in proptest::prelude::any::<u32>(),
            c in 1u8..=254,
            w in 1u8..=254,
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=MAX_DATA_CARRIER_SIZE),
        ) {
            let (job_id, client, worker) = (JobId::from_byte_array(job), key(c), key(w));
            for t in [
                Template::P2pkh { pubkey_hash: hash[..20].try_into().unwrap() },
                Template::Escrow(Escrow { job_id, client, refund_height: height }),
                Template::Payment(Payment { job_id, key_hash: hash, worker, client, timeout_height: height }),
                Template::Stake(Stake { job_id, worker, client, window_end_height: height }),
                Template::DataCarrier(data.clone()),
            ] {
                let s = t.script_pubkey().unwrap();
                proptest::prop_assert_eq!(classify(&s), Some(t));
            }
        }
    }

    #[test]
    fn spend_paths() {
        let (c, w) = (key(1), key(2));
        let j = JobId::from_byte_array([0xab; 32]);
        let sig = [0x30, 0x06, 1, 2, 3, 4, 5, 6, SIGHASH_ALL];
        let p2 = Template::P2pkh {
            pubkey_hash: c.pubkey_hash(),
        };
        let escrow = Template::Escrow(Escrow {
            job_id: j,
            client: c,
            refund_height: 9,
        });
        let payment = Template::Payment(Payment {
            job_id: j,
            key_hash: [0x11; 32],
            worker: w,
            client: c,
            timeout_height: 9,
        });
        let stake = Template::Stake(Stake {
            job_id: j,
            worker: w,
            client: c,
            window_end_height: 9,
        });
        let data = Template::DataCarrier(vec![1]);
        let refund = Escrow::refund_script_sig(&sig).unwrap();
        let cases = [
            (
                &p2,
                p2pkh_script_sig(&sig, &c).unwrap(),
                Some(SpendPath::P2pkh),
            ),
            (
                &escrow,
                Escrow::pay_script_sig(&sig).unwrap(),
                Some(SpendPath::EscrowPay),
            ),
            (&escrow, refund.clone(), Some(SpendPath::EscrowRefund)),
            (
                &payment,
                Payment::claim_script_sig(&sig, &[9; 32]).unwrap(),
                Some(SpendPath::PaymentClaim {
                    delivery_key: [9; 32],
                }),
            ),
            (
                &payment,
                Payment::refund_script_sig(&sig).unwrap(),
                Some(SpendPath::PaymentRefund),
            ),
            (
                &stake,
                Stake::slash_script_sig(&sig, b"evidence").unwrap(),
                Some(SpendPath::StakeSlash {
                    evidence: b"evidence".to_vec(),
                }),
            ),
            (
                &stake,
                Stake::slash_script_sig(&sig, &[5]).unwrap(),
                Some(SpendPath::StakeSlash { evidence: vec![5] }),
            ),
            (
                &stake,
                Stake::reclaim_script_sig(&sig).unwrap(),
                Some(SpendPath::StakeReclaim),
            ),
            (
                &stake,
                Stake::reclaim_script_sig(&[]).unwrap(),
                Some(SpendPath::StakeReclaim),
            ),
            // Wrong shapes.
            (&data, refund.clone(), None),
            (&p2, refund.clone(), None),
            (&escrow, Script::new(vec![OP_1]), None),
            (&escrow, Script::new(vec![OP_DUP, OP_1]), None),
            (&escrow, Script::new(vec![OP_0, 0x52]), None),
            (
                &payment,
                // A claim without its branch selector.
                Builder::new()
                    .push_slice(&sig)
                    .unwrap()
                    .push_array(&[9; 32])
                    .into_script(),
                None,
            ),
            (&payment, Escrow::pay_script_sig(&sig).unwrap(), None),
            (&stake, Script::new(vec![OP_0, 0x02, 0xab]), None),
            (&stake, Script::default(), None),
        ];
        for (template, script_sig, want) in cases {
            assert_eq!(spend_path(template, &script_sig), want, "{script_sig}");
        }
    }

    #[test]
    fn spending_script_sig_layouts() {
        let sig = [0x30, 0x06, 1, 2, 3, 4, 5, 6, SIGHASH_ALL];
        let c = key(1);
        let s = p2pkh_script_sig(&sig, &c).unwrap();
        assert_eq!(s.to_string(), format!("{} {c}", crate::hash::to_hex(&sig)));
        assert_eq!(
            Escrow::pay_script_sig(&sig).unwrap().as_bytes().last(),
            Some(&OP_1)
        );
        assert_eq!(
            Escrow::refund_script_sig(&sig).unwrap().as_bytes().last(),
            Some(&OP_0)
        );
        let claim = Payment::claim_script_sig(&sig, &[9; 32]).unwrap();
        assert_eq!(Payment::revealed_key(&claim), Some([9; 32]));
        assert_eq!(
            Payment::revealed_key(&Payment::refund_script_sig(&sig).unwrap()),
            None
        );
        let slash = Stake::slash_script_sig(&sig, &vec![7; 1000]).unwrap();
        assert!(slash.is_push_only());
        assert_eq!(slash.len(), 1 + sig.len() + 3 + 1000 + 1);
        assert!(matches!(
            Stake::slash_script_sig(&sig, &vec![7; 70_000]),
            Err(TemplateError::Push(BuildError::PushTooLong(70_000)))
        ));
        assert_eq!(
            Stake::reclaim_script_sig(&[]).unwrap().as_bytes(),
            &[OP_0, OP_0]
        );
    }
}
