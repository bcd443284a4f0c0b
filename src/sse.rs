//! The `text/event-stream` format, read incrementally (the HTML standard's
//! rules: LF, CR or CRLF line ends in any chunking, a leading BOM, multi-line
//! `data`, comments, `id` (sticky, and never with a NUL), `retry`). The one
//! decoder of the bridge's SSE source and of the tests' SSE client.
//!
//! Pure: bytes in, [`Item`]s out. It is not an HTTP client.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `event:` (default `message`).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// This event's own `id:` field, if it had one.
    pub id: Option<String>,
    /// The last event id after this event (sticky: what a reconnect sends
    /// as `Last-Event-ID`).
    pub last_event_id: String,
    /// A valid `retry:` given since the previous event, in ms.
    pub retry: Option<u64>,
}

/// What the stream yielded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A dispatched event.
    Event(Event),
    /// A `:` comment line (a keepalive), without the colon, trimmed.
    Comment(String),
}

/// Incremental decoder.
#[derive(Debug, Default)]
pub struct Decoder {
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
    /// The `id:` of the event being built.
    id: Option<String>,
    /// `retry:` since the last dispatch.
    pending_retry: Option<u64>,
    /// The last event id buffer.
    last_id: String,
    /// The latest valid `retry:` value, in ms.
    pub retry: Option<u64>,
}

impl Decoder {
    /// A fresh decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// The last event id seen so far.
    pub fn last_event_id(&self) -> &str {
        &self.last_id
    }

    /// Feeds bytes; returns the events and comments completed by them.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Item> {
        let mut items = Vec::new();
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut items),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut items);
                }
                _ => self.line.push(b),
            }
        }
        items
    }

    fn end_line(&mut self, items: &mut Vec<Item>) {
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
                items.push(Item::Event(Event {
                    event: if event.is_empty() { "message".to_owned() } else { event },
                    data,
                    id: self.id.take(),
                    last_event_id: self.last_id.clone(),
                    retry: self.pending_retry.take(),
                }));
            }
            self.data.clear();
            self.event.clear();
            self.id = None;
            self.has_data = false;
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            items.push(Item::Comment(comment.trim().to_owned()));
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
            "id" if !value.contains('\0') => {
                self.last_id = value.to_owned();
                self.id = Some(value.to_owned());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
                self.pending_retry = self.retry;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(items: Vec<Item>) -> Vec<Event> {
        items
            .into_iter()
            .filter_map(|item| match item {
                Item::Event(event) => Some(event),
                Item::Comment(_) => None,
            })
            .collect()
    }

    fn feed_all(chunks: &[&[u8]]) -> (Vec<Item>, Decoder) {
        let mut decoder = Decoder::new();
        let items = chunks.iter().flat_map(|chunk| decoder.feed(chunk)).collect();
        (items, decoder)
    }

    const DOCUMENTED_STREAM: &str = "retry: 3000\n\nevent: connection\ndata: {\"status\":\"connected\"}\n\nid: 17-0\nevent: observation\ndata: {\"id\":\"17-0\"}\n\n: keepalive\n\n";

    #[test]
    fn parses_the_documented_example() {
        let (items, decoder) = feed_all(&[DOCUMENTED_STREAM.as_bytes()]);
        assert_eq!(decoder.retry, Some(3000));
        assert_eq!(items.last(), Some(&Item::Comment("keepalive".into())));
        let events = events(items);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, "connection");
        assert_eq!((events[0].id.as_deref(), events[0].last_event_id.as_str()), (None, ""));
        assert_eq!(events[0].retry, Some(3000), "the retry given before it");
        assert_eq!(
            events[1],
            Event {
                event: "observation".into(),
                data: "{\"id\":\"17-0\"}".into(),
                id: Some("17-0".into()),
                last_event_id: "17-0".into(),
                retry: None,
            }
        );
    }

    #[test]
    fn any_chunking_gives_the_same_items() {
        let (whole, _) = feed_all(&[DOCUMENTED_STREAM.as_bytes()]);
        let bytes = DOCUMENTED_STREAM.as_bytes();
        for split in 1..bytes.len() {
            let (items, _) = feed_all(&[&bytes[..split], &bytes[split..]]);
            assert_eq!(items, whole, "split at {split}");
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
        let (items, _) = feed_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        let events = events(items);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "a\nb");
    }

    #[test]
    fn multi_line_data_comments_bom_and_fields_without_space() {
        let (items, _) = feed_all(&["\u{feff}: hello\ndata:one\ndata: two\ndata\nevent:x\n\n".as_bytes()]);
        assert_eq!(items[0], Item::Comment("hello".into()));
        let events = events(items);
        assert_eq!((events[0].event.as_str(), events[0].data.as_str()), ("x", "one\ntwo\n"));
    }

    #[test]
    fn the_last_id_is_sticky_and_events_without_data_are_not_dispatched() {
        let (items, decoder) = feed_all(&[b"id: 5\n\ndata: a\n\nid\ndata: b\n\nretry: soon\n\n"]);
        let events = events(items);
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].id.as_deref(), events[0].last_event_id.as_str()), (None, "5"));
        assert_eq!((events[1].id.as_deref(), events[1].last_event_id.as_str()), (Some(""), ""));
        assert_eq!(decoder.retry, None);
        assert_eq!(decoder.last_event_id(), "");
    }
}
