//! Request guards: bearer-token auth (constant-time compare, header or
//! `access_token` query parameter) and the per-client REST rate limit, with
//! the client found behind trusted load balancers (`X-Forwarded-For`).
//!
//! Both are axum middleware; neither logs a token.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
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

/// The client's address: the peer, unless the peer is a trusted proxy; then
/// the `X-Forwarded-For` entries are walked from the right (the nearest hop)
/// past every trusted proxy, and the first untrusted address is the client.
/// Entries left of it were written by the client itself and are not
/// believed. Without trusted proxies the header is ignored (anyone can send
/// it). A garbled entry stops the walk at the last address known good.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`.
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        // A line that is not text is one garbled hop: the walk stops there.
        hops.extend(value.to_str().map_or_else(|_| vec!["?"], |text| text.split(',').collect()));
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))?;
    Some(ip.to_canonical())
}

/// Applies the per-client limit to history endpoints (429 with Retry-After).
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(limiter) = &state.limiter else { return next.run(request).await };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let ip = client_ip(peer, request.headers(), &state.trusted_proxies);
    match limiter.check_key(&ip) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::rate_limited(wait.as_secs().max(1)).into_response()
        }
    }
}

/// Refuses a request whose head (request line and headers, as sent) is over
/// [`MAX_HEAD_BYTES`](super::listener::MAX_HEAD_BYTES) with 431 in the JSON
/// error shape.
pub async fn head_limit(request: Request, next: Next) -> Response {
    let head = request.method().as_str().len()
        + request.uri().path_and_query().map_or(0, |target| target.as_str().len())
        + request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum::<usize>();
    if head > super::listener::MAX_HEAD_BYTES {
        return ApiError::new_status(
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "The request head is {head} bytes; at most {} are accepted",
                super::listener::MAX_HEAD_BYTES
            ),
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|net| net.parse().expect("a CIDR range")).collect()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().expect("a header value"));
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(client_ip(ip("198.51.100.1"), &headers, &[]), ip("198.51.100.1"));
        assert_eq!(client_ip(ip("198.51.100.1"), &headers, &nets(&["10.0.0.0/8"])), ip("198.51.100.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        // The client spoofed a first entry; the load balancer appended the real one.
        let headers = forwarded(&["1.1.1.1, 203.0.113.7, 10.0.0.5"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &headers, &trusted), ip("203.0.113.7"));
        // Several header lines count as one list, in order.
        let headers = forwarded(&["1.1.1.1", "203.0.113.9:4711", "10.0.0.5"]);
        assert_eq!(client_ip(ip("10.1.2.3"), &headers, &trusted), ip("203.0.113.9"));
        let headers = forwarded(&["[2001:db8::7]:443"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &headers, &trusted), ip("2001:db8::7"));
        // A dual-stack listener's IPv4-mapped peer is still the trusted proxy.
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(client_ip(ip("::ffff:10.0.0.5"), &headers, &trusted), ip("203.0.113.7"));
        let headers = forwarded(&["::ffff:203.0.113.7, ::ffff:10.0.0.6"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &headers, &trusted), ip("203.0.113.7"));
    }

    #[test]
    fn missing_all_trusted_or_garbled_headers_fall_back_safely() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted), ip("10.0.0.1"));
        // Every hop trusted: the leftmost is as far as we can see.
        let headers = forwarded(&["10.9.9.9, 10.0.0.5"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &trusted), ip("10.9.9.9"));
        // Garbage stops the walk at the last good address.
        let headers = forwarded(&["203.0.113.7, unknown, 10.0.0.5"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &trusted), ip("10.0.0.5"));
        // A line that is not text (written by the client, left of the
        // proxy's) does not hide the hop the proxy appended.
        let mut headers = HeaderMap::new();
        headers
            .append("x-forwarded-for", axum::http::HeaderValue::from_bytes(b"1.1.1.1\xff").expect("opaque"));
        headers.append("x-forwarded-for", "203.0.113.7".parse().expect("a header value"));
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &trusted), ip("203.0.113.7"));
    }
}
