//! The REST API (SPEC 4.1) on both stores: compatible shapes, pagination,
//! filters, 400s that name the parameter, 404s, and the protections (bearer
//! tokens, rate limit, CORS), plus /metrics and /v1/openapi.json.

use std::time::Duration;

use buoycast::station::Station;
use serde_json::Value;

use crate::harness::app::{Backends, TestApp};
use crate::harness::postgres;
use crate::stream::observation;

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = reqwest::get(app.url(path)).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn seeded(backends: Backends) -> TestApp {
    let app = TestApp::spawn(backends).await;
    let rows: Vec<_> =
        (1..=5).map(|n| observation("46026", n)).chain((1..=2).map(|n| observation("46042", n))).collect();
    app.store.upsert_observations(&rows).await.expect("seed observations");
    let mut station = Station::bare(buoycast::observation::StationId::parse("46026").expect("valid"));
    station.name = Some("San Francisco".into());
    station.lat = Some(37.755);
    station.lon = Some(-122.839);
    app.store.upsert_stations(&[station]).await.expect("seed station");
    app
}

async fn both_stores() -> Vec<TestApp> {
    let db = postgres::test_database().await;
    vec![
        seeded(Backends::default()).await,
        seeded(Backends { database_url: Some(db.url.clone()), ..Backends::default() }).await,
    ]
}

#[tokio::test]
async fn by_station_is_paginated_oldest_first_in_the_compatible_shape() {
    for app in both_stores().await {
        let (status, body) = get(&app, "/v1/observations/by-station/46026?page=2&limit=2").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["meta"], serde_json::json!({ "page": 2, "limit": 2, "total": 5 }));
        let data = body["data"].as_array().expect("array");
        let times: Vec<_> =
            data.iter().map(|row| row["observedAt"].as_str().expect("time").to_owned()).collect();
        assert_eq!(times, ["2026-11-28T00:30:00Z", "2026-11-28T00:40:00Z"]);
        assert_eq!(data[0]["stationId"], "46026");
        assert_eq!(data[0]["windDirDeg"], 99);
        assert!(data[0]["tideFt"].is_null());

        let (_, body) = get(&app, "/v1/observations/by-station/46026?since=2026-11-28T00:40:00Z").await;
        assert_eq!(body["meta"]["total"], 2);
        let (_, body) = get(&app, "/v1/observations/by-station/NOPE1").await;
        assert_eq!(body["meta"]["total"], 0);
    }
}

#[tokio::test]
async fn history_across_stations_is_newest_first_with_filters() {
    for app in both_stores().await {
        let (status, body) = get(&app, "/v1/observations?limit=3").await;
        assert_eq!(status, 200, "{body}");
        let data = body["data"].as_array().expect("array");
        assert_eq!(data.len(), 3);
        assert_eq!(data[0]["observedAt"], "2026-11-28T00:50:00Z");
        let (_, body) = get(&app, "/v1/observations?station=46042").await;
        assert_eq!(body["data"].as_array().expect("array").len(), 2);
        let (_, body) =
            get(&app, "/v1/observations?station=46026&since=2026-11-28T00:20:00Z&until=2026-11-28T00:30:00Z")
                .await;
        let times: Vec<_> =
            body["data"].as_array().expect("array").iter().map(|row| row["observedAt"].clone()).collect();
        assert_eq!(times, ["2026-11-28T00:30:00Z", "2026-11-28T00:20:00Z"]);
    }
}

#[tokio::test]
async fn stations_carry_last_observation_and_latest() {
    for app in both_stores().await {
        let (status, body) = get(&app, "/v1/stations").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["meta"]["total"], 2);
        let (status, body) = get(&app, "/v1/stations/46026").await;
        assert_eq!(status, 200);
        assert_eq!(body["data"]["name"], "San Francisco");
        assert_eq!(body["data"]["lastObservationAt"], "2026-11-28T00:50:00Z");
        assert_eq!(body["data"]["latest"]["waveHeightM"], 1.5);
        let (status, body) = get(&app, "/v1/stations/99999").await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "NOT_FOUND");
    }
}

#[tokio::test]
async fn bad_parameters_are_400s_naming_the_parameter() {
    let app = TestApp::spawn(Backends::default()).await;
    for (path, param) in [
        ("/v1/observations/by-station/46026?page=0", "page"),
        ("/v1/observations/by-station/46026?limit=5000", "limit"),
        ("/v1/observations/by-station/46026?limit=ten", "limit"),
        ("/v1/observations/by-station/46026?since=yesterday", "since"),
        ("/v1/observations?until=2026-13-01T00:00:00Z", "until"),
        ("/v1/observations?station=46026;drop", "station"),
        ("/v1/observations?since=2026-11-28T01:00:00Z&until=2026-11-28T00:00:00Z", "until"),
        ("/v1/stations?limit=-1", "limit"),
        ("/v1/observations/by-station/not-a-station", "id"),
    ] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "VALIDATION_ERROR", "{path}");
        assert_eq!(body["error"]["details"]["param"], param, "{path}: {body}");
    }
}

#[tokio::test]
async fn tokens_are_required_when_configured() {
    let token = "s3cret-token-value";
    let app = TestApp::spawn(Backends::with_env(&[("BUOYCAST_AUTH_TOKENS", token)])).await;
    let client = reqwest::Client::new();
    let denied = client.get(app.url("/v1/stations")).send().await.expect("request");
    assert_eq!(denied.status().as_u16(), 401);
    let body: Value = denied.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    let wrong =
        client.get(app.url("/v1/stations")).bearer_auth("s3cret-token-valuX").send().await.expect("request");
    assert_eq!(wrong.status().as_u16(), 401);
    let ok = client.get(app.url("/v1/stations")).bearer_auth(token).send().await.expect("request");
    assert_eq!(ok.status().as_u16(), 200);
    let stream = crate::harness::sse::SseClient::connect(
        &app.url(&format!("/v1/observations/stream?access_token={token}")),
        &[],
    )
    .await;
    assert_eq!(stream.status, 200);
    let stream = crate::harness::sse::SseClient::connect(&app.url("/v1/observations/stream"), &[]).await;
    assert_eq!(stream.status, 401);
    let health = client.get(app.url("/health")).send().await.expect("request");
    assert_eq!(health.status().as_u16(), 200, "health stays open");
}

#[tokio::test]
async fn history_is_rate_limited_per_client() {
    let app = TestApp::spawn(Backends::with_env(&[("BUOYCAST_RATE_LIMIT", "3")])).await;
    for _ in 0..3 {
        assert_eq!(get(&app, "/v1/stations").await.0, 200);
    }
    let response = reqwest::get(app.url("/v1/observations")).await.expect("request");
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    // Streams and health are not history endpoints.
    assert_eq!(get(&app, "/health").await.0, 200);
}

/// The status of a history request that a load balancer forwarded for `client`.
async fn forwarded_status(app: &TestApp, client: &str) -> u16 {
    let response = reqwest::Client::new()
        .get(app.url("/v1/stations"))
        .header("x-forwarded-for", format!("{client}, 10.0.0.5"))
        .send()
        .await
        .expect("request");
    response.status().as_u16()
}

#[tokio::test]
async fn behind_a_trusted_load_balancer_each_forwarded_client_has_its_own_limit() {
    // The test client (127.0.0.1) plays the load balancer; 10.0.0.5 is an inner proxy.
    let env = [("BUOYCAST_RATE_LIMIT", "2"), ("BUOYCAST_TRUSTED_PROXIES", "127.0.0.1,10.0.0.0/8")];
    let app = TestApp::spawn(Backends::with_env(&env)).await;
    for _ in 0..2 {
        assert_eq!(forwarded_status(&app, "203.0.113.7").await, 200);
    }
    assert_eq!(forwarded_status(&app, "203.0.113.7").await, 429);
    // Another client behind the same balancer is not limited by the first.
    assert_eq!(forwarded_status(&app, "203.0.113.8").await, 200);

    // Without trusted proxies the header is ignored: everyone is the peer.
    let app = TestApp::spawn(Backends::with_env(&[("BUOYCAST_RATE_LIMIT", "2")])).await;
    assert_eq!(forwarded_status(&app, "203.0.113.7").await, 200);
    assert_eq!(forwarded_status(&app, "203.0.113.8").await, 200);
    assert_eq!(forwarded_status(&app, "203.0.113.9").await, 429);
}

#[tokio::test]
async fn cors_reflects_configured_origins_only() {
    let any = TestApp::spawn(Backends::default()).await;
    let response = reqwest::Client::new()
        .get(any.url("/v1/stations"))
        .header("origin", "http://example.test")
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(!response.headers().contains_key("access-control-allow-credentials"));

    let listed = TestApp::spawn(Backends::with_env(&[("BUOYCAST_CORS_ORIGINS", "http://studio.test")])).await;
    let client = reqwest::Client::new();
    let allowed = client
        .get(listed.url("/v1/stations"))
        .header("origin", "http://studio.test")
        .send()
        .await
        .expect("request");
    assert_eq!(allowed.headers()["access-control-allow-origin"], "http://studio.test");
    assert_eq!(allowed.headers()["access-control-allow-credentials"], "true");
    let other = client
        .get(listed.url("/v1/stations"))
        .header("origin", "http://evil.test")
        .send()
        .await
        .expect("request");
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn metrics_expose_the_spec_names() {
    let app = TestApp::spawn(Backends::default()).await;
    let _ = get(&app, "/v1/stations").await;
    let text = reqwest::get(app.url("/metrics")).await.expect("request").text().await.expect("text");
    for name in [
        "sse_connections_total",
        "sse_events_sent_total",
        "sse_connection_duration_seconds",
        "sse_broadcast_latency_ms",
        "http_requests_total",
        "http_request_duration_seconds",
        "ws_connections_total",
        "bus_messages_received_total",
        "bus_messages_invalid_total",
        "bus_reconnects_total",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/v1/stations",status="200"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let app = TestApp::spawn(Backends::default()).await;
    let (status, body) = get(&app, "/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(body["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = body["paths"].as_object().expect("paths");
    for path in [
        "/v1/observations/stream",
        "/v1/observations/ws",
        "/v1/observations/by-station/{id}",
        "/v1/observations",
        "/v1/stations",
        "/v1/stations/{id}",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "openapi lacks {path}");
        // And the route really exists (anything but the router's 404).
        let concrete = path.replace("{id}", "46026");
        if !concrete.ends_with("/ws") && !concrete.ends_with("/stream") {
            let text = reqwest::get(app.url(&concrete)).await.expect("request").text().await.expect("body");
            assert!(!text.contains("Route not found"), "{path} is not routed");
        }
    }
}

#[tokio::test]
async fn slow_request_heads_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(Backends::with_env(&[("BUOYCAST_HEADER_TIMEOUT_SECS", "1")])).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    socket.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.expect("partial head");
    // Never finish the head: the server must hang up by itself.
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the server closed a slowloris connection");
}
