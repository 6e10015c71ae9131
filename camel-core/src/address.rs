//! Addresses: Base58Check(version ‖ HASH160(compressed public key)), exactly as Bitcoin's
//! pay-to-public-key-hash addresses. Main uses version 0x00 (addresses start with `1`);
//! test and regtest use 0x6f (`m` or `n`), as Bitcoin's test networks do.

use core::fmt;
use core::str::FromStr;

use crate::keys::PublicKey;

/// Why an address string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// A character outside the Base58 alphabet.
    BadCharacter { character: char, index: usize },
    /// The 4-byte checksum does not match: a typo, most likely.
    BadChecksum,
    /// Decoded to the wrong number of bytes for an address.
    BadLength(usize),
    /// A valid address for another network.
    WrongVersion { expected: u8, got: u8 },
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadCharacter { character, index } => {
                write!(
                    f,
                    "invalid character {character:?} at position {index} (Base58 has no 0, O, I or l)"
                )
            }
            Self::BadChecksum => write!(f, "address checksum does not match (check for a typo)"),
            Self::BadLength(n) => write!(f, "address decodes to {n} bytes, expected 21"),
            Self::WrongVersion { expected, got } => write!(
                f,
                "address has version byte 0x{got:02x} but this network uses 0x{expected:02x} (an address for another network)"
            ),
        }
    }
}

impl std::error::Error for AddressError {}

/// A pay-to-public-key-hash address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    version: u8,
    hash: [u8; 20],
}

impl Address {
    pub const fn new(version: u8, hash: [u8; 20]) -> Self {
        Self { version, hash }
    }

    /// The address of a public key on the network with `version`.
    pub fn p2pkh(key: &PublicKey, version: u8) -> Self {
        Self {
            version,
            hash: key.pubkey_hash(),
        }
    }

    pub const fn version(&self) -> u8 {
        self.version
    }

    pub const fn pubkey_hash(&self) -> &[u8; 20] {
        &self.hash
    }

    /// Parses an address and checks it belongs to the network with `version`.
    pub fn parse_for(s: &str, version: u8) -> Result<Self, AddressError> {
        let addr: Self = s.parse()?;
        if addr.version != version {
            return Err(AddressError::WrongVersion {
                expected: version,
                got: addr.version,
            });
        }
        Ok(addr)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &bs58::encode(self.hash)
                .with_check_version(self.version)
                .into_string(),
        )
    }
}

impl FromStr for Address {
    type Err = AddressError;

    /// Checks the alphabet, checksum and length; the version is checked by [`Address::parse_for`].
    fn from_str(s: &str) -> Result<Self, AddressError> {
        let data = bs58::decode(s)
            .with_check(None)
            .into_vec()
            .map_err(|e| match e {
                bs58::decode::Error::InvalidCharacter { character, index } => {
                    AddressError::BadCharacter { character, index }
                }
                bs58::decode::Error::NonAsciiCharacter { index } => AddressError::BadCharacter {
                    character: s
                        .get(index..)
                        .and_then(|t| t.chars().next())
                        .unwrap_or(char::REPLACEMENT_CHARACTER),
                    index,
                },
                bs58::decode::Error::NoChecksum => AddressError::BadLength(0),
                _ => AddressError::BadChecksum,
            })?;
        match data.as_slice() {
            [version, hash @ ..] => {
                let hash: [u8; 20] = hash
                    .try_into()
                    .map_err(|_| AddressError::BadLength(data.len()))?;
                Ok(Self {
                    version: *version,
                    hash,
                })
            }
            [] => Err(AddressError::BadLength(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PrivateKey;

    #[test]
    fn private_key_one_gives_bitcoins_address() {
        let mut b = [0u8; 32];
        b[31] = 1;
        let pk = PrivateKey::from_slice(&b).unwrap().public_key();
        assert_eq!(
            Address::p2pkh(&pk, 0x00).to_string(),
            "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
        );
        assert_eq!(
            Address::p2pkh(&pk, 0x6f).to_string(),
            "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r"
        );
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert_eq!(
            Address::parse_for("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", 0)
                .unwrap()
                .version(),
            0
        );
        assert_eq!(
            Address::parse_for("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", 0x6f),
            Err(AddressError::WrongVersion {
                expected: 0x6f,
                got: 0
            })
        );
        assert_eq!(
            "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMJ".parse::<Address>(),
            Err(AddressError::BadChecksum)
        );
        assert_eq!(
            "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAM0".parse::<Address>(),
            Err(AddressError::BadCharacter {
                character: '0',
                index: 33
            })
        );
        // A valid Base58Check string of the wrong length (a WIF key).
        assert_eq!(
            "KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn".parse::<Address>(),
            Err(AddressError::BadLength(34))
        );
        assert!(matches!(
            "".parse::<Address>(),
            Err(AddressError::BadLength(_) | AddressError::BadChecksum)
        ));
        assert!(
            "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMé"
                .parse::<Address>()
                .is_err()
        );
    }
}
