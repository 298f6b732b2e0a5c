//! Image uploads (`/utils/media/upload`): need no credentials, limited per address.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_multipart::{Multipart, MultipartError};
use actix_web::{HttpRequest, HttpResponse, web};
use feria_kernel::{ApiError, Db, ErrorBody, ErrorKind, Timestamp};
use feria_platforms::media::{MediaError, MediaId, MediaStore, MediaUrls};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::HttpError;
use crate::ratelimit::IpRateLimiter;

/// The per-address limit of anonymous uploads (its own type, so that it cannot be mixed
/// up with the sign-in limiter in the app data).
pub struct MediaUploadLimiter(pub IpRateLimiter);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/utils/media/upload").route(web::post().to(upload)));
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
        (status = 429, description = "Too many uploads from this address (`rate_limited`).", body = ErrorBody),
        (status = 503, description = "The media store (`MEDIA_STORE`) failed or did not answer (`media_unavailable`; nothing was recorded), the database is unreachable or busy, or the request took too long (`database_unavailable`, `database_busy`, `request_timeout`); retry after `Retry-After` seconds.", body = ErrorBody)
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
    check_limit(&req, &limiter).await?;
    let body = WatchedBody::new(payload);
    let ended = body.ended.clone();
    let mut form = Multipart::new(req.headers(), body);
    let bytes = read_file_part(&mut form, &ended, store.max_bytes()).await?;
    let stored = store.save(&db, &bytes).await?;
    Ok(HttpResponse::Created().json(MediaObject {
        url: media.url(&stored.id),
        id: stored.id,
        content_type: stored.content_type,
        byte_size: stored.byte_size,
        sha256: stored.sha256,
        created: stored.created_at,
    }))
}

/// 429 `rate_limited` once the client's address has used up its uploads. The decision
/// goes to the response's `RateLimit-*` headers (middleware).
async fn check_limit(req: &HttpRequest, limiter: &MediaUploadLimiter) -> Result<(), HttpError> {
    let Some(ip) = crate::client_address::of(req) else {
        return Ok(());
    };
    let decision = limiter.0.decide(ip).await;
    crate::ratelimit::record_on(req, decision);
    match decision.retry_after() {
        None => Ok(()),
        Some(retry_after) => Err(ApiError::new(
            ErrorKind::RateLimited,
            "rate_limited",
            "too many uploads from this address; retry later",
        )
        .with_retry_after(retry_after)
        .into()),
    }
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
