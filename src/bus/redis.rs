//! The Redis bus: publish through one Lua script (XADD to `observations:log`,
//! then PUBLISH on `observations:new` with the id XADD returned), subscribe on
//! a dedicated Pub/Sub connection that reconnects by itself, and replay from
//! the stream with XRANGE (docs/REFERENCE.md, Bus messages and stream ids;
//! docs/API.md, Catch-up).
//!
//! Commands go through a lazily opened [`Commands`] handle (one server: a
//! multiplexed `ConnectionManager` that reconnects on the next command after a
//! failure; Sentinel and Cluster: see [`super::topology`]); each subscription owns
//! its own Pub/Sub connection and task. A silently dead server is noticed by
//! a periodic PING on the Pub/Sub connection.
//!
//! This is deliberately not a Redis client for anything else (no job queue,
//! no caching).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::{Script, Value};
use tokio::sync::{mpsc, OnceCell};
use tokio_util::sync::CancellationToken;

use super::topology::{Commands, Topology};
use super::{
    decode_notice, format_stream_id, now_ms, older_than_retention, parse_stream_id, redact_url, BusNotice,
    Error, InvalidLog, Replay, CHANNEL, DEFAULT_RETENTION, LOG_KEY, SPECTRUM_CHANNEL,
};
use crate::backoff::Backoff;
use crate::observation::{
    DataForm, EventKind, FieldSet, Observation, ObservationEvent, SPECTRUM_PAYLOAD_PREFIX,
};

/// For each payload in ARGV[6..]: XADD it (field `d`, JSON without `id`) to
/// KEYS[1] with `MAXLEN ~ ARGV[1]`, then PUBLISH the same JSON with
/// `"id":"<the new id>"` spliced in front, so the published bytes equal
/// `ObservationEvent::to_bus_json` with the id: on ARGV[2] for an observation
/// (payloads starting `{"stationId"`), on ARGV[5] for a spectrum (payloads
/// starting with ARGV[4], [`SPECTRUM_PAYLOAD_PREFIX`]). Spectra share the
/// log, so one id sequence orders both kinds for catch-up, but never reach
/// the original system's channel. Then trims entries older than ARGV[3]
/// (`MINID ~`; ignored by Redis < 6.2). Returns the ids in order.
const PUBLISH_LUA: &str = r#"
local key = KEYS[1]
local ids = {}
local prefix = ARGV[4]
for i = 6, #ARGV do
  local payload = ARGV[i]
  local id = redis.call('XADD', key, 'MAXLEN', '~', ARGV[1], '*', 'd', payload)
  local channel = ARGV[2]
  if string.sub(payload, 1, #prefix) == prefix then channel = ARGV[5] end
  redis.call('PUBLISH', channel, '{"id":"' .. id .. '",' .. string.sub(payload, 2))
  ids[#ids + 1] = id
end
pcall(redis.call, 'XTRIM', key, 'MINID', '~', ARGV[3])
return ids
"#;

/// [`PUBLISH_LUA`] made idempotent per row, for the worker's outbox:
/// ARGV[6] is a time-to-live in seconds, ARGV[7..] the payloads and KEYS[2..]
/// their mark keys, `{observations:log}:pub:<stationId>:<timestamp>` (declared
/// as keys and hash-tagged so that in a Redis Cluster they live in the slot of
/// `observations:log`, where the script runs). When a mark
/// exists the observation was published before (a lost reply, a crash between
/// publishing and marking the row, two workers draining the same row) and its
/// stored id is returned without XADD or PUBLISH; otherwise the observation is
/// published and the mark set to its id (`SET … EX ttl`). The script runs
/// atomically, so GET-then-SET here is the same as `SET NX`.
const PUBLISH_ONCE_LUA: &str = r#"
local key = KEYS[1]
local ids = {}
local prefix = ARGV[4]
for i = 7, #ARGV do
  local mark = KEYS[i - 5]
  local payload = ARGV[i]
  local existing = redis.call('GET', mark)
  if existing then
    ids[#ids + 1] = existing
  else
    local id = redis.call('XADD', key, 'MAXLEN', '~', ARGV[1], '*', 'd', payload)
    local channel = ARGV[2]
    if string.sub(payload, 1, #prefix) == prefix then channel = ARGV[5] end
    redis.call('PUBLISH', channel, '{"id":"' .. id .. '",' .. string.sub(payload, 2))
    redis.call('SET', mark, id, 'EX', ARGV[6])
    ids[#ids + 1] = id
  end
end
pcall(redis.call, 'XTRIM', key, 'MINID', '~', ARGV[3])
return ids
"#;

/// The prefix of the idempotency marks of [`PUBLISH_ONCE_LUA`].
pub(super) const PUBLISHED_MARK_PREFIX: &str = "{observations:log}:pub:";

/// Returns `false` when KEYS[1] does not exist, else
/// `{last-generated-id, first retained id or "", entries from ARGV[1] (inclusive), at most ARGV[2]}`,
/// all read atomically so the placement decision and the entries agree.
const READ_LUA: &str = r#"
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return false end
local info = redis.call('XINFO', 'STREAM', key)
local last = ''
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
local first_id = ''
if #first > 0 then first_id = first[1][1] end
local entries = redis.call('XRANGE', key, ARGV[1], '+', 'COUNT', ARGV[2])
return {last, first_id, entries}
"#;

/// Settings of the Redis bus.
#[derive(Debug, Clone)]
pub struct RedisBusOptions {
    /// Approximate cap on `observations:log` (`XADD MAXLEN ~ N`).
    pub max_len: u64,
    /// Catch-up window: ids older than this answer [`Replay::Reset`], and
    /// entries older than this are trimmed (`XTRIM MINID ~`) on publish.
    pub retention: Duration,
    /// Observations per publish script call (bounds the script's run time,
    /// during which Redis serves nobody else).
    pub batch_size: usize,
    /// Capacity of each subscription's notice channel.
    pub subscriber_queue: usize,
    /// Bound on opening a connection.
    pub connect_timeout: Duration,
    /// Bound on one command's answer.
    pub response_timeout: Duration,
    /// How often a subscription PINGs its Pub/Sub connection; a PING not
    /// answered within `response_timeout.min(ping_interval)` counts as a lost
    /// connection (so a silently dead server is noticed within about twice this).
    pub ping_interval: Duration,
    /// First delay before a subscription reconnects; doubled per failure.
    pub reconnect_min: Duration,
    /// Cap on the reconnect delay.
    pub reconnect_max: Duration,
}

impl Default for RedisBusOptions {
    fn default() -> Self {
        RedisBusOptions {
            max_len: 1_000_000,
            retention: DEFAULT_RETENTION,
            batch_size: 500,
            subscriber_queue: 4096,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(1),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

/// The Redis bus state shared by every [`super::Bus`] clone.
pub(super) struct RedisBus {
    /// Settings.
    options: RedisBusOptions,
    /// Where connections go (one server, the Sentinel master, a Cluster).
    topology: Arc<Topology>,
    /// The URL with its password redacted, for errors and logs.
    url_redacted: String,
    /// Command connection, opened on first use, re-opened by itself afterwards.
    manager: OnceCell<Commands>,
    /// [`PUBLISH_LUA`], invoked by SHA (EVALSHA, falling back to EVAL).
    publish_script: Script,
    /// [`PUBLISH_ONCE_LUA`].
    publish_once_script: Script,
    /// [`READ_LUA`].
    read_script: Script,
}

impl RedisBus {
    pub(super) fn new(url: &str, options: RedisBusOptions) -> Result<RedisBus, Error> {
        let url_redacted = redact_url(url);
        let topology = Topology::parse(url, &options)
            .map_err(|source| Error::InvalidUrl { url: url_redacted.clone(), source })?;
        Ok(RedisBus {
            options,
            topology: Arc::new(topology),
            url_redacted,
            manager: OnceCell::new(),
            publish_script: Script::new(PUBLISH_LUA),
            publish_once_script: Script::new(PUBLISH_ONCE_LUA),
            read_script: Script::new(READ_LUA),
        })
    }

    pub(super) fn redacted_url(&self) -> &str {
        &self.url_redacted
    }

    /// The command connection, opening it on first use.
    async fn connection(&self) -> Result<Commands, Error> {
        let manager = self
            .manager
            .get_or_try_init(|| async {
                self.topology
                    .commands(&self.options)
                    .await
                    .map_err(|source| Error::Connect { url: self.url_redacted.clone(), source })
            })
            .await?;
        Ok(manager.clone())
    }

    pub(super) async fn publish(&self, events: &[Observation]) -> Result<Vec<String>, Error> {
        let events: Vec<ObservationEvent> =
            events.iter().map(|observation| ObservationEvent::new(None, observation.clone())).collect();
        self.publish_with(&events, false).await
    }

    pub(super) async fn publish_once(&self, events: &[ObservationEvent]) -> Result<Vec<String>, Error> {
        self.publish_with(events, true).await
    }

    async fn publish_with(&self, events: &[ObservationEvent], once: bool) -> Result<Vec<String>, Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.connection().await?;
        let retention_ms = u64::try_from(self.options.retention.as_millis()).unwrap_or(u64::MAX);
        let min_id = format_stream_id((now_ms().saturating_sub(retention_ms), 0));
        let mut ids = Vec::with_capacity(events.len());
        let mut payload = Vec::with_capacity(400);
        for chunk in events.chunks(self.options.batch_size.max(1)) {
            let script = if once { &self.publish_once_script } else { &self.publish_script };
            let mut invocation = script.prepare_invoke();
            invocation
                .key(LOG_KEY)
                .arg(self.options.max_len)
                .arg(CHANNEL)
                .arg(&min_id)
                .arg(SPECTRUM_PAYLOAD_PREFIX)
                .arg(SPECTRUM_CHANNEL);
            if once {
                invocation.arg(self.options.retention.as_secs().max(1));
            }
            for event in chunk {
                if once {
                    invocation.key(published_mark(event));
                }
                payload.clear();
                // The bus JSON without `id`; the script splices the id in.
                event.write_data(&mut payload, FieldSet::ALL, DataForm::BusPayload);
                invocation.arg(payload.as_slice());
            }
            let chunk_ids: Vec<String> = match invocation.invoke_async(&mut conn).await {
                // A connection that died while idle (Redis restarted) fails the
                // first command; the manager has reconnected by the retry. A
                // lost reply may mean the batch was published twice: consumers
                // see a duplicate, never a gap.
                Err(error) if stale_connection(&error) => invocation.invoke_async(&mut conn).await,
                other => other,
            }
            .map_err(|source| Error::Command { command: "publish script", source })?;
            if chunk_ids.len() != chunk.len() {
                return Err(Error::Reply {
                    command: "publish script",
                    detail: format!("{} ids for {} observations", chunk_ids.len(), chunk.len()),
                });
            }
            // Sentinel: on a replica too before it counts as published (WAIT).
            conn.replicate(self.options.response_timeout / 2).await?;
            ids.extend(chunk_ids);
        }
        Ok(ids)
    }

    pub(super) async fn publish_raw(&self, payload: &[u8]) -> Result<(), Error> {
        let mut conn = self.connection().await?;
        let _receivers: i64 = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(payload)
            .query_async(&mut conn)
            .await
            .map_err(|source| Error::Command { command: "PUBLISH", source })?;
        Ok(())
    }

    pub(super) async fn ping(&self) -> Result<(), Error> {
        let bound = self.options.connect_timeout + self.options.response_timeout;
        let ping = async {
            let mut conn = self.connection().await?;
            let ping = redis::cmd("PING");
            let _pong: String = match ping.query_async(&mut conn).await {
                Err(error) if stale_connection(&error) => ping.query_async(&mut conn).await,
                other => other,
            }
            .map_err(|source| Error::Command { command: "PING", source })?;
            Ok(())
        };
        tokio::time::timeout(bound, ping)
            .await
            .map_err(|_| Error::Timeout { command: "PING", after: bound })?
    }

    /// `strict`: `after_id` must be placeable (see [`Replay`]); otherwise
    /// every entry after it that the log still holds, whatever came before.
    pub(super) async fn read_after(
        &self,
        after_id: &str,
        limit: usize,
        strict: bool,
    ) -> Result<Replay, Error> {
        let Some(after) = parse_stream_id(after_id) else {
            return Ok(Replay::Reset);
        };
        if strict && older_than_retention(after, self.options.retention) {
            return Ok(Replay::Reset);
        }
        let Some(start) = successor(after) else {
            return Ok(Replay::Reset);
        };
        let mut conn = self.connection().await?;
        let mut invocation = self.read_script.prepare_invoke();
        invocation.key(LOG_KEY).arg(format_stream_id(start)).arg(limit.max(1));
        let reply: Value = match invocation.invoke_async(&mut conn).await {
            Err(error) if stale_connection(&error) => invocation.invoke_async(&mut conn).await,
            other => other,
        }
        .map_err(|source| Error::Command { command: "read script", source })?;
        let bad = |detail: &str| Error::Reply { command: "read script", detail: detail.to_owned() };
        let items = match reply {
            // No log at all: lost with a restart without persistence, or never written.
            Value::Nil if strict => return Ok(Replay::Reset),
            Value::Nil => return Ok(Replay::Events(Vec::new())),
            Value::Array(items) if items.len() == 3 => items,
            other => return Err(bad(&format!("{other:?}"))),
        };
        let mut items = items.into_iter();
        let (Some(last), Some(first), Some(entries)) = (items.next(), items.next(), items.next()) else {
            return Err(bad("short reply"));
        };
        if strict {
            let last =
                value_text(&last).and_then(parse_stream_id).ok_or_else(|| bad("bad last-generated-id"))?;
            if after > last {
                // Newer than anything this log ever held: it cannot be placed.
                return Ok(Replay::Reset);
            }
            match value_text(&first) {
                Some("") => {
                    // Everything was trimmed; only a client that saw the very last id lost nothing.
                    return Ok(if after == last { Replay::Events(Vec::new()) } else { Replay::Reset });
                }
                Some(first) => {
                    let first = parse_stream_id(first).ok_or_else(|| bad("bad first entry id"))?;
                    if start < first {
                        // Entries between `after` and the first retained one may have been trimmed.
                        return Ok(Replay::Reset);
                    }
                }
                None => return Err(bad("bad first entry")),
            }
        }
        let Value::Array(mut entries) = entries else {
            return Err(bad("entries are not an array"));
        };
        if limit == 0 {
            return Ok(Replay::Events(Vec::new()));
        }
        let mut events = Vec::with_capacity(entries.len().min(limit));
        // Entries written by someone else are skipped (like invalid channel
        // messages); then read on, so that fewer than `limit` events still
        // means the end of the log to the caller.
        loop {
            let full = entries.len() >= limit - events.len();
            let last_raw = entries.last().and_then(entry_id);
            for entry in entries.iter().take(limit - events.len()) {
                match decode_entry(entry) {
                    Ok(event) => events.push(event),
                    Err(detail) => {
                        tracing::warn!(error = %detail, stream = LOG_KEY, "skipped an invalid stream entry");
                    }
                }
            }
            let next = last_raw.and_then(successor);
            let (true, Some(next)) = (full && events.len() < limit, next) else { break };
            entries = xrange(&mut conn, next, limit - events.len()).await?;
        }
        Ok(Replay::Events(events))
    }

    pub(super) fn subscribe(this: &Arc<RedisBus>, shutdown: CancellationToken) -> mpsc::Receiver<BusNotice> {
        let (notice_tx, notice_rx) = mpsc::channel(this.options.subscriber_queue.max(1));
        let subscription = Subscription {
            topology: this.topology.clone(),
            options: this.options.clone(),
            url_redacted: this.url_redacted.clone(),
            notice_tx,
            invalid_log: super::invalid_log(),
        };
        tokio::spawn(subscription.run(shutdown));
        notice_rx
    }
}

/// The idempotency mark of one row: `{observations:log}:pub:<stationId>:<timestamp>`
/// for an observation, `{observations:log}:pub:spectrum:<stationId>:<timestamp>`
/// for a spectrum.
fn published_mark(event: &ObservationEvent) -> String {
    let observation = &event.observation;
    let kind = match event.kind() {
        EventKind::Observation => "",
        EventKind::Spectrum => "spectrum:",
    };
    let mut mark = format!(
        "{PUBLISHED_MARK_PREFIX}{kind}{}:{}",
        observation.station_id,
        crate::observation::format_time(&observation.observed_at)
    );
    if event.revision > 0 {
        mark.push_str(&format!(":r{}", event.revision));
    }
    mark
}

/// Whether `error` is the first command on a connection that died while idle
/// (worth one immediate retry: the manager reconnects meanwhile).
fn stale_connection(error: &redis::RedisError) -> bool {
    error.is_connection_dropped() || (error.is_io_error() && !error.is_connection_refusal())
}

/// The smallest id greater than `id`.
fn successor((ms, seq): (u64, u64)) -> Option<(u64, u64)> {
    match seq.checked_add(1) {
        Some(seq) => Some((ms, seq)),
        None => Some((ms.checked_add(1)?, 0)),
    }
}

/// A bulk or simple string reply as text.
fn value_text(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

/// One XRANGE entry `[id, [field, value, …]]` into an event with that id.
/// `XRANGE observations:log <start> + COUNT <count>`: raw entries.
async fn xrange(conn: &mut Commands, start: (u64, u64), count: usize) -> Result<Vec<Value>, Error> {
    let mut xrange = redis::cmd("XRANGE");
    xrange.arg(LOG_KEY).arg(format_stream_id(start)).arg("+").arg("COUNT").arg(count);
    xrange.query_async(conn).await.map_err(|source| Error::Command { command: "XRANGE", source })
}

/// A raw log entry's id.
fn entry_id(entry: &Value) -> Option<(u64, u64)> {
    match entry {
        Value::Array(parts) => parts.first().and_then(value_text).and_then(parse_stream_id),
        _ => None,
    }
}

fn decode_entry(entry: &Value) -> Result<ObservationEvent, String> {
    let Value::Array(parts) = entry else {
        return Err("entry is not an array".to_owned());
    };
    let (Some(id), Some(Value::Array(fields))) = (parts.first().and_then(value_text), parts.get(1)) else {
        return Err("entry lacks an id or fields".to_owned());
    };
    let payload = fields
        .chunks(2)
        .find_map(|pair| match pair {
            [name, Value::BulkString(payload)] if value_text(name) == Some("d") => Some(payload.as_slice()),
            _ => None,
        })
        .ok_or_else(|| format!("entry {id} has no field d"))?;
    let mut event = ObservationEvent::decode_bus(payload).map_err(|error| format!("entry {id}: {error}"))?;
    event.id = Some(id.to_owned());
    Ok(event)
}

/// Why a Pub/Sub session ended.
enum SessionEnd {
    /// `shutdown` was cancelled.
    Shutdown,
    /// The notice receiver was dropped: nobody listens any more.
    DownstreamClosed,
    /// The connection was lost (or stopped answering PING).
    Disconnected(String),
}

/// One subscription's task state.
struct Subscription {
    /// Opens the Pub/Sub connections.
    topology: Arc<Topology>,
    /// Timeouts and backoff.
    options: RedisBusOptions,
    /// For logs.
    url_redacted: String,
    /// Where notices go (bounded: a slow owner slows this task, not Redis).
    notice_tx: mpsc::Sender<BusNotice>,
    /// Rate-limits the warnings about invalid messages.
    invalid_log: InvalidLog,
}

impl Subscription {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.options.reconnect_min, self.options.reconnect_max);
        // Whether the owner has been told the bus is down since the last Connected.
        let mut reported_down = false;
        loop {
            let opened = tokio::select! {
                () = shutdown.cancelled() => return,
                opened = self.open() => opened,
            };
            match opened {
                Ok((sink, stream)) => {
                    backoff.reset();
                    tracing::info!(url = %self.url_redacted, channel = CHANNEL, "bus subscription connected");
                    if !self.send(BusNotice::Connected, &shutdown).await {
                        return;
                    }
                    match self.session(sink, stream, &shutdown).await {
                        SessionEnd::Shutdown | SessionEnd::DownstreamClosed => return,
                        SessionEnd::Disconnected(error) => {
                            tracing::warn!(url = %self.url_redacted, error = %error, "bus subscription lost; reconnecting");
                            reported_down = true;
                            if !self.send(BusNotice::Disconnected { error }, &shutdown).await {
                                return;
                            }
                        }
                    }
                }
                Err(error) => {
                    if reported_down {
                        tracing::debug!(url = %self.url_redacted, error = %error, "bus still unreachable");
                    } else {
                        tracing::warn!(url = %self.url_redacted, error = %error, "bus unreachable; retrying");
                        reported_down = true;
                        if !self.send(BusNotice::Disconnected { error }, &shutdown).await {
                            return;
                        }
                    }
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.notice_tx.closed() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Opens a Pub/Sub connection and subscribes to the channel, within the timeouts.
    async fn open(&self) -> Result<(PubSubSink, PubSubStream), String> {
        let connect = self.options.connect_timeout;
        let pubsub = tokio::time::timeout(connect, self.topology.pubsub())
            .await
            .map_err(|_| format!("no connection within {connect:?}"))?
            .map_err(|error| error.to_string())?;
        let (mut sink, stream) = pubsub.split();
        let respond = self.options.response_timeout;
        tokio::time::timeout(respond, sink.subscribe(&[CHANNEL, SPECTRUM_CHANNEL]))
            .await
            .map_err(|_| format!("no answer to SUBSCRIBE within {respond:?}"))?
            .map_err(|error| error.to_string())?;
        // The redis crate reports SUBSCRIBE done even when the server answered
        // with an error (an ACL without `subscribe`, say). Only a subscribed
        // connection answers PING with `["pong", ""]`: check that it is one.
        let pong = tokio::time::timeout(respond, sink.ping::<Value>())
            .await
            .map_err(|_| format!("no answer to PING within {respond:?}"))?
            .map_err(|error| error.to_string())?;
        if !is_subscribed_pong(&pong) {
            return Err(format!(
                "SUBSCRIBE {CHANNEL} {SPECTRUM_CHANNEL} was refused (the PING answer {pong:?} is not a subscribed connection's; \
                 may the Redis user subscribe?)"
            ));
        }
        Ok((sink, stream))
    }

    /// Forwards messages until the connection is lost, shutdown, or the owner goes away.
    async fn session(
        &mut self,
        sink: PubSubSink,
        mut stream: PubSubStream,
        shutdown: &CancellationToken,
    ) -> SessionEnd {
        let interval = self.options.ping_interval;
        let ping_timeout = self.options.response_timeout.min(interval);
        let pinger = async move {
            let mut sink = sink;
            loop {
                tokio::time::sleep(interval).await;
                match tokio::time::timeout(ping_timeout, sink.ping::<Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return format!("PING failed: {error}"),
                    Err(_) => return format!("no answer to PING within {ping_timeout:?}"),
                }
            }
        };
        tokio::pin!(pinger);
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return SessionEnd::Shutdown,
                error = &mut pinger => return SessionEnd::Disconnected(error),
                message = stream.next() => message,
            };
            let Some(message) = message else {
                return SessionEnd::Disconnected("connection closed".to_owned());
            };
            let notice = decode_notice(message.get_payload_bytes(), &mut self.invalid_log);
            if !self.send(notice, shutdown).await {
                return if shutdown.is_cancelled() {
                    SessionEnd::Shutdown
                } else {
                    SessionEnd::DownstreamClosed
                };
            }
        }
    }

    /// Sends one notice; `false` when shutdown or the receiver is gone.
    async fn send(&self, notice: BusNotice, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            () = shutdown.cancelled() => false,
            sent = self.notice_tx.send(notice) => sent.is_ok(),
        }
    }
}

/// Whether `reply` is a PING answer on a subscribed connection (`["pong", …]`).
fn is_subscribed_pong(reply: &Value) -> bool {
    let items = match reply {
        Value::Array(items) => items,
        Value::Push { data, .. } => data,
        _ => return false,
    };
    matches!(items.first(), Some(Value::BulkString(kind)) if kind.eq_ignore_ascii_case(b"pong"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_steps_sequence_then_time() {
        assert_eq!(successor((5, 0)), Some((5, 1)));
        assert_eq!(successor((5, u64::MAX)), Some((6, 0)));
        assert_eq!(successor((u64::MAX, u64::MAX)), None);
    }
}
