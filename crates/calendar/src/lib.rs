//! Calendars: availability and events in local time.
//!
//! Each user has one calendar, created on first use: weekly availability rules and dated
//! overrides (extra hours, days off) in an IANA time zone, and events ([`entries`]:
//! custom, or tied to a subscription). Free slots are computed in UTC, exactly across daylight-saving
//! changes, from the bundled IANA tz database. Times are stored and shown in UTC; a
//! `timezone` field carries the local view where it matters, and [`tz::Zone::local_time`]
//! converts an instant for display. The calendar also renders as iCalendar ([`ics`]).
//!
//! Owns `calendars`, `calendar_availability` and `calendar_events`. Calls `users`
//! (through its public services) only. Decisions: `docs/CALENDAR.md`.

pub mod availability;
pub mod calendar;
pub mod entries;
mod error;
pub mod ics;
mod schema;
pub mod tz;

pub use availability::{AvailabilityId, AvailabilityRule, RuleInput, RuleKind, Slot};
pub use calendar::{AvailabilityChanges, AvailabilityView, CalendarId, CalendarObject, WriteMode};
pub use entries::{
    CalendarEvent, CalendarEventId, EventChanges, EventKind, NewEvent, NewSubscriptionEvent,
};
pub use error::{CalendarCode, CalendarError};
pub use tz::{LocalTime, Weekday, Zone};
