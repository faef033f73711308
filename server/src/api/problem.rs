//! Errors as RFC 9457 problem details: `application/problem+json` with a stable `code`, the
//! right status, and the path of the field at fault for validation errors.
//!
//! Handlers return [`ApiError`]; errors raised by poem itself (an unknown route, a body over
//! the limit, a malformed parameter) are turned into the same shape by [`from_poem`].

use poem::error::ResponseError;
use poem::http::{StatusCode, header};
use poem::{Body, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object};

use crate::finance::accounts::MoveError;
use crate::finance::ledger::LedgerError;

/// What went wrong, as a client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request that cannot be understood at all (malformed JSON, a bad parameter).
    #[error("{detail}")]
    BadRequest { detail: String, field: Option<String> },
    #[error("this route needs a valid bearer token")]
    Unauthorized,
    #[error("the email or the password is wrong")]
    BadCredentials,
    /// Missing, or someone else's: the two are never told apart.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The request conflicts with the current state (a duplicate name, too little money).
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("the request body is larger than this server accepts")]
    TooLarge,
    /// Well-formed, but a field's value is not acceptable.
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    /// Well-formed, but not acceptable as a whole (an idempotency key reused for another body).
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("too many requests; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error("the database is unreachable")]
    Unavailable,
    /// The assistant's model did not answer (or the assistant is not set up); what the user
    /// said is kept, and the conversation goes on when they try again.
    #[error("the assistant cannot answer right now; your message is saved, try again in {retry_after} s")]
    AssistantUnavailable { retry_after: u64 },
    /// An error poem raised with a status of its own, such as 405 for a method a route lacks.
    #[error("{detail}")]
    Http { status: StatusCode, detail: String },
    /// A bug or an unexpected failure: logged whole, shown to the client as a bare 500.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub(crate) fn invalid(field: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn conflict(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// The stable, machine-readable name of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::BadCredentials => "invalid_credentials",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict { code, .. } | ApiError::Unprocessable { code, .. } => code,
            ApiError::TooLarge => "payload_too_large",
            ApiError::Invalid { .. } => "validation_failed",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unavailable => "database_unavailable",
            ApiError::AssistantUnavailable { .. } => "assistant_unavailable",
            ApiError::Http { status, .. } => match *status {
                StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                _ => "bad_request",
            },
            ApiError::Internal(_) => "internal",
        }
    }

    fn problem(&self) -> Problem {
        let status = self.status();
        let (detail, errors) = match self {
            ApiError::Invalid { field, detail } => (
                self.to_string(),
                Some(vec![FieldError {
                    field: field.clone(),
                    detail: detail.clone(),
                }]),
            ),
            ApiError::BadRequest {
                field: Some(field),
                detail,
            } => (
                detail.clone(),
                Some(vec![FieldError {
                    field: field.clone(),
                    detail: detail.clone(),
                }]),
            ),
            _ => (self.to_string(), None),
        };
        Problem {
            r#type: format!("urn:finch:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: self.code().to_owned(),
            detail,
            errors,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> ApiError {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::error!(error = %err, "database unreachable");
                ApiError::Unavailable
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => ApiError::NotFound {
                what: referenced(db.constraint().unwrap_or_default()),
            },
            sqlx::Error::Database(db) if db.is_unique_violation() => ApiError::conflict(
                "already_exists",
                format!(
                    "this would duplicate an existing {}",
                    db.table().unwrap_or("row").trim_end_matches('s')
                ),
            ),
            _ => ApiError::Internal(err.into()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> ApiError {
        match err.downcast::<sqlx::Error>() {
            Ok(err) => ApiError::from(err),
            Err(err) => ApiError::Internal(err),
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(err: LedgerError) -> ApiError {
        match err {
            LedgerError::Invalid { field, detail } => ApiError::invalid(field, detail),
            LedgerError::NotFound => ApiError::NotFound { what: "transaction" },
            LedgerError::CurrencyMismatch => ApiError::invalid("transfer_to_id", err.to_string()),
            LedgerError::Move(err) => err.into(),
            LedgerError::Database(err) => err.into(),
        }
    }
}

impl From<MoveError> for ApiError {
    fn from(err: MoveError) -> ApiError {
        match err {
            MoveError::NoAccount(_) => ApiError::NotFound { what: "account" },
            MoveError::InsufficientFunds { .. } => ApiError::conflict("insufficient_funds", err.to_string()),
            MoveError::Database(err) => err.into(),
        }
    }
}

/// What a composite foreign key points at, from its name (`transactions_budget` → `budget`).
fn referenced(constraint: &str) -> &'static str {
    match constraint.rsplit_once('_').map(|(_, what)| what) {
        Some("budget") => "budget",
        Some("account") | Some("to") => "account",
        Some("income") => "income",
        Some("conversation") => "conversation",
        _ => "referenced object",
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid { .. } | ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable | ApiError::AssistantUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Http { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn as_response(&self) -> Response {
        if let ApiError::Internal(err) = self {
            tracing::error!(error = format!("{err:#}"), "internal error");
        }
        let body = self.problem().to_json_string();
        let mut response = Response::builder()
            .status(self.status())
            .content_type(PROBLEM_JSON)
            .body(Body::from_string(body));
        match self {
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("a header"));
            }
            ApiError::TooManyRequests { retry_after } | ApiError::AssistantUnavailable { retry_after } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    retry_after.to_string().parse().expect("a header"),
                );
            }
            ApiError::Unavailable => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, "5".parse().expect("a header"));
            }
            _ => {}
        }
        response
    }
}

const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details object.
#[derive(Debug, Object)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:finch:problem:` and the code.
    #[oai(rename = "type")]
    pub r#type: String,
    /// The HTTP status phrase.
    pub title: String,
    pub status: u16,
    /// The stable name of the problem, e.g. `not_found`, `validation_failed`, `insufficient_funds`.
    pub code: String,
    /// What happened, for a person.
    pub detail: String,
    /// For validation errors: each field at fault, by its path in the request.
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<FieldError>>,
}

/// One field at fault.
#[derive(Debug, Object)]
pub struct FieldError {
    /// The field's path in the request body (`amount`, `items[2].date`) or the parameter's name.
    pub field: String,
    pub detail: String,
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        let response = |status: u16, description: &'static str| MetaResponse {
            description,
            status: Some(status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: PROBLEM_JSON,
                schema: Problem::schema_ref(),
            }],
            headers: vec![],
        };
        MetaResponses {
            responses: vec![
                response(400, "The request is malformed."),
                response(401, "No valid bearer token."),
                response(404, "Not found (or not the caller's)."),
                response(409, "Conflicts with the current state."),
                response(413, "The body is too large."),
                response(422, "A field's value is not acceptable."),
                response(429, "Too many requests."),
                response(500, "An internal error."),
                response(503, "The database is unreachable."),
            ],
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// The problem response for an error poem raised before or around a handler.
pub(crate) fn from_poem(err: poem::Error) -> Response {
    if let Some(err) = err.downcast_ref::<ApiError>() {
        return err.as_response();
    }
    let status = err.status();
    let api = if let Some(param) = err.downcast_ref::<poem_openapi::error::ParsePathError>() {
        ApiError::NotFound { what: param.name }
    } else if let Some(param) = err.downcast_ref::<poem_openapi::error::ParseParamError>() {
        ApiError::BadRequest {
            detail: param.reason.clone(),
            field: Some(param.name.to_owned()),
        }
    } else {
        match status {
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
            StatusCode::NOT_FOUND => ApiError::NotFound { what: "route" },
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
            status if status.is_server_error() => ApiError::Internal(anyhow::anyhow!("{err}")),
            status => ApiError::Http {
                status,
                detail: err.to_string(),
            },
        }
    };
    api.as_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_keys_name_what_they_point_at() {
        assert_eq!(referenced("transactions_budget"), "budget");
        assert_eq!(referenced("transactions_transfer_to"), "account");
        assert_eq!(referenced("messages_conversation"), "conversation");
        assert_eq!(referenced("weird"), "referenced object");
    }
}
