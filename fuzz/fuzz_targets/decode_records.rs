//! Decoding the records a node stores (UTXO coins, job records) never panics, and what
//! decodes re-encodes to the same bytes. The first byte picks the type.
#![no_main]

use camel_core::encode::{decode_from_slice, encode_to_vec};
use camel_core::job::rules::JobRecord;
use camel_core::utxo::Coin;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    if kind & 1 == 0 {
        if let Ok(coin) = decode_from_slice::<Coin>(rest) {
            assert_eq!(encode_to_vec(&coin), rest);
        }
    } else if let Ok(job) = decode_from_slice::<JobRecord>(rest) {
        assert_eq!(encode_to_vec(&job), rest);
    }
});
