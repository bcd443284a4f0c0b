//! HTTP fetching of NDBC files (docs/REFERENCE.md, Worker: "polite"): one
//! shared `reqwest` client (rustls, gzip) with a connect timeout and a
//! whole-request timeout, conditional GET with the validators of the last
//! successful fetch (`If-None-Match`, `If-Modified-Since`; a 304 means nothing
//! to do), and a size cap on bodies.
//!
//! Failures are classified for the `worker_fetches_total{outcome}` metric:
//! `http_error` (a status other than 200/304), `timeout`, `error`
//! (connection refused, reset, a body cut short, too big).
//! It deliberately does not retry, parse or schedule: the worker does.

use std::time::Duration;

use reqwest::header::{HeaderMap, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;

/// The largest body accepted (NDBC's biggest realtime files are about 1 MB).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Conditional-GET validators of a source's last successful fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// The `ETag` the server sent.
    pub etag: Option<String>,
    /// The `Last-Modified` the server sent.
    pub last_modified: Option<String>,
}

/// A successful fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// 200: a (possibly) new body, with the validators to send next time.
    Modified {
        /// The body.
        body: Vec<u8>,
        /// Validators for the next conditional GET.
        validators: Validators,
    },
    /// 304: unchanged since the validators we sent.
    NotModified,
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The server answered a status other than 200 or 304.
    #[error("http status {status}")]
    Http {
        /// The status code.
        status: u16,
    },
    /// No complete answer within the request timeout.
    #[error("no complete answer within {after:?}")]
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// Connection refused or reset, DNS, TLS, a body cut short, …
    #[error("{reason}")]
    Transport {
        /// reqwest's description, with its causes.
        reason: String,
    },
    /// The HTTP client could not be built (bad TLS setup).
    #[error("building the http client: {reason}")]
    Client {
        /// Why.
        reason: String,
    },
}

impl FetchError {
    /// The `outcome` label of `worker_fetches_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            FetchError::Http { .. } => "http_error",
            FetchError::Timeout { .. } => "timeout",
            FetchError::TooLarge { .. } | FetchError::Transport { .. } | FetchError::Client { .. } => "error",
        }
    }
}

/// The HTTP client every fetch of a worker shares (connection pooling).
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// The client.
    client: reqwest::Client,
    /// The whole-request timeout (for error messages).
    timeout: Duration,
}

impl Fetcher {
    /// A client with these timeouts: `timeout` bounds a whole request
    /// (connect, headers and body), `connect_timeout` the TCP/TLS connect.
    pub fn new(timeout: Duration, connect_timeout: Duration) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("buoycast/", env!("CARGO_PKG_VERSION"), " (+https://github.com/buoycast)"))
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .gzip(true)
            .build()
            .map_err(|error| FetchError::Client { reason: describe(&error) })?;
        Ok(Fetcher { client, timeout })
    }

    /// GETs `url`, conditionally when `validators` has any.
    pub async fn get(&self, url: &str, validators: &Validators) -> Result<Fetched, FetchError> {
        let mut request = self.client.get(url);
        if let Some(etag) = &validators.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(last_modified) = &validators.last_modified {
            request = request.header(IF_MODIFIED_SINCE, last_modified);
        }
        let response = request.send().await.map_err(|error| self.classify(&error))?;
        match response.status() {
            StatusCode::NOT_MODIFIED => return Ok(Fetched::NotModified),
            StatusCode::OK => {}
            status => return Err(FetchError::Http { status: status.as_u16() }),
        }
        if response.content_length().is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(FetchError::TooLarge { limit: MAX_BODY_BYTES });
        }
        let validators = read_validators(response.headers());
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| self.classify(&error))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(FetchError::TooLarge { limit: MAX_BODY_BYTES });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched::Modified { body, validators })
    }

    fn classify(&self, error: &reqwest::Error) -> FetchError {
        if error.is_timeout() {
            FetchError::Timeout { after: self.timeout }
        } else {
            FetchError::Transport { reason: describe(error) }
        }
    }
}

/// The response's `ETag` and `Last-Modified`, when they are valid text.
fn read_validators(headers: &HeaderMap) -> Validators {
    let text = |name| headers.get(name).and_then(|value: &reqwest::header::HeaderValue| value.to_str().ok());
    Validators { etag: text(ETAG).map(str::to_owned), last_modified: text(LAST_MODIFIED).map(str::to_owned) }
}

/// An error with its chain of causes, on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
