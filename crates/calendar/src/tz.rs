//! Time zones: IANA names checked against the bundled tz database, wall-clock intervals
//! turned into UTC across daylight-saving changes, and the local view of an instant.
//!
//! The tz database is bundled into the binary (jiff's `tzdb-bundle-always`): the same
//! answers on every machine, with or without `/usr/share/zoneinfo`. See `docs/CALENDAR.md`.

use jiff::Timestamp as JiffTimestamp;
use jiff::civil::{Date, DateTime, Weekday as JiffWeekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use feria_kernel::Timestamp;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The longest accepted zone name (the longest IANA name is about 30 characters).
const MAX_ZONE_NAME: usize = 64;

/// A known IANA time zone, with its canonical name (`america/new_york` →
/// `America/New_York`).
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    /// The zone with this IANA name, or `None` when the tz database does not know it.
    pub fn parse(name: &str) -> Option<Zone> {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_ZONE_NAME {
            return None;
        }
        let tz = TimeZone::get(name).ok()?;
        let canonical = tz.iana_name().unwrap_or(name).to_owned();
        Some(Zone {
            name: canonical,
            tz,
        })
    }

    /// UTC, the fallback when nothing names a zone.
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".to_owned(),
            tz: TimeZone::UTC,
        }
    }

    /// The canonical IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local calendar date at `unix` seconds.
    pub fn local_date(&self, unix: i64) -> Option<Date> {
        let instant = JiffTimestamp::from_second(unix).ok()?;
        Some(instant.to_zoned(self.tz.clone()).date())
    }

    /// Every instant (UTC, unix seconds, half-open intervals) whose local wall-clock time
    /// lies in `[start, end)`.
    ///
    /// This is exact across offset changes: on a spring-forward day the skipped hour has
    /// no instants, so a boundary inside it lands on the transition; on a fall-back day
    /// the repeated hour happens twice and both occurrences are included (which can give
    /// two intervals).
    pub fn wall_to_utc(&self, start: DateTime, end: DateTime) -> Vec<(i64, i64)> {
        let (Some(start_naive), Some(end_naive)) = (naive_seconds(start), naive_seconds(end))
        else {
            return Vec::new();
        };
        if end_naive <= start_naive {
            return Vec::new();
        }
        // UTC offsets stay within ±26 hours, so the instants sought lie within this window;
        // split it at the zone's transitions and solve `t + offset ∈ [start, end)` on each
        // piece, where the offset is constant.
        let low = start_naive - 2 * DAY;
        let high = end_naive + 2 * DAY;
        let mut cuts = vec![low];
        if let Ok(from) = JiffTimestamp::from_second(low) {
            for transition in self.tz.following(from) {
                let at = transition.timestamp().as_second();
                if at >= high {
                    break;
                }
                if at > low {
                    cuts.push(at);
                }
            }
        }
        cuts.push(high);
        let mut out: Vec<(i64, i64)> = Vec::new();
        for piece in cuts.windows(2) {
            let (piece_start, piece_end) = (piece[0], piece[1]);
            let Ok(at) = JiffTimestamp::from_second(piece_start) else {
                continue;
            };
            let offset = i64::from(self.tz.to_offset(at).seconds());
            let from = piece_start.max(start_naive - offset);
            let to = piece_end.min(end_naive - offset);
            if from < to {
                match out.last_mut() {
                    Some(last) if last.1 >= from => last.1 = last.1.max(to),
                    _ => out.push((from, to)),
                }
            }
        }
        out
    }

    /// The instants of the local day `date` (from its midnight to the next), across any
    /// offset change that day.
    pub fn whole_day(&self, date: Date) -> Vec<(i64, i64)> {
        match date.tomorrow() {
            Ok(next) => self.wall_to_utc(date.at(0, 0, 0, 0), next.at(0, 0, 0, 0)),
            Err(_) => Vec::new(),
        }
    }

    /// The local view of an instant in this zone.
    pub fn local_time(&self, at: Timestamp) -> Option<LocalTime> {
        let instant = JiffTimestamp::from_second(at.unix()).ok()?;
        let zoned = instant.to_zoned(self.tz.clone());
        let info = self.tz.to_offset_info(instant);
        Some(LocalTime {
            date: Timestamp::from_unix(at.unix())?,
            timezone: self.name.clone(),
            local: zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            local_date: zoned.strftime("%Y-%m-%d").to_string(),
            local_time: zoned.strftime("%H:%M:%S").to_string(),
            weekday: Weekday::from_jiff(zoned.weekday()),
            offset: zoned.strftime("%:z").to_string(),
            abbreviation: info.abbreviation().to_owned(),
            dst: info.dst().is_dst(),
        })
    }
}

/// Seconds of a wall-clock date-time read as if it were UTC.
fn naive_seconds(at: DateTime) -> Option<i64> {
    TimeZone::UTC
        .to_timestamp(at)
        .ok()
        .map(JiffTimestamp::as_second)
}

/// A day of the week.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    /// ISO number: Monday 1 … Sunday 7.
    pub fn number(self) -> i32 {
        match self {
            Weekday::Monday => 1,
            Weekday::Tuesday => 2,
            Weekday::Wednesday => 3,
            Weekday::Thursday => 4,
            Weekday::Friday => 5,
            Weekday::Saturday => 6,
            Weekday::Sunday => 7,
        }
    }

    pub fn from_number(number: i32) -> Option<Weekday> {
        Some(match number {
            1 => Weekday::Monday,
            2 => Weekday::Tuesday,
            3 => Weekday::Wednesday,
            4 => Weekday::Thursday,
            5 => Weekday::Friday,
            6 => Weekday::Saturday,
            7 => Weekday::Sunday,
            _ => return None,
        })
    }

    pub fn from_jiff(day: JiffWeekday) -> Weekday {
        match day {
            JiffWeekday::Monday => Weekday::Monday,
            JiffWeekday::Tuesday => Weekday::Tuesday,
            JiffWeekday::Wednesday => Weekday::Wednesday,
            JiffWeekday::Thursday => Weekday::Thursday,
            JiffWeekday::Friday => Weekday::Friday,
            JiffWeekday::Saturday => Weekday::Saturday,
            JiffWeekday::Sunday => Weekday::Sunday,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Monday => "monday",
            Weekday::Tuesday => "tuesday",
            Weekday::Wednesday => "wednesday",
            Weekday::Thursday => "thursday",
            Weekday::Friday => "friday",
            Weekday::Saturday => "saturday",
            Weekday::Sunday => "sunday",
        }
    }
}

/// A UTC instant as seen on the clocks of a time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "date": "2023-06-21T10:00:00Z",
    "timezone": "Europe/Madrid",
    "local": "2023-06-21T12:00:00+02:00",
    "localDate": "2023-06-21",
    "localTime": "12:00:00",
    "weekday": "wednesday",
    "offset": "+02:00",
    "abbreviation": "CEST",
    "dst": true
}))]
pub struct LocalTime {
    /// The instant, in UTC.
    pub date: Timestamp,
    /// The IANA zone it is shown in.
    pub timezone: String,
    /// The local date-time with its UTC offset (RFC 3339).
    pub local: String,
    /// The local calendar date, `YYYY-MM-DD`.
    pub local_date: String,
    /// The local wall-clock time, `HH:MM:SS`.
    pub local_time: String,
    pub weekday: Weekday,
    /// The UTC offset in force at that instant, `+HH:MM`.
    pub offset: String,
    /// The zone's abbreviation at that instant (`EST`, `EDT`, `CEST`), as the tz
    /// database gives it.
    pub abbreviation: String,
    /// Whether daylight-saving time is in force at that instant.
    pub dst: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i64 {
        Timestamp::parse(s).unwrap().unix()
    }

    fn date(y: i16, m: i8, d: i8) -> Date {
        Date::new(y, m, d).unwrap()
    }

    #[test]
    fn names_are_checked_and_canonicalised() {
        assert_eq!(
            Zone::parse("america/new_york").unwrap().name(),
            "America/New_York"
        );
        assert_eq!(Zone::parse("UTC").unwrap().name(), "UTC");
        for bad in ["", "Mars/Olympus_Mons", "../../etc/passwd", "EST+5", "   "] {
            assert!(Zone::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn an_ordinary_day_is_one_interval_at_the_days_offset() {
        let ny = Zone::parse("America/New_York").unwrap();
        let day = date(2026, 3, 5);
        assert_eq!(
            ny.wall_to_utc(day.at(9, 0, 0, 0), day.at(17, 0, 0, 0)),
            vec![(ts("2026-03-05T14:00:00Z"), ts("2026-03-05T22:00:00Z"))]
        );
        let summer = date(2026, 3, 9);
        assert_eq!(
            ny.wall_to_utc(summer.at(9, 0, 0, 0), summer.at(17, 0, 0, 0)),
            vec![(ts("2026-03-09T13:00:00Z"), ts("2026-03-09T21:00:00Z"))]
        );
    }

    #[test]
    fn the_skipped_hour_of_spring_forward_has_no_instants() {
        let ny = Zone::parse("America/New_York").unwrap();
        let day = date(2026, 3, 8);
        // 01:00–04:00 local lasts two real hours: 02:00–03:00 does not exist.
        assert_eq!(
            ny.wall_to_utc(day.at(1, 0, 0, 0), day.at(4, 0, 0, 0)),
            vec![(ts("2026-03-08T06:00:00Z"), ts("2026-03-08T08:00:00Z"))]
        );
        // A start inside the gap begins at the transition (03:00 EDT).
        assert_eq!(
            ny.wall_to_utc(day.at(2, 30, 0, 0), day.at(5, 0, 0, 0)),
            vec![(ts("2026-03-08T07:00:00Z"), ts("2026-03-08T09:00:00Z"))]
        );
        // Entirely inside the gap: nothing.
        assert_eq!(
            ny.wall_to_utc(day.at(2, 0, 0, 0), day.at(2, 30, 0, 0)),
            vec![]
        );
        // The whole day is 23 hours long.
        let whole = ny.whole_day(day);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].1 - whole[0].0, 23 * 3600);
    }

    #[test]
    fn the_repeated_hour_of_fall_back_happens_twice() {
        let ny = Zone::parse("America/New_York").unwrap();
        let day = date(2026, 11, 1);
        // 00:00–01:30: 00:00–01:30 EDT, then 01:00–01:30 again in EST.
        assert_eq!(
            ny.wall_to_utc(day.at(0, 0, 0, 0), day.at(1, 30, 0, 0)),
            vec![
                (ts("2026-11-01T04:00:00Z"), ts("2026-11-01T05:30:00Z")),
                (ts("2026-11-01T06:00:00Z"), ts("2026-11-01T06:30:00Z")),
            ]
        );
        // 00:00–03:00 is four real hours, one interval.
        assert_eq!(
            ny.wall_to_utc(day.at(0, 0, 0, 0), day.at(3, 0, 0, 0)),
            vec![(ts("2026-11-01T04:00:00Z"), ts("2026-11-01T08:00:00Z"))]
        );
        let whole = ny.whole_day(day);
        assert_eq!(whole[0].1 - whole[0].0, 25 * 3600);
    }

    #[test]
    fn zones_east_of_utc_and_half_hour_offsets() {
        let kolkata = Zone::parse("Asia/Kolkata").unwrap();
        let day = date(2026, 1, 1);
        assert_eq!(
            kolkata.wall_to_utc(day.at(0, 0, 0, 0), day.at(1, 0, 0, 0)),
            vec![(ts("2025-12-31T18:30:00Z"), ts("2025-12-31T19:30:00Z"))]
        );
        assert_eq!(
            kolkata.local_date(ts("2025-12-31T18:30:00Z")),
            Some(date(2026, 1, 1))
        );
    }

    #[test]
    fn local_time_shows_offset_abbreviation_and_dst() {
        let madrid = Zone::parse("Europe/Madrid").unwrap();
        let local = madrid
            .local_time(Timestamp::parse("2023-06-21T10:00:00Z").unwrap())
            .unwrap();
        assert_eq!(local.local, "2023-06-21T12:00:00+02:00");
        assert_eq!(local.offset, "+02:00");
        assert_eq!(local.abbreviation, "CEST");
        assert!(local.dst);
        assert_eq!(local.weekday, Weekday::Wednesday);
        let winter = madrid
            .local_time(Timestamp::parse("2023-12-21T23:30:00Z").unwrap())
            .unwrap();
        assert_eq!(winter.local, "2023-12-22T00:30:00+01:00");
        assert_eq!(winter.local_date, "2023-12-22");
        assert!(!winter.dst);
    }
}
