//! `ApiError`: the one error shape every HTTP error response has (docs/API.md,
//! Errors; compatible with the original system):
//! `{"error":{"code":"VALIDATION_ERROR","message":"…","details":…}}`.
//!
//! Internal causes are logged here and never sent to clients.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// An HTTP error with its documented code (docs/API.md, Errors).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Documented code: `VALIDATION_ERROR`, `NOT_FOUND`, …
    pub code: &'static str,
    /// One sentence for people.
    pub message: String,
    /// Structured details (which parameter, what was expected), or null.
    pub details: Value,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: Value::Null, retry_after: None }
    }

    /// 400 `VALIDATION_ERROR`: a parameter is malformed.
    pub fn validation(message: impl Into<String>, details: Value) -> ApiError {
        ApiError { details, ..ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message) }
    }

    /// 400 `BAD_REQUEST`: the request as a whole is unusable.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 401 `UNAUTHORIZED`.
    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "A valid bearer token is required")
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 405, with the documented JSON shape (code `BAD_REQUEST`, the closest
    /// documented code; docs/API.md, Errors).
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "BAD_REQUEST", "Method not allowed on this path")
    }

    /// 429 `RATE_LIMITED`.
    pub fn rate_limited(retry_after_secs: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after_secs.max(1)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", "Too many requests, slow down")
        }
    }

    /// 503 `SERVICE_UNAVAILABLE`.
    pub fn unavailable(message: impl Into<String>, retry_after_secs: Option<u64>) -> ApiError {
        ApiError {
            retry_after: retry_after_secs,
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", message)
        }
    }

    /// 500 `INTERNAL_ERROR`; `cause` is logged, not sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error answering a request");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "Internal server error")
    }

    /// Any error status, with its documented code (`BAD_REQUEST` for the 4xx
    /// without a code of their own).
    pub fn new_status(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::new(status, code_for(status), message)
    }

    /// Attaches structured details.
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code, "message": self.message, "details": self.details }
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// The documented code for an HTTP error status.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
        StatusCode::SERVICE_UNAVAILABLE => "SERVICE_UNAVAILABLE",
        status if status.is_server_error() => "INTERNAL_ERROR",
        _ => "BAD_REQUEST",
    }
}

/// The most of a plain-text error body kept as the JSON message.
const PLAIN_BODY_LIMIT: usize = 4096;

/// Middleware: every error response that is not JSON yet (an extractor's
/// plain-text rejection such as a missing WebSocket upgrade or a path that is
/// not UTF-8, a layer's empty 413) becomes the documented JSON shape with
/// the same status and headers (`Retry-After` kept). Its text, if any, is
/// the message.
pub async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, PLAIN_BODY_LIMIT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message =
        if text.is_empty() { status.canonical_reason().unwrap_or("Error").to_owned() } else { text };
    let json = ApiError::new(status, code_for(status), message).into_response();
    let (json_parts, json_body) = json.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &json_parts.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    Response::from_parts(parts, json_body)
}
