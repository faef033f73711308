//! Cursor pagination. A list returns at most `limit` items; when there are more, the response
//! carries `Link: <…&cursor=…>; rel="next"` and `X-Next-Cursor`. A cursor is the sort key of the
//! last item returned, opaque to clients (base64url of a small JSON array).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem::Request;
use poem::http::Uri;
use poem_openapi::payload::{Json, Response};
use poem_openapi::types::{ToJSON, Type};
use serde_json::Value;

use super::ApiError;

/// The sort key a cursor carries, decoded.
pub(crate) fn decode(cursor: Option<&str>) -> Result<Option<Vec<Value>>, ApiError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let invalid = || ApiError::BadRequest {
        detail: "this cursor was not issued by this server".to_owned(),
        field: Some("cursor".to_owned()),
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Array(key)) => Ok(Some(key)),
        _ => Err(invalid()),
    }
}

/// One key part of a decoded cursor, as `T`.
pub(crate) fn part<T: serde::de::DeserializeOwned>(key: &[Value], index: usize) -> Result<T, ApiError> {
    key.get(index)
        .and_then(|value| serde_json::from_value(value.clone()).ok())
        .ok_or_else(|| ApiError::BadRequest {
            detail: "this cursor was not issued by this server".to_owned(),
            field: Some("cursor".to_owned()),
        })
}

/// The id a cursor of a list ordered by id holds, or `none` without a cursor.
pub(crate) fn id(cursor: Option<&str>, none: i64) -> Result<i64, ApiError> {
    match decode(cursor)? {
        Some(key) => part(&key, 0),
        None => Ok(none),
    }
}

/// `limit` clamped to `1..=max`, or `default`.
pub(crate) fn limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(limit) if (1..=max).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::BadRequest {
            detail: format!("must be between 1 and {max}"),
            field: Some("limit".to_owned()),
        }),
    }
}

/// Cuts `rows`, fetched with one more than `limit`, to `limit`, and gives the cursor after the
/// last one kept when there were more.
pub(crate) fn split<R>(rows: &mut Vec<R>, limit: i64, key: impl Fn(&R) -> Vec<Value>) -> Option<String> {
    if rows.len() as i64 <= limit {
        return None;
    }
    rows.truncate(limit as usize);
    rows.last()
        .map(|last| URL_SAFE_NO_PAD.encode(Value::Array(key(last)).to_string()))
}

/// The first `limit` of `rows` (fetched with one more than `limit`), with the next-page headers
/// when there were more.
pub(crate) fn page<R, T>(
    request: &Request,
    mut rows: Vec<R>,
    limit: i64,
    key: impl Fn(&R) -> Vec<Value>,
    item: impl Fn(R) -> T,
) -> Response<Json<Vec<T>>>
where
    T: ToJSON + Type,
{
    let next = split(&mut rows, limit, key);
    let items = Json(rows.into_iter().map(item).collect());
    match next {
        None => Response::new(items),
        Some(cursor) => Response::new(items)
            .header(
                "link",
                format!("<{}>; rel=\"next\"", next_url(full_uri(request), &cursor)),
            )
            .header("x-next-cursor", cursor),
    }
}

fn full_uri(request: &Request) -> &Uri {
    request
        .data::<super::request_log::FullUri>()
        .map_or(request.uri(), |full| &full.0)
}

/// `uri` with its `cursor` parameter set to `cursor`.
fn next_url(uri: &Uri, cursor: &str) -> String {
    let mut query: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("cursor="))
        .collect();
    let cursor = format!("cursor={cursor}");
    query.push(&cursor);
    format!("{}?{}", uri.path(), query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_url_replaces_the_cursor() {
        let uri: Uri = "/api/x?limit=2&cursor=abc&start_date=2026-01-01".parse().unwrap();
        assert_eq!(
            next_url(&uri, "def"),
            "/api/x?limit=2&start_date=2026-01-01&cursor=def"
        );
        let mut rows = vec![1, 2, 3];
        let cursor = split(&mut rows, 2, |row| vec![Value::from(*row)]).unwrap();
        assert_eq!(rows, [1, 2]);
        assert_eq!(decode(Some(&cursor)).unwrap(), Some(vec![Value::from(2)]));
        assert!(decode(Some("!!")).is_err());
    }
}
