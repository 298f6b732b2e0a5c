-- PostgreSQL writes events without their number and numbers them after commit (see the
-- PostgreSQL migration of the same name). SQLite serialises writers anyway, so it numbers
-- each event as it is written and this index, kept for the schema's parity, stays empty.
CREATE INDEX events_unsequenced_idx ON events (platform_id, mode, sequence) WHERE sequence < 0;
