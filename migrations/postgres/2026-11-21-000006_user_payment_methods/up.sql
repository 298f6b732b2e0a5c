-- crate users: references to a user's payment methods held by a payment provider (e.g. a
-- Stripe `pm_...` id). Feria keeps the reference and display details, never card data.
CREATE TABLE user_payment_methods (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    provider_ref TEXT NOT NULL,
    brand TEXT,
    last4 TEXT,
    exp_month INTEGER,
    exp_year INTEGER,
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX user_payment_methods_user_provider_ref_key ON user_payment_methods (user_id, provider, provider_ref);
-- At most one default per user.
CREATE UNIQUE INDEX user_payment_methods_user_default_key ON user_payment_methods (user_id) WHERE is_default;
