//! Who is calling: registration, login (Argon2id) and logout, and the bearer-token check that
//! every other route relies on.
//!
//! Tokens are opaque: 32 random bytes, base64url for the client, their SHA-256 in the database,
//! with an expiry and a revocation time. Nothing about identity is ever read from a body.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::input::Input;
use super::users::{EducationLevel, EmploymentStatus};
use super::{ApiError, Ctx, Tag};
use crate::finance::{accounts, audit, password};

/// The authenticated caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    pub(crate) user_id: i64,
    token_id: i64,
}

impl Caller {
    /// Routes that carried a `user_id` in the reference system accept it still, but only the
    /// caller's own: any other id is answered like a missing object.
    pub(crate) fn check(&self, user_id: Option<i64>, what: &'static str) -> Result<(), ApiError> {
        match user_id {
            Some(id) if id != self.user_id => Err(ApiError::NotFound { what }),
            _ => Ok(()),
        }
    }
}

/// A bearer token from `POST /api/auth/login` or `/api/auth/register`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_token")]
pub(crate) struct Auth(pub(crate) Caller);

async fn check_token(request: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let ctx = request
        .data::<Ctx>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no context")))?;
    let hash = Sha256::digest(bearer.token.as_bytes()).to_vec();
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT id, user_id FROM api_tokens
         WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now()",
    )
    .bind(hash)
    .fetch_optional(&ctx.db)
    .await
    .map_err(ApiError::from)?;
    match row {
        Some((token_id, user_id)) => Ok(Caller { user_id, token_id }),
        None => Err(ApiError::Unauthorized.into()),
    }
}

pub(crate) struct AuthApi(pub(crate) Ctx);

/// A new user. Two accounts, "Regular" and "Savings", are opened in the preferred currency.
#[derive(Debug, Object, Deserialize)]
pub(crate) struct Register {
    email: String,
    /// At least 10 characters.
    password: String,
    first_name: String,
    last_name: String,
    job_title: Option<String>,
    employment_status: Option<EmploymentStatus>,
    education_level: Option<EducationLevel>,
    address: Option<String>,
    birthday: Option<NaiveDate>,
    /// ISO 4217, e.g. `EUR`; `USD` when left out.
    preferred_currency: Option<String>,
}

#[derive(Debug, Object, Deserialize)]
pub(crate) struct Login {
    email: String,
    password: String,
}

/// A bearer token and whose it is.
#[derive(Debug, Object)]
pub(crate) struct Session {
    access_token: String,
    /// Always `Bearer`.
    token_type: String,
    expires_at: DateTime<Utc>,
    user_id: i64,
    email: String,
}

#[derive(Debug, ApiResponse)]
enum Registered {
    /// The user exists and is logged in.
    #[oai(status = 201)]
    Created(Json<Session>),
}

#[derive(Debug, ApiResponse)]
enum LoggedOut {
    /// The token is revoked.
    #[oai(status = 204)]
    Done,
}

#[OpenApi(prefix_path = "/auth", tag = "Tag::Auth")]
impl AuthApi {
    /// Creates a user and logs them in.
    #[oai(path = "/register", method = "post")]
    async fn register(&self, body: Input<Register>) -> Result<Registered, ApiError> {
        let new = body.value;
        let email = checked_email(&new.email)?;
        if new.password.chars().count() < 10 {
            return Err(ApiError::invalid("password", "must be at least 10 characters"));
        }
        let currency = match new.preferred_currency.as_deref() {
            None => "USD".to_owned(),
            Some(code) => checked_currency(code, "preferred_currency")?,
        };
        for (field, value) in [("first_name", &new.first_name), ("last_name", &new.last_name)] {
            if value.trim().is_empty() {
                return Err(ApiError::invalid(field, "must not be empty"));
            }
        }
        let hash = password::hash(new.password).await?;
        let mut tx = self.0.db.begin().await?;
        let user_id: i64 = sqlx::query_scalar(
            "INSERT INTO users (email, first_name, last_name, job_title, employment_status,
                                education_level, address, birthday, preferred_currency)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             RETURNING id",
        )
        .bind(&email)
        .bind(new.first_name.trim())
        .bind(new.last_name.trim())
        .bind(&new.job_title)
        .bind(new.employment_status.map(|s| s.as_str()))
        .bind(new.education_level.map(|s| s.as_str()))
        .bind(&new.address)
        .bind(new.birthday)
        .bind(&currency)
        .fetch_one(&mut *tx)
        .await
        .map_err(|err| match ApiError::from(err) {
            ApiError::Conflict { .. } => ApiError::conflict("email_taken", "a user with this email exists"),
            other => other,
        })?;
        sqlx::query("INSERT INTO credentials (user_id, password_hash) VALUES ($1, $2)")
            .bind(user_id)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        accounts::open_defaults(&mut tx, user_id, &currency).await?;
        audit::record(
            &mut tx,
            user_id,
            "register",
            "user",
            Some(user_id),
            serde_json::json!({}),
        )
        .await?;
        let session = self.issue(&mut tx, user_id, email).await?;
        tx.commit().await?;
        Ok(Registered::Created(Json(session)))
    }

    /// Exchanges an email and password for a bearer token.
    #[oai(path = "/login", method = "post")]
    async fn login(&self, body: Input<Login>) -> Result<Json<Session>, ApiError> {
        let login = body.value;
        if let Err(not_until) = self.0.logins.check_key(&login.email.trim().to_lowercase()) {
            let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
            let wait = not_until.wait_time_from(now);
            return Err(ApiError::TooManyRequests {
                retry_after: wait.as_secs().max(1),
            });
        }
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT u.id, u.email, c.password_hash
             FROM users u JOIN credentials c ON c.user_id = u.id
             WHERE lower(u.email) = lower($1)",
        )
        .bind(login.email.trim())
        .fetch_optional(&self.0.db)
        .await?;
        // An unknown email costs as much as a wrong password, so timing tells nothing.
        let (user_id, email, hash) = match row {
            Some(row) => row,
            None => (0, String::new(), DUMMY_HASH.to_owned()),
        };
        let verified = password::verify(login.password, hash).await?;
        if !verified || user_id == 0 {
            return Err(ApiError::BadCredentials);
        }
        let mut tx = self.0.db.begin().await?;
        let session = self.issue(&mut tx, user_id, email).await?;
        audit::record(
            &mut tx,
            user_id,
            "login",
            "user",
            Some(user_id),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(session))
    }

    /// Revokes the token this request carries.
    #[oai(path = "/logout", method = "post")]
    async fn logout(&self, auth: Auth) -> Result<LoggedOut, ApiError> {
        sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE id = $1")
            .bind(auth.0.token_id)
            .execute(&self.0.db)
            .await?;
        Ok(LoggedOut::Done)
    }
}

impl AuthApi {
    async fn issue(&self, conn: &mut PgConnection, user_id: i64, email: String) -> Result<Session, ApiError> {
        let raw: [u8; 32] = rand::random();
        let token = URL_SAFE_NO_PAD.encode(raw);
        let hash = Sha256::digest(token.as_bytes()).to_vec();
        let ttl =
            chrono::Duration::from_std(self.0.token_ttl).map_err(|err| ApiError::Internal(err.into()))?;
        let expires_at = Utc::now() + ttl;
        sqlx::query("INSERT INTO api_tokens (user_id, token_hash, expires_at) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(hash)
            .bind(expires_at)
            .execute(conn)
            .await?;
        Ok(Session {
            access_token: token,
            token_type: "Bearer".to_owned(),
            expires_at,
            user_id,
            email,
        })
    }
}

/// A valid Argon2id hash of nothing anyone knows, verified against when the email is unknown.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$FTSUEqm4VmzlGJ8iXgAPHzTJDXNsb9UHmr8D5MRvjyU";

fn checked_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') && email.len() <= 254 => {
            Ok(email.to_owned())
        }
        _ => Err(ApiError::invalid("email", "is not an email address")),
    }
}

/// An ISO 4217 code: three capital letters.
pub(crate) fn checked_currency(code: &str, field: &str) -> Result<String, ApiError> {
    match code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        true => Ok(code.to_owned()),
        false => Err(ApiError::invalid(field, "must be an ISO 4217 code such as `EUR`")),
    }
}

#[cfg(test)]
mod tests {
    use argon2::{Argon2, PasswordVerifier};

    use super::*;

    #[test]
    fn the_dummy_hash_is_a_valid_argon2id_hash() {
        let result = Argon2::default().verify_password(b"anything", DUMMY_HASH);
        assert!(
            matches!(result, Err(argon2::password_hash::Error::PasswordInvalid)),
            "{result:?}"
        );
    }
}
