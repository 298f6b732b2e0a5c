//! Uploaded images (platform logos, profile pictures).
//!
//! The kind of an upload is read from its first bytes (the format's magic number), never
//! from its name or the client's content type, and it is accepted only when its header
//! decodes (image-rs's readers: a signature alone, a header cut short or with a wrong
//! checksum is no image) and declares a bounded size ([`MAX_SIDE`], [`MAX_PIXELS`]).
//! The bytes go to a [`MediaStore`]: a local directory (the embedded default; files are
//! written under a temporary name, synced, then renamed into place) or a bucket of an
//! S3-compatible object store shared by several servers (`MEDIA_STORE=s3://...`; see
//! [`storage`]). They are stored first and only then recorded: a crash leaves at worst an
//! orphaned file or object, never a row pointing at half a file. [`migrate`] copies the
//! uploads a directory holds into an object store (`feria media migrate`).
//!
//! What other tables keep of an image (a user's picture, a platform's logo) is its media
//! id, never a URL: [`MediaUrls`] makes the URL when an object is shown.

use std::io::Cursor;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{ApiError, Db, DbConn, DbError, Timestamp, with_conn};
use serde::Serialize;
use utoipa::ToSchema;

use crate::PlatformCode;
use crate::schema::media;

pub mod migrate;
pub mod storage;

pub use storage::{MediaConfigError, MediaLocation, MediaStore, S3Settings, Stored};

feria_kernel::define_id!(
    /// An uploaded image.
    MediaId,
    "med"
);

/// The image formats accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    Gif,
}

impl ImageKind {
    /// Recognises an image by its magic number.
    pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageKind::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageKind::Png)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(ImageKind::Gif)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
            ImageKind::Gif => "image/gif",
        }
    }

    /// The format's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "JPEG",
            ImageKind::Png => "PNG",
            ImageKind::Gif => "GIF",
        }
    }

    fn format(self) -> image::ImageFormat {
        match self {
            ImageKind::Jpeg => image::ImageFormat::Jpeg,
            ImageKind::Png => image::ImageFormat::Png,
            ImageKind::Gif => image::ImageFormat::Gif,
        }
    }

    /// Decodes the image's header (no pixels) and returns its width and height, checked
    /// against [`MAX_SIDE`] and [`MAX_PIXELS`]. PNG: the signature, IHDR and its CRC, and
    /// every chunk up to the first IDAT; JPEG: the markers up to the start of scan; GIF:
    /// the header, screen descriptor and global palette.
    pub fn dimensions(self, bytes: &[u8]) -> Result<(u32, u32), MediaError> {
        let mut limits = image::Limits::default();
        // What the header reader may allocate (ancillary chunks, tables): never more than
        // a few times an upload.
        limits.max_alloc = Some(64 * 1024 * 1024);
        let mut reader = image::ImageReader::with_format(Cursor::new(bytes), self.format());
        reader.limits(limits);
        let (width, height) = reader
            .into_dimensions()
            .map_err(|_| MediaError::InvalidImage(self))?;
        if width == 0 || height == 0 {
            return Err(MediaError::InvalidImage(self));
        }
        if width > MAX_SIDE
            || height > MAX_SIDE
            || u64::from(width) * u64::from(height) > MAX_PIXELS
        {
            return Err(MediaError::ImageTooLarge { width, height });
        }
        Ok((width, height))
    }
}

/// The longest side of an accepted image, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// The most pixels an accepted image has (50 megapixels).
pub const MAX_PIXELS: u64 = 50_000_000;

/// Failures of media operations.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("media not found")]
    NotFound,
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a JPEG, PNG or GIF image")]
    UnsupportedType,
    #[error("the file is not a whole {} image", .0.name())]
    InvalidImage(ImageKind),
    #[error("the image is {width}×{height} pixels")]
    ImageTooLarge { width: u32, height: u32 },
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("media storage failed: {0}")]
    Storage(#[from] std::io::Error),
    /// The object store failed or did not answer (503 `media_unavailable`).
    #[error("the media store is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<MediaError> for ApiError {
    fn from(error: MediaError) -> Self {
        match error {
            MediaError::NotFound => ApiError::not_found("media"),
            MediaError::Empty => ApiError::invalid_field("file", "the file is empty"),
            MediaError::UnsupportedType => ApiError::coded(
                feria_kernel::KernelCode::UnsupportedMediaType,
                "the file is not a JPEG, PNG or GIF image",
            ),
            MediaError::InvalidImage(kind) => ApiError::invalid_field(
                "file",
                format!(
                    "is not a whole {} image: its header is missing, cut short or damaged",
                    kind.name()
                ),
            ),
            MediaError::ImageTooLarge { width, height } => ApiError::invalid_field(
                "file",
                format!(
                    "is {width}×{height} pixels; at most {MAX_SIDE} pixels a side and \
                     {} megapixels are accepted",
                    MAX_PIXELS / 1_000_000
                ),
            ),
            MediaError::TooLarge { limit } => ApiError::coded(
                feria_kernel::KernelCode::PayloadTooLarge,
                format!("the file is larger than {limit} bytes"),
            ),
            MediaError::Storage(error) => {
                tracing::error!(%error, "media storage failed");
                ApiError::internal()
            }
            MediaError::Unavailable(error) => {
                tracing::error!(%error, "the media store is unavailable");
                ApiError::coded(
                    PlatformCode::MediaUnavailable,
                    "the media store is unavailable; retry later",
                )
            }
            MediaError::Db(db) => db.into(),
        }
    }
}

/// An uploaded image as stored and as the API shows it (with its URL added by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize, ToSchema)]
#[diesel(table_name = media)]
pub struct Media {
    pub id: MediaId,
    /// `image/jpeg`, `image/png` or `image/gif`, from the file's content.
    pub content_type: String,
    /// Size in bytes.
    pub byte_size: i64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    #[serde(rename = "created")]
    pub created_at: Timestamp,
}

impl MediaStore {
    /// Checks, stores and records an upload: the bytes first, then the row; when the row
    /// cannot be written, the bytes are taken away again. No database connection is held
    /// while the bytes travel to the store.
    pub async fn save(&self, db: &Db, bytes: &[u8]) -> Result<Media, MediaError> {
        if bytes.is_empty() {
            return Err(MediaError::Empty);
        }
        if bytes.len() > self.max_bytes() {
            return Err(MediaError::TooLarge {
                limit: self.max_bytes(),
            });
        }
        let kind = ImageKind::sniff(bytes).ok_or(MediaError::UnsupportedType)?;
        kind.dimensions(bytes)?;
        let record = Media {
            id: MediaId::new(),
            content_type: kind.content_type().to_owned(),
            byte_size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            sha256: feria_kernel::secret::digest_bytes(bytes),
            created_at: Timestamp::now(),
        };
        self.put(&record.id, bytes, &record.content_type).await?;
        let inserted = async {
            let mut conn = db.conn().await?;
            with_conn!(&mut conn, c => {
                diesel::insert_into(media::table).values(&record).execute(c).await
            })
            .map_err(DbError::from)
        }
        .await;
        if let Err(error) = inserted {
            // Nothing points at the bytes: take them away again.
            self.remove(&record.id).await;
            return Err(error.into());
        }
        Ok(record)
    }

    /// A recorded upload and its bytes. A row whose bytes the store does not hold is
    /// logged as an error and answered as not found. The database connection is given
    /// back before the bytes are fetched.
    pub async fn read(&self, db: &Db, id: &MediaId) -> Result<(Media, bytes::Bytes), MediaError> {
        let record = {
            let mut conn = db.conn().await?;
            get(&mut conn, id).await?
        };
        match self.get(id).await? {
            Stored::Present(bytes) => Ok((record, bytes)),
            Stored::Absent => {
                tracing::error!(media = %id, store = %self.describe(), "media row without its bytes");
                Err(MediaError::NotFound)
            }
        }
    }
}

/// Makes the URLs of uploaded images. The database keeps media ids; the URL is made when
/// an object is shown: under the configured public base (`PUBLIC_URL`), or relative to
/// the server that answers (`/media/med_...`) when none is configured. Never from the
/// request (`Host`, `X-Forwarded-Host` and `Forwarded` are the client's to say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaUrls {
    base: Option<String>,
}

impl MediaUrls {
    /// URLs under `base` (`https://api.example.com`, a trailing `/` is dropped), or
    /// relative ones without it.
    pub fn new(base: Option<&str>) -> MediaUrls {
        MediaUrls {
            base: base
                .map(|base| base.trim().trim_end_matches('/').to_owned())
                .filter(|base| !base.is_empty()),
        }
    }

    /// Relative URLs (`/media/med_...`): what a new object with no image needs.
    pub fn relative() -> MediaUrls {
        MediaUrls::default()
    }

    /// Where a media file is served.
    pub fn url(&self, id: &MediaId) -> String {
        match &self.base {
            Some(base) => format!("{base}/media/{id}"),
            None => format!("/media/{id}"),
        }
    }

    /// The URL of a stored image reference (see [`stored_media_id`]); `None` when there is
    /// none or it names no media.
    pub fn of_stored(&self, stored: Option<&str>) -> Option<String> {
        stored.and_then(stored_media_id).map(|id| self.url(&id))
    }
}

/// The media id a stored image reference names: the id itself, as stored now, or the last
/// segment of a `.../media/med_...` URL as rows written before kept them (the migration
/// `media_ids` rewrites those; a server of the previous version may still write one during
/// a rolling upgrade). The host of such a URL came from a request and is never used.
pub fn stored_media_id(stored: &str) -> Option<MediaId> {
    let candidate = match stored.rsplit_once("/media/") {
        Some((_, id)) => id,
        None => stored,
    };
    let id = candidate.parse().ok();
    if id.is_none() {
        tracing::warn!(
            stored,
            "stored image reference names no media; shown as none"
        );
    }
    id
}

/// A recorded upload.
pub async fn get(conn: &mut DbConn, id: &MediaId) -> Result<Media, MediaError> {
    with_conn!(conn, c => {
        media::table.find(id).select(Media::as_select()).first(c).await.optional()
    })
    .map_err(DbError::from)?
    .ok_or(MediaError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognised_by_content() {
        assert_eq!(
            ImageKind::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Some(ImageKind::Jpeg)
        );
        assert_eq!(
            ImageKind::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(ImageKind::Png)
        );
        assert_eq!(ImageKind::sniff(b"GIF89a\x01\0"), Some(ImageKind::Gif));
        assert_eq!(ImageKind::sniff(b"GIF87a"), Some(ImageKind::Gif));
        for other in [&b""[..], b"<svg></svg>", b"%PDF-1.7", b"\x89PNG", b"GIF90a"] {
            assert_eq!(ImageKind::sniff(other), None, "{other:?}");
        }
    }

    /// A real 1×1 PNG.
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\xa5\xf7\xc9\x8b\0\0\0\0IEND\xaeB`\x82";

    #[test]
    fn headers_are_decoded_and_truncation_is_refused() {
        assert_eq!(ImageKind::Png.dimensions(PNG).unwrap(), (1, 1));
        // Every cut of the PNG before its first IDAT is complete is refused: the
        // signature (8 bytes), 20 bytes, IHDR without its CRC, IHDR alone.
        for cut in [8, 12, 16, 20, 24, 29, 32, 33, 40] {
            assert!(
                matches!(
                    ImageKind::Png.dimensions(&PNG[..cut]),
                    Err(MediaError::InvalidImage(ImageKind::Png))
                ),
                "{cut} bytes"
            );
        }
        let mut bad_crc = PNG.to_vec();
        bad_crc[30] ^= 1;
        assert!(ImageKind::Png.dimensions(&bad_crc).is_err());
        assert!(ImageKind::Gif.dimensions(b"GIF89a").is_err());
        assert!(
            ImageKind::Jpeg
                .dimensions(&[0xFF, 0xD8, 0xFF, 0xD9])
                .is_err()
        );
    }

    #[test]
    fn stored_references_give_urls_under_the_configured_base_only() {
        let id: MediaId = "med_01HZZ0J7N7P5B4K2V1Q9R8S6T5".parse().unwrap();
        let relative = MediaUrls::relative();
        let public = MediaUrls::new(Some("https://api.example.com/"));
        assert_eq!(relative.url(&id), format!("/media/{id}"));
        assert_eq!(
            public.url(&id),
            format!("https://api.example.com/media/{id}")
        );
        assert_eq!(MediaUrls::new(Some(" ")), relative);
        for stored in [
            id.to_string(),
            format!("http://evil.example/media/{id}"),
            format!("https://api.example.com:8443/v1/media/{id}"),
        ] {
            assert_eq!(
                public.of_stored(Some(&stored)),
                Some(format!("https://api.example.com/media/{id}")),
                "{stored}"
            );
        }
        for nothing in [
            None,
            Some(""),
            Some("https://evil.example/cat.png"),
            Some("/media/x"),
        ] {
            assert_eq!(public.of_stored(nothing), None, "{nothing:?}");
        }
    }
}
