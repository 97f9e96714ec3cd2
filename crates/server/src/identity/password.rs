//! Argon2id password hashing, always off the async runtime (it is deliberately slow) and
//! never more at once than the cores: each hash takes ~19 MiB, so an unbounded flood of
//! logins would otherwise exhaust memory and the blocking pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

use crate::kernel::error::AppError;

/// Requests allowed to wait for a hashing slot before the answer is 429.
const MAX_WAITING: usize = 256;

fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        Semaphore::new(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        )
    })
}

/// Runs one Argon2 computation on the blocking pool, within the slot limit.
async fn bounded<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    static WAITING: AtomicUsize = AtomicUsize::new(0);
    if WAITING.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
        WAITING.fetch_sub(1, Ordering::SeqCst);
        return Err(AppError::Busy {
            retry_after_secs: 1,
        });
    }
    let permit = slots().acquire().await;
    WAITING.fetch_sub(1, Ordering::SeqCst);
    let _permit = permit.map_err(AppError::internal)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(AppError::internal)
}

pub async fn hash(password: String) -> Result<String, AppError> {
    bounded(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await?
    .map_err(AppError::internal)
}

/// Verifies in constant time (argon2's comparison). A malformed stored hash is `false`.
pub async fn verify(password: String, stored: String) -> Result<bool, AppError> {
    bounded(move || {
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
}

/// A hash of a random password, verified against when the user does not exist so that
/// login takes the same time either way.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(uuid::Uuid::new_v4().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}
