-- crate calendar: one calendar per user, its availability rules and its events.
CREATE TABLE calendars (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- JSON array of strings.
    google_calendar_ids TEXT NOT NULL DEFAULT '[]',
    -- IANA time zone the availability rules are written in.
    timezone TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX calendars_platform_id_mode_user_id_key ON calendars (platform_id, mode, user_id);

-- Weekly rules (`weekly`: weekday + local start/end) and dated overrides (`extra`: more
-- hours on a date; `off`: the date, or part of it, unavailable). Minutes since local
-- midnight; 1440 is the end of the day.
CREATE TABLE calendar_availability (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    calendar_id TEXT NOT NULL REFERENCES calendars (id),
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    weekday INTEGER,
    on_date DATE,
    start_minute INTEGER,
    end_minute INTEGER,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX calendar_availability_calendar_idx ON calendar_availability (calendar_id, position);

CREATE TABLE calendar_events (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    calendar_id TEXT NOT NULL REFERENCES calendars (id),
    title TEXT NOT NULL,
    description TEXT,
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP NOT NULL,
    timezone TEXT NOT NULL,
    kind TEXT NOT NULL,
    is_exclusive BOOLEAN NOT NULL,
    subscription_id TEXT,
    contract_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX calendar_events_calendar_starts_idx ON calendar_events (calendar_id, starts_at);
CREATE INDEX calendar_events_subscription_idx ON calendar_events (platform_id, mode, subscription_id);
