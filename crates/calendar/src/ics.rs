//! The calendar as an iCalendar (RFC 5545) document: one `VEVENT` per event, times in
//! UTC (`DTSTART:20260309T140000Z`), text escaped, lines folded at 75 octets with CRLF.

use feria_kernel::{DbConn, Tenant, Timestamp, UserId};

use crate::calendar::{self, CalendarObject};
use crate::error::CalendarError;

/// The media type of the document.
pub const CONTENT_TYPE: &str = "text/calendar; charset=utf-8";

/// Longest physical line, in octets, without its CRLF (RFC 5545 §3.1).
const MAX_LINE: usize = 75;

/// The signed-in user's calendar (created on first use) as an iCalendar document.
pub async fn for_user(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
) -> Result<String, CalendarError> {
    let calendar = calendar::get(conn, tenant, user_id, None).await?;
    Ok(render(&calendar, Timestamp::now()))
}

/// Renders the calendar and its events; `now` stamps the document (`DTSTAMP`).
pub fn render(calendar: &CalendarObject, now: Timestamp) -> String {
    let mut out = String::new();
    let mut line = |content: String| {
        fold_into(&mut out, &content);
    };
    line("BEGIN:VCALENDAR".into());
    line("VERSION:2.0".into());
    line("PRODID:-//Feria//Calendar 1.0//EN".into());
    line("CALSCALE:GREGORIAN".into());
    line("METHOD:PUBLISH".into());
    line(format!("X-WR-CALNAME:{}", escape_text(&calendar.name)));
    if !calendar.description.is_empty() {
        line(format!(
            "X-WR-CALDESC:{}",
            escape_text(&calendar.description)
        ));
    }
    line(format!("X-WR-TIMEZONE:{}", escape_text(&calendar.timezone)));
    for event in &calendar.events {
        line("BEGIN:VEVENT".into());
        line(format!("UID:{}@feria", event.id));
        line(format!("DTSTAMP:{}", ics_time(now)));
        line(format!("DTSTART:{}", ics_time(event.start)));
        line(format!("DTEND:{}", ics_time(event.end)));
        line(format!("CREATED:{}", ics_time(event.created)));
        line(format!("LAST-MODIFIED:{}", ics_time(event.updated)));
        line(format!("SUMMARY:{}", escape_text(&event.title)));
        if let Some(description) = &event.description {
            line(format!("DESCRIPTION:{}", escape_text(description)));
        }
        line(format!(
            "CATEGORIES:{}",
            escape_text(&event.kind.as_str().to_uppercase())
        ));
        line("STATUS:CONFIRMED".into());
        line("TRANSP:OPAQUE".into());
        line(format!("X-FERIA-KIND:{}", event.kind.as_str()));
        line(format!(
            "X-FERIA-EXCLUSIVE:{}",
            if event.exclusive { "TRUE" } else { "FALSE" }
        ));
        line(format!("X-FERIA-TIMEZONE:{}", escape_text(&event.timezone)));
        if let Some(subscription) = &event.subscription_id {
            line(format!(
                "X-FERIA-SUBSCRIPTION:{}",
                escape_text(subscription)
            ));
        }
        if let Some(contract) = &event.contract_id {
            line(format!("X-FERIA-CONTRACT:{}", escape_text(contract)));
        }
        line("END:VEVENT".into());
    }
    line("END:VCALENDAR".into());
    out
}

/// `20260309T140000Z`.
fn ics_time(at: Timestamp) -> String {
    // The wire form is `2026-03-09T14:00:00Z`; drop the separators.
    at.to_rfc3339()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

/// Escapes a TEXT value (RFC 5545 §3.3.11): backslash, semicolon, comma and newlines;
/// other control characters, which TEXT may not hold, are dropped.
pub fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends one content line, folded (RFC 5545 §3.1): physical lines of at most 75
/// octets, continuation lines starting with a space, never splitting a UTF-8 character.
/// A break is also kept from falling right after a space or tab: lenient parsers trim
/// line ends and would lose it.
fn fold_into(out: &mut String, line: &str) {
    let mut rest = line;
    let mut first = true;
    loop {
        let budget = if first { MAX_LINE } else { MAX_LINE - 1 };
        if !first {
            out.push(' ');
        }
        if rest.len() <= budget {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        }
        let mut cut = budget;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut nicer = cut;
        while nicer > 1 && matches!(rest.as_bytes()[nicer - 1], b' ' | b'\t') {
            nicer -= 1;
            while !rest.is_char_boundary(nicer) {
                nicer -= 1;
            }
        }
        if nicer > 1 {
            cut = nicer;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n");
        rest = &rest[cut..];
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(line: &str) -> String {
        let mut out = String::new();
        fold_into(&mut out, line);
        out
    }

    fn unfold(text: &str) -> String {
        text.replace("\r\n ", "")
            .trim_end_matches("\r\n")
            .to_owned()
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape_text("a,b;c\\d\r\ne\nf\u{7}g"),
            "a\\,b\\;c\\\\d\\ne\\nfg"
        );
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_characters() {
        let line = format!("SUMMARY:{}", "ñandú ".repeat(40));
        let out = folded(line.trim_end());
        for physical in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(
                physical.len() <= MAX_LINE,
                "{physical:?} is {}",
                physical.len()
            );
            assert!(!physical.ends_with(' '), "{physical:?}");
        }
        assert_eq!(unfold(&out), line.trim_end());
        assert_eq!(folded("SHORT:x"), "SHORT:x\r\n");
    }

    #[test]
    fn times_are_utc_basic_format() {
        assert_eq!(
            ics_time(Timestamp::parse("2026-03-09T14:00:00Z").unwrap()),
            "20260309T140000Z"
        );
    }
}
