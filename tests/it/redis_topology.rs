//! The bus and the gateway on Redis Sentinel and Redis Cluster
//! (docs/OPERATIONS.md, Redis Sentinel and Cluster; docs/API.md, Catch-up),
//! against real servers from Debian's redis-server: publish, subscribe and
//! catch-up through a Sentinel master failover with nothing lost that was
//! acknowledged, and the single-server bus contract on a 3-node cluster.
//!
//! The observations are real rows of `realtime2/41002.txt`. Every wait is
//! bounded so a failing test fails instead of hanging.

use std::time::{Duration, Instant};

use buoycast::bus::{parse_stream_id, Bus, BusNotice, Replay, LOG_KEY};
use buoycast::observation::{Observation, ObservationEvent, StationId};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

use crate::bus::{assert_strictly_increasing, ids_of, restarting_options, subscribed};
use crate::harness::app::{Backends, TestApp};
use crate::harness::fixtures;
use crate::harness::redis_topology::{ClusterSetup, SentinelSetup};
use crate::harness::sse::{SseClient, SseEvent};

/// Bound on a notice or event that should come promptly.
const WAIT: Duration = Duration::from_secs(5);

/// Bound on anything that waits for a failover or a reconnect.
const RECOVER: Duration = Duration::from_secs(30);

/// `n` distinct real rows of 41002.txt, starting at row `from`.
fn rows(from: usize, n: usize) -> Vec<Observation> {
    let station = StationId::parse("41002").expect("valid station id");
    let parsed =
        buoycast::sources::ndbc::parse::parse(&fixtures::read("realtime2/41002.txt"), Some(&station))
            .expect("41002.txt is an NDBC stdmet file");
    assert!(parsed.observations.len() >= from + n, "41002.txt has enough rows");
    parsed.observations[from..from + n].to_vec()
}

async fn next_notice(rx: &mut Receiver<BusNotice>, within: Duration) -> BusNotice {
    tokio::time::timeout(within, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no bus notice within {within:?}"))
        .expect("the subscription is still open")
}

async fn next_event(rx: &mut Receiver<BusNotice>) -> ObservationEvent {
    match next_notice(rx, WAIT).await {
        BusNotice::Event(event) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Publishes `batch` (idempotently, as the worker's outbox does) until it
/// succeeds; returns its ids and how many attempts failed.
async fn publish_until_ok(bus: &Bus, batch: &[Observation]) -> (Vec<String>, usize) {
    let deadline = Instant::now() + RECOVER;
    let mut failures = 0;
    loop {
        match bus.publish_once(&crate::harness::originals(batch)).await {
            Ok(ids) => return (ids, failures),
            Err(error) => {
                failures += 1;
                assert!(Instant::now() < deadline, "publishing never recovered: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Every retained id after `after`, following pages.
async fn all_after(bus: &Bus, after: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut from = after.to_owned();
    loop {
        let page = ids_of(bus.read_after(&from, 100).await.expect("read_after"));
        let Some(last) = page.last().cloned() else { return ids };
        ids.extend(page);
        from = last;
    }
}

fn sse_ids(events: &[SseEvent]) -> Vec<String> {
    events.iter().map(|event| event.id.clone().expect("observation has an id")).collect()
}

/// Opens the stream, retrying while the gateway answers 503 (bus still down).
async fn connect_stream(app: &TestApp, headers: &[(&str, &str)]) -> SseClient {
    let deadline = Instant::now() + RECOVER;
    loop {
        let mut client = SseClient::connect(&app.url("/v1/observations/stream"), headers).await;
        if client.status == 200 {
            let first = client.next_event(WAIT).await.expect("connection event");
            assert_eq!(first.event, "connection");
            return client;
        }
        assert_eq!(client.status, 503, "{:?}", client.error_json());
        assert!(Instant::now() < deadline, "the stream stayed unavailable for {RECOVER:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------- Sentinel

#[tokio::test]
async fn sentinel_publish_subscribe_and_catch_up_survive_a_failover() {
    let mut setup = SentinelSetup::start();
    let bus = Bus::redis(&setup.url(), restarting_options()).expect("a valid sentinel url");
    let shutdown = CancellationToken::new();
    let mut rx = subscribed(&bus, &shutdown).await;

    // Before the failover: the contract holds through the sentinel-named master.
    let observations = rows(0, 12);
    let mut acknowledged = bus.publish(&observations[0..3]).await.expect("publish through sentinel");
    acknowledged.extend(
        bus.publish_once(&crate::harness::originals(&observations[3..6]))
            .await
            .expect("publish_once through sentinel"),
    );
    assert_strictly_increasing(&acknowledged);
    for (id, observation) in acknowledged.iter().zip(&observations[0..6]) {
        let event = next_event(&mut rx).await;
        assert_eq!(event.id.as_deref(), Some(id.as_str()));
        assert_eq!(event.observation.station_id, observation.station_id);
        assert_eq!(event.observation.observed_at, observation.observed_at);
    }
    assert_eq!(all_after(&bus, &acknowledged[0]).await, acknowledged[1..]);
    // A retry of an acknowledged batch is not published again.
    assert_eq!(
        bus.publish_once(&crate::harness::originals(&observations[3..6])).await.expect("retry"),
        acknowledged[3..6]
    );

    // The master dies; the sentinel promotes the replica.
    setup.kill_master();
    match next_notice(&mut rx, RECOVER).await {
        BusNotice::Disconnected { error } => assert!(!error.is_empty()),
        other => panic!("expected Disconnected after the master died, got {other:?}\n{}", setup.logs()),
    }
    let (after_failover, failures) = publish_until_ok(&bus, &observations[6..8]).await;
    setup.wait_for_failover().await;
    tracing::info!(failures, "publish attempts failed during the failover");

    // The subscription comes back on the new master.
    let mut reconnected = false;
    let deadline = Instant::now() + RECOVER;
    while !reconnected {
        match next_notice(&mut rx, RECOVER).await {
            BusNotice::Connected => reconnected = true,
            // Retries while the sentinel still named the dead master.
            BusNotice::Disconnected { .. } => {}
            // Published after the subscription came back: delivered live.
            BusNotice::Event(event) => {
                assert!(after_failover.contains(&event.id.clone().expect("an id")), "{event:?}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "no Connected within {RECOVER:?}\n{}", setup.logs());
    }
    let live = bus
        .publish_once(&crate::harness::originals(&observations[8..10]))
        .await
        .expect("publish on the new master");
    for id in &live {
        loop {
            let event = next_event(&mut rx).await;
            // Events of `after_failover` may arrive first if it went out after Connected.
            if event.id.as_deref() == Some(id.as_str()) {
                break;
            }
            assert!(after_failover.contains(&event.id.clone().expect("an id")), "{event:?}");
        }
    }

    // Nothing acknowledged before the kill is lost: the log on the new master has it all, in order.
    let mut expected: Vec<String> = acknowledged[1..].to_vec();
    expected.extend(after_failover.iter().cloned());
    expected.extend(live.iter().cloned());
    assert_eq!(all_after(&bus, &acknowledged[0]).await, expected, "\n{}", setup.logs());
    assert_strictly_increasing(&expected);
    // The marks moved with the data: an acknowledged observation is not published twice.
    assert_eq!(
        bus.publish_once(&crate::harness::originals(&observations[3..6])).await.expect("retry"),
        acknowledged[3..6]
    );
    bus.ping().await.expect("the bus answers on the new master");
    shutdown.cancel();
}

#[tokio::test]
async fn sentinel_gateway_client_catches_up_across_a_failover() {
    let mut setup = SentinelSetup::start();
    let app = TestApp::spawn(Backends { redis_url: Some(setup.url()), ..Backends::default() }).await;
    let observations = rows(100, 6);

    let mut client = connect_stream(&app, &[]).await;
    let seen = app.bus.publish_once(&crate::harness::originals(&observations[0..1])).await.expect("publish");
    assert_eq!(sse_ids(&client.observations(1, WAIT).await), seen);
    drop(client);

    // Published (and acknowledged) while the client is away, then the master dies.
    let missed =
        app.bus.publish_once(&crate::harness::originals(&observations[1..3])).await.expect("publish");
    setup.kill_master();
    setup.wait_for_failover().await;
    let (after_failover, _) = publish_until_ok(&app.bus, &observations[3..4]).await;

    // The client comes back with its Last-Event-ID and gets everything it missed, in order.
    let mut client = connect_stream(&app, &[("Last-Event-ID", &seen[0])]).await;
    let mut expected = missed.clone();
    expected.extend(after_failover);
    assert_eq!(sse_ids(&client.observations(expected.len(), RECOVER).await), expected, "\n{}", setup.logs());

    // And live events keep coming.
    let (live, _) = publish_until_ok(&app.bus, &observations[4..6]).await;
    assert_eq!(sse_ids(&client.observations(2, RECOVER).await), live);
    assert_ne!(setup.master_port(), setup.replica_port());
}

// ---------------------------------------------------------------- Cluster

#[tokio::test]
async fn cluster_publish_subscribe_and_catch_up() {
    let setup = ClusterSetup::start();
    let bus = Bus::redis(&setup.url(), restarting_options()).expect("a valid cluster url");
    bus.ping().await.expect("the cluster answers");
    let shutdown = CancellationToken::new();
    // Two subscriptions, on two different nodes (one per node in turn): at most
    // one of them is on the node that holds the log, so PUBLISH is seen cluster-wide.
    let mut first = subscribed(&bus, &shutdown).await;
    let mut second = subscribed(&bus, &shutdown).await;

    let observations = rows(200, 8);
    let mut ids = bus.publish(&observations[0..5]).await.expect("publish on the cluster");
    ids.extend(
        bus.publish_once(&crate::harness::originals(&observations[5..8]))
            .await
            .expect("publish_once on the cluster"),
    );
    assert_eq!(ids.len(), 8);
    assert_strictly_increasing(&ids);
    for rx in [&mut first, &mut second] {
        for (id, observation) in ids.iter().zip(&observations) {
            let event = next_event(rx).await;
            assert_eq!(event.id.as_deref(), Some(id.as_str()));
            assert_eq!(event.observation.station_id, observation.station_id);
            assert_eq!(event.observation.observed_at, observation.observed_at);
            assert_eq!(event.observation.measurements, observation.measurements);
        }
    }

    // Idempotent publish: the marks live in the log's slot.
    assert_eq!(
        bus.publish_once(&crate::harness::originals(&observations[5..8])).await.expect("retry"),
        ids[5..8]
    );

    // Catch-up: everything after an id, pages, the very last id, ids that cannot be placed.
    assert_eq!(all_after(&bus, &ids[0]).await, ids[1..]);
    assert_eq!(ids_of(bus.read_after(&ids[2], 2).await.expect("read")), ids[3..5]);
    assert_eq!(bus.read_after(&ids[7], 10).await.expect("read"), Replay::Events(Vec::new()));
    assert_eq!(bus.read_after("not-an-id", 10).await.expect("read"), Replay::Reset);
    let (ms, _) = parse_stream_id(&ids[7]).expect("an id");
    let future = format!("{}-0", ms + 3_600_000);
    assert_eq!(bus.read_after(&future, 10).await.expect("read"), Replay::Reset);

    // A foreign publisher's message (no id) reaches subscribers too.
    let mut raw = Vec::new();
    observations[0].write_json(&mut raw, buoycast::observation::TimeKey::Timestamp);
    bus.publish_raw(&raw).await.expect("publish_raw on the cluster");
    for rx in [&mut first, &mut second] {
        let event = next_event(rx).await;
        assert_eq!((event.id, event.observation.observed_at), (None, observations[0].observed_at));
    }
    shutdown.cancel();
}

#[tokio::test]
async fn cluster_subscription_moves_to_another_node_when_its_node_dies() {
    let mut setup = ClusterSetup::start();
    let bus = Bus::redis(&setup.url(), restarting_options()).expect("a valid cluster url");
    let shutdown = CancellationToken::new();
    // The first subscription goes to the first listed node; make it one that
    // does not hold the log, so the cluster keeps accepting publishes after it dies.
    let owner = setup.owner_of(LOG_KEY);
    let ports = setup.ports();
    let mut rx = subscribed(&bus, &shutdown).await;
    if ports[0] == owner {
        // Take the next turn instead (the rotation moves to the second node).
        drop(rx);
        rx = subscribed(&bus, &shutdown).await;
    }
    let victim = if ports[0] == owner { ports[1] } else { ports[0] };
    let observations = rows(300, 2);
    let before = bus.publish(&observations[0..1]).await.expect("publish");
    assert_eq!(next_event(&mut rx).await.id, Some(before[0].clone()));

    setup.kill(victim);
    assert!(
        matches!(next_notice(&mut rx, RECOVER).await, BusNotice::Disconnected { .. }),
        "\n{}",
        setup.logs()
    );
    let deadline = Instant::now() + RECOVER;
    loop {
        match next_notice(&mut rx, RECOVER).await {
            BusNotice::Connected => break,
            BusNotice::Disconnected { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "no Connected within {RECOVER:?}\n{}", setup.logs());
    }
    let after = bus.publish(&observations[1..2]).await.expect("publish after a node died");
    assert_eq!(next_event(&mut rx).await.id, Some(after[0].clone()));
    assert_eq!(ids_of(bus.read_after(&before[0], 10).await.expect("read")), after);
    shutdown.cancel();
}

#[tokio::test]
async fn cluster_gateway_clients_receive_and_catch_up() {
    let setup = ClusterSetup::start();
    let app = TestApp::spawn(Backends { redis_url: Some(setup.url()), ..Backends::default() }).await;
    let observations = rows(400, 5);
    let mut client = connect_stream(&app, &[]).await;
    let seen = app.bus.publish_once(&crate::harness::originals(&observations[0..2])).await.expect("publish");
    let events = client.observations(2, WAIT).await;
    assert_eq!(sse_ids(&events), seen);
    assert_eq!(events[0].json()["stationId"], "41002");
    drop(client);

    let missed =
        app.bus.publish_once(&crate::harness::originals(&observations[2..5])).await.expect("publish");
    let mut client = connect_stream(&app, &[("Last-Event-ID", &seen[1])]).await;
    assert_eq!(sse_ids(&client.observations(3, WAIT).await), missed);
}
