//! `ApiError`: the one error shape every HTTP error response has (SPEC 4.1,
//! compatible with the original system):
//! `{"error":{"code":"VALIDATION_ERROR","message":"…","details":…}}`.
//!
//! Internal causes are logged here and never sent to clients.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// An HTTP error with its SPEC code.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// SPEC code: `VALIDATION_ERROR`, `NOT_FOUND`, …
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

    /// 405, with the SPEC's JSON shape (code `BAD_REQUEST`, the closest SPEC code).
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
