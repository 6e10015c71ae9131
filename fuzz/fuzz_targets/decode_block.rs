//! Block decoding never panics, decoded blocks re-encode to the same bytes, and
//! context-free validation of anything decodable never panics.
#![no_main]

use camel_core::block::Block;
use camel_core::encode::{decode_from_slice, encode_to_vec};
use camel_core::params::Params;
use camel_core::validation::check_block;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = decode_from_slice::<Block>(data) {
        assert_eq!(encode_to_vec(&block), data);
        let _ = block.compute_merkle_root();
        let _ = check_block(&block, &Params::regtest());
    }
});
