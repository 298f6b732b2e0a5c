//! Utilities that need no credentials: a username from free text, and image uploads.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_multipart::{Multipart, MultipartError};
use actix_web::{HttpRequest, HttpResponse, web};
use feria_kernel::{ApiError, Db, ErrorBody, ErrorKind, Mode, PlatformId, Tenant, Timestamp};
use feria_platforms::PlatformError;
use feria_platforms::media::{MediaError, MediaId, MediaStore, MediaUrls};
use feria_users::usernames::UsernameSuggestion;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::error::HttpError;
use crate::extract::Json;
use crate::ratelimit::IpRateLimiter;

/// The per-address limit of anonymous uploads (its own type, so that it cannot be mixed
/// up with the sign-in limiter in the app data).
pub struct MediaUploadLimiter(pub IpRateLimiter);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/utils/generate/username").route(web::post().to(username)))
        // The seed's spelling, kept so that clients written against it work.
        .service(web::resource("/utils/gnerate/username").route(web::post().to(username_seed)))
        .service(web::resource("/utils/media/upload").route(web::post().to(upload)))
        .service(web::resource("/utils/estimate/fee").route(web::post().to(estimate_fee)));
}

/// Text to make a username from; with a platform, the username is checked against it.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsernameRequest {
    /// Free text, e.g. a full name: `José Ñúñez` → `jose_nunez`.
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub text: String,
    /// Check availability on this platform (`plat_...`).
    pub platform_id: Option<String>,
    /// The mode whose users count (default `live`).
    pub mode: Option<Mode>,
}

/// Makes a username from text: transliterated to ASCII, lower case, `_` between words.
/// With `platform_id`, says whether it is free there and offers free alternatives.
#[utoipa::path(
    post,
    path = "/api/v1/utils/generate/username",
    tag = "utils",
    operation_id = "utils_generate_username",
    request_body = UsernameRequest,
    responses(
        (status = 200, description = "The username, its availability and alternatives.", body = UsernameSuggestion),
        (status = 404, description = "No such platform.", body = ErrorBody),
        (status = 422, description = "The text has no letters or digits.", body = ErrorBody)
    )
)]
pub async fn username(
    body: Json<UsernameRequest>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    let request = body.into_inner();
    let mut conn = db.conn().await?;
    let tenant = match &request.platform_id {
        Some(raw) => {
            let id: PlatformId = raw.parse().map_err(|_| PlatformError::NotFound)?;
            let platform = feria_platforms::platform::get(&mut conn, &id).await?;
            Some(Tenant::new(platform.id, request.mode.unwrap_or(Mode::Live)))
        }
        None => None,
    };
    let suggestion =
        feria_users::usernames::suggest(&mut conn, tenant.as_ref(), &request.text).await?;
    Ok(HttpResponse::Ok().json(suggestion))
}

/// The same as `POST /api/v1/utils/generate/username`, at the path the seed spells
/// `gnerate`.
#[utoipa::path(
    post,
    path = "/api/v1/utils/gnerate/username",
    tag = "utils",
    operation_id = "utils_generate_username_seed_spelling",
    request_body = UsernameRequest,
    responses(
        (status = 200, description = "The username, its availability and alternatives.", body = UsernameSuggestion),
        (status = 404, description = "No such platform.", body = ErrorBody),
        (status = 422, description = "The text has no letters or digits.", body = ErrorBody)
    )
)]
pub async fn username_seed(
    body: Json<UsernameRequest>,
    db: web::Data<Db>,
) -> Result<HttpResponse, HttpError> {
    username(body, db).await
}

/// An uploaded image.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MediaObject {
    /// Pass this to the image routes (`POST /platforms/{id}/image`, `/users/auth/image`).
    pub id: MediaId,
    /// Where the image is served (`GET /media/{id}`): under the server's configured public
    /// URL (`PUBLIC_URL`), or relative (`/media/med_...`) when none is configured; never
    /// taken from the request. Other objects show the same URL (`image`, `logo`).
    pub url: String,
    /// `image/jpeg`, `image/png` or `image/gif`, recognised from the bytes.
    pub content_type: String,
    pub byte_size: i64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    pub created: Timestamp,
}

/// The multipart form of an upload (for the API description).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The image: JPEG, PNG or GIF, recognised by content, not by name.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: String,
}

/// Uploads an image (JPEG, PNG or GIF, recognised by its content, not its name) as the
/// `file` part of a `multipart/form-data` body. The image's header must decode (a
/// signature alone or a file cut short is refused) and declare at most 16384 pixels a
/// side and 50 megapixels. Limited in size (`MEDIA_MAX_BYTES`, 5 MiB by default) and in
/// number per client address.
#[utoipa::path(
    post,
    path = "/api/v1/utils/media/upload",
    tag = "utils",
    operation_id = "utils_media_upload",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The stored image and its URL.", body = MediaObject),
        (status = 400, description = "A malformed multipart body, e.g. one cut short before its closing boundary (`malformed_multipart`).", body = ErrorBody),
        (status = 413, description = "Larger than the limit (`payload_too_large`).", body = ErrorBody),
        (status = 415, description = "Not multipart, or not a JPEG, PNG or GIF (`unsupported_media_type`).", body = ErrorBody),
        (status = 422, description = "No `file` part, an empty one, an image whose header does not decode (truncated, damaged), or one over 16384 pixels a side or 50 megapixels.", body = ErrorBody),
        (status = 429, description = "Too many uploads from this address (`rate_limited`).", body = ErrorBody)
    )
)]
pub async fn upload(
    req: HttpRequest,
    payload: web::Payload,
    db: web::Data<Db>,
    store: web::Data<MediaStore>,
    limiter: web::Data<MediaUploadLimiter>,
    media: web::Data<MediaUrls>,
) -> Result<HttpResponse, HttpError> {
    if let Some(ip) = crate::ratelimit::client_address(&req) {
        limiter.0.check(ip).map_err(|retry_after| {
            ApiError::new(
                ErrorKind::RateLimited,
                "rate_limited",
                "too many uploads from this address; retry later",
            )
            .with_retry_after(retry_after)
        })?;
    }
    let body = WatchedBody::new(payload);
    let ended = body.ended.clone();
    let mut form = Multipart::new(req.headers(), body);
    let bytes = read_file_part(&mut form, &ended, store.max_bytes()).await?;
    let mut conn = db.conn().await?;
    let stored = store.save(&mut conn, &bytes).await?;
    Ok(HttpResponse::Created().json(MediaObject {
        url: media.url(&stored.id),
        id: stored.id,
        content_type: stored.content_type,
        byte_size: stored.byte_size,
        sha256: stored.sha256,
        created: stored.created_at,
    }))
}

/// The bytes of the form's `file` part, read up to `limit` bytes (one more is an error:
/// the rest is never buffered). The form is read to its closing boundary: a body cut
/// short is refused even when the `file` part itself is whole.
async fn read_file_part(
    form: &mut Multipart,
    ended: &Cell<bool>,
    limit: usize,
) -> Result<Vec<u8>, HttpError> {
    let mut file = None;
    while let Some(field) = next_part(form, ended).await? {
        let mut field = field.map_err(multipart_error)?;
        if file.is_some() || field.name() != Some("file") {
            // Drain other parts (small form fields) and move on.
            while let Some(chunk) = next_part(&mut field, ended).await? {
                chunk.map_err(multipart_error)?;
            }
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = next_part(&mut field, ended).await? {
            let chunk = chunk.map_err(multipart_error)?;
            if bytes.len() + chunk.len() > limit {
                return Err(MediaError::TooLarge { limit }.into());
            }
            bytes.extend_from_slice(&chunk);
        }
        file = Some(bytes);
    }
    file.ok_or_else(|| ApiError::invalid_field("file", "a `file` part is required").into())
}

/// The request body, noting when it has ended (all of it received).
struct WatchedBody {
    payload: web::Payload,
    ended: Rc<Cell<bool>>,
}

impl WatchedBody {
    fn new(payload: web::Payload) -> WatchedBody {
        WatchedBody {
            payload,
            ended: Rc::new(Cell::new(false)),
        }
    }
}

impl Stream for WatchedBody {
    type Item = <web::Payload as Stream>::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.payload).poll_next(cx);
        if let Poll::Ready(None) = polled {
            self.ended.set(true);
        }
        polled
    }
}

/// The next item of the multipart parser (the next part, or the next chunk of a part).
///
/// The parser reads the body itself; when it still waits for bytes after the whole body
/// has arrived, no more will come: the body was cut short (most often: no closing
/// boundary). actix-multipart 0.7 then stays pending, holding the request until its
/// timeout (503); this answers 400 `malformed_multipart` at once instead.
async fn next_part<S, T>(stream: &mut S, ended: &Cell<bool>) -> Result<Option<T>, HttpError>
where
    S: Stream<Item = T> + Unpin,
{
    std::future::poll_fn(|cx| match Pin::new(&mut *stream).poll_next(cx) {
        Poll::Pending if ended.get() => Poll::Ready(Err(cut_short())),
        Poll::Pending => Poll::Pending,
        Poll::Ready(item) => Poll::Ready(Ok(item)),
    })
    .await
}

fn cut_short() -> HttpError {
    ApiError::bad_request(
        "malformed_multipart",
        "the multipart body ends before its closing boundary",
    )
    .into()
}

fn multipart_error(error: MultipartError) -> HttpError {
    match error {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible => ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "unsupported_media_type",
            "the body must be multipart/form-data with a `file` part",
        )
        .into(),
        other => ApiError::bad_request("malformed_multipart", other.to_string()).into(),
    }
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

/// Which payment path the estimate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FeeProvider {
    Stripe,
    Internal,
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
    let request = body.into_inner();
    let currency = request
        .currency
        .unwrap_or(feria_kernel::money::Currency::USD);
    let platform_percent = match &request.platform_id {
        Some(raw) => {
            let id: PlatformId = raw.parse().map_err(|_| PlatformError::NotFound)?;
            let mut conn = db.conn().await?;
            feria_platforms::platform::get(&mut conn, &id)
                .await?
                .platform_fee_percent()
        }
        None => rust_decimal::Decimal::ZERO,
    };
    let inclusion = feria_billing::fees::FeeInclusion {
        processor: request.include_stripe_fees.unwrap_or(true),
        service: request.include_candle_fees.unwrap_or(true),
        platform: request.include_platform_fees.unwrap_or(true),
    };
    let processor = request.provider.unwrap_or(FeeProvider::Stripe) == FeeProvider::Stripe;
    let breakdown = feria_billing::fees::compute(
        feria_kernel::money::Money::from_minor(request.amount, currency),
        platform_percent,
        &config.fees,
        inclusion,
        processor,
    )
    .map_err(feria_billing::BillingError::from)?;
    Ok(HttpResponse::Ok().json(FeeEstimate {
        amount: breakdown.amount.minor(),
        currency: currency.code().to_lowercase(),
        platform_fee_percent: platform_percent,
        platform_fee: breakdown.platform_fee.minor(),
        service_fee_percent: config.fees.service_percent,
        service_fee: breakdown.service_fee.minor(),
        processor_fee: breakdown.processor_fee.minor(),
        total: breakdown.total.minor(),
        net: breakdown.net.minor(),
    }))
}
