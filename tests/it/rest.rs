//! The REST API (docs/API.md, History) on both stores: compatible shapes, pagination,
//! filters, 400s that name the parameter, 404s, and the protections (bearer
//! tokens, rate limit, CORS), plus /metrics and /v1/openapi.json.

use std::time::Duration;

use buoycast::station::Station;
use buoycast::store::Delivery;
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

fn times(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .expect("array")
        .iter()
        .map(|row| row["observedAt"].as_str().expect("time").to_owned())
        .collect()
}

#[tokio::test]
async fn by_station_pages_from_the_newest_rows_each_page_oldest_first() {
    for app in both_stores().await {
        // Rows at 00:10 … 00:50. Page 1 is the newest two, page 2 the two before.
        let (status, body) = get(&app, "/v1/observations/by-station/46026?page=1&limit=2").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["meta"], serde_json::json!({ "page": 1, "limit": 2, "total": 5 }));
        assert_eq!(times(&body), ["2026-11-28T00:40:00Z", "2026-11-28T00:50:00Z"]);
        let (_, body) = get(&app, "/v1/observations/by-station/46026?page=2&limit=2").await;
        assert_eq!(times(&body), ["2026-11-28T00:20:00Z", "2026-11-28T00:30:00Z"]);
        let (_, body) = get(&app, "/v1/observations/by-station/46026?page=3&limit=2").await;
        assert_eq!(times(&body), ["2026-11-28T00:10:00Z"]);
        let data = body["data"].as_array().expect("array");
        assert_eq!(data[0]["stationId"], "46026");
        assert_eq!(data[0]["windDirDeg"], 99);
        assert!(data[0]["tideFt"].is_null());

        // `since` is exclusive: polling with the last time seen repeats nothing.
        let (_, body) = get(&app, "/v1/observations/by-station/46026?since=2026-11-28T00:40:00Z").await;
        assert_eq!(body["meta"]["total"], 1);
        assert_eq!(times(&body), ["2026-11-28T00:50:00Z"]);
        let (_, body) = get(&app, "/v1/observations/by-station/46026?since=2026-11-28T00:50:00Z").await;
        assert_eq!(body["meta"]["total"], 0);
        // What the original accepted: a date alone (its midnight UTC), a limit above the maximum (clamped).
        let (status, body) = get(&app, "/v1/observations/by-station/46026?since=2026-11-28").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["meta"]["total"], 5);
        let (status, body) = get(&app, "/v1/observations/by-station/46026?limit=5000").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["meta"]["limit"], 1000);
        assert_eq!(times(&body).len(), 5);
        let (_, body) = get(&app, "/v1/observations/by-station/NOPE1").await;
        assert_eq!(body["meta"]["total"], 0);
    }
}

/// The original system's by-station query over `rows` (its code: `WHERE
/// observedAt > since ORDER BY observedAt DESC LIMIT limit OFFSET
/// (page-1)*limit`, then reversed), with its limit clamp.
fn original_by_station(
    rows: &[String],
    page: usize,
    limit: usize,
    since: Option<&str>,
) -> (Vec<String>, usize) {
    let limit = limit.min(1000);
    let mut matching: Vec<&String> =
        rows.iter().filter(|time| since.map_or(true, |since| time.as_str() > since)).collect();
    let total = matching.len();
    matching.sort_by(|a, b| b.cmp(a));
    let mut page: Vec<String> = matching.into_iter().skip((page - 1) * limit).take(limit).cloned().collect();
    page.reverse();
    (page, total)
}

#[tokio::test]
async fn by_station_answers_the_original_clients_calls_as_the_original_did() {
    for app in both_stores().await {
        let stored: Vec<String> = (1..=5).map(|n| format!("2026-11-28T00:{n}0:00Z")).collect();
        for (page, limit, since) in [
            (1, 100, None),
            (1, 2, None),
            (2, 2, None),
            (3, 2, None),
            (4, 2, None),
            (1, 3, Some("2026-11-28T00:20:00Z")),
            (2, 3, Some("2026-11-28T00:20:00Z")),
            (1, 5000, None),
        ] {
            let mut path = format!("/v1/observations/by-station/46026?page={page}&limit={limit}");
            if let Some(since) = since {
                path.push_str(&format!("&since={since}"));
            }
            let (status, body) = get(&app, &path).await;
            assert_eq!(status, 200, "{path}: {body}");
            let (expected, total) = original_by_station(&stored, page, limit, since);
            assert_eq!(times(&body), expected, "{path}");
            assert_eq!(body["meta"]["total"], total, "{path}");
        }
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
        ("/v1/observations/by-station/46026?limit=0", "limit"),
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
async fn metrics_expose_the_documented_names() {
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
        "bus_message_fields_invalid_total",
        "sse_broadcast_errors_total",
        "observations_queried_total",
        "stations_active",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/v1/stations",status_code="200"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn observations_queried_counts_the_rows_history_returned() {
    let app = seeded(Backends::default()).await;
    let (_, body) = get(&app, "/v1/observations/by-station/46026?limit=3").await;
    assert_eq!(times(&body).len(), 3);
    let (_, body) = get(&app, "/v1/observations?station=46042").await;
    assert_eq!(body["data"].as_array().expect("array").len(), 2);
    let text = reqwest::get(app.url("/metrics")).await.expect("request").text().await.expect("text");
    assert!(text.lines().any(|line| line == "observations_queried_total 5"), "{text}");
    // `seeded` stored one station with metadata and two bare ones (active by default).
    assert_eq!(app.metric("stations_active").await, Some(2.0), "{text}");
}

/// Errors produced below the handlers are the JSON shape too.
#[tokio::test]
async fn every_error_is_json_even_below_the_router() {
    let app = TestApp::spawn(Backends::default()).await;
    let client = reqwest::Client::new();
    let big = "x".repeat(20 * 1024);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        // A plain GET on the WebSocket endpoint (no upgrade).
        (client.get(app.url("/v1/observations/ws")), 400, "BAD_REQUEST"),
        // A path that is not UTF-8 once decoded.
        (client.get(app.url("/v1/stations/%FF")), 400, "BAD_REQUEST"),
        // Request headers over the limit.
        (client.get(app.url("/v1/stations")).header("x-padding", big.as_str()), 431, "BAD_REQUEST"),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.expect("request");
        let url = response.url().to_string();
        assert_eq!(response.status().as_u16(), status, "{url}");
        let content_type = response.headers()["content-type"].to_str().expect("ascii").to_owned();
        assert!(content_type.starts_with("application/json"), "{url}: {content_type}");
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(body["error"]["code"], code, "{url}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{url}: {body}");
    }
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
        "/v1/spectra/by-station/{id}",
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

#[tokio::test]
async fn spectra_by_station_serves_stored_spectra_with_their_derived_values() {
    let app = TestApp::spawn(Backends::default()).await;
    let spectra = crate::harness::fixtures::spectra_41010();
    app.store.upsert_spectra(&spectra, Delivery::Silent).await.expect("store");

    let (status, body) = get(&app, "/v1/spectra/by-station/41010?limit=2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"], serde_json::json!({"page": 1, "limit": 2, "total": 149}));
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    let newest = &data[1];
    assert_eq!(newest["timestamp"], "2020-06-08T03:50:00Z");
    assert_eq!(newest["sepFreqHz"], 0.225);
    let expected: serde_json::Value = serde_json::from_str(&spectra[148].to_json()).expect("json");
    assert_eq!(newest, &expected);
    assert_eq!(newest["bands"].as_array().map(Vec::len), Some(46));
    assert!(newest["significantHeightM"].as_f64().is_some_and(|hs| hs > 0.5 && hs < 2.0), "{newest}");
    assert!(newest["bands"][6]["spreadDeg"].is_number());

    let (status, body) = get(&app, "/v1/spectra/by-station/41010?since=2020-06-08T02:50:00Z").await;
    assert_eq!((status, body["meta"]["total"].as_u64()), (200, Some(1)));
    let (status, body) = get(&app, "/v1/spectra/by-station/41010?limit=x").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
}
