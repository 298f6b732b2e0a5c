//! Fees: the platform's fee, the operator's service fee and the payment processor's fee,
//! and the one rounding rule they all follow.
//!
//! # The rounding rule
//!
//! Every fee is computed exactly (in decimal) on the base it applies to and rounded once
//! to the currency's minor unit, half away from zero ([`Rounding::HalfUp`]). The only
//! other rounding is the gross-up that passes the processor's fee on to the buyer: the
//! total is rounded *up*, so that after the processor takes its (half-up rounded) fee the
//! rest still covers what was due. Nothing else rounds; the net to the seller is the
//! exact difference of integers, so `total = net + all fees` always holds to the unit.
//!
//! # Who pays a fee
//!
//! A fee marked *included* is included in what the buyer is charged: it is added on top
//! of the amount. A fee not included comes out of the amount: the seller absorbs it. This
//! is what the contract's
//! `includeStripeFees`, `includeCandleFees` and `includePlatformFees` flags mean.

use feria_kernel::money::{Currency, Money, MoneyError, Rounding};
use feria_kernel::{Db, PlatformId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The operator's fee configuration (platform fees come from each platform).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeSchedule {
    /// The operator's service fee, percent of the amount (the seed's "Candle fees").
    pub service_percent: Decimal,
    /// The card processor's fee: percent of the total charged ...
    pub processor_percent: Decimal,
    /// ... plus a fixed amount per charge, in minor units of the charge's currency.
    pub processor_fixed_minor: i64,
}

impl Default for FeeSchedule {
    /// Stripe-like processing (2.9 % + 30 minor units) and a 1 % service fee.
    fn default() -> Self {
        FeeSchedule {
            service_percent: Decimal::ONE,
            processor_percent: Decimal::new(29, 1),
            processor_fixed_minor: 30,
        }
    }
}

/// Which fees the buyer pays on top of the amount (`true`); the seller absorbs the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub struct FeeInclusion {
    pub processor: bool,
    pub service: bool,
    pub platform: bool,
}

impl Default for FeeInclusion {
    /// As the seed's contracts default: every fee included (the buyer pays them on top).
    fn default() -> Self {
        FeeInclusion {
            processor: true,
            service: true,
            platform: true,
        }
    }
}

/// The fees on one amount, and what is charged and paid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeBreakdown {
    /// What the goods cost (the seller's price).
    pub amount: Money,
    pub platform_fee: Money,
    pub service_fee: Money,
    pub processor_fee: Money,
    /// What the buyer is charged.
    pub total: Money,
    /// What the seller receives: `total` minus every fee.
    pub net: Money,
}

impl FeeBreakdown {
    pub fn fees_total(&self) -> Result<Money, MoneyError> {
        self.platform_fee
            .checked_add(self.service_fee)?
            .checked_add(self.processor_fee)
    }
}

/// Why fees cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    #[error("the amount must not be negative")]
    NegativeAmount,
    #[error("a fee percent must be between 0 and 100")]
    InvalidPercent,
    #[error("the fees exceed the amount")]
    FeesExceedAmount,
    #[error(transparent)]
    Money(#[from] MoneyError),
}

fn check_percent(percent: Decimal) -> Result<(), FeeError> {
    if percent < Decimal::ZERO || percent >= Decimal::ONE_HUNDRED {
        Err(FeeError::InvalidPercent)
    } else {
        Ok(())
    }
}

/// Computes the fees on `amount` by the rounding rule of this module.
///
/// `processor` is false for payments that involve no card processor (prepaid credits):
/// then the processor fee is zero.
pub fn compute(
    amount: Money,
    platform_percent: Decimal,
    schedule: &FeeSchedule,
    inclusion: FeeInclusion,
    processor: bool,
) -> Result<FeeBreakdown, FeeError> {
    if amount.is_negative() {
        return Err(FeeError::NegativeAmount);
    }
    check_percent(platform_percent)?;
    check_percent(schedule.service_percent)?;
    check_percent(schedule.processor_percent)?;
    let currency = amount.currency();
    let platform_fee = amount.percent(platform_percent, Rounding::HalfUp)?;
    let service_fee = amount.percent(schedule.service_percent, Rounding::HalfUp)?;

    // The buyer pays the amount plus every included fee, the processor's aside.
    let mut before_processor = amount;
    if inclusion.platform {
        before_processor = before_processor.checked_add(platform_fee)?;
    }
    if inclusion.service {
        before_processor = before_processor.checked_add(service_fee)?;
    }

    let (total, processor_fee) = if !processor || amount.is_zero() {
        (before_processor, Money::zero(currency))
    } else if !inclusion.processor {
        let fee = processor_fee(before_processor, schedule)?;
        (before_processor, fee)
    } else {
        // Gross up: the smallest total whose processor fee leaves `before_processor`.
        let rate = Decimal::ONE - schedule.processor_percent / Decimal::ONE_HUNDRED;
        let needed = Decimal::from(before_processor.minor())
            .checked_add(Decimal::from(schedule.processor_fixed_minor))
            .ok_or(MoneyError::Overflow)?;
        let gross = (needed / rate).ceil();
        let mut total = Money::from_minor(
            i64::try_from(gross).map_err(|_| MoneyError::Overflow)?,
            currency,
        );
        // Rounding the fee half-up can take one unit more than the exact fee; step up
        // until the rest covers what was due (at most a unit or two).
        while total.checked_sub(processor_fee(total, schedule)?)?.minor() < before_processor.minor()
        {
            total = total.checked_add(Money::from_minor(1, currency))?;
        }
        // ... and down, when rounding the fee half-down lets a smaller total do.
        loop {
            let smaller = total.checked_sub(Money::from_minor(1, currency))?;
            if smaller.minor() < before_processor.minor()
                || smaller
                    .checked_sub(processor_fee(smaller, schedule)?)?
                    .minor()
                    < before_processor.minor()
            {
                break;
            }
            total = smaller;
        }
        let fee = processor_fee(total, schedule)?;
        (total, fee)
    };

    let fees = platform_fee
        .checked_add(service_fee)?
        .checked_add(processor_fee)?;
    let net = total.checked_sub(fees)?;
    if net.is_negative() {
        return Err(FeeError::FeesExceedAmount);
    }
    Ok(FeeBreakdown {
        amount,
        platform_fee,
        service_fee,
        processor_fee,
        total,
        net,
    })
}

/// Which payment path the estimate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FeeProvider {
    Stripe,
    Internal,
}

/// An amount to estimate fees for; what is absent takes a contract's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstimateQuestion {
    /// Minor units of `currency`.
    pub amount: i64,
    /// Default `usd`.
    pub currency: Option<Currency>,
    /// Whose platform fee applies (none: no platform fee).
    pub platform_id: Option<PlatformId>,
    /// Default `stripe` (card processing).
    pub provider: Option<FeeProvider>,
    /// Whether the buyer pays each fee on top (each defaults to true, as a contract's
    /// `includeStripeFees`, `includeCandleFees`, `includePlatformFees` do).
    pub include_processor: Option<bool>,
    pub include_service: Option<bool>,
    pub include_platform: Option<bool>,
}

/// The fees on an amount, all in minor units of `currency`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeeEstimate {
    pub amount: i64,
    /// Lower-case ISO 4217 code.
    pub currency: String,
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub platform_fee_percent: rust_decimal::Decimal,
    pub platform_fee: i64,
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub service_fee_percent: rust_decimal::Decimal,
    pub service_fee: i64,
    pub processor_fee: i64,
    /// What the buyer is charged.
    pub total: i64,
    /// What the seller receives.
    pub net: i64,
}

/// The fees a payment of `question.amount` would carry under `schedule` and the
/// platform's own fee: the same rule contracts charge by, so an estimate is what a
/// contract with the same choices would total. A missing platform is
/// [`feria_platforms::PlatformError::NotFound`]; an amount too small for the fees the
/// seller absorbs is [`FeeError::FeesExceedAmount`].
pub async fn estimate(
    db: &Db,
    schedule: &FeeSchedule,
    question: EstimateQuestion,
) -> Result<FeeEstimate, crate::BillingError> {
    let currency = question.currency.unwrap_or(Currency::USD);
    let platform_percent = match &question.platform_id {
        Some(id) => feria_platforms::platform::fee_percent(&mut db.conn().await?, id).await?,
        None => Decimal::ZERO,
    };
    let inclusion = FeeInclusion {
        processor: question.include_processor.unwrap_or(true),
        service: question.include_service.unwrap_or(true),
        platform: question.include_platform.unwrap_or(true),
    };
    let processor = question.provider.unwrap_or(FeeProvider::Stripe) == FeeProvider::Stripe;
    let breakdown = compute(
        Money::from_minor(question.amount, currency),
        platform_percent,
        schedule,
        inclusion,
        processor,
    )?;
    Ok(FeeEstimate {
        amount: breakdown.amount.minor(),
        currency: currency.code().to_lowercase(),
        platform_fee_percent: platform_percent,
        platform_fee: breakdown.platform_fee.minor(),
        service_fee_percent: schedule.service_percent,
        service_fee: breakdown.service_fee.minor(),
        processor_fee: breakdown.processor_fee.minor(),
        total: breakdown.total.minor(),
        net: breakdown.net.minor(),
    })
}

/// The processor's fee on a charged total: percent (half-up) plus the fixed part.
fn processor_fee(total: Money, schedule: &FeeSchedule) -> Result<Money, MoneyError> {
    total
        .percent(schedule.processor_percent, Rounding::HalfUp)?
        .checked_add(Money::from_minor(
            schedule.processor_fixed_minor,
            total.currency(),
        ))
}

#[cfg(test)]
mod tests {
    use feria_kernel::money::Currency;
    use proptest::prelude::*;

    use super::*;

    /// The seller absorbs every fee.
    const NONE: FeeInclusion = FeeInclusion {
        processor: false,
        service: false,
        platform: false,
    };

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::USD)
    }

    fn pct(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn nothing_included_the_seller_absorbs_every_fee() {
        // $100.00, platform 2.5 %, service 1 %, processor 2.9 % + 30¢.
        let b = compute(usd(10_000), pct("2.5"), &FeeSchedule::default(), NONE, true).unwrap();
        assert_eq!(b.platform_fee, usd(250));
        assert_eq!(b.service_fee, usd(100));
        assert_eq!(b.processor_fee, usd(320));
        assert_eq!(b.total, usd(10_000));
        assert_eq!(b.net, usd(9_330));
    }

    #[test]
    fn included_fees_are_added_for_the_buyer_with_a_gross_up() {
        let all = FeeInclusion::default();
        let b = compute(usd(10_000), pct("2.5"), &FeeSchedule::default(), all, true).unwrap();
        assert_eq!(b.platform_fee, usd(250));
        assert_eq!(b.service_fee, usd(100));
        // (10 350 + 30) / 0.971 = 10 690.01…; 10 690 already does: its fee 310.01 → 310 + 30 = 340.
        assert_eq!(b.total, usd(10_690));
        assert_eq!(b.processor_fee, usd(340));
        assert_eq!(b.net, usd(10_000), "the seller gets the whole amount");
    }

    #[test]
    fn half_cents_round_away_from_zero() {
        // 2.5 % of $0.10 is 0.25¢ → 0¢; of $0.20 is 0.5¢ → 1¢; of $0.60 is 1.5¢ → 2¢.
        let schedule = FeeSchedule {
            service_percent: Decimal::ZERO,
            ..FeeSchedule::default()
        };
        let fee = |minor| {
            compute(
                usd(minor),
                pct("2.5"),
                &schedule,
                FeeInclusion::default(),
                false,
            )
            .unwrap()
            .platform_fee
        };
        assert_eq!(fee(10), usd(0));
        assert_eq!(fee(20), usd(1));
        assert_eq!(fee(60), usd(2));
        assert_eq!(fee(100), usd(3)); // 2.5 → 3
    }

    #[test]
    fn credits_have_no_processor_fee_and_zero_costs_nothing() {
        let b = compute(
            usd(999),
            pct("10"),
            &FeeSchedule::default(),
            FeeInclusion::default(),
            false,
        )
        .unwrap();
        assert_eq!(b.processor_fee, usd(0));
        assert_eq!(b.platform_fee, usd(100)); // 99.9 → 100
        let zero = compute(
            usd(0),
            pct("10"),
            &FeeSchedule::default(),
            FeeInclusion::default(),
            true,
        )
        .unwrap();
        assert_eq!((zero.total, zero.net), (usd(0), usd(0)));
    }

    #[test]
    fn tiny_amounts_whose_fees_exceed_them_are_refused() {
        // 30¢ fixed processor fee on a 10¢ charge the seller absorbs.
        assert_eq!(
            compute(usd(10), Decimal::ZERO, &FeeSchedule::default(), NONE, true),
            Err(FeeError::FeesExceedAmount)
        );
        assert_eq!(
            compute(usd(-1), Decimal::ZERO, &FeeSchedule::default(), NONE, true),
            Err(FeeError::NegativeAmount)
        );
        assert_eq!(
            compute(usd(100), pct("100"), &FeeSchedule::default(), NONE, false),
            Err(FeeError::InvalidPercent)
        );
    }

    #[test]
    fn zero_decimal_and_three_decimal_currencies() {
        let jpy = Money::from_minor(1_000, Currency::JPY);
        let b = compute(
            jpy,
            pct("2.5"),
            &FeeSchedule::default(),
            FeeInclusion::default(),
            false,
        )
        .unwrap();
        assert_eq!(b.platform_fee.minor(), 25);
        let kwd = Money::from_minor(1_005, Currency::from_code("KWD").unwrap()); // 1.005 KWD
        let b = compute(
            kwd,
            pct("10"),
            &FeeSchedule::default(),
            FeeInclusion::default(),
            false,
        )
        .unwrap();
        assert_eq!(b.platform_fee.minor(), 101); // 100.5 fils → 101
    }

    fn inclusion() -> impl Strategy<Value = FeeInclusion> {
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(processor, service, platform)| {
            FeeInclusion {
                processor,
                service,
                platform,
            }
        })
    }

    proptest! {
        #[test]
        fn the_parts_always_add_up(
            minor in 0i64..10_000_000_000,
            platform_bps in 0u32..3_000,
            service_bps in 0u32..1_000,
            processor_bps in 0u32..1_000,
            fixed in 0i64..100,
            inclusion in inclusion(),
            processor in any::<bool>(),
        ) {
            let schedule = FeeSchedule {
                service_percent: Decimal::new(i64::from(service_bps), 2),
                processor_percent: Decimal::new(i64::from(processor_bps), 2),
                processor_fixed_minor: fixed,
            };
            let amount = usd(minor);
            match compute(amount, Decimal::new(i64::from(platform_bps), 2), &schedule, inclusion, processor) {
                Ok(b) => {
                    // Exact to the unit: what the buyer pays = what the seller gets + fees.
                    prop_assert_eq!(b.total.minor(), b.net.minor() + b.fees_total().unwrap().minor());
                    prop_assert!(b.platform_fee.minor() >= 0 && b.service_fee.minor() >= 0 && b.processor_fee.minor() >= 0);
                    prop_assert!(b.total.minor() >= amount.minor());
                    // Fees are within half a unit of the exact value.
                    let exact = Decimal::from(minor) * Decimal::new(i64::from(platform_bps), 4);
                    prop_assert!((Decimal::from(b.platform_fee.minor()) - exact).abs() <= Decimal::new(5, 1));
                    if inclusion.processor && processor && minor > 0 {
                        // Passing the processor fee on leaves the seller exactly what the
                        // included fees leave them, never less.
                        let mut expected_net = amount.minor();
                        if !inclusion.platform { expected_net -= b.platform_fee.minor(); }
                        if !inclusion.service { expected_net -= b.service_fee.minor(); }
                        prop_assert!(b.net.minor() >= expected_net);
                        prop_assert!(b.net.minor() <= expected_net + 1);
                    }
                    if inclusion == NONE {
                        prop_assert_eq!(b.total, amount);
                    }
                }
                Err(FeeError::FeesExceedAmount) => {
                    prop_assert!(!inclusion.processor || !inclusion.service || !inclusion.platform);
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
