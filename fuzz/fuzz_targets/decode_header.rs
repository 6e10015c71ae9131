//! Header decoding never panics; headers roundtrip; PoW checks and the midstate hash agree
//! with the plain hash for any header.
#![no_main]

use camel_core::block::Header;
use camel_core::encode::{decode_from_slice, encode_to_vec};
use camel_core::params::Params;
use camel_core::pow::{Target, check_proof_of_work};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = decode_from_slice::<Header>(data) {
        assert_eq!(encode_to_vec(&header), data);
        let hash = header.block_hash();
        assert_eq!(header.hash_with_midstate(&header.midstate(), header.nonce), hash);
        let _ = check_proof_of_work(&hash, header.bits, Params::main().pow_limit);
        if let Ok(t) = Target::from_compact(header.bits) {
            let _ = t.work();
            let _ = t.to_compact();
        }
    }
});
