-- crate platforms: the browser origins allowed to call the API for each platform (CORS),
-- a JSON array of origins (`["https://app.example.com"]`), edited by the platform's admins.
ALTER TABLE platforms ADD COLUMN cors_allowed_origins TEXT NOT NULL DEFAULT '[]';
