DROP INDEX events_unsequenced_idx;
ALTER TABLE events ALTER COLUMN sequence DROP DEFAULT;
DROP SEQUENCE events_pending_order;
