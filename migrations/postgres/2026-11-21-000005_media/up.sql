-- crate platforms: uploaded images (logos, profile pictures). The bytes live in
-- DATA_DIR/media/<id>; this row says what they are, so a media id can be checked and served.
CREATE TABLE media (
    id TEXT PRIMARY KEY NOT NULL,
    content_type TEXT NOT NULL,
    byte_size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
