//! One stream client's sequence of frames, shared by SSE and WebSocket:
//! the connection event, then (with `?snapshot=latest`) one `snapshot` per
//! station, then catch-up from `Last-Event-ID`, then live events, keepalives,
//! and the closing `reset` / `lagged` signals.
//!
//! Gap-free catch-up: the client subscribes to the hub *before* it reads the
//! bus log, then drops live events whose id is not past the last one it sent,
//! so replay and live meet without a gap or a duplicate (docs/API.md, Catch-up).
//!
//! Snapshot seam: the snapshot is read after subscribing too, with the
//! number of deliveries already queued ([`Latest::snapshot`]). A snapshot
//! client gets the current state, then only what is newer: the queued
//! deliveries and the replayed (catch-up) events that are not newer than
//! their station's snapshot (an older time, or the same row at the same or
//! an older revision) are dropped, so a client that applies events as state
//! never steps back or hears a value twice. Every later delivery is new;
//! the snapshot is let go at the first one.
//!
//! This module knows nothing of bytes on the wire: [`super::sse`] and
//! [`super::ws`] encode the [`Frame`]s.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::fanout::{latest_key, Delivered, Delivery, Hub, SharedEvent, REPLAY_PAGE};
use crate::bus::{parse_stream_id, Bus, Replay};
use crate::observation::{EventKind, FieldSet, ObservationEvent, StationId};

/// How long a client's failed catch-up read waits before it tries again
/// (thousands of clients may be retrying at once: not too often).
const REPLAY_RETRY: Duration = Duration::from_secs(1);

/// What a client asked to see.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Only these stations; `None` means every station.
    pub stations: Option<Vec<StationId>>,
    /// Only these measurement keys (identity keys always stay).
    pub fields: FieldSet,
    /// Which kinds of event (`?kinds=`; observations only by default, so
    /// clients that know nothing of spectra never see one).
    pub kinds: Kinds,
}

impl Default for Filter {
    fn default() -> Self {
        Filter { stations: None, fields: FieldSet::ALL, kinds: Kinds::default() }
    }
}

impl Filter {
    /// Whether the client wants this event.
    pub fn admits(&self, event: &ObservationEvent) -> bool {
        self.kinds.contains(event.kind())
            && match &self.stations {
                None => true,
                Some(stations) => stations.contains(&event.observation.station_id),
            }
    }
}

/// A set of [`EventKind`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    observation: bool,
    spectrum: bool,
}

impl Default for Kinds {
    /// Observations only.
    fn default() -> Self {
        Kinds { observation: true, spectrum: false }
    }
}

impl Kinds {
    /// Parses a comma list of kind names (`observation,spectrum`); the
    /// unknown name on failure.
    pub fn parse_list(raw: &str) -> Result<Kinds, String> {
        let mut kinds = Kinds { observation: false, spectrum: false };
        for name in raw.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            match EventKind::from_name(name) {
                Some(EventKind::Observation) => kinds.observation = true,
                Some(EventKind::Spectrum) => kinds.spectrum = true,
                None => return Err(name.to_owned()),
            }
        }
        Ok(kinds)
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: EventKind) -> bool {
        match kind {
            EventKind::Observation => self.observation,
            EventKind::Spectrum => self.spectrum,
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        !self.observation && !self.spectrum
    }
}

/// One thing to send to a client.
#[derive(Debug)]
pub enum Frame {
    /// The `connection` event, first of all.
    Connection,
    /// A live event, with its shared encodings.
    Live(Arc<SharedEvent>),
    /// A replayed event (catch-up), encoded per client.
    Replayed(Box<ObservationEvent>),
    /// One station's current state (`?snapshot=latest`), no id.
    Snapshot(Arc<SharedEvent>),
    /// The client's position cannot be honoured: it must refetch history.
    Reset,
    /// The client fell `skipped` events behind and is being closed.
    Lagged {
        /// Events it missed.
        skipped: u64,
    },
    /// Nothing happened for a while: keep proxies from closing the stream.
    Keepalive,
}

enum Phase {
    CatchUp { after: String, done: bool },
    Live,
    Closed,
}

/// A client's frame source. Call [`Feed::next`] until it returns `None`.
pub struct Feed {
    /// Whether the connection event went out (it goes first, always).
    connect_sent: bool,
    phase: Phase,
    rx: Receiver<Delivery>,
    hub: Hub,
    bus: Bus,
    filter: Filter,
    /// The id of the last event sent, so live events that the catch-up
    /// already sent are dropped.
    last: Option<(u64, u64)>,
    pending: VecDeque<ObservationEvent>,
    keepalive: Interval,
    shutdown: CancellationToken,
    /// The snapshot's progress.
    snapshot: Snapshot,
    /// `?snapshot=latest`: also sent again after a `reset`.
    wants_snapshot: bool,
}

/// Where a feed is with its snapshot.
enum Snapshot {
    /// Not asked for, or done with (seam passed).
    Off,
    /// Asked for, not read yet.
    Wanted,
    /// Read: frames still to send (`next`), and the seam to de-duplicate:
    /// the events sent, sorted by station, and how many queued deliveries
    /// may repeat one of them.
    Sending { events: Vec<Arc<SharedEvent>>, next: usize, queued: usize, last_id: Option<(u64, u64)> },
}

impl Feed {
    /// A feed that starts with the connection event, then catches up from
    /// `last_event_id` (when given), then goes live.
    pub fn new(
        hub: &Hub,
        bus: Bus,
        filter: Filter,
        last_event_id: Option<String>,
        snapshot: bool,
        keepalive_interval: Duration,
        shutdown: CancellationToken,
    ) -> Feed {
        // Subscribe first: everything published from now on is in `rx`.
        let rx = hub.subscribe();
        let mut keepalive = tokio::time::interval_at(Instant::now() + keepalive_interval, keepalive_interval);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let phase = match last_event_id {
            Some(after) => Phase::CatchUp { after, done: false },
            None => Phase::Live,
        };
        let last = match &phase {
            Phase::CatchUp { after, .. } => parse_stream_id(after),
            _ => None,
        };
        Feed {
            connect_sent: false,
            phase,
            rx,
            hub: hub.clone(),
            bus,
            filter,
            last,
            pending: VecDeque::new(),
            keepalive,
            shutdown,
            snapshot: if snapshot { Snapshot::Wanted } else { Snapshot::Off },
            wants_snapshot: snapshot,
        }
    }

    /// The next snapshot frame, reading the snapshot first when needed.
    fn next_snapshot(&mut self) -> Option<Frame> {
        if matches!(self.snapshot, Snapshot::Wanted) {
            let read = self.hub.latest().snapshot(|event| self.filter.admits(event), &self.rx);
            self.snapshot = Snapshot::Sending {
                events: read.events,
                next: 0,
                queued: read.queued,
                last_id: read.last_id,
            };
        }
        match &mut self.snapshot {
            Snapshot::Sending { events, next, .. } if *next < events.len() => {
                *next += 1;
                Some(Frame::Snapshot(Arc::clone(&events[*next - 1])))
            }
            _ => None,
        }
    }

    /// After a `reset`, a snapshot client gets the current state again (the
    /// events it had cannot be trusted to be complete).
    fn snapshot_after_reset(&mut self) {
        if self.wants_snapshot {
            self.snapshot = Snapshot::Wanted;
        }
    }

    /// Whether `event` is at the seam and not newer than its station's
    /// snapshot (see the module doc). `live` counts one of the queued deliveries.
    fn repeats_snapshot(&mut self, event: &ObservationEvent, live: bool) -> bool {
        let Snapshot::Sending { events, queued, last_id, .. } = &mut self.snapshot else { return false };
        // A replayed event published after the snapshot was read is new.
        let id = event.id.as_deref().and_then(parse_stream_id);
        if !live && id.is_some() && last_id.is_some() && id > *last_id {
            return false;
        }
        if live {
            if *queued == 0 {
                // Past the seam: the snapshot is no longer needed.
                self.snapshot = Snapshot::Off;
                return false;
            }
            *queued -= 1;
        }
        let key = latest_key(event);
        events.binary_search_by(|sent| latest_key(&sent.event).cmp(&key)).is_ok_and(|at| {
            let sent = &events[at].event;
            let (sent_at, at) = (sent.observation.observed_at, event.observation.observed_at);
            at < sent_at || (at == sent_at && event.revision <= sent.revision)
        })
    }

    /// The filter this feed applies.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The next frame, or `None` when the stream is over (shutdown, lagged).
    pub async fn next(&mut self) -> Option<Frame> {
        if !self.connect_sent {
            self.connect_sent = true;
            return Some(Frame::Connection);
        }
        if !matches!(self.snapshot, Snapshot::Off) {
            if let Some(frame) = self.next_snapshot() {
                return Some(frame);
            }
        }
        loop {
            match &mut self.phase {
                Phase::Closed => return None,
                Phase::CatchUp { after, done } => {
                    if let Some(event) = self.pending.pop_front() {
                        if let Some(id) = event.id.as_deref().and_then(parse_stream_id) {
                            self.last = Some(id);
                        }
                        if self.filter.admits(&event) && !self.repeats_snapshot(&event, false) {
                            return Some(Frame::Replayed(Box::new(event)));
                        }
                        continue;
                    }
                    if *done {
                        self.phase = Phase::Live;
                        continue;
                    }
                    let after = after.clone();
                    // Boxed: the bus read is a large future, and inline it would
                    // make every live client's `next()` state (kept for the
                    // whole connection) as large as a catch-up's.
                    let page = Box::pin(read_page(&self.hub, &self.bus, &after));
                    let outcome = tokio::select! {
                        () = self.shutdown.cancelled() => {
                            self.phase = Phase::Closed;
                            return None;
                        }
                        _ = self.keepalive.tick() => return Some(Frame::Keepalive),
                        outcome = page => outcome,
                    };
                    match outcome {
                        PageOutcome::Events(events) => {
                            let full = events.len() >= REPLAY_PAGE;
                            let next_after =
                                events.iter().rev().find_map(|event| event.id.clone()).unwrap_or(after);
                            self.pending.extend(events);
                            self.phase = Phase::CatchUp { after: next_after, done: !full };
                        }
                        PageOutcome::Reset => {
                            self.phase = Phase::Live;
                            self.last = None;
                            self.snapshot_after_reset();
                            return Some(Frame::Reset);
                        }
                        PageOutcome::Retry => {}
                    }
                }
                Phase::Live => {
                    let received = tokio::select! {
                        biased;
                        () = self.shutdown.cancelled() => {
                            self.phase = Phase::Closed;
                            return None;
                        }
                        received = self.rx.recv() => received,
                        _ = self.keepalive.tick() => return Some(Frame::Keepalive),
                    };
                    match received {
                        Ok(delivery) => match &*delivery {
                            Delivered::Event(shared) => {
                                let repeat = self.repeats_snapshot(&shared.event, true);
                                if let (Some(id), Some(last)) = (shared.stream_id, self.last) {
                                    if id <= last {
                                        continue;
                                    }
                                }
                                if shared.stream_id.is_some() {
                                    self.last = shared.stream_id;
                                }
                                if self.filter.admits(&shared.event) && !repeat {
                                    self.keepalive.reset();
                                    return Some(Frame::Live(Arc::clone(shared)));
                                }
                            }
                            Delivered::Reset => {
                                self.last = None;
                                self.snapshot_after_reset();
                                return Some(Frame::Reset);
                            }
                        },
                        Err(RecvError::Lagged(skipped)) => {
                            self.phase = Phase::Closed;
                            return Some(Frame::Lagged { skipped });
                        }
                        Err(RecvError::Closed) => {
                            self.phase = Phase::Closed;
                            return None;
                        }
                    }
                }
            }
        }
    }
}

enum PageOutcome {
    Events(Vec<ObservationEvent>),
    Reset,
    Retry,
}

/// Waits for the bus, then reads one page of the log after `after`.
async fn read_page(hub: &Hub, bus: &Bus, after: &str) -> PageOutcome {
    // `parse_stream_id` bounds each part at 20 digits: an oversized header cannot be placed.
    if parse_stream_id(after).is_none() {
        return PageOutcome::Reset;
    }
    let mut state = hub.bus_state();
    if state.wait_for(|up| *up).await.is_err() {
        // The hub is gone (shutdown): nothing more will come.
        std::future::pending::<()>().await;
    }
    match bus.read_after(after, REPLAY_PAGE).await {
        Ok(Replay::Events(events)) => PageOutcome::Events(events),
        Ok(Replay::Reset) => PageOutcome::Reset,
        Err(error) => {
            tracing::warn!(error = %error, "catch-up read failed; retrying");
            tokio::time::sleep(REPLAY_RETRY).await;
            PageOutcome::Retry
        }
    }
}
