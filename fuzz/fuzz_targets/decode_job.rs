//! Decoding every job-protocol structure a peer can send never panics, and what decodes
//! re-encodes to the same bytes: job parameters, commitments, fraud-proof evidence, sealed
//! envelopes, deliveries, gossiped job messages (then their context-free checks), GetJob
//! answers, verification requests and signed verdicts. The first byte picks the type.
#![no_main]

use camel_core::encode::{Decodable, Reader, decode_from_slice, encode_to_vec};
use camel_core::job::commitment::Commitment;
use camel_core::job::envelope::Sealed;
use camel_core::job::evidence::Evidence;
use camel_core::job::message::{JobMessage, decode_job_answer, encode_job_answer};
use camel_core::job::output::Delivery;
use camel_core::job::params::JobParams;
use camel_core::job::verdict::{SignedVerdict, VerifyRequest};
use libfuzzer_sys::fuzz_target;

fn canonical<T: Decodable + camel_core::encode::Encodable>(bytes: &[u8]) {
    if let Ok(v) = decode_from_slice::<T>(bytes) {
        assert_eq!(encode_to_vec(&v), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    match kind % 9 {
        0 => {
            if let Ok(p) = decode_from_slice::<JobParams>(rest) {
                assert_eq!(encode_to_vec(&p), rest);
                let _ = p.validate();
                let _ = p.job_id();
            }
        }
        1 => canonical::<Commitment>(rest),
        2 => {
            if let Ok(e) = Evidence::from_bytes(rest) {
                assert_eq!(e.to_bytes(), rest);
                let _ = e.model();
            }
        }
        3 => {
            let mut r = Reader::new(rest);
            if let Ok(s) = Sealed::decode_from(&mut r) {
                let used = rest.len() - r.remaining();
                assert_eq!(encode_to_vec(&s), &rest[..used]);
            }
        }
        4 => canonical::<Delivery>(rest),
        5 => {
            if let Ok(m) = JobMessage::from_bytes(rest) {
                assert_eq!(m.to_bytes(), rest);
                let _ = m.check();
                let _ = m.job_id();
            }
        }
        6 => {
            if let Ok(msgs) = decode_job_answer(rest) {
                assert_eq!(encode_job_answer(&msgs), rest);
            }
        }
        7 => canonical::<VerifyRequest>(rest),
        _ => canonical::<SignedVerdict>(rest),
    }
});
