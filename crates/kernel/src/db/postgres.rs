//! PostgreSQL connections, over TLS when the URL asks for it.
//!
//! diesel-async's own `establish` connects with tokio-postgres's `NoTls`, so every
//! PostgreSQL connection (the request pool's, the migration's, every CLI command's) is
//! made here instead: tokio-postgres over rustls, handed to diesel-async with
//! `AsyncPgConnection::try_from_client_and_connection`. rustls is the TLS the binary
//! already has (lettre, reqwest): no OpenSSL, no libpq.
//!
//! `DATABASE_URL` takes libpq's `sslmode` and `sslrootcert` parameters with libpq's
//! meanings (https://www.postgresql.org/docs/current/libpq-ssl.html); docs/DEPLOYMENT.md,
//! "TLS to PostgreSQL", is the operator's account of the choices made here.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::{DbError, PgConn};

/// libpq's `sslmode`, less `allow` (plaintext first: never what a deployment wants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS if the server offers it, plaintext if it does not (libpq's default).
    Prefer,
    /// TLS or no connection; the certificate is not checked (unless `sslrootcert` names a
    /// file: then, as in libpq, it is `verify-ca`).
    Require,
    /// TLS, with the server's certificate signed by a CA of `sslrootcert`.
    VerifyCa,
    /// `verify-ca`, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = DbError;

    fn from_str(value: &str) -> Result<SslMode, DbError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(DbError::Config(format!(
                    "unknown sslmode `{other}` in the database URL: expected disable, prefer, \
                     require, verify-ca or verify-full"
                )));
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the CAs that sign the server's certificate come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// `sslrootcert=PATH`: a PEM file of one or more CA certificates.
    File(String),
    /// `sslrootcert=system`: the Mozilla roots compiled into the binary (webpki-roots), for
    /// a server whose certificate a public CA signed.
    System,
}

impl fmt::Display for RootCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootCert::File(path) => f.write_str(path),
            RootCert::System => f.write_str("system"),
        }
    }
}

/// How one connection is secured: the mode the URL asked for, what is actually checked
/// (require with a root certificate file is verify-ca), and the roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `sslmode` as given, or its default.
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
}

impl TlsSettings {
    /// What is checked of the server's certificate: `None` for no TLS or for TLS
    /// unchecked; `Some(false)` the chain only; `Some(true)` the chain and host name.
    fn verification(&self) -> Option<bool> {
        match (self.mode, &self.root_cert) {
            (SslMode::Disable, _) => None,
            (SslMode::VerifyFull, _) => Some(true),
            (SslMode::VerifyCa, _) => Some(false),
            // libpq: "if a root CA file exists, the behavior of sslmode=require will be the
            // same as that of verify-ca"; its code loads the file for prefer too.
            (SslMode::Prefer | SslMode::Require, Some(_)) => Some(false),
            (SslMode::Prefer | SslMode::Require, None) => None,
        }
    }
}

/// A PostgreSQL URL split into what tokio-postgres reads and the TLS parameters it does
/// not (`verify-ca`, `verify-full` and `sslrootcert` are unknown to it).
fn split_tls_parameters(url: &str) -> Result<(String, TlsSettings), DbError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut mode = None;
    let mut root_cert = None;
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = url::form_urlencoded::parse(pair.as_bytes())
            .next()
            .unwrap_or_default();
        match key.as_ref() {
            // As in libpq, a parameter given twice takes its last value.
            "sslmode" => mode = Some(value.parse::<SslMode>()?),
            "sslrootcert" => {
                root_cert = Some(if value == "system" {
                    RootCert::System
                } else if value.is_empty() {
                    return Err(DbError::Config("sslrootcert is empty".into()));
                } else {
                    RootCert::File(value.into_owned())
                })
            }
            _ => kept.push(pair),
        }
    }
    let mode = match (mode, &root_cert) {
        (Some(mode), _) => mode,
        // libpq 16: sslrootcert=system without sslmode means verify-full.
        (None, Some(RootCert::System)) => SslMode::VerifyFull,
        (None, _) => SslMode::Prefer,
    };
    match (mode, &root_cert) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            // libpq would fall back on ~/.postgresql/root.crt; a server's home directory
            // is no place for its trust roots, so the file is named or `system` is said.
            return Err(DbError::Config(format!(
                "sslmode={mode} needs sslrootcert=PATH (a PEM file of the CA that signed the \
                 server's certificate) or sslrootcert=system (the public CAs)"
            )));
        }
        (
            SslMode::Disable | SslMode::Prefer | SslMode::Require | SslMode::VerifyCa,
            Some(RootCert::System),
        ) => {
            // libpq refuses this too: the public CAs sign certificates for anyone's host
            // name, so without the host-name check they prove nothing.
            return Err(DbError::Config(format!(
                "sslmode={mode} may not be used with sslrootcert=system (use verify-full)"
            )));
        }
        _ => {}
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, TlsSettings { mode, root_cert }))
}

/// Makes PostgreSQL connections for one database URL; built once per [`super::Db`] (the
/// root certificates are read at start-up, not per connection).
pub(crate) struct PgConnector {
    config: tokio_postgres::Config,
    tls: RustlsConnect,
    settings: TlsSettings,
}

impl PgConnector {
    /// Parses the URL and reads `sslrootcert`; every mistake in either is a
    /// [`DbError::Config`] here, before any connection is tried.
    pub(crate) fn new(url: &str) -> Result<PgConnector, DbError> {
        let (rest, settings) = split_tls_parameters(url)?;
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| {
            // tokio-postgres's parse errors name the option, never the password.
            DbError::Config(format!("invalid PostgreSQL URL: {e}"))
        })?;
        config.ssl_mode(match settings.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        let tls = RustlsConnect {
            config: Arc::new(client_config(&settings)?),
        };
        Ok(PgConnector {
            config,
            tls,
            settings,
        })
    }

    pub(crate) fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// One new tokio-postgres connection, not wrapped for diesel: the caller drives it
    /// (and so receives its notifications; `crate::coherence`). Its
    /// `application_name` names it in `pg_stat_activity`.
    pub(crate) async fn connect_raw(
        &self,
        application_name: &str,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<Socket, RustlsStream>,
        ),
        String,
    > {
        let mut config = self.config.clone();
        config.application_name(application_name);
        config
            .connect(self.tls.clone())
            .await
            .map_err(|e| describe(&e, &self.settings))
    }

    /// One new connection, its driver task spawned; errors say what went wrong in an
    /// operator's terms ([`describe`]) and never carry the password.
    pub(crate) async fn connect(&self) -> Result<PgConn, String> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| describe(&e, &self.settings))?;
        PgConn::try_from_client_and_connection(client, connection)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The rustls configuration the settings call for. Built even for `disable` (tokio-postgres
/// takes one connector type whatever the mode; it is never used then).
fn client_config(settings: &TlsSettings) -> Result<ClientConfig, DbError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Config(format!("TLS set-up: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match settings.verification() {
        None => Arc::new(NoCertificateCheck(provider)),
        Some(check_host) => {
            let roots = Arc::new(root_store(settings.root_cert.as_ref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| DbError::Config(format!("TLS set-up: {e}")))?;
            if check_host {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn root_store(root_cert: Option<&RootCert>) -> Result<RootCertStore, DbError> {
    let mut store = RootCertStore::empty();
    match root_cert {
        None => {}
        Some(RootCert::System) => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(RootCert::File(path)) => {
            let unreadable = |e: &dyn fmt::Display| {
                DbError::Config(format!("cannot read sslrootcert={path}: {e}"))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
                let cert = cert.map_err(|e| unreadable(&e))?;
                store.add(cert).map_err(|e| unreadable(&e))?;
            }
            if store.is_empty() {
                return Err(DbError::Config(format!(
                    "sslrootcert={path} holds no PEM certificate"
                )));
            }
        }
    }
    Ok(store)
}

/// An operator's account of a failed connection: the TLS failures and the server's
/// refusal of plaintext in the settings' terms, anything else as tokio-postgres says it.
/// Neither names the password (tokio-postgres's messages never hold it).
fn describe(error: &tokio_postgres::Error, settings: &TlsSettings) -> String {
    if let Some(tls) = rustls_cause(error) {
        let root = settings
            .root_cert
            .as_ref()
            .map_or_else(String::new, ToString::to_string);
        return match tls {
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => match settings.root_cert {
                Some(RootCert::System) => "the PostgreSQL server's certificate is not signed by \
                                           a public CA (sslrootcert=system)"
                    .to_owned(),
                _ => format!(
                    "the PostgreSQL server's certificate is not signed by the CA in \
                     sslrootcert={root}"
                ),
            },
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected,
                presented,
            }) => format!(
                "the PostgreSQL server's certificate is not for the host name {} it was \
                 reached at (it names {}); sslmode=verify-full checks the host name",
                expected.to_str(),
                presented
                    .iter()
                    .map(|name| presented_name(name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => {
                "the PostgreSQL server's certificate is not for the host name it was reached \
                 at (host name mismatch); sslmode=verify-full checks the host name"
                    .to_owned()
            }
            other => format!(
                "TLS with the PostgreSQL server failed (sslmode={}): {other}",
                settings.mode
            ),
        };
    }
    if let Some(db) = error.as_db_error() {
        // pg_hba.conf's `hostssl` lines only: "no pg_hba.conf entry for host ..., user ...,
        // database ..., no encryption" (SQLSTATE 28000).
        if settings.mode == SslMode::Disable && db.message().contains("no encryption") {
            return format!(
                "the server requires TLS (sslmode=disable): {}",
                db.message()
            );
        }
    }
    let message = error.to_string();
    if message.contains("server does not support TLS") {
        return format!(
            "the PostgreSQL server does not offer TLS (sslmode={}); turn on its `ssl` or use \
             sslmode=prefer or disable",
            settings.mode
        );
    }
    message
}

/// A name from a certificate as webpki reports it (`DnsName("db.example.com")`): the name
/// alone, for an operator's message.
fn presented_name(name: &str) -> &str {
    match (name.find('"'), name.rfind('"')) {
        (Some(first), Some(last)) if last > first => &name[first + 1..last],
        _ => name,
    }
}

/// The rustls error somewhere in an error's causes. tokio-rustls wraps it in an
/// `io::Error`, whose `source()` skips the error it wraps, hence `get_ref`.
fn rustls_cause<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut current: Option<&'e (dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

/// `sslmode=prefer` or `require` without `sslrootcert`: encrypted, certificate unchecked
/// (libpq's meaning). The handshake's signatures are still verified, so the server holds
/// the key of the certificate it shows.
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: webpki's checks less the host name. webpki checks the chain (and validity
/// dates) before the name, so a name mismatch is reported only for a chain that passed.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres's TLS hook over tokio-rustls.
#[derive(Clone)]
struct RustlsConnect {
    config: Arc<ClientConfig>,
}

impl MakeTlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type TlsConnect = RustlsHandshake;
    type Error = io::Error;

    /// `host` is the URL's host name or address: what verify-full checks the certificate
    /// against (an IP address against the certificate's IP addresses).
    fn make_tls_connect(&mut self, host: &str) -> io::Result<RustlsHandshake> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsHandshake {
            config: self.config.clone(),
            name,
        })
    }
}

struct RustlsHandshake {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsHandshake {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let stream = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// The encrypted stream. Boxed: rustls's connection state is large, and the plaintext
/// variant of tokio-postgres's stream enum would otherwise be as large.
pub(crate) struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for RustlsStream {
    /// No channel binding (SCRAM-SHA-256 without `-PLUS`): tls-server-end-point hashes the
    /// certificate with its signature's hash, which would mean parsing X.509 here; a wrong
    /// guess would fail authentication. The certificate checks above are what bind the
    /// session to the server.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Result<(String, TlsSettings), DbError> {
        split_tls_parameters(url)
    }

    #[test]
    fn sslmode_defaults_to_prefer_and_is_taken_out_of_the_url() {
        let (rest, tls) = settings("postgres://u:p@h/db").unwrap();
        assert_eq!(rest, "postgres://u:p@h/db");
        assert_eq!(tls.mode, SslMode::Prefer);
        assert_eq!(tls.verification(), None);

        let (rest, tls) = settings(
            "postgres://u@h/db?connect_timeout=5&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u@h/db?connect_timeout=5&application_name=x"
        );
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
        assert_eq!(tls.verification(), Some(true));
    }

    #[test]
    fn require_with_a_root_certificate_is_verify_ca_as_in_libpq() {
        let (_, tls) = settings("postgres://h/db?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(tls.verification(), Some(false));
        let (_, tls) = settings("postgres://h/db?sslmode=require").unwrap();
        assert_eq!(tls.verification(), None);
        let (_, tls) = settings("postgres://h/db?sslmode=disable&sslrootcert=/ca.pem").unwrap();
        assert_eq!(tls.verification(), None);
    }

    #[test]
    fn system_roots_mean_verify_full() {
        let (_, tls) = settings("postgres://h/db?sslrootcert=system").unwrap();
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(RootCert::System));
        let error = settings("postgres://h/db?sslmode=require&sslrootcert=system").unwrap_err();
        assert!(error.to_string().contains("use verify-full"), "{error}");
    }

    #[test]
    fn certificate_names_are_shown_bare() {
        assert_eq!(
            presented_name("DnsName(\"db.feria.test\")"),
            "db.feria.test"
        );
        assert_eq!(presented_name("10.0.0.5"), "10.0.0.5");
    }

    #[test]
    fn mistakes_are_configuration_errors() {
        let error = settings("postgres://h/db?sslmode=verify_full").unwrap_err();
        assert!(matches!(error, DbError::Config(_)));
        assert!(
            error.to_string().contains("unknown sslmode `verify_full`"),
            "{error}"
        );
        assert!(settings("postgres://h/db?sslmode=allow").is_err());
        let error = settings("postgres://h/db?sslmode=verify-ca").unwrap_err();
        assert!(error.to_string().contains("needs sslrootcert"), "{error}");
        let error = PgConnector::new(
            "postgres://u:hunter2@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem",
        )
        .err()
        .unwrap();
        assert!(
            error
                .to_string()
                .contains("cannot read sslrootcert=/nonexistent/ca.pem"),
            "{error}"
        );
        assert!(!error.to_string().contains("hunter2"));
    }
}
