//! The gateway's SSE stream as a source (docs/API.md, The SSE stream): a
//! hand-written event-stream parser (the HTML spec's rules: LF, CR or CRLF
//! line ends, any chunking, multi-line `data`, comments, `id`, `retry`) and
//! the reconnect loop that sends `Last-Event-ID` so a performer loses nothing.
//!
//! It is not an EventSource for browsers: it only understands the events the
//! gateway sends (`connection`, `snapshot`, `observation`, `reset`, `lagged`).

use std::time::Duration;

use buoycast::observation::ObservationEvent;
use futures::StreamExt;

use super::{sleep_or_cancel, Backoff, LogThrottle, SessionEnd, SourceContext};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (default `message`).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id after this event (the `id:` field, sticky).
    pub id: String,
}

/// Incremental event-stream parser.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of an unfinished line.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a leading LF of the next one is part of that line end.
    after_cr: bool,
    /// Whether the first line was checked for a BOM.
    started: bool,
    /// Data buffer of the event being built.
    data: String,
    /// Event type of the event being built.
    event: String,
    /// Whether any data line was seen for the event being built.
    has_data: bool,
    /// The last event id buffer.
    last_id: String,
    /// The latest `retry:` value, in ms.
    pub retry: Option<u64>,
}

impl SseParser {
    /// A fresh parser.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// The last event id seen so far (what a reconnect sends as `Last-Event-ID`).
    pub fn last_event_id(&self) -> &str {
        &self.last_id
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut events);
                }
                _ => self.line.push(b),
            }
        }
        events
    }

    fn end_line(&mut self, events: &mut Vec<SseEvent>) {
        let raw = std::mem::take(&mut self.line);
        let mut line = String::from_utf8_lossy(&raw).into_owned();
        if !self.started {
            self.started = true;
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = rest.to_owned();
            }
        }
        if line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                if data.ends_with('\n') {
                    data.pop();
                }
                let event = std::mem::take(&mut self.event);
                events.push(SseEvent {
                    event: if event.is_empty() { "message".to_owned() } else { event },
                    data,
                    id: self.last_id.clone(),
                });
            }
            self.data.clear();
            self.event.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match name {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "event" => self.event = value.to_owned(),
            "id" if !value.contains('\0') => self.last_id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
    }
}

/// The stream URL for a `--source` base: a bare origin gets `/v1/observations/stream`;
/// `snapshot` asks for every station's current state first.
pub fn stream_url(source: &str, stations: Option<&str>, snapshot: bool) -> Result<url::Url, url::ParseError> {
    let mut url = url::Url::parse(source)?;
    if url.path().is_empty() || url.path() == "/" {
        url.set_path("/v1/observations/stream");
    }
    if snapshot {
        url.query_pairs_mut().append_pair("snapshot", "latest");
    }
    if let Some(stations) = stations {
        url.query_pairs_mut().append_pair("station", stations);
    }
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
    let mut parser = SseParser::new();
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
        for event in parser.feed(&bytes) {
            if !event.id.is_empty() {
                last_event_id.clone_from(&event.id);
            }
            match event.event.as_str() {
                // A station's current state (`snapshot=latest`) goes out like a report.
                "observation" | "snapshot" => match ObservationEvent::decode_bus(event.data.as_bytes()) {
                    Ok(observation) => {
                        if !ctx.send_live(observation).await {
                            return SessionEnd::DownstreamClosed;
                        }
                    }
                    Err(error) => {
                        if let Some(suppressed) = invalid_log.check() {
                            tracing::warn!(error = %error, suppressed, "sse: observation event dropped");
                        }
                    }
                },
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

    fn feed_all(chunks: &[&[u8]]) -> (Vec<SseEvent>, SseParser) {
        let mut parser = SseParser::new();
        let events = chunks.iter().flat_map(|chunk| parser.feed(chunk)).collect();
        (events, parser)
    }

    const DOCUMENTED_STREAM: &str = "retry: 3000\n\nevent: connection\ndata: {\"status\":\"connected\"}\n\nid: 17-0\nevent: observation\ndata: {\"id\":\"17-0\"}\n\n: keepalive\n\n";

    #[test]
    fn parses_the_documented_example() {
        let (events, parser) = feed_all(&[DOCUMENTED_STREAM.as_bytes()]);
        assert_eq!(parser.retry, Some(3000));
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, "connection");
        assert_eq!(events[0].id, "");
        assert_eq!(
            events[1],
            SseEvent { event: "observation".into(), data: "{\"id\":\"17-0\"}".into(), id: "17-0".into() }
        );
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        let (whole, _) = feed_all(&[DOCUMENTED_STREAM.as_bytes()]);
        let bytes = DOCUMENTED_STREAM.as_bytes();
        for split in 1..bytes.len() {
            let (events, _) = feed_all(&[&bytes[..split], &bytes[split..]]);
            assert_eq!(events, whole, "split at {split}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(feed_all(&singles).0, whole);
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        let crlf = DOCUMENTED_STREAM.replace('\n', "\r\n");
        let cr = DOCUMENTED_STREAM.replace('\n', "\r");
        let (whole, _) = feed_all(&[DOCUMENTED_STREAM.as_bytes()]);
        assert_eq!(feed_all(&[crlf.as_bytes()]).0, whole);
        assert_eq!(feed_all(&[cr.as_bytes()]).0, whole);
        // CR at the end of one chunk, LF at the start of the next: one line end.
        let (events, _) = feed_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "a\nb");
    }

    #[test]
    fn multi_line_data_comments_and_fields_without_space() {
        let (events, _) = feed_all(&[b": hello\ndata:one\ndata: two\ndata\nevent:x\n\n"]);
        assert_eq!(
            events,
            vec![SseEvent { event: "x".into(), data: "one\ntwo\n".into(), id: String::new() }]
        );
    }

    #[test]
    fn id_is_sticky_and_events_without_data_are_not_dispatched() {
        let (events, parser) = feed_all(&[b"id: 5\n\ndata: a\n\nid\ndata: b\n\nretry: soon\n\n"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id, "5");
        assert_eq!(events[1].id, "");
        assert_eq!(parser.retry, None);
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn stream_url_adds_the_path_and_filter() {
        assert_eq!(
            stream_url("http://127.0.0.1:3000", Some("46026,46042"), false).expect("url").as_str(),
            "http://127.0.0.1:3000/v1/observations/stream?station=46026%2C46042"
        );
        assert_eq!(
            stream_url("http://gw/custom/stream", None, false).expect("url").as_str(),
            "http://gw/custom/stream"
        );
        assert_eq!(
            stream_url("http://127.0.0.1:3000", Some("46026"), true).expect("url").as_str(),
            "http://127.0.0.1:3000/v1/observations/stream?snapshot=latest&station=46026"
        );
    }
}
