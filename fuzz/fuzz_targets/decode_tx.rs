//! Transaction decoding never panics, and whatever decodes re-encodes to the same bytes
//! (the encoding is canonical: one value, one byte string).
#![no_main]

use camel_core::encode::{decode_from_slice, encode_to_vec};
use camel_core::transaction::Transaction;
use camel_core::validation::check_transaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = decode_from_slice::<Transaction>(data) {
        assert_eq!(encode_to_vec(&tx), data);
        let _ = tx.txid();
        let _ = check_transaction(&tx);
    }
});
