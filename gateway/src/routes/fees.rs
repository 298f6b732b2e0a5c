//! Fee estimates (`/utils/estimate/fee`): need no credentials.

use actix_web::{HttpResponse, web};
use feria_billing::fees::{EstimateQuestion, FeeEstimate, FeeProvider};
use feria_kernel::{Db, ErrorBody, PlatformId};
use feria_platforms::PlatformError;
use serde::Deserialize;
use utoipa::ToSchema;
use validator::Validate;

use crate::error::HttpError;
use crate::extract::Json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/utils/estimate/fee").route(web::post().to(estimate_fee)));
}

/// An amount to estimate fees for.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeeEstimateRequest {
    /// In cents (minor units of `currency`), as the seed says: `10000` is $100.00.
    #[validate(range(
        min = 0,
        max = feria_kernel::money::MAX_AMOUNT_MINOR,
        message = "must be 0 to 10^12 minor units"
    ))]
    pub amount: i64,
    /// ISO 4217 code, any case (default `usd`).
    #[schema(value_type = Option<String>, example = "usd")]
    pub currency: Option<feria_kernel::money::Currency>,
    /// Use this platform's `platformFee` (otherwise no platform fee).
    pub platform_id: Option<String>,
    /// `stripe` (card processing, the default) or `internal` (prepaid credits: no
    /// processor fee).
    pub provider: Option<FeeProvider>,
    /// Whether the buyer pays the processor fee on top (default true, as a contract's
    /// `includeStripeFees`); false: it comes out of the seller's amount.
    pub include_stripe_fees: Option<bool>,
    /// Whether the buyer pays the service fee on top (default true).
    pub include_candle_fees: Option<bool>,
    /// Whether the buyer pays the platform fee on top (default true).
    pub include_platform_fees: Option<bool>,
}

impl FeeEstimateRequest {
    /// The domain's question; an id that cannot be a platform's is no such platform.
    fn into_question(self) -> Result<EstimateQuestion, HttpError> {
        let platform_id = match &self.platform_id {
            Some(raw) => Some(
                raw.parse::<PlatformId>()
                    .map_err(|_| PlatformError::NotFound)?,
            ),
            None => None,
        };
        Ok(EstimateQuestion {
            amount: self.amount,
            currency: self.currency,
            platform_id,
            provider: self.provider,
            include_processor: self.include_stripe_fees,
            include_service: self.include_candle_fees,
            include_platform: self.include_platform_fees,
        })
    }
}

/// Estimates the fees on an amount in cents: the platform's fee, the service fee and the
/// processor's fee, what the buyer is charged and what the seller receives. Each fee is
/// rounded half up to the cent; when the buyer pays the processor fee the total is
/// grossed up (rounded so the seller is never short). See `docs/MONEY.md`.
#[utoipa::path(
    post,
    path = "/api/v1/utils/estimate/fee",
    tag = "utils",
    operation_id = "utils_estimate_fee",
    request_body = FeeEstimateRequest,
    responses(
        (status = 200, description = "The breakdown, in minor units.", body = FeeEstimate),
        (status = 404, description = "No such platform.", body = ErrorBody),
        (status = 422, description = "Negative amount, unknown currency, or an amount too small to cover the fees the seller absorbs.", body = ErrorBody)
    )
)]
pub async fn estimate_fee(
    body: Json<FeeEstimateRequest>,
    db: web::Data<Db>,
    config: web::Data<crate::config::Config>,
) -> Result<HttpResponse, HttpError> {
    let question = body.into_inner().into_question()?;
    let estimate = feria_billing::fees::estimate(&db, &config.fees, question).await?;
    Ok(HttpResponse::Ok().json(estimate))
}
