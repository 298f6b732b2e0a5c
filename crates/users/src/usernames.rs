//! Usernames made from free text ("José Ñúñez" → `jose_nunez`), unique on a platform.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{DbConn, DbError, Tenant, with_conn};
use rand::Rng;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::UserError;
use crate::schema::users;

/// Longest base kept from the text, leaving room for a suffix within the 40-character limit.
const MAX_BASE_LEN: usize = 30;
/// Alternatives offered when the username is taken.
pub const SUGGESTIONS: usize = 5;

/// A username made from text, whether it is free on the platform, and free alternatives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UsernameSuggestion {
    /// The username made from the text.
    pub username: String,
    /// Whether `username` is free on the platform (always true without a platform).
    pub available: bool,
    /// Free alternatives: empty when `username` is available.
    pub suggestions: Vec<String>,
}

/// The slug of `text`: transliterated to ASCII, lower case, runs of anything else than
/// letters and digits turned into one `_`, at most 30 characters, padded to the minimum
/// of 3 characters. `None` when the text has no letters or digits at all.
pub fn slugify(text: &str) -> Option<String> {
    let ascii = deunicode::deunicode(text).to_lowercase();
    let mut slug = String::with_capacity(ascii.len().min(MAX_BASE_LEN));
    let mut pending_separator = false;
    for ch in ascii.chars() {
        if ch.is_ascii_alphanumeric() {
            if pending_separator && !slug.is_empty() {
                slug.push('_');
            }
            pending_separator = false;
            slug.push(ch);
        } else {
            pending_separator = true;
        }
        if slug.len() >= MAX_BASE_LEN {
            break;
        }
    }
    let slug = slug.trim_end_matches('_').to_owned();
    if slug.is_empty() {
        return None;
    }
    Some(if slug.len() < 3 {
        format!("{slug}{}", &"000"[..3 - slug.len()])
    } else {
        slug
    })
}

/// Makes a username from `text`; with a tenant, checks it against the platform's users in
/// that mode and offers free alternatives when it is taken.
pub async fn suggest(
    conn: &mut DbConn,
    tenant: Option<&Tenant>,
    text: &str,
) -> Result<UsernameSuggestion, UserError> {
    let username = slugify(text).ok_or_else(|| UserError::Invalid {
        field: "text",
        message: "must contain at least one letter or digit".into(),
    })?;
    let Some(tenant) = tenant else {
        return Ok(UsernameSuggestion {
            username,
            available: true,
            suggestions: Vec::new(),
        });
    };
    if taken(conn, tenant, std::slice::from_ref(&username))
        .await?
        .is_empty()
    {
        return Ok(UsernameSuggestion {
            username,
            available: true,
            suggestions: Vec::new(),
        });
    }
    // Short numeric suffixes first (what people pick), then random ones, checked in one query.
    let mut rng = rand::rng();
    let mut candidates: Vec<String> = (1..=SUGGESTIONS)
        .map(|n| format!("{username}{n}"))
        .collect();
    candidates.extend((0..3 * SUGGESTIONS).map(|_| {
        let n: u32 = rng.random_range(10..10_000);
        format!("{username}_{n}")
    }));
    candidates.dedup();
    let taken = taken(conn, tenant, &candidates).await?;
    let mut suggestions: Vec<String> = candidates
        .into_iter()
        .filter(|candidate| !taken.contains(candidate))
        .collect();
    suggestions.truncate(SUGGESTIONS);
    Ok(UsernameSuggestion {
        username,
        available: false,
        suggestions,
    })
}

/// Which of `candidates` are taken on the tenant.
async fn taken(
    conn: &mut DbConn,
    tenant: &Tenant,
    candidates: &[String],
) -> Result<Vec<String>, UserError> {
    let taken: Vec<Option<String>> = with_conn!(conn, c => {
        users::table
            .filter(users::platform_id.eq(&tenant.platform_id))
            .filter(users::mode.eq(tenant.mode))
            .filter(users::username.eq_any(candidates))
            .select(users::username)
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(taken.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_becomes_a_valid_username() {
        assert_eq!(slugify("John Doe").as_deref(), Some("john_doe"));
        assert_eq!(slugify("  José Ñúñez!! ").as_deref(), Some("jose_nunez"));
        assert_eq!(slugify("Ålesund--Kafé").as_deref(), Some("alesund_kafe"));
        assert_eq!(slugify("北京").as_deref(), Some("bei_jing"));
        assert_eq!(slugify("Al").as_deref(), Some("al0"));
        assert_eq!(slugify("!!!"), None);
        assert_eq!(slugify(""), None);
        let long = slugify(&"abc ".repeat(50)).unwrap();
        assert!(long.len() <= MAX_BASE_LEN && !long.ends_with('_'), "{long}");
        for text in ["John Doe", "José Ñúñez", "Al", "北京", &"x".repeat(100)] {
            let slug = slugify(text).unwrap();
            assert!(crate::user::check_username(&slug).is_ok(), "{slug}");
            assert!(crate::user::check_username(&format!("{slug}_9999")).is_ok());
        }
    }
}
