-- crate billing: the double-entry ledger. Every movement of money is one journal entry
-- whose postings sum to zero; an account's balance is the sum of its postings, kept
-- up to date in the same transaction. Amounts are integer minor units.
CREATE TABLE ledger_accounts (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    -- user_credit, escrow, seller_receivable, platform_fee, service_fee, processor_fee, external
    kind TEXT NOT NULL,
    -- whose account: a user id, a contract or purchase id (escrow), the platform id, or
    -- a provider name (external)
    owner_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    balance BIGINT NOT NULL,
    allow_negative BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    -- The last line of defence; writers check first (conditional UPDATE) to answer clearly.
    CONSTRAINT ledger_accounts_balance_check CHECK (allow_negative OR balance >= 0)
);
CREATE UNIQUE INDEX ledger_accounts_owner_key ON ledger_accounts (platform_id, mode, kind, owner_id, currency);

CREATE TABLE journal_entries (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    -- credit_top_up, settlement, refund, payout, adjustment
    kind TEXT NOT NULL,
    -- what caused it (contract, purchase, transaction id), for reading the ledger
    reference TEXT,
    -- at most once per key and tenant: a repeated operation finds its first entry
    idempotency_key TEXT,
    -- digest of the operation's parameters: the same key with other parameters is refused
    fingerprint TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX journal_entries_idempotency_key ON journal_entries (platform_id, mode, idempotency_key);
CREATE INDEX journal_entries_reference_idx ON journal_entries (platform_id, mode, reference);

CREATE TABLE ledger_postings (
    id TEXT PRIMARY KEY NOT NULL,
    entry_id TEXT NOT NULL REFERENCES journal_entries (id),
    account_id TEXT NOT NULL REFERENCES ledger_accounts (id),
    -- signed: what the account's balance changed by
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ledger_postings_account_idx ON ledger_postings (account_id);
CREATE INDEX ledger_postings_entry_idx ON ledger_postings (entry_id);

-- The seed's Transaction object: one row per charge, earning, fee, refund, payout or
-- credit top-up, each pointing at the journal entry that moved its money.
CREATE TABLE transactions (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    -- charge, earning, fee, refund, payout, credit_top_up
    kind TEXT NOT NULL,
    -- succeeded, pending, failed
    status TEXT NOT NULL,
    -- internal, stripe
    provider TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    contract_id TEXT,
    buyer_user_id TEXT,
    seller_user_id TEXT,
    -- for fees: platform, service or processor
    fee_kind TEXT,
    -- the provider's id (Stripe charge, refund or transfer)
    provider_ref TEXT,
    entry_id TEXT NOT NULL REFERENCES journal_entries (id),
    -- for refunds: the charge refunded
    refund_of TEXT REFERENCES transactions (id),
    refunded_amount BIGINT NOT NULL,
    description TEXT,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT transactions_amount_check CHECK (amount > 0),
    CONSTRAINT transactions_refunded_check CHECK (refunded_amount >= 0 AND refunded_amount <= amount)
);
CREATE INDEX transactions_tenant_created_idx ON transactions (platform_id, mode, created_at, id);
CREATE INDEX transactions_buyer_idx ON transactions (platform_id, mode, buyer_user_id, created_at);
CREATE INDEX transactions_seller_idx ON transactions (platform_id, mode, seller_user_id, created_at);
CREATE INDEX transactions_contract_idx ON transactions (platform_id, mode, contract_id);
CREATE INDEX transactions_entry_idx ON transactions (entry_id);
