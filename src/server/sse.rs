//! `GET /v1/observations/stream`: the SSE stream (docs/API.md, The SSE stream;
//! compatible).
//!
//! The body is a stream over a [`Feed`]; it ends itself on shutdown or when
//! the client lags, so axum's graceful drain never waits on it forever.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use super::error::ApiError;
use super::feed::{Feed, Filter, Frame};
use super::metrics::Metrics;
use super::params::Params;
use super::AppState;
use crate::observation::{DataForm, FieldSet};

/// What the SSE stream tells a browser to wait before reconnecting.
pub const RETRY_MS: u64 = 3000;

/// The message of the 503 a new stream gets while the bus is down (compatible).
pub const UNAVAILABLE: &str = "Real-time streaming is temporarily unavailable";

/// A stream request's parameters, shared by SSE and WebSocket.
pub struct StreamRequest {
    /// Which stations and fields.
    pub filter: Filter,
    /// Where to resume from (`Last-Event-ID` header or `last_event_id` query).
    pub last_event_id: Option<String>,
    /// `snapshot=latest`: every (filtered) station's current state first.
    pub snapshot: bool,
}

impl StreamRequest {
    /// Parses the filters and the resume position; 400 on a bad filter.
    pub fn parse(query: Option<&str>, headers: &HeaderMap) -> Result<StreamRequest, ApiError> {
        let params = Params::parse(query);
        let filter = Filter {
            stations: params.stations("station")?,
            fields: params.fields()?,
            kinds: params.kinds()?,
        };
        let last_event_id = headers
            .get("last-event-id")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .or_else(|| params.get("last_event_id").map(str::to_owned));
        let snapshot = match params.get("snapshot") {
            None => false,
            Some("latest") => true,
            Some(other) => {
                return Err(super::params::invalid("snapshot", other, "the only snapshot is `latest`"));
            }
        };
        Ok(StreamRequest { filter, last_event_id, snapshot })
    }

    /// Admits the stream and builds its feed; the permit holds its slot.
    pub async fn open(
        self,
        state: &AppState,
        transport: &'static str,
    ) -> Result<(Feed, tokio::sync::OwnedSemaphorePermit), ApiError> {
        let permit = self.admit(state, transport).await?;
        let feed = Feed::new(
            &state.hub,
            state.bus.clone(),
            self.filter,
            self.last_event_id,
            self.snapshot,
            state.config.keepalive_interval(),
            state.shutdown.child_token(),
        );
        Ok((feed, permit))
    }

    /// Admits a stream or refuses it: bus down (503, unless this is a
    /// reconnect), or the connection cap reached (503 + Retry-After).
    ///
    /// A gateway that is still starting (its bus not up yet, within
    /// [`STARTUP_BUS_WAIT`](super::STARTUP_BUS_WAIT) of start) holds a new
    /// stream until the bus is up instead of refusing it; everything else
    /// (REST, health, the dashboard) is served from the first moment.
    async fn admit(
        &self,
        state: &AppState,
        transport: &'static str,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        if self.last_event_id.is_none() && !state.hub.bus_up() {
            let starting = super::STARTUP_BUS_WAIT.saturating_sub(state.started.elapsed());
            if starting.is_zero() || !state.hub.wait_up(starting).await {
                state.metrics.stream_rejected.with_label_values(&["bus_down"]).inc();
                return Err(ApiError::unavailable(UNAVAILABLE, Some(3)));
            }
        }
        Arc::clone(&state.connections).try_acquire_owned().map_err(|_| {
            state.metrics.stream_rejected.with_label_values(&["connection_cap"]).inc();
            tracing::warn!(transport, "stream connection cap reached");
            ApiError::unavailable("Too many stream connections, retry later", Some(5))
        })
    }
}

/// Counts an open SSE connection; records its duration when dropped.
struct SseGuard {
    metrics: Arc<Metrics>,
    opened: Instant,
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.metrics.sse_connections.dec();
        self.metrics.sse_connection_duration.observe(self.opened.elapsed().as_secs_f64());
        tracing::debug!(duration_secs = self.opened.elapsed().as_secs_f64(), "sse client disconnected");
    }
}

/// The handler.
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let request = StreamRequest::parse(query.as_deref(), &headers)?;
    let (feed, permit) = request.open(&state, "sse").await?;
    state.metrics.sse_connections.inc();
    let guard = SseGuard { metrics: Arc::clone(&state.metrics), opened: Instant::now() };
    let metrics = Arc::clone(&state.metrics);
    let body = futures::stream::unfold(
        (feed, guard, permit, metrics),
        |(mut feed, guard, permit, metrics)| async move {
            let frame = feed.next().await?;
            let bytes = encode(&frame, feed.filter().fields, &metrics);
            Some((Ok::<Bytes, Infallible>(bytes), (feed, guard, permit, metrics)))
        },
    );
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Encodes one frame as SSE text, counting it.
fn encode(frame: &Frame, fields: FieldSet, metrics: &Metrics) -> Bytes {
    let sent = &metrics.sse_sent;
    let (counter, bytes) = match frame {
        Frame::Connection => (&sent.connection, Bytes::from(connection_frame())),
        Frame::Live(shared) => {
            metrics.sse_broadcast_latency.observe(shared.received_at.elapsed().as_secs_f64() * 1000.0);
            (sent.event(shared.event.kind(), false), shared.sse_for(fields, DataForm::Event))
        }
        Frame::Replayed(event) => (
            sent.event(event.kind(), false),
            Bytes::from(super::encode::encode_sse(event, fields, DataForm::Event)),
        ),
        Frame::Snapshot(shared) => {
            (sent.event(shared.event.kind(), true), shared.sse_for(fields, DataForm::Snapshot))
        }
        Frame::Reset => (
            &sent.reset,
            Bytes::from_static(
                b"event: reset\ndata: {\"reason\":\"cannot resume from that id; refetch history over REST\"}\n\n",
            ),
        ),
        Frame::Lagged { skipped } => {
            metrics.stream_lagged.with_label_values(&["sse"]).inc();
            metrics.sse_broadcast_errors.with_label_values(&["lagged"]).inc();
            (
            &sent.lagged,
            Bytes::from(format!(
                "event: lagged\ndata: {{\"reason\":\"client too slow; reconnect to catch up\",\"skipped\":{skipped}}}\n\n"
            )),
            )
        }
        Frame::Keepalive => return Bytes::from_static(b": keepalive\n\n"),
    };
    counter.inc();
    bytes
}

/// `retry:` and the `connection` event.
fn connection_frame() -> String {
    format!("retry: {RETRY_MS}\n\nevent: connection\ndata: {}\n\n", super::connection_data())
}
