-- crate onchain-entitlements: receipt signing keys, and the finality of each payment.

-- Ed25519 keys signing entitlement receipts, per platform and mode. The private key (its
-- 32-byte seed) is sealed under FERIA_SECRET_KEY (`fsk1:...`, feria_kernel::sealed);
-- the public key is served in the platform's JWKS until `publish_until`.
CREATE TABLE onchain_receipt_keys (
    -- The JWS `kid`: `rk_` + ULID.
    kid TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    -- base64url (no padding) of the 32-byte public key: the JWK's `x`.
    public_key TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    -- Set when `feria keys rotate` replaced it: it signs no more.
    retired_at TIMESTAMP,
    -- Still published until the last receipt it signed has expired.
    publish_until TIMESTAMP
);
-- One signing key per platform and mode at a time.
CREATE UNIQUE INDEX onchain_receipt_keys_signing_key ON onchain_receipt_keys (platform_id, mode) WHERE retired_at IS NULL;
CREATE INDEX onchain_receipt_keys_platform_mode_idx ON onchain_receipt_keys (platform_id, mode, created_at);

-- `pending` until the payment's block is final (the chain's `finalized` block, else
-- ONCHAIN_FINALITY_BLOCKS deep), then `final`; the finality watcher moves it.
ALTER TABLE onchain_entitlements ADD COLUMN finality TEXT NOT NULL DEFAULT 'pending';
-- The block the payment was in when granted (NULL for entitlements granted before this
-- migration: the watcher records the block it finds).
ALTER TABLE onchain_entitlements ADD COLUMN block_number BIGINT;
ALTER TABLE onchain_entitlements ADD COLUMN block_hash TEXT;
-- `operator` (revoked through the API) or `payment_reorged` (the watcher).
ALTER TABLE onchain_entitlements ADD COLUMN revoked_reason TEXT;
-- The watcher's lease on the row and when it looks next.
ALTER TABLE onchain_entitlements ADD COLUMN finality_check_at TIMESTAMP;
ALTER TABLE onchain_entitlements ADD COLUMN finality_lease_until TIMESTAMP;
ALTER TABLE onchain_entitlements ADD COLUMN finality_lease_token TEXT;
UPDATE onchain_entitlements SET revoked_reason = 'operator' WHERE revoked_at IS NOT NULL;

-- A payment removed by a reorg no longer holds its hash and quote: the quote may be paid
-- (and the same transaction, mined again, confirmed) once more.
ALTER TABLE onchain_entitlements DROP CONSTRAINT onchain_entitlements_chain_id_tx_hash_key;
ALTER TABLE onchain_entitlements DROP CONSTRAINT onchain_entitlements_quote_id_key;
CREATE UNIQUE INDEX onchain_entitlements_chain_id_tx_hash_key ON onchain_entitlements (chain_id, tx_hash) WHERE revoked_reason IS NULL OR revoked_reason <> 'payment_reorged';
CREATE UNIQUE INDEX onchain_entitlements_quote_id_key ON onchain_entitlements (quote_id) WHERE revoked_reason IS NULL OR revoked_reason <> 'payment_reorged';
-- The watcher's queue: pending payments by when they are due.
CREATE INDEX onchain_entitlements_finality_idx ON onchain_entitlements (finality, finality_check_at);
