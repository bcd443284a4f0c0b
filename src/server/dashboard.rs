//! `GET /`: the dashboard page (SPEC 4.5), self-contained and embedded in
//! the binary (placeholder until the dashboard issue lands).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The page.
pub async fn index() -> Response {
    (StatusCode::NOT_FOUND, super::ApiError::not_found("The dashboard is not built yet")).into_response()
}
