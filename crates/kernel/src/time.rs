//! UTC timestamps: stored as `TIMESTAMP` (UTC by convention) on both backends and put on
//! the wire as RFC 3339 with `Z` at second precision (`2023-06-21T10:00:00Z`).
//!
//! "Now" is computed in Rust, never in SQL, and truncated to microseconds: PostgreSQL keeps
//! microseconds, so a value read back equals the value written on both backends.

use std::fmt;

use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{Output, ToSql};
use diesel::sql_types;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// An instant in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = sql_types::Timestamp)]
pub struct Timestamp(PrimitiveDateTime);

/// Why a string is not a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an RFC 3339 date-time such as 2023-06-21T10:00:00Z")]
pub struct TimestampParseError;

impl Timestamp {
    /// The current instant, truncated to microseconds.
    pub fn now() -> Self {
        Self::from_offset(OffsetDateTime::now_utc())
    }

    /// Converts any offset date-time to UTC, truncated to microseconds.
    pub fn from_offset(value: OffsetDateTime) -> Self {
        let utc = value.to_offset(UtcOffset::UTC);
        let micros = utc.microsecond();
        let truncated = utc.replace_microsecond(micros).unwrap_or(utc);
        Timestamp(PrimitiveDateTime::new(truncated.date(), truncated.time()))
    }

    /// Seconds since the Unix epoch.
    pub fn from_unix(seconds: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .map(Self::from_offset)
    }

    pub fn unix(&self) -> i64 {
        self.to_offset().unix_timestamp()
    }

    pub fn to_offset(&self) -> OffsetDateTime {
        self.0.assume_utc()
    }

    /// Parses RFC 3339 with any offset (converted to UTC).
    pub fn parse(value: &str) -> Result<Self, TimestampParseError> {
        OffsetDateTime::parse(value, &Rfc3339)
            .map(Self::from_offset)
            .map_err(|_| TimestampParseError)
    }

    /// The wire form: `2023-06-21T10:00:00Z` (seconds precision).
    pub fn to_rfc3339(&self) -> String {
        let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        // The format has no component that can fail for a valid date-time; fall back to
        // the full RFC 3339 form rather than panic if it ever did.
        self.0
            .format(&format)
            .unwrap_or_else(|_| self.to_offset().format(&Rfc3339).unwrap_or_default())
    }

    /// `self + duration`, saturating at the calendar's ends.
    pub fn add(&self, duration: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration))
    }

    /// `self - other`.
    pub fn since(&self, other: Timestamp) -> Duration {
        self.0 - other.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .examples([serde_json::Value::String("2023-06-21T10:00:00Z".into())])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

impl<DB> ToSql<sql_types::Timestamp, DB> for Timestamp
where
    DB: diesel::backend::Backend,
    PrimitiveDateTime: ToSql<sql_types::Timestamp, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> diesel::serialize::Result {
        self.0.to_sql(out)
    }
}

impl<DB> FromSql<sql_types::Timestamp, DB> for Timestamp
where
    DB: diesel::backend::Backend,
    PrimitiveDateTime: FromSql<sql_types::Timestamp, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        PrimitiveDateTime::from_sql(bytes).map(Timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_utc_seconds_with_z() {
        let t = Timestamp::parse("2023-06-21T12:00:00.123456+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2023-06-21T10:00:00Z");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2023-06-21T10:00:00Z\""
        );
    }

    #[test]
    fn parse_rejects_non_rfc3339() {
        assert!(Timestamp::parse("2023-06-21 10:00:00").is_err());
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(serde_json::from_str::<Timestamp>("\"2023-06-21\"").is_err());
    }

    #[test]
    fn now_is_truncated_to_microseconds() {
        let now = Timestamp::now();
        assert_eq!(now.to_offset().nanosecond() % 1_000, 0);
    }

    #[test]
    fn arithmetic_and_unix_round_trip() {
        let t = Timestamp::from_unix(1_687_341_600).unwrap();
        assert_eq!(t.to_rfc3339(), "2023-06-21T10:00:00Z");
        assert_eq!(t.add(Duration::hours(1)).since(t), Duration::hours(1));
        assert_eq!(t.unix(), 1_687_341_600);
    }
}
