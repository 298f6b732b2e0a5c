-- crate events: the transactional outbox (one row per committed change, written in the
-- change's own transaction), webhook endpoints, and their delivery state.

-- The last sequence number handed out per platform and mode. Bumped by an upsert inside
-- the transaction that records an event, so sequences are strictly increasing and
-- gap-free (a rolled-back change rolls its number back too). No database sequence: see
-- docs/EVENTS.md.
CREATE TABLE event_counters (
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    last_sequence BIGINT NOT NULL,
    PRIMARY KEY (platform_id, mode)
);

CREATE TABLE events (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    -- JSON snapshot of the object, as the API shows it.
    data TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    -- Whether the delivery worker has made this event's deliveries.
    fanned_out BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX events_platform_mode_sequence_idx ON events (platform_id, mode, sequence);
CREATE INDEX events_platform_mode_type_idx ON events (platform_id, mode, event_type, sequence);
CREATE INDEX events_fan_out_idx ON events (fanned_out, created_at);

CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- JSON array of event types, or ["*"].
    event_types TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    -- The signing secret (whsec_...), kept as is: signing needs it back.
    secret TEXT NOT NULL,
    -- Why the endpoint was disabled automatically; NULL when enabled or disabled by hand.
    disabled_reason TEXT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    -- First failed attempt since the last success.
    failing_since TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_platform_mode_idx ON webhook_endpoints (platform_id, mode, created_at);

-- One row per endpoint and event: the state of getting that event there.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL REFERENCES events (id),
    -- `pending`, `succeeded` or `failed`.
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    -- When the next attempt is due (pending only).
    next_attempt_at TIMESTAMP,
    -- A worker holds the delivery until then; another may take it over afterwards.
    lease_expires_at TIMESTAMP,
    lease_token TEXT,
    -- No retry is scheduled after this instant: the delivery fails.
    deadline_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX webhook_deliveries_endpoint_event_idx ON webhook_deliveries (endpoint_id, event_id);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at);

-- One row per HTTP attempt.
CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    -- The HTTP status, NULL when no response came (refused, timed out).
    status_code INTEGER,
    error TEXT,
    duration_ms BIGINT NOT NULL,
    -- The first bytes (at most 1 KiB) of the response body.
    response_body TEXT,
    -- When the next attempt is due; NULL when none will be made.
    next_retry_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, created_at);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id);
