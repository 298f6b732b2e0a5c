//! Passwordless sign-in: a 6-digit code sent by mail, argon2-hashed at rest, valid for
//! ten minutes, single use, with a few guesses; requests limited per email.

use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::mail::{Mailer, OutgoingMail};
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, with_conn};
use feria_users::User;
use rand::{Rng, RngCore};

use crate::error::AuthError;
use crate::schema::otp_challenges;
use crate::sessions::{self, SessionTokens};
use crate::settings::AuthSettings;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = otp_challenges)]
struct Challenge {
    id: String,
    platform_id: PlatformId,
    mode: Mode,
    email: String,
    code_hash: String,
    attempts: i32,
    expires_at: Timestamp,
    consumed_at: Option<Timestamp>,
    created_at: Timestamp,
}

fn argon2_params(settings: &AuthSettings) -> Result<Params, AuthError> {
    Params::new(settings.argon2_memory_kib, settings.argon2_passes, 1, None).map_err(|e| {
        tracing::error!(error = %e, "invalid argon2 parameters");
        AuthError::Db(DbError::Config("invalid argon2 parameters".into()))
    })
}

/// argon2's working memory (`argon2_memory_kib`, 7 MiB by default), kept for the next
/// computation instead of allocated and freed by each: there are never more than the
/// slots below, so the server holds a fixed few blocks rather than churning multi-MiB
/// allocations through its allocator's per-thread caches (a burst of sign-ins took the
/// server's memory past 200 MB). argon2 writes every block before it reads it, so what a
/// block held before does not matter.
static ARGON2_MEMORY: std::sync::Mutex<Vec<Vec<Block>>> = std::sync::Mutex::new(Vec::new());

/// argon2 of `code` with `salt`, `output_len` bytes, on reused working memory.
fn argon2_output(
    argon2: &Argon2<'_>,
    params: &Params,
    code: &[u8],
    salt: Salt<'_>,
    output_len: usize,
) -> password_hash::Result<Output> {
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    let blocks = params.block_count();
    let kept = ARGON2_MEMORY.lock().ok().and_then(|mut kept| kept.pop());
    let mut memory = match kept {
        Some(memory) if memory.len() == blocks => memory,
        _ => vec![Block::default(); blocks],
    };
    let output = Output::init_with(output_len, |out| {
        Ok(argon2.hash_password_into_with_memory(code, salt, out, &mut memory)?)
    });
    if let Ok(mut kept) = ARGON2_MEMORY.lock() {
        kept.push(memory);
    }
    output
}

/// The PHC string (`$argon2id$v=19$m=...,t=...,p=1$salt$hash`) of `code` under a new
/// random salt: what argon2's `hash_password` writes, so either reads the other's.
fn argon2_hash(params: &Params, code: &[u8]) -> password_hash::Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = argon2_output(&argon2, params, code, salt.as_salt(), output_len)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `code` is the one `hash` (a PHC string) was made of; constant-time compare.
fn argon2_verify(hash: &str, code: &[u8]) -> bool {
    let check = || -> password_hash::Result<bool> {
        let parsed = PasswordHash::new(hash)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let params = Params::try_from(&parsed)?;
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let computed = argon2_output(&argon2, &params, code, salt, expected.len())?;
        // `Output`'s equality is constant-time.
        Ok(computed == expected)
    };
    check().unwrap_or(false)
}

/// The argon2 computations allowed at once: one per core. Each holds
/// `argon2_memory_kib` (7 MiB by default) while it runs; more at once would not finish
/// sooner on the same cores, only multiply the memory (a burst of sign-ins took the server
/// to gigabytes). The rest wait their turn here, without a thread.
fn argon2_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        tokio::sync::Semaphore::new(cores)
    })
}

async fn argon2_slot() -> Result<tokio::sync::SemaphorePermit<'static>, AuthError> {
    argon2_slots()
        .acquire()
        .await
        .map_err(|_| AuthError::Db(DbError::Config("the argon2 slots are closed".into())))
}

/// argon2 is CPU-heavy by design: it runs on a blocking thread, never on the event loop,
/// and at most one per core at once.
async fn hash_code(settings: &AuthSettings, code: String) -> Result<String, AuthError> {
    let params = argon2_params(settings)?;
    // The slot moves into the blocking task: it is held until the hash is done, even if
    // the request goes away meanwhile.
    let slot = argon2_slot().await?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        argon2_hash(&params, code.as_bytes()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(|e| {
        tracing::error!(error = %e, "cannot hash a sign-in code");
        AuthError::Db(DbError::Config("cannot hash a sign-in code".into()))
    })
}

/// The stored hash carries its own parameters (a code stays checkable after the settings
/// change), so none are passed in.
async fn code_matches(hash: String, code: String) -> Result<bool, AuthError> {
    let slot = argon2_slot().await?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        argon2_verify(&hash, code.as_bytes())
    })
    .await
    .map_err(|_| AuthError::Db(DbError::Config("the code check was interrupted".into())))
}

fn std_to_time(duration: std::time::Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}

/// Sends a new code to `email` for signing in to the platform in `mode`. Earlier codes
/// for the same email stop working.
pub async fn request_code(
    conn: &mut DbConn,
    mailer: &Mailer,
    settings: &AuthSettings,
    tenant: &Tenant,
    email: &str,
) -> Result<(), AuthError> {
    let platform = feria_platforms::platform::get(conn, &tenant.platform_id).await?;
    let email = feria_users::user::normalize_email(email)?;
    let now = settings.clock.now();
    let window_start = now.add(-std_to_time(settings.otp_window));

    let recent: Vec<Timestamp> = with_conn!(conn, c => {
        otp_challenges::table
            .filter(otp_challenges::platform_id.eq(&tenant.platform_id))
            .filter(otp_challenges::mode.eq(tenant.mode))
            .filter(otp_challenges::email.eq(&email))
            .filter(otp_challenges::created_at.gt(window_start))
            .order(otp_challenges::created_at.asc())
            .select(otp_challenges::created_at)
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    if i64::try_from(recent.len()).unwrap_or(i64::MAX) >= settings.otp_requests_per_window {
        let oldest = recent.iter().min().copied().unwrap_or(now);
        let frees_at = oldest.add(std_to_time(settings.otp_window));
        let retry_after = u64::try_from(frees_at.since(now).whole_seconds())
            .unwrap_or(0)
            .max(1);
        return Err(AuthError::RateLimited { retry_after });
    }

    let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
    let challenge = Challenge {
        id: feria_kernel::id::new_prefixed("otp"),
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        email: email.clone(),
        code_hash: hash_code(settings, code.clone()).await?,
        attempts: 0,
        expires_at: now.add(std_to_time(settings.otp_ttl)),
        consumed_at: None,
        created_at: now,
    };
    conn.transaction(async |c| -> Result<(), AuthError> {
        // Only the newest code is valid: retire the ones before it.
        with_conn!(c, c => {
            diesel::update(
                otp_challenges::table
                    .filter(otp_challenges::platform_id.eq(&challenge.platform_id))
                    .filter(otp_challenges::mode.eq(challenge.mode))
                    .filter(otp_challenges::email.eq(&challenge.email))
                    .filter(otp_challenges::consumed_at.is_null()),
            )
            .set(otp_challenges::consumed_at.eq(now))
            .execute(c)
            .await
        })
        .map_err(DbError::from)?;
        with_conn!(c, c => diesel::insert_into(otp_challenges::table).values(&challenge).execute(c).await)
            .map_err(DbError::from)?;
        Ok(())
    })
    .await?;

    let minutes = settings.otp_ttl.as_secs() / 60;
    mailer
        .send(OutgoingMail {
            to: email,
            subject: format!("Your sign-in code for {}", platform.name),
            body: format!(
                "Your sign-in code for {name} is {code}.\n\nIt expires in {minutes} minutes and works once. \
                 If you did not ask for it, ignore this message.\n",
                name = platform.name
            ),
        })
        .await?;
    Ok(())
}

/// Checks a code; on success signs the user in (creating the account on first sign-in)
/// and opens a session.
pub async fn verify_code(
    conn: &mut DbConn,
    settings: &AuthSettings,
    tenant: &Tenant,
    email: &str,
    code: &str,
) -> Result<(User, SessionTokens), AuthError> {
    let email = feria_users::user::normalize_email(email)?;
    let now = settings.clock.now();
    let challenge = with_conn!(conn, c => {
        otp_challenges::table
            .filter(otp_challenges::platform_id.eq(&tenant.platform_id))
            .filter(otp_challenges::mode.eq(tenant.mode))
            .filter(otp_challenges::email.eq(&email))
            .filter(otp_challenges::consumed_at.is_null())
            .order(otp_challenges::created_at.desc())
            .select(Challenge::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?
    .ok_or(AuthError::InvalidCode)?;
    if challenge.expires_at <= now {
        return Err(AuthError::CodeExpired);
    }

    // Spend a guess before checking it, so concurrent guesses cannot exceed the limit.
    let max_attempts = settings.otp_max_attempts;
    let reserved = with_conn!(conn, c => {
        diesel::update(
            otp_challenges::table
                .find(&challenge.id)
                .filter(otp_challenges::consumed_at.is_null())
                .filter(otp_challenges::attempts.lt(max_attempts)),
        )
        .set(otp_challenges::attempts.eq(otp_challenges::attempts + 1))
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    if reserved == 0 {
        return Err(AuthError::TooManyAttempts);
    }

    let well_formed = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
    if !well_formed || !code_matches(challenge.code_hash.clone(), code.to_owned()).await? {
        return Err(AuthError::InvalidCode);
    }

    // Single use: of two concurrent right answers, one signs in.
    let consumed = with_conn!(conn, c => {
        diesel::update(
            otp_challenges::table
                .find(&challenge.id)
                .filter(otp_challenges::consumed_at.is_null()),
        )
        .set(otp_challenges::consumed_at.eq(settings.clock.now()))
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    if consumed == 0 {
        return Err(AuthError::InvalidCode);
    }

    let user = feria_users::user::sign_in(conn, tenant, &email).await?;
    let tokens = sessions::create(conn, settings, tenant, &user.id, None).await?;
    Ok((user, tokens))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    fn small() -> Params {
        Params::new(64, 1, 1, None).expect("valid parameters")
    }

    #[test]
    fn hashes_on_reused_memory_are_argon2s_own_both_ways() {
        let params = small();
        let ours = argon2_hash(&params, b"123456").expect("hashed");
        let stock = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        assert!(stock.verify_password(b"123456", &parsed).is_ok());
        assert!(stock.verify_password(b"654321", &parsed).is_err());

        let salt = SaltString::encode_b64(b"sixteen byte slt").expect("salt");
        let theirs = stock
            .hash_password(b"424242", &salt)
            .expect("hashed")
            .to_string();
        assert!(argon2_verify(&theirs, b"424242"));
        assert!(!argon2_verify(&theirs, b"424243"));
        // Twice more on the memory the first computations left behind.
        assert!(argon2_verify(&ours, b"123456"));
        assert!(argon2_verify(&theirs, b"424242"));
        assert!(!argon2_verify("not a hash", b"424242"));
    }
}
