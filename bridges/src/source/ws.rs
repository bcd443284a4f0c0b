//! The gateway's WebSocket as a source (docs/API.md, The WebSocket stream):
//! text frames `{"event":"connection","data":{…}}` then
//! `{"event":"observation","id":"…","data":{…}}`, reconnecting with the
//! `last_event_id` query parameter.
//!
//! Same events as the SSE source; only the framing differs.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::{sleep_or_cancel, Backoff, LogThrottle, SessionEnd, SourceContext};

/// The WebSocket URL for a `--source`: http → ws, https → wss, a bare origin
/// gets `/v1/observations/ws`; [`super::add_stream_query`]'s query and
/// `last_event_id=` are added.
pub fn ws_url(
    source: &str,
    stations: Option<&str>,
    last_event_id: &str,
    snapshot: bool,
) -> Result<url::Url, String> {
    let mut url = url::Url::parse(source).map_err(|error| format!("--source {source:?}: {error}"))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => return Err(format!("--source {source:?}: unsupported scheme {other:?}")),
    };
    url.set_scheme(scheme).map_err(|()| format!("--source {source:?}: cannot use scheme {scheme}"))?;
    if url.path().is_empty() || url.path() == "/" {
        url.set_path("/v1/observations/ws");
    }
    super::add_stream_query(&mut url, stations, snapshot);
    if !last_event_id.is_empty() {
        url.query_pairs_mut().append_pair("last_event_id", last_event_id);
    }
    Ok(url)
}

/// Runs the WebSocket source until cancelled.
pub async fn run(source: String, ctx: SourceContext) -> anyhow::Result<()> {
    ws_url(&source, None, "", false).map_err(anyhow::Error::msg)?;
    let mut last_event_id = String::new();
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut log_limit = LogThrottle::new(Duration::from_secs(10));
    loop {
        let url = ws_url(&source, ctx.station_query().as_deref(), &last_event_id, ctx.snapshot)
            .map_err(anyhow::Error::msg)?;
        match session(&url, &mut last_event_id, &mut backoff, &ctx).await {
            SessionEnd::Shutdown | SessionEnd::DownstreamClosed => return Ok(()),
            SessionEnd::Disconnected(reason) => {
                let delay = backoff.next_delay();
                if let Some(suppressed) = log_limit.check() {
                    tracing::warn!(url = %url, reason = %reason, retry_in_ms = delay.as_millis() as u64, suppressed, "websocket disconnected, reconnecting");
                }
                if sleep_or_cancel(delay, &ctx.shutdown).await {
                    return Ok(());
                }
            }
        }
    }
}

async fn session(
    url: &url::Url,
    last_event_id: &mut String,
    backoff: &mut Backoff,
    ctx: &SourceContext,
) -> SessionEnd {
    let connected = tokio::select! {
        () = ctx.shutdown.cancelled() => return SessionEnd::Shutdown,
        connected = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url.as_str())) => connected,
    };
    let mut socket = match connected {
        Ok(Ok((socket, _response))) => socket,
        Ok(Err(error)) => return SessionEnd::Disconnected(error.to_string()),
        Err(_) => return SessionEnd::Disconnected("connect timed out".to_owned()),
    };
    let mut invalid_log = LogThrottle::new(Duration::from_secs(10));
    loop {
        let message = tokio::select! {
            () = ctx.shutdown.cancelled() => {
                let _ = socket.close(None).await;
                return SessionEnd::Shutdown;
            }
            message = tokio::time::timeout(Duration::from_secs(60), socket.next()) => message,
        };
        let text = match message {
            Err(_) => return SessionEnd::Disconnected("no frame for 60s".to_owned()),
            Ok(None) => return SessionEnd::Disconnected("closed".to_owned()),
            Ok(Some(Err(error))) => return SessionEnd::Disconnected(error.to_string()),
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Ping(payload)))) => {
                let _ = socket.send(Message::Pong(payload)).await;
                continue;
            }
            Ok(Some(Ok(Message::Close(_)))) => {
                return SessionEnd::Disconnected("closed by the gateway".to_owned())
            }
            Ok(Some(Ok(_))) => continue,
        };
        let frame: serde_json::Value = match serde_json::from_str(text.as_str()) {
            Ok(frame) => frame,
            Err(error) => {
                if let Some(suppressed) = invalid_log.check() {
                    tracing::warn!(error = %error, suppressed, "websocket: frame is not JSON, dropped");
                }
                continue;
            }
        };
        match frame.get("event").and_then(|e| e.as_str()) {
            // A station's current state (`snapshot=latest`, no id) goes out like a report.
            // A spectrum's data says so itself (`"kind":"spectrum"`).
            Some("observation") | Some("snapshot") | Some("spectrum") => {
                if let Some(id) = frame.get("id").and_then(|id| id.as_str()) {
                    *last_event_id = id.to_owned();
                }
                let data = frame.get("data").map(|data| data.to_string()).unwrap_or_default();
                if !ctx.send_data(data.as_bytes(), &mut invalid_log, "websocket").await {
                    return SessionEnd::DownstreamClosed;
                }
            }
            Some("connection") => {
                backoff.reset();
                tracing::info!(url = %url, "websocket connected");
            }
            Some("reset") => {
                tracing::warn!("websocket: the gateway could not replay from our last event id (reset)")
            }
            Some("lagged") => tracing::warn!("websocket: the gateway dropped us for lagging; reconnecting"),
            other => tracing::debug!(event = ?other, "websocket: frame ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_url_from_http_origin() {
        assert_eq!(
            ws_url("http://127.0.0.1:3000", Some("46026"), "12-0", false).expect("url").as_str(),
            "ws://127.0.0.1:3000/v1/observations/ws?kinds=observation%2Cspectrum&station=46026&last_event_id=12-0"
        );
        assert_eq!(
            ws_url("http://127.0.0.1:3000", None, "", true).expect("url").as_str(),
            "ws://127.0.0.1:3000/v1/observations/ws?kinds=observation%2Cspectrum&snapshot=latest"
        );
        assert!(ws_url("ftp://x", None, "", false).is_err());
    }
}
