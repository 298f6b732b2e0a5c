//! Calendars: availability and events in local time.
//!
//! Each user has one calendar: weekly availability rules in an IANA time zone, dated
//! overrides, and events (custom or tied to a subscription). Free slots are computed in UTC
//! across daylight-saving changes.
//!
//! Planned surface (calendar issue). May call `platforms`, `users`, `auth`.
