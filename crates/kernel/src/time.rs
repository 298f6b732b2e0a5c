//! UTC timestamps: stored as `TIMESTAMP` (UTC by convention) on both backends and put on
//! the wire as RFC 3339 with `Z` at second precision (`2023-06-21T10:00:00Z`).
//!
//! "Now" is computed in Rust, never in SQL, and truncated to microseconds: PostgreSQL keeps
//! microseconds, so a value read back equals the value written on both backends.
//!
//! [`Clock`] is where time-dependent code reads "now" when tests must move it
//! ([`ManualClock`]).

use std::fmt;
use std::sync::Arc;

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

/// Where code whose outcome depends on time passing (expiries, caches, rate limits) reads
/// the time: the system's clock, or a [`ManualClock`] that tests move. A test then says
/// "eleven minutes later" instead of sleeping and hoping that a loaded machine runs the
/// next step before a deadline.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<ManualTime>>);

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// The current instant, truncated to microseconds (see [`Timestamp::now`]).
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            None => Timestamp::now(),
            Some(manual) => {
                let elapsed = Duration::try_from(manual.elapsed()).unwrap_or(Duration::MAX);
                Timestamp::from_offset(manual.start.to_offset().saturating_add(elapsed))
            }
        }
    }

    /// The current monotonic instant, for measuring how long ago something was.
    pub fn instant(&self) -> std::time::Instant {
        match &self.0 {
            None => std::time::Instant::now(),
            Some(manual) => manual
                .start_instant
                .checked_add(manual.elapsed())
                .unwrap_or(manual.start_instant),
        }
    }

    pub fn is_manual(&self) -> bool {
        self.0.is_some()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::System"),
            Some(manual) => write!(f, "Clock::Manual(+{:?})", manual.elapsed()),
        }
    }
}

/// A clock for tests: it stands still at the moment it was made until [`advance`]d.
/// Hand [`ManualClock::clock`] to the code under test and keep this to move it.
///
/// [`advance`]: ManualClock::advance
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<ManualTime>);

#[derive(Debug)]
struct ManualTime {
    start: Timestamp,
    start_instant: std::time::Instant,
    /// Nanoseconds advanced since the start.
    elapsed: std::sync::atomic::AtomicU64,
}

impl ManualTime {
    fn elapsed(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.elapsed.load(std::sync::atomic::Ordering::Acquire))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at the current time.
    pub fn new() -> ManualClock {
        ManualClock(Arc::new(ManualTime {
            start: Timestamp::now(),
            start_instant: std::time::Instant::now(),
            elapsed: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// The clock to hand to the code under test; it moves when this one does.
    pub fn clock(&self) -> Clock {
        Clock(Some(self.0.clone()))
    }

    /// Moves the time forward by `by` (saturating after some 584 years).
    pub fn advance(&self, by: std::time::Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self.0.elapsed.fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |current| Some(current.saturating_add(nanos)),
        );
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

    #[test]
    fn a_manual_clock_stands_still_until_advanced() {
        let manual = ManualClock::new();
        let clock = manual.clock();
        assert!(clock.is_manual() && !Clock::system().is_manual());
        let (t0, i0) = (clock.now(), clock.instant());
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!((clock.now(), clock.instant()), (t0, i0));
        manual.advance(std::time::Duration::from_secs(90));
        assert_eq!(clock.now().since(t0), Duration::seconds(90));
        assert_eq!(clock.instant() - i0, std::time::Duration::from_secs(90));
        // Clones share the time.
        manual.clone().advance(std::time::Duration::from_secs(10));
        assert_eq!(clock.now().since(t0), Duration::seconds(100));
    }
}
