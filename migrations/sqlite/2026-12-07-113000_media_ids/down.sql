-- Nothing to undo: the host a URL named came from a request and is not worth restoring;
-- the media ids stay valid.
SELECT 1;
