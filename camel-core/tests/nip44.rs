//! NIP-44 v2 against the official vectors (paulmillr/nip44, `nip44.vectors.json`, sha256
//! 269ed0f6…5040), and the job envelope against ours (`tests/data/job-envelope.vectors.json`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use camel_core::JobId;
use camel_core::job::envelope::{self, Nip44Error, Purpose, Sealed};
use camel_core::keys::{PrivateKey, PublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/nip44.vectors.json")).unwrap()
}

fn h32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn sk(v: &Value) -> Result<PrivateKey, ()> {
    PrivateKey::from_slice(&hex::decode(v.as_str().unwrap()).unwrap()).map_err(|_| ())
}

/// NIP-44 names public keys by their x coordinate (BIP-340): the even-y point.
fn xonly(v: &Value) -> Result<PublicKey, ()> {
    let mut b = vec![0x02];
    b.extend(hex::decode(v.as_str().unwrap()).unwrap());
    PublicKey::from_slice(&b).map_err(|_| ())
}

/// The base64 framing NIP-44 puts around the raw payload, with the spec's length and version
/// checks on the encoded form.
fn decrypt_b64(ck: &[u8; 32], payload: &str) -> Result<Vec<u8>, String> {
    if payload.is_empty() || payload.starts_with('#') {
        return Err("unknown version".into());
    }
    if payload.len() < 132 || payload.len() > 87_472 {
        return Err("invalid payload size".into());
    }
    let raw = B64.decode(payload).map_err(|e| e.to_string())?;
    envelope::decrypt(ck, &raw).map_err(|e| e.to_string())
}

#[test]
fn conversation_keys() {
    let v = vectors();
    let cases = v["v2"]["valid"]["get_conversation_key"].as_array().unwrap();
    assert!(cases.len() > 30);
    for c in cases {
        let ck = envelope::conversation_key(&sk(&c["sec1"]).unwrap(), &xonly(&c["pub2"]).unwrap());
        assert_eq!(ck, h32(&c["conversation_key"]), "{c}");
    }
}

#[test]
fn invalid_conversation_keys_are_refused() {
    let v = vectors();
    for c in v["v2"]["invalid"]["get_conversation_key"]
        .as_array()
        .unwrap()
    {
        assert!(
            sk(&c["sec1"]).is_err() || xonly(&c["pub2"]).is_err(),
            "{}",
            c["note"]
        );
    }
}

#[test]
fn message_keys() {
    let v = vectors();
    let m = &v["v2"]["valid"]["get_message_keys"];
    let ck = h32(&m["conversation_key"]);
    for k in m["keys"].as_array().unwrap() {
        let (key, iv, mac) = envelope::message_keys(&ck, &h32(&k["nonce"]));
        assert_eq!(key, h32(&k["chacha_key"]));
        assert_eq!(hex::encode(iv), k["chacha_nonce"].as_str().unwrap());
        assert_eq!(mac, h32(&k["hmac_key"]));
    }
}

#[test]
fn padded_lengths() {
    let v = vectors();
    for p in v["v2"]["valid"]["calc_padded_len"].as_array().unwrap() {
        let (len, padded) = (
            p[0].as_u64().unwrap() as usize,
            p[1].as_u64().unwrap() as usize,
        );
        assert_eq!(envelope::padded_len(len), padded, "len {len}");
    }
}

#[test]
fn encrypt_decrypt() {
    let v = vectors();
    for c in v["v2"]["valid"]["encrypt_decrypt"].as_array().unwrap() {
        let (s1, s2) = (sk(&c["sec1"]).unwrap(), sk(&c["sec2"]).unwrap());
        let ck = h32(&c["conversation_key"]);
        assert_eq!(envelope::conversation_key(&s1, &s2.public_key()), ck);
        assert_eq!(envelope::conversation_key(&s2, &s1.public_key()), ck);
        let plaintext = c["plaintext"].as_str().unwrap().as_bytes();
        let raw = envelope::encrypt(&ck, &h32(&c["nonce"]), plaintext).unwrap();
        assert_eq!(B64.encode(&raw), c["payload"].as_str().unwrap());
        assert_eq!(
            decrypt_b64(&ck, c["payload"].as_str().unwrap()).unwrap(),
            plaintext
        );
    }
}

#[test]
fn long_messages() {
    let v = vectors();
    for c in v["v2"]["valid"]["encrypt_decrypt_long_msg"]
        .as_array()
        .unwrap()
    {
        let ck = h32(&c["conversation_key"]);
        let plaintext = c["pattern"]
            .as_str()
            .unwrap()
            .repeat(c["repeat"].as_u64().unwrap() as usize);
        assert_eq!(
            hex::encode(Sha256::digest(plaintext.as_bytes())),
            c["plaintext_sha256"].as_str().unwrap()
        );
        let raw = envelope::encrypt(&ck, &h32(&c["nonce"]), plaintext.as_bytes()).unwrap();
        let payload = B64.encode(&raw);
        assert_eq!(
            hex::encode(Sha256::digest(payload.as_bytes())),
            c["payload_sha256"].as_str().unwrap()
        );
        assert_eq!(envelope::decrypt(&ck, &raw).unwrap(), plaintext.as_bytes());
    }
}

#[test]
fn invalid_plaintext_lengths() {
    let v = vectors();
    for n in v["v2"]["invalid"]["encrypt_msg_lengths"]
        .as_array()
        .unwrap()
    {
        let n = n.as_u64().unwrap() as usize;
        assert_eq!(
            envelope::encrypt(&[1; 32], &[2; 32], &vec![b'a'; n]),
            Err(Nip44Error::PlaintextLength(n))
        );
    }
}

#[test]
fn invalid_payloads_are_refused() {
    let v = vectors();
    let cases = v["v2"]["invalid"]["decrypt"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let r = decrypt_b64(&h32(&c["conversation_key"]), c["payload"].as_str().unwrap());
        assert!(r.is_err(), "accepted: {}", c["note"]);
    }
}

/// Our own vectors for the job envelope (`docs/protocol.md` §13.4): a fixed ephemeral key and
/// nonce, so that another implementation can reproduce the bytes.
#[test]
fn job_envelope_vectors() {
    let v: Value = serde_json::from_str(include_str!("data/job-envelope.vectors.json")).unwrap();
    let cases = v["vectors"].as_array().unwrap();
    assert!(cases.len() >= 3);
    for c in cases {
        let eph = sk(&c["ephemeral_sec"]).unwrap();
        let recipient = sk(&c["recipient_sec"]).unwrap();
        let job = JobId::from_byte_array(h32(&c["job_id"]));
        let purpose = match c["purpose"].as_str().unwrap() {
            "prompt" => Purpose::Prompt,
            "delivery" => Purpose::Delivery,
            "verify-request" => Purpose::VerifyRequest,
            "verdict" => Purpose::Verdict,
            p => panic!("purpose {p}"),
        };
        let body = hex::decode(c["body"].as_str().unwrap()).unwrap();
        let sealed = Sealed::seal(
            &eph,
            &h32(&c["nonce"]),
            &recipient.public_key(),
            purpose,
            &job,
            &body,
        )
        .unwrap();
        assert_eq!(
            hex::encode(camel_core::encode::encode_to_vec(&sealed)),
            c["sealed"].as_str().unwrap()
        );
        assert_eq!(sealed.open(&recipient, purpose, &job).unwrap(), body);
        // Another recipient, purpose or job cannot open it.
        assert!(sealed.open(&eph, purpose, &job).is_err());
        assert!(
            sealed
                .open(&recipient, purpose, &JobId::hash(b"another job"))
                .is_err()
        );
    }
}
