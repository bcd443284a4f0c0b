//! The WebSocket stream (docs/API.md, The WebSocket stream): the same events
//! as SSE as JSON text frames, the same filters and catch-up, and shutdown
//! that closes sockets.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::app::{Backends, TestApp};
use crate::stream::observation;

const WAIT: Duration = Duration::from_secs(5);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(app: &TestApp, query: &str) -> Socket {
    let url = format!("ws://{}/v1/observations/ws{query}", app.addr);
    let (mut socket, response) = tokio_tungstenite::connect_async(url).await.expect("websocket handshake");
    assert_eq!(response.status().as_u16(), 101);
    let first = next_json(&mut socket).await.expect("connection frame");
    assert_eq!(first["event"], "connection");
    assert_eq!(first["data"]["status"], "connected");
    socket
}

/// The next text frame as JSON within `WAIT` (pings skipped, and they do not
/// extend it); `None` when the socket closes.
async fn next_json(socket: &mut Socket) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next()).await.expect("a frame in time")?;
        match message.ok()? {
            Message::Text(text) => return Some(serde_json::from_str(&text).expect("JSON frame")),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

#[tokio::test]
async fn observations_arrive_as_json_frames_with_ids() {
    let app = TestApp::spawn(Backends::default()).await;
    let mut socket = open(&app, "").await;
    let ids = app.bus.publish(&[observation("46026", 1), observation("46042", 2)]).await.expect("publish");
    for id in &ids {
        let frame = next_json(&mut socket).await.expect("observation frame");
        assert_eq!(frame["event"], "observation");
        assert_eq!(frame["id"], id.as_str());
        assert_eq!(frame["data"]["id"], id.as_str());
        assert_eq!(frame["data"].as_object().expect("object").len(), 17);
    }
    socket.close(None).await.expect("close");
}

/// `?snapshot=latest` on the WebSocket: `{"event":"snapshot","data":{…}}`
/// frames without `id`, before live frames.
#[tokio::test]
async fn snapshot_latest_frames_come_first_without_ids() {
    let app = TestApp::spawn(Backends::default()).await;
    app.bus.publish(&[observation("46042", 1), observation("46026", 2)]).await.expect("publish");
    let mut socket = open(&app, "?snapshot=latest").await;
    for station in ["46026", "46042"] {
        let frame = next_json(&mut socket).await.expect("snapshot frame");
        assert_eq!(frame["event"], "snapshot");
        assert!(frame.get("id").is_none(), "{frame}");
        assert_eq!(frame["data"]["stationId"], station);
        assert_eq!(frame["data"]["snapshot"], true);
    }
    let ids = app.bus.publish(&[observation("46026", 3)]).await.expect("publish");
    let frame = next_json(&mut socket).await.expect("live frame");
    assert_eq!((frame["event"].as_str(), frame["id"].as_str()), (Some("observation"), Some(ids[0].as_str())));
    socket.close(None).await.expect("close");
}

#[tokio::test]
async fn a_message_without_id_has_no_id_key() {
    let app = TestApp::spawn(Backends::default()).await;
    let mut socket = open(&app, "").await;
    let raw = br#"{"stationId":"46026","timestamp":"2026-11-28T06:40:00Z","waveHeightM":1.2}"#;
    app.bus.publish_raw(raw).await.expect("publish raw");
    let frame = next_json(&mut socket).await.expect("frame");
    assert_eq!(frame["event"], "observation");
    assert!(frame.get("id").is_none(), "{frame}");
    assert_eq!(frame["data"]["waveHeightM"], 1.2);
}

#[tokio::test]
async fn filters_and_catch_up_work_as_on_sse() {
    let app = TestApp::spawn(Backends::default()).await;
    let first = app.bus.publish(&[observation("46026", 1)]).await.expect("publish");
    let missed = app
        .bus
        .publish(&[observation("46042", 2), observation("46026", 3), observation("46026", 4)])
        .await
        .expect("publish");
    let mut socket =
        open(&app, &format!("?station=46026&fields=waveHeightM&last_event_id={}", first[0])).await;
    for id in [&missed[1], &missed[2]] {
        let frame = next_json(&mut socket).await.expect("frame");
        assert_eq!(frame["id"], id.as_str());
        let mut keys: Vec<_> = frame["data"].as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["id", "stationId", "timestamp", "waveHeightM"]);
    }
    let bad =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/observations/ws?fields=nope", app.addr)).await;
    match bad {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 400)
        }
        other => panic!("expected a 400 refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn pings_keep_an_idle_socket_alive() {
    let app = TestApp::spawn(Backends::with_env(&[("BUOYCAST_KEEPALIVE_SECS", "1")])).await;
    let mut socket = open(&app, "").await;
    let message =
        tokio::time::timeout(Duration::from_secs(3), socket.next()).await.expect("a frame").expect("open");
    assert!(matches!(message.expect("ok"), Message::Ping(_)));
    socket.send(Message::Pong(Default::default())).await.expect("pong");
}

#[tokio::test]
async fn shutdown_closes_sockets_within_the_deadline() {
    let mut app = TestApp::spawn(Backends::default()).await;
    let mut socket = open(&app, "").await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(next_json(&mut socket).await.is_none(), "socket closed");
    assert!(started.elapsed() < Duration::from_secs(5));
}
