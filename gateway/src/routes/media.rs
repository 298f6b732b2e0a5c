//! Serving uploaded images at a stable URL (`GET /media/{id}`), and checking the media id
//! the image routes of platforms and users are given. Those store the id; URLs are made
//! when objects are shown, by `feria_platforms::media::MediaUrls` (app data, from
//! `PUBLIC_URL`), never from the request's `Host`.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use feria_kernel::{Db, DbConn, ErrorBody};
use feria_platforms::media::{MediaError, MediaId, MediaStore};
use serde::Deserialize;
use utoipa::ToSchema;
use validator::Validate;

use crate::error::HttpError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/media/{id}").route(web::get().to(serve)));
}

/// A previously uploaded image to use (`POST /platforms/{id}/image`, `/users/.../image`).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageRequest {
    /// The id returned by `POST /api/v1/utils/media/upload` (`med_...`).
    #[validate(length(min = 1, message = "is required"))]
    pub media_id: String,
}

/// The uploaded image a request names, checking that it exists (unknown id → 422 on
/// `media_id`: the request names something that is not there, rather than the path).
pub async fn uploaded_image(
    conn: &mut DbConn,
    request: &ImageRequest,
) -> Result<MediaId, HttpError> {
    let unknown = || {
        HttpError::from(feria_kernel::ApiError::invalid_field(
            "media_id",
            "no uploaded image has this id",
        ))
    };
    let id: MediaId = request.media_id.parse().map_err(|_| unknown())?;
    match feria_platforms::media::get(conn, &id).await {
        Ok(media) => Ok(media.id),
        Err(MediaError::NotFound) => Err(unknown()),
        Err(error) => Err(error.into()),
    }
}

/// An uploaded image. Public, immutable: the URL of one upload never changes content.
#[utoipa::path(
    get,
    path = "/media/{id}",
    tag = "utils",
    operation_id = "media_get",
    params(("id" = String, Path, description = "The media id (`med_...`).")),
    responses(
        (status = 200, description = "The image bytes, with their content type.", content_type = "image/*"),
        (status = 404, description = "No such media.", body = ErrorBody),
        (status = 503, description = "The media store (`MEDIA_STORE`) failed or did not answer (`media_unavailable`), the database is unreachable or busy, or the request took too long (`database_unavailable`, `database_busy`, `request_timeout`); retry after `Retry-After` seconds.", body = ErrorBody)
    )
)]
pub async fn serve(
    id: web::Path<String>,
    db: web::Data<Db>,
    store: web::Data<MediaStore>,
) -> Result<HttpResponse, HttpError> {
    let id: MediaId = id.parse().map_err(|_| MediaError::NotFound)?;
    let (media, bytes) = store.read(&db, &id).await?;
    Ok(HttpResponse::Ok()
        .content_type(media.content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::ETAG, format!("\"{}\"", media.sha256)))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(bytes))
}
