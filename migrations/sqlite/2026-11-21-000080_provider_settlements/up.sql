-- crate billing: settlements through an outside payment provider (Stripe). Charging a
-- card and paying sellers are HTTP calls that no database transaction may span, so a
-- settlement is first recorded here as pending (the plan and the attempt whose number is
-- part of every idempotency key sent to the provider), then the provider is called, then
-- the ledger entries are written and the row marked succeeded in one transaction. A
-- crash between the steps leaves the row pending: the same request resumes it with the
-- same keys, and the provider answers the calls it already carried out with their first
-- results. A refusal marks the attempt failed; the next settle starts attempt + 1.
CREATE TABLE provider_settlements (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    -- the settlement key (`contract:<id>`): at most one row per key and tenant
    settlement_key TEXT NOT NULL,
    -- stripe
    provider TEXT NOT NULL,
    -- digest of what the settlement moves: a resumed attempt must move the same
    fingerprint TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    -- pending, succeeded, failed
    status TEXT NOT NULL,
    -- JSON: the charges (customer, payment method) and transfers (connected account)
    plan TEXT NOT NULL,
    -- JSON: the provider's ids once known (payment intents, charges, transfers)
    provider_refs TEXT,
    -- why the last attempt failed, for operators
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT provider_settlements_attempt_check CHECK (attempt >= 1)
);
CREATE UNIQUE INDEX provider_settlements_settlement_key ON provider_settlements (platform_id, mode, settlement_key);
