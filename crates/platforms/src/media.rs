//! Uploaded images (platform logos, profile pictures).
//!
//! The kind of an upload is read from its first bytes (the format's magic number), never
//! from its name or the client's content type. Files are written under a temporary name,
//! synced, then renamed into place, and only then recorded: a crash leaves at worst an
//! orphaned temporary file, never a row pointing at half a file.

use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{ApiError, DbConn, DbError, ErrorKind, Timestamp, with_conn};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use crate::schema::media;

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
}

/// Failures of media operations.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("media not found")]
    NotFound,
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a JPEG, PNG or GIF image")]
    UnsupportedType,
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("media storage failed: {0}")]
    Storage(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<MediaError> for ApiError {
    fn from(error: MediaError) -> Self {
        match error {
            MediaError::NotFound => ApiError::not_found("media"),
            MediaError::Empty => ApiError::invalid_field("file", "the file is empty"),
            MediaError::UnsupportedType => ApiError::new(
                ErrorKind::UnsupportedMediaType,
                "unsupported_media_type",
                "the file is not a JPEG, PNG or GIF image",
            ),
            MediaError::TooLarge { limit } => ApiError::new(
                ErrorKind::PayloadTooLarge,
                "payload_too_large",
                format!("the file is larger than {limit} bytes"),
            ),
            MediaError::Storage(error) => {
                tracing::error!(%error, "media storage failed");
                ApiError::internal()
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

/// Where uploaded files live: one file per media id in one directory.
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
    max_bytes: usize,
}

impl MediaStore {
    pub fn new(dir: impl Into<PathBuf>, max_bytes: usize) -> MediaStore {
        MediaStore {
            dir: dir.into(),
            max_bytes,
        }
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The file holding a media id's bytes.
    pub fn path_of(&self, id: &MediaId) -> PathBuf {
        self.dir.join(id.as_str())
    }

    /// Checks, writes and records an upload.
    pub async fn save(&self, conn: &mut DbConn, bytes: &[u8]) -> Result<Media, MediaError> {
        if bytes.is_empty() {
            return Err(MediaError::Empty);
        }
        if bytes.len() > self.max_bytes {
            return Err(MediaError::TooLarge {
                limit: self.max_bytes,
            });
        }
        let kind = ImageKind::sniff(bytes).ok_or(MediaError::UnsupportedType)?;
        let record = Media {
            id: MediaId::new(),
            content_type: kind.content_type().to_owned(),
            byte_size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            sha256: feria_kernel::secret::digest_bytes(bytes),
            created_at: Timestamp::now(),
        };
        let path = self.path_of(&record.id);
        write_durably(&self.dir, &path, bytes).await?;
        let inserted = with_conn!(conn, c => {
            diesel::insert_into(media::table).values(&record).execute(c).await
        });
        if let Err(error) = inserted {
            // Nothing points at the file: take it away again.
            let _ = tokio::fs::remove_file(&path).await;
            return Err(DbError::from(error).into());
        }
        Ok(record)
    }

    /// A recorded upload and the path of its bytes.
    pub async fn open(
        &self,
        conn: &mut DbConn,
        id: &MediaId,
    ) -> Result<(Media, PathBuf), MediaError> {
        let record = get(conn, id).await?;
        Ok((record, self.path_of(id)))
    }
}

/// A recorded upload.
pub async fn get(conn: &mut DbConn, id: &MediaId) -> Result<Media, MediaError> {
    with_conn!(conn, c => {
        media::table.find(id).select(Media::as_select()).first(c).await.optional()
    })
    .map_err(DbError::from)?
    .ok_or(MediaError::NotFound)
}

/// Writes `bytes` to `path` so that the file is either absent or complete: a temporary
/// file in the same directory, synced, then renamed over the final name.
async fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".partial");
    let temporary = PathBuf::from(temporary);
    let written = async {
        let mut file = tokio::fs::File::create(&temporary).await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temporary, path).await?;
        // The rename itself is durable once the directory is synced.
        tokio::fs::File::open(dir).await?.sync_all().await
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&temporary).await;
    }
    written
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
}
