//! OSC transports over real local sockets: UDP datagrams, TCP with SLIP
//! framing, OSCQuery over HTTP, and sink isolation (a dead destination never
//! costs the live one a message).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use buoycast::observation::{Field, Measurements, Observation, ObservationEvent, StationId};
use buoycast_bridges::cli::OscFormat;
use buoycast_bridges::mapping::Map;
use buoycast_bridges::osc::{slip_decode, NullPolicy, OscEncoder, SLIP_END};
use buoycast_bridges::pipeline::Pipeline;
use buoycast_bridges::sink::osc::{run_tcp, run_udp, Frame};
use buoycast_bridges::sink::oscquery::{self, Namespace};
use buoycast_bridges::sink::{SinkQueue, SINK_QUEUE};
use buoycast_bridges::source::Item;
use chrono::{TimeZone, Utc};
use rosc::{OscPacket, OscType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::harness::{free_port, message, OscReceiver};

fn observation(i: i64) -> Observation {
    Observation {
        station_id: StationId::parse("41002").expect("id"),
        observed_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("time")
            + chrono::Duration::minutes(10 * i),
        measurements: Measurements::default().with(Field::WaveHeightM, i as f64 / 100.0),
    }
}

fn encoder(format: OscFormat, bundle: bool) -> OscEncoder {
    OscEncoder { format, null_policy: NullPolicy::Skip, bundle, map: Map::builtin(), latency: None }
}

fn frame(encoder: &OscEncoder, i: i64) -> Frame {
    let obs = observation(i);
    Arc::new(encoder.encode(&obs, obs.observed_at).expect("encodes"))
}

#[tokio::test]
async fn udp_sink_delivers_every_datagram_in_order() {
    let receiver = OscReceiver::bind().await;
    let (queue, rx, healthy) = SinkQueue::<Frame>::new("udp".into(), SINK_QUEUE);
    let task = tokio::spawn(run_udp(receiver.addr().to_string(), rx, healthy));
    let encoder = encoder(OscFormat::Both, false);
    for i in 0..3 {
        assert!(queue.deliver(frame(&encoder, i), true).await);
    }
    drop(queue);
    task.await.expect("sink ends when its queue closes");
    let packets = receiver.drain(Duration::from_millis(300)).await;
    assert_eq!(packets.len(), 3 * 5, "per observation: /observation, value, norm, time, age");
    let waves: Vec<OscType> =
        packets.iter().map(message).filter(|m| m.addr == "/observation").map(|m| m.args[2].clone()).collect();
    assert_eq!(waves, vec![OscType::Float(0.0), OscType::Float(0.01), OscType::Float(0.02)]);
}

#[tokio::test]
async fn tcp_sink_slip_frames_every_packet() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (queue, rx, healthy) = SinkQueue::<Frame>::new("tcp".into(), SINK_QUEUE);
    let task = tokio::spawn(run_tcp(addr.to_string(), rx, healthy));
    let encoder = encoder(OscFormat::Both, true);
    for i in 0..4 {
        assert!(queue.deliver(frame(&encoder, i), true).await);
    }
    drop(queue);
    let (mut stream, _) = listener.accept().await.expect("the sink connects");
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes))
        .await
        .expect("in time")
        .expect("read");
    task.await.expect("sink ends");
    assert_eq!(bytes.first(), Some(&SLIP_END));
    assert_eq!(bytes.last(), Some(&SLIP_END));
    let packets = slip_decode(&mut bytes);
    assert!(bytes.is_empty(), "nothing left over");
    assert_eq!(packets.len(), 4, "one bundle per observation");
    for (i, raw) in packets.iter().enumerate() {
        let (_, packet) = rosc::decoder::decode_udp(raw).expect("a whole OSC packet per SLIP frame");
        let OscPacket::Bundle(bundle) = packet else { panic!("expected a bundle") };
        let first = match &bundle.content[0] {
            OscPacket::Message(m) => m.clone(),
            OscPacket::Bundle(_) => panic!("nested bundle"),
        };
        assert_eq!(first.addr, "/observation");
        assert_eq!(first.args[2], OscType::Float(i as f32 / 100.0));
    }
}

#[tokio::test]
async fn tcp_sink_reconnects_when_the_receiver_comes_back() {
    // The receiver's port, bound but not listening yet: connections to it are
    // refused, and no one else can take the port before the receiver comes
    // back on it (as could happen between a free_port() and a rebind).
    let receiver = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    receiver.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
    let port = receiver.local_addr().expect("addr").as_socket().expect("an inet address").port();
    let (queue, rx, healthy) = SinkQueue::<Frame>::new("tcp".into(), SINK_QUEUE);
    let task = tokio::spawn(run_tcp(format!("127.0.0.1:{port}"), rx, healthy.clone()));
    let encoder = encoder(OscFormat::Observation, false);
    queue.deliver(frame(&encoder, 0), false).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while healthy.load(std::sync::atomic::Ordering::Relaxed) {
        assert!(tokio::time::Instant::now() < deadline, "refused: unhealthy (still healthy after 10 s)");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    receiver.listen(128).expect("listen");
    receiver.set_nonblocking(true).expect("nonblocking");
    let listener = TcpListener::from_std(receiver.into()).expect("the receiver is back on the same port");
    let accept = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("reconnected");
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.expect("read");
        slip_decode(&mut bytes)
    });
    // Keep sending until the backoff lets it reconnect.
    for i in 1..=40 {
        queue.deliver(frame(&encoder, i), false).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(queue);
    task.await.expect("sink ends");
    let packets = accept.await.expect("accept task");
    assert!(!packets.is_empty(), "frames flow again after the reconnect");
    let last = rosc::decoder::decode_udp(packets.last().expect("one")).expect("osc").1;
    let OscPacket::Message(last) = last else { panic!("message") };
    assert_eq!(last.args[2], OscType::Float(0.4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_destination_never_costs_the_live_one_a_message() {
    let receiver = OscReceiver::bind().await;
    let dead_udp = free_port();
    let refusing_tcp = free_port();
    let mut osc = Vec::new();
    let mut tasks = Vec::new();
    for (target, tcp) in [
        (format!("127.0.0.1:{dead_udp}"), false),
        (format!("127.0.0.1:{refusing_tcp}"), true),
        (receiver.addr().to_string(), false),
    ] {
        let (queue, rx, healthy) = SinkQueue::<Frame>::new(target.clone(), SINK_QUEUE);
        tasks.push(if tcp {
            tokio::spawn(run_tcp(target, rx, healthy))
        } else {
            tokio::spawn(run_udp(target, rx, healthy))
        });
        osc.push(queue);
    }
    let pipeline = Pipeline {
        encoder: Some(encoder(OscFormat::Observation, false)),
        osc,
        midi: None,
        namespace: None,
        lossless: false,
        control: None,
        start: tokio::time::Instant::now(),
        start_wall: std::time::SystemTime::now(),
        shaper: None,
    };
    let (items_tx, items_rx) = tokio::sync::mpsc::channel(64);
    let run = tokio::spawn(pipeline.run(items_rx));
    let n = 500;
    let collect = tokio::spawn(async move { receiver.drain(Duration::from_secs(2)).await });
    for i in 0..n {
        let obs = observation(i);
        let now = obs.observed_at;
        items_tx.send(Item::new(ObservationEvent::new(None, obs), Duration::ZERO, now)).await.expect("send");
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    drop(items_tx);
    let stats = run.await.expect("pipeline");
    assert_eq!(stats.n_items, n as u64);
    let packets = collect.await.expect("receiver");
    let got: Vec<OscType> = packets.iter().map(|p| message(p).args[2].clone()).collect();
    let expected: Vec<OscType> = (0..n).map(|i| OscType::Float((i as f64 / 100.0) as f32)).collect();
    assert_eq!(got, expected, "every message, in order");
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("dead sinks end too").expect("task");
    }
}

async fn http_get(port: u16, target: &str) -> (u16, serde_json::Value) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    stream
        .write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn oscquery_serves_the_namespace_and_grows_with_stations() {
    let control = "127.0.0.1:57120".parse().expect("addr");
    let namespace = Arc::new(Namespace::new(Map::builtin(), OscFormat::Both, Some(control)));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(oscquery::serve(listener, namespace.clone(), shutdown.clone()));

    let (status, root) = http_get(port, "/").await;
    assert_eq!(status, 200);
    assert_eq!(root["FULL_PATH"], "/");
    assert_eq!(root["CONTENTS"]["observation"]["TYPE"], "ssffiff");
    assert!(root["CONTENTS"].get("buoy").is_none(), "no station yet");

    assert!(namespace.add_station(&StationId::parse("46026").expect("id")));
    let (status, wave) = http_get(port, "/buoy/46026/waveHeightM").await;
    assert_eq!(status, 200);
    assert_eq!(wave["FULL_PATH"], "/buoy/46026/waveHeightM");
    assert_eq!(wave["TYPE"], "f");
    assert_eq!(wave["RANGE"], serde_json::json!([{"MIN": 0.0, "MAX": 10.0}]));
    assert_eq!(wave["UNIT"], serde_json::json!(["m"]));
    assert_eq!(wave["ACCESS"], 1);
    assert!(wave["DESCRIPTION"].as_str().is_some_and(|d| d.contains("waveHeightM")));
    assert!(wave.get("CONTENTS").is_none(), "the default strict layout lists no /norm: {wave}");
    let (_, norm) = http_get(port, "/buoy/46026/waveHeightM/norm").await;
    assert_eq!(norm["RANGE"], serde_json::json!([{"MIN": 0.0, "MAX": 1.0}]));
    let (_, time) = http_get(port, "/buoy/46026/time").await;
    assert_eq!(time["TYPE"], "iiiii");
    let (_, age) = http_get(port, "/buoy/46026/age?UNIT").await;
    assert_eq!(age, serde_json::json!({"UNIT": ["s"]}));

    let (status, info) = http_get(port, "/?HOST_INFO").await;
    assert_eq!(status, 200);
    assert_eq!(info["OSC_PORT"], 57120);
    assert_eq!(info["OSC_TRANSPORT"], "UDP");
    assert_eq!(info["EXTENSIONS"]["RANGE"], true);
    assert!(info["NAME"].is_string());

    let (status, _) = http_get(port, "/buoy/99999").await;
    assert_eq!(status, 404);
    shutdown.cancel();
    server.await.expect("server ends on cancel");
}
