//! Moving uploads from a server's media directory into an object store (`feria media
//! migrate`): before several servers share an S3 bucket, the images the single server
//! kept on its disk go there.
//!
//! Every `media` row is visited in id order. Its file is read from the directory and must
//! match the row's SHA-256 (a file that does not is reported, never copied); an object
//! already in the store with the same bytes is left alone, anything else is written and
//! read back to verify its SHA-256. Running it again copies nothing: it is idempotent, and
//! safe while servers keep uploading (new uploads go to the store directly).

use std::path::Path;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{DbConn, DbError, with_conn};
use serde::Serialize;

use super::{Media, MediaError, MediaId, MediaStore, Stored};
use crate::schema::media;

/// Rows read per round trip.
const PAGE: i64 = 200;

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    /// Media rows visited.
    pub rows: u64,
    /// Objects written (absent from the store, or holding other bytes).
    pub copied: u64,
    /// Objects already in the store with the row's bytes: left alone.
    pub already_present: u64,
    /// Rows whose bytes could not be moved, with why.
    pub failed: Vec<MigrationFailure>,
}

impl MigrationReport {
    /// Whether every row's bytes are now in the store.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// One row whose bytes were not moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationFailure {
    pub media_id: MediaId,
    pub reason: String,
}

/// Copies the bytes of every media row from the files under `dir` into `to` (see the
/// module's documentation). Errors of single rows are listed in the report; an error
/// reading the rows themselves ends the migration.
pub async fn copy_directory_to_store(
    conn: &mut DbConn,
    dir: &Path,
    to: &MediaStore,
) -> Result<MigrationReport, MediaError> {
    let mut report = MigrationReport::default();
    let mut after: Option<MediaId> = None;
    loop {
        let page = page_after(conn, after.as_ref()).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for row in page {
            report.rows += 1;
            match copy_one(dir, to, &row).await {
                Ok(Copied::Written) => report.copied += 1,
                Ok(Copied::AlreadyPresent) => report.already_present += 1,
                Err(reason) => {
                    tracing::error!(media = %row.id, %reason, "media not migrated");
                    report.failed.push(MigrationFailure {
                        media_id: row.id,
                        reason,
                    });
                }
            }
        }
    }
    Ok(report)
}

enum Copied {
    Written,
    AlreadyPresent,
}

async fn copy_one(dir: &Path, to: &MediaStore, row: &Media) -> Result<Copied, String> {
    let matches = |bytes: &[u8]| {
        i64::try_from(bytes.len()).ok() == Some(row.byte_size)
            && feria_kernel::secret::digest_bytes(bytes) == row.sha256
    };
    match to.get(&row.id).await.map_err(|e| e.to_string())? {
        Stored::Present(bytes) if matches(&bytes) => return Ok(Copied::AlreadyPresent),
        Stored::Present(_) | Stored::Absent => {}
    }
    let path = dir.join(row.id.as_str());
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(error) => return Err(format!("reading {}: {error}", path.display())),
    };
    if !matches(&bytes) {
        return Err(format!(
            "{} does not match its row (size or SHA-256 differ): not copied",
            path.display()
        ));
    }
    to.put(&row.id, &bytes, &row.content_type)
        .await
        .map_err(|e| e.to_string())?;
    match to.get(&row.id).await.map_err(|e| e.to_string())? {
        Stored::Present(stored) if matches(&stored) => Ok(Copied::Written),
        Stored::Present(_) => Err("the stored object does not match the row's SHA-256".into()),
        Stored::Absent => Err("the stored object is missing right after it was written".into()),
    }
}

async fn page_after(conn: &mut DbConn, after: Option<&MediaId>) -> Result<Vec<Media>, MediaError> {
    let rows = with_conn!(conn, c => {
        let mut query = media::table
            .select(Media::as_select())
            .order(media::id.asc())
            .limit(PAGE)
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(media::id.gt(after.clone()));
        }
        query.load(c).await
    })
    .map_err(DbError::from)?;
    Ok(rows)
}
