-- Stored URLs are absolute http(s) URLs only (feria_kernel::web_url). Values stored before
-- that rule with any other scheme (javascript:, data:, vbscript: ...) are dropped: shown
-- to people they would run script or mislead. Optional fields become NULL; such a profile
-- link is deleted. Preview images (a JSON array) are checked when a listing is next
-- changed. Written once for both backends (lower, ltrim, LIKE mean the same on each).
UPDATE products SET image = NULL
WHERE image IS NOT NULL
  AND lower(ltrim(image)) NOT LIKE 'http://%' AND lower(ltrim(image)) NOT LIKE 'https://%';

UPDATE characters SET avatar_url = NULL
WHERE avatar_url IS NOT NULL
  AND lower(ltrim(avatar_url)) NOT LIKE 'http://%' AND lower(ltrim(avatar_url)) NOT LIKE 'https://%';

UPDATE platforms SET url = NULL
WHERE url IS NOT NULL
  AND lower(ltrim(url)) NOT LIKE 'http://%' AND lower(ltrim(url)) NOT LIKE 'https://%';

DELETE FROM user_links
WHERE lower(ltrim(url)) NOT LIKE 'http://%' AND lower(ltrim(url)) NOT LIKE 'https://%';
