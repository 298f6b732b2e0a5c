-- crate users: the people of a platform, one account per platform and mode.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    username TEXT,
    name TEXT,
    first_name TEXT,
    last_name TEXT,
    bio TEXT,
    image TEXT,
    timezone TEXT,
    stripe_connect_id TEXT,
    stripe_customer_id TEXT,
    charges_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    details_submitted BOOLEAN NOT NULL DEFAULT FALSE,
    authenticated_at TIMESTAMP,
    scheduled_deletion_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX users_platform_mode_email_key ON users (platform_id, mode, email);
CREATE UNIQUE INDEX users_platform_mode_username_key ON users (platform_id, mode, username);
CREATE INDEX users_platform_mode_role_idx ON users (platform_id, mode, role);
