//! Outgoing mail, through lettre: each message as an `.eml` file in a directory (the
//! embedded default, and what black-box tests read), or through an SMTP relay.

use std::path::{Path, PathBuf};

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why a message could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail address `{0}`")]
    InvalidAddress(String),
    #[error("invalid mail configuration: {0}")]
    Config(String),
    #[error("cannot send mail: {0}")]
    Send(String),
}

impl From<MailError> for crate::ApiError {
    fn from(error: MailError) -> Self {
        match error {
            MailError::InvalidAddress(address) => crate::ApiError::invalid_field(
                "email",
                format!("`{address}` is not a mail address"),
            ),
            other => {
                tracing::error!(error = %other, "mail delivery failed");
                crate::ApiError::coded(
                    crate::KernelCode::MailUnavailable,
                    "mail cannot be sent right now; retry shortly",
                )
            }
        }
    }
}

/// A plain-text message to one recipient.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[derive(Clone)]
enum Transport {
    Directory(AsyncFileTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Sends mail. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
    directory: Option<PathBuf>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Writes each message as `<uuid>.eml` into `directory` (created if absent).
    pub fn directory(directory: impl Into<PathBuf>, from: &str) -> Result<Mailer, MailError> {
        let directory = directory.into();
        std::fs::create_dir_all(&directory).map_err(|e| {
            MailError::Config(format!("cannot create {}: {e}", directory.display()))
        })?;
        Ok(Mailer {
            from: parse_mailbox(from)?,
            transport: Transport::Directory(AsyncFileTransport::new(&directory)),
            directory: Some(directory),
        })
    }

    /// Sends through the relay at `url`: `smtp://host:25` (plain), `smtp://host:587?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465`.
    pub fn smtp(url: &str, from: &str) -> Result<Mailer, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Config(format!("invalid SMTP_URL: {e}")))?
            .build();
        Ok(Mailer {
            from: parse_mailbox(from)?,
            transport: Transport::Smtp(transport),
            directory: None,
        })
    }

    /// The directory messages are written to, when that is the transport.
    pub fn mail_dir(&self) -> Option<&Path> {
        self.directory.as_deref()
    }

    pub async fn send(&self, mail: OutgoingMail) -> Result<(), MailError> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(parse_mailbox(&mail.to)?)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body)
            .map_err(|e| MailError::Send(e.to_string()))?;
        match &self.transport {
            Transport::Directory(transport) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
            Transport::Smtp(transport) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
        }
    }
}

fn parse_mailbox(address: &str) -> Result<Mailbox, MailError> {
    address
        .parse()
        .map_err(|_| MailError::InvalidAddress(address.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn directory_transport_writes_one_eml_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let mailer =
            Mailer::directory(dir.path().join("mail"), "Feria <no-reply@feria.localhost>").unwrap();
        mailer
            .send(OutgoingMail {
                to: "ana@example.com".into(),
                subject: "Your code".into(),
                body: "123456".into(),
            })
            .await
            .unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("mail"))
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1);
        let path = files[0].as_ref().unwrap().path();
        assert_eq!(path.extension().and_then(|e| e.to_str()), Some("eml"));
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("To: ana@example.com"));
        assert!(text.contains("Subject: Your code"));
        assert!(text.contains("123456"));
    }

    #[test]
    fn bad_addresses_are_rejected() {
        assert!(matches!(
            Mailer::directory(std::env::temp_dir(), "not an address"),
            Err(MailError::InvalidAddress(_))
        ));
    }
}
