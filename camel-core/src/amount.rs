//! `Amount`: a count of base units that can never exceed the money supply.
//!
//! 1 coin = 10^8 base units. The subsidy (50 coins halving every 1,000,000 blocks) sums to
//! just under 100,000,000 coins, which is `MAX_MONEY`: no output, sum or fee may exceed it.

use core::fmt;
use core::str::FromStr;

use crate::encode::{Decodable, DecodeError, Encodable, Reader};

/// Base units per coin.
pub const COIN: u64 = 100_000_000;
/// The money supply bound, in base units.
pub const MAX_MONEY: u64 = 100_000_000 * COIN;

mod encapsulate {
    use super::MAX_MONEY;

    /// A non-negative amount of base units, at most `MAX_MONEY`.
    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct Amount(u64);

    impl Amount {
        pub const ZERO: Self = Self(0);
        pub const MAX: Self = Self(MAX_MONEY);

        /// The only way in: rejects values above the money supply.
        pub const fn from_base(units: u64) -> Option<Self> {
            if units <= MAX_MONEY {
                Some(Self(units))
            } else {
                None
            }
        }

        pub const fn to_base(self) -> u64 {
            self.0
        }
    }
}
pub use encapsulate::Amount;

/// Why an amount string could not be parsed or arithmetic left the valid range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountError {
    /// The value exceeds `MAX_MONEY`.
    TooLarge,
    /// More than 8 decimal places.
    TooPrecise,
    /// Not a decimal number of coins.
    Malformed(String),
}

impl fmt::Display for AmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => write!(f, "amount exceeds the money supply of 100000000 coins"),
            Self::TooPrecise => write!(f, "amount has more than 8 decimal places"),
            Self::Malformed(s) => write!(f, "{s:?} is not an amount of coins (e.g. 1.25)"),
        }
    }
}

impl std::error::Error for AmountError {}

impl Amount {
    /// `coins` whole coins.
    pub const fn from_coins(coins: u64) -> Option<Self> {
        match coins.checked_mul(COIN) {
            Some(units) => Self::from_base(units),
            None => None,
        }
    }

    pub fn checked_add(self, rhs: Self) -> Option<Self> {
        self.to_base()
            .checked_add(rhs.to_base())
            .and_then(Self::from_base)
    }

    pub fn checked_sub(self, rhs: Self) -> Option<Self> {
        self.to_base()
            .checked_sub(rhs.to_base())
            .and_then(Self::from_base)
    }

    pub fn checked_mul(self, rhs: u64) -> Option<Self> {
        self.to_base().checked_mul(rhs).and_then(Self::from_base)
    }

    /// Sum of amounts, `None` if it leaves the valid range.
    pub fn checked_sum<I: IntoIterator<Item = Self>>(iter: I) -> Option<Self> {
        iter.into_iter().try_fold(Self::ZERO, Self::checked_add)
    }
}

impl fmt::Display for Amount {
    /// Coins with 8 decimals, e.g. `1.50000000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = self.to_base();
        write!(f, "{}.{:08}", u / COIN, u % COIN)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({} base units)", self.to_base())
    }
}

impl FromStr for Amount {
    type Err = AmountError;

    /// Parses a decimal number of coins: `12`, `0.5`, `1.00000001`.
    fn from_str(s: &str) -> Result<Self, AmountError> {
        let malformed = || AmountError::Malformed(s.to_owned());
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(malformed());
        }
        if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        if frac.len() > 8 {
            return Err(AmountError::TooPrecise);
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| AmountError::TooLarge)?
        };
        let mut frac_units: u64 = 0;
        for b in frac.bytes().chain(core::iter::repeat(b'0')).take(8) {
            frac_units = frac_units
                .saturating_mul(10)
                .saturating_add(u64::from(b.wrapping_sub(b'0')));
        }
        whole
            .checked_mul(COIN)
            .and_then(|w| w.checked_add(frac_units))
            .and_then(Self::from_base)
            .ok_or(AmountError::TooLarge)
    }
}

impl Encodable for Amount {
    fn encode(&self, out: &mut Vec<u8>) {
        self.to_base().encode(out);
    }
    fn encoded_len(&self) -> usize {
        8
    }
}

impl Decodable for Amount {
    const MIN_ENCODED_SIZE: usize = 8;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::from_base(r.read_u64()?).ok_or(DecodeError::Invalid("amount above the money supply"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{decode_from_slice, encode_to_vec};
    use proptest::prelude::*;

    #[test]
    fn supply_bound() {
        assert_eq!(Amount::from_base(MAX_MONEY), Some(Amount::MAX));
        assert_eq!(Amount::from_base(MAX_MONEY + 1), None);
        assert_eq!(Amount::MAX.checked_add(Amount::from_base(1).unwrap()), None);
        assert_eq!(
            Amount::ZERO.checked_sub(Amount::from_base(1).unwrap()),
            None
        );
        assert_eq!(Amount::from_coins(50).unwrap().to_base(), 5_000_000_000);
        assert!(decode_from_slice::<Amount>(&(MAX_MONEY + 1).to_le_bytes()).is_err());
    }

    #[test]
    fn parse_and_display() {
        assert_eq!("1.5".parse::<Amount>().unwrap().to_base(), 150_000_000);
        assert_eq!("0.00000001".parse::<Amount>().unwrap().to_base(), 1);
        assert_eq!(".5".parse::<Amount>().unwrap().to_base(), 50_000_000);
        assert_eq!("7".parse::<Amount>().unwrap().to_string(), "7.00000000");
        assert_eq!(
            "0.000000001".parse::<Amount>(),
            Err(AmountError::TooPrecise)
        );
        assert_eq!(
            "100000000.00000001".parse::<Amount>(),
            Err(AmountError::TooLarge)
        );
        assert_eq!(
            "99999999999999999999".parse::<Amount>(),
            Err(AmountError::TooLarge)
        );
        assert!(matches!(
            "1,5".parse::<Amount>(),
            Err(AmountError::Malformed(_))
        ));
        assert!(matches!(
            "-1".parse::<Amount>(),
            Err(AmountError::Malformed(_))
        ));
        assert!(matches!(
            ".".parse::<Amount>(),
            Err(AmountError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn roundtrip(units in 0..=MAX_MONEY) {
            let a = Amount::from_base(units).unwrap();
            prop_assert_eq!(decode_from_slice::<Amount>(&encode_to_vec(&a)), Ok(a));
            prop_assert_eq!(a.to_string().parse::<Amount>(), Ok(a));
        }
    }
}
