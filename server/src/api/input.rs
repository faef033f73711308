//! Request bodies: JSON read with serde so an error names the field at fault (`amount`,
//! `rows[2].date`), documented in OpenAPI through the type's poem-openapi schema.

use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::problem::ApiError;

/// A JSON request body of type `T`, with the digest of its content (for idempotency keys).
#[derive(Debug)]
pub(crate) struct Input<T> {
    pub(crate) value: T,
    digest: [u8; 32],
}

impl<T> Input<T> {
    /// SHA-256 of the body's JSON, re-serialized so that whitespace does not matter.
    pub(crate) fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

/// The largest request body accepted, in bytes, as set when the application is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

impl<'a, T: Type + DeserializeOwned + Send> ApiExtractor<'a> for Input<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: schema::<T>(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _options: ExtractParamOptions<()>,
    ) -> poem::Result<Input<T>> {
        let is_json = request.content_type().is_some_and(|content_type| {
            content_type.starts_with("application/json")
                || content_type
                    .split(';')
                    .next()
                    .is_some_and(|t| t.ends_with("+json"))
        });
        if !is_json {
            return Err(ApiError::BadRequest {
                detail: "send the body as JSON with `Content-Type: application/json`".to_owned(),
                field: None,
            }
            .into());
        }
        let limit = request.data::<BodyLimit>().map_or(1 << 20, |limit| limit.0);
        let bytes = body
            .take()?
            .into_bytes_limit(limit)
            .await
            .map_err(|err| match err {
                poem::error::ReadBodyError::PayloadTooLarge => ApiError::TooLarge,
                other => ApiError::BadRequest {
                    detail: format!("the body could not be read: {other}"),
                    field: None,
                },
            })?;
        Ok(parse(&bytes)?)
    }
}

fn schema<T: Type>() -> MetaSchemaRef {
    T::schema_ref()
}

/// Reads `bytes` as a `T`, naming the field of the first error.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<Input<T>, ApiError> {
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| ApiError::BadRequest {
        detail: format!("the body is not valid JSON: {err}"),
        field: None,
    })?;
    let digest = Sha256::digest(json.to_string().as_bytes()).into();
    let value = serde_path_to_error::deserialize(json).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        // serde reports a missing field at the object that lacks it.
        match message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            Some(field) if path == "." => ApiError::invalid(field, "is required"),
            Some(field) => ApiError::invalid(format!("{path}.{field}"), "is required"),
            None => ApiError::invalid(if path == "." { "body".to_owned() } else { path }, message),
        }
    })?;
    Ok(Input { value, digest })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::money::Money;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Row {
        amount: Money,
        date: chrono::NaiveDate,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Rows {
        rows: Vec<Row>,
    }

    fn error(body: &str) -> String {
        parse::<Rows>(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            error(
                r#"{"rows": [{"amount": "1", "date": "2026-01-01"}, {"amount": "1.234", "date": "2026-01-01"}]}"#
            ),
            "rows[1].amount: `1.234` has more than two decimal places"
        );
        assert_eq!(
            error(r#"{"rows": [{"amount": "1"}]}"#),
            "rows[0].date: is required"
        );
        assert_eq!(error(r#"{}"#), "rows: is required");
        assert!(error("{").starts_with("the body is not valid JSON"));
    }

    #[test]
    fn the_digest_ignores_whitespace() {
        let a = parse::<serde_json::Value>(br#"{"a": 1}"#).unwrap();
        let b = parse::<serde_json::Value>(br#"{ "a" :1 }"#).unwrap();
        let c = parse::<serde_json::Value>(br#"{"a": 2}"#).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
    }
}
