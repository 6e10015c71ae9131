//! Job messages (`docs/protocol.md` §13.5): `kind: u8 ‖ body`, each kind with its own size
//! limit, checked before decoding. [`JobMessage::check`] runs the checks that need no state
//! (signatures, an offer's binding to its transaction); the job pool adds the rest.

use core::fmt;

use crate::amount::Amount;
use crate::encode::{
    Decodable, DecodeError, Encodable, Reader, decode_from_slice, encode_to_vec, write_var_bytes,
    write_vec,
};
use crate::hash::{JobId, ModelId};
use crate::keys::{KeyError, PrivateKey, PublicKey};
use crate::templates::{Template, classify_job};
use crate::transaction::{OutPoint, Transaction};

use super::commitment::{Commitment, CommitmentError};
use super::envelope::Sealed;
use super::params::{JobParams, MAX_CONTACT_LEN};
use super::{read_bool, read_pubkey, read_sig, sign_tagged, verify_tagged};

/// Most models one announcement lists.
pub const MAX_MODELS_ANNOUNCED: usize = 8;
/// Longest model name, bytes.
pub const MAX_MODEL_NAME: usize = 64;
/// Longest release reason, bytes.
pub const MAX_REASON: usize = 200;
/// Longest peer id, bytes.
pub const MAX_PEER_LEN: usize = MAX_CONTACT_LEN;
/// Most messages a GetJob answer carries.
pub const MAX_JOB_ANSWER_MESSAGES: usize = 8;

const ANNOUNCE_TAG: &[u8] = b"camelid/job/announce";
const BID_TAG: &[u8] = b"camelid/job/bid";
const ASSIGN_TAG: &[u8] = b"camelid/job/assign";
const RELEASE_TAG: &[u8] = b"camelid/job/release";

/// Kind bytes.
pub mod kind {
    pub const OFFER: u8 = 1;
    pub const ANNOUNCE: u8 = 2;
    pub const BID: u8 = 3;
    pub const ASSIGN: u8 = 4;
    pub const COMMIT: u8 = 5;
    pub const RELEASE: u8 = 6;
    pub const GET_JOB: u8 = 0x10;
}

/// The size limit of each kind's whole message, kind byte included.
pub fn size_limit(kind: u8) -> Option<usize> {
    match kind {
        kind::OFFER => Some(120_000),
        kind::ANNOUNCE => Some(2_000),
        kind::BID => Some(300),
        kind::ASSIGN => Some(70_000),
        kind::COMMIT => Some(70_000),
        kind::RELEASE => Some(400),
        kind::GET_JOB => Some(33),
        _ => None,
    }
}

/// The client's offer: the parameters and the job transaction holding the escrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub params: JobParams,
    pub tx: Transaction,
}

/// One model a worker serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOffer {
    pub model: ModelId,
    pub name: String,
    /// Least reward per maximum token, base units.
    pub price_per_token: u64,
    /// Most output tokens it takes a job for.
    pub max_tokens: u32,
}

/// A worker's advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub worker: PublicKey,
    pub peer: Vec<u8>,
    /// Whether it answers verification requests.
    pub verifier: bool,
    pub time: u64,
    pub models: Vec<ModelOffer>,
    pub sig: Vec<u8>,
}

/// A worker's offer to take a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bid {
    pub job_id: JobId,
    pub worker: PublicKey,
    pub peer: Vec<u8>,
    /// The stake it will lock.
    pub stake: Amount,
    pub time: u64,
    pub sig: Vec<u8>,
}

/// The client's choice of worker, with the prompt sealed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assign {
    pub job_id: JobId,
    pub worker: PublicKey,
    /// Later assignments (after a release or a missed stake) carry a higher number.
    pub seq: u32,
    pub prompt: Sealed,
    /// By the job's client key.
    pub sig: Vec<u8>,
}

/// The worker's commitment and the delivery sealed to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub commitment: Commitment,
    pub delivery: Sealed,
}

/// A worker gives up a job it has not committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub job_id: JobId,
    pub worker: PublicKey,
    pub reason: String,
    pub sig: Vec<u8>,
}

/// A job message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobMessage {
    Offer(Offer),
    Announce(Announce),
    Bid(Bid),
    Assign(Assign),
    Commit(Commit),
    Release(Release),
    /// A request for a job's stored messages (only as a `Job` request).
    GetJob(JobId),
}

/// Why a message is refused before any state is consulted. Every variant is the sender's
/// fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    UnknownKind(u8),
    TooLarge {
        kind: u8,
        len: usize,
        max: usize,
    },
    Decode(DecodeError),
    Signature(KeyError),
    Commitment(CommitmentError),
    /// The offer's transaction is not the job's, or holds no matching escrow.
    OfferMismatch(&'static str),
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKind(k) => write!(f, "unknown job message kind {k}"),
            Self::TooLarge { kind, len, max } => {
                write!(f, "job message of kind {kind} has {len} bytes, limit {max}")
            }
            Self::Decode(e) => write!(f, "malformed job message: {e}"),
            Self::Signature(e) => write!(f, "job message signature: {e}"),
            Self::Commitment(e) => write!(f, "{e}"),
            Self::OfferMismatch(why) => write!(f, "offer does not match its transaction: {why}"),
        }
    }
}

impl std::error::Error for MessageError {}

fn write_str(out: &mut Vec<u8>, s: &str) {
    write_var_bytes(out, s.as_bytes());
}

fn read_str(r: &mut Reader<'_>, what: &'static str, max: usize) -> Result<String, DecodeError> {
    String::from_utf8(r.read_var_bytes(what, max)?)
        .map_err(|_| DecodeError::Invalid("text (not UTF-8)"))
}

impl Encodable for ModelOffer {
    fn encode(&self, out: &mut Vec<u8>) {
        self.model.encode(out);
        write_str(out, &self.name);
        self.price_per_token.encode(out);
        self.max_tokens.encode(out);
    }
}

impl Decodable for ModelOffer {
    const MIN_ENCODED_SIZE: usize = 32 + 1 + 8 + 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            model: ModelId::decode(r)?,
            name: read_str(r, "model name", MAX_MODEL_NAME)?,
            price_per_token: r.read_u64()?,
            max_tokens: r.read_u32()?,
        })
    }
}

impl Announce {
    fn unsigned(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.worker.to_bytes());
        write_var_bytes(&mut out, &self.peer);
        out.push(u8::from(self.verifier));
        self.time.encode(&mut out);
        write_vec(&mut out, &self.models);
        out
    }

    pub fn sign(&mut self, key: &PrivateKey) {
        self.sig = sign_tagged(key, ANNOUNCE_TAG, &self.unsigned());
    }
}

impl Bid {
    fn unsigned(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.job_id.encode(&mut out);
        out.extend_from_slice(&self.worker.to_bytes());
        write_var_bytes(&mut out, &self.peer);
        self.stake.to_base().encode(&mut out);
        self.time.encode(&mut out);
        out
    }

    pub fn sign(&mut self, key: &PrivateKey) {
        self.sig = sign_tagged(key, BID_TAG, &self.unsigned());
    }
}

impl Assign {
    fn unsigned(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.job_id.encode(&mut out);
        out.extend_from_slice(&self.worker.to_bytes());
        self.seq.encode(&mut out);
        self.prompt.encode(&mut out);
        out
    }

    /// Signs with the job's client key.
    pub fn sign(&mut self, client: &PrivateKey) {
        self.sig = sign_tagged(client, ASSIGN_TAG, &self.unsigned());
    }

    /// Checks the signature against the job's client key.
    pub fn verify(&self, client: &PublicKey) -> Result<(), KeyError> {
        verify_tagged(client, ASSIGN_TAG, &self.unsigned(), &self.sig)
    }
}

impl Release {
    fn unsigned(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.job_id.encode(&mut out);
        out.extend_from_slice(&self.worker.to_bytes());
        write_str(&mut out, &self.reason);
        out
    }

    pub fn sign(&mut self, key: &PrivateKey) {
        self.sig = sign_tagged(key, RELEASE_TAG, &self.unsigned());
    }
}

impl Offer {
    /// The index of the escrow output that matches the parameters.
    pub fn escrow_vout(&self) -> Result<u32, MessageError> {
        let job_id = self.params.job_id();
        if self.tx.job_id != job_id {
            return Err(MessageError::OfferMismatch(
                "the transaction's job id is not the parameters' id",
            ));
        }
        for (i, out) in self.tx.outputs.iter().enumerate() {
            if let Some(Template::Escrow(e)) = classify_job(&out.script_pubkey)
                && e.job_id == job_id
                && e.client == self.params.client
                && e.refund_height == self.params.timelock
                && out.value == self.params.reward
            {
                return u32::try_from(i).map_err(|_| MessageError::OfferMismatch("output index"));
            }
        }
        Err(MessageError::OfferMismatch(
            "no escrow output with the job's id, client key, timelock and reward",
        ))
    }

    pub fn escrow(&self) -> Result<OutPoint, MessageError> {
        Ok(OutPoint::new(self.tx.txid(), self.escrow_vout()?))
    }
}

impl JobMessage {
    pub fn kind(&self) -> u8 {
        match self {
            Self::Offer(_) => kind::OFFER,
            Self::Announce(_) => kind::ANNOUNCE,
            Self::Bid(_) => kind::BID,
            Self::Assign(_) => kind::ASSIGN,
            Self::Commit(_) => kind::COMMIT,
            Self::Release(_) => kind::RELEASE,
            Self::GetJob(_) => kind::GET_JOB,
        }
    }

    /// The job a message is about (`None` for an announcement).
    pub fn job_id(&self) -> Option<JobId> {
        match self {
            Self::Offer(o) => Some(o.params.job_id()),
            Self::Announce(_) => None,
            Self::Bid(b) => Some(b.job_id),
            Self::Assign(a) => Some(a.job_id),
            Self::Commit(c) => Some(c.commitment.job_id),
            Self::Release(r) => Some(r.job_id),
            Self::GetJob(j) => Some(*j),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        encode_to_vec(self)
    }

    /// Decodes a message, checking its kind's size limit first.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MessageError> {
        let kind = *bytes
            .first()
            .ok_or(MessageError::Decode(DecodeError::UnexpectedEnd {
                needed: 1,
                remaining: 0,
            }))?;
        let max = size_limit(kind).ok_or(MessageError::UnknownKind(kind))?;
        if bytes.len() > max {
            return Err(MessageError::TooLarge {
                kind,
                len: bytes.len(),
                max,
            });
        }
        decode_from_slice(bytes).map_err(MessageError::Decode)
    }

    /// The checks that need no state: signatures by the keys the message names, an offer's
    /// binding to its transaction. The job pool checks who may send what.
    pub fn check(&self) -> Result<(), MessageError> {
        match self {
            Self::Offer(o) => o.escrow_vout().map(|_| ()),
            Self::Announce(a) => verify_tagged(&a.worker, ANNOUNCE_TAG, &a.unsigned(), &a.sig)
                .map_err(MessageError::Signature),
            Self::Bid(b) => verify_tagged(&b.worker, BID_TAG, &b.unsigned(), &b.sig)
                .map_err(MessageError::Signature),
            // The client's key is in the offer: the pool checks it.
            Self::Assign(_) | Self::GetJob(_) => Ok(()),
            Self::Commit(c) => c.commitment.verify().map_err(MessageError::Commitment),
            Self::Release(r) => verify_tagged(&r.worker, RELEASE_TAG, &r.unsigned(), &r.sig)
                .map_err(MessageError::Signature),
        }
    }
}

impl Encodable for JobMessage {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind());
        match self {
            Self::Offer(o) => {
                o.params.encode(out);
                o.tx.encode(out);
            }
            Self::Announce(a) => {
                out.extend_from_slice(&a.unsigned());
                write_var_bytes(out, &a.sig);
            }
            Self::Bid(b) => {
                out.extend_from_slice(&b.unsigned());
                write_var_bytes(out, &b.sig);
            }
            Self::Assign(a) => {
                out.extend_from_slice(&a.unsigned());
                write_var_bytes(out, &a.sig);
            }
            Self::Commit(c) => {
                c.commitment.encode(out);
                c.delivery.encode(out);
            }
            Self::Release(r) => {
                out.extend_from_slice(&r.unsigned());
                write_var_bytes(out, &r.sig);
            }
            Self::GetJob(j) => j.encode(out),
        }
    }
}

impl Decodable for JobMessage {
    const MIN_ENCODED_SIZE: usize = 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.read_u8()? {
            kind::OFFER => Self::Offer(Offer {
                params: JobParams::decode(r)?,
                tx: Transaction::decode(r)?,
            }),
            kind::ANNOUNCE => Self::Announce(Announce {
                worker: read_pubkey(r)?,
                peer: r.read_var_bytes("peer id", MAX_PEER_LEN)?,
                verifier: read_bool(r)?,
                time: r.read_u64()?,
                models: r.read_vec("models", MAX_MODELS_ANNOUNCED)?,
                sig: read_sig(r)?,
            }),
            kind::BID => Self::Bid(Bid {
                job_id: JobId::decode(r)?,
                worker: read_pubkey(r)?,
                peer: r.read_var_bytes("peer id", MAX_PEER_LEN)?,
                stake: super::params::read_amount(r)?,
                time: r.read_u64()?,
                sig: read_sig(r)?,
            }),
            kind::ASSIGN => Self::Assign(Assign {
                job_id: JobId::decode(r)?,
                worker: read_pubkey(r)?,
                seq: r.read_u32()?,
                prompt: Sealed::decode(r)?,
                sig: read_sig(r)?,
            }),
            kind::COMMIT => Self::Commit(Commit {
                commitment: Commitment::decode(r)?,
                delivery: Sealed::decode(r)?,
            }),
            kind::RELEASE => Self::Release(Release {
                job_id: JobId::decode(r)?,
                worker: read_pubkey(r)?,
                reason: read_str(r, "reason", MAX_REASON)?,
                sig: read_sig(r)?,
            }),
            kind::GET_JOB => Self::GetJob(JobId::decode(r)?),
            _ => return Err(DecodeError::Invalid("job message kind")),
        })
    }
}

/// The answer to a GetJob request: the job's stored messages, encoded.
pub fn encode_job_answer(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    crate::encode::write_compact_size(&mut out, messages.len() as u64);
    for m in messages {
        write_var_bytes(&mut out, m);
    }
    out
}

pub fn decode_job_answer(bytes: &[u8]) -> Result<Vec<Vec<u8>>, DecodeError> {
    let mut r = Reader::new(bytes);
    let n = r.read_length("messages", MAX_JOB_ANSWER_MESSAGES, 1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.read_var_bytes("message", 120_000)?);
    }
    if r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes(r.remaining()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::commitment::tests::signed;
    use crate::job::envelope::Purpose;
    use crate::job::params::tests::sample;
    use crate::script::Script;
    use crate::templates::Escrow;
    use crate::transaction::{TxIn, TxOut};

    fn key(b: u8) -> PrivateKey {
        PrivateKey::from_slice(&[b; 32]).unwrap()
    }

    pub(crate) fn offer() -> Offer {
        let params = sample("hello");
        let job_id = params.job_id();
        let escrow = Escrow {
            job_id,
            client: params.client,
            refund_height: params.timelock,
        };
        let tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint::new(crate::hash::Txid::hash(b"coin"), 0),
                script_sig: Script::new(vec![0x51]),
                sequence: 0xffff_ffff,
            }],
            outputs: vec![TxOut {
                value: params.reward,
                script_pubkey: escrow.script_pubkey(),
            }],
            lock_time: 0,
            job_id,
        };
        Offer { params, tx }
    }

    fn roundtrip(m: &JobMessage) {
        let bytes = m.to_bytes();
        assert!(bytes.len() <= size_limit(m.kind()).unwrap());
        assert_eq!(&JobMessage::from_bytes(&bytes).unwrap(), m);
        for n in 0..bytes.len() {
            assert!(JobMessage::from_bytes(&bytes[..n]).is_err());
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(JobMessage::from_bytes(&long).is_err());
    }

    #[test]
    fn every_kind_roundtrips_and_checks() {
        let w = key(11);
        let o = offer();
        let job_id = o.params.job_id();
        let m = JobMessage::Offer(o.clone());
        roundtrip(&m);
        m.check().unwrap();

        let mut a = Announce {
            worker: w.public_key(),
            peer: vec![1, 2, 3],
            verifier: true,
            time: 100,
            models: vec![ModelOffer {
                model: ModelId::from_byte_array([1; 32]),
                name: "smollm2".into(),
                price_per_token: 10,
                max_tokens: 512,
            }],
            sig: vec![],
        };
        a.sign(&w);
        let m = JobMessage::Announce(a.clone());
        roundtrip(&m);
        m.check().unwrap();
        a.time += 1;
        assert!(JobMessage::Announce(a).check().is_err(), "tampered");

        let mut b = Bid {
            job_id,
            worker: w.public_key(),
            peer: vec![4; 38],
            stake: Amount::from_base(5).unwrap(),
            time: 7,
            sig: vec![],
        };
        b.sign(&w);
        roundtrip(&JobMessage::Bid(b.clone()));
        JobMessage::Bid(b.clone()).check().unwrap();
        let mut moved = b.clone();
        moved.job_id = JobId::hash(b"another job");
        assert!(
            JobMessage::Bid(moved).check().is_err(),
            "a bid replayed on another job"
        );

        let client = key(3);
        let sealed = Sealed::seal(
            &key(5),
            &[1; 32],
            &w.public_key(),
            Purpose::Prompt,
            &job_id,
            b"hello",
        )
        .unwrap();
        let mut asg = Assign {
            job_id,
            worker: w.public_key(),
            seq: 1,
            prompt: sealed.clone(),
            sig: vec![],
        };
        asg.sign(&client);
        roundtrip(&JobMessage::Assign(asg.clone()));
        asg.verify(&client.public_key()).unwrap();
        assert!(asg.verify(&w.public_key()).is_err());

        let c = Commit {
            commitment: signed(&w, job_id),
            delivery: sealed,
        };
        roundtrip(&JobMessage::Commit(c.clone()));
        JobMessage::Commit(c).check().unwrap();

        let mut r = Release {
            job_id,
            worker: w.public_key(),
            reason: "shutting down".into(),
            sig: vec![],
        };
        r.sign(&w);
        roundtrip(&JobMessage::Release(r.clone()));
        JobMessage::Release(r).check().unwrap();
        roundtrip(&JobMessage::GetJob(job_id));
    }

    #[test]
    fn offers_must_match_their_escrow() {
        let mut o = offer();
        o.params.reward = Amount::from_base(999).unwrap();
        assert!(matches!(
            JobMessage::Offer(o).check(),
            Err(MessageError::OfferMismatch(_))
        ));
        let mut o = offer();
        o.tx.job_id = JobId::hash(b"x");
        assert!(JobMessage::Offer(o).check().is_err());
    }

    #[test]
    fn size_limits_come_first() {
        let mut huge = vec![kind::BID];
        huge.resize(301, 0);
        assert!(matches!(
            JobMessage::from_bytes(&huge),
            Err(MessageError::TooLarge { .. })
        ));
        assert!(matches!(
            JobMessage::from_bytes(&[0x77]),
            Err(MessageError::UnknownKind(0x77))
        ));
    }

    #[test]
    fn job_answers_roundtrip() {
        let msgs = vec![vec![1, 2], vec![], vec![3; 300]];
        assert_eq!(decode_job_answer(&encode_job_answer(&msgs)).unwrap(), msgs);
        assert!(decode_job_answer(&[9]).is_err());
    }
}
