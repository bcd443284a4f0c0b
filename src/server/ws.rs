//! `GET /v1/observations/ws`: the same events as the SSE stream, as JSON
//! text frames (docs/API.md, The WebSocket stream): first
//! `{"event":"connection","data":{…}}`, then
//! `{"event":"observation","id":"…","data":{…}}`, plus `reset` and `lagged`.
//!
//! Same filters and catch-up (`last_event_id` query parameter) as SSE.
//! Keepalives are WebSocket pings. The socket task holds a token of the
//! server's `TaskTracker`, so shutdown waits for it (axum does not).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;

use super::error::ApiError;
use super::feed::{Feed, Frame};
use super::metrics::Metrics;
use super::sse::StreamRequest;
use super::AppState;
use crate::observation::{DataForm, FieldSet};

/// A send that takes longer than this means the client stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The handler: validates, admits, then upgrades.
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let request = StreamRequest::parse(query.as_deref(), &headers)?;
    let (feed, permit) = request.open(&state, "ws").await?;
    let metrics = Arc::clone(&state.metrics);
    let token = state.tracker.token();
    Ok(upgrade.on_upgrade(move |socket| async move {
        metrics.ws_connections.inc();
        let opened = Instant::now();
        run(socket, feed, &metrics).await;
        metrics.ws_connections.dec();
        metrics.ws_connection_duration.observe(opened.elapsed().as_secs_f64());
        drop(permit);
        drop(token);
    }))
}

async fn run(mut socket: WebSocket, mut feed: Feed, metrics: &Metrics) {
    loop {
        tokio::select! {
            frame = feed.next() => {
                let Some(frame) = frame else {
                    let close = CloseFrame { code: 1001, reason: Utf8Bytes::from_static("server shutting down") };
                    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(close)))).await;
                    return;
                };
                let closing = matches!(frame, Frame::Lagged { .. });
                let message = encode(&frame, feed.filter().fields, metrics);
                match tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
                if closing {
                    let close = CloseFrame { code: 1008, reason: Utf8Bytes::from_static("lagged") };
                    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(close)))).await;
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                // Pings are answered by the library; text from the client is ignored.
                Some(Ok(_)) => {}
            },
        }
    }
}

fn text(bytes: Bytes) -> Message {
    match Utf8Bytes::try_from(bytes) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Text(Utf8Bytes::from_static("{}")),
    }
}

fn encode(frame: &Frame, fields: FieldSet, metrics: &Metrics) -> Message {
    let sent = &metrics.ws_sent;
    let (counter, message) = match frame {
        Frame::Connection => (
            &sent.connection,
            text(Bytes::from(format!("{{\"event\":\"connection\",\"data\":{}}}", super::connection_data()))),
        ),
        Frame::Live(shared) => (sent.event(shared.event.kind(), false), text(shared.ws_for(fields, DataForm::Event))),
        Frame::Replayed(event) => (
            sent.event(event.kind(), false),
            text(Bytes::from(super::encode::encode_ws(event, fields, DataForm::Event))),
        ),
        Frame::Snapshot(shared) => {
            (sent.event(shared.event.kind(), true), text(shared.ws_for(fields, DataForm::Snapshot)))
        }
        Frame::Reset => (
            &sent.reset,
            text(Bytes::from_static(
                b"{\"event\":\"reset\",\"data\":{\"reason\":\"cannot resume from that id; refetch history over REST\"}}",
            )),
        ),
        Frame::Lagged { skipped } => {
            metrics.stream_lagged.with_label_values(&["ws"]).inc();
            (
            &sent.lagged,
            text(Bytes::from(format!(
                "{{\"event\":\"lagged\",\"data\":{{\"reason\":\"client too slow; reconnect to catch up\",\"skipped\":{skipped}}}}}"
            ))),
            )
        }
        Frame::Keepalive => return Message::Ping(Bytes::from_static(b"keepalive")),
    };
    counter.inc();
    message
}
