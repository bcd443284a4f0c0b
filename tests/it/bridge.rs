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
    let mut bridge = tokio::process::Command::new(bridge_exe())
        .args(["--source", &app.base_url, "--osc", &target, "--osc-format", "observation"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("bridge starts");
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
