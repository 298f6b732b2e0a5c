-- crates platforms and users: an uploaded image is stored as its media id (`med_` and a
-- ULID, 30 characters), never as a URL; URLs are made when an object is shown, under
-- PUBLIC_URL or relative (`/media/med_...`). Rows written before held a URL built from
-- the request's scheme and Host header (`http://<any host>/media/med_...`): keep its id.
-- Written once for both backends (substr, LIKE ... ESCAPE mean the same on each).
UPDATE users
SET image = substr(image, length(image) - 29)
WHERE image LIKE '%/media/med\___________________________' ESCAPE '\';

UPDATE platforms
SET logo = substr(logo, length(logo) - 29)
WHERE logo LIKE '%/media/med\___________________________' ESCAPE '\';
