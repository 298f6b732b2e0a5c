//! Where the bytes of uploads live: [`MediaStore`]'s two backends.
//!
//! - **A directory** (`MEDIA_STORE=file`, the embedded default): one file per media id,
//!   written under a temporary name, synced, renamed into place and the directory synced.
//!   No other service is needed; every node has its own directory, so it suits one node.
//! - **A bucket of an S3-compatible object store** (`MEDIA_STORE=s3://bucket/prefix`),
//!   through the `object_store` crate: every node reads and writes the same objects, so an
//!   image uploaded through one node is served by all. An S3 `PUT` is atomic (an object is
//!   whole or absent), which gives the directory's guarantee without a rename.
//!
//! Either way the bytes are stored before the row that names them, and taken away again
//! when the row cannot be written: no row ever points at a missing or half-written object.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutOptions,
    PutPayload, RetryConfig,
};
use tokio::io::AsyncWriteExt;

use super::{MediaError, MediaId};

/// Which store holds the bytes of uploads (`MEDIA_STORE`): `file` (the default) or
/// `s3://bucket` with an optional key prefix (`s3://bucket/feria/media`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MediaLocation {
    /// One file per upload under the server's media directory (`DATA_DIR/media`).
    #[default]
    File,
    /// One object per upload in a bucket, at `prefix/med_...` (`med_...` without one).
    S3 { bucket: String, prefix: String },
}

impl FromStr for MediaLocation {
    type Err = MediaConfigError;

    fn from_str(value: &str) -> Result<MediaLocation, MediaConfigError> {
        let value = value.trim();
        if value.is_empty() || value == "file" {
            return Ok(MediaLocation::File);
        }
        let bad = |why: &str| MediaConfigError::Location {
            value: value.to_owned(),
            why: why.to_owned(),
        };
        let Some(rest) = value.strip_prefix("s3://") else {
            return Err(bad("write `file` or `s3://bucket[/prefix]`"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(bad(
                "the bucket name is 3 to 63 lower-case letters, digits, `-` and `.`, \
                 beginning and ending with a letter or digit",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            let segments_ok = prefix.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.!*'()".contains(&b))
            });
            if !segments_ok {
                return Err(bad(
                    "the prefix is `/`-separated segments of letters, digits and `-_.!*'()`, \
                     without empty, `.` or `..` segments",
                ));
            }
        }
        Ok(MediaLocation::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl fmt::Display for MediaLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaLocation::File => f.write_str("file"),
            MediaLocation::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            MediaLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// How to reach the S3-compatible store of [`MediaLocation::S3`] (`MEDIA_S3_*`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`). Its `Debug` never shows the secret.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// The server's base URL (`https://minio.internal:9000`); `None`: AWS S3 itself in
    /// `region`. Plain `http://` only when written so.
    pub endpoint: Option<String>,
    /// The region requests are signed for (`us-east-1` unless the store says otherwise).
    pub region: String,
    /// Both or neither; neither: the machine's credentials (EC2 instance metadata).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

/// A media storage setting that cannot work; the server does not start with one.
#[derive(Debug, thiserror::Error)]
pub enum MediaConfigError {
    #[error("MEDIA_STORE `{value}` is not a media store: {why}")]
    Location { value: String, why: String },
    #[error("MEDIA_S3_ENDPOINT `{value}` is not usable: {why}")]
    Endpoint { value: String, why: String },
    #[error(
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: set both, or neither to use \
         the machine's credentials"
    )]
    HalfCredentials,
    #[error("MEDIA_S3_REGION is empty")]
    NoRegion,
    #[error("the S3 client cannot be built: {0}")]
    Client(String),
}

/// Where uploaded bytes live (see the module's documentation), with the upload size limit.
/// Cheap to clone: the clones share one S3 client.
#[derive(Debug, Clone)]
pub struct MediaStore {
    backend: Backend,
    max_bytes: usize,
}

#[derive(Debug, Clone)]
enum Backend {
    Directory(PathBuf),
    Bucket(Arc<Bucket>),
}

#[derive(Debug)]
struct Bucket {
    store: Arc<dyn ObjectStore>,
    location: MediaLocation,
    /// The key prefix, `None` for the bucket's root.
    prefix: Option<ObjectPath>,
    /// Where requests go, for messages.
    endpoint: String,
}

/// What a store holds for one media id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Absent,
    Present(Bytes),
}

impl MediaStore {
    /// The embedded default: files under `dir`.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: usize) -> MediaStore {
        MediaStore {
            backend: Backend::Directory(dir.into()),
            max_bytes,
        }
    }

    /// The store `location` names: files under `dir`, or the S3 bucket reached through
    /// `s3`. Checks the settings only; [`MediaStore::check`] checks that the store answers.
    pub fn configured(
        location: &MediaLocation,
        dir: impl Into<PathBuf>,
        s3: &S3Settings,
        max_bytes: usize,
    ) -> Result<MediaStore, MediaConfigError> {
        let MediaLocation::S3 { bucket, prefix } = location else {
            return Ok(MediaStore::new(dir, max_bytes));
        };
        let region = s3.region.trim();
        if region.is_empty() {
            return Err(MediaConfigError::NoRegion);
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(region)
            // Bounded: a store that does not answer costs a request seconds, not minutes
            // (the library's default retries for three minutes).
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
            });
        let mut options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(30));
        let endpoint = match s3.endpoint.as_deref().map(str::trim) {
            Some(endpoint) if !endpoint.is_empty() => {
                let url = parse_endpoint(endpoint)?;
                options = options.with_allow_http(url.scheme() == "http");
                let endpoint = endpoint.trim_end_matches('/').to_owned();
                // Path-style requests (`endpoint/bucket/key`): what S3-compatible servers
                // answer without a wildcard DNS name per bucket.
                builder = builder
                    .with_endpoint(&endpoint)
                    .with_virtual_hosted_style_request(false);
                endpoint
            }
            _ => format!("https://s3.{region}.amazonaws.com"),
        };
        match (&s3.access_key_id, &s3.secret_access_key) {
            (Some(key), Some(secret)) if !key.is_empty() && !secret.is_empty() => {
                builder = builder
                    .with_access_key_id(key)
                    .with_secret_access_key(secret);
            }
            (None, None) => {}
            (Some(key), None) | (None, Some(key)) if key.is_empty() => {}
            _ => return Err(MediaConfigError::HalfCredentials),
        }
        let store = builder
            .with_client_options(options)
            .build()
            .map_err(|error| MediaConfigError::Client(error.to_string()))?;
        let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
        Ok(MediaStore {
            backend: Backend::Bucket(Arc::new(Bucket {
                store: Arc::new(store),
                location: location.clone(),
                prefix,
                endpoint,
            })),
            max_bytes,
        })
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Where the bytes go, for messages: `file:DIR` or `s3://bucket/prefix at ENDPOINT`.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Directory(dir) => format!("file:{}", dir.display()),
            Backend::Bucket(bucket) => format!("{} at {}", bucket.location, bucket.endpoint),
        }
    }

    /// Whether this is the S3 backend.
    pub fn is_object_store(&self) -> bool {
        matches!(self.backend, Backend::Bucket(_))
    }

    /// Checks at start-up that the store can be used: the directory can be created; the
    /// bucket exists and answers a listing with these credentials.
    pub async fn check(&self) -> Result<(), MediaError> {
        match &self.backend {
            Backend::Directory(dir) => Ok(tokio::fs::create_dir_all(dir).await?),
            Backend::Bucket(bucket) => bucket
                .store
                .list_with_delimiter(bucket.prefix.as_ref())
                .await
                .map(drop)
                .map_err(|error| MediaError::Unavailable(error.to_string())),
        }
    }

    /// Stores the bytes of `id`, whole or not at all.
    pub(super) async fn put(
        &self,
        id: &MediaId,
        bytes: &[u8],
        content_type: &str,
    ) -> Result<(), MediaError> {
        match &self.backend {
            Backend::Directory(dir) => Ok(write_durably(dir, &dir.join(id.as_str()), bytes).await?),
            Backend::Bucket(bucket) => {
                let mut attributes = Attributes::new();
                attributes.insert(Attribute::ContentType, content_type.to_owned().into());
                let options = PutOptions {
                    attributes,
                    ..PutOptions::default()
                };
                bucket
                    .store
                    .put_opts(
                        &bucket.key(id),
                        PutPayload::from(Bytes::copy_from_slice(bytes)),
                        options,
                    )
                    .await
                    .map(drop)
                    .map_err(|error| MediaError::Unavailable(error.to_string()))
            }
        }
    }

    /// The bytes stored for `id`.
    pub async fn get(&self, id: &MediaId) -> Result<Stored, MediaError> {
        match &self.backend {
            Backend::Directory(dir) => match tokio::fs::read(dir.join(id.as_str())).await {
                Ok(bytes) => Ok(Stored::Present(Bytes::from(bytes))),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Stored::Absent),
                Err(error) => Err(error.into()),
            },
            Backend::Bucket(bucket) => {
                let got = match bucket.store.get(&bucket.key(id)).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(Stored::Absent),
                    Err(error) => return Err(MediaError::Unavailable(error.to_string())),
                };
                got.bytes()
                    .await
                    .map(Stored::Present)
                    .map_err(|error| MediaError::Unavailable(error.to_string()))
            }
        }
    }

    /// Takes the bytes of `id` away (an upload whose row could not be written); a failure
    /// is logged: at worst an object nothing points at stays.
    pub(super) async fn remove(&self, id: &MediaId) {
        let removed = match &self.backend {
            Backend::Directory(dir) => tokio::fs::remove_file(dir.join(id.as_str()))
                .await
                .map_err(|error| error.to_string()),
            Backend::Bucket(bucket) => bucket
                .store
                .delete(&bucket.key(id))
                .await
                .map_err(|error| error.to_string()),
        };
        if let Err(error) = removed {
            tracing::warn!(media = %id, %error, "could not remove the bytes of an unrecorded upload");
        }
    }
}

impl Bucket {
    fn key(&self, id: &MediaId) -> ObjectPath {
        match &self.prefix {
            Some(prefix) => prefix.clone().join(id.as_str()),
            None => ObjectPath::from(id.as_str()),
        }
    }
}

/// An endpoint is an `http` or `https` URL with a host and nothing after its path, and no
/// credentials in it (they would be logged with the URL).
fn parse_endpoint(value: &str) -> Result<url::Url, MediaConfigError> {
    let bad = |why: &str| MediaConfigError::Endpoint {
        value: value.to_owned(),
        why: why.to_owned(),
    };
    let url = url::Url::parse(value).map_err(|error| bad(&error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(
            "it must begin with `https://` (or `http://` for a server without TLS)",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "it carries credentials; give them as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it has a query or fragment"));
    }
    Ok(url)
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
    fn locations_are_file_or_an_s3_bucket_with_an_optional_prefix() {
        assert_eq!(
            "file".parse::<MediaLocation>().ok(),
            Some(MediaLocation::File)
        );
        assert_eq!("".parse::<MediaLocation>().ok(), Some(MediaLocation::File));
        assert_eq!(
            "s3://feria-media".parse::<MediaLocation>().ok(),
            Some(MediaLocation::S3 {
                bucket: "feria-media".into(),
                prefix: String::new()
            })
        );
        let nested = "s3://feria-media/prod/images/"
            .parse::<MediaLocation>()
            .ok();
        assert_eq!(
            nested,
            Some(MediaLocation::S3 {
                bucket: "feria-media".into(),
                prefix: "prod/images".into()
            })
        );
        assert_eq!(
            nested.map(|n| n.to_string()).as_deref(),
            Some("s3://feria-media/prod/images")
        );
        for bad in [
            "s3://",
            "s3://Feria",
            "s3://ab",
            "s3://-feria",
            "s3://feria/a//b",
            "s3://feria/../x",
            "gs://feria",
            "/var/lib/feria/media",
            "S3://feria",
        ] {
            let error = bad.parse::<MediaLocation>().err();
            assert!(
                matches!(&error, Some(MediaConfigError::Location { value, .. }) if value == bad),
                "{bad}: {error:?}"
            );
        }
    }

    fn s3(endpoint: Option<&str>) -> S3Settings {
        S3Settings {
            endpoint: endpoint.map(str::to_owned),
            region: "us-east-1".into(),
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("wJalrXUtnFEMI/K7MDENG".into()),
        }
    }

    #[test]
    fn endpoints_are_http_urls_without_credentials_and_secrets_are_never_shown() {
        let location: MediaLocation = "s3://feria-media/m".parse().unwrap_or_default();
        for good in [
            None,
            Some("http://127.0.0.1:9000"),
            Some("https://minio.internal/"),
        ] {
            let store = MediaStore::configured(&location, "/tmp/x", &s3(good), 10);
            assert!(
                store.as_ref().is_ok_and(MediaStore::is_object_store),
                "{good:?}"
            );
        }
        for bad in [
            "minio.internal:9000",
            "ftp://minio.internal",
            "https://user:pass@minio.internal",
            "https://minio.internal/?x=1",
        ] {
            let error = MediaStore::configured(&location, "/tmp/x", &s3(Some(bad)), 10).err();
            assert!(
                matches!(&error, Some(MediaConfigError::Endpoint { value, .. }) if value == bad),
                "{bad}: {error:?}"
            );
        }
        let mut half = s3(None);
        half.secret_access_key = None;
        assert!(matches!(
            MediaStore::configured(&location, "/tmp/x", &half, 10),
            Err(MediaConfigError::HalfCredentials)
        ));
        let shown = format!(
            "{:?} {:?}",
            s3(None),
            MediaStore::configured(&location, "/tmp/x", &s3(None), 10)
        );
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        let file = MediaStore::configured(&MediaLocation::File, "/tmp/x", &half, 10);
        assert!(file.is_ok_and(|store| !store.is_object_store()));
    }
}
