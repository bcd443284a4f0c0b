//! The fan-out hub: one bus subscription per process, every event encoded
//! once and shared by every stream client.
//!
//! The hub task reads [`BusNotice`]s, drops duplicates (by stream id),
//! replays what it missed after the bus comes back, and sends each event as
//! an `Arc<Delivered>` on a `broadcast` channel. The channel is one ring
//! shared by every client (`stream.client_queue` slots, 4096 by default: a
//! burst of every station at once lags no reader, and the ring's memory is
//! paid once, not per client); a client that falls that far behind sees
//! `Lagged` and is closed with `event: lagged`.
//!
//! It is not the per-client logic (that is [`super::feed`]).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::encode::{encode_sse, encode_ws};
use super::metrics::Metrics;
use crate::bus::{anchor_position, parse_stream_id, Bus, BusNotice, Replay};
use crate::log_throttle::LogThrottle;
use crate::observation::{DataForm, EventKind, FieldSet, ObservationEvent, StationId};

/// How many events one catch-up read asks for.
pub const REPLAY_PAGE: usize = 1000;

/// Publisher-to-gateway latency over which an event is logged as a slow
/// broadcast (the original system's threshold).
const SLOW_BROADCAST: Duration = Duration::from_millis(200);

/// How long the hub waits before it retries a failed catch-up read.
const HUB_REPLAY_RETRY: Duration = Duration::from_millis(500);

/// How long the hub keeps retrying a failing catch-up read before it gives
/// up and tells clients to reset. A failover can make the first reads on
/// the new master fail for a moment; that must not cost clients a reset.
const REPLAY_GIVE_UP: Duration = Duration::from_secs(30);

/// What the hub broadcasts.
#[derive(Debug)]
pub enum Delivered {
    /// One observation, with its encodings made once for everyone.
    Event(Arc<SharedEvent>),
    /// The hub lost events it could not replay (bus log trimmed or lost):
    /// clients must refetch history (`event: reset`).
    Reset,
}

/// How late `event` reached the gateway at `now`, in ms, when its
/// `publishedAt` says it is later than [`SLOW_BROADCAST`].
fn slow_broadcast_ms(event: &ObservationEvent, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    let published = event.published_at.as_deref().and_then(crate::observation::parse_time)?;
    let latency = now.signed_duration_since(published).num_milliseconds();
    (latency > SLOW_BROADCAST.as_millis() as i64).then_some(latency)
}

/// An event and its shared, lazily built encodings.
#[derive(Debug)]
pub struct SharedEvent {
    /// The decoded event.
    pub event: ObservationEvent,
    /// Its stream id, parsed, for ordering and de-duplication.
    pub stream_id: Option<(u64, u64)>,
    /// When the hub received it (for `sse_broadcast_latency_ms`).
    pub received_at: Instant,
    sse: OnceLock<Bytes>,
    ws: OnceLock<Bytes>,
    snapshot_sse: OnceLock<Bytes>,
    snapshot_ws: OnceLock<Bytes>,
}

impl SharedEvent {
    /// Wraps an event.
    pub fn new(event: ObservationEvent) -> SharedEvent {
        let stream_id = event.id.as_deref().and_then(parse_stream_id);
        SharedEvent {
            event,
            stream_id,
            received_at: Instant::now(),
            sse: OnceLock::new(),
            ws: OnceLock::new(),
            snapshot_sse: OnceLock::new(),
            snapshot_ws: OnceLock::new(),
        }
    }

    /// The full SSE `snapshot` frame, built once.
    pub fn snapshot_sse_frame(&self) -> Bytes {
        self.snapshot_sse
            .get_or_init(|| Bytes::from(encode_sse(&self.event, FieldSet::ALL, DataForm::Snapshot)))
            .clone()
    }

    /// The full WebSocket `snapshot` frame, built once.
    pub fn snapshot_ws_frame(&self) -> Bytes {
        self.snapshot_ws
            .get_or_init(|| Bytes::from(encode_ws(&self.event, FieldSet::ALL, DataForm::Snapshot)))
            .clone()
    }

    /// The full SSE frame (`id:`, `event:`, `data:`), built once.
    pub fn sse_frame(&self) -> Bytes {
        self.sse.get_or_init(|| Bytes::from(encode_sse(&self.event, FieldSet::ALL, DataForm::Event))).clone()
    }

    /// The full WebSocket text frame, built once.
    pub fn ws_frame(&self) -> Bytes {
        self.ws.get_or_init(|| Bytes::from(encode_ws(&self.event, FieldSet::ALL, DataForm::Event))).clone()
    }

    /// Whether a client with this `fields` filter gets the shared frames
    /// (a spectrum has no fields to filter).
    fn shared_for(&self, fields: FieldSet) -> bool {
        fields == FieldSet::ALL || self.event.spectrum.is_some()
    }

    /// The SSE frame in `form` (event or snapshot) for a client with `fields`:
    /// the shared one when it fits, else encoded for it.
    pub fn sse_for(&self, fields: FieldSet, form: DataForm) -> Bytes {
        match (self.shared_for(fields), form) {
            (true, DataForm::Snapshot) => self.snapshot_sse_frame(),
            (true, _) => self.sse_frame(),
            (false, _) => Bytes::from(encode_sse(&self.event, fields, form)),
        }
    }

    /// [`SharedEvent::sse_for`] for the WebSocket.
    pub fn ws_for(&self, fields: FieldSet, form: DataForm) -> Bytes {
        match (self.shared_for(fields), form) {
            (true, DataForm::Snapshot) => self.snapshot_ws_frame(),
            (true, _) => self.ws_frame(),
            (false, _) => Bytes::from(encode_ws(&self.event, fields, form)),
        }
    }
}

/// The newest observation and the newest spectrum of every station the hub
/// has delivered (seeded from the store at start-up): what
/// `?snapshot=latest` sends, kind by kind.
///
/// The hub offers each event here and broadcasts it under the same lock, and
/// a client reads its snapshot and its queue length under that lock too, so
/// an event in the snapshot is either older than the client's subscription
/// or among the first `queued` deliveries in its queue: the seam the client
/// de-duplicates (`feed.rs`).
#[derive(Debug, Default)]
pub struct Latest {
    by_station: std::sync::RwLock<LatestState>,
}

/// [`Latest`]'s state under its lock.
#[derive(Debug, Default)]
struct LatestState {
    /// Every station's newest event, one map per kind ([`kind_slot`]), in
    /// station order: read in turn, (kind, station) order, a snapshot's.
    by_kind: [BTreeMap<StationId, Arc<SharedEvent>>; 2],
    /// The stream id of the newest event offered: a snapshot holds nothing
    /// published after it.
    last_id: Option<(u64, u64)>,
}

/// Where [`Latest`] keeps an event: its kind, then its station (borrowed:
/// comparing keys allocates nothing).
pub type LatestKey<'a> = (EventKind, &'a StationId);

/// `event`'s [`LatestKey`].
pub fn latest_key(event: &ObservationEvent) -> LatestKey<'_> {
    (event.kind(), &event.observation.station_id)
}

/// Slot of a kind in [`LatestState::by_kind`] (its order is the snapshot's).
fn kind_slot(kind: EventKind) -> usize {
    match kind {
        EventKind::Observation => 0,
        EventKind::Spectrum => 1,
    }
}

impl Latest {
    /// Keeps `shared` when it is at least as new as what the station has
    /// of its kind (a correction of the newest row replaces it).
    fn offer(state: &mut LatestState, shared: &Arc<SharedEvent>) {
        if shared.stream_id.is_some() && shared.stream_id > state.last_id {
            state.last_id = shared.stream_id;
        }
        let map = &mut state.by_kind[kind_slot(shared.event.kind())];
        let observation = &shared.event.observation;
        match map.get(&observation.station_id) {
            Some(current) if current.event.observation.observed_at > observation.observed_at => {}
            _ => {
                map.insert(observation.station_id.clone(), Arc::clone(shared));
            }
        }
    }

    /// Adds stored events (start-up) for stations it does not know yet of
    /// their kind: anything the hub delivered meanwhile is at least as new.
    /// Returns how many (kind, station) pairs it then holds.
    pub fn seed(&self, events: impl IntoIterator<Item = ObservationEvent>) -> usize {
        let mut state = self.by_station.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for event in events {
            let map = &mut state.by_kind[kind_slot(event.kind())];
            if !map.contains_key(&event.observation.station_id) {
                map.insert(event.observation.station_id.clone(), Arc::new(SharedEvent::new(event)));
            }
        }
        state.by_kind.iter().map(BTreeMap::len).sum()
    }

    /// The events `admits` keeps, sorted by [`LatestKey`], how many
    /// deliveries `rx` held when they were read, and the newest stream id
    /// they can hold (events after it are not in them).
    pub fn snapshot(
        &self,
        admits: impl Fn(&ObservationEvent) -> bool,
        rx: &broadcast::Receiver<Delivery>,
    ) -> Snapshot {
        let state = self.by_station.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let queued = rx.len();
        let events = state
            .by_kind
            .iter()
            .flat_map(BTreeMap::values)
            .filter(|shared| admits(&shared.event))
            .cloned()
            .collect();
        Snapshot { events, queued, last_id: state.last_id }
    }
}

/// What [`Latest::snapshot`] read.
#[derive(Debug)]
pub struct Snapshot {
    /// The stations' newest events, sorted by [`LatestKey`].
    pub events: Vec<Arc<SharedEvent>>,
    /// Deliveries already in the client's queue when it was read.
    pub queued: usize,
    /// The newest stream id it can hold.
    pub last_id: Option<(u64, u64)>,
}

/// The hub's handle: subscribe to deliveries, watch the bus state.
#[derive(Clone)]
pub struct Hub {
    /// Every delivery; capacity = each client's queue bound.
    tx: broadcast::Sender<Delivery>,
    /// `true` while the bus subscription is live.
    bus_up: watch::Receiver<bool>,
    /// Every station's newest observation (`?snapshot=latest`).
    latest: Arc<Latest>,
}

/// What travels on the broadcast channel (cheap to clone).
pub type Delivery = Arc<Delivered>;

impl Hub {
    /// Starts the hub task on `bus`; it ends when `shutdown` is cancelled.
    pub fn start(
        bus: Bus,
        client_queue: usize,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        tracker: &tokio_util::task::TaskTracker,
    ) -> Hub {
        let (tx, _) = broadcast::channel(client_queue.max(1));
        let (up_tx, up_rx) = watch::channel(false);
        let latest = Arc::new(Latest::default());
        let task = HubTask {
            bus,
            tx: tx.clone(),
            up_tx,
            metrics,
            last: None,
            missed: false,
            live_since: None,
            slow_log: LogThrottle::new(Duration::from_secs(10)),
            latest: Arc::clone(&latest),
        };
        tracker.spawn(task.run(shutdown));
        Hub { tx, bus_up: up_rx, latest }
    }

    /// Every station's newest observation, for `?snapshot=latest`.
    pub fn latest(&self) -> &Arc<Latest> {
        &self.latest
    }

    /// A receiver of every delivery from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.tx.subscribe()
    }

    /// Whether the bus subscription is live now.
    pub fn bus_up(&self) -> bool {
        *self.bus_up.borrow()
    }

    /// A watch on the bus state.
    pub fn bus_state(&self) -> watch::Receiver<bool> {
        self.bus_up.clone()
    }

    /// Waits until the bus is up, at most `limit`; whether it is.
    pub async fn wait_up(&self, limit: std::time::Duration) -> bool {
        let mut state = self.bus_up.clone();
        tokio::time::timeout(limit, state.wait_for(|up| *up)).await.is_ok_and(|r| r.is_ok())
    }
}

struct HubTask {
    bus: Bus,
    tx: broadcast::Sender<Delivery>,
    up_tx: watch::Sender<bool>,
    metrics: Arc<Metrics>,
    /// The id of the last event broadcast, and its text (for `read_after`).
    last: Option<((u64, u64), String)>,
    /// The subscription was lost since the last event: replay on reconnect.
    missed: bool,
    /// When the subscription last came up (wall clock, as stream ids are):
    /// where a catch-up starts while no event with an id was broadcast yet.
    live_since: Option<SystemTime>,
    /// Throttles the slow-broadcast warning.
    slow_log: LogThrottle,
    /// Every station's newest observation (shared with the [`Hub`]).
    latest: Arc<Latest>,
}

impl HubTask {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut notices = self.bus.subscribe(shutdown.clone());
        loop {
            let notice = tokio::select! {
                () = shutdown.cancelled() => break,
                notice = notices.recv() => notice,
            };
            let Some(notice) = notice else { break };
            match notice {
                BusNotice::Event(event) => {
                    self.metrics.bus_received.inc();
                    for field in event.rejected.iter() {
                        self.metrics.bus_fields_invalid.with_label_values(&[field.name()]).inc();
                    }
                    self.warn_if_slow(&event);
                    self.deliver(event);
                }
                BusNotice::Invalid { error, payload_len } => {
                    self.metrics.bus_invalid.inc();
                    tracing::debug!(error = %error, payload_len, "dropped an invalid bus message");
                }
                BusNotice::Disconnected { error } => {
                    self.missed = true;
                    self.metrics.bus_up.set(0);
                    self.up_tx.send_replace(false);
                    tracing::warn!(error = %error, "bus subscription lost; new streams get 503 until it is back");
                }
                BusNotice::Connected => {
                    let came_up = SystemTime::now();
                    if self.missed {
                        self.metrics.bus_reconnects.inc();
                        self.catch_up(&shutdown).await;
                        self.missed = false;
                    }
                    self.live_since = Some(came_up);
                    self.metrics.bus_up.set(1);
                    self.up_tx.send_replace(true);
                    tracing::info!("bus subscription live");
                }
            }
        }
        self.up_tx.send_replace(false);
    }

    /// The original system's warning: an event that reaches the gateway more
    /// than [`SLOW_BROADCAST`] after its publisher's `publishedAt` is logged
    /// (at most once every 10 s, with how many were held back).
    fn warn_if_slow(&mut self, event: &ObservationEvent) {
        if let Some(latency_ms) = slow_broadcast_ms(event, chrono::Utc::now()) {
            if let Some(suppressed) = self.slow_log.check() {
                tracing::warn!(
                    latency_ms,
                    station = %event.observation.station_id,
                    suppressed,
                    "slow broadcast: more than 200 ms from publishedAt to the gateway"
                );
            }
        }
    }

    /// Broadcasts one event unless it was already delivered.
    fn deliver(&mut self, event: ObservationEvent) {
        let shared = SharedEvent::new(event);
        if let Some(id) = shared.stream_id {
            if let Some((last, _)) = &self.last {
                if id <= *last {
                    return; // Replay and live overlap: already delivered.
                }
            }
            self.last = Some((id, shared.event.id.clone().unwrap_or_default()));
        }
        let shared = Arc::new(shared);
        // Offer and broadcast under one lock: a client reading its snapshot
        // sees an event in both only while it is still in its queue.
        let mut latest = self.latest.by_station.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        // (`latest` is the whole state: the map and the newest id.)
        Latest::offer(&mut latest, &shared);
        // No receivers is fine: nobody is listening right now.
        let _ = self.tx.send(Arc::new(Delivered::Event(shared)));
    }

    /// Tells every client to refetch history, and forgets the last id: the
    /// log may have started over (lost, or a failover to a node whose clock
    /// lags), and its new events must not be taken for ones already sent.
    fn reset_clients(&mut self) {
        self.last = None;
        let _ = self.tx.send(Arc::new(Delivered::Reset));
    }

    /// After the subscription came back: replay what the bus log holds
    /// after the last event we delivered, or, when none had an id yet, what
    /// it holds from shortly before the subscription last came up (anything
    /// since was missed). Clients drop what they already have by id.
    async fn catch_up(&mut self, shutdown: &CancellationToken) {
        let (mut after, mut from_anchor) = match (&self.last, self.live_since) {
            (Some((_, id)), _) => (id.clone(), false),
            (None, Some(since)) => (anchor_position(since), true),
            (None, None) => return,
        };
        let mut failing_since: Option<Instant> = None;
        loop {
            let read = async {
                if from_anchor {
                    self.bus.read_since(&after, REPLAY_PAGE).await.map(Replay::Events)
                } else {
                    self.bus.read_after(&after, REPLAY_PAGE).await
                }
            };
            let replay = tokio::select! {
                () = shutdown.cancelled() => return,
                replay = read => replay,
            };
            match replay {
                Ok(Replay::Events(events)) => {
                    failing_since = None;
                    let n_events = events.len();
                    for event in events {
                        if let Some(id) = &event.id {
                            after.clone_from(id);
                            from_anchor = false;
                        }
                        self.deliver(event);
                    }
                    if n_events < REPLAY_PAGE {
                        return;
                    }
                }
                Ok(Replay::Reset) => {
                    tracing::warn!(after = %after, "bus log cannot replay what the subscription missed; clients are told to reset");
                    self.reset_clients();
                    return;
                }
                Err(error) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= REPLAY_GIVE_UP {
                        tracing::warn!(error = %error, "replaying missed events kept failing; clients are told to reset");
                        self.reset_clients();
                        return;
                    }
                    tracing::warn!(error = %error, "replaying missed events failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(HUB_REPLAY_RETRY) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::{Measurements, Observation, StationId};

    #[test]
    fn seeding_never_replaces_what_the_hub_delivered_and_snapshots_know_their_last_id() {
        let station = StationId::parse("46026").expect("valid");
        let observation = |wave: f64| Observation {
            station_id: station.clone(),
            observed_at: chrono::DateTime::from_timestamp(1_764_000_000, 0).expect("time"),
            measurements: Measurements::default().with(crate::observation::Field::WaveHeightM, wave),
        };
        let latest = Latest::default();
        // Live first: a correction, with its id.
        let live = Arc::new(SharedEvent::new(ObservationEvent {
            revision: 1,
            ..ObservationEvent::new(Some("5-0".into()), observation(1.4))
        }));
        Latest::offer(&mut latest.by_station.write().expect("lock"), &live);
        // Then the start-up seed, read from the store before the correction.
        latest.seed([ObservationEvent::new(None, observation(1.2))]);
        let (_tx, rx) = {
            let (tx, rx) = broadcast::channel::<Delivery>(4);
            (tx, rx)
        };
        let read = latest.snapshot(|_| true, &rx);
        assert_eq!(read.events.len(), 1);
        assert_eq!(read.events[0].event.revision, 1, "the correction stays");
        assert_eq!(read.last_id, Some((5, 0)));
    }

    #[test]
    fn only_events_published_more_than_200_ms_ago_are_slow() {
        let now = chrono::Utc::now();
        let event = |published_at: Option<String>| {
            let mut event = ObservationEvent::new(
                None,
                Observation {
                    station_id: StationId::parse("46026").expect("valid"),
                    observed_at: now,
                    measurements: Measurements::default(),
                },
            );
            event.published_at = published_at;
            event
        };
        let ago = |ms| Some(crate::observation::format_time(&(now - chrono::Duration::milliseconds(ms))));
        assert_eq!(slow_broadcast_ms(&event(ago(1500)), now), Some(1500));
        assert_eq!(slow_broadcast_ms(&event(ago(150)), now), None);
        assert_eq!(slow_broadcast_ms(&event(None), now), None);
        assert_eq!(slow_broadcast_ms(&event(Some("not a time".into())), now), None);
    }
}
