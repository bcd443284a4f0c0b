//! A small SSE test client over a real HTTP connection (reqwest byte
//! stream), decoding the event-stream format with `buoycast::sse` (the
//! bridge's decoder, written to the HTML standard's rules).

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
    decoder: buoycast::sse::Decoder,
    pending: std::collections::VecDeque<Item>,
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
            decoder: buoycast::sse::Decoder::new(),
            pending: Default::default(),
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
                    self.pending.extend(self.decoder.feed(&bytes).into_iter().map(|item| match item {
                        buoycast::sse::Item::Event(event) => Item::Event(SseEvent {
                            id: event.id,
                            event: event.event,
                            data: event.data,
                            retry: event.retry,
                        }),
                        buoycast::sse::Item::Comment(comment) => Item::Comment(comment),
                    }));
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

    /// Whether no event (comments aside) arrives for `quiet`: the stream
    /// stays open and silent.
    pub async fn silent_for(&mut self, quiet: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + quiet;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // `next_item` panics at its own limit: bound it from outside, a bit shorter.
            match tokio::time::timeout(left, self.next_item(left + Duration::from_secs(1))).await {
                Err(_) => return true,
                Ok(Some(Item::Comment(_))) => continue,
                Ok(_) => return false,
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
}
