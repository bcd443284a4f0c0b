//! Bus contract tests: the same test bodies run against the in-process bus
//! (`bus::memory::*`) and a real throw-away redis-server (`bus::redis::*`),
//! plus Redis-only tests (`bus::redis_*`: wire bytes, foreign publishers,
//! restarts, a frozen server, persistence).
//!
//! The observations are real rows of `realtime2/41002.txt`. Every wait is
//! bounded by a timeout so a failing test fails instead of hanging.

use std::time::{Duration, Instant};

use buoycast::bus::{parse_stream_id, Bus, BusNotice, MemoryBusOptions, RedisBusOptions, Replay};
use buoycast::observation::{Field, Observation, ObservationEvent, StationId};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

use crate::harness::redis::{RedisOptions, RedisServer};
use crate::harness::{fixtures, init_logs};

/// Bound on any single wait for a notice.
const WAIT: Duration = Duration::from_secs(5);

/// What a contract test may change; each backend maps it onto its options.
#[derive(Debug, Clone, Copy)]
struct Settings {
    /// Ring capacity (memory) or `MAXLEN ~` (Redis).
    retained: usize,
    /// Catch-up window.
    retention: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { retained: 100_000, retention: Duration::from_secs(24 * 3600) }
    }
}

/// A backend under test.
enum Backend {
    Memory,
    Redis(RedisServer),
}

impl Backend {
    /// A bus with default settings. For memory every call makes a separate
    /// bus, so a test keeps one bus and clones it.
    fn bus(&self) -> Bus {
        self.bus_with(Settings::default())
    }

    fn bus_with(&self, settings: Settings) -> Bus {
        match self {
            Backend::Memory => Bus::memory(MemoryBusOptions {
                capacity: settings.retained,
                retention: settings.retention,
                ..MemoryBusOptions::default()
            }),
            Backend::Redis(server) => Bus::redis(
                &server.url(),
                RedisBusOptions {
                    max_len: settings.retained as u64,
                    retention: settings.retention,
                    ..RedisBusOptions::default()
                },
            )
            .expect("a valid redis url"),
        }
    }
}

/// The first `n` rows of a real NDBC file (repeated when `n` exceeds the file).
fn real_observations(n: usize) -> Vec<Observation> {
    let station = StationId::parse("41002").expect("valid station id");
    let parsed =
        buoycast::sources::ndbc::parse::parse(&fixtures::read("realtime2/41002.txt"), Some(&station))
            .expect("41002.txt is an NDBC stdmet file");
    assert!(parsed.observations.len() > 6000, "41002.txt has its 45 days of rows");
    parsed.observations.iter().cycle().take(n).cloned().collect()
}

/// Bus options for tests that stop and restart Redis: reconnect attempts at
/// most a second apart, so the reconnect follows the restart closely.
pub fn restarting_options() -> RedisBusOptions {
    RedisBusOptions { reconnect_max: Duration::from_secs(1), ..RedisBusOptions::default() }
}

async fn next_notice(rx: &mut Receiver<BusNotice>) -> BusNotice {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no bus notice within {WAIT:?}"))
        .expect("the subscription is still open")
}

async fn next_event(rx: &mut Receiver<BusNotice>) -> ObservationEvent {
    match next_notice(rx).await {
        BusNotice::Event(event) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Subscribes and waits for the subscription to be live.
pub(crate) async fn subscribed(bus: &Bus, shutdown: &CancellationToken) -> Receiver<BusNotice> {
    let mut rx = bus.subscribe(shutdown.clone());
    assert_eq!(next_notice(&mut rx).await, BusNotice::Connected);
    rx
}

pub(crate) fn ids_of(replay: Replay) -> Vec<String> {
    match replay {
        Replay::Events(events) => {
            events.into_iter().map(|event| event.id.expect("logged events have ids")).collect()
        }
        Replay::Reset => panic!("expected events, got Reset"),
    }
}

pub(crate) fn assert_strictly_increasing(ids: &[String]) {
    let parsed: Vec<(u64, u64)> =
        ids.iter().map(|id| parse_stream_id(id).unwrap_or_else(|| panic!("malformed id {id:?}"))).collect();
    for pair in parsed.windows(2) {
        assert!(pair[0] < pair[1], "ids must strictly increase: {pair:?}");
    }
}

// ---------------------------------------------------------------- contract

async fn publish_delivers_every_event_in_order(backend: Backend) {
    let bus = backend.bus();
    let shutdown = CancellationToken::new();
    let mut rx = subscribed(&bus, &shutdown).await;
    let observations = real_observations(200);
    let ids = bus.publish(&observations).await.expect("publish");
    assert_eq!(ids.len(), observations.len());
    assert_strictly_increasing(&ids);
    for (observation, id) in observations.iter().zip(&ids) {
        let event = next_event(&mut rx).await;
        assert_eq!(event.id.as_ref(), Some(id));
        assert_eq!(&event.observation, observation);
        let json: serde_json::Value = serde_json::from_str(&event.to_bus_json()).expect("valid JSON");
        let object = json.as_object().expect("an object");
        assert_eq!(object.len(), 17, "id, stationId, timestamp and 14 measurements: {json}");
        for field in Field::ALL {
            assert!(object.contains_key(field.name()), "{} missing in {json}", field.name());
        }
        assert_eq!(json["stationId"], "41002");
    }
    // The first row of 41002.txt: 2018-08-01 15:10, WDIR 160, WSPD 6.0, PRES 1022.9, WVHT MM.
    assert_eq!(observations[0].measurements.get(Field::WindDirDeg), Some(160.0));
    assert_eq!(observations[0].measurements.get(Field::PressureHpa), Some(1022.9));
    assert_eq!(observations[0].measurements.get(Field::WaveHeightM), None);
    shutdown.cancel();
}

async fn ids_increase_across_calls_and_batches(backend: Backend) {
    let bus = backend.bus();
    let observations = real_observations(1300);
    let mut ids = Vec::new();
    // Many single publishes in the same millisecond, then one call larger than a Redis batch (500).
    for observation in &observations[..100] {
        ids.extend(bus.publish(std::slice::from_ref(observation)).await.expect("publish one"));
    }
    let bulk = bus.publish(&observations[100..]).await.expect("publish many");
    assert_eq!(bulk.len(), 1200);
    ids.extend(bulk);
    assert_strictly_increasing(&ids);
    assert_eq!(bus.publish(&[]).await.expect("publish nothing"), Vec::<String>::new());
}

async fn read_after_returns_exactly_the_later_events(backend: Backend) {
    let bus = backend.bus();
    let observations = real_observations(20);
    let ids = bus.publish(&observations).await.expect("publish");

    let Replay::Events(events) = bus.read_after(&ids[4], 100).await.expect("read") else {
        panic!("an id just published must be placed");
    };
    assert_eq!(events.len(), 15);
    for ((event, id), observation) in events.iter().zip(&ids[5..]).zip(&observations[5..]) {
        assert_eq!(event.id.as_ref(), Some(id));
        assert_eq!(&event.observation, observation);
    }
    assert_eq!(ids_of(bus.read_after(&ids[4], 3).await.expect("read")), ids[5..8].to_vec());
    assert_eq!(ids_of(bus.read_after(&ids[0], 0).await.expect("read")), Vec::<String>::new());
    assert_eq!(ids_of(bus.read_after(&ids[18], 100).await.expect("read")), vec![ids[19].clone()]);
    assert_eq!(bus.read_after(&ids[19], 100).await.expect("read"), Replay::Events(Vec::new()));

    // Paging from the last id of each page gets everything once, in order.
    let mut paged = Vec::new();
    let mut cursor = ids[0].clone();
    loop {
        let page = ids_of(bus.read_after(&cursor, 6).await.expect("read"));
        let Some(last) = page.last() else { break };
        cursor = last.clone();
        paged.extend(page);
    }
    assert_eq!(paged, ids[1..].to_vec());
}

async fn read_after_resets_ids_it_cannot_place(backend: Backend) {
    let bus = backend.bus();
    let day_ms = 24 * 3600 * 1000;
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).expect("after 1970");
    let recent = format!("{}-0", now_ms - 60_000);
    // Nothing published yet: no log to place a (well-formed, recent) id in.
    assert_eq!(bus.read_after(&recent, 10).await.expect("read"), Replay::Reset);

    let ids = bus.publish(&real_observations(5)).await.expect("publish");
    let (last_ms, _) = parse_stream_id(&ids[4]).expect("well-formed");
    let future = format!("{}-0", last_ms + 3_600_000);
    let too_old = format!("{}-0", now_ms - 2 * day_ms);
    for id in ["garbage", "", "1-2-3", "-1-0", "12", " 1-0", future.as_str(), too_old.as_str(), "0-0"] {
        assert_eq!(bus.read_after(id, 10).await.expect("read"), Replay::Reset, "{id:?}");
    }
    // A valid id still works afterwards.
    assert_eq!(ids_of(bus.read_after(&ids[1], 10).await.expect("read")), ids[2..].to_vec());
}

async fn retention_window_resets_expired_ids(backend: Backend) {
    let retention = Duration::from_secs(3);
    let bus = backend.bus_with(Settings { retention, ..Settings::default() });
    let ids = bus.publish(&real_observations(3)).await.expect("publish");
    assert_eq!(ids_of(bus.read_after(&ids[0], 10).await.expect("read")), ids[1..].to_vec());
    tokio::time::sleep(retention + Duration::from_millis(200)).await;
    assert_eq!(bus.read_after(&ids[0], 10).await.expect("read"), Replay::Reset);
    assert_eq!(bus.read_after(&ids[2], 10).await.expect("read"), Replay::Reset);
}

async fn read_since_takes_any_position_in_time(backend: Backend) {
    let bus = backend.bus();
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).expect("after 1970");
    let before = format!("{}-0", now_ms - 10_000);
    // Nothing logged yet: nothing to read, and no error.
    assert!(bus.read_since(&before, 10).await.expect("read").is_empty());
    let ids = bus.publish(&real_observations(4)).await.expect("publish");
    // A position before the first entry: everything.
    assert_eq!(ids_of(Replay::Events(bus.read_since(&before, 10).await.expect("read"))), ids);
    // Between entries, and pages.
    assert_eq!(ids_of(Replay::Events(bus.read_since(&ids[1], 1).await.expect("read"))), ids[2..3]);
    // After the last entry, or in the future: nothing.
    assert!(bus.read_since(&ids[3], 10).await.expect("read").is_empty());
    let (last_ms, _) = parse_stream_id(&ids[3]).expect("well-formed");
    assert!(bus.read_since(&format!("{}-0", last_ms + 60_000), 10).await.expect("read").is_empty());
}

async fn trimmed_ids_reset(backend: Backend) {
    // Redis trims whole stream nodes (100 entries by default) with MAXLEN ~,
    // so publish enough for several nodes.
    let bus = backend.bus_with(Settings { retained: 10, ..Settings::default() });
    let ids = bus.publish(&real_observations(500)).await.expect("publish");
    assert_eq!(bus.read_after(&ids[0], 10).await.expect("read"), Replay::Reset);
    assert_eq!(bus.read_after(&ids[100], 10).await.expect("read"), Replay::Reset);
    assert_eq!(ids_of(bus.read_after(&ids[497], 10).await.expect("read")), ids[498..].to_vec());
    assert_eq!(bus.read_after(&ids[499], 10).await.expect("read"), Replay::Events(Vec::new()));
}

async fn foreign_messages_without_id_are_delivered(backend: Backend) {
    let bus = backend.bus();
    let shutdown = CancellationToken::new();
    let mut rx = subscribed(&bus, &shutdown).await;
    // The original TypeScript worker's message: seven fields, no id.
    let original = br#"{"stationId":"46026","timestamp":"2026-11-28T06:40:00.000Z","waveHeightM":1.2,"windSpeedMps":5.1,"windDirDeg":270,"waterTempC":14.2,"pressureHpa":1016.3}"#;
    bus.publish_raw(original).await.expect("publish raw");
    let event = next_event(&mut rx).await;
    assert_eq!(event.id, None);
    assert_eq!(event.observation.station_id.as_str(), "46026");
    assert_eq!(event.observation.measurements.get(Field::WaveHeightM), Some(1.2));
    assert_eq!(event.observation.measurements.get(Field::WindDirDeg), Some(270.0));
    assert_eq!(event.observation.measurements.get(Field::PressureHpa), Some(1016.3));
    for field in [Field::GustMps, Field::AirTempC, Field::TideFt, Field::DewpointC] {
        assert_eq!(event.observation.measurements.get(field), None, "{field}");
    }
    // Not logged: nothing to replay.
    let ids = bus.publish(&real_observations(1)).await.expect("publish");
    assert_eq!(next_event(&mut rx).await.id.as_ref(), Some(&ids[0]));
    shutdown.cancel();
}

async fn malformed_messages_are_invalid_and_not_forwarded(backend: Backend) {
    let bus = backend.bus();
    let shutdown = CancellationToken::new();
    let mut rx = subscribed(&bus, &shutdown).await;
    let bad: [&[u8]; 4] = [
        b"not json",
        b"[1]",
        br#"{"stationId":"x"}"#,
        br#"{"stationId":"46-026","timestamp":"2026-11-28T06:40:00Z"}"#,
    ];
    for payload in bad {
        bus.publish_raw(payload).await.expect("publish raw");
    }
    for payload in bad {
        match next_notice(&mut rx).await {
            BusNotice::Invalid { payload_len, .. } => assert_eq!(payload_len, payload.len()),
            other => panic!("expected Invalid for {:?}, got {other:?}", String::from_utf8_lossy(payload)),
        }
    }
    let observations = real_observations(1);
    let ids = bus.publish(&observations).await.expect("publish");
    let event = next_event(&mut rx).await;
    assert_eq!(event.id.as_ref(), Some(&ids[0]));
    assert_eq!(event.observation, observations[0]);
    shutdown.cancel();
}

async fn several_subscribers_each_get_everything(backend: Backend) {
    let bus = backend.bus();
    let shutdown = CancellationToken::new();
    let mut receivers = Vec::new();
    for _ in 0..3 {
        receivers.push(subscribed(&bus, &shutdown).await);
    }
    // A clone of the handle publishes to the same bus.
    let publisher = bus.clone();
    let ids = publisher.publish(&real_observations(50)).await.expect("publish");
    for rx in &mut receivers {
        let mut got = Vec::new();
        for _ in 0..ids.len() {
            got.push(next_event(rx).await.id.expect("an id"));
        }
        assert_eq!(got, ids);
    }
    shutdown.cancel();
}

async fn shutdown_ends_subscriptions(backend: Backend) {
    let bus = backend.bus();
    let shutdown = CancellationToken::new();
    let mut rx = subscribed(&bus, &shutdown).await;
    shutdown.cancel();
    let end = tokio::time::timeout(WAIT, rx.recv()).await.expect("the subscription ends within 5 s");
    assert_eq!(end, None);
    assert!(bus.ping().await.is_ok());
}

async fn bulk_publish_arrives_complete(backend: Backend) {
    let bus = backend.bus();
    let shutdown = CancellationToken::new();
    let mut rx = subscribed(&bus, &shutdown).await;
    let observations = real_observations(10_000);
    let started = Instant::now();
    let ids = bus.publish(&observations).await.expect("publish");
    let published = started.elapsed();
    let mut received = 0;
    let mut last = None;
    while received < ids.len() {
        let event = next_event(&mut rx).await;
        let id = parse_stream_id(event.id.as_deref().expect("an id")).expect("well-formed");
        assert!(last < Some(id), "in order");
        last = Some(id);
        received += 1;
    }
    let delivered = started.elapsed();
    eprintln!(
        "bulk: {} events published in {published:?} ({:.0}/s), all received after {delivered:?} ({:.0}/s)",
        ids.len(),
        ids.len() as f64 / published.as_secs_f64(),
        ids.len() as f64 / delivered.as_secs_f64(),
    );
    assert_eq!(ids_of(bus.read_after(&ids[9_989], 100).await.expect("read")), ids[9_990..].to_vec());
    shutdown.cancel();
}

/// Generates `memory::NAME` and `redis::NAME` for every contract test body.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::init_logs();
                    super::$name(super::Backend::Memory).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::init_logs();
                    super::$name(super::Backend::Redis(super::RedisServer::start())).await;
                }
            )*
        }
    };
}

/// Spectra share the log and its ids with observations: published once per
/// version (an observation and a spectrum of the same station and time are
/// different rows), delivered whole, and replayed in order with them.
async fn spectra_travel_with_observations_in_one_id_sequence(backend: Backend) {
    let bus = backend.bus();
    let shutdown = CancellationToken::new();
    let mut rx = subscribed(&bus, &shutdown).await;
    let spectra = fixtures::spectra_41010();
    let spectrum = spectra.last().expect("spectra").clone();
    // An observation with the spectrum's very key, so the two rows collide if keyed alike.
    let mut observation = real_observations(1).remove(0);
    observation.station_id = spectrum.station_id.clone();
    observation.observed_at = spectrum.timestamp;
    let events = vec![
        ObservationEvent::new(None, observation.clone()),
        ObservationEvent::spectrum(None, spectrum.clone()),
        ObservationEvent::spectrum(None, spectra[0].clone()),
    ];
    let ids = bus.publish_once(&events).await.expect("publish_once");
    assert_strictly_increasing(&ids);
    assert_eq!(bus.publish_once(&events).await.expect("again"), ids, "each row is published once");
    let first = next_event(&mut rx).await;
    assert_eq!((first.id.as_ref(), first.spectrum.is_none()), (Some(&ids[0]), true));
    assert_eq!(first.observation, observation);
    let second = next_event(&mut rx).await;
    assert_eq!(second.id.as_ref(), Some(&ids[1]));
    assert_eq!(second.spectrum.as_deref(), Some(&spectrum), "every band arrives, values intact");
    assert_eq!(next_event(&mut rx).await.spectrum.as_deref(), Some(&spectra[0]));
    // A correction of the spectrum is a new version.
    let revised = ObservationEvent { revision: 1, ..ObservationEvent::spectrum(None, spectrum.clone()) };
    let revised_id = bus.publish_once(&[revised]).await.expect("publish the correction");
    let again = next_event(&mut rx).await;
    assert_eq!((again.id, again.revision), (Some(revised_id[0].clone()), 1));
    // Catch-up holds both kinds, in order.
    let Replay::Events(replayed) = bus.read_after(&ids[0], 10).await.expect("read_after") else {
        panic!("expected events")
    };
    let kinds: Vec<bool> = replayed.iter().map(|event| event.spectrum.is_some()).collect();
    assert_eq!(kinds, [true, true, true]);
    assert_eq!(replayed[0].spectrum.as_deref(), Some(&spectrum));
    shutdown.cancel();
}

contract_tests!(
    spectra_travel_with_observations_in_one_id_sequence,
    publish_delivers_every_event_in_order,
    ids_increase_across_calls_and_batches,
    read_after_returns_exactly_the_later_events,
    read_after_resets_ids_it_cannot_place,
    retention_window_resets_expired_ids,
    read_since_takes_any_position_in_time,
    trimmed_ids_reset,
    foreign_messages_without_id_are_delivered,
    malformed_messages_are_invalid_and_not_forwarded,
    several_subscribers_each_get_everything,
    shutdown_ends_subscriptions,
    bulk_publish_arrives_complete,
);

// ---------------------------------------------------------------- Redis only

#[tokio::test]
async fn redis_a_refused_subscribe_is_not_taken_for_a_subscription() {
    init_logs();
    let server = RedisServer::start();
    let admin_url = server.admin_url();
    crate::harness::redis::command(&admin_url, &["ACL", "SETUSER", "default", "-subscribe"]);
    let bus = Bus::redis(&server.url(), restarting_options()).expect("valid url");
    let shutdown = CancellationToken::new();
    let mut rx = bus.subscribe(shutdown.clone());
    match next_notice(&mut rx).await {
        BusNotice::Disconnected { error } => assert!(error.contains("SUBSCRIBE"), "{error}"),
        other => panic!("a refused SUBSCRIBE must not count as connected: {other:?}"),
    }
    // Allowed again: it subscribes, and events flow.
    crate::harness::redis::command(&admin_url, &["ACL", "SETUSER", "default", "+subscribe"]);
    assert_eq!(next_notice(&mut rx).await, BusNotice::Connected);
    let ids = bus.publish(&real_observations(1)).await.expect("publish");
    assert_eq!(next_event(&mut rx).await.id.as_ref(), Some(&ids[0]));
    shutdown.cancel();
}

#[tokio::test]
async fn redis_a_page_with_foreign_entries_is_still_full_unless_the_log_ends() {
    init_logs();
    let server = RedisServer::start();
    let bus = Bus::redis(&server.url(), RedisBusOptions::default()).expect("valid url");
    let observations = real_observations(5);
    let before = bus.publish(&observations[0..2]).await.expect("publish");
    let mut conn = raw_client(&server).await;
    for _ in 0..3 {
        let _: String = ::redis::cmd("XADD")
            .arg(buoycast::bus::LOG_KEY)
            .arg("*")
            .arg("d")
            .arg("not an observation")
            .query_async(&mut conn)
            .await
            .expect("XADD");
    }
    let after = bus.publish(&observations[2..5]).await.expect("publish");
    // A page of 2 after the first event: the foreign entries are skipped and
    // the page is filled from beyond them (a short page would read as the end).
    assert_eq!(
        ids_of(bus.read_after(&before[0], 2).await.expect("read")),
        [before[1].clone(), after[0].clone()]
    );
    assert_eq!(ids_of(bus.read_after(&after[0], 2).await.expect("read")), after[1..]);
    assert_eq!(ids_of(bus.read_after(&after[2], 2).await.expect("read")), Vec::<String>::new());
}

#[tokio::test]
async fn redis_the_acl_documented_in_operations_md_is_enough() {
    init_logs();
    let server = RedisServer::start();
    let admin_url = server.admin_url();
    // Exactly what docs/OPERATIONS.md lists (Sentinel's role and wait aside).
    crate::harness::redis::command(
        &admin_url,
        &[
            "ACL",
            "SETUSER",
            "buoycast",
            "on",
            ">pw",
            "resetkeys",
            "~observations:log",
            "~{observations:log}:pub:*",
            "resetchannels",
            "&observations:new",
            "&spectra:new",
            "-@all",
            "+evalsha",
            "+eval",
            "+script|load",
            "+xadd",
            "+xtrim",
            "+xrange",
            "+xinfo",
            "+get",
            "+set",
            "+exists",
            "+publish",
            "+subscribe",
            "+ping",
        ],
    );
    let url = server.url().replacen("redis://", "redis://buoycast:pw@", 1);
    let bus = Bus::redis(&url, restarting_options()).expect("valid url");
    bus.ping().await.expect("PING");
    let shutdown = CancellationToken::new();
    let mut rx = subscribed(&bus, &shutdown).await;
    let observations = real_observations(3);
    let ids = bus.publish_once(&crate::harness::originals(&observations)).await.expect("publish_once");
    assert_eq!(
        bus.publish_once(&crate::harness::originals(&observations)).await.expect("publish_once again"),
        ids
    );
    for id in &ids {
        assert_eq!(next_event(&mut rx).await.id.as_ref(), Some(id));
    }
    assert_eq!(ids_of(bus.read_after(&ids[0], 10).await.expect("read_after")), ids[1..]);
    assert_eq!(bus.read_since("0-1", 10).await.expect("read_since").len(), 3);
    shutdown.cancel();
}

async fn raw_client(server: &RedisServer) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(server.url())
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test redis")
}

#[tokio::test]
async fn redis_wire_bytes_are_the_bus_json_and_the_log_keeps_them_without_id() {
    use futures::StreamExt;
    init_logs();
    let server = RedisServer::start();
    let bus = Bus::redis(&server.url(), RedisBusOptions::default()).expect("valid url");
    let mut pubsub =
        ::redis::Client::open(server.url()).expect("valid url").get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe("observations:new").await.expect("subscribe");
    let observations = real_observations(3);
    let ids = bus.publish(&observations).await.expect("publish");
    let mut messages = pubsub.on_message();
    for (observation, id) in observations.iter().zip(&ids) {
        let message = tokio::time::timeout(WAIT, messages.next()).await.expect("a message").expect("open");
        let expected = ObservationEvent::new(Some(id.clone()), observation.clone()).to_bus_json();
        assert_eq!(message.get_channel_name(), "observations:new");
        assert_eq!(String::from_utf8_lossy(message.get_payload_bytes()), expected);
    }
    let mut conn = raw_client(&server).await;
    let entries: Vec<(String, Vec<(String, String)>)> = ::redis::cmd("XRANGE")
        .arg("observations:log")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    assert_eq!(entries.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), ids);
    let (_, fields) = &entries[0];
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0].0, "d");
    let mut without_id = Vec::new();
    observations[0].write_json(&mut without_id, buoycast::observation::TimeKey::Timestamp);
    assert_eq!(fields[0].1.as_bytes(), without_id.as_slice());
}

/// Spectra go out on `spectra:new`, never on the original system's
/// `observations:new`, as `{"id", "kind":"spectrum", …}`.
#[tokio::test]
async fn redis_spectra_go_out_on_their_own_channel() {
    use futures::StreamExt;
    init_logs();
    let server = RedisServer::start();
    let bus = Bus::redis(&server.url(), RedisBusOptions::default()).expect("valid url");
    let mut pubsub =
        ::redis::Client::open(server.url()).expect("valid url").get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe(&["observations:new", "spectra:new"]).await.expect("subscribe");
    let spectrum = fixtures::spectra_41010().pop().expect("spectra");
    let observations = real_observations(1);
    let mut events = vec![ObservationEvent::spectrum(None, spectrum.clone())];
    events.extend(crate::harness::originals(&observations));
    let ids = bus.publish_once(&events).await.expect("publish");
    let mut messages = pubsub.on_message();
    let message = tokio::time::timeout(WAIT, messages.next()).await.expect("a message").expect("open");
    assert_eq!(message.get_channel_name(), "spectra:new");
    let payload: serde_json::Value = serde_json::from_slice(message.get_payload_bytes()).expect("JSON");
    assert_eq!(payload["id"], ids[0].as_str());
    assert_eq!(payload["kind"], "spectrum");
    assert_eq!(payload["stationId"], "41010");
    assert_eq!(payload["bands"].as_array().map(Vec::len), Some(spectrum.bands.len()));
    let message = tokio::time::timeout(WAIT, messages.next()).await.expect("a message").expect("open");
    assert_eq!(message.get_channel_name(), "observations:new");
    let expected = ObservationEvent::new(Some(ids[1].clone()), observations[0].clone()).to_bus_json();
    assert_eq!(String::from_utf8_lossy(message.get_payload_bytes()), expected);
}

#[tokio::test]
async fn redis_plain_publish_by_another_client_is_delivered_and_garbage_is_invalid() {
    init_logs();
    let server = RedisServer::start();
    let bus = Bus::redis(&server.url(), RedisBusOptions::default()).expect("valid url");
    let shutdown = CancellationToken::new();
    let mut rx = subscribed(&bus, &shutdown).await;
    let mut conn = raw_client(&server).await;
    let original = r#"{"stationId":"46042","timestamp":"2026-11-28T06:50:00Z","waveHeightM":2.4,"windSpeedMps":null,"windDirDeg":99,"waterTempC":13.1,"pressureHpa":1012.0}"#;
    for payload in ["not json", original] {
        let receivers: i64 = ::redis::cmd("PUBLISH")
            .arg("observations:new")
            .arg(payload)
            .query_async(&mut conn)
            .await
            .expect("PUBLISH");
        assert_eq!(receivers, 1);
    }
    assert!(matches!(next_notice(&mut rx).await, BusNotice::Invalid { payload_len: 8, .. }));
    let event = next_event(&mut rx).await;
    assert_eq!(event.id, None);
    assert_eq!(event.observation.station_id.as_str(), "46042");
    assert_eq!(event.observation.measurements.get(Field::WindDirDeg), Some(99.0));
    assert_eq!(event.observation.measurements.get(Field::WindSpeedMps), None);
    assert_eq!(event.observation.measurements.get(Field::GustMps), None);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_reports_disconnected_then_connected_and_delivers_again() {
    init_logs();
    let mut server = RedisServer::start();
    let bus = Bus::redis(&server.url(), restarting_options()).expect("valid url");
    let shutdown = CancellationToken::new();
    let mut rx = subscribed(&bus, &shutdown).await;
    let before = bus.publish(&real_observations(2)).await.expect("publish");
    assert_eq!(next_event(&mut rx).await.id.as_ref(), Some(&before[0]));
    assert_eq!(next_event(&mut rx).await.id.as_ref(), Some(&before[1]));

    server.stop();
    let stopped = Instant::now();
    assert!(matches!(next_notice(&mut rx).await, BusNotice::Disconnected { .. }));
    assert!(stopped.elapsed() < Duration::from_secs(3), "noticed in {:?}", stopped.elapsed());
    assert!(bus.ping().await.is_err());
    assert!(bus.publish(&real_observations(1)).await.is_err());

    server.restart();
    assert_eq!(next_notice(&mut rx).await, BusNotice::Connected);
    // Without persistence the log is gone: old ids cannot be placed.
    assert_eq!(bus.read_after(&before[0], 10).await.expect("read"), Replay::Reset);
    let after = publish_with_retries(&bus, &real_observations(3)).await;
    for id in &after {
        assert_eq!(next_event(&mut rx).await.id.as_ref(), Some(id));
    }
    assert!(bus.ping().await.is_ok());
    shutdown.cancel();
}

/// The worker's policy: a publish that fails right after a reconnect is retried.
async fn publish_with_retries(bus: &Bus, observations: &[Observation]) -> Vec<String> {
    let mut last_error = None;
    for _ in 0..3 {
        match bus.publish(observations).await {
            Ok(ids) => return ids,
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("publish failed 3 times: {last_error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_persistence_keeps_catch_up_across_restart() {
    init_logs();
    let mut server = RedisServer::start_with(RedisOptions { persistence: true, ..RedisOptions::default() });
    let bus = Bus::redis(&server.url(), RedisBusOptions::default()).expect("valid url");
    let observations = real_observations(10);
    let before = bus.publish(&observations).await.expect("publish");
    server.restart();
    let Replay::Events(replayed) = bus.read_after(&before[2], 100).await.expect("read") else {
        panic!("with AOF the log survives the restart");
    };
    assert_eq!(
        replayed.iter().map(|event| event.id.clone().expect("id")).collect::<Vec<_>>(),
        before[3..].to_vec()
    );
    assert_eq!(replayed[0].observation, observations[3]);
    let after = publish_with_retries(&bus, &real_observations(2)).await;
    let mut all = before.clone();
    all.extend(after.iter().cloned());
    assert_strictly_increasing(&all);
    assert_eq!(ids_of(bus.read_after(&before[9], 100).await.expect("read")), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_server_is_noticed_within_3s() {
    init_logs();
    let mut server = RedisServer::start();
    let bus = Bus::redis(&server.url(), RedisBusOptions::default()).expect("valid url");
    let shutdown = CancellationToken::new();
    let mut rx = subscribed(&bus, &shutdown).await;
    server.pause();
    let paused = Instant::now();
    let notice = next_notice(&mut rx).await;
    let noticed = paused.elapsed();
    server.resume();
    assert!(matches!(notice, BusNotice::Disconnected { .. }), "{notice:?}");
    assert!(noticed < Duration::from_secs(3), "a frozen redis noticed after {noticed:?}");
    assert_eq!(next_notice(&mut rx).await, BusNotice::Connected);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_then_up() {
    init_logs();
    let mut server = RedisServer::start();
    server.stop();
    // Constructing the bus needs no server; using it fails until the server is up.
    let bus = Bus::redis(&server.url(), restarting_options()).expect("valid url");
    let shutdown = CancellationToken::new();
    let mut rx = bus.subscribe(shutdown.clone());
    assert!(matches!(next_notice(&mut rx).await, BusNotice::Disconnected { .. }));
    assert!(bus.ping().await.is_err());
    server.restart();
    assert_eq!(next_notice(&mut rx).await, BusNotice::Connected);
    assert!(bus.ping().await.is_ok());
    let ids = publish_with_retries(&bus, &real_observations(1)).await;
    assert_eq!(next_event(&mut rx).await.id.as_ref(), Some(&ids[0]));
    shutdown.cancel();
}

#[test]
fn redis_bad_url_is_refused_without_leaking_the_password() {
    let error = Bus::redis("redis://:hunter2@127.0.0.1:notaport", RedisBusOptions::default())
        .expect_err("a bad port is refused");
    let message = error.to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("127.0.0.1"), "{message}");
}
