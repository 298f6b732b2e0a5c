//! Amounts as Stripe counts them.
//!
//! Stripe takes integer amounts in "the currency's smallest unit", but its idea of that
//! unit is not always ISO 4217's, which [`Money`] follows: Stripe treats MGA as
//! zero-decimal (ISO: 2) and ISK as two-decimal with whole krónur only (ISO: 0). This is
//! the one place that converts, exactly or not at all.

use feria_kernel::{Currency, Money};

use super::StripeError;

/// Stripe's zero-decimal currencies.
const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];
/// Stripe's three-decimal currencies; amounts must end in 0.
const THREE_DECIMAL: &[&str] = &["BHD", "JOD", "KWD", "OMR", "TND"];

/// The number of decimals of Stripe's `amount` for a currency.
pub fn stripe_exponent(currency: Currency) -> u32 {
    let code = currency.code();
    if ZERO_DECIMAL.contains(&code) {
        0
    } else if THREE_DECIMAL.contains(&code) {
        3
    } else {
        2
    }
}

/// `money` as Stripe's `amount` and lower-case `currency` parameters.
pub fn to_stripe_amount(money: Money) -> Result<(i64, String), StripeError> {
    let currency = money.currency();
    let amount = rescale(
        money.minor(),
        currency.exponent(),
        stripe_exponent(currency),
    )
    .ok_or_else(|| {
        StripeError::invalid(
            "amount",
            format!("{money} cannot be expressed in Stripe's units for {currency}"),
        )
    })?;
    if stripe_exponent(currency) == 3 && amount % 10 != 0 {
        return Err(StripeError::invalid(
            "amount",
            format!("Stripe takes {currency} amounts in multiples of 0.010"),
        ));
    }
    Ok((amount, currency.code().to_ascii_lowercase()))
}

/// Stripe's `amount` and `currency` as [`Money`].
pub fn from_stripe_amount(amount: i64, currency: &str) -> Result<Money, StripeError> {
    let currency = Currency::from_code(currency)
        .map_err(|e| StripeError::invalid("currency", e.to_string()))?;
    let minor =
        rescale(amount, stripe_exponent(currency), currency.exponent()).ok_or_else(|| {
            StripeError::invalid(
                "amount",
                format!("Stripe's amount {amount} has a fraction of {currency}'s minor unit"),
            )
        })?;
    Ok(Money::from_minor(minor, currency))
}

/// `amount` with `from` decimals as an amount with `to` decimals; `None` when that would
/// drop a fraction or overflow.
fn rescale(amount: i64, from: u32, to: u32) -> Option<i64> {
    if to >= from {
        amount.checked_mul(10i64.checked_pow(to - from)?)
    } else {
        let factor = 10i64.checked_pow(from - to)?;
        (amount % factor == 0).then_some(amount / factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(minor: i64, code: &str) -> Money {
        Money::from_minor(minor, Currency::from_code(code).unwrap())
    }

    #[test]
    fn common_currencies_pass_through() {
        assert_eq!(
            to_stripe_amount(money(1999, "USD")).unwrap(),
            (1999, "usd".into())
        );
        assert_eq!(
            to_stripe_amount(money(500, "JPY")).unwrap(),
            (500, "jpy".into())
        );
        assert_eq!(from_stripe_amount(1999, "eur").unwrap(), money(1999, "EUR"));
    }

    #[test]
    fn stripe_special_cases_are_rescaled_exactly() {
        // ISK: ISO has no decimals, Stripe counts hundredths of whole krónur.
        assert_eq!(
            to_stripe_amount(money(5, "ISK")).unwrap(),
            (500, "isk".into())
        );
        assert_eq!(from_stripe_amount(500, "isk").unwrap(), money(5, "ISK"));
        assert!(from_stripe_amount(510, "isk").is_err());
        // MGA: ISO has two decimals, Stripe none.
        assert_eq!(
            to_stripe_amount(money(1200, "MGA")).unwrap(),
            (12, "mga".into())
        );
        assert!(to_stripe_amount(money(1250, "MGA")).is_err());
        // Three-decimal currencies must end in 0.
        assert_eq!(
            to_stripe_amount(money(5120, "KWD")).unwrap(),
            (5120, "kwd".into())
        );
        assert!(to_stripe_amount(money(5124, "KWD")).is_err());
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(to_stripe_amount(money(i64::MAX, "ISK")).is_err());
        assert!(from_stripe_amount(1, "xyz").is_err());
    }
}
