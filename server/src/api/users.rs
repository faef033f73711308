//! The caller's profile: `GET`/`PUT /api/profile`, and the reference's
//! `GET /api/database/users/{user_id}`, which answers only for the caller's own id.

use chrono::{DateTime, NaiveDate, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;

use super::auth::{Auth, checked_currency};
use super::input::Input;
use super::{ApiError, Ctx, Tag};
use crate::finance::audit;

/// An enum stored as text, with the reference system's labels on the wire.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum, serde::Deserialize)]
        pub(crate) enum $name {
            $(#[oai(rename = $label)] #[serde(rename = $label)] $variant,)+
        }

        impl $name {
            pub(crate) fn as_str(self) -> &'static str {
                match self { $($name::$variant => $label,)+ }
            }

            pub(crate) fn from_db(text: &str) -> Option<$name> {
                match text { $($label => Some($name::$variant),)+ _ => None }
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(EmploymentStatus {
    FullTime = "Employed Full-time",
    PartTime = "Employed Part-time",
    Unemployed = "Unemployed",
    Retired = "Retired",
    Student = "Student",
});

text_enum!(EducationLevel {
    HighSchool = "High school",
    Associate = "Associate degree",
    Bachelor = "Bachelor degree",
    Masters = "Masters Degree",
    Phd = "PhD",
});

pub(crate) struct UsersApi(pub(crate) Ctx);

/// A user's profile.
#[derive(Debug, Object)]
pub(crate) struct Profile {
    user_id: i64,
    email: String,
    first_name: String,
    last_name: String,
    job_title: Option<String>,
    employment_status: Option<EmploymentStatus>,
    education_level: Option<EducationLevel>,
    address: Option<String>,
    birthday: Option<NaiveDate>,
    preferred_currency: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Changes to a profile: only the fields sent change.
#[derive(Debug, Object, Deserialize)]
pub(crate) struct ProfileChanges {
    first_name: Option<String>,
    last_name: Option<String>,
    job_title: Option<String>,
    employment_status: Option<EmploymentStatus>,
    education_level: Option<EducationLevel>,
    address: Option<String>,
    birthday: Option<NaiveDate>,
    preferred_currency: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ProfileRow {
    id: i64,
    email: String,
    first_name: String,
    last_name: String,
    job_title: Option<String>,
    employment_status: Option<String>,
    education_level: Option<String>,
    address: Option<String>,
    birthday: Option<NaiveDate>,
    preferred_currency: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ProfileRow> for Profile {
    fn from(row: ProfileRow) -> Profile {
        Profile {
            user_id: row.id,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            job_title: row.job_title,
            employment_status: row
                .employment_status
                .as_deref()
                .and_then(EmploymentStatus::from_db),
            education_level: row.education_level.as_deref().and_then(EducationLevel::from_db),
            address: row.address,
            birthday: row.birthday,
            preferred_currency: row.preferred_currency,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[OpenApi(tag = "Tag::Users")]
impl UsersApi {
    /// The caller's profile.
    #[oai(path = "/profile", method = "get")]
    async fn profile(&self, auth: Auth) -> Result<Json<Profile>, ApiError> {
        Ok(Json(self.load(auth.0.user_id).await?))
    }

    /// Changes the caller's profile.
    #[oai(path = "/profile", method = "put")]
    async fn update_profile(
        &self,
        auth: Auth,
        body: Input<ProfileChanges>,
    ) -> Result<Json<Profile>, ApiError> {
        let changes = body.value;
        let currency = changes
            .preferred_currency
            .as_deref()
            .map(|code| checked_currency(code, "preferred_currency"))
            .transpose()?;
        let mut tx = self.0.db.begin().await?;
        sqlx::query(
            "UPDATE users SET
                first_name = coalesce($2, first_name),
                last_name = coalesce($3, last_name),
                job_title = coalesce($4, job_title),
                employment_status = coalesce($5, employment_status),
                education_level = coalesce($6, education_level),
                address = coalesce($7, address),
                birthday = coalesce($8, birthday),
                preferred_currency = coalesce($9, preferred_currency),
                updated_at = now()
             WHERE id = $1",
        )
        .bind(auth.0.user_id)
        .bind(&changes.first_name)
        .bind(&changes.last_name)
        .bind(&changes.job_title)
        .bind(changes.employment_status.map(|s| s.as_str()))
        .bind(changes.education_level.map(|s| s.as_str()))
        .bind(&changes.address)
        .bind(changes.birthday)
        .bind(currency)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            auth.0.user_id,
            "update",
            "user",
            Some(auth.0.user_id),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(self.load(auth.0.user_id).await?))
    }

    /// A user by id, as the reference system served it: only the caller's own id is found.
    #[oai(path = "/database/users/:user_id", method = "get")]
    async fn user(&self, auth: Auth, user_id: Path<i64>) -> Result<Json<Profile>, ApiError> {
        auth.0.check(Some(user_id.0), "user")?;
        Ok(Json(self.load(auth.0.user_id).await?))
    }
}

impl UsersApi {
    async fn load(&self, user_id: i64) -> Result<Profile, ApiError> {
        let row: Option<ProfileRow> = sqlx::query_as("SELECT * FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.0.db)
            .await?;
        row.map(Profile::from).ok_or(ApiError::NotFound { what: "user" })
    }
}
