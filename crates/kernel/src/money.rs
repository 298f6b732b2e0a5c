//! Money: integer minor units with an ISO 4217 currency.
//!
//! Amounts are stored and summed as `i64` minor units (cents for USD, yen for JPY, fils
//! for KWD), so a sum never drifts. Conversions from and to decimal major units go through
//! `rust_decimal` with an explicit [`Rounding`]; nothing rounds implicitly. Splitting an
//! amount ([`Money::allocate`]) always returns parts that add up exactly to the whole.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The bound on money, in minor units (10^12: ten billion US dollars, a trillion yen):
/// the largest amount that may enter Feria in one piece (a price, a credit top-up, a
/// charge, a fee estimate) and the largest balance an account that cannot go negative may
/// hold. Far below `i64::MAX`, so a sum of bounded amounts is checked against it without
/// overflowing, and every amount up to it survives a trip through a JSON number exactly.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;

/// What can go wrong with money arithmetic or parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not a supported ISO 4217 currency code")]
    UnknownCurrency(String),
    #[error("currencies differ: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("the amount is out of range")]
    Overflow,
    #[error("{currency} allows at most {exponent} decimal places")]
    TooPrecise { currency: Currency, exponent: u32 },
    #[error("`{0}` is not a decimal amount")]
    InvalidAmount(String),
    #[error("cannot allocate over weights that sum to zero")]
    NoWeights,
}

/// How to round a value that falls between two minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Round half to even ("banker's rounding"): unbiased over many operations.
    HalfEven,
    /// Round half away from zero: what people expect on a receipt.
    HalfUp,
    /// Toward zero: never give away a fraction.
    Down,
    /// Away from zero: never fall short by a fraction.
    Up,
}

impl Rounding {
    fn strategy(self) -> RoundingStrategy {
        match self {
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::Down => RoundingStrategy::ToZero,
            Rounding::Up => RoundingStrategy::AwayFromZero,
        }
    }
}

/// An ISO 4217 currency with its minor-unit exponent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// Active ISO 4217 codes whose exponent is not 2; every other listed code has 2.
const EXPONENT_0: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];
const EXPONENT_3: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
const EXPONENT_4: &[&str] = &["CLF", "UYW"];
const EXPONENT_2: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF",
    "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR",
    "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF",
    "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR", "KPW", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PGK",
    "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD",
    "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TOP",
    "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "UYU", "UZS", "VES", "WST", "XCD", "YER", "ZAR",
    "ZMW", "ZWG",
];

impl Currency {
    pub const USD: Currency = Currency {
        code: *b"USD",
        exponent: 2,
    };
    pub const EUR: Currency = Currency {
        code: *b"EUR",
        exponent: 2,
    };
    pub const JPY: Currency = Currency {
        code: *b"JPY",
        exponent: 0,
    };

    /// Looks up a code, case-insensitively.
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        let upper = code.to_ascii_uppercase();
        let exponent = if EXPONENT_2.contains(&upper.as_str()) {
            2
        } else if EXPONENT_0.contains(&upper.as_str()) {
            0
        } else if EXPONENT_3.contains(&upper.as_str()) {
            3
        } else if EXPONENT_4.contains(&upper.as_str()) {
            4
        } else {
            return Err(MoneyError::UnknownCurrency(code.to_owned()));
        };
        let bytes = upper.as_bytes();
        Ok(Currency {
            code: [bytes[0], bytes[1], bytes[2]],
            exponent,
        })
    }

    /// The three-letter code.
    pub fn code(&self) -> &str {
        // Only ASCII letters from the tables above are ever stored.
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// Number of decimal places of the minor unit (2 for USD, 0 for JPY, 3 for KWD).
    pub fn exponent(&self) -> u32 {
        u32::from(self.exponent)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Currency::from_code(&raw).map_err(serde::de::Error::custom)
    }
}

/// An amount of one currency, in integer minor units.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    pub fn zero(currency: Currency) -> Money {
        Money::from_minor(0, currency)
    }

    /// Converts a decimal amount in major units, rounding to the minor unit by `rounding`.
    pub fn from_decimal(
        amount: Decimal,
        currency: Currency,
        rounding: Rounding,
    ) -> Result<Money, MoneyError> {
        let scaled = amount
            .checked_mul(Decimal::from(10i64.pow(currency.exponent())))
            .ok_or(MoneyError::Overflow)?
            .round_dp_with_strategy(0, rounding.strategy());
        let minor = i64::try_from(scaled).map_err(|_| MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, currency))
    }

    /// Converts a decimal amount that must already be exact in the currency's minor unit
    /// (`299.99` USD is, `299.999` USD is not).
    pub fn from_decimal_exact(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        if amount.normalize().scale() > currency.exponent() {
            return Err(MoneyError::TooPrecise {
                currency,
                exponent: currency.exponent(),
            });
        }
        Money::from_decimal(amount, currency, Rounding::HalfEven)
    }

    /// Parses a decimal string in major units (`"299.99"`), exactly.
    pub fn parse(amount: &str, currency: Currency) -> Result<Money, MoneyError> {
        let decimal = Decimal::from_str_exact(amount.trim())
            .map_err(|_| MoneyError::InvalidAmount(amount.to_owned()))?;
        Money::from_decimal_exact(decimal, currency)
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount in major units, exact (`29999` cents → `299.99`).
    pub fn to_decimal(&self) -> Decimal {
        Decimal::new(self.minor, self.currency.exponent())
    }

    /// Major units with exactly the currency's decimal places (`"299.99"`, `"1000"` for JPY).
    pub fn to_major_string(&self) -> String {
        self.to_decimal().to_string()
    }

    pub fn is_zero(&self) -> bool {
        self.minor == 0
    }

    pub fn is_negative(&self) -> bool {
        self.minor < 0
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, self.currency))
    }

    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        let minor = self.minor.checked_neg().ok_or(MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// `self × quantity`.
    pub fn checked_mul(self, quantity: i64) -> Result<Money, MoneyError> {
        let minor = self
            .minor
            .checked_mul(quantity)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// `percent`% of this amount (`2.9` → 2.9 %), rounded to the minor unit by `rounding`.
    pub fn percent(self, percent: Decimal, rounding: Rounding) -> Result<Money, MoneyError> {
        let value = Decimal::from(self.minor)
            .checked_mul(percent)
            .and_then(|v| v.checked_div(Decimal::ONE_HUNDRED))
            .ok_or(MoneyError::Overflow)?
            .round_dp_with_strategy(0, rounding.strategy());
        let minor = i64::try_from(value).map_err(|_| MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// Splits this amount in proportion to `weights` by the largest-remainder method:
    /// the parts always sum exactly to `self`, and leftover minor units go to the parts
    /// with the largest fractional shares (earlier parts first on ties).
    pub fn allocate(self, weights: &[u64]) -> Result<Vec<Money>, MoneyError> {
        let total: u128 = weights.iter().map(|w| u128::from(*w)).sum();
        if total == 0 {
            return Err(MoneyError::NoWeights);
        }
        let whole = i128::from(self.minor);
        let sign = whole.signum();
        let magnitude = whole.unsigned_abs();
        let mut parts = Vec::with_capacity(weights.len());
        let mut remainders = Vec::with_capacity(weights.len());
        let mut allocated: u128 = 0;
        for (index, weight) in weights.iter().enumerate() {
            let product = magnitude * u128::from(*weight);
            let share = product / total;
            allocated += share;
            parts.push(share);
            remainders.push((product % total, index));
        }
        // Largest remainder first; stable on the index so ties favour earlier parts.
        remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let leftover = magnitude - allocated;
        for (_, index) in remainders
            .iter()
            .take(usize::try_from(leftover).map_err(|_| MoneyError::Overflow)?)
        {
            parts[*index] += 1;
        }
        parts
            .into_iter()
            .map(|part| {
                let signed = i128::try_from(part).map_err(|_| MoneyError::Overflow)? * sign;
                let minor = i64::try_from(signed).map_err(|_| MoneyError::Overflow)?;
                Ok(Money::from_minor(minor, self.currency))
            })
            .collect()
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_major_string(), self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(value: &str) -> Decimal {
        Decimal::from_str_exact(value).unwrap()
    }

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::USD)
    }

    #[test]
    fn currencies_know_their_exponent() {
        assert_eq!(Currency::from_code("usd").unwrap().exponent(), 2);
        assert_eq!(Currency::from_code("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::from_code("KWD").unwrap().exponent(), 3);
        assert_eq!(Currency::from_code("CLF").unwrap().exponent(), 4);
        assert!(matches!(
            Currency::from_code("XYZ"),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert!(Currency::from_code("US").is_err());
        assert_eq!(serde_json::to_string(&Currency::EUR).unwrap(), "\"EUR\"");
        assert!(serde_json::from_str::<Currency>("\"ABC\"").is_err());
    }

    #[test]
    fn parsing_is_exact_per_exponent() {
        assert_eq!(
            Money::parse("299.99", Currency::USD).unwrap().minor(),
            29999
        );
        assert_eq!(Money::parse("299.9", Currency::USD).unwrap().minor(), 29990);
        assert_eq!(
            Money::parse("299.990", Currency::USD).unwrap().minor(),
            29999
        );
        assert!(matches!(
            Money::parse("299.999", Currency::USD),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            Money::parse("1.5", Currency::JPY),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            Money::parse("abc", Currency::USD),
            Err(MoneyError::InvalidAmount(_))
        ));
        let kwd = Currency::from_code("KWD").unwrap();
        assert_eq!(Money::parse("1.234", kwd).unwrap().minor(), 1234);
    }

    #[test]
    fn formatting_keeps_the_currency_scale() {
        assert_eq!(usd(29999).to_major_string(), "299.99");
        assert_eq!(usd(500).to_major_string(), "5.00");
        assert_eq!(usd(-5).to_major_string(), "-0.05");
        assert_eq!(
            Money::from_minor(1000, Currency::JPY).to_major_string(),
            "1000"
        );
        assert_eq!(usd(29999).to_string(), "299.99 USD");
    }

    #[test]
    fn rounding_is_explicit_at_the_half() {
        let half = dec("0.125");
        assert_eq!(
            Money::from_decimal(half, Currency::USD, Rounding::HalfEven)
                .unwrap()
                .minor(),
            12
        );
        assert_eq!(
            Money::from_decimal(half, Currency::USD, Rounding::HalfUp)
                .unwrap()
                .minor(),
            13
        );
        assert_eq!(
            Money::from_decimal(dec("0.129"), Currency::USD, Rounding::Down)
                .unwrap()
                .minor(),
            12
        );
        assert_eq!(
            Money::from_decimal(dec("0.121"), Currency::USD, Rounding::Up)
                .unwrap()
                .minor(),
            13
        );
        assert_eq!(
            Money::from_decimal(dec("-0.125"), Currency::USD, Rounding::HalfUp)
                .unwrap()
                .minor(),
            -13
        );
    }

    #[test]
    fn percent_rounds_by_the_given_rule() {
        // 2.9 % of $10.50 = 30.45 cents.
        assert_eq!(
            usd(1050)
                .percent(dec("2.9"), Rounding::HalfUp)
                .unwrap()
                .minor(),
            30
        );
        assert_eq!(
            usd(1050).percent(dec("2.9"), Rounding::Up).unwrap().minor(),
            31
        );
        // 10 % of 25 cents = 2.5 cents.
        assert_eq!(
            usd(25)
                .percent(dec("10"), Rounding::HalfEven)
                .unwrap()
                .minor(),
            2
        );
        assert_eq!(
            usd(25)
                .percent(dec("10"), Rounding::HalfUp)
                .unwrap()
                .minor(),
            3
        );
    }

    #[test]
    fn arithmetic_checks_currency_and_overflow() {
        assert_eq!(usd(100).checked_add(usd(50)).unwrap(), usd(150));
        assert_eq!(usd(100).checked_sub(usd(150)).unwrap(), usd(-50));
        assert!(matches!(
            usd(1).checked_add(Money::from_minor(1, Currency::EUR)),
            Err(MoneyError::CurrencyMismatch(..))
        ));
        assert_eq!(usd(i64::MAX).checked_add(usd(1)), Err(MoneyError::Overflow));
        assert_eq!(usd(i64::MIN).checked_neg(), Err(MoneyError::Overflow));
        assert_eq!(usd(333).checked_mul(3).unwrap(), usd(999));
    }

    #[test]
    fn allocation_always_sums_to_the_whole() {
        let parts = usd(100).allocate(&[1, 1, 1]).unwrap();
        assert_eq!(parts, vec![usd(34), usd(33), usd(33)]);
        let parts = usd(-100).allocate(&[1, 1, 1]).unwrap();
        assert_eq!(parts, vec![usd(-34), usd(-33), usd(-33)]);
        let parts = usd(1001).allocate(&[70, 20, 10]).unwrap();
        assert_eq!(parts, vec![usd(701), usd(200), usd(100)]);
        for total in [0i64, 1, 7, 99, 12345, i64::MAX] {
            let parts = usd(total).allocate(&[3, 0, 5, 11]).unwrap();
            let sum: i128 = parts.iter().map(|p| i128::from(p.minor())).sum();
            assert_eq!(sum, i128::from(total));
            assert_eq!(parts[1], usd(0));
        }
        assert_eq!(usd(1).allocate(&[0, 0]), Err(MoneyError::NoWeights));
    }
}

/// Serde for a `Decimal` written as a JSON number (`2.5`, `299.99`), as the seeds show
/// amounts and percentages. Reading goes through the number's shortest decimal form, so
/// `0.1` becomes exactly `0.1`, not the nearest binary fraction.
pub mod decimal_number {
    use rust_decimal::Decimal;
    use rust_decimal::prelude::ToPrimitive;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        match value.to_f64() {
            Some(number) => s.serialize_f64(number),
            None => Err(serde::ser::Error::custom("decimal out of range")),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let number = f64::deserialize(d)?;
        from_f64(number).ok_or_else(|| serde::de::Error::custom("expected a finite decimal number"))
    }

    pub(crate) fn from_f64(number: f64) -> Option<Decimal> {
        if !number.is_finite() {
            return None;
        }
        // `{}` prints the shortest representation that reads back as the same f64.
        let text = format!("{number}");
        Decimal::from_str_exact(&text)
            .ok()
            .or_else(|| Decimal::from_scientific(&text).ok())
    }

    /// The same for `Option<Decimal>` (`null` or absent is `None`).
    pub mod option {
        use rust_decimal::Decimal;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(decimal) => super::serialize(decimal, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
            match Option::<f64>::deserialize(d)? {
                Some(number) => super::from_f64(number)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom("expected a finite decimal number")),
                None => Ok(None),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[derive(serde::Serialize, serde::Deserialize)]
        struct Fee {
            #[serde(with = "super")]
            percent: Decimal,
        }

        #[test]
        fn numbers_round_trip_exactly() {
            assert_eq!(
                serde_json::to_string(&Fee {
                    percent: Decimal::new(25, 1)
                })
                .unwrap(),
                r#"{"percent":2.5}"#
            );
            for text in ["2.5", "0.1", "299.99", "0", "100"] {
                let fee: Fee = serde_json::from_str(&format!("{{\"percent\": {text}}}")).unwrap();
                assert_eq!(fee.percent, Decimal::from_str_exact(text).unwrap());
                let again: Fee =
                    serde_json::from_str(&serde_json::to_string(&fee).unwrap()).unwrap();
                assert_eq!(again.percent, fee.percent);
            }
        }
    }
}

/// Properties of amounts that every route relies on, over many generated values.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Currencies of every exponent Feria knows.
    fn currency() -> impl Strategy<Value = Currency> {
        prop::sample::select(vec!["USD", "JPY", "KWD", "CLF", "EUR", "BHD", "KRW"])
            .prop_map(|code| Currency::from_code(code).unwrap())
    }

    proptest! {
        #[test]
        fn formatting_then_parsing_gives_the_same_amount(minor in any::<i64>(), currency in currency()) {
            let money = Money::from_minor(minor, currency);
            let text = money.to_major_string();
            prop_assert_eq!(Money::parse(&text, currency).unwrap(), money);
            // Exactly the currency's decimal places, no more, no fewer.
            let places = text.split_once('.').map(|(_, f)| f.len()).unwrap_or(0);
            prop_assert_eq!(places as u32, currency.exponent());
        }

        #[test]
        fn a_digit_beyond_the_minor_unit_is_refused(
            minor in -1_000_000_000i64..1_000_000_000,
            extra in 1u8..10,
            currency in currency(),
        ) {
            let text = format!("{}{}", Money::from_minor(minor, currency).to_major_string(), if currency.exponent() == 0 { format!(".{extra}") } else { extra.to_string() });
            prop_assert!(
                matches!(Money::parse(&text, currency), Err(MoneyError::TooPrecise { .. })),
                "{} parsed", text
            );
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in ".{0,40}", currency in currency()) {
            if let Ok(money) = Money::parse(&text, currency) {
                prop_assert_eq!(money.currency(), currency);
            }
        }

        #[test]
        fn json_numbers_read_back_exactly(minor in -999_999_999_999_999i64..1_000_000_000_000_000, currency in currency()) {
            // Amounts travel as JSON numbers (f64, 15 significant digits are exact): every
            // amount of up to 15 digits survives the trip out and back in, however many
            // decimal places its currency has.
            #[derive(serde::Serialize, serde::Deserialize)]
            struct Amount(#[serde(with = "decimal_number")] Decimal);
            let money = Money::from_minor(minor, currency);
            let json = serde_json::to_string(&Amount(money.to_decimal())).unwrap();
            let Amount(decimal) = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(Money::from_decimal_exact(decimal, currency).unwrap(), money);
        }

        #[test]
        fn currency_codes_are_case_insensitive_and_keep_their_exponent(
            code in prop::sample::select([EXPONENT_0, EXPONENT_2, EXPONENT_3, EXPONENT_4].concat()),
            lower in any::<bool>(),
        ) {
            let asked = if lower { code.to_ascii_lowercase() } else { code.to_owned() };
            let currency = Currency::from_code(&asked).unwrap();
            prop_assert_eq!(currency.code(), code);
            let expected = if EXPONENT_0.contains(&code) { 0 } else if EXPONENT_3.contains(&code) { 3 } else if EXPONENT_4.contains(&code) { 4 } else { 2 };
            prop_assert_eq!(currency.exponent(), expected);
        }

        #[test]
        fn allocation_sums_exactly_and_stays_within_one_unit_of_the_exact_share(
            minor in any::<i64>(),
            weights in prop::collection::vec(0u64..1_000_000, 1..12),
        ) {
            let total: u128 = weights.iter().map(|w| u128::from(*w)).sum();
            prop_assume!(total > 0);
            let money = Money::from_minor(minor, Currency::USD);
            let parts = money.allocate(&weights).unwrap();
            let sum: i128 = parts.iter().map(|p| i128::from(p.minor())).sum();
            prop_assert_eq!(sum, i128::from(minor));
            for (part, weight) in parts.iter().zip(&weights) {
                // |part - minor * weight / total| < 1, in exact integer arithmetic.
                let scaled = i128::from(part.minor()) * total as i128 - i128::from(minor) * *weight as i128;
                prop_assert!(scaled.unsigned_abs() < total, "part {:?} of weight {}", part, weight);
                prop_assert!(part.minor() == 0 || part.minor().signum() == minor.signum());
            }
        }

        #[test]
        fn percentages_round_half_even_to_the_nearest_unit(
            minor in -10_000_000_000i64..10_000_000_000,
            basis_points in 0i64..100_000,
        ) {
            let money = Money::from_minor(minor, Currency::USD);
            let percent = Decimal::new(basis_points, 2);
            let fee = money.percent(percent, Rounding::HalfEven).unwrap();
            let exact = Decimal::from(minor) * percent / Decimal::ONE_HUNDRED;
            prop_assert!((Decimal::from(fee.minor()) - exact).abs() <= Decimal::new(5, 1));
            prop_assert_eq!(money.percent(Decimal::ONE_HUNDRED, Rounding::HalfEven).unwrap(), money);
            prop_assert!(money.percent(Decimal::ZERO, Rounding::HalfEven).unwrap().is_zero());
        }
    }
}
