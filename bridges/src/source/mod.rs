//! Where the bridge's observations come from: the gateway's SSE stream or
//! WebSocket, Redis directly, or a replay of history (docs/REFERENCE.md,
//! Command line: `bridge`).
//!
//! Each source is one task that sends [`Item`]s into a bounded channel and
//! ends on cancellation (live sources) or when the history is played (replay).
//! Sources do no OSC or MIDI work.

pub mod redis;
pub mod replay;
pub mod sse;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use buoycast::observation::{FieldSet, ObservationEvent, StationId};
use buoycast::spectrum::Spectrum;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One observation on its way to the sinks.
#[derive(Debug, Clone)]
pub struct Item {
    /// The observation, with its stream id when it had one.
    pub event: ObservationEvent,
    /// Media time since the bridge started: wall-clock for live sources, the
    /// scaled replay time for a replay. The .mid file places messages here.
    pub at: Duration,
    /// What `/age` is measured against: now (live) or the replayed time.
    pub now: DateTime<Utc>,
    /// The measurements to send as OSC `fields` messages and MIDI CCs (a
    /// shaped field whose deadband or rate holds it back is left out).
    pub send: FieldSet,
    /// A shaping clock step, not a report: only the fields in `send` go
    /// out (no `/observation`, `/time`, `/age`, no notes).
    pub tick: bool,
}

impl Item {
    /// A report: every field sent. A spectrum event (`event.spectrum`) has
    /// no fields: the pipeline sends the spectrum's own OSC messages and
    /// MIDI band bank instead.
    pub fn new(event: ObservationEvent, at: Duration, now: DateTime<Utc>) -> Item {
        let send = if event.spectrum.is_some() { FieldSet::EMPTY } else { FieldSet::ALL };
        Item { event, at, now, send, tick: false }
    }

    /// A spectrum report.
    pub fn from_spectrum(spectrum: Spectrum, at: Duration, now: DateTime<Utc>) -> Item {
        Item::new(ObservationEvent::spectrum(None, spectrum), at, now)
    }

    /// The spectrum, when this is a spectrum report.
    pub fn spectrum(&self) -> Option<&Arc<Spectrum>> {
        self.event.spectrum.as_ref()
    }
}

/// What every source gets.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// Where observations go (bounded; a full channel slows the source, not the sinks).
    pub items_tx: mpsc::Sender<Item>,
    /// Media time zero.
    pub start: Instant,
    /// Only these stations (empty: all).
    pub stations: Vec<StationId>,
    /// Stops a live source.
    pub shutdown: CancellationToken,
    /// Ask the gateway for every station's current state first
    /// (`?snapshot=latest`; not `--no-snapshot`).
    pub snapshot: bool,
}

impl SourceContext {
    /// Whether the station passes `--station`.
    pub fn wanted(&self, station: &StationId) -> bool {
        self.stations.is_empty() || self.stations.contains(station)
    }

    /// Sends a live observation stamped with the current media time. Returns
    /// false when the pipeline is gone.
    pub async fn send_live(&self, event: ObservationEvent) -> bool {
        if !self.wanted(&event.observation.station_id) {
            return true;
        }
        let item = Item::new(event, self.start.elapsed(), Utc::now());
        self.items_tx.send(item).await.is_ok()
    }

    /// Decodes one stream event's data (an observation, a snapshot or a
    /// spectrum: the data says which) and sends it live; an undecodable one
    /// is logged through `invalid_log` and dropped. False when the pipeline
    /// is gone.
    pub async fn send_data(&self, data: &[u8], invalid_log: &mut LogThrottle, transport: &str) -> bool {
        match ObservationEvent::decode_bus(data) {
            Ok(event) => self.send_live(event).await,
            Err(error) => {
                if let Some(suppressed) = invalid_log.check() {
                    tracing::warn!(error = %error, suppressed, transport, "stream event dropped");
                }
                true
            }
        }
    }

    /// `--station` as the gateway's `station=` filter value, if any.
    pub fn station_query(&self) -> Option<String> {
        if self.stations.is_empty() {
            None
        } else {
            Some(self.stations.iter().map(StationId::as_str).collect::<Vec<_>>().join(","))
        }
    }
}

/// Adds what the bridge asks of a gateway stream to `url`'s query: both
/// kinds of event (`kinds=observation,spectrum`: the bridge plays spectra,
/// and a gateway that predates them ignores the parameter), every station's
/// current state first when `snapshot` (`snapshot=latest`), and `station=`.
pub fn add_stream_query(url: &mut url::Url, stations: Option<&str>, snapshot: bool) {
    let mut query = url.query_pairs_mut();
    query.append_pair("kinds", "observation,spectrum");
    if snapshot {
        query.append_pair("snapshot", "latest");
    }
    if let Some(stations) = stations {
        query.append_pair("station", stations);
    }
}

/// How a connection of a live source ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// Cancelled: stop.
    Shutdown,
    /// The pipeline is gone: stop.
    DownstreamClosed,
    /// The connection dropped or failed: reconnect after a backoff.
    Disconnected(String),
}

pub use buoycast::backoff::Backoff;

/// Sleeps `delay` unless cancelled first; true when cancelled.
pub async fn sleep_or_cancel(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

pub use buoycast::log_throttle::LogThrottle;
