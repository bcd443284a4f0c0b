//! The `bridge` binary against the real gateway: it follows the SSE stream,
//! and across a gateway restart it reconnects with `Last-Event-ID` and loses
//! nothing (docs/AUDIO_CLIENTS.md, Bridge cookbook: "The live SSE source
//! reconnects with `Last-Event-ID`, so a gateway restart loses nothing").

use std::path::PathBuf;
use std::time::Duration;

use rosc::{OscPacket, OscType};
use tokio::net::UdpSocket;

use crate::harness::app::{Backends, TestApp};
use crate::harness::redis::RedisServer;
use crate::stream::observation;

/// `target/<profile>/bridge`, built by the workspace test run; built here when
/// only this test binary was asked for.
fn bridge_exe() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_buoycast")).with_file_name("bridge");
    if !exe.is_file() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "buoycast-bridges", "--bin", "bridge"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the bridge");
    }
    exe
}

/// The next `/observation` message's (stationId, timestamp).
async fn next_observation(socket: &UdpSocket) -> (String, String) {
    let mut buffer = vec![0u8; 65_536];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(15), socket.recv_from(&mut buffer))
            .await
            .expect("an OSC packet in time")
            .expect("recv");
        let (_, packet) = rosc::decoder::decode_udp(&buffer[..n]).expect("valid OSC");
        let messages = match packet {
            OscPacket::Message(message) => vec![message],
            OscPacket::Bundle(bundle) => bundle
                .content
                .into_iter()
                .filter_map(|p| if let OscPacket::Message(m) = p { Some(m) } else { None })
                .collect(),
        };
        for message in messages {
            if message.addr == "/observation" {
                match (&message.args[0], &message.args[1]) {
                    (OscType::String(station), OscType::String(time)) => {
                        return (station.clone(), time.clone())
                    }
                    other => panic!("unexpected /observation args {other:?}"),
                }
            }
        }
    }
}

/// The bridge with `args`, logging only warnings, ended when dropped.
fn spawn_bridge(args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(bridge_exe())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("bridge starts")
}

async fn wait_for_stream_client(app: &TestApp) {
    for _ in 0..150 {
        if app.metric("sse_connections_total").await == Some(1.0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the bridge never connected to the gateway");
}

#[tokio::test]
async fn bridge_follows_the_gateway_across_a_restart_without_loss() {
    let redis = RedisServer::start();
    let mut app = TestApp::spawn(Backends { redis_url: Some(redis.url()), ..Backends::default() }).await;
    let receiver = UdpSocket::bind("127.0.0.1:0").await.expect("bind a receiver");
    let target = receiver.local_addr().expect("receiver address").to_string();
    let mut bridge =
        spawn_bridge(&["--source", &app.base_url, "--osc", &target, "--osc-format", "observation"]);
    wait_for_stream_client(&app).await;

    let expected = |n: i64| {
        ("46026".to_owned(), buoycast::observation::format_time(&observation("46026", n).observed_at))
    };
    app.bus.publish(&(1..=3).map(|n| observation("46026", n)).collect::<Vec<_>>()).await.expect("publish");
    for n in 1..=3 {
        assert_eq!(next_observation(&receiver).await, expected(n));
    }

    // The gateway goes away; the worker keeps publishing to Redis meanwhile.
    let addr = app.addr;
    app.stop().await;
    let worker_bus = buoycast::bus::Bus::redis(&redis.url(), Default::default()).expect("bus");
    worker_bus
        .publish(&[observation("46026", 4), observation("46026", 5)])
        .await
        .expect("publish while down");

    let app =
        TestApp::spawn(Backends { redis_url: Some(redis.url()), listen: Some(addr), ..Backends::default() })
            .await;
    wait_for_stream_client(&app).await;
    for n in 4..=5 {
        assert_eq!(next_observation(&receiver).await, expected(n), "missed events replayed in order");
    }
    app.bus.publish(&[observation("46026", 6)]).await.expect("publish");
    assert_eq!(next_observation(&receiver).await, expected(6), "then live, without duplicates");

    // Nothing else arrives: no duplicate of anything.
    let mut buffer = vec![0u8; 65_536];
    let extra = tokio::time::timeout(Duration::from_millis(500), receiver.recv_from(&mut buffer)).await;
    assert!(extra.is_err(), "an unexpected extra packet");
    bridge.kill().await.expect("stop the bridge");
}

/// Every `/buoy/{station}/waveHeightM` value received within `limit`, in order.
async fn wave_heights(socket: &UdpSocket, want: usize, limit: Duration) -> Vec<(String, f32)> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buffer = vec![0u8; 65_536];
    let mut out = Vec::new();
    while out.len() < want {
        let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer)).await else {
            break;
        };
        let (n, _) = received.expect("recv");
        let (_, packet) = rosc::decoder::decode_udp(&buffer[..n]).expect("valid OSC");
        let mut messages = Vec::new();
        flatten(packet, &mut messages);
        for message in messages {
            let parts: Vec<&str> = message.addr.split('/').collect();
            if let (["", "buoy", station, "waveHeightM"], [OscType::Float(value)]) =
                (&parts[..], &message.args[..])
            {
                out.push(((*station).to_owned(), *value));
            }
        }
    }
    out
}

fn flatten(packet: OscPacket, out: &mut Vec<rosc::OscMessage>) {
    match packet {
        OscPacket::Message(message) => out.push(message),
        OscPacket::Bundle(bundle) => bundle.content.into_iter().for_each(|p| flatten(p, out)),
    }
}

/// Whether process `pid` has a handler for signal number `signal` (Linux: SigCgt).
fn catches(pid: u32, signal: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << (signal - 1)) != 0)
}

/// The stations a performer hears at once, and again on request.
fn three_stations() -> Vec<buoycast::observation::Observation> {
    ["46013", "46026", "46042"]
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let mut observation = observation(id, 1);
            observation.measurements.set(buoycast::observation::Field::WaveHeightM, Some(1.0 + n as f64));
            observation
        })
        .collect()
}

/// A bridge started mid-set sends every station's current state within a
/// second or so (not at the next report, up to an hour later), and again on
/// `/buoycast/resend` at its control port and on SIGUSR1.
#[tokio::test]
async fn a_bridge_started_mid_set_sends_every_station_at_once_and_again_on_request() {
    let app = TestApp::spawn(Backends::default()).await;
    app.bus.publish(&three_stations()).await.expect("publish before the bridge starts");
    let receiver = UdpSocket::bind("127.0.0.1:0").await.expect("bind a receiver");
    let target = receiver.local_addr().expect("receiver address").to_string();
    let control_port = crate::harness::free_port();
    let started = std::time::Instant::now();
    let mut bridge = spawn_bridge(&[
        "--source",
        &app.base_url,
        "--osc",
        &target,
        "--osc-format",
        "fields",
        "--control",
        &control_port.to_string(),
    ]);
    let expected: Vec<(String, f32)> =
        vec![("46013".into(), 1.0), ("46026".into(), 2.0), ("46042".into(), 3.0)];
    let first = wave_heights(&receiver, 3, Duration::from_secs(20)).await;
    eprintln!(
        "every station's current state reached the OSC host {:?} after the bridge was started",
        started.elapsed()
    );
    assert_eq!(first, expected, "each station once, sorted, without waiting for a report");

    // `/buoycast/resend` at the control port: answered with the count, and sent again.
    let control = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let resend = rosc::encoder::encode(&OscPacket::Message(rosc::OscMessage {
        addr: "/buoycast/resend".into(),
        args: vec![],
    }))
    .expect("encode");
    control.send_to(&resend, ("127.0.0.1", control_port)).await.expect("send");
    let mut buffer = vec![0u8; 1024];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), control.recv_from(&mut buffer))
        .await
        .expect("a reply in time")
        .expect("recv");
    let (_, reply) = rosc::decoder::decode_udp(&buffer[..n]).expect("OSC reply");
    match reply {
        OscPacket::Message(message) => {
            assert_eq!(
                (message.addr.as_str(), &message.args[..]),
                ("/buoycast/resent", &[OscType::Int(3)][..])
            )
        }
        other => panic!("unexpected reply {other:?}"),
    }
    assert_eq!(wave_heights(&receiver, 3, Duration::from_secs(10)).await, expected);

    // SIGUSR1 does the same (once the bridge handles it: its default would end the process).
    let pid = bridge.id().expect("running");
    const SIGUSR1: u32 = 10;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !catches(pid, SIGUSR1) {
        assert!(std::time::Instant::now() < deadline, "the bridge never installed a SIGUSR1 handler");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = std::process::Command::new("kill").args(["-USR1", &pid.to_string()]).status().expect("kill");
    assert!(sent.success());
    assert_eq!(wave_heights(&receiver, 3, Duration::from_secs(10)).await, expected);
    assert!(bridge.try_wait().expect("try_wait").is_none(), "still running after SIGUSR1");

    // A new report still goes out as usual.
    let mut newer = observation("46026", 2);
    newer.measurements.set(buoycast::observation::Field::WaveHeightM, Some(2.5));
    app.bus.publish(&[newer]).await.expect("publish");
    assert_eq!(wave_heights(&receiver, 1, Duration::from_secs(10)).await, [("46026".to_owned(), 2.5)]);
    bridge.kill().await.expect("stop the bridge");
}

/// `--resend-every SECS` repeats the current state for installations.
#[tokio::test]
async fn resend_every_repeats_the_current_state() {
    let app = TestApp::spawn(Backends::default()).await;
    app.bus.publish(&three_stations()).await.expect("publish");
    let receiver = UdpSocket::bind("127.0.0.1:0").await.expect("bind a receiver");
    let target = receiver.local_addr().expect("receiver address").to_string();
    let mut bridge = spawn_bridge(&[
        "--source",
        &app.base_url,
        "--osc",
        &target,
        "--osc-format",
        "fields",
        "--resend-every",
        "0.5",
    ]);
    let values = wave_heights(&receiver, 9, Duration::from_secs(20)).await;
    assert_eq!(values.len(), 9, "the snapshot, then two resends: {values:?}");
    for chunk in values.chunks(3) {
        let stations: Vec<&str> = chunk.iter().map(|(station, _)| station.as_str()).collect();
        assert_eq!(stations, ["46013", "46026", "46042"]);
    }
    bridge.kill().await.expect("stop the bridge");
}
