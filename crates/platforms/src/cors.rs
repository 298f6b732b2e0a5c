//! Browser origins allowed to call the API (CORS): the one check of an origin, for a
//! platform's `corsAllowedOrigins` setting and for the server-wide `CORS_ALLOWED_ORIGINS`.
//!
//! An origin is written exactly as a browser sends it in the `Origin` header (the
//! WHATWG serialisation of a URL's origin): `http` or `https`, `://`, the host in lower
//! case (an international name in its `xn--` form, an IPv6 address in brackets), and a
//! port only when it is not the scheme's default. No path (not even `/`), query,
//! fragment, user name or password. The gateway compares the header with the list byte
//! for byte, so a value written any other way would never match: it is refused, with the
//! form to write instead. `*` is refused too: a wildcard would let every site read what
//! a signed-in user's browser is answered.

use feria_kernel::FieldError;

/// The most origins one list may hold.
pub const MAX_ORIGINS: usize = 50;

/// The longest origin accepted, in bytes (a 253-byte host name, a scheme and a port).
pub const MAX_ORIGIN_BYTES: usize = 300;

/// Why a value is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginProblem {
    #[error("a wildcard is not accepted: list each origin, such as https://app.example.com")]
    Wildcard,
    #[error("must be at most {MAX_ORIGIN_BYTES} characters")]
    TooLong,
    #[error("must be an origin such as https://app.example.com (scheme://host[:port])")]
    Malformed,
    #[error("must be an http or https origin")]
    Scheme,
    #[error("must not carry a user name or password")]
    Credentials,
    /// A parseable origin written otherwise than browsers send it (a trailing `/`, a
    /// path, upper-case letters, the default port ...).
    #[error("must be written as browsers send it: {0}")]
    NotCanonical(String),
}

/// Checks one origin; returns it unchanged (it is already in the one form browsers send).
pub fn parse_origin(input: &str) -> Result<String, OriginProblem> {
    if input == "*" {
        return Err(OriginProblem::Wildcard);
    }
    if input.len() > MAX_ORIGIN_BYTES {
        return Err(OriginProblem::TooLong);
    }
    let url = url::Url::parse(input).map_err(|_| OriginProblem::Malformed)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OriginProblem::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OriginProblem::Credentials);
    }
    if url.host().is_none() {
        return Err(OriginProblem::Malformed);
    }
    let canonical = url.origin().ascii_serialization();
    if canonical != input {
        return Err(OriginProblem::NotCanonical(canonical));
    }
    Ok(canonical)
}

/// Checks a list of origins for the field `field`: each entry ([`parse_origin`]), at
/// most [`MAX_ORIGINS`] of them once duplicates are folded. Returns the list in the order
/// given, without duplicates, or one error per bad entry (`field[i]`).
pub fn check_origins(field: &str, origins: &[String]) -> Result<Vec<String>, Vec<FieldError>> {
    let mut kept: Vec<String> = Vec::with_capacity(origins.len().min(MAX_ORIGINS));
    let mut errors = Vec::new();
    for (index, origin) in origins.iter().enumerate() {
        match parse_origin(origin) {
            Ok(origin) if kept.contains(&origin) => {}
            Ok(origin) => kept.push(origin),
            Err(problem) => errors.push(FieldError::new(
                format!("{field}[{index}]"),
                problem.to_string(),
            )),
        }
    }
    if kept.len() > MAX_ORIGINS {
        errors.push(FieldError::new(
            field,
            format!("must list at most {MAX_ORIGINS} origins"),
        ));
    }
    if errors.is_empty() {
        Ok(kept)
    } else {
        Err(errors)
    }
}

/// Reads the server-wide list: origins separated by commas, spaces around each ignored,
/// empty entries skipped (an empty value is an empty list). The first bad entry is the
/// error, naming it.
pub fn parse_origin_list(value: &str) -> Result<Vec<String>, String> {
    let origins: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(str::to_owned)
        .collect();
    check_origins("origins", &origins).map_err(|errors| {
        errors
            .iter()
            .map(|error| {
                let entry = error
                    .field
                    .strip_prefix("origins[")
                    .and_then(|rest| rest.strip_suffix(']'))
                    .and_then(|index| index.parse::<usize>().ok())
                    .and_then(|index| origins.get(index));
                match entry {
                    Some(entry) => format!("`{entry}` {}", error.message),
                    None => error.message.clone(),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_as_browsers_send_them_are_accepted() {
        for origin in [
            "https://app.example.com",
            "http://localhost:3000",
            "http://127.0.0.1:8080",
            "http://[::1]:5173",
            "https://xn--bcher-kva.example",
        ] {
            assert_eq!(parse_origin(origin).as_deref(), Ok(origin));
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_form_to_write() {
        assert_eq!(parse_origin("*"), Err(OriginProblem::Wildcard));
        assert_eq!(parse_origin("null"), Err(OriginProblem::Malformed));
        assert_eq!(
            parse_origin("app.example.com"),
            Err(OriginProblem::Malformed)
        );
        assert_eq!(
            parse_origin("ftp://example.com"),
            Err(OriginProblem::Scheme)
        );
        assert_eq!(
            parse_origin("https://user:pw@example.com"),
            Err(OriginProblem::Credentials)
        );
        for (given, canonical) in [
            ("https://app.example.com/", "https://app.example.com"),
            ("https://app.example.com/path", "https://app.example.com"),
            ("https://app.example.com?q=1", "https://app.example.com"),
            ("https://App.Example.com", "https://app.example.com"),
            ("HTTPS://app.example.com", "https://app.example.com"),
            ("https://app.example.com:443", "https://app.example.com"),
            (" https://app.example.com", "https://app.example.com"),
        ] {
            assert_eq!(
                parse_origin(given),
                Err(OriginProblem::NotCanonical(canonical.into())),
                "{given}"
            );
        }
        let long = format!("https://{}.example", "a".repeat(MAX_ORIGIN_BYTES));
        assert_eq!(parse_origin(&long), Err(OriginProblem::TooLong));
    }

    #[test]
    fn lists_fold_duplicates_and_name_each_bad_entry() {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            check_origins(
                "o",
                &list(&[
                    "https://a.example",
                    "https://b.example",
                    "https://a.example"
                ])
            ),
            Ok(list(&["https://a.example", "https://b.example"]))
        );
        let errors = check_origins(
            "o",
            &list(&["https://a.example", "*", "https://b.example/"]),
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["o[1]", "o[2]"]);

        let many: Vec<String> = (0..=MAX_ORIGINS)
            .map(|i| format!("https://a{i}.example"))
            .collect();
        assert_eq!(check_origins("o", &many).unwrap_err()[0].field, "o");
        assert!(check_origins("o", &many[..MAX_ORIGINS]).is_ok());
    }

    #[test]
    fn the_server_list_is_comma_separated() {
        assert_eq!(
            parse_origin_list(" https://a.example , http://localhost:3000,,"),
            Ok(vec![
                "https://a.example".to_string(),
                "http://localhost:3000".to_string()
            ])
        );
        assert_eq!(parse_origin_list(""), Ok(vec![]));
        let error = parse_origin_list("https://a.example,https://b.example/").unwrap_err();
        assert!(error.contains("`https://b.example/`"), "{error}");
        assert!(parse_origin_list("*").is_err());
    }
}
