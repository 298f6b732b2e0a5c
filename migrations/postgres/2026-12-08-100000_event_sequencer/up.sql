-- Events are written without their number and numbered after commit by the sequencer
-- (crates/events/src/outbox.rs, docs/EVENTS.md), so that no event-writing transaction
-- holds the platform's `event_counters` row: that one row per tenant put every purchase,
-- settle and top-up of a platform in a single queue. Until it is numbered, an event
-- holds a negative placeholder, minus a value of `events_pending_order` (so the column
-- stays NOT NULL and unique, `sequence > after` never shows it, and the placeholders'
-- order is the order the events were written in).
CREATE SEQUENCE events_pending_order;
ALTER TABLE events ALTER COLUMN sequence SET DEFAULT (-nextval('events_pending_order'));
-- The sequencer's work list: empty whenever it has caught up.
CREATE INDEX events_unsequenced_idx ON events (platform_id, mode, sequence) WHERE sequence < 0;
