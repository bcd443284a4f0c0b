//! Sources end to end, each through `app::run` to a real UDP receiver:
//! replay of a real NDBC file, Redis (a throw-away `redis-server`), the SSE
//! stream and the WebSocket of a small in-test gateway that records the
//! reconnect's Last-Event-ID.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use buoycast::sources::ndbc::parse;
use buoycast_bridges::app;
use futures::{SinkExt, StreamExt};
use rosc::OscType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::harness::{args, fixture, message, OscReceiver, RedisOptions, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_an_ndbc_file_delivers_every_observation_oldest_first() {
    let path = fixture("realtime2/41002.txt");
    let station = parse::station_from_file_name("41002.txt");
    let expected = parse::parse(&std::fs::read(&path).expect("read"), station.as_ref())
        .expect("an NDBC file")
        .observations;
    let receiver = OscReceiver::bind().await;
    let addr = receiver.addr().to_string();
    let recv_buffer = receiver.recv_buffer;
    // Every packet, however slow a loaded machine is (a generous deadline),
    // then half a second of quiet so that an extra one would be counted.
    let collect =
        receiver.collect_on_thread(expected.len(), Duration::from_secs(60), Duration::from_millis(500));
    // ~45 days of 10-minute rows in about eight seconds (~800 datagrams a
    // second). With the 4 MiB buffer granted the kernel has room for ~10,000
    // such small datagrams, all of them, so none can be lost; capped at the
    // common 208 KiB rmem_max it still queues ~500, more than half a second
    // of stalled reader (and the reader has a thread of its own).
    let flags = [
        "--replay",
        path.to_str().expect("utf-8 path"),
        "--speed",
        "500000",
        "--osc",
        &addr,
        "--osc-format",
        "observation",
    ];
    let stats = tokio::time::timeout(
        Duration::from_secs(60),
        app::run_with_stats(args(&flags), CancellationToken::new()),
    )
    .await
    .expect("a replay ends by itself")
    .expect("runs");
    assert_eq!(stats.n_items, expected.len() as u64);
    assert_eq!(stats.n_dropped, 0);
    let packets = collect.join().expect("receiver");
    assert_eq!(
        packets.len(),
        expected.len(),
        "every observation delivered (receive buffer granted: {recv_buffer} bytes)"
    );
    let times: Vec<String> = packets
        .iter()
        .map(|p| match &message(p).args[1] {
            OscType::String(t) => t.clone(),
            other => panic!("timestamp is a string, got {other:?}"),
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "oldest first");
    let oldest = expected.iter().map(|o| o.observed_at).min().expect("rows");
    assert_eq!(times[0], buoycast::observation::format_time(&oldest));
    let mut expected_times: Vec<String> =
        expected.iter().map(|o| buoycast::observation::format_time(&o.observed_at)).collect();
    expected_times.sort();
    assert_eq!(times, expected_times, "each observation exactly once");
    assert!(packets.iter().all(|p| message(p).args[0] == OscType::String("41002".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_source_forwards_an_original_seven_field_message() {
    let redis_server = RedisServer::start();
    let redis_url = redis_server.url();
    let receiver = OscReceiver::bind().await;
    let addr = receiver.addr().to_string();
    let shutdown = CancellationToken::new();
    let flags = ["--redis", &redis_url, "--osc", &addr, "--osc-format", "observation", "--station", "46026"];
    let bridge = tokio::spawn(app::run(args(&flags), shutdown.clone()));
    let client = redis::Client::open(redis_url.as_str()).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    // Pub/Sub has no catch-up: publish only once the bridge has subscribed.
    let subscribe_deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let subscribers: Vec<(String, u64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("observations:new")
            .query_async(&mut conn)
            .await
            .expect("numsub");
        if subscribers.first().is_some_and(|(_, n)| *n > 0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < subscribe_deadline,
            "the bridge did not subscribe to observations:new on {} within 20 s",
            redis_url
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let publish = |payload: &'static str| {
        let mut conn = conn.clone();
        async move {
            let _: u64 = redis::cmd("PUBLISH")
                .arg("observations:new")
                .arg(payload)
                .query_async(&mut conn)
                .await
                .expect("publish");
        }
    };
    publish(r#"{"stationId":"46042","timestamp":"2026-11-28T06:30:00Z","waveHeightM":9.9}"#).await;
    publish("not json").await;
    publish(r#"{"stationId":"46026","timestamp":"2026-11-28T06:40:00Z","waveHeightM":1.2,"windSpeedMps":5.1,"windDirDeg":270,"waterTempC":null,"pressureHpa":1015.3}"#).await;
    let packet = receiver.next(Duration::from_secs(5)).await.expect("forwarded");
    assert_eq!(
        message(&packet).args,
        vec![
            OscType::String("46026".into()),
            OscType::String("2026-11-28T06:40:00Z".into()),
            OscType::Float(1.2),
            OscType::Float(5.1),
            OscType::Int(270),
            OscType::Float(-999.0),
            OscType::Float(1015.3),
        ]
    );
    assert!(receiver.next(Duration::from_millis(300)).await.is_none(), "the other station is filtered out");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), bridge)
        .await
        .expect("stops in time")
        .expect("task")
        .expect("exit ok");
}

fn observation_json(id: &str, wave: f64) -> String {
    format!(
        r#"{{"id":"{id}","stationId":"46026","timestamp":"2026-11-28T06:40:00Z","windDirDeg":null,"windSpeedMps":null,"gustMps":null,"waveHeightM":{wave},"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":null,"airTempC":null,"waterTempC":null,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}}"#
    )
}

/// Serves two SSE connections: the first sends ids 1-0 and 2-0 then drops;
/// the second records its request and sends 3-0. Returns the request heads.
async fn sse_gateway(listener: TcpListener, heads: Arc<Mutex<Vec<String>>>) {
    for connection in 0..2 {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; 4096];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.expect("read");
            head.extend_from_slice(&buf[..n]);
        }
        heads.lock().expect("lock").push(String::from_utf8_lossy(&head).into_owned());
        let mut body = String::from(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        );
        body.push_str("retry: 50\n\nevent: connection\ndata: {\"status\":\"connected\",\"timestamp\":\"2026-11-28T06:50:00.123Z\"}\n\n");
        let events: &[(&str, f64)] =
            if connection == 0 { &[("1-0", 1.0), ("2-0", 2.0)] } else { &[("3-0", 3.0)] };
        for (id, wave) in events {
            body.push_str(&format!(
                "id: {id}\r\nevent: observation\r\ndata: {}\r\n\r\n: keepalive\n\n",
                observation_json(id, *wave)
            ));
        }
        stream.write_all(body.as_bytes()).await.expect("write");
        if connection == 0 {
            stream.shutdown().await.expect("close");
        } else {
            // Hold the second connection open like a live stream.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }
}

fn waves(packets: &[rosc::OscPacket]) -> Vec<OscType> {
    packets.iter().map(|p| message(p).args[2].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_source_reconnects_with_last_event_id_and_loses_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let source = format!("http://{}", listener.local_addr().expect("addr"));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let gateway = tokio::spawn(sse_gateway(listener, heads.clone()));
    let receiver = OscReceiver::bind().await;
    let addr = receiver.addr().to_string();
    let shutdown = CancellationToken::new();
    let flags = ["--source", &source, "--station", "46026", "--osc", &addr, "--osc-format", "observation"];
    let bridge = tokio::spawn(app::run(args(&flags), shutdown.clone()));
    let mut packets = Vec::new();
    while packets.len() < 3 {
        packets.push(receiver.next(Duration::from_secs(10)).await.expect("an observation"));
    }
    assert_eq!(waves(&packets), vec![OscType::Float(1.0), OscType::Float(2.0), OscType::Float(3.0)]);
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 2);
    assert!(
        heads[0].starts_with(
            "GET /v1/observations/stream?kinds=observation%2Cspectrum&snapshot=latest&station=46026 HTTP/1.1"
        ),
        "both kinds, the current state first, then the filter: {}",
        heads[0]
    );
    assert!(!heads[0].to_lowercase().contains("last-event-id"), "{}", heads[0]);
    assert!(heads[1].to_lowercase().contains("last-event-id: 2-0"), "{}", heads[1]);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), bridge)
        .await
        .expect("stops in time")
        .expect("task")
        .expect("exit ok");
    gateway.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::result_large_err)] // tungstenite's handshake callback type, not ours
async fn websocket_source_reconnects_with_last_event_id_query() {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::Message;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let source = format!("http://{}", listener.local_addr().expect("addr"));
    let uris = Arc::new(Mutex::new(Vec::new()));
    let seen = uris.clone();
    let gateway = tokio::spawn(async move {
        for connection in 0..2 {
            let (stream, _) = listener.accept().await.expect("accept");
            let seen = seen.clone();
            let mut socket =
                tokio_tungstenite::accept_hdr_async(stream, move |request: &Request, response: Response| {
                    seen.lock().expect("lock").push(request.uri().to_string());
                    Ok(response)
                })
                .await
                .expect("handshake");
            socket
                .send(Message::text(r#"{"event":"connection","data":{"status":"connected"}}"#))
                .await
                .expect("send");
            let (id, wave) = if connection == 0 { ("7-0", 7.0) } else { ("8-0", 8.0) };
            let frame =
                format!(r#"{{"event":"observation","id":"{id}","data":{}}}"#, observation_json(id, wave));
            socket.send(Message::text(frame)).await.expect("send");
            if connection == 0 {
                let _ = socket.close(None).await;
            } else {
                while socket.next().await.is_some() {}
            }
        }
    });
    let receiver = OscReceiver::bind().await;
    let addr = receiver.addr().to_string();
    let shutdown = CancellationToken::new();
    let flags = ["--source", &source, "--ws", "--osc", &addr, "--osc-format", "observation"];
    let bridge = tokio::spawn(app::run(args(&flags), shutdown.clone()));
    let mut packets = Vec::new();
    while packets.len() < 2 {
        packets.push(receiver.next(Duration::from_secs(10)).await.expect("an observation"));
    }
    assert_eq!(waves(&packets), vec![OscType::Float(7.0), OscType::Float(8.0)]);
    let uris = uris.lock().expect("lock").clone();
    assert_eq!(
        uris,
        vec![
            "/v1/observations/ws?kinds=observation%2Cspectrum&snapshot=latest".to_owned(),
            "/v1/observations/ws?kinds=observation%2Cspectrum&snapshot=latest&last_event_id=7-0".to_owned()
        ]
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), bridge)
        .await
        .expect("stops in time")
        .expect("task")
        .expect("exit ok");
    gateway.abort();
}

/// A REST gateway that serves a station's history in pages of 2 (its own
/// cap, whatever the bridge asks), oldest first, and records the requests.
async fn rest_gateway(listener: TcpListener, requests: Arc<Mutex<Vec<String>>>) {
    let rows = [("2026-11-28T06:00:00Z", 1.0), ("2026-11-28T06:10:00Z", 2.0), ("2026-11-28T06:20:00Z", 3.0)];
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { return };
        let mut buf = vec![0u8; 4096];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let target = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
        requests.lock().expect("lock").push(target.clone());
        let page: usize = target
            .split(['?', '&'])
            .find_map(|pair| pair.strip_prefix("page="))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let data: Vec<String> = rows
            .iter()
            .skip((page - 1) * 2)
            .take(2)
            .map(|(time, wave)| {
                format!(r#"{{"stationId":"46026","observedAt":"{time}","waveHeightM":{wave},"windSpeedMps":null}}"#)
            })
            .collect();
        let body = format!(r#"{{"data":[{}],"meta":{{"page":{page},"limit":2,"total":3}}}}"#, data.join(","));
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await.expect("write");
        let _ = stream.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_station_pages_through_the_rest_api_oldest_first() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let source = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let gateway = tokio::spawn(rest_gateway(listener, requests.clone()));
    let receiver = OscReceiver::bind().await;
    let addr = receiver.addr().to_string();
    // 10-minute gaps at 600x: 1 s apart.
    let flags = [
        "--replay",
        "46026",
        "--source",
        &source,
        "--speed",
        "600",
        "--osc",
        &addr,
        "--osc-format",
        "observation",
    ];
    let started = std::time::Instant::now();
    let stats = tokio::time::timeout(
        Duration::from_secs(20),
        app::run_with_stats(args(&flags), CancellationToken::new()),
    )
    .await
    .expect("the replay ends by itself")
    .expect("runs");
    let elapsed = started.elapsed();
    assert_eq!(stats.n_items, 3);
    assert!(elapsed >= Duration::from_millis(1900), "gaps divided by the speed: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
    let packets = receiver.drain(Duration::from_millis(300)).await;
    assert_eq!(waves(&packets), vec![OscType::Float(1.0), OscType::Float(2.0), OscType::Float(3.0)]);
    assert_eq!(message(&packets[0]).args[1], OscType::String("2026-11-28T06:00:00Z".into()));
    let requests = requests.lock().expect("lock").clone();
    assert_eq!(
        requests,
        vec![
            "/v1/observations/by-station/46026?page=1&limit=1000".to_owned(),
            "/v1/observations/by-station/46026?page=2&limit=1000".to_owned()
        ]
    );
    gateway.abort();
}

/// `--latency` in a replay: each bundle's timetag follows the replayed time
/// at `--speed` (rows 10 minutes apart at 60,000x: 10 ms apart), not the
/// moment the packet happened to leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_timetags_follow_the_replayed_times() {
    let text = std::fs::read_to_string(fixture("realtime2/41002.txt")).expect("read");
    let head: Vec<&str> = text.lines().take(2 + 20).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("41002.txt");
    std::fs::write(&path, head.join("\n") + "\n").expect("write");
    let receiver = OscReceiver::bind().await;
    let addr = receiver.addr().to_string();
    let collect = receiver.collect_on_thread(20, Duration::from_secs(30), Duration::from_millis(300));
    let flags = [
        "--replay",
        path.to_str().expect("utf-8 path"),
        "--speed",
        "60000",
        "--osc",
        &addr,
        "--osc-format",
        "both",
        "--latency",
        "100",
    ];
    tokio::time::timeout(
        Duration::from_secs(30),
        app::run_with_stats(args(&flags), CancellationToken::new()),
    )
    .await
    .expect("a replay ends by itself")
    .expect("runs");
    let packets = collect.join().expect("receiver");
    assert_eq!(packets.len(), 20, "one bundle per observation");
    let seconds = |packet: &rosc::OscPacket| match packet {
        rosc::OscPacket::Bundle(bundle) => {
            f64::from(bundle.timetag.seconds) + f64::from(bundle.timetag.fractional) / 4_294_967_296.0
        }
        other => panic!("a time-tagged bundle, got {other:?}"),
    };
    for pair in packets.windows(2) {
        let step = seconds(&pair[1]) - seconds(&pair[0]);
        assert!((step - 0.010).abs() < 1e-6, "10 minutes of data at 60,000x is 10 ms: {step}");
    }
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let first = seconds(&packets[0]) - 2_208_988_800.0; // NTP era to Unix
    assert!((first - now).abs() < 30.0, "timetags are wall-clock times ahead of now: {first} vs {now}");
}

/// The station and time of an `/observation` packet.
fn station_and_time(packet: &rosc::OscPacket) -> (String, String) {
    let args = &message(packet).args;
    match (&args[0], &args[1]) {
        (OscType::String(station), OscType::String(time)) => (station.clone(), time.clone()),
        other => panic!("not an /observation: {other:?}"),
    }
}

/// A reading of `station` `minutes_ago` minutes ago (on a whole minute).
fn recent(station: &str, minutes_ago: i64) -> buoycast::observation::Observation {
    let now = chrono::Utc::now().timestamp() / 60 * 60;
    buoycast::observation::Observation {
        station_id: buoycast::observation::StationId::parse(station).expect("id"),
        observed_at: chrono::DateTime::from_timestamp(now - minutes_ago * 60, 0).expect("a time"),
        measurements: buoycast::observation::Measurements::default()
            .with(buoycast::observation::Field::WaveHeightM, 1.0 + minutes_ago as f64 / 100.0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_source_sends_the_current_state_then_loses_nothing_across_a_redis_restart() {
    use buoycast::bus::{Bus, RedisBusOptions};
    use buoycast::observation::format_time;

    let mut redis_server =
        RedisServer::start_with(RedisOptions { persistence: true, ..RedisOptions::default() });
    let redis_url = redis_server.url();
    let publisher = Bus::redis(&redis_url, RedisBusOptions::default()).expect("url");
    // Reported before the bridge starts: 46042 twice (its newest counts), 46026 once.
    let before = [recent("46042", 50), recent("46026", 40), recent("46042", 30)];
    publisher.publish(&before).await.expect("publish");

    let receiver = OscReceiver::bind().await;
    let addr = receiver.addr().to_string();
    let shutdown = CancellationToken::new();
    let flags = ["--redis", &redis_url, "--osc", &addr, "--osc-format", "observation"];
    let bridge = tokio::spawn(app::run(args(&flags), shutdown.clone()));

    // The current state at once, sorted by station, the newest of each.
    let key =
        |o: &buoycast::observation::Observation| (o.station_id.to_string(), format_time(&o.observed_at));
    let first = receiver.next(Duration::from_secs(10)).await.expect("46026's state");
    let second = receiver.next(Duration::from_secs(5)).await.expect("46042's state");
    assert_eq!(station_and_time(&first), key(&before[1]));
    assert_eq!(station_and_time(&second), key(&before[2]));
    assert!(receiver.next(Duration::from_millis(300)).await.is_none(), "46042's older reading is not state");

    // Redis goes away and comes back with its log; readings published at once
    // (before or after the bridge is back) all arrive, once, in order.
    tokio::task::block_in_place(|| redis_server.restart());
    let during = [recent("46026", 20), recent("46042", 10), recent("46026", 5)];
    let publisher = Bus::redis(&redis_url, RedisBusOptions::default()).expect("url");
    publisher.publish(&during).await.expect("publish after the restart");
    for expected in &during {
        let packet = receiver.next(Duration::from_secs(15)).await.expect("every reading after the restart");
        assert_eq!(station_and_time(&packet), key(expected));
    }
    assert!(receiver.next(Duration::from_millis(500)).await.is_none(), "nothing twice");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), bridge)
        .await
        .expect("bridge stops")
        .expect("task")
        .expect("ok");
}
