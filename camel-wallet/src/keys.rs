//! The wallet's keys: a BIP39 mnemonic and BIP32 keys derived from it.
//!
//! Path: `m/44'/coin'/0'/chain/index`, BIP44's layout, with `coin` 1 on the test networks
//! (SLIP-44's "testnet") and [`MAIN_COIN_TYPE`] on main; `chain` is [`Chain`]. The BIP39
//! passphrase is empty: the keystore's passphrase protects the file, and a second secret that
//! silently derives another wallet loses coins when mistyped.

use bip32::{ChildNumber, DerivationPath, ExtendedPrivateKey};
use bip39::Mnemonic;
use camel_core::address::Address;
use camel_core::keys::PrivateKey;
use camel_core::params::{Network, Params};
use zeroize::Zeroizing;

/// The coin type of the main network's keys (not registered in SLIP-44; fixed here).
pub const MAIN_COIN_TYPE: u32 = 7_226;

/// What a key is for: the BIP44 chain of its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chain {
    /// Addresses handed out to receive coins.
    Receive = 0,
    /// Change of the wallet's own payments.
    Change = 1,
    /// One key per job the wallet submits (its escrow, deliveries and refunds).
    Job = 2,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the recovery phrase is not valid BIP39 English ({0}); check each word and their order"
    )]
    Mnemonic(bip39::Error),
    #[error("key derivation failed: {0}")]
    Derive(bip32::Error),
}

/// A fresh mnemonic of `words` words (12 or 24) from the system's random generator.
pub fn new_mnemonic(words: usize) -> Result<Mnemonic, KeyError> {
    let mut entropy = Zeroizing::new(vec![0u8; words / 3 * 4]);
    secp256k1::rand::RngCore::fill_bytes(&mut secp256k1::rand::rng(), &mut entropy);
    Mnemonic::from_entropy(&entropy).map_err(KeyError::Mnemonic)
}

/// Parses a phrase typed by a user: words separated by any whitespace, any case.
pub fn parse_mnemonic(phrase: &str) -> Result<Mnemonic, KeyError> {
    let words: Vec<String> = phrase.split_whitespace().map(str::to_lowercase).collect();
    Mnemonic::parse(words.join(" ")).map_err(KeyError::Mnemonic)
}

pub fn coin_type(params: &Params) -> u32 {
    match params.network {
        Network::Main => MAIN_COIN_TYPE,
        Network::Test | Network::Regtest => 1,
    }
}

/// The account key `m/44'/coin'/0'`, from which every key of the wallet derives.
#[derive(Clone)]
pub struct Account {
    xprv: ExtendedPrivateKey<secp256k1::SecretKey>,
    coin: u32,
    version: u8,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Account(m/44'/{}'/0')", self.coin)
    }
}

impl Account {
    pub fn new(mnemonic: &Mnemonic, params: &Params) -> Result<Self, KeyError> {
        Self::with_coin(mnemonic, coin_type(params), params.address_version)
    }

    /// The account of another coin type and address version (for other wallets' vectors).
    pub fn with_coin(mnemonic: &Mnemonic, coin: u32, version: u8) -> Result<Self, KeyError> {
        let seed = Zeroizing::new(mnemonic.to_seed(""));
        let path: DerivationPath = format!("m/44'/{coin}'/0'")
            .parse()
            .map_err(KeyError::Derive)?;
        let xprv = ExtendedPrivateKey::derive_from_path(&*seed, &path).map_err(KeyError::Derive)?;
        Ok(Self {
            xprv,
            coin,
            version,
        })
    }

    /// The key at `chain/index` under the account.
    pub fn key(&self, chain: Chain, index: u32) -> Result<PrivateKey, KeyError> {
        let derive = |k: &ExtendedPrivateKey<secp256k1::SecretKey>, i: u32| {
            ChildNumber::new(i, false)
                .and_then(|c| k.derive_child(c))
                .map_err(KeyError::Derive)
        };
        let key = derive(&derive(&self.xprv, chain as u32)?, index)?;
        let bytes = Zeroizing::new(key.private_key().to_secret_bytes());
        PrivateKey::from_slice(&*bytes).map_err(|_| KeyError::Derive(bip32::Error::Crypto))
    }

    pub fn address(&self, chain: Chain, index: u32) -> Result<String, KeyError> {
        let key = self.key(chain, index)?;
        Ok(Address::p2pkh(&key.public_key(), self.version).to_string())
    }

    /// The key's derivation path, as wallets print it.
    pub fn path(&self, chain: Chain, index: u32) -> String {
        format!("m/44'/{}'/0'/{}/{index}", self.coin, chain as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_deterministic_and_distinct_per_chain_and_network() {
        let m = parse_mnemonic(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        )
        .unwrap();
        let reg = Account::new(&m, &Params::regtest()).unwrap();
        let main = Account::new(&m, &Params::main()).unwrap();
        let a = reg.address(Chain::Receive, 0).unwrap();
        assert_eq!(
            a,
            Account::new(&m, &Params::regtest())
                .unwrap()
                .address(Chain::Receive, 0)
                .unwrap()
        );
        assert_ne!(a, reg.address(Chain::Receive, 1).unwrap());
        assert_ne!(a, reg.address(Chain::Change, 0).unwrap());
        assert_ne!(
            reg.key(Chain::Receive, 0).unwrap().secret_bytes(),
            main.key(Chain::Receive, 0).unwrap().secret_bytes()
        );
        assert_eq!(reg.path(Chain::Job, 3), "m/44'/1'/0'/2/3");
        // Typed sloppily, the phrase is the same.
        let sloppy = parse_mnemonic(
            "  Abandon abandon ABANDON abandon abandon abandon\nabandon abandon abandon abandon abandon about ",
        )
        .unwrap();
        assert_eq!(sloppy, m);
        assert!(parse_mnemonic("abandon abandon abandon").is_err());
        // A wrong checksum word is refused, not turned into another wallet.
        assert!(
            parse_mnemonic(
                "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon"
            )
            .is_err()
        );
        assert_eq!(new_mnemonic(12).unwrap().word_count(), 12);
        assert_eq!(new_mnemonic(24).unwrap().word_count(), 24);
        assert_ne!(new_mnemonic(12).unwrap(), new_mnemonic(12).unwrap());
    }
}
