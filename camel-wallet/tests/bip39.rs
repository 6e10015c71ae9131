//! BIP39's official English vectors (trezor/python-mnemonic, passphrase "TREZOR") through the
//! wallet's phrase parser, and BIP32/BIP44 derivation against published results.

use bip32::{ExtendedPrivateKey, Prefix};
use camel_wallet::keys::{Account, Chain, parse_mnemonic};
use serde_json::Value;

#[test]
fn official_english_vectors() {
    let data: Value = serde_json::from_str(include_str!("data/bip39-english.json")).unwrap();
    let vectors = data["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 24);
    let mut roots = 0;
    for v in vectors {
        let phrase = v["mnemonic"].as_str().unwrap();
        let m = parse_mnemonic(phrase).unwrap();
        assert_eq!(
            hex::encode(m.to_entropy()),
            v["entropy"].as_str().unwrap(),
            "{phrase}"
        );
        assert_eq!(m.to_string(), phrase);
        let seed = m.to_seed(v["passphrase"].as_str().unwrap());
        assert_eq!(hex::encode(seed), v["seed"].as_str().unwrap(), "{phrase}");
        if let Some(xprv) = v["xprv"].as_str() {
            let root = ExtendedPrivateKey::<secp256k1::SecretKey>::new(&seed).unwrap();
            assert_eq!(root.to_string(Prefix::XPRV).as_str(), xprv, "{phrase}");
            roots += 1;
        }
        // One word changed breaks the checksum (or the word list): never another wallet.
        let mut words: Vec<&str> = phrase.split(' ').collect();
        words[0] = if words[0] == "zoo" { "abandon" } else { "zoo" };
        let altered = words.join(" ");
        if let Ok(other) = parse_mnemonic(&altered) {
            assert_ne!(other.to_entropy(), m.to_entropy());
        }
    }
    assert_eq!(roots, 8);
}

#[test]
fn bip44_path_matches_published_addresses() {
    // The widely published first BIP44 address of the "abandon … about" phrase.
    let m = parse_mnemonic(
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
    )
    .unwrap();
    let bitcoin = Account::with_coin(&m, 0, 0x00).unwrap();
    assert_eq!(bitcoin.path(Chain::Receive, 0), "m/44'/0'/0'/0/0");
    assert_eq!(
        bitcoin.address(Chain::Receive, 0).unwrap(),
        "1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA"
    );
}
