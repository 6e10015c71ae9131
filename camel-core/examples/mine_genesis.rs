//! Finds each network's genesis nonce and hash: run after changing a genesis field, then
//! hard-code the printed values in `params.rs` (its tests check them).
//!
//! `cargo run --release -p camel-core --example mine_genesis`

use camel_core::params::{Network, Params};

fn main() {
    for net in Network::ALL {
        let p = Params::new(net);
        let header = p.genesis_block().header;
        match header.midstate().find_nonce(&p.pow_limit, 0, u32::MAX) {
            Some((nonce, hash)) => println!("{net}: nonce {nonce} hash {hash}"),
            None => println!("{net}: no nonce in the 32-bit space; change the time or message"),
        }
    }
}
