-- crate contracts: contracts (invoices) with their items, buyers, sellers and fee lines.
-- Every row carries platform_id and mode. Money in minor units of the contract's
-- currency. Contracts are never deleted: `DELETE /contracts/:id` voids them.
CREATE TABLE contracts (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    -- Who created it (NULL when an API key did).
    user_id TEXT REFERENCES users (id),
    notes TEXT NOT NULL DEFAULT '',
    -- draft, open, settled, void
    status TEXT NOT NULL CHECK (status IN ('draft', 'open', 'settled', 'void')),
    currency TEXT NOT NULL,
    include_processor_fees BOOLEAN NOT NULL,
    include_service_fees BOOLEAN NOT NULL,
    include_platform_fees BOOLEAN NOT NULL,
    due_at TIMESTAMP,
    sent_at TIMESTAMP,
    last_sent_at TIMESTAMP,
    last_payment_attempt_at TIMESTAMP,
    paid_at TIMESTAMP,
    -- The Idempotency-Key the settlement came with, if any.
    settle_key TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX contracts_platform_mode_created_idx ON contracts (platform_id, mode, created_at, id);
CREATE INDEX contracts_platform_mode_user_idx ON contracts (platform_id, mode, user_id);

CREATE TABLE contract_items (
    id TEXT PRIMARY KEY NOT NULL,
    contract_id TEXT NOT NULL REFERENCES contracts (id),
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    -- NULL for a custom line.
    product_id TEXT REFERENCES products (id),
    name TEXT NOT NULL,
    unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX contract_items_contract_idx ON contract_items (contract_id, created_at);

CREATE TABLE contract_buyers (
    contract_id TEXT NOT NULL REFERENCES contracts (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    due_minor BIGINT NOT NULL CHECK (due_minor >= 0),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (contract_id, user_id)
);
CREATE INDEX contract_buyers_user_idx ON contract_buyers (platform_id, mode, user_id, contract_id);

CREATE TABLE contract_sellers (
    contract_id TEXT NOT NULL REFERENCES contracts (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    owed_minor BIGINT NOT NULL CHECK (owed_minor >= 0),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (contract_id, user_id)
);
CREATE INDEX contract_sellers_user_idx ON contract_sellers (platform_id, mode, user_id, contract_id);

CREATE TABLE contract_fees (
    id TEXT PRIMARY KEY NOT NULL,
    contract_id TEXT NOT NULL REFERENCES contracts (id),
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    name TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX contract_fees_contract_idx ON contract_fees (contract_id, created_at);
