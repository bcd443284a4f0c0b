//! The bus: how new observations travel from the worker to every gateway and
//! bridge, with stream ids for catch-up (docs/REFERENCE.md, Bus messages and
//! stream ids; docs/API.md, Catch-up).
//!
//! Two backends behind one [`Bus`] handle, chosen at runtime:
//! - Redis ([`Bus::redis`]): each observation is appended to the stream
//!   `observations:log` and published on the channel `observations:new` by one
//!   Lua script, so the id XADD assigns is the id the message carries and ids
//!   increase in publish order. Catch-up reads the stream with XRANGE.
//! - In-process ([`Bus::memory`]): a `tokio::sync::broadcast` channel plus a
//!   bounded ring buffer for catch-up, for the embedded single-process mode.
//!
//! Subscribers get a bounded channel of [`BusNotice`]s: decoded events,
//! invalid messages (to count, never to forward), and connection changes
//! (so the gateway can answer 503 while the bus is down and replay with
//! [`Bus::read_after`] when it is back).
//!
//! This module deliberately knows nothing about HTTP, clients or filters: the
//! gateway's fan-out does that.

mod memory;
mod redis;
mod topology;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::observation::{Field, Observation, ObservationEvent, SchemaError};

pub use self::memory::MemoryBusOptions;
pub use self::redis::RedisBusOptions;

/// The Pub/Sub channel every message goes out on (compatible with the original system).
pub const CHANNEL: &str = "observations:new";

/// The Pub/Sub channel spectra go out on (docs/REFERENCE.md, Bus messages):
/// not [`CHANNEL`], whose consumers (the original system's gateway) expect
/// observations only. Both kinds share [`LOG_KEY`] and its ids.
pub const SPECTRUM_CHANNEL: &str = "spectra:new";

/// The Redis stream that keeps recent messages (both kinds) for catch-up.
pub const LOG_KEY: &str = "observations:log";

/// Default retention window for catch-up (docs/API.md, Catch-up: 24 h).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Errors of the bus.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Redis URL does not parse (the URL in the message has its password redacted).
    #[error("invalid redis url {url}: {source}")]
    InvalidUrl { url: String, source: ::redis::RedisError },
    /// Redis could not be reached.
    #[error("cannot connect to redis at {url}: {source}")]
    Connect { url: String, source: ::redis::RedisError },
    /// A command failed (connection lost, server error, script error).
    #[error("redis {command} failed: {source}")]
    Command { command: &'static str, source: ::redis::RedisError },
    /// A command got no answer in time.
    #[error("redis {command} got no answer within {after:?}")]
    Timeout { command: &'static str, after: Duration },
    /// Redis answered something this code does not expect.
    #[error("unexpected redis reply to {command}: {detail}")]
    Reply { command: &'static str, detail: String },
}

/// What a subscription delivers.
// Events are nearly every notice, so boxing them would add an allocation per
// event on the hot path without saving any memory.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum BusNotice {
    /// A valid message; `id` is `None` when the publisher assigned none
    /// (the original TypeScript worker's plain `PUBLISH`).
    Event(ObservationEvent),
    /// A message that is not a valid observation. Never forward it; count it.
    /// It has already been logged (rate-limited) by the bus.
    Invalid {
        /// Why it was rejected.
        error: SchemaError,
        /// Its size in bytes (the payload itself is not kept: it may be huge or hostile).
        payload_len: usize,
    },
    /// The subscription is (again) receiving live messages. After a
    /// [`BusNotice::Disconnected`], replay what was missed with
    /// [`Bus::read_after`] from the last id seen (or [`Bus::read_since`] from
    /// when the subscription last came up, if no event with an id was seen
    /// yet), and drop live events whose id is not greater than the last one
    /// delivered (replay and live may overlap).
    Connected,
    /// The subscription lost the bus (or, in-process, fell behind and lost
    /// messages). Live events stop until the next [`BusNotice::Connected`].
    Disconnected {
        /// What happened, for logs (no secrets).
        error: String,
    },
}

/// The answer of [`Bus::read_after`].
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Every retained event with an id greater than the one asked for, oldest
    /// first, at most `limit` of them (empty when there is none). When the
    /// vector is `limit` long, ask again from its last id for more.
    Events(Vec<ObservationEvent>),
    /// The id cannot be placed: malformed, older than the retention window,
    /// trimmed away, newer than anything published (e.g. the log was lost
    /// with a Redis restart without persistence), or no log exists. The
    /// client must refetch history over REST.
    Reset,
}

/// A handle on the bus; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Bus {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Redis(Arc<redis::RedisBus>),
    Memory(Arc<memory::MemoryBus>),
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Redis(bus) => f.debug_struct("Bus").field("redis", &bus.redacted_url()).finish(),
            Backend::Memory(_) => f.debug_struct("Bus").field("memory", &true).finish(),
        }
    }
}

impl Bus {
    /// A Redis bus at `url` (`redis://[:password@]host[:port][/db]`).
    ///
    /// Only the URL is checked here; connections are opened on first use and
    /// re-opened automatically, so a bus made while Redis is down starts
    /// working when Redis comes up. Needs a Tokio runtime when used.
    pub fn redis(url: &str, options: RedisBusOptions) -> Result<Bus, Error> {
        Ok(Bus { backend: Backend::Redis(Arc::new(redis::RedisBus::new(url, options)?)) })
    }

    /// An in-process bus (embedded mode: worker and gateway in one process).
    pub fn memory(options: MemoryBusOptions) -> Bus {
        Bus { backend: Backend::Memory(Arc::new(memory::MemoryBus::new(options))) }
    }

    /// An in-process bus whose catch-up buffer starts with `seed` (events
    /// with ids, e.g. the rows the store says were published within the
    /// retention window), so that `Last-Event-ID` catch-up survives a restart
    /// of the embedded mode. Events without an id, or not in increasing id
    /// order, are skipped; new ids are greater than the largest seeded one.
    pub fn memory_seeded(options: MemoryBusOptions, seed: Vec<ObservationEvent>) -> Bus {
        let bus = memory::MemoryBus::new(options);
        bus.seed(seed);
        Bus { backend: Backend::Memory(Arc::new(bus)) }
    }

    /// `"redis"` or `"memory"`, for logs and metrics labels.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Redis(_) => "redis",
            Backend::Memory(_) => "memory",
        }
    }

    /// Publishes `events` in order and returns the stream id each one got
    /// (same length and order as `events`; ids strictly increase).
    ///
    /// Redis: one script call per batch of at most
    /// [`RedisBusOptions::batch_size`] events; a failure may leave earlier
    /// batches published (their ids are then lost to the caller, who retries:
    /// duplicates on the bus are harmless for consumers that de-duplicate on
    /// (`stationId`, `timestamp`), and a retry never loses anything).
    pub async fn publish(&self, events: &[Observation]) -> Result<Vec<String>, Error> {
        match &self.backend {
            Backend::Redis(bus) => bus.publish(events).await,
            Backend::Memory(bus) => Ok(bus.publish(events)),
        }
    }

    /// [`Bus::publish`], but idempotent per version of a row (the worker's
    /// outbox uses it): an event (`stationId`, `timestamp`, revision)
    /// published before within the retention window is not published again;
    /// its earlier id is returned in its place. A correction (a higher
    /// [`ObservationEvent::revision`]) is a new version: it is published, with
    /// `"revised": true`. The events' `id`s are ignored (the bus assigns them). So a retry after an ambiguous failure (a lost
    /// reply, a crash between publishing and marking the row) never reaches
    /// subscribers twice.
    ///
    /// Redis: a mark `{observations:log}:pub:<stationId>:<timestamp>` (with
    /// `:r<revision>` after it for a correction) holding the id, set by the
    /// publish script itself (expires with the retention window).
    /// In-process: the ring buffer is searched for the key (a restarted
    /// process starts from what [`Bus::memory_seeded`] gave it).
    pub async fn publish_once(&self, events: &[ObservationEvent]) -> Result<Vec<String>, Error> {
        match &self.backend {
            Backend::Redis(bus) => bus.publish_once(events).await,
            Backend::Memory(bus) => Ok(bus.publish_once(events)),
        }
    }

    /// Publishes one raw message on the channel, as a foreign publisher (the
    /// original TypeScript worker) would: not logged for catch-up, no id.
    ///
    /// For compatibility tools and tests; buoycast's worker uses [`Bus::publish`].
    pub async fn publish_raw(&self, payload: &[u8]) -> Result<(), Error> {
        match &self.backend {
            Backend::Redis(bus) => bus.publish_raw(payload).await,
            Backend::Memory(bus) => {
                bus.publish_raw(payload);
                Ok(())
            }
        }
    }

    /// Starts a subscription: a task that delivers [`BusNotice`]s into the
    /// returned bounded channel until `shutdown` is cancelled or the receiver
    /// is dropped. The first notice is [`BusNotice::Connected`] (or
    /// [`BusNotice::Disconnected`] when Redis cannot be reached; the task keeps
    /// retrying with capped exponential backoff and jitter).
    ///
    /// Must be called inside a Tokio runtime.
    pub fn subscribe(&self, shutdown: CancellationToken) -> mpsc::Receiver<BusNotice> {
        match &self.backend {
            Backend::Redis(bus) => redis::RedisBus::subscribe(bus, shutdown),
            Backend::Memory(bus) => bus.subscribe(shutdown),
        }
    }

    /// Every retained event after `after_id`, oldest first, at most `limit`;
    /// or [`Replay::Reset`] when `after_id` cannot be placed (see [`Replay`]).
    pub async fn read_after(&self, after_id: &str, limit: usize) -> Result<Replay, Error> {
        match &self.backend {
            Backend::Redis(bus) => bus.read_after(after_id, limit, true).await,
            Backend::Memory(bus) => Ok(bus.read_after(after_id, limit, true)),
        }
    }

    /// Every event the log still holds after the position `after_id`
    /// (`{ms}-{seq}`, which need not be an event's id), oldest first, at most
    /// `limit`; nothing is checked about what came before it. For resuming
    /// from a point in time rather than from an event.
    pub async fn read_since(&self, after_id: &str, limit: usize) -> Result<Vec<ObservationEvent>, Error> {
        let replay = match &self.backend {
            Backend::Redis(bus) => bus.read_after(after_id, limit, false).await?,
            Backend::Memory(bus) => bus.read_after(after_id, limit, false),
        };
        Ok(match replay {
            Replay::Events(events) => events,
            // Only an unparsable position gets here.
            Replay::Reset => Vec::new(),
        })
    }

    /// Whether the bus is reachable (readiness). Always `Ok` in-process.
    pub async fn ping(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::Redis(bus) => bus.ping().await,
            Backend::Memory(_) => Ok(()),
        }
    }
}

pub use crate::observation::parse_stream_id;

/// Formats a stream id as Redis does.
fn format_stream_id((ms, seq): (u64, u64)) -> String {
    let mut out = String::with_capacity(24);
    out.push_str(itoa::Buffer::new().format(ms));
    out.push('-');
    out.push_str(itoa::Buffer::new().format(seq));
    out
}

/// How far before a subscription came up a catch-up without any event
/// starts: stream ids carry the bus's clock, which may lag ours a little.
pub const ANCHOR_SLACK: Duration = Duration::from_secs(2);

/// The log position `{ms}-0` at `since` less [`ANCHOR_SLACK`], for
/// [`Bus::read_since`] (a read after it starts at `{ms}-1`: an entry at
/// exactly `{ms}-0` is left out, well inside the slack). Used by the
/// gateway's hub and the bridge's Redis source.
pub fn anchor_position(since: std::time::SystemTime) -> String {
    let ms = since
        .checked_sub(ANCHOR_SLACK)
        .and_then(|at| at.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |at| u64::try_from(at.as_millis()).unwrap_or(u64::MAX));
    format!("{ms}-0")
}

/// Milliseconds since the Unix epoch, by the local clock.
fn now_ms() -> u64 {
    let now = chrono::Utc::now().timestamp_millis();
    u64::try_from(now).unwrap_or(0)
}

/// Whether an id's time part lies before the retention window.
fn older_than_retention(id: (u64, u64), retention: Duration) -> bool {
    let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    id.0 < now_ms().saturating_sub(retention_ms)
}

pub use crate::redact::redact_url;

/// Decodes one channel message into a notice, logging invalid ones and
/// partly invalid ones (a measurement set to null) at most once a second.
fn decode_notice(payload: &[u8], warn: &mut InvalidLog) -> BusNotice {
    match ObservationEvent::decode_bus(payload) {
        Ok(event) => {
            if !event.rejected.is_empty() {
                if let Some(suppressed) = warn.check() {
                    let fields: Vec<&str> = event.rejected.iter().map(Field::name).collect();
                    tracing::warn!(
                        station = %event.observation.station_id,
                        fields = ?fields,
                        suppressed,
                        channel = CHANNEL,
                        "bus message with implausible or non-numeric values: those set to null, the rest kept"
                    );
                }
            }
            BusNotice::Event(event)
        }
        Err(error) => {
            if let Some(suppressed) = warn.check() {
                tracing::warn!(
                    error = %error,
                    payload_len = payload.len(),
                    suppressed,
                    channel = CHANNEL,
                    "dropped an invalid bus message"
                );
            }
            BusNotice::Invalid { error, payload_len: payload.len() }
        }
    }
}

/// The invalid-message log's throttle: one line a second.
type InvalidLog = crate::log_throttle::LogThrottle;

/// A new [`InvalidLog`].
fn invalid_log() -> InvalidLog {
    InvalidLog::new(Duration::from_secs(1))
}
