//! The gateway's basic HTTP surface: `/health`, `/ready`,
//! the JSON error shape for the router's own 404/405, and clean shutdown —
//! on the embedded default and on real PostgreSQL + Redis.

use std::time::Duration;

use serde_json::Value;

use crate::harness::app::{Backends, TestApp};
use crate::harness::{postgres, redis::RedisServer};

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("request succeeds");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.expect("body is JSON");
    (status, body)
}

fn assert_error_shape(body: &Value, code: &str) {
    let error = body.get("error").unwrap_or_else(|| panic!("no error object in {body}"));
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error.get("details").is_some(), "details key present: {body}");
}

#[tokio::test]
async fn embedded_default_serves_health_and_ready() {
    let mut app = TestApp::spawn(Backends::default()).await;
    let (status, body) = get_json(&app.url("/health")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    let (status, body) = get_json(&app.url("/ready")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["store"], "ok");
    assert!(app.dir.path().join("buoycast.db").is_file(), "the SQLite file was created and migrated");
    app.stop().await;
}

#[tokio::test]
async fn router_errors_have_the_documented_json_shape() {
    let app = TestApp::spawn(Backends::default()).await;
    let (status, body) = get_json(&app.url("/no/such/route")).await;
    assert_eq!(status, 404);
    assert_error_shape(&body, "NOT_FOUND");

    let response = reqwest::Client::new().post(app.url("/health")).send().await.expect("request succeeds");
    assert_eq!(response.status().as_u16(), 405);
    let body: Value = response.json().await.expect("body is JSON");
    assert_error_shape(&body, "BAD_REQUEST");
}

#[tokio::test]
async fn production_backends_are_ready_and_ready_fails_when_redis_stops() {
    let mut redis = RedisServer::start();
    let db = postgres::test_database().await;
    let app = TestApp::spawn(Backends {
        database_url: Some(db.url.clone()),
        redis_url: Some(redis.url()),
        ..Backends::default()
    })
    .await;
    let (status, body) = get_json(&app.url("/ready")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bus"], "ok");

    redis.stop();
    let mut last = (0, Value::Null);
    for _ in 0..40 {
        last = get_json(&app.url("/ready")).await;
        if last.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last.0, 503, "{}", last.1);
    assert_error_shape(&last.1, "SERVICE_UNAVAILABLE");
    assert_eq!(last.1["error"]["details"]["bus"], "unreachable");
    assert_eq!(last.1["error"]["details"]["store"], "ok");
}

#[tokio::test]
async fn shutdown_completes_within_the_deadline() {
    let mut app = TestApp::spawn(Backends::default()).await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}
