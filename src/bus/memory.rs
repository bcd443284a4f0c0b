//! The in-process bus: a `tokio::sync::broadcast` channel for live delivery
//! and a bounded ring buffer of recent events for catch-up (docs/API.md,
//! Catch-up), for the embedded mode where worker and gateway share one
//! process.
//!
//! Ids have the Redis shape `{unix_ms}-{seq}` and strictly increase even if
//! the clock goes back. Nothing survives the process: after a restart every
//! old id answers [`Replay::Reset`]. It is deliberately not a cross-process bus.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{
    decode_notice, format_stream_id, now_ms, older_than_retention, parse_stream_id, BusNotice, Replay,
    DEFAULT_RETENTION,
};
use crate::observation::{EventKind, Observation, ObservationEvent, StationId};

/// Settings of the in-process bus.
#[derive(Debug, Clone)]
pub struct MemoryBusOptions {
    /// How many recent events the ring buffer keeps for catch-up.
    pub capacity: usize,
    /// Catch-up window: an id older than this answers [`Replay::Reset`].
    pub retention: Duration,
    /// Messages the broadcast channel holds for a slow subscription task
    /// before it lags (a lagging subscription reports Disconnected then
    /// Connected, so its owner replays from the ring buffer).
    pub broadcast_capacity: usize,
    /// Capacity of each subscription's notice channel.
    pub subscriber_queue: usize,
}

impl Default for MemoryBusOptions {
    fn default() -> Self {
        MemoryBusOptions {
            capacity: 100_000,
            retention: DEFAULT_RETENTION,
            broadcast_capacity: 16_384,
            subscriber_queue: 4096,
        }
    }
}

/// One message on the broadcast channel.
#[derive(Clone)]
enum Message {
    /// Published by [`MemoryBus::publish`]: already a valid event with its id.
    Event(Arc<ObservationEvent>),
    /// Published raw, decoded by each subscription like a Redis message.
    Raw(Arc<[u8]>),
}

/// The in-process bus state shared by every [`super::Bus`] clone.
pub(super) struct MemoryBus {
    /// Settings.
    options: MemoryBusOptions,
    /// Ring buffer and id counter; held only briefly, never across an await.
    state: Mutex<State>,
    /// Live delivery to subscription tasks (sent under the state lock, so
    /// broadcast order equals id order).
    live_tx: broadcast::Sender<Message>,
}

struct State {
    /// Recent events, oldest first, with their parsed ids.
    ring: VecDeque<((u64, u64), Arc<ObservationEvent>)>,
    /// The last id assigned, if any.
    last_id: Option<(u64, u64)>,
    /// The newest id evicted from the ring, if any: an `after_id` at or
    /// beyond it loses nothing.
    last_evicted: Option<(u64, u64)>,
    /// The id of each row (kind, station, time) in the ring, for
    /// [`MemoryBus::publish_once`].
    by_key: HashMap<RowKey, Arc<ObservationEvent>>,
}

/// The stored row an event publishes: an observation and a spectrum of
/// the same station and time are different rows.
type RowKey = (EventKind, StationId, DateTime<Utc>);

fn row_key(event: &ObservationEvent) -> RowKey {
    (event.kind(), event.observation.station_id.clone(), event.observation.observed_at)
}

impl State {
    /// Appends an event to the ring, evicting the oldest at `capacity`.
    fn push(&mut self, id: (u64, u64), event: Arc<ObservationEvent>, capacity: usize) {
        if capacity == 0 {
            self.last_evicted = Some(id);
            return;
        }
        if self.ring.len() >= capacity {
            if let Some((evicted, old)) = self.ring.pop_front() {
                self.last_evicted = Some(evicted);
                let key = row_key(&old);
                if self.by_key.get(&key).is_some_and(|indexed| Arc::ptr_eq(indexed, &old)) {
                    self.by_key.remove(&key);
                }
            }
        }
        self.by_key.insert(row_key(&event), Arc::clone(&event));
        self.ring.push_back((id, event));
    }
}

impl MemoryBus {
    pub(super) fn new(options: MemoryBusOptions) -> MemoryBus {
        let (live_tx, _) = broadcast::channel(options.broadcast_capacity.max(1));
        let state = State {
            ring: VecDeque::with_capacity(options.capacity.min(4096)),
            last_id: None,
            last_evicted: None,
            by_key: HashMap::new(),
        };
        MemoryBus { options, state: Mutex::new(state), live_tx }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the ring inconsistent
        // in a way that matters more than losing the bus, so recover it.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn publish(&self, events: &[Observation]) -> Vec<String> {
        events
            .iter()
            .map(|observation| self.publish_event(ObservationEvent::new(None, observation.clone())))
            .collect()
    }

    /// Publishes one event (its `id` is assigned here) and returns its id.
    fn publish_event(&self, mut event: ObservationEvent) -> String {
        let mut state = self.lock();
        let now = now_ms();
        let id = match state.last_id {
            Some((ms, seq)) if now <= ms => (ms, seq + 1),
            _ => (now, 0),
        };
        state.last_id = Some(id);
        let id_text = format_stream_id(id);
        event.id = Some(id_text.clone());
        let event = Arc::new(event);
        state.push(id, Arc::clone(&event), self.options.capacity);
        // No receiver is fine: nobody is listening yet.
        let _ = self.live_tx.send(Message::Event(event));
        id_text
    }

    /// Publishes each event unless that version of its row (key and
    /// revision) is already in the ring buffer, whose id is returned instead.
    pub(super) fn publish_once(&self, events: &[ObservationEvent]) -> Vec<String> {
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            let key = row_key(event);
            let existing = self
                .lock()
                .by_key
                .get(&key)
                .filter(|published| published.revision == event.revision)
                .and_then(|published| published.id.clone());
            match existing {
                Some(id) => ids.push(id),
                None => ids.push(self.publish_event(ObservationEvent { id: None, ..event.clone() })),
            }
        }
        ids
    }

    /// Fills the ring buffer with already published events (start-up of the
    /// embedded mode); later ids are greater than the largest seeded one.
    pub(super) fn seed(&self, events: Vec<ObservationEvent>) {
        let mut state = self.lock();
        for event in events {
            let Some(id) = event.id.as_deref().and_then(parse_stream_id) else {
                continue;
            };
            if state.last_id.is_some_and(|last| id <= last) {
                continue;
            }
            state.last_id = Some(id);
            state.push(id, Arc::new(event), self.options.capacity);
        }
    }

    pub(super) fn publish_raw(&self, payload: &[u8]) {
        let _state = self.lock();
        let _ = self.live_tx.send(Message::Raw(Arc::from(payload)));
    }

    /// `strict`: `after_id` must be placeable (see [`Replay`]); otherwise
    /// every entry after it that the ring still holds.
    pub(super) fn read_after(&self, after_id: &str, limit: usize, strict: bool) -> Replay {
        let Some(after) = parse_stream_id(after_id) else {
            return Replay::Reset;
        };
        if strict && older_than_retention(after, self.options.retention) {
            return Replay::Reset;
        }
        let state = self.lock();
        if strict {
            match state.last_id {
                // Nothing was ever published here (e.g. the process restarted).
                None => return Replay::Reset,
                Some(last) if after > last => return Replay::Reset,
                Some(_) => {}
            }
            if let Some(evicted) = state.last_evicted {
                if after < evicted {
                    return Replay::Reset;
                }
            }
        }
        // Binary search for the first entry after `after` (ids are sorted).
        let start = state.ring.partition_point(|(id, _)| *id <= after);
        let events = state
            .ring
            .iter()
            .skip(start)
            .take(limit)
            .map(|(_, event)| ObservationEvent::clone(event))
            .collect();
        Replay::Events(events)
    }

    pub(super) fn subscribe(&self, shutdown: CancellationToken) -> mpsc::Receiver<BusNotice> {
        let (notice_tx, notice_rx) = mpsc::channel(self.options.subscriber_queue.max(1));
        let live_rx = self.live_tx.subscribe();
        tokio::spawn(run_subscription(live_rx, notice_tx, shutdown));
        notice_rx
    }
}

/// One subscription: forwards broadcast messages as notices until shutdown
/// or until the receiver is dropped.
async fn run_subscription(
    mut live_rx: broadcast::Receiver<Message>,
    notice_tx: mpsc::Sender<BusNotice>,
    shutdown: CancellationToken,
) {
    let mut invalid_log = super::invalid_log();
    if notice_tx.send(BusNotice::Connected).await.is_err() {
        return;
    }
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            received = live_rx.recv() => received,
        };
        let notices = match received {
            Ok(Message::Event(event)) => [Some(BusNotice::Event(ObservationEvent::clone(&event))), None],
            Ok(Message::Raw(payload)) => [Some(decode_notice(&payload, &mut invalid_log)), None],
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "in-process bus subscription fell behind; its owner must catch up");
                [
                    Some(BusNotice::Disconnected {
                        error: format!("subscription lagged, {missed} messages missed"),
                    }),
                    Some(BusNotice::Connected),
                ]
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        for notice in notices.into_iter().flatten() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                sent = notice_tx.send(notice) => if sent.is_err() { return },
            }
        }
    }
}
