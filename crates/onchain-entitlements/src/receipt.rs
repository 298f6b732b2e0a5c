//! Receipts anyone can verify offline: a compact JWS (EdDSA over Ed25519) stating that a
//! wallet holds an entitlement, signed with a key of the platform and mode whose public
//! half is served as a JWKS (`/.well-known/jwks.json?platform=...`).
//!
//! Keys are made on the first receipt of a platform and mode, rotated by `feria keys
//! rotate` ([`rotate`]); a retired key signs no more but stays published until the last
//! receipt it could have signed has expired (`publish_until`). The private key (the
//! 32-byte Ed25519 seed) is stored sealed under the server's secret key
//! ([`feria_kernel::sealed`]). Key handling is ed25519-dalek's, signing jsonwebtoken's:
//! nothing here is cryptography of its own. See docs/ONCHAIN.md, "Receipts".

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use feria_kernel::sealed::Keyring;
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, with_conn};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::chain::Onchain;
use crate::entitlement::{self, EntitlementState, Finality};
use crate::error::OnchainError;
use crate::schema::onchain_receipt_keys;

feria_kernel::define_id!(
    /// A receipt signing key (the JWS `kid`).
    ReceiptKeyId,
    "rk"
);

/// The JWS `typ` of a receipt.
pub const RECEIPT_TYPE: &str = "entitlement-receipt+jwt";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = onchain_receipt_keys)]
struct KeyRow {
    kid: String,
    platform_id: PlatformId,
    mode: Mode,
    public_key: String,
    private_key: String,
    created_at: Timestamp,
    retired_at: Option<Timestamp>,
    publish_until: Option<Timestamp>,
}

impl KeyRow {
    fn seal_context(kid: &str) -> String {
        format!("onchain_receipt_key:{kid}")
    }

    fn signing_key(&self, keys: &Keyring) -> Result<SigningKey, OnchainError> {
        let seed = keys
            .open(&self.private_key, &Self::seal_context(&self.kid))
            .map_err(|e| OnchainError::Sealed(format!("receipt key {}: {e}", self.kid)))?;
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| OnchainError::Sealed(format!("receipt key {}: not 32 bytes", self.kid)))?;
        Ok(SigningKey::from_bytes(&seed))
    }

    fn to_jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: self.public_key.clone(),
            kid: self.kid.clone(),
            alg: "EdDSA".into(),
            key_use: "sig".into(),
        }
    }
}

fn new_key(tenant: &Tenant, keys: &Keyring, now: Timestamp) -> KeyRow {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let signing = SigningKey::from_bytes(&seed);
    let kid = ReceiptKeyId::new().to_string();
    KeyRow {
        public_key: URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes()),
        private_key: keys.seal(&seed, &KeyRow::seal_context(&kid)),
        kid,
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        created_at: now,
        retired_at: None,
        publish_until: None,
    }
}

/// A public key as a JWK (RFC 8037: `OKP`, `Ed25519`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// The key id receipts name in their header.
    pub kid: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
}

/// A JWK Set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// The claims of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceiptClaims {
    /// `feria:<platform_id>:<mode>`: who signed, for which mode (a verifier accepting
    /// live entitlements checks `mode` is `live`).
    pub iss: String,
    /// The entitlement id (as `entitlement_id`).
    pub sub: String,
    /// When the receipt was made (Unix seconds).
    pub iat: i64,
    /// When the receipt stops being valid (Unix seconds): `ONCHAIN_RECEIPT_TTL_SECS`
    /// after `iat`, never past the entitlement's own expiry.
    pub exp: i64,
    pub platform_id: String,
    /// `live` or `test`.
    pub mode: String,
    pub entitlement_id: String,
    pub offer_id: String,
    /// Lower-case 0x address.
    pub wallet: String,
    pub workspace_id: Option<String>,
    pub chain_id: i64,
    pub tx_hash: String,
    pub policy_hash: String,
    /// When the entitlement was granted (Unix seconds).
    pub issued_at: i64,
    /// When the entitlement expires (Unix seconds); `null`: never.
    pub expires_at: Option<i64>,
    /// `pending` (a deep reorg could still undo the payment) or `final`.
    pub finality: Finality,
}

/// The answer of `GET .../entitlements/{id}/receipt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceiptObject {
    /// The compact JWS (`header.payload.signature`, EdDSA).
    pub receipt: String,
    /// The key that signed it, in the platform's JWKS.
    pub kid: String,
    pub claims: ReceiptClaims,
    /// Where the public keys are: `/.well-known/jwks.json?platform=...&mode=...`.
    pub jwks_uri: String,
}

/// The path of the JWKS of a platform and mode.
pub fn jwks_path(platform_id: &str, mode: Mode) -> String {
    format!("/.well-known/jwks.json?platform={platform_id}&mode={mode}")
}

async fn signing_row(conn: &mut DbConn, tenant: &Tenant) -> Result<Option<KeyRow>, OnchainError> {
    Ok(with_conn!(conn, c => {
        onchain_receipt_keys::table
            .filter(onchain_receipt_keys::platform_id.eq(&tenant.platform_id))
            .filter(onchain_receipt_keys::mode.eq(tenant.mode))
            .filter(onchain_receipt_keys::retired_at.is_null())
            .select(KeyRow::as_select())
            .first::<KeyRow>(c)
            .await
            .optional()
    })?)
}

/// The signing key of the tenant, made on first use (a concurrent first use that loses
/// the race reads the winner's).
async fn signing_key(
    conn: &mut DbConn,
    tenant: &Tenant,
    keys: &Keyring,
) -> Result<KeyRow, OnchainError> {
    if let Some(row) = signing_row(conn, tenant).await? {
        return Ok(row);
    }
    let row = new_key(tenant, keys, Timestamp::now());
    let inserted = with_conn!(conn, c => {
        diesel::insert_into(onchain_receipt_keys::table)
            .values(&row)
            .execute(c)
            .await
    });
    match inserted.map_err(DbError::from) {
        Ok(_) => Ok(row),
        Err(error) if matches!(error, DbError::UniqueViolation { .. }) => signing_row(conn, tenant)
            .await?
            .ok_or(OnchainError::Db(error)),
        Err(error) => Err(error.into()),
    }
}

/// Retires the tenant's signing key (published until `receipt_ttl` from now, when the
/// last receipt it signed expires) and makes a new one. Returns the new key's id.
pub async fn rotate(
    conn: &mut DbConn,
    tenant: &Tenant,
    keys: &Keyring,
    receipt_ttl: std::time::Duration,
) -> Result<String, OnchainError> {
    let now = Timestamp::now();
    let publish_until =
        now.add(time::Duration::try_from(receipt_ttl).unwrap_or(time::Duration::MAX));
    let row = new_key(tenant, keys, now);
    conn.transaction(async |c| -> Result<(), OnchainError> {
        with_conn!(c, c => {
            diesel::update(
                onchain_receipt_keys::table
                    .filter(onchain_receipt_keys::platform_id.eq(&tenant.platform_id))
                    .filter(onchain_receipt_keys::mode.eq(tenant.mode))
                    .filter(onchain_receipt_keys::retired_at.is_null()),
            )
            .set((
                onchain_receipt_keys::retired_at.eq(now),
                onchain_receipt_keys::publish_until.eq(publish_until),
            ))
            .execute(c)
            .await
        })?;
        with_conn!(c, c => {
            diesel::insert_into(onchain_receipt_keys::table)
                .values(&row)
                .execute(c)
                .await
        })?;
        Ok(())
    })
    .await?;
    Ok(row.kid)
}

/// The public keys of a platform and mode that receipts still valid may name: the signing
/// key and the retired keys still published.
pub async fn jwks(
    conn: &mut DbConn,
    platform_id: &str,
    mode: Mode,
    now: Timestamp,
) -> Result<Jwks, OnchainError> {
    let rows: Vec<KeyRow> = with_conn!(conn, c => {
        onchain_receipt_keys::table
            .filter(onchain_receipt_keys::platform_id.eq(platform_id))
            .filter(onchain_receipt_keys::mode.eq(mode))
            .filter(
                onchain_receipt_keys::publish_until
                    .is_null()
                    .or(onchain_receipt_keys::publish_until.gt(now)),
            )
            .order(onchain_receipt_keys::created_at.desc())
            .select(KeyRow::as_select())
            .load(c)
            .await
    })?;
    Ok(Jwks {
        keys: rows.iter().map(KeyRow::to_jwk).collect(),
    })
}

/// A signed receipt of an active entitlement of the tenant; 409 `entitlement_not_active`
/// for a revoked or expired one.
pub async fn issue(
    conn: &mut DbConn,
    tenant: &Tenant,
    onchain: &Onchain,
    keys: &Keyring,
    entitlement_id: &str,
) -> Result<ReceiptObject, OnchainError> {
    let now = Timestamp::now();
    let entitlement = entitlement::get(conn, tenant, entitlement_id).await?;
    let state = entitlement.state(now);
    if state != EntitlementState::Active {
        return Err(OnchainError::EntitlementNotActive(state));
    }
    let key = signing_key(conn, tenant, keys).await?;
    let ttl = i64::try_from(onchain.receipt_ttl.as_secs()).unwrap_or(i64::MAX);
    let mut exp = now.unix().saturating_add(ttl.max(1));
    if let Some(expires) = entitlement.expires_at {
        exp = exp.min(expires.unix());
    }
    let claims = ReceiptClaims {
        iss: format!("feria:{}:{}", tenant.platform_id, tenant.mode),
        sub: entitlement.entitlement_id.clone(),
        iat: now.unix(),
        exp,
        platform_id: tenant.platform_id.to_string(),
        mode: tenant.mode.to_string(),
        entitlement_id: entitlement.entitlement_id.clone(),
        offer_id: entitlement.offer_id.clone(),
        wallet: entitlement.wallet.clone(),
        workspace_id: entitlement.workspace_id.clone(),
        chain_id: entitlement.chain_id,
        tx_hash: entitlement.tx_hash.clone(),
        policy_hash: entitlement.policy_hash.clone(),
        issued_at: entitlement.issued_at.unix(),
        expires_at: entitlement.expires_at.map(|at| at.unix()),
        finality: Finality::parse(&entitlement.finality),
    };
    let signing = key.signing_key(keys)?;
    let der = signing
        .to_pkcs8_der()
        .map_err(|e| OnchainError::Sealed(format!("receipt key {}: {e}", key.kid)))?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    header.typ = Some(RECEIPT_TYPE.to_owned());
    let receipt = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )
    .map_err(|e| OnchainError::Sealed(format!("signing with receipt key {}: {e}", key.kid)))?;
    Ok(ReceiptObject {
        receipt,
        kid: key.kid,
        jwks_uri: jwks_path(tenant.platform_id.as_str(), tenant.mode),
        claims,
    })
}

/// The table holding sealed keys (for [`feria_kernel::DbConn::scrub`]).
pub const SEALED_TABLE: &str = "onchain_receipt_keys";

/// What [`seal_keys`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SealReport {
    /// Keys sealed under the previous key, now under the current one.
    pub resealed: u64,
    /// Already under the current key.
    pub unchanged: u64,
}

/// Reseals every receipt signing key not sealed under the current key (`feria secrets
/// rotate`). Fails on a key sealed under a key the keyring does not hold.
pub async fn seal_keys(conn: &mut DbConn, keys: &Keyring) -> Result<SealReport, OnchainError> {
    let rows: Vec<(String, String)> = with_conn!(conn, c => {
        onchain_receipt_keys::table
            .select((onchain_receipt_keys::kid, onchain_receipt_keys::private_key))
            .load(c)
            .await
    })?;
    let mut report = SealReport::default();
    for (kid, stored) in rows {
        if !keys.needs_reseal(&stored) {
            report.unchanged += 1;
            continue;
        }
        let context = KeyRow::seal_context(&kid);
        let seed = keys
            .open(&stored, &context)
            .map_err(|e| OnchainError::Sealed(format!("receipt key {kid}: {e}")))?;
        let sealed = keys.seal(&seed, &context);
        with_conn!(conn, c => {
            diesel::update(
                onchain_receipt_keys::table
                    .find(&kid)
                    .filter(onchain_receipt_keys::private_key.eq(&stored)),
            )
            .set(onchain_receipt_keys::private_key.eq(&sealed))
            .execute(c)
            .await
        })?;
        report.resealed += 1;
    }
    Ok(report)
}
