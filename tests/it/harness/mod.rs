//! Shared test harness: throw-away real servers and helpers.
//!
//! - [`redis`]: one `redis-server` per test (free port, temp dir, killed on drop).
//! - [`redis_topology`]: a Redis Sentinel setup and a 3-node Redis Cluster.
//! - [`postgres`]: one PostgreSQL cluster per test binary, one database per test.
//! - [`tcp_proxy`]: a proxy a test can cut and restore (one test's database down).
//! - [`ndbc_server`]: a local stand-in for www.ndbc.noaa.gov serving the fixtures.
//! - [`app`]: `TestApp::spawn`, the real gateway on port 0.
//! - [`sse`]: a small, strict SSE client.
//! - [`fixtures`]: paths to the real NDBC files in `tests/fixtures/ndbc/`.
//!
//! This file also holds [`init_logs`] and [`free_port`].

#![allow(dead_code)]

pub mod app;
pub mod fixtures;
pub mod ndbc_server;
pub mod postgres;
pub mod redis;
pub mod redis_topology;
pub mod sse;
pub mod tcp_proxy;

/// Installs a tracing subscriber when `TEST_LOG` is set, once per process.
pub fn init_logs() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("debug").try_init();
        }
    });
}

/// A free TCP port on 127.0.0.1 (bind to port 0, read it back, release it).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// The first versions of `observations` (revision 0), as the worker's outbox
/// publishes them with `Bus::publish_once`.
pub fn originals(
    observations: &[buoycast::observation::Observation],
) -> Vec<buoycast::observation::ObservationEvent> {
    observations
        .iter()
        .map(|observation| buoycast::observation::ObservationEvent::new(None, observation.clone()))
        .collect()
}
