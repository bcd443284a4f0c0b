//! A small, strict SSE test client over a real HTTP connection (reqwest
//! byte stream), parsing the event-stream format as browsers do.

use std::time::Duration;

use futures::StreamExt;
use reqwest::header::HeaderMap;

/// One dispatched event (or a comment line).
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
    /// The `event:` field (`message` when absent).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `retry:` value seen with this event, if any.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// `data` parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|error| panic!("event data is not JSON ({error}): {}", self.data))
    }
}

/// What the stream yielded.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A dispatched event.
    Event(SseEvent),
    /// A `:` comment line (keepalive).
    Comment(String),
}

/// An open SSE response being read.
pub struct SseClient {
    /// The response status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    stream: Option<futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    buffer: String,
    pending: std::collections::VecDeque<Item>,
    current: SseEvent,
    has_data: bool,
    body_text: Option<String>,
}

impl SseClient {
    /// Opens `url` with extra `headers` (e.g. `Last-Event-ID`).
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> SseClient {
        let client = reqwest::Client::new();
        let mut request = client.get(url).header("accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap_or_else(|error| panic!("GET {url}: {error}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let (stream, body_text) = if status == 200 {
            (Some(response.bytes_stream().boxed()), None)
        } else {
            (None, Some(response.text().await.unwrap_or_default()))
        };
        SseClient {
            status,
            headers,
            stream,
            buffer: String::new(),
            pending: Default::default(),
            current: empty_event(),
            has_data: false,
            body_text,
        }
    }

    /// The body of a non-200 answer, as JSON.
    pub fn error_json(&self) -> serde_json::Value {
        let text = self.body_text.as_deref().unwrap_or("");
        serde_json::from_str(text).unwrap_or_else(|error| panic!("error body is not JSON ({error}): {text}"))
    }

    /// The next event or comment within `limit`; `None` on end of stream.
    pub async fn next_item(&mut self, limit: Duration) -> Option<Item> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            let stream = self.stream.as_mut()?;
            let chunk = tokio::time::timeout_at(deadline, stream.next())
                .await
                .unwrap_or_else(|_| panic!("no SSE data within {limit:?}"));
            match chunk {
                Some(Ok(bytes)) => {
                    self.buffer.push_str(std::str::from_utf8(&bytes).expect("SSE is UTF-8"));
                    self.parse_lines();
                }
                _ => {
                    self.stream = None;
                    return self.pending.pop_front();
                }
            }
        }
    }

    /// The next dispatched event (comments skipped) within `limit` in all
    /// (keepalive comments do not extend it).
    pub async fn next_event(&mut self, limit: Duration) -> Option<SseEvent> {
        self.next_event_by(tokio::time::Instant::now() + limit, limit).await
    }

    /// The next dispatched event before `deadline` (`limit` is for the message).
    async fn next_event_by(&mut self, deadline: tokio::time::Instant, limit: Duration) -> Option<SseEvent> {
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let item = tokio::time::timeout(left, self.next_item(left))
                .await
                .unwrap_or_else(|_| panic!("no SSE event within {limit:?}"))?;
            match item {
                Item::Event(event) => return Some(event),
                Item::Comment(_) => continue,
            }
        }
    }

    /// The next `n` observation events within `limit` in all (asserting
    /// nothing else comes between).
    pub async fn observations(&mut self, n: usize, limit: Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let event = self
                .next_event_by(deadline, limit)
                .await
                .unwrap_or_else(|| panic!("stream ended after {} of {n} observations", out.len()));
            assert_eq!(event.event, "observation", "unexpected event {event:?}");
            out.push(event);
        }
        out
    }

    /// Whether the stream has ended (reads until end, at most `limit`).
    pub async fn ended_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while let Some(stream) = self.stream.as_mut() {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => self.stream = None,
                Ok(Some(Ok(_))) => {}
            }
        }
        true
    }

    fn parse_lines(&mut self) {
        while let Some(pos) = self.buffer.find('\n') {
            let line: String = self.buffer.drain(..=pos).collect();
            let line = line.trim_end_matches('\n').trim_end_matches('\r');
            if line.is_empty() {
                if self.has_data {
                    let event = std::mem::replace(&mut self.current, empty_event());
                    self.pending.push_back(Item::Event(event));
                } else {
                    let retry = self.current.retry;
                    self.current = empty_event();
                    self.current.retry = retry;
                }
                self.has_data = false;
                continue;
            }
            if let Some(comment) = line.strip_prefix(':') {
                self.pending.push_back(Item::Comment(comment.trim().to_owned()));
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "id" => self.current.id = Some(value.to_owned()),
                "event" => self.current.event = value.to_owned(),
                "retry" => self.current.retry = value.parse().ok(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
    }
}

fn empty_event() -> SseEvent {
    SseEvent { id: None, event: "message".into(), data: String::new(), retry: None }
}
