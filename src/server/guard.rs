//! Request guards: bearer-token auth (constant-time compare, header or
//! `access_token` query parameter) and the per-client REST rate limit.
//!
//! Both are axum middleware; neither logs a token.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::params::Params;
use super::AppState;

/// Per-IP limiter for history endpoints.
pub type KeyedLimiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

/// Builds the limiter; `None` when the limit is 0 (off).
pub fn limiter(per_minute: u32) -> Option<Arc<KeyedLimiter>> {
    NonZeroU32::new(per_minute).map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n))))
}

/// Whether `token` is one of `accepted`, comparing in constant time.
pub fn token_accepted(token: &str, accepted: &[crate::config::Secret]) -> bool {
    let mut ok = subtle::Choice::from(0u8);
    for candidate in accepted {
        let candidate = candidate.expose().as_bytes();
        // ct_eq on unequal lengths is false without leaking where they differ.
        ok |= candidate.ct_eq(token.as_bytes());
    }
    ok.into()
}

/// Requires a valid token on `/v1/*` when `auth.tokens` is set.
pub async fn auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let tokens = &state.config.auth.tokens;
    if tokens.is_empty() {
        return next.run(request).await;
    }
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(|token| token.trim().to_owned());
    let token =
        from_header.or_else(|| Params::parse(request.uri().query()).get("access_token").map(str::to_owned));
    match token {
        Some(token) if token_accepted(&token, tokens) => next.run(request).await,
        _ => {
            let mut response = ApiError::unauthorized().into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// Applies the per-client limit to history endpoints (429 with Retry-After).
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(limiter) = &state.limiter else { return next.run(request).await };
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    match limiter.check_key(&ip) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::rate_limited(wait.as_secs().max(1)).into_response()
        }
    }
}
