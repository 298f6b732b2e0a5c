//! PostgreSQL over TLS: `DATABASE_URL`'s `sslmode` and `sslrootcert` against a server that
//! accepts TLS connections only (pg_hba.conf `hostssl` lines), with a CA and a server
//! certificate these tests make. What connects, what is refused, and that a refusal at
//! start-up names its cause and not the password.
//!
//! The server's certificate names `db.feria.test` alone: reached as `db.feria.test` (with
//! `hostaddr=127.0.0.1`, so no name look-up) its host name matches; reached as 127.0.0.1
//! it does not, which is the difference between verify-ca and verify-full.
//!
//! These tests run their own PostgreSQL cluster, whichever backend the suite runs on.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use diesel_async::RunQueryDsl;
use feria_kernel::{Db, DbConfig};
use feria_testkit::TestApp;
use feria_testkit::postgres_server::{PostgresServer, ServerTls};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The host name in the server's certificate.
const HOST: &str = "db.feria.test";
/// In every URL, to check that no error repeats it (trust authentication ignores it).
const PASSWORD: &str = "hunter2-not-for-logs";

/// A CA, and a server certificate for `HOST` it signed.
struct Pki {
    ca_pem: String,
    server: ServerTls,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki() -> Pki {
    let ca = new_ca("Feria test CA");
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![HOST.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, HOST);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: ServerTls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
    }
}

/// The TLS-only cluster, and the CA file that signed its certificate.
struct Fixture {
    postgres: PostgresServer,
    dir: tempfile::TempDir,
    ca_file: PathBuf,
}

impl Fixture {
    fn start() -> Fixture {
        let pki = pki();
        let postgres = PostgresServer::start_new_tls(&pki.server);
        let dir = tempfile::tempdir().unwrap();
        let ca_file = write(dir.path(), "root.crt", &pki.ca_pem);
        Fixture {
            postgres,
            dir,
            ca_file,
        }
    }

    /// A URL of the cluster reached at 127.0.0.1, with `params` (`sslmode=...`).
    fn by_address(&self, params: &str) -> String {
        let url = format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/postgres",
            self.postgres.port()
        );
        with_params(url, params)
    }

    /// A URL of the cluster reached by its certificate's host name.
    fn by_name(&self, params: &str) -> String {
        let url = format!(
            "postgres://postgres:{PASSWORD}@{HOST}:{}/postgres?hostaddr=127.0.0.1",
            self.postgres.port()
        );
        with_params(url, params)
    }

    fn ca(&self) -> String {
        self.ca_file.display().to_string()
    }
}

fn with_params(url: String, params: &str) -> String {
    match (params.is_empty(), url.contains('?')) {
        (true, _) => url,
        (false, true) => format!("{url}&{params}"),
        (false, false) => format!("{url}?{params}"),
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

async fn connect(url: &str) -> Result<Db, String> {
    Db::connect(&DbConfig::new(url))
        .await
        .map_err(|e| e.to_string())
}

/// Whether the backend serving a pooled connection of `db` speaks TLS (`pg_stat_ssl`).
async fn speaks_tls(db: &Db) -> bool {
    let mut conn = db.conn().await.unwrap();
    feria_kernel::with_conn!(&mut conn, c => {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
        ))
        .get_result::<bool>(c)
        .await
    })
    .unwrap()
}

/// The refusal, checked to name its cause and not the password.
async fn refused(url: &str) -> String {
    let error = match connect(url).await {
        Ok(_) => panic!("connected with {}", feria_kernel::db::redact(url)),
        Err(error) => error,
    };
    assert!(!error.contains(PASSWORD), "the password is in: {error}");
    eprintln!("refused: {error}");
    error
}

#[tokio::test]
async fn each_sslmode_connects_or_is_refused_as_libpq_would() {
    let tls = Fixture::start();
    let ca = tls.ca();

    // require: encrypted, certificate unchecked (its host name and CA are not known here).
    let db = connect(&tls.by_address("sslmode=require")).await.unwrap();
    assert!(speaks_tls(&db).await);

    // prefer (the default when sslmode is absent): TLS when the server offers it.
    let db = connect(&tls.by_address("")).await.unwrap();
    assert!(
        speaks_tls(&db).await,
        "sslmode=prefer connected without TLS"
    );
    let db = connect(&tls.by_address("sslmode=prefer")).await.unwrap();
    assert!(speaks_tls(&db).await);

    // verify-ca: the chain is checked, the host name is not.
    let db = connect(&tls.by_address(&format!("sslmode=verify-ca&sslrootcert={ca}")))
        .await
        .unwrap();
    assert!(speaks_tls(&db).await);

    // verify-full at the address the certificate does not name: refused.
    let error = refused(&tls.by_address(&format!("sslmode=verify-full&sslrootcert={ca}"))).await;
    assert!(
        error
            .contains("not for the host name 127.0.0.1 it was reached at (it names db.feria.test)"),
        "not a host name mismatch: {error}"
    );

    // verify-full by the certificate's name: the whole server runs over it (the pool, the
    // migration connection, the test kit's database administration) and answers.
    let app = TestApp::builder()
        .postgres_server(&tls.by_name(&format!("sslmode=verify-full&sslrootcert={ca}")))
        .spawn()
        .await;
    app.get("/healthz").await.assert_status(200);
    assert!(speaks_tls(app.server_db()).await);
    drop(app);

    // disable against a server that accepts TLS only.
    let error = refused(&tls.by_address("sslmode=disable")).await;
    assert!(
        error.contains("the server requires TLS (sslmode=disable)"),
        "{error}"
    );
    assert!(error.contains("no encryption"), "{error}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_stops_the_server_at_start_up() {
    let tls = Fixture::start();
    let other_ca = write(
        tls.dir.path(),
        "other-ca.crt",
        &new_ca("Someone else's CA").pem(),
    );
    let other_ca = other_ca.display().to_string();

    for mode in ["verify-full", "verify-ca", "require"] {
        // require with a root certificate file is verify-ca, as in libpq.
        let error = refused(&tls.by_name(&format!("sslmode={mode}&sslrootcert={other_ca}"))).await;
        assert!(
            error.contains(&format!(
                "the PostgreSQL server's certificate is not signed by the CA in sslrootcert={other_ca}"
            )),
            "sslmode={mode}: {error}"
        );
    }

    // The server itself refuses to start, saying why, with the URL shown without password.
    let url = tls.by_name(&format!("sslmode=verify-full&sslrootcert={other_ca}"));
    let mut config = feria::Config::new(tls.dir.path().join("data"), url);
    config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.handle_signals = false;
    let error = match feria::Server::build(config).await {
        Ok(_) => panic!("the server started with a certificate of another CA"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("not signed by the CA in sslrootcert="),
        "{error}"
    );
    eprintln!("feria::Server::build: {error}");
    assert!(error.contains("postgres:***@"), "{error}");
    assert!(!error.contains(PASSWORD), "the password is in: {error}");
}

#[tokio::test]
async fn tls_settings_are_checked_before_connecting() {
    // No server needed: every one of these is refused while reading the URL.
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/postgres");
    for (params, expected) in [
        ("sslmode=verify_full", "unknown sslmode `verify_full`"),
        (
            "sslmode=verify-full",
            "sslmode=verify-full needs sslrootcert",
        ),
        (
            "sslmode=verify-ca&sslrootcert=/nonexistent/root.crt",
            "cannot read sslrootcert=/nonexistent/root.crt",
        ),
        (
            "sslmode=require&sslrootcert=system",
            "may not be used with sslrootcert=system",
        ),
    ] {
        let error = refused(&format!("{url}?{params}")).await;
        assert!(error.contains("invalid database configuration"), "{error}");
        assert!(error.contains(expected), "{params}: {error}");
    }
}
