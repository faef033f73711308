//! Passwords: Argon2id hashes as PHC strings, computed off the async threads (a hash takes tens
//! of milliseconds of CPU on purpose).

use anyhow::{Context, anyhow};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// The Argon2id hash of `password`, with a fresh salt.
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|err| anyhow!("hashing a password: {err}"))
    })
    .await
    .context("the hashing task")?
}

/// Whether `password` matches `hash` (a malformed hash matches nothing).
pub async fn verify(password: String, hash: String) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .context("the verifying task")
}
