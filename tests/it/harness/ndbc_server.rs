//! A local stand-in for www.ndbc.noaa.gov: serves the real fixture files
//! (`tests/fixtures/ndbc`) over HTTP on 127.0.0.1, with ETag and
//! Last-Modified validators and 304 answers to conditional GETs, so the
//! worker is tested against real bytes and never against the internet.
//!
//! Per-test overrides change what a path serves: a replaced body (new
//! validators), a status code, an HTML page with 200, or a hung response.
//! Every request is counted per path.
//!
//! Paths: `/realtime2/{ID}.txt`, `/latest_obs/latest_obs.txt`,
//! `/stations/activestations.xml` (the fixture tree's layout).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

/// What a path serves instead of its fixture file.
#[derive(Debug, Clone, PartialEq)]
pub enum Override {
    /// This status with a short text body.
    Status(u16),
    /// Headers never come (until the client gives up).
    Hang,
}

#[derive(Default)]
struct ServerState {
    /// Replaced bodies, by path, with their version (for Last-Modified).
    bodies: HashMap<String, (Vec<u8>, u64)>,
    /// Non-body overrides by path.
    overrides: HashMap<String, Override>,
    /// Requests received, by path.
    counts: HashMap<String, usize>,
}

/// A running fake NDBC server; stops when dropped.
pub struct NdbcServer {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    state: Arc<Mutex<ServerState>>,
    shutdown: CancellationToken,
}

/// An HTML error page, the way a CDN serves it: status 200.
pub const HTML_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n\
<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request.</p></body></html>\n";

impl NdbcServer {
    /// Starts serving the fixture tree.
    pub async fn start() -> NdbcServer {
        let state = Arc::new(Mutex::new(ServerState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake NDBC server");
        let addr: SocketAddr = listener.local_addr().expect("its address");
        let shutdown = CancellationToken::new();
        let app = axum::Router::new().fallback(serve).with_state(Arc::clone(&state));
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
        NdbcServer { base_url: format!("http://{addr}"), state, shutdown }
    }

    /// `ndbc.realtime_base`.
    pub fn realtime_base(&self) -> String {
        format!("{}/realtime2", self.base_url)
    }

    /// `ndbc.latest_obs_url`.
    pub fn latest_obs_url(&self) -> String {
        format!("{}/latest_obs/latest_obs.txt", self.base_url)
    }

    /// `ndbc.stations_url`.
    pub fn stations_url(&self) -> String {
        format!("{}/stations/activestations.xml", self.base_url)
    }

    /// The environment that points buoycast's config at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("NDBC_API_BASE".into(), self.realtime_base()),
            ("BUOYCAST_LATEST_OBS_URL".into(), self.latest_obs_url()),
            ("BUOYCAST_STATIONS_URL".into(), self.stations_url()),
        ]
    }

    /// Serves `body` at `path` from now on (new ETag and Last-Modified).
    pub fn set_body(&self, path: &str, body: impl Into<Vec<u8>>) {
        let mut state = self.lock();
        let version = state.bodies.get(path).map_or(1, |(_, version)| version + 1);
        state.bodies.insert(path.to_owned(), (body.into(), version));
        state.overrides.remove(path);
    }

    /// Makes `path` answer with `answer` instead of its body.
    pub fn set_override(&self, path: &str, answer: Override) {
        self.lock().overrides.insert(path.to_owned(), answer);
    }

    /// Removes the override of `path`.
    pub fn clear_override(&self, path: &str) {
        self.lock().overrides.remove(path);
    }

    /// How many requests `path` received.
    pub fn requests(&self, path: &str) -> usize {
        self.lock().counts.get(path).copied().unwrap_or(0)
    }

    /// Requests per path so far.
    pub fn all_requests(&self) -> HashMap<String, usize> {
        self.lock().counts.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.state.lock().expect("the fake NDBC server's state lock is never poisoned")
    }
}

impl Drop for NdbcServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn serve(State(state): State<Arc<Mutex<ServerState>>>, request: Request<Body>) -> Response {
    let path = request.uri().path().to_owned();
    let (answer, replaced) = {
        let mut state = state.lock().expect("state lock");
        *state.counts.entry(path.clone()).or_insert(0) += 1;
        (state.overrides.get(&path).cloned(), state.bodies.get(&path).cloned())
    };
    match answer {
        Some(Override::Status(code)) => {
            let status = StatusCode::from_u16(code).expect("a valid status code");
            return (status, format!("{code} from the fake NDBC server\n")).into_response();
        }
        Some(Override::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        None => {}
    }
    let (body, version) = match replaced {
        Some(found) => found,
        None => {
            let relative = path.trim_start_matches('/');
            if relative.contains("..") {
                return StatusCode::BAD_REQUEST.into_response();
            }
            match std::fs::read(super::fixtures::root().join(relative)) {
                Ok(body) => (body, 0),
                Err(_) => return (StatusCode::NOT_FOUND, "Not Found\n").into_response(),
            }
        }
    };
    let etag = {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut hasher);
        format!("\"{:016x}\"", hasher.finish())
    };
    // 2018-08-01 15:20 UTC plus one minute per replacement.
    let modified = chrono::DateTime::from_timestamp(1_533_136_800 + 60 * version as i64, 0)
        .expect("a valid time")
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if not_modified(request.headers(), &etag, &modified) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (header::ETAG, etag),
            (header::LAST_MODIFIED, modified),
            (header::CONTENT_TYPE, "text/plain".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// RFC 9110: If-None-Match wins; If-Modified-Since only without it.
fn not_modified(headers: &HeaderMap, etag: &str, modified: &str) -> bool {
    if let Some(tags) = headers.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()) {
        return tags.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*");
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|since| since == modified)
}

/// Convenience for HTML-with-200 tests.
pub fn html_page() -> Vec<u8> {
    HTML_PAGE.as_bytes().to_vec()
}

impl std::fmt::Debug for NdbcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdbcServer").field("base_url", &self.base_url).finish()
    }
}
