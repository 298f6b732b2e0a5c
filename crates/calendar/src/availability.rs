//! Availability: weekly rules and dated overrides in the calendar's time zone, their
//! validation, and the free slots they leave in a UTC range once events are subtracted.

use diesel::prelude::*;
use feria_kernel::{FieldError, Mode, PlatformId, Timestamp};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::CalendarError;
use crate::schema::calendar_availability;
use crate::tz::{Weekday, Zone};

feria_kernel::define_id!(
    /// One availability rule of a calendar.
    AvailabilityId,
    "avail"
);

/// Most rules one calendar may have.
pub const MAX_RULES: usize = 200;
/// Longest range of `GET /calendars/user/{user_id}/availability`, in days.
pub const MAX_RANGE_DAYS: i64 = 62;
/// Minutes in a day: `24:00`, the end of the day.
const END_OF_DAY: i32 = 24 * 60;

/// The kind of an availability rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// Every week on `weekday`, from `start` to `end` local time.
    Weekly,
    /// Extra hours on one `date`, from `start` to `end` local time.
    Extra,
    /// Not available on `date`: the whole day, or from `start` to `end` when given.
    Off,
}

impl RuleKind {
    fn as_str(self) -> &'static str {
        match self {
            RuleKind::Weekly => "weekly",
            RuleKind::Extra => "extra",
            RuleKind::Off => "off",
        }
    }

    fn parse(value: &str) -> Option<RuleKind> {
        match value {
            "weekly" => Some(RuleKind::Weekly),
            "extra" => Some(RuleKind::Extra),
            "off" => Some(RuleKind::Off),
            _ => None,
        }
    }
}

/// An availability rule as a client sends it. Times are local wall-clock times in the
/// calendar's `timezone`, `HH:MM`, with `24:00` allowed as an end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"type": "weekly", "weekday": "monday", "start": "09:00", "end": "17:00"}))]
pub struct RuleInput {
    #[serde(rename = "type")]
    pub kind: RuleKind,
    /// For `weekly` rules.
    pub weekday: Option<Weekday>,
    /// For `extra` and `off` rules: the local date, `YYYY-MM-DD`.
    pub date: Option<String>,
    /// Local start, `HH:MM`. Required except for a whole day `off`.
    pub start: Option<String>,
    /// Local end, `HH:MM` (`24:00` for the end of the day), after `start`.
    pub end: Option<String>,
}

/// An availability rule as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "avail_01HZX6FQJ5N6E7T2M3A4B5C6D7", "type": "weekly", "weekday": "monday", "date": null, "start": "09:00", "end": "17:00"}))]
pub struct AvailabilityRule {
    pub id: AvailabilityId,
    #[serde(rename = "type")]
    pub kind: RuleKind,
    pub weekday: Option<Weekday>,
    /// `YYYY-MM-DD`, for `extra` and `off`.
    pub date: Option<String>,
    /// `HH:MM` local time; `null` for a whole day off.
    pub start: Option<String>,
    /// `HH:MM` local time; `null` for a whole day off.
    pub end: Option<String>,
}

/// A rule once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Weekly {
        weekday: Weekday,
        start: i32,
        end: i32,
    },
    Extra {
        date: Date,
        start: i32,
        end: i32,
    },
    /// `span` is `None` for the whole day.
    Off {
        date: Date,
        span: Option<(i32, i32)>,
    },
}

impl Rule {
    fn kind(&self) -> RuleKind {
        match self {
            Rule::Weekly { .. } => RuleKind::Weekly,
            Rule::Extra { .. } => RuleKind::Extra,
            Rule::Off { .. } => RuleKind::Off,
        }
    }

    /// The local minutes it covers (`0..1440` for a whole day off).
    fn span(&self) -> (i32, i32) {
        match *self {
            Rule::Weekly { start, end, .. } | Rule::Extra { start, end, .. } => (start, end),
            Rule::Off { span, .. } => span.unwrap_or((0, END_OF_DAY)),
        }
    }

    fn describe(&self) -> String {
        let (start, end) = self.span();
        let when = match self {
            Rule::Weekly { weekday, .. } => weekday.as_str().to_owned(),
            Rule::Extra { date, .. } | Rule::Off { date, .. } => date.to_string(),
        };
        format!(
            "{} {when} {}–{}",
            self.kind().as_str(),
            format_minutes(start),
            format_minutes(end)
        )
    }

    /// Whether two rules apply to the same day and cover common minutes in a way that
    /// contradicts or duplicates: weekly with weekly on one weekday, and any two dated
    /// rules on one date. Extra hours may overlap weekly hours (they add up).
    fn conflicts_with(&self, other: &Rule) -> bool {
        let same_day = match (self, other) {
            (Rule::Weekly { weekday: a, .. }, Rule::Weekly { weekday: b, .. }) => a == b,
            (
                Rule::Extra { date: a, .. } | Rule::Off { date: a, .. },
                Rule::Extra { date: b, .. } | Rule::Off { date: b, .. },
            ) => a == b,
            _ => false,
        };
        let (a_start, a_end) = self.span();
        let (b_start, b_end) = other.span();
        same_day && a_start < b_end && b_start < a_end
    }
}

/// `HH:MM` from minutes since midnight.
pub fn format_minutes(minutes: i32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Minutes since midnight from `HH:MM` (`00:00`–`23:59`, and `24:00` when `end`).
fn parse_minutes(value: &str, end: bool) -> Option<i32> {
    let bytes = value.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return None;
    }
    let digits = |a: u8, b: u8| -> Option<i32> {
        (a.is_ascii_digit() && b.is_ascii_digit())
            .then(|| i32::from(a - b'0') * 10 + i32::from(b - b'0'))
    };
    let hours = digits(bytes[0], bytes[1])?;
    let minutes = digits(bytes[3], bytes[4])?;
    match (hours, minutes) {
        (0..=23, 0..=59) => Some(hours * 60 + minutes),
        (24, 0) if end => Some(END_OF_DAY),
        _ => None,
    }
}

/// A local date from `YYYY-MM-DD` (exactly that form).
pub fn parse_date(value: &str) -> Option<Date> {
    let bytes = value.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shaped {
        return None;
    }
    value.parse::<Date>().ok()
}

/// Validates a full set of rules; every problem is reported with its field
/// (`availability[2].end`).
pub fn validate_rules(inputs: &[RuleInput]) -> Result<Vec<Rule>, CalendarError> {
    let mut errors = Vec::new();
    if inputs.len() > MAX_RULES {
        return Err(CalendarError::invalid(
            "availability",
            format!("at most {MAX_RULES} rules"),
        ));
    }
    let mut rules: Vec<(usize, Rule)> = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let field = |name: &str| format!("availability[{index}].{name}");
        let mut fail =
            |name: &str, message: &str| errors.push(FieldError::new(field(name), message));
        let times = match (&input.start, &input.end) {
            (Some(start), Some(end)) => {
                let start_minutes = parse_minutes(start, false);
                let end_minutes = parse_minutes(end, true);
                if start_minutes.is_none() {
                    fail("start", "must be a local time HH:MM (00:00 to 23:59)");
                }
                if end_minutes.is_none() {
                    fail("end", "must be a local time HH:MM (00:01 to 24:00)");
                }
                match (start_minutes, end_minutes) {
                    (Some(s), Some(e)) if e <= s => {
                        fail("end", "must be after start");
                        None
                    }
                    (Some(s), Some(e)) => Some(Some((s, e))),
                    _ => None,
                }
            }
            (None, None) if input.kind == RuleKind::Off => Some(None),
            (None, _) => {
                fail("start", "is required");
                None
            }
            (_, None) => {
                fail("end", "is required");
                None
            }
        };
        let weekday = match (input.kind, input.weekday) {
            (RuleKind::Weekly, None) => {
                fail("weekday", "is required for weekly rules");
                None
            }
            (RuleKind::Weekly, Some(day)) => Some(day),
            (_, Some(_)) => {
                fail(
                    "weekday",
                    "only weekly rules have a weekday; dated rules use date",
                );
                None
            }
            (_, None) => None,
        };
        let date = match (input.kind, input.date.as_deref()) {
            (RuleKind::Weekly, Some(_)) => {
                fail("date", "weekly rules have no date; use type extra or off");
                None
            }
            (RuleKind::Weekly, None) => None,
            (_, None) => {
                fail("date", "is required for extra and off rules");
                None
            }
            (_, Some(raw)) => {
                let parsed = parse_date(raw);
                if parsed.is_none() {
                    fail("date", "must be a date YYYY-MM-DD");
                }
                parsed
            }
        };
        let rule = match (input.kind, times, weekday, date) {
            (RuleKind::Weekly, Some(Some((start, end))), Some(weekday), _) => Some(Rule::Weekly {
                weekday,
                start,
                end,
            }),
            (RuleKind::Extra, Some(Some((start, end))), _, Some(date)) => {
                Some(Rule::Extra { date, start, end })
            }
            (RuleKind::Off, Some(span), _, Some(date)) => Some(Rule::Off { date, span }),
            _ => None,
        };
        if let Some(rule) = rule {
            if let Some((other_index, other)) = rules.iter().find(|(_, r)| r.conflicts_with(&rule))
            {
                errors.push(FieldError::new(
                    format!("availability[{index}]"),
                    format!(
                        "{} overlaps availability[{other_index}] ({})",
                        rule.describe(),
                        other.describe()
                    ),
                ));
            }
            rules.push((index, rule));
        }
    }
    if errors.is_empty() {
        Ok(rules.into_iter().map(|(_, rule)| rule).collect())
    } else {
        Err(CalendarError::Invalid(errors))
    }
}

// ---------------------------------------------------------------------------------------
// Storage

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = calendar_availability)]
pub(crate) struct RuleRow {
    pub id: AvailabilityId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub calendar_id: crate::calendar::CalendarId,
    pub position: i32,
    pub kind: String,
    pub weekday: Option<i32>,
    pub on_date: Option<time::Date>,
    pub start_minute: Option<i32>,
    pub end_minute: Option<i32>,
    pub created_at: Timestamp,
}

fn to_time_date(date: Date) -> Option<time::Date> {
    let month = time::Month::try_from(u8::try_from(date.month()).ok()?).ok()?;
    time::Date::from_calendar_date(
        i32::from(date.year()),
        month,
        u8::try_from(date.day()).ok()?,
    )
    .ok()
}

fn from_time_date(date: time::Date) -> Option<Date> {
    Date::new(
        i16::try_from(date.year()).ok()?,
        i8::try_from(u8::from(date.month())).ok()?,
        i8::try_from(date.day()).ok()?,
    )
    .ok()
}

impl RuleRow {
    pub(crate) fn new(
        tenant: &feria_kernel::Tenant,
        calendar_id: &crate::calendar::CalendarId,
        position: usize,
        rule: &Rule,
        now: Timestamp,
    ) -> RuleRow {
        let (weekday, on_date, span) = match *rule {
            Rule::Weekly {
                weekday,
                start,
                end,
            } => (Some(weekday.number()), None, Some((start, end))),
            Rule::Extra { date, start, end } => (None, to_time_date(date), Some((start, end))),
            Rule::Off { date, span } => (None, to_time_date(date), span),
        };
        RuleRow {
            id: AvailabilityId::new(),
            platform_id: tenant.platform_id.clone(),
            mode: tenant.mode,
            calendar_id: calendar_id.clone(),
            position: i32::try_from(position).unwrap_or(i32::MAX),
            kind: rule.kind().as_str().to_owned(),
            weekday,
            on_date,
            start_minute: span.map(|(s, _)| s),
            end_minute: span.map(|(_, e)| e),
            created_at: now,
        }
    }

    /// The validated rule; `None` for a row this version cannot read (logged).
    pub(crate) fn rule(&self) -> Option<Rule> {
        let span = match (self.start_minute, self.end_minute) {
            (Some(s), Some(e)) => Some((s, e)),
            _ => None,
        };
        let date = self.on_date.and_then(from_time_date);
        let rule = match RuleKind::parse(&self.kind)? {
            RuleKind::Weekly => {
                let (start, end) = span?;
                Rule::Weekly {
                    weekday: Weekday::from_number(self.weekday?)?,
                    start,
                    end,
                }
            }
            RuleKind::Extra => {
                let (start, end) = span?;
                Rule::Extra {
                    date: date?,
                    start,
                    end,
                }
            }
            RuleKind::Off => Rule::Off { date: date?, span },
        };
        Some(rule)
    }

    pub(crate) fn to_api(&self) -> Option<AvailabilityRule> {
        let rule = self.rule()?;
        let (weekday, date, span) = match rule {
            Rule::Weekly {
                weekday,
                start,
                end,
            } => (Some(weekday), None, Some((start, end))),
            Rule::Extra { date, start, end } => (None, Some(date.to_string()), Some((start, end))),
            Rule::Off { date, span } => (None, Some(date.to_string()), span),
        };
        Some(AvailabilityRule {
            id: self.id.clone(),
            kind: rule.kind(),
            weekday,
            date,
            start: span.map(|(s, _)| format_minutes(s)),
            end: span.map(|(_, e)| format_minutes(e)),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Free slots

/// A free interval, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Slot {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Sorts and merges half-open intervals, dropping empty ones.
fn normalize(mut intervals: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    intervals.retain(|(start, end)| start < end);
    intervals.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(intervals.len());
    for (start, end) in intervals {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// `keep` minus `remove`; both normalised.
fn subtract(keep: &[(i64, i64)], remove: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &(start, end) in keep {
        let mut cursor = start;
        for &(r_start, r_end) in remove {
            if r_end <= cursor {
                continue;
            }
            if r_start >= end {
                break;
            }
            if r_start > cursor {
                out.push((cursor, r_start));
            }
            cursor = cursor.max(r_end);
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            out.push((cursor, end));
        }
    }
    out
}

/// The free slots in `[from, to)` (unix seconds): for each local date touching the range,
/// the weekly hours of its weekday and its extra hours, minus its hours off, turned into
/// UTC with [`Zone::wall_to_utc`] (exact across daylight-saving changes); then clipped to
/// the range, minus `busy` (the calendar's events). Adjacent slots are merged.
pub fn free_slots(
    zone: &Zone,
    rules: &[Rule],
    busy: &[(i64, i64)],
    from: i64,
    to: i64,
) -> Vec<(i64, i64)> {
    let (Some(first), Some(last)) = (zone.local_date(from), zone.local_date(to)) else {
        return Vec::new();
    };
    // A day either side: a local day may begin before `from` in UTC and reach into it.
    let (Ok(mut day), Ok(last)) = (first.yesterday(), last.tomorrow()) else {
        return Vec::new();
    };
    let mut open: Vec<(i64, i64)> = Vec::new();
    while day <= last {
        let weekday = Weekday::from_jiff(day.weekday());
        let mut day_open = Vec::new();
        let mut day_off = Vec::new();
        let wall = |start: i32, end: i32| -> Vec<(i64, i64)> {
            let at = |minutes: i32| match minutes {
                END_OF_DAY => day.tomorrow().ok().map(|next| next.at(0, 0, 0, 0)),
                m => Some(day.at(
                    i8::try_from(m / 60).unwrap_or(0),
                    i8::try_from(m % 60).unwrap_or(0),
                    0,
                    0,
                )),
            };
            match (at(start), at(end)) {
                (Some(s), Some(e)) => zone.wall_to_utc(s, e),
                _ => Vec::new(),
            }
        };
        for rule in rules {
            match *rule {
                Rule::Weekly {
                    weekday: w,
                    start,
                    end,
                } if w == weekday => day_open.extend(wall(start, end)),
                Rule::Extra { date, start, end } if date == day => {
                    day_open.extend(wall(start, end))
                }
                Rule::Off { date, span } if date == day => match span {
                    Some((start, end)) => day_off.extend(wall(start, end)),
                    None => day_off.extend(zone.whole_day(day)),
                },
                _ => {}
            }
        }
        open.extend(subtract(&normalize(day_open), &normalize(day_off)));
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    let clipped: Vec<(i64, i64)> = normalize(open)
        .into_iter()
        .map(|(start, end)| (start.max(from), end.min(to)))
        .collect();
    subtract(&normalize(clipped), &normalize(busy.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i64 {
        Timestamp::parse(s).unwrap().unix()
    }

    fn weekly(weekday: &str, start: &str, end: &str) -> RuleInput {
        RuleInput {
            kind: RuleKind::Weekly,
            weekday: serde_json::from_value(serde_json::json!(weekday)).unwrap(),
            date: None,
            start: Some(start.into()),
            end: Some(end.into()),
        }
    }

    fn dated(kind: RuleKind, date: &str, span: Option<(&str, &str)>) -> RuleInput {
        RuleInput {
            kind,
            weekday: None,
            date: Some(date.into()),
            start: span.map(|s| s.0.into()),
            end: span.map(|s| s.1.into()),
        }
    }

    fn fields(error: CalendarError) -> Vec<String> {
        match error {
            CalendarError::Invalid(details) => details.into_iter().map(|d| d.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn times_and_dates_parse_strictly() {
        assert_eq!(parse_minutes("09:30", false), Some(570));
        assert_eq!(parse_minutes("24:00", true), Some(1440));
        for bad in ["24:00", "9:30", "09:60", "25:00", "0930", "09:3a", ""] {
            assert_eq!(parse_minutes(bad, false), None, "{bad}");
        }
        assert!(parse_date("2026-03-08").is_some());
        for bad in ["2026-02-30", "20260308", "2026-3-8", "2026-03-08T00:00"] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn rules_are_validated_field_by_field() {
        let ok = validate_rules(&[
            weekly("monday", "09:00", "12:00"),
            weekly("monday", "12:00", "17:00"),
            weekly("tuesday", "00:00", "24:00"),
            dated(RuleKind::Extra, "2026-03-14", Some(("10:00", "12:00"))),
            dated(RuleKind::Off, "2026-03-10", None),
        ])
        .unwrap();
        assert_eq!(ok.len(), 5);

        let errors = fields(
            validate_rules(&[
                weekly("monday", "17:00", "09:00"),
                RuleInput {
                    weekday: None,
                    ..weekly("monday", "09:00", "10:00")
                },
                dated(RuleKind::Extra, "2026-13-01", Some(("10:00", "12:00"))),
                dated(RuleKind::Extra, "2026-03-01", None),
            ])
            .unwrap_err(),
        );
        assert_eq!(
            errors,
            vec![
                "availability[0].end",
                "availability[1].weekday",
                "availability[2].date",
                "availability[3].start",
            ]
        );
    }

    #[test]
    fn overlapping_rules_are_refused_but_extra_hours_may_extend_weekly_ones() {
        let errors = fields(
            validate_rules(&[
                weekly("monday", "09:00", "12:00"),
                weekly("monday", "11:00", "13:00"),
            ])
            .unwrap_err(),
        );
        assert_eq!(errors, vec!["availability[1]"]);
        let errors = fields(
            validate_rules(&[
                dated(RuleKind::Off, "2026-03-10", None),
                dated(RuleKind::Extra, "2026-03-10", Some(("10:00", "11:00"))),
            ])
            .unwrap_err(),
        );
        assert_eq!(errors, vec!["availability[1]"]);
        assert!(
            validate_rules(&[
                weekly("monday", "09:00", "12:00"),
                dated(RuleKind::Extra, "2026-03-09", Some(("11:00", "14:00"))),
            ])
            .is_ok()
        );
    }

    #[test]
    fn interval_arithmetic() {
        assert_eq!(
            normalize(vec![(5, 7), (1, 3), (3, 4), (6, 9), (10, 10)]),
            vec![(1, 4), (5, 9)]
        );
        assert_eq!(
            subtract(&[(0, 10), (20, 30)], &[(2, 3), (5, 22), (29, 40)]),
            vec![(0, 2), (3, 5), (22, 29)]
        );
        assert_eq!(subtract(&[(0, 10)], &[]), vec![(0, 10)]);
        assert_eq!(subtract(&[(0, 10)], &[(0, 10)]), vec![]);
    }

    #[test]
    fn slots_keep_local_hours_across_spring_forward() {
        let ny = Zone::parse("America/New_York").unwrap();
        let rules = validate_rules(&[
            weekly("friday", "09:00", "17:00"),
            weekly("monday", "09:00", "17:00"),
            weekly("sunday", "01:00", "04:00"),
        ])
        .unwrap();
        let busy = [(ts("2026-03-09T14:00:00Z"), ts("2026-03-09T15:00:00Z"))];
        let slots = free_slots(
            &ny,
            &rules,
            &busy,
            ts("2026-03-06T00:00:00Z"),
            ts("2026-03-10T00:00:00Z"),
        );
        assert_eq!(
            slots,
            vec![
                (ts("2026-03-06T14:00:00Z"), ts("2026-03-06T22:00:00Z")),
                (ts("2026-03-08T06:00:00Z"), ts("2026-03-08T08:00:00Z")),
                (ts("2026-03-09T13:00:00Z"), ts("2026-03-09T14:00:00Z")),
                (ts("2026-03-09T15:00:00Z"), ts("2026-03-09T21:00:00Z")),
            ]
        );
    }

    #[test]
    fn overrides_add_and_remove_hours_and_the_range_clips() {
        let madrid = Zone::parse("Europe/Madrid").unwrap();
        let rules = validate_rules(&[
            weekly("monday", "09:00", "17:00"),
            weekly("tuesday", "09:00", "17:00"),
            dated(RuleKind::Off, "2026-06-01", None),
            dated(RuleKind::Off, "2026-06-02", Some(("12:00", "13:00"))),
            dated(RuleKind::Extra, "2026-06-06", Some(("10:00", "24:00"))),
        ])
        .unwrap();
        let slots = free_slots(
            &madrid,
            &rules,
            &[],
            ts("2026-06-01T00:00:00Z"),
            ts("2026-06-06T20:00:00Z"),
        );
        assert_eq!(
            slots,
            vec![
                (ts("2026-06-02T07:00:00Z"), ts("2026-06-02T10:00:00Z")),
                (ts("2026-06-02T11:00:00Z"), ts("2026-06-02T15:00:00Z")),
                (ts("2026-06-06T08:00:00Z"), ts("2026-06-06T20:00:00Z")),
            ]
        );
    }
}
