-- crate users: links on a user's profile.
CREATE TABLE user_links (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    url TEXT NOT NULL,
    title TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX user_links_user_idx ON user_links (user_id, created_at);
