-- crate onchain-entitlements: offers priced in a token (USDC), checkout quotes and the
-- entitlements that confirmed payments grant. Amounts in atomic units are TEXT (decimal
-- strings): a token's units may pass BIGINT. Every row is scoped by platform and mode.
CREATE TABLE onchain_offers (
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    -- The readable id (`edut.crm.pro.annual`), unique within a platform and mode.
    offer_id TEXT NOT NULL,
    issuer_id TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    -- `active` or `retired`.
    status TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_atomic TEXT NOT NULL,
    decimals INTEGER NOT NULL CHECK (decimals >= 0),
    chain_id BIGINT NOT NULL,
    member_only BOOLEAN NOT NULL,
    workspace_bound BOOLEAN NOT NULL,
    transferable BOOLEAN NOT NULL,
    -- Whether buying it makes the wallet a member (for `member_only` offers).
    membership BOOLEAN NOT NULL,
    -- How long an entitlement lasts; NULL: for ever.
    duration_days BIGINT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (platform_id, mode, offer_id)
);

CREATE TABLE onchain_quotes (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    -- Lower-case 0x address.
    wallet TEXT NOT NULL,
    workspace_id TEXT,
    chain_id BIGINT NOT NULL,
    currency TEXT NOT NULL,
    amount_atomic TEXT NOT NULL,
    decimals INTEGER NOT NULL,
    token_address TEXT NOT NULL,
    treasury_address TEXT NOT NULL,
    -- The exact calldata the paying transaction must carry (0x hex).
    calldata TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX onchain_quotes_platform_mode_wallet_idx ON onchain_quotes (platform_id, mode, wallet, created_at);

CREATE TABLE onchain_entitlements (
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    -- `ent:<chain_id>:<wallet>:<6-digit sequence>`.
    entitlement_id TEXT NOT NULL,
    chain_id BIGINT NOT NULL,
    wallet TEXT NOT NULL,
    sequence BIGINT NOT NULL CHECK (sequence > 0),
    offer_id TEXT NOT NULL,
    quote_id TEXT NOT NULL REFERENCES onchain_quotes (id),
    workspace_id TEXT,
    tx_hash TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    membership BOOLEAN NOT NULL,
    transferable BOOLEAN NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    PRIMARY KEY (platform_id, mode, entitlement_id),
    -- At most one entitlement per payment, across every tenant.
    CONSTRAINT onchain_entitlements_chain_id_tx_hash_key UNIQUE (chain_id, tx_hash),
    -- At most one entitlement per quote.
    CONSTRAINT onchain_entitlements_quote_id_key UNIQUE (quote_id)
);
CREATE INDEX onchain_entitlements_platform_mode_wallet_idx ON onchain_entitlements (platform_id, mode, wallet, chain_id, sequence);
