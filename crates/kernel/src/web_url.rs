//! Web URLs that clients give us to store and show to others: profile links, product
//! images, avatars, preview images, a platform's address.
//!
//! One rule for every such field, checked here and nowhere else: an absolute `http` or
//! `https` URL with a host, at most [`MAX_CHARS`] characters. The value is parsed by a
//! WHATWG URL parser (the `url` crate, the parsing browsers do), and what is stored is the
//! parser's normalised form (surrounding whitespace dropped, scheme and host lower case,
//! `https://example.com` read back as `https://example.com/`, characters outside URL syntax
//! percent-encoded), so the stored string is exactly the URL that was checked. Every other
//! scheme (`javascript:`, `data:`, `vbscript:`, `file:`, `ftp:` ...) is refused, in any
//! case and with any whitespace or tabs around or inside it.
//!
//! A refusal is a [`InvalidWebUrl`] naming the field; it becomes 422 `validation_failed`
//! with that field in `details`.

use crate::error::{ApiError, FieldError};

/// The longest URL a field stores, in characters (of the input and of its normalised form).
pub const MAX_CHARS: usize = 2000;

/// Why a value is not a web URL that may be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebUrlProblem {
    /// Longer than [`MAX_CHARS`], as given or once normalised.
    #[error("must be at most {MAX_CHARS} characters")]
    TooLong,
    /// Not an absolute URL (relative, scheme-relative, malformed).
    #[error("must be an absolute http or https URL")]
    Malformed,
    /// A scheme other than `http` or `https`.
    #[error("must be an http or https URL")]
    Scheme,
    /// No host (`http://`, `https://:443/`).
    #[error("must be an http or https URL with a host")]
    NoHost,
    /// A user name or password before the host (`https://bank.example@evil.example/`):
    /// shown to people, it names one site and leads to another.
    #[error("must not carry a user name or password")]
    Credentials,
}

/// A field whose value is not a web URL that may be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidWebUrl {
    /// The field's name in the request (`url`, `image`, `preview_images`).
    pub field: &'static str,
    pub problem: WebUrlProblem,
}

impl InvalidWebUrl {
    /// The sentence for `details[].message`.
    pub fn message(&self) -> String {
        self.problem.to_string()
    }
}

impl From<InvalidWebUrl> for FieldError {
    fn from(error: InvalidWebUrl) -> Self {
        FieldError::new(error.field, error.message())
    }
}

impl From<InvalidWebUrl> for ApiError {
    fn from(error: InvalidWebUrl) -> Self {
        ApiError::validation(vec![error.into()])
    }
}

/// Checks a URL a client gave for `field` and returns the form to store.
pub fn normalize(field: &'static str, input: &str) -> Result<String, InvalidWebUrl> {
    let invalid = |problem| InvalidWebUrl { field, problem };
    let input = input.trim();
    if input.chars().count() > MAX_CHARS {
        return Err(invalid(WebUrlProblem::TooLong));
    }
    let url = url::Url::parse(input).map_err(|error| match error {
        url::ParseError::EmptyHost => invalid(WebUrlProblem::NoHost),
        _ => invalid(WebUrlProblem::Malformed),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(WebUrlProblem::Scheme));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(WebUrlProblem::NoHost));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(WebUrlProblem::Credentials));
    }
    let normalized = String::from(url);
    if normalized.len() > MAX_CHARS {
        return Err(invalid(WebUrlProblem::TooLong));
    }
    Ok(normalized)
}

/// [`normalize`] for an optional field: `None` stays `None`.
pub fn normalize_opt(
    field: &'static str,
    input: Option<&str>,
) -> Result<Option<String>, InvalidWebUrl> {
    input.map(|input| normalize(field, input)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(input: &str) -> Option<WebUrlProblem> {
        normalize("url", input).err().map(|e| e.problem)
    }

    #[test]
    fn http_and_https_urls_are_stored_normalised() {
        for (input, stored) in [
            ("https://example.com/a.png", "https://example.com/a.png"),
            ("http://example.com", "http://example.com/"),
            (
                "  HTTPS://Example.COM/A.png?x=1#top \n",
                "https://example.com/A.png?x=1#top",
            ),
            (
                "https://example.com/a b\"<>",
                "https://example.com/a%20b%22%3C%3E",
            ),
            ("https://bücher.example/", "https://xn--bcher-kva.example/"),
            ("https://127.0.0.1:8080/x", "https://127.0.0.1:8080/x"),
            ("https://[::1]/", "https://[::1]/"),
        ] {
            assert_eq!(normalize("url", input).as_deref(), Ok(stored), "{input}");
        }
    }

    #[test]
    fn other_schemes_are_refused_in_any_disguise() {
        for input in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "\u{0}javascript:alert(1)",
            "java\tscript:alert(1)",
            "java\nscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "file:///etc/passwd",
            "ftp://x",
            "mailto:a@example.com",
            "blob:https://example.com/uuid",
        ] {
            assert_eq!(problem(input), Some(WebUrlProblem::Scheme), "{input:?}");
        }
    }

    #[test]
    fn relative_hostless_and_malformed_values_are_refused() {
        for input in [
            "",
            "   ",
            "not a url",
            "/a.png",
            "//example.com/a.png",
            "https://exa mple.com",
        ] {
            assert_eq!(problem(input), Some(WebUrlProblem::Malformed), "{input:?}");
        }
        for input in ["http://", "https://", "https://:443/", "http:///"] {
            assert_eq!(problem(input), Some(WebUrlProblem::NoHost), "{input:?}");
        }
        for input in [
            "https://bank.example@evil.example/",
            "https://user:secret@example.com/",
            "https://:secret@example.com/",
        ] {
            assert_eq!(
                problem(input),
                Some(WebUrlProblem::Credentials),
                "{input:?}"
            );
        }
    }

    #[test]
    fn length_is_bounded_as_given_and_once_normalised() {
        let at_limit = format!("https://example.com/{}", "a".repeat(MAX_CHARS - 20));
        assert_eq!(at_limit.len(), MAX_CHARS);
        assert_eq!(
            normalize("url", &at_limit).as_deref(),
            Ok(at_limit.as_str())
        );
        let over = format!("{at_limit}a");
        assert_eq!(problem(&over), Some(WebUrlProblem::TooLong));
        // Short as given, too long once percent-encoded.
        let expands = format!("https://example.com/{}x", " ".repeat(1000));
        assert_eq!(problem(&expands), Some(WebUrlProblem::TooLong));
    }

    #[test]
    fn a_refusal_is_a_422_naming_the_field() {
        let error: ApiError = normalize("avatar_url", "javascript:alert(1)")
            .err()
            .map(Into::into)
            .unwrap_or_else(ApiError::internal);
        assert_eq!(
            (error.status(), error.code.as_ref()),
            (422, "validation_failed")
        );
        assert_eq!(
            error.details,
            vec![FieldError::new(
                "avatar_url",
                "must be an http or https URL"
            )]
        );
        assert_eq!(normalize_opt("image", None), Ok(None));
    }
}
