//! Scale-out (issue 8): two gateways and two workers against one PostgreSQL
//! and one Redis. Every client on either gateway gets every event exactly
//! once, a client that moves to the other gateway with its Last-Event-ID
//! catches up exactly, and no source is fetched twice.

use std::collections::HashSet;
use std::time::Duration;

use buoycast::bus::{Bus, RedisBusOptions};
use buoycast::store::Store;
use buoycast::worker::Worker;

use crate::harness::app::{Backends, TestApp};
use crate::harness::fixtures;
use crate::harness::ndbc_server::NdbcServer;
use crate::harness::postgres;
use crate::harness::redis::RedisServer;
use crate::harness::sse::{SseClient, SseEvent};

const WAIT: Duration = Duration::from_secs(20);
const ROWS_PER_FILE: usize = 40;

/// The two header lines and the `rows` newest rows of a realtime2 fixture.
fn newest_rows(name: &str, rows: usize) -> Vec<u8> {
    let text = String::from_utf8(fixtures::read(&format!("realtime2/{name}"))).expect("ASCII fixture");
    let lines: Vec<&str> = text.lines().take(2 + rows).collect();
    format!("{}\n", lines.join("\n")).into_bytes()
}

async fn connect(app: &TestApp, headers: &[(&str, &str)]) -> SseClient {
    let mut client = SseClient::connect(&app.url("/v1/observations/stream"), headers).await;
    assert_eq!(client.status, 200);
    assert_eq!(client.next_event(WAIT).await.expect("connection event").event, "connection");
    client
}

/// (id, stationId, timestamp) of each event, asserting they are observations.
fn keys(events: &[SseEvent]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|event| {
            assert_eq!(event.event, "observation", "{event:?}");
            let data = event.json();
            (
                event.id.clone().expect("an id"),
                data["stationId"].as_str().expect("station").to_owned(),
                data["timestamp"].as_str().expect("time").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn two_gateways_and_two_workers_deliver_everything_exactly_once() {
    crate::harness::init_logs();
    let redis = RedisServer::start();
    let db = postgres::test_database().await;
    let server = NdbcServer::start().await;
    let stations = ["41002", "44013", "tplm2"];
    for name in ["41002.txt", "44013.txt", "TPLM2.txt"] {
        server.set_body(&format!("/realtime2/{name}"), newest_rows(name, ROWS_PER_FILE));
    }
    let backends = || Backends {
        database_url: Some(db.url.clone()),
        redis_url: Some(redis.url()),
        env: vec![("BUOYCAST_CLIENT_QUEUE".into(), "1024".into())],
        ..Backends::default()
    };
    let gateway_a = TestApp::spawn(backends()).await;
    let gateway_b = TestApp::spawn(backends()).await;
    let mut on_a = connect(&gateway_a, &[]).await;
    let mut on_b = connect(&gateway_b, &[]).await;
    let mut mover = connect(&gateway_a, &[]).await;

    // Two workers, each with its own store pool and bus connection, polling at once.
    let worker = || async {
        let store = Store::connect(&db.url, Default::default()).await.expect("postgres connects");
        let bus = Bus::redis(&redis.url(), RedisBusOptions::default()).expect("redis url parses");
        Worker::new(store, bus, crate::worker::options(&server, &stations), &prometheus::Registry::new())
            .expect("worker starts")
    };
    let (first, second) = (worker().await, worker().await);
    let (a, b) = tokio::join!(first.poll_once(), second.poll_once());
    let (a, b) = (a.expect("first worker polls"), b.expect("second worker polls"));
    assert_eq!(a.fetched + b.fetched, 3, "each source fetched once: {a:?} {b:?}");
    for name in ["41002.txt", "44013.txt", "TPLM2.txt"] {
        assert_eq!(server.requests(&format!("/realtime2/{name}")), 1, "{name} fetched once");
    }
    // Whatever the workers left pending (none if their own drains ran) goes out now.
    let _ = tokio::join!(first.publish_pending(), second.publish_pending());

    let total = 3 * ROWS_PER_FILE;
    let got_a = keys(&on_a.observations(total, WAIT).await);
    let got_b = keys(&on_b.observations(total, WAIT).await);
    assert_eq!(got_a, got_b, "both gateways deliver the same events in the same order");
    let ids: HashSet<_> = got_a.iter().map(|(id, _, _)| id.clone()).collect();
    let observations: HashSet<_> =
        got_a.iter().map(|(_, station, time)| (station.clone(), time.clone())).collect();
    assert_eq!(ids.len(), total, "no id twice");
    assert_eq!(observations.len(), total, "no observation twice");
    let stored = buoycast::store::HistoryQuery { limit: 10_000, ..Default::default() };
    let n_stored = gateway_a.store.observations(stored).await.expect("history").len();
    assert_eq!(n_stored, total, "every stored row was published once");

    // A client reads half, leaves gateway A, and resumes on gateway B.
    let half = keys(&mover.observations(total / 2, WAIT).await);
    drop(mover);
    let last_id = half.last().expect("some events").0.clone();
    let mut moved = connect(&gateway_b, &[("Last-Event-ID", &last_id)]).await;
    let rest = keys(&moved.observations(total - total / 2, WAIT).await);
    let mut resumed = half;
    resumed.extend(rest);
    assert_eq!(resumed, got_a, "catch-up on the other gateway is exact");

    // Quiet afterwards: nothing is published twice later by the outbox loops.
    let _ = tokio::join!(first.publish_pending(), second.publish_pending());
    let mut buffer_probe = on_a;
    let extra =
        tokio::time::timeout(Duration::from_millis(700), buffer_probe.next_event(Duration::from_secs(1)))
            .await;
    assert!(extra.is_err(), "an extra event arrived: {extra:?}");
}
