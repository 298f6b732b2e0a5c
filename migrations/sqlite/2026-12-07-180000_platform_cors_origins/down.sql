ALTER TABLE platforms DROP COLUMN cors_allowed_origins;
