//! The EVM by hand: addresses (EIP-55 checksums), Keccak-256, the ERC-20
//! `transfer(address,uint256)` calldata with the quote bound after its arguments, and the
//! `Transfer(address,address,uint256)` event. Small enough that a full ABI library is
//! not worth its weight; every piece has unit tests against known vectors.

use std::fmt;

use sha3::{Digest, Keccak256};

/// Keccak-256 (the pre-standard Keccak that Ethereum uses, not SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// `0x`-prefixed lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Decodes `0x`-prefixed hex (any case, even length).
pub fn from_hex(value: &str) -> Option<Vec<u8>> {
    let digits = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))?;
    hex::decode(digits).ok()
}

/// A quantity as JSON-RPC writes it (`0x1b4`).
pub fn parse_quantity(value: &str) -> Option<u64> {
    let digits = value.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Why a string is not an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("must be 0x followed by 40 hexadecimal digits")]
    Malformed,
    #[error("mixed-case address fails its EIP-55 checksum")]
    BadChecksum,
}

/// A 20-byte account or contract address. Shown lower-case (as the seed does); parsed
/// from lower case, upper case, or mixed case that passes its EIP-55 checksum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    pub fn parse(value: &str) -> Result<Address, AddressError> {
        let digits = value.strip_prefix("0x").ok_or(AddressError::Malformed)?;
        if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AddressError::Malformed);
        }
        let bytes = from_hex(value).ok_or(AddressError::Malformed)?;
        let mut address = [0u8; 20];
        address.copy_from_slice(&bytes);
        let address = Address(address);
        let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper && address.checksummed() != value {
            return Err(AddressError::BadChecksum);
        }
        Ok(address)
    }

    /// The EIP-55 mixed-case form.
    pub fn checksummed(&self) -> String {
        let lower = self.to_string();
        let hash = keccak256(&lower.as_bytes()[2..]);
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (index, c) in lower[2..].chars().enumerate() {
            let nibble = (hash[index / 2] >> (if index % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The address in the low 20 bytes of a 32-byte ABI word; `None` when the high 12
    /// bytes are not zero.
    pub fn from_word(word: &[u8]) -> Option<Address> {
        if word.len() != 32 || word[..12].iter().any(|b| *b != 0) {
            return None;
        }
        let mut address = [0u8; 20];
        address.copy_from_slice(&word[12..]);
        Some(Address(address))
    }

    fn to_word(self) -> [u8; 32] {
        let mut word = [0u8; 32];
        word[12..].copy_from_slice(&self.0);
        word
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

/// A `uint256` ABI word as `u128`; `None` when it does not fit (no price does).
pub fn word_to_u128(word: &[u8]) -> Option<u128> {
    if word.len() != 32 || word[..16].iter().any(|b| *b != 0) {
        return None;
    }
    let mut low = [0u8; 16];
    low.copy_from_slice(&word[16..]);
    Some(u128::from_be_bytes(low))
}

fn u128_to_word(value: u128) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[16..].copy_from_slice(&value.to_be_bytes());
    word
}

/// The 4-byte selector of a function signature such as `transfer(address,uint256)`.
pub fn selector(signature: &str) -> [u8; 4] {
    let hash = keccak256(signature.as_bytes());
    [hash[0], hash[1], hash[2], hash[3]]
}

/// `keccak256("Transfer(address,address,uint256)")`, the ERC-20 Transfer event's topic 0.
pub fn transfer_topic() -> [u8; 32] {
    keccak256(b"Transfer(address,address,uint256)")
}

/// `transfer(to, amount)` followed by `binding` (the quote id's bytes): the ABI decoder
/// of a Solidity token reads its two arguments and ignores what follows, so the
/// transaction carries the quote on chain and matches exactly one quote.
pub fn transfer_calldata(to: Address, amount: u128, binding: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(4 + 64 + binding.len());
    data.extend_from_slice(&selector("transfer(address,uint256)"));
    data.extend_from_slice(&to.to_word());
    data.extend_from_slice(&u128_to_word(amount));
    data.extend_from_slice(binding);
    data
}

/// A decoded `transfer(address,uint256)` call and what follows its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferCall {
    pub to: Address,
    /// `None` when the amount does not fit in `u128` (then it matches no quote).
    pub amount: Option<u128>,
    pub trailing: Vec<u8>,
}

/// Decodes calldata as `transfer(address,uint256)`; `None` when it is another call.
pub fn decode_transfer_call(data: &[u8]) -> Option<TransferCall> {
    if data.len() < 68 || data[..4] != selector("transfer(address,uint256)") {
        return None;
    }
    Some(TransferCall {
        to: Address::from_word(&data[4..36])?,
        amount: word_to_u128(&data[36..68]),
        trailing: data[68..].to_vec(),
    })
}

/// A log as a receipt carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub address: Address,
    pub topics: Vec<[u8; 32]>,
    pub data: Vec<u8>,
}

/// An ERC-20 Transfer event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferEvent {
    pub token: Address,
    pub from: Address,
    pub to: Address,
    /// `None` when the value does not fit in `u128`.
    pub value: Option<u128>,
}

/// Decodes a log as an ERC-20 `Transfer(address indexed, address indexed, uint256)`.
pub fn decode_transfer_log(log: &Log) -> Option<TransferEvent> {
    if log.topics.len() != 3 || log.topics[0] != transfer_topic() || log.data.len() != 32 {
        return None;
    }
    Some(TransferEvent {
        token: log.address,
        from: Address::from_word(&log.topics[1])?,
        to: Address::from_word(&log.topics[2])?,
        value: word_to_u128(&log.data),
    })
}

/// `amount_atomic` in major units with `decimals` places, trailing zeros trimmed down to
/// two places (`199000000`, 6 → `199.00`; `1500001`, 6 → `1.500001`).
pub fn format_amount(atomic: u128, decimals: u32) -> String {
    let Some(scale) = 10u128.checked_pow(decimals) else {
        return atomic.to_string();
    };
    let whole = atomic / scale;
    if decimals == 0 {
        return whole.to_string();
    }
    let fraction = format!("{:0width$}", atomic % scale, width = decimals as usize);
    let keep = fraction
        .trim_end_matches('0')
        .len()
        .max(2.min(fraction.len()));
    format!("{whole}.{}", &fraction[..keep])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keccak_of_the_empty_string() {
        assert_eq!(
            to_hex(&keccak256(b"")),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn known_selector_and_topic() {
        assert_eq!(to_hex(&selector("transfer(address,uint256)")), "0xa9059cbb");
        assert_eq!(
            to_hex(&transfer_topic()),
            "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
        );
    }

    #[test]
    fn eip55_vectors() {
        // From EIP-55 itself.
        for checksummed in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let address = Address::parse(checksummed).unwrap();
            assert_eq!(address.checksummed(), checksummed);
            assert_eq!(address.to_string(), checksummed.to_ascii_lowercase());
            // All lower or all upper case carries no checksum and is accepted.
            Address::parse(&checksummed.to_ascii_lowercase()).unwrap();
            Address::parse(&format!("0x{}", checksummed[2..].to_ascii_uppercase())).unwrap();
        }
        assert_eq!(
            Address::parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"),
            Err(AddressError::BadChecksum)
        );
        for bad in [
            "",
            "0x",
            "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            "0x123",
            "0xzz",
        ] {
            assert_eq!(Address::parse(bad), Err(AddressError::Malformed), "{bad}");
        }
    }

    #[test]
    fn transfer_calldata_round_trips() {
        let to = Address::parse("0x2222222222222222222222222222222222222222").unwrap();
        let data = transfer_calldata(to, 199_000_000, b"cq_X");
        assert_eq!(
            to_hex(&data),
            concat!(
                "0xa9059cbb",
                "0000000000000000000000002222222222222222222222222222222222222222",
                "000000000000000000000000000000000000000000000000000000000bdc7fc0",
                "63715f58"
            )
        );
        let call = decode_transfer_call(&data).unwrap();
        assert_eq!(call.to, to);
        assert_eq!(call.amount, Some(199_000_000));
        assert_eq!(call.trailing, b"cq_X");
        assert_eq!(decode_transfer_call(&data[..67]), None);
        let mut other = data.clone();
        other[0] = 0x09;
        assert_eq!(decode_transfer_call(&other), None);
    }

    #[test]
    fn transfer_logs_decode() {
        let from = Address([0x11; 20]);
        let to = Address([0x22; 20]);
        let mut from_word = [0u8; 32];
        from_word[12..].copy_from_slice(&from.0);
        let mut to_word = [0u8; 32];
        to_word[12..].copy_from_slice(&to.0);
        let log = Log {
            address: Address([0x33; 20]),
            topics: vec![transfer_topic(), from_word, to_word],
            data: u128_to_word(5).to_vec(),
        };
        let event = decode_transfer_log(&log).unwrap();
        assert_eq!((event.from, event.to, event.value), (from, to, Some(5)));
        assert_eq!(event.token, Address([0x33; 20]));
        let approval = Log {
            topics: vec![
                keccak256(b"Approval(address,address,uint256)"),
                from_word,
                to_word,
            ],
            ..log.clone()
        };
        assert_eq!(decode_transfer_log(&approval), None);
        let mut huge = log.clone();
        huge.data = [0xff; 32].to_vec();
        assert_eq!(decode_transfer_log(&huge).unwrap().value, None);
    }

    #[test]
    fn amounts_format_exactly() {
        assert_eq!(format_amount(199_000_000, 6), "199.00");
        assert_eq!(format_amount(199_500_000, 6), "199.50");
        assert_eq!(format_amount(1_500_001, 6), "1.500001");
        assert_eq!(format_amount(5, 6), "0.000005");
        assert_eq!(format_amount(42, 0), "42");
        assert_eq!(format_amount(42, 1), "4.2");
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(from_hex("0x00ff"), Some(vec![0, 255]));
        assert_eq!(from_hex("0XaBcD"), Some(vec![0xab, 0xcd]));
        assert_eq!(from_hex("0x0g"), None);
        assert_eq!(to_hex(&[0, 255]), "0x00ff");
        assert_eq!(from_hex("0x0"), None);
        assert_eq!(from_hex("00"), None);
        assert_eq!(parse_quantity("0x1b4"), Some(436));
        assert_eq!(parse_quantity("0x"), None);
    }
}
