//! One structured log line per request, with a request id that the response echoes in
//! `X-Request-Id` and the audit log records.

use std::time::Instant;

use poem::{Endpoint, IntoResponse, Request, Response};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, if any.
pub(crate) fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The request's URI as the client sent it; routes nested under a prefix see it stripped.
#[derive(Debug, Clone)]
pub(crate) struct FullUri(pub(crate) poem::http::Uri);

/// Gives the request an id (the client's `X-Request-Id` if it is sane), runs it, logs it.
pub(crate) async fn log<E: Endpoint>(endpoint: E, mut request: Request) -> poem::Result<Response> {
    let id = request
        .header("x-request-id")
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    request.set_data(FullUri(request.uri().clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let result = REQUEST_ID.scope(id.clone(), endpoint.call(request)).await;
    let mut response = match result {
        Ok(output) => output.into_response(),
        Err(err) => err.into_response(),
    };
    tracing::info!(
        request_id = %id,
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    if let Ok(value) = id.parse() {
        response.headers_mut().insert("x-request-id", value);
    }
    Ok(response)
}
