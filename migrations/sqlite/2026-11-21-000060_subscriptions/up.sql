-- crate billing: subscriptions to a contract's terms, their sellers' shares, and one row
-- per charged cycle. Every row carries platform_id and mode; money in minor units of the
-- subscription's currency. The terms are copied from the contract when subscribing
-- (billing sits below contracts and never reads their tables), so later edits of the
-- contract do not change a running subscription.
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    -- The subscriber: the one buyer who pays every cycle.
    user_id TEXT NOT NULL REFERENCES users (id),
    -- The contract the terms came from (`inv_...`); the wire's `service_id`.
    contract_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    -- What the subscriber pays per cycle (the contract's total).
    price_minor BIGINT NOT NULL CHECK (price_minor > 0),
    platform_fee_minor BIGINT NOT NULL CHECK (platform_fee_minor >= 0),
    service_fee_minor BIGINT NOT NULL CHECK (service_fee_minor >= 0),
    processor_fee_minor BIGINT NOT NULL CHECK (processor_fee_minor >= 0),
    cycle TEXT NOT NULL CHECK (cycle IN ('weekly', 'monthly', 'yearly')),
    status TEXT NOT NULL CHECK (status IN ('active', 'paused', 'payment_failed', 'ended')),
    started_at TIMESTAMP NOT NULL,
    paused_at TIMESTAMP,
    paused_until TIMESTAMP,
    -- When it ends by itself (NULL: runs until ended).
    ends_at TIMESTAMP,
    ended_at TIMESTAMP,
    -- Periods are counted from anchor_at (the start, or the instant a subscription whose
    -- paid period ran out while paused resumed): next_renewal_at = anchor_at +
    -- next_period cycles, calendar arithmetic from the anchor so months do not drift.
    anchor_at TIMESTAMP NOT NULL,
    next_period BIGINT NOT NULL CHECK (next_period >= 0),
    next_renewal_at TIMESTAMP NOT NULL,
    cycles_charged BIGINT NOT NULL CHECK (cycles_charged >= 0),
    failed_attempts BIGINT NOT NULL CHECK (failed_attempts >= 0),
    -- The last renewal run that looked at it (each run handles a row at most once).
    last_attempt_at TIMESTAMP,
    last_failure TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX subscriptions_platform_mode_user_idx ON subscriptions (platform_id, mode, user_id, created_at);
CREATE INDEX subscriptions_status_next_renewal_idx ON subscriptions (status, next_renewal_at);
-- One running subscription per subscriber and contract.
CREATE UNIQUE INDEX subscriptions_user_contract_key ON subscriptions (platform_id, mode, user_id, contract_id) WHERE status <> 'ended';

CREATE TABLE subscription_sellers (
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    PRIMARY KEY (subscription_id, user_id)
);

-- One row per charged cycle, written in the same transaction as the money: the unique
-- key is what makes a cycle impossible to charge twice, whoever races for it.
CREATE TABLE subscription_charges (
    id TEXT PRIMARY KEY NOT NULL,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    cycle BIGINT NOT NULL CHECK (cycle > 0),
    period_start TIMESTAMP NOT NULL,
    period_end TIMESTAMP NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    -- The charge transaction (`tran_...`).
    transaction_id TEXT NOT NULL,
    charged_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX subscription_charges_subscription_id_cycle_key ON subscription_charges (subscription_id, cycle);
