//! The server's secret key (`FERIA_SECRET_KEY`): the keyring stored secrets are sealed
//! with, and what happens without one (docs/DEPLOYMENT.md, "Secrets at rest").
//!
//! - Set: parsed (64 hex digits or base64 of 32 bytes), with `FERIA_SECRET_KEY_PREVIOUS`
//!   during a rotation.
//! - Unset on SQLite (the embedded default, `make run`, one machine): the key in
//!   `DATA_DIR/secret.key`, generated there (mode 0600) on first start with a loud warning.
//!   The database file alone then reveals nothing; the data directory as a whole does.
//! - Unset on PostgreSQL: the start stops. Several nodes must share one key, and a key
//!   made up by each node would seal secrets the others cannot open.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use feria_kernel::Backend;
use feria_kernel::sealed::{self, Keyring};

use crate::config::SecretKeySettings;

/// The file holding the embedded default's key, under the data directory.
pub fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join("secret.key")
}

/// The keyring of these settings on this backend.
pub fn keyring(
    keys: &SecretKeySettings,
    backend: Backend,
    data_dir: &Path,
) -> anyhow::Result<Keyring> {
    let previous = keys
        .previous
        .as_deref()
        .map(sealed::parse_key)
        .transpose()
        .context("FERIA_SECRET_KEY_PREVIOUS")?;
    if let Some(current) = keys.current.as_deref() {
        let current = sealed::parse_key(current).context("FERIA_SECRET_KEY")?;
        return Ok(Keyring::new(&current, previous.as_ref()));
    }
    if previous.is_some() {
        bail!("FERIA_SECRET_KEY_PREVIOUS is set without FERIA_SECRET_KEY: set the new key too");
    }
    match backend {
        Backend::Postgres => bail!(
            "FERIA_SECRET_KEY is required with PostgreSQL: it seals webhook signing secrets \
             and receipt signing keys, and every node must hold the same one. Make one with \
             `feria secrets generate-key` (docs/DEPLOYMENT.md, \"Secrets at rest\")"
        ),
        Backend::Sqlite => {
            let path = key_file(data_dir);
            let key = load_or_create(&path)?;
            Ok(Keyring::new(&key, None))
        }
    }
}

fn load_or_create(path: &Path) -> anyhow::Result<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return sealed::parse_key(&text).with_context(|| format!("{}", path.display()));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let key = sealed::generate_key();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{key}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::warn!(
                path = %path.display(),
                "FERIA_SECRET_KEY is not set: generated a secret key into {}. It seals the \
                 webhook signing secrets and receipt signing keys in the database; keep it \
                 with the data directory, and set FERIA_SECRET_KEY in production \
                 (docs/DEPLOYMENT.md, \"Secrets at rest\")",
                path.display()
            );
        }
        // Another process (a second command on the same data directory) made it first.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error).with_context(|| format!("creating {}", path.display())),
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    sealed::parse_key(&text).with_context(|| format!("{}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_without_a_key_makes_one_once_and_postgres_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let none = SecretKeySettings::default();
        let first = keyring(&none, Backend::Sqlite, dir.path()).unwrap();
        let again = keyring(&none, Backend::Sqlite, dir.path()).unwrap();
        assert_eq!(first.current_id(), again.current_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_file(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let error = keyring(&none, Backend::Postgres, dir.path()).unwrap_err();
        assert!(error.to_string().contains("FERIA_SECRET_KEY is required"));
    }

    #[test]
    fn a_configured_key_wins_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let keys = SecretKeySettings {
            current: Some("11".repeat(32)),
            previous: Some("22".repeat(32)),
        };
        let ring = keyring(&keys, Backend::Postgres, dir.path()).unwrap();
        assert!(ring.previous_id().is_some());
        assert!(!key_file(dir.path()).exists());
        let bad = SecretKeySettings {
            current: Some("nope".into()),
            previous: None,
        };
        let error = keyring(&bad, Backend::Sqlite, dir.path()).unwrap_err();
        assert_eq!(error.to_string(), "FERIA_SECRET_KEY");
        let orphan = SecretKeySettings {
            current: None,
            previous: Some("22".repeat(32)),
        };
        assert!(keyring(&orphan, Backend::Sqlite, dir.path()).is_err());
    }
}
