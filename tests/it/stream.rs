//! The SSE stream (docs/API.md, The SSE stream and Catch-up) over real
//! sockets: headers, the connection event, observations with increasing ids,
//! filters, keepalives, catch-up across disconnects, gateway restarts and
//! Redis restarts, the bus-down 503, lagging clients and the connection cap.

use std::time::Duration;

use buoycast::observation::{Field, Measurements, Observation, StationId};
use chrono::{TimeZone, Utc};

use crate::harness::app::{Backends, TestApp};
use crate::harness::redis::{command as redis_command, RedisOptions, RedisServer};
use crate::harness::sse::{Item, SseClient, SseEvent};

const WAIT: Duration = Duration::from_secs(5);

/// A realistic observation: station `id`, `n` minutes after a fixed time.
pub fn observation(id: &str, n: i64) -> Observation {
    let base = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).single().expect("valid time");
    Observation {
        station_id: StationId::parse(id).expect("valid id"),
        observed_at: base + chrono::Duration::minutes(n * 10),
        measurements: Measurements::default()
            .with(Field::WaveHeightM, 1.0 + n as f64 / 10.0)
            .with(Field::WindSpeedMps, 5.5)
            .with(Field::WindDirDeg, 99.0)
            .with(Field::PressureTendencyHpa, -1.2),
    }
}

async fn connect(app: &TestApp, query: &str, headers: &[(&str, &str)]) -> SseClient {
    let mut client = SseClient::connect(&app.url(&format!("/v1/observations/stream{query}")), headers).await;
    assert_eq!(client.status, 200, "{:?}", client.error_json());
    let first = client.next_event(WAIT).await.expect("connection event");
    assert_eq!(first.event, "connection");
    client
}

async fn publish(app: &TestApp, observations: &[Observation]) -> Vec<String> {
    app.bus.publish(observations).await.expect("publish succeeds")
}

fn ids(events: &[SseEvent]) -> Vec<String> {
    events.iter().map(|event| event.id.clone().expect("observation has an id")).collect()
}

async fn redis_app(redis: &RedisServer, env: &[(&str, &str)]) -> TestApp {
    TestApp::spawn(Backends {
        redis_url: Some(redis.url()),
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Backends::default()
    })
    .await
}

#[tokio::test]
async fn headers_retry_and_connection_event_come_first() {
    let app = TestApp::spawn(Backends::default()).await;
    let started = std::time::Instant::now();
    let mut client = SseClient::connect(&app.url("/v1/observations/stream"), &[]).await;
    assert_eq!(client.status, 200);
    assert_eq!(client.headers["content-type"], "text/event-stream");
    assert_eq!(client.headers["cache-control"], "no-cache");
    assert_eq!(client.headers["connection"], "keep-alive");
    assert_eq!(client.headers["x-accel-buffering"], "no");
    let event = client.next_event(WAIT).await.expect("connection event");
    assert!(started.elapsed() < WAIT);
    assert_eq!(event.event, "connection");
    assert_eq!(event.retry, Some(3000));
    let data = event.json();
    assert_eq!(data["status"], "connected");
    assert!(buoycast::observation::parse_time(data["timestamp"].as_str().expect("string")).is_some());
}

#[tokio::test]
async fn observations_arrive_in_order_with_increasing_ids_and_all_keys() {
    for backends in
        [Backends::default(), Backends { redis_url: Some(RedisServer::start().url()), ..Backends::default() }]
    {
        let app = TestApp::spawn(backends).await;
        let mut client = connect(&app, "", &[]).await;
        let published =
            publish(&app, &[observation("46026", 1), observation("46042", 2), observation("46026", 3)]).await;
        let events = client.observations(3, WAIT).await;
        assert_eq!(ids(&events), published);
        for (event, id) in events.iter().zip(&published) {
            let data = event.json();
            assert_eq!(data["id"], id.as_str());
            let object = data.as_object().expect("object");
            assert_eq!(object.len(), 17, "id, stationId, timestamp and 14 measurements: {data}");
            for field in Field::ALL {
                assert!(object.contains_key(field.name()), "missing {field}");
            }
        }
        let first = events[0].json();
        assert_eq!(first["stationId"], "46026");
        assert_eq!(first["timestamp"], "2026-11-28T00:10:00Z");
        assert_eq!(first["waveHeightM"], 1.1);
        assert_eq!(first["windDirDeg"], 99);
        assert_eq!(first["pressureTendencyHpa"], -1.2);
        assert!(first["tideFt"].is_null());
    }
}

#[tokio::test]
async fn original_system_messages_published_with_plain_publish_are_delivered() {
    let redis = RedisServer::start();
    let app = redis_app(&redis, &[]).await;
    let mut client = connect(&app, "", &[]).await;
    let raw = r#"{"stationId":"46026","timestamp":"2026-11-28T06:40:00.000Z","waveHeightM":1.2,"windSpeedMps":5.1,"windDirDeg":270,"waterTempC":14.2,"pressureHpa":1016.3}"#;
    let connection = redis::Client::open(redis.url()).expect("client");
    let mut conn = connection.get_multiplexed_async_connection().await.expect("connects");
    // A malformed message first: dropped, counted, and the stream goes on.
    let _: i64 = redis::cmd("PUBLISH")
        .arg("observations:new")
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .expect("publish");
    let _: i64 =
        redis::cmd("PUBLISH").arg("observations:new").arg(raw).query_async(&mut conn).await.expect("publish");
    let event = client.next_event(WAIT).await.expect("an event");
    assert_eq!(event.event, "observation");
    assert_eq!(event.id, None, "no id line for a message without id");
    let data = event.json();
    assert!(data.get("id").is_none());
    assert_eq!(data["waveHeightM"], 1.2);
    assert_eq!(data["windDirDeg"], 270);
    assert!(data["gustMps"].is_null());
    assert_eq!(data.as_object().expect("object").len(), 16);
    assert_eq!(app.metric("bus_messages_invalid_total").await, Some(1.0));
}

/// One implausible or ill-typed value costs that value, not the reading;
/// `publishedAt` (the original worker's latency stamp) reaches clients.
#[tokio::test]
async fn a_bad_value_becomes_null_and_published_at_passes_through() {
    let redis = RedisServer::start();
    let app = redis_app(&redis, &[]).await;
    let mut client = connect(&app, "", &[]).await;
    let raw = r#"{"stationId":"46026","timestamp":"2026-11-28T06:40:00.000Z","waveHeightM":1.2,"windSpeedMps":"fast","pressureHpa":9999,"waterTempC":14.2,"publishedAt":"2026-11-28T06:41:00.000Z"}"#;
    let connection = redis::Client::open(redis.url()).expect("client");
    let mut conn = connection.get_multiplexed_async_connection().await.expect("connects");
    let _: i64 =
        redis::cmd("PUBLISH").arg("observations:new").arg(raw).query_async(&mut conn).await.expect("publish");
    let event = client.next_event(WAIT).await.expect("an event");
    assert_eq!(event.event, "observation");
    let data = event.json();
    assert_eq!(data["waveHeightM"], 1.2);
    assert_eq!(data["waterTempC"], 14.2);
    assert!(data["pressureHpa"].is_null(), "9999 hPa is not weather: null, {data}");
    assert!(data["windSpeedMps"].is_null(), "a string is not a speed: null, {data}");
    assert_eq!(data["publishedAt"], "2026-11-28T06:41:00.000Z");
    assert_eq!(app.metric("bus_messages_invalid_total").await, Some(0.0));
    assert_eq!(app.metric(r#"bus_message_fields_invalid_total{field="pressureHpa"}"#).await, Some(1.0));
    assert_eq!(app.metric(r#"bus_message_fields_invalid_total{field="windSpeedMps"}"#).await, Some(1.0));
}

/// Redis down at start-up: REST, health and the dashboard answer at once;
/// a stream opened while the gateway is starting is held until the bus is up
/// instead of being refused.
#[tokio::test]
async fn a_gateway_starting_without_redis_serves_at_once_and_holds_streams() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.stop();
    let started = std::time::Instant::now();
    let app =
        TestApp::spawn(Backends { redis_url: Some(url), skip_ready_wait: true, ..Backends::default() }).await;
    assert!(started.elapsed() < Duration::from_secs(5), "healthy at once, not after a bus wait");
    for path in ["/v1/stations", "/v1/observations", "/"] {
        let response = reqwest::get(app.url(path)).await.expect("request");
        assert_eq!(response.status(), 200, "{path} is served while the bus is down");
    }
    let ready = reqwest::get(app.url("/ready")).await.expect("request");
    assert_eq!(ready.status(), 503, "not ready without the bus");
    let stream_url = app.url("/v1/observations/stream");
    let held = tokio::spawn(async move { SseClient::connect(&stream_url, &[]).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!held.is_finished(), "the stream is held, not refused, while the gateway starts");
    redis.restart();
    let mut client = tokio::time::timeout(Duration::from_secs(15), held)
        .await
        .expect("the held stream is answered once the bus is up")
        .expect("the connect task");
    assert_eq!(client.status, 200, "{:?}", client.error_json());
    let first = client.next_event(WAIT).await.expect("connection event");
    assert_eq!(first.event, "connection");
}

#[tokio::test]
async fn station_and_field_filters_narrow_the_stream() {
    let app = TestApp::spawn(Backends::default()).await;
    let mut client = connect(&app, "?station=46042,TPLM2&fields=waveHeightM,windSpeedMps", &[]).await;
    publish(&app, &[observation("46026", 1), observation("46042", 2), observation("tplm2", 3)]).await;
    let events = client.observations(2, WAIT).await;
    let stations: Vec<_> = events.iter().map(|event| event.json()["stationId"].clone()).collect();
    assert_eq!(stations, ["46042", "tplm2"]);
    let data = events[0].json();
    let mut keys: Vec<_> = data.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["id", "stationId", "timestamp", "waveHeightM", "windSpeedMps"]);
}

#[tokio::test]
async fn bad_filters_are_400_json_errors() {
    let app = TestApp::spawn(Backends::default()).await;
    for query in ["?fields=waveHeight", "?station=46-026", "?station=abcdefghijklmnopq"] {
        let client = SseClient::connect(&app.url(&format!("/v1/observations/stream{query}")), &[]).await;
        assert_eq!(client.status, 400, "{query}");
        let body = client.error_json();
        assert_eq!(body["error"]["code"], "VALIDATION_ERROR", "{body}");
    }
}

#[tokio::test]
async fn keepalive_comments_flow_on_an_idle_stream() {
    let app = TestApp::spawn(Backends::with_env(&[("BUOYCAST_KEEPALIVE_SECS", "1")])).await;
    let mut client = connect(&app, "", &[]).await;
    let item = client.next_item(Duration::from_secs(3)).await.expect("an item");
    assert_eq!(item, Item::Comment("keepalive".into()));
}

#[tokio::test]
async fn catch_up_after_disconnect_replays_exactly_the_missed_events() {
    for backends in
        [Backends::default(), Backends { redis_url: Some(RedisServer::start().url()), ..Backends::default() }]
    {
        let app = TestApp::spawn(backends).await;
        let mut client = connect(&app, "", &[]).await;
        let first = publish(&app, &[observation("46026", 1), observation("46026", 2)]).await;
        let seen = client.observations(2, WAIT).await;
        drop(client);
        let missed = publish(&app, &(3..8).map(|n| observation("46026", n)).collect::<Vec<_>>()).await;

        // Header form.
        let mut client = connect(&app, "", &[("Last-Event-ID", &first[1])]).await;
        let replayed = client.observations(5, WAIT).await;
        assert_eq!(ids(&replayed), missed, "every missed event, in order, once");
        let live = publish(&app, &[observation("46026", 8)]).await;
        assert_eq!(ids(&client.observations(1, WAIT).await), live, "then live, without a gap");

        // Query form, from the first event.
        let after = seen[0].id.clone().expect("id");
        let mut client = connect(&app, &format!("?last_event_id={after}"), &[]).await;
        let replayed = client.observations(7, WAIT).await;
        let mut expected = vec![first[1].clone()];
        expected.extend(missed.iter().cloned());
        expected.extend(live.iter().cloned());
        assert_eq!(ids(&replayed), expected);
    }
}

#[tokio::test]
async fn catch_up_honours_the_station_filter() {
    let app = TestApp::spawn(Backends::default()).await;
    let first = publish(&app, &[observation("46026", 1)]).await;
    let missed =
        publish(&app, &[observation("46042", 2), observation("46026", 3), observation("46042", 4)]).await;
    let mut client = connect(&app, "?station=46042", &[("Last-Event-ID", &first[0])]).await;
    let replayed = client.observations(2, WAIT).await;
    assert_eq!(ids(&replayed), [missed[0].clone(), missed[2].clone()]);
}

#[tokio::test]
async fn unplaceable_ids_get_reset_then_live() {
    let app = TestApp::spawn(Backends::with_env(&[("BUOYCAST_RETENTION_SECS", "3600")])).await;
    publish(&app, &[observation("46026", 1)]).await;
    let two_hours_ago = chrono::Utc::now().timestamp_millis() - 2 * 3600 * 1000;
    for id in ["garbage", "1-2-3", &format!("{two_hours_ago}-0")] {
        let mut client = connect(&app, "", &[("Last-Event-ID", id)]).await;
        let event = client.next_event(WAIT).await.expect("an event");
        assert_eq!(event.event, "reset", "for id {id}");
        let live = publish(&app, &[observation("46026", 2)]).await;
        assert_eq!(ids(&client.observations(1, WAIT).await), live);
    }
}

#[tokio::test]
async fn catch_up_survives_a_gateway_restart() {
    let redis = RedisServer::start();
    let mut app = redis_app(&redis, &[]).await;
    let mut client = connect(&app, "", &[]).await;
    let seen = publish(&app, &[observation("46026", 1)]).await;
    assert_eq!(ids(&client.observations(1, WAIT).await), seen);
    let addr = app.addr;
    app.stop().await;
    assert!(client.ended_within(WAIT).await, "the stream ends with the gateway");

    // Published while no gateway runs (by a worker, straight to Redis).
    let publisher = buoycast::bus::Bus::redis(&redis.url(), Default::default()).expect("bus");
    let missed =
        publisher.publish(&[observation("46026", 2), observation("46026", 3)]).await.expect("publish");

    let app =
        TestApp::spawn(Backends { redis_url: Some(redis.url()), listen: Some(addr), ..Backends::default() })
            .await;
    let mut client = connect(&app, "", &[("Last-Event-ID", &seen[0])]).await;
    assert_eq!(ids(&client.observations(2, WAIT).await), missed);
}

#[tokio::test]
async fn catch_up_survives_a_redis_restart_with_persistence() {
    let mut redis = RedisServer::start_with(RedisOptions { persistence: true, ..RedisOptions::default() });
    let app = redis_app(&redis, &[]).await;
    let mut client = connect(&app, "", &[]).await;
    let seen = publish(&app, &[observation("46026", 1)]).await;
    assert_eq!(ids(&client.observations(1, WAIT).await), seen);
    drop(client);
    let missed = publish(&app, &[observation("46026", 2), observation("46026", 3)]).await;
    redis.restart();

    // Reconnect during or after the restart: never refused, and nothing lost.
    let mut client = connect(&app, "", &[("Last-Event-ID", &seen[0])]).await;
    assert_eq!(ids(&client.observations(2, Duration::from_secs(20)).await), missed);
    let mut live = Vec::new();
    for attempt in 0..50 {
        match app.bus.publish_once(&crate::harness::originals(&[observation("46026", 4)])).await {
            Ok(ids) => {
                live = ids;
                break;
            }
            Err(error) => {
                assert!(attempt < 49, "publish never recovered: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(ids(&client.observations(1, Duration::from_secs(20)).await), live);
}

/// A gateway on a fresh Redis whose test can take permissions away from the
/// gateway's user (`default`): the server, the app, and a function that runs
/// a command as `admin`.
async fn redis_app_with_admin() -> (RedisServer, TestApp, impl Fn(&[&str])) {
    let redis = RedisServer::start();
    let admin_url = redis.admin_url();
    let app = redis_app(&redis, &[]).await;
    (redis, app, move |args: &[&str]| {
        redis_command(&admin_url, args);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_never_saw_an_event_still_replays_what_its_outage_missed() {
    let (_redis, app, as_admin) = redis_app_with_admin().await;
    // A live client, and not a single event yet: the hub has no id to resume from.
    let mut client = connect(&app, "", &[]).await;

    // The hub's subscription drops and stays down while events are published.
    as_admin(&["ACL", "SETUSER", "default", "-subscribe"]);
    as_admin(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let missed = publish(&app, &[observation("46026", 1), observation("46026", 2)]).await;
    as_admin(&["ACL", "SETUSER", "default", "+subscribe"]);

    // Back up, the hub replays them from when its subscription last came up.
    assert_eq!(ids(&client.observations(2, Duration::from_secs(10)).await), missed);
    let live = publish(&app, &[observation("46026", 3)]).await;
    assert_eq!(ids(&client.observations(1, WAIT).await), live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_read_that_fails_for_a_while_is_retried_not_reset() {
    let (_redis, app, as_admin) = redis_app_with_admin().await;
    let mut client = connect(&app, "", &[]).await;
    let seen = publish(&app, &[observation("46026", 1)]).await;
    assert_eq!(ids(&client.observations(1, WAIT).await), seen);

    // The hub's subscription drops and cannot come back; events are missed.
    as_admin(&["ACL", "SETUSER", "default", "-subscribe", "-xinfo"]);
    as_admin(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let missed = publish(&app, &[observation("46026", 2), observation("46026", 3)]).await;
    // It comes back, but its catch-up reads fail (NOPERM) for a while.
    as_admin(&["ACL", "SETUSER", "default", "+subscribe"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    as_admin(&["ACL", "SETUSER", "default", "+xinfo"]);

    // The open client gets the missed events, in order, and no reset.
    assert_eq!(ids(&client.observations(2, Duration::from_secs(10)).await), missed);
    let live = publish(&app, &[observation("46026", 4)]).await;
    assert_eq!(ids(&client.observations(1, WAIT).await), live);
}

#[tokio::test]
async fn bus_down_refuses_new_streams_but_not_reconnects() {
    let mut redis = RedisServer::start_with(RedisOptions { persistence: true, ..RedisOptions::default() });
    let app = redis_app(&redis, &[]).await;
    let mut open = connect(&app, "", &[]).await;
    let seen = publish(&app, &[observation("46026", 1)]).await;
    assert_eq!(ids(&open.observations(1, WAIT).await), seen);
    redis.stop();

    // Within 3 s a new stream gets the compatible 503.
    let mut refused = None;
    for _ in 0..30 {
        let client = SseClient::connect(&app.url("/v1/observations/stream"), &[]).await;
        if client.status == 503 {
            refused = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = refused.expect("503 within 3 s of the bus going down");
    let body = refused.error_json();
    assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(body["error"]["message"], "Real-time streaming is temporarily unavailable");

    // A reconnect is answered 200 with the connection event.
    let mut reconnect = connect(&app, "", &[("Last-Event-ID", &seen[0])]).await;

    redis.restart();
    let mut live = Vec::new();
    for _ in 0..100 {
        if let Ok(ids) = app.bus.publish_once(&crate::harness::originals(&[observation("46026", 2)])).await {
            live = ids;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!live.is_empty(), "publishing recovered");
    assert_eq!(ids(&reconnect.observations(1, Duration::from_secs(20)).await), live);
    assert_eq!(ids(&open.observations(1, Duration::from_secs(20)).await), live, "open streams resume");
}

#[tokio::test]
async fn a_stalled_client_is_told_lagged_and_closed_while_others_get_everything() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn(Backends::with_env(&[("BUOYCAST_CLIENT_QUEUE", "128")])).await;
    // The stalled client: a tiny receive window, and it reads nothing for now.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small receive buffer");
    let mut slow = socket.connect(app.addr).await.expect("connects");
    let request = format!(
        "GET /v1/observations/stream HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        app.addr
    );
    slow.write_all(request.as_bytes()).await.expect("request sent");
    let mut fast = connect(&app, "", &[]).await;
    // Both streams are open on the server before anything is published.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.metric("sse_connections_total").await != Some(2.0) {
        assert!(tokio::time::Instant::now() < deadline, "the stalled client's stream never opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Far more than the socket buffers hold, in bursts below the queue bound.
    let mut published = 0;
    for batch in 0..150 {
        let observations: Vec<_> = (0..100).map(|n| observation("46026", batch * 100 + n)).collect();
        let batch_ids = publish(&app, &observations).await;
        published += batch_ids.len();
        assert_eq!(ids(&fast.observations(100, WAIT).await), batch_ids, "the fast client misses nothing");
    }
    assert_eq!(published, 15_000);

    // Now the stalled client reads: what was buffered, then `lagged`, then the end.
    let mut text = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut text))
        .await
        .expect("closed in time")
        .expect("read");
    let text = String::from_utf8_lossy(&text);
    let lagged = text.find("event: lagged").expect("told it lagged");
    let delivered = text.matches("event: observation").count();
    assert!(delivered < published, "it did not get everything ({delivered})");
    assert!(!text[lagged..].contains("event: observation"), "nothing after lagged");
    assert_eq!(app.metric("stream_lagged_clients_total").await, Some(1.0));
}

#[tokio::test]
async fn the_connection_cap_answers_503_with_retry_after() {
    let app = TestApp::spawn(Backends::with_env(&[("BUOYCAST_MAX_CONNECTIONS", "2")])).await;
    let _a = connect(&app, "", &[]).await;
    let b = connect(&app, "", &[]).await;
    let refused = SseClient::connect(&app.url("/v1/observations/stream"), &[]).await;
    assert_eq!(refused.status, 503);
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(refused.error_json()["error"]["code"], "SERVICE_UNAVAILABLE");
    drop(b);
    // The slot is freed once the server notices the disconnect (within 5 s).
    let mut admitted = false;
    for _ in 0..50 {
        let client = SseClient::connect(&app.url("/v1/observations/stream"), &[]).await;
        if client.status == 200 {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted, "a slot was freed after a client left");
}

#[tokio::test]
async fn disconnects_are_cleaned_up_within_5_s() {
    let app = TestApp::spawn(Backends::default()).await;
    let clients = [connect(&app, "", &[]).await, connect(&app, "", &[]).await];
    assert_eq!(app.metric("sse_connections_total").await, Some(2.0));
    drop(clients);
    let mut gauge = None;
    for _ in 0..50 {
        gauge = app.metric("sse_connections_total").await;
        if gauge == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gauge, Some(0.0));
    assert!(app.metric("sse_connection_duration_seconds_count").await >= Some(2.0));
}

#[tokio::test]
async fn shutdown_ends_open_streams_within_the_deadline() {
    let mut app = TestApp::spawn(Backends::default()).await;
    let mut client = connect(&app, "", &[]).await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(client.ended_within(WAIT).await);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// `?snapshot=latest`: one `snapshot` event per (filtered) station, its
/// newest observation, before anything live; no `id` (it does not move
/// `Last-Event-ID`); stored stations included from the start.
#[tokio::test]
async fn snapshot_latest_sends_each_stations_current_state_first() {
    // Stored before the gateway starts (what the worker stored earlier) ...
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("stored.db");
    let store = buoycast::store::Store::connect(&format!("sqlite://{}", path.display()), Default::default())
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    store
        .upsert_observations(&[observation("46026", 1), observation("46026", 2), observation("46042", 1)])
        .await
        .expect("seed");
    store.close().await;
    let path = path.display().to_string();
    let app = TestApp::spawn(Backends::with_env(&[("BUOYCAST_SQLITE_PATH", path.as_str())])).await;
    // ... and published live (the hub keeps the newest per station).
    publish(&app, &[observation("46013", 4)]).await;
    // The stored rows reach the hub's state in the background: wait for them.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut client = connect(&app, "?snapshot=latest", &[]).await;
        let mut snapshot = Vec::new();
        while snapshot.len() < 3 {
            match tokio::time::timeout(Duration::from_millis(300), client.next_event(WAIT)).await {
                Ok(Some(event)) if event.event == "snapshot" => snapshot.push(event),
                _ => break,
            }
        }
        if snapshot.len() == 3 {
            let stations: Vec<String> = snapshot
                .iter()
                .map(|event| event.json()["stationId"].as_str().unwrap_or("").to_owned())
                .collect();
            assert_eq!(stations, ["46013", "46026", "46042"], "sorted by station");
            for event in &snapshot {
                assert_eq!(event.id, None, "no id line: Last-Event-ID does not move");
                let data = event.json();
                assert_eq!(data["snapshot"], true);
                assert!(data.get("id").is_none());
                assert_eq!(
                    data.as_object().expect("object").len(),
                    17,
                    "the observation shape, flagged: {data}"
                );
            }
            assert_eq!(snapshot[1].json()["timestamp"], "2026-11-28T00:20:00Z", "the newest row of 46026");
            // Then live, as usual.
            let live = publish(&app, &[observation("46042", 3)]).await;
            assert_eq!(ids(&client.observations(1, WAIT).await), live);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the stored stations never reached the snapshot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The station filter narrows it; other values are refused.
    let mut client = connect(&app, "?snapshot=latest&station=46042&fields=waveHeightM", &[]).await;
    let event = client.next_event(WAIT).await.expect("snapshot");
    assert_eq!((event.event.as_str(), event.json()["stationId"].as_str()), ("snapshot", Some("46042")));
    assert_eq!(
        event.json().as_object().expect("object").len(),
        4,
        "stationId, timestamp, waveHeightM, snapshot"
    );
    let refused = SseClient::connect(&app.url("/v1/observations/stream?snapshot=all"), &[]).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_json()["error"]["details"]["param"], "snapshot");
}

/// Clients connecting while observations are published: for each client the
/// snapshot and the live events meet with no gap (its last value of every
/// station is the last published) and no duplicate (no event twice, and no
/// live event that repeats what its snapshot already said).
#[tokio::test]
async fn snapshot_and_live_meet_without_gap_or_duplicate() {
    let app = TestApp::spawn(Backends::default()).await;
    let stations = ["46026", "46042", "46013", "41002"];
    publish(&app, &stations.iter().map(|id| observation(id, 0)).collect::<Vec<_>>()).await;
    let publisher = {
        let bus = app.bus.clone();
        tokio::spawn(async move {
            for n in 1..=60 {
                let batch: Vec<Observation> = stations.iter().map(|id| observation(id, n)).collect();
                bus.publish(&batch).await.expect("publish");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut clients = Vec::new();
    for _ in 0..12 {
        clients.push(connect(&app, "?snapshot=latest", &[]).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publisher.await.expect("publisher");
    for mut client in clients {
        let mut last: std::collections::HashMap<String, String> = Default::default();
        let mut seen_ids = std::collections::HashSet::new();
        let mut snapshot: std::collections::HashMap<String, String> = Default::default();
        loop {
            let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(500), client.next_event(WAIT)).await
            else {
                break;
            };
            let data = event.json();
            let station = data["stationId"].as_str().expect("station").to_owned();
            let time = data["timestamp"].as_str().expect("time").to_owned();
            match event.event.as_str() {
                "snapshot" => {
                    assert!(seen_ids.is_empty(), "snapshots come before live events");
                    snapshot.insert(station.clone(), time.clone());
                }
                "observation" => {
                    let id = event.id.clone().expect("an id");
                    assert!(seen_ids.insert(id), "no event twice");
                    assert_ne!(snapshot.get(&station), Some(&time), "a live event repeated the snapshot");
                }
                other => panic!("unexpected {other}"),
            }
            if let Some(previous) = last.get(&station) {
                assert!(previous < &time, "{station}: {time} after {previous}: a step back or a repeat");
            }
            last.insert(station, time);
        }
        for id in stations {
            assert_eq!(
                last.get(id).map(String::as_str),
                Some(observation(id, 60).observed_at.format("%Y-%m-%dT%H:%M:%SZ").to_string().as_str()),
                "{id}: no gap, the client ends on the last value"
            );
        }
    }
}

/// After a `reset`, a snapshot client gets the current state again.
#[tokio::test]
async fn a_snapshot_client_gets_the_state_again_after_a_reset() {
    let app = TestApp::spawn(Backends::default()).await;
    publish(&app, &[observation("46026", 1)]).await;
    let mut client = connect(&app, "?snapshot=latest", &[("Last-Event-ID", "garbage")]).await;
    let first = client.next_event(WAIT).await.expect("snapshot");
    assert_eq!(first.event, "snapshot");
    let reset = client.next_event(WAIT).await.expect("reset");
    assert_eq!(reset.event, "reset");
    let again = client.next_event(WAIT).await.expect("snapshot again");
    assert_eq!((again.event.as_str(), again.json()["stationId"].as_str()), ("snapshot", Some("46026")));
}
