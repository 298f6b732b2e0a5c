-- crate auth: API keys, one-time sign-in codes, sessions. Secrets are stored only as
-- SHA-256 digests (keys, tokens) or argon2 hashes (codes).
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    digest TEXT NOT NULL,
    masked TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE UNIQUE INDEX api_keys_digest_key ON api_keys (digest);
CREATE INDEX api_keys_platform_mode_idx ON api_keys (platform_id, mode);

CREATE TABLE otp_challenges (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    email TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    expires_at TIMESTAMP NOT NULL,
    consumed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX otp_challenges_platform_mode_email_idx ON otp_challenges (platform_id, mode, email, created_at);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    family_id TEXT NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    access_digest TEXT NOT NULL,
    refresh_digest TEXT NOT NULL,
    access_expires_at TIMESTAMP NOT NULL,
    refresh_expires_at TIMESTAMP NOT NULL,
    rotated_at TIMESTAMP,
    revoked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX sessions_access_digest_key ON sessions (access_digest);
CREATE UNIQUE INDEX sessions_refresh_digest_key ON sessions (refresh_digest);
CREATE INDEX sessions_family_idx ON sessions (family_id);
CREATE INDEX sessions_user_idx ON sessions (user_id);
