//! The gateway's SSE stream as a source (docs/API.md, The SSE stream): the
//! event-stream decoder (`buoycast::sse`) and the reconnect loop that sends
//! `Last-Event-ID` so a performer loses nothing.
//!
//! It is not an EventSource for browsers: it only understands the events the
//! gateway sends (`connection`, `snapshot`, `observation`, `spectrum`,
//! `reset`, `lagged`).

use std::time::Duration;

use buoycast::sse::{Decoder, Item};
use futures::StreamExt;

use super::{sleep_or_cancel, Backoff, LogThrottle, SessionEnd, SourceContext};

/// The stream URL for a `--source` base: a bare origin gets
/// `/v1/observations/stream`; the query is [`super::add_stream_query`]'s.
pub fn stream_url(source: &str, stations: Option<&str>, snapshot: bool) -> Result<url::Url, url::ParseError> {
    let mut url = url::Url::parse(source)?;
    if url.path().is_empty() || url.path() == "/" {
        url.set_path("/v1/observations/stream");
    }
    super::add_stream_query(&mut url, stations, snapshot);
    Ok(url)
}

/// How long the stream may be silent (the gateway sends a comment every 15 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// Runs the SSE source until cancelled.
pub async fn run(source: String, ctx: SourceContext) -> anyhow::Result<()> {
    let url = stream_url(&source, ctx.station_query().as_deref(), ctx.snapshot)
        .map_err(|error| anyhow::anyhow!("--source {source:?}: {error}"))?;
    let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
    let mut last_event_id = String::new();
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut log_limit = LogThrottle::new(Duration::from_secs(10));
    loop {
        let end = session(&client, &url, &mut last_event_id, &mut backoff, &ctx).await;
        match end {
            SessionEnd::Shutdown | SessionEnd::DownstreamClosed => return Ok(()),
            SessionEnd::Disconnected(reason) => {
                let delay = backoff.next_delay();
                if let Some(suppressed) = log_limit.check() {
                    tracing::warn!(url = %url, reason = %reason, retry_in_ms = delay.as_millis() as u64, suppressed, "sse stream disconnected, reconnecting");
                }
                if sleep_or_cancel(delay, &ctx.shutdown).await {
                    return Ok(());
                }
            }
        }
    }
}

async fn session(
    client: &reqwest::Client,
    url: &url::Url,
    last_event_id: &mut String,
    backoff: &mut Backoff,
    ctx: &SourceContext,
) -> SessionEnd {
    let mut request = client.get(url.clone()).header("Accept", "text/event-stream");
    if !last_event_id.is_empty() {
        request = request.header("Last-Event-ID", last_event_id.as_str());
    }
    let response = tokio::select! {
        () = ctx.shutdown.cancelled() => return SessionEnd::Shutdown,
        response = request.send() => response,
    };
    let response = match response {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => return SessionEnd::Disconnected(format!("status {}", response.status())),
        Err(error) => return SessionEnd::Disconnected(error.to_string()),
    };
    let mut parser = Decoder::new();
    let mut stream = response.bytes_stream();
    let mut invalid_log = LogThrottle::new(Duration::from_secs(10));
    loop {
        let chunk = tokio::select! {
            () = ctx.shutdown.cancelled() => return SessionEnd::Shutdown,
            chunk = tokio::time::timeout(IDLE_TIMEOUT, stream.next()) => chunk,
        };
        let bytes = match chunk {
            Err(_) => return SessionEnd::Disconnected(format!("no bytes for {}s", IDLE_TIMEOUT.as_secs())),
            Ok(None) => return SessionEnd::Disconnected("stream ended".to_owned()),
            Ok(Some(Err(error))) => return SessionEnd::Disconnected(error.to_string()),
            Ok(Some(Ok(bytes))) => bytes,
        };
        for item in parser.feed(&bytes) {
            let Item::Event(event) = item else { continue };
            if !event.last_event_id.is_empty() {
                last_event_id.clone_from(&event.last_event_id);
            }
            match event.event.as_str() {
                // A station's current state (`snapshot=latest`) goes out like a report;
                // a spectrum's data says so itself (`"kind":"spectrum"`).
                "observation" | "snapshot" | "spectrum" => {
                    if !ctx.send_data(event.data.as_bytes(), &mut invalid_log, "sse").await {
                        return SessionEnd::DownstreamClosed;
                    }
                }
                "connection" => {
                    backoff.reset();
                    tracing::info!(url = %url, last_event_id = %last_event_id, "sse stream connected");
                }
                "reset" => tracing::warn!(
                    "sse: the gateway could not replay from our last event id (reset); continuing live"
                ),
                "lagged" => {
                    tracing::warn!("sse: the gateway dropped us for lagging; reconnecting to catch up")
                }
                other => tracing::debug!(event = other, "sse: event ignored"),
            }
        }
        if let Some(retry_ms) = parser.retry {
            backoff.base = Duration::from_millis(retry_ms.max(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_url_adds_the_path_and_filter() {
        assert_eq!(
            stream_url("http://127.0.0.1:3000", Some("46026,46042"), false).expect("url").as_str(),
            "http://127.0.0.1:3000/v1/observations/stream?kinds=observation%2Cspectrum&station=46026%2C46042"
        );
        assert_eq!(
            stream_url("http://gw/custom/stream", None, false).expect("url").as_str(),
            "http://gw/custom/stream?kinds=observation%2Cspectrum"
        );
        assert_eq!(
            stream_url("http://127.0.0.1:3000", Some("46026"), true).expect("url").as_str(),
            "http://127.0.0.1:3000/v1/observations/stream?kinds=observation%2Cspectrum&snapshot=latest&station=46026"
        );
    }
}
