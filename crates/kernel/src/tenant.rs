//! Tenancy: every tenant row carries the platform it belongs to and the mode (test or
//! live) it was written in; test and live data never mix.

use std::fmt;
use std::str::FromStr;

use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{Output, ToSql};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

crate::define_id!(
    /// A platform (tenant).
    PlatformId,
    "plat"
);

crate::define_id!(
    /// A user of a platform.
    UserId,
    "user"
);

/// Test or live: the two worlds of a platform, selected by the API key or session.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    AsExpression,
    FromSqlRow,
)]
#[serde(rename_all = "lowercase")]
#[diesel(sql_type = Text)]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mode must be `test` or `live`")]
pub struct ModeParseError;

impl FromStr for Mode {
    type Err = ModeParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "test" => Ok(Mode::Test),
            "live" => Ok(Mode::Live),
            _ => Err(ModeParseError),
        }
    }
}

impl<DB> ToSql<Text, DB> for Mode
where
    DB: diesel::backend::Backend,
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> diesel::serialize::Result {
        self.as_str().to_sql(out)
    }
}

impl<DB> FromSql<Text, DB> for Mode
where
    DB: diesel::backend::Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        let raw = String::from_sql(bytes)?;
        raw.parse()
            .map_err(|_| format!("unknown mode `{raw}` in the database").into())
    }
}

/// The tenant scope of a request: which platform, in which mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    pub platform_id: PlatformId,
    pub mode: Mode,
}

impl Tenant {
    pub fn new(platform_id: PlatformId, mode: Mode) -> Tenant {
        Tenant { platform_id, mode }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_serialise_lowercase() {
        assert_eq!("test".parse::<Mode>(), Ok(Mode::Test));
        assert!("Live".parse::<Mode>().is_err());
        assert_eq!(serde_json::to_string(&Mode::Live).unwrap(), "\"live\"");
    }
}
