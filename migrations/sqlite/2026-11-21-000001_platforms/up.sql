-- crate platforms: the tenants and their waitlists.
CREATE TABLE platforms (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    domain TEXT NOT NULL,
    url TEXT,
    logo TEXT,
    -- Percent in hundredths (2.5 % = 250), so it stays an integer.
    platform_fee_bps BIGINT NOT NULL DEFAULT 0,
    active_subscription TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX platforms_domain_key ON platforms (domain);

CREATE TABLE waitlist_entries (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    granted_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX waitlist_entries_platform_mode_email_key ON waitlist_entries (platform_id, mode, email);
CREATE UNIQUE INDEX waitlist_entries_platform_mode_position_key ON waitlist_entries (platform_id, mode, position);
