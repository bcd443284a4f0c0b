//! The gateway server: `app(state)` builds the router, [`Gateway::run`]
//! serves it until shutdown.
//!
//! Routes (docs/API.md): the SSE and WebSocket streams fed by the fan-out hub,
//! REST history and stations from the store, `/health`, `/ready`,
//! `/metrics`, `/v1/openapi.json`. Every error, the router's own 404/405
//! and rejected query strings included, is the documented JSON shape
//! (docs/API.md, Errors).

pub mod dashboard;
pub mod encode;
pub mod error;
pub mod fanout;
pub mod feed;
pub mod guard;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod rest;
pub mod sse;
pub mod ws;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::bus::Bus;
use crate::config::Config;
use crate::store::Store;
pub use error::ApiError;
use fanout::Hub;
use metrics::Metrics;

/// How long a REST request may take before it is answered 503.
const REST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long after start a new stream waits for the bus instead of a 503.
pub(crate) const STARTUP_BUS_WAIT: Duration = Duration::from_secs(10);

/// What every handler can reach: one `Arc`, so the clone each request and
/// each middleware makes is a single atomic increment (the burst of
/// thousands of clients connecting at once showed the field-by-field clone).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    /// Observation and station persistence.
    pub store: Store,
    /// Where live observations arrive, and the catch-up log.
    pub bus: Bus,
    /// The loaded configuration.
    pub config: Arc<Config>,
    /// The fan-out hub every stream client subscribes to.
    pub hub: Hub,
    /// Every metric.
    pub metrics: Arc<Metrics>,
    /// Stream connection slots (`stream.max_connections`).
    pub connections: Arc<Semaphore>,
    /// Per-client REST limiter; `None` when off.
    pub limiter: Option<Arc<guard::KeyedLimiter>>,
    /// Load balancers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Cancelled on shutdown: streams end themselves on it.
    pub shutdown: CancellationToken,
    /// Tasks that shutdown waits for (WebSocket sockets, the hub).
    pub tracker: TaskTracker,
    /// When the gateway was built (a stream waits for the bus only while starting).
    pub started: Instant,
}

/// A running gateway's parts.
pub struct Gateway {
    /// The shared state.
    pub state: AppState,
}

impl Gateway {
    /// Starts the hub on `bus` and builds the state.
    pub fn new(store: Store, bus: Bus, config: Config, shutdown: CancellationToken) -> Gateway {
        let metrics = Arc::new(Metrics::new());
        let tracker = TaskTracker::new();
        let hub = Hub::start(
            bus.clone(),
            config.stream.client_queue,
            Arc::clone(&metrics),
            shutdown.clone(),
            &tracker,
        );
        tracker.spawn(seed_latest(store.clone(), Arc::clone(hub.latest())));
        let state = AppState(Arc::new(Shared {
            store,
            bus,
            connections: Arc::new(Semaphore::new(config.stream.max_connections)),
            limiter: guard::limiter(config.rate_limit.history_per_minute),
            trusted_proxies: config.trusted_proxies(),
            config: Arc::new(config),
            hub,
            metrics,
            shutdown,
            tracker,
            started: Instant::now(),
        }));
        Gateway { state }
    }

    /// Serves on `listener` until shutdown; returns once every connection
    /// and stream has ended or the shutdown deadline passed.
    pub async fn run(self, listener: TcpListener) {
        let state = self.state;
        // Everything but new streams is served at once; a stream that arrives
        // before the bus is up waits for it (`StreamRequest::admit`).
        let watched = state.clone();
        state.tracker.spawn(async move {
            tokio::select! {
                () = watched.shutdown.cancelled() => {}
                up = watched.hub.wait_up(STARTUP_BUS_WAIT) => {
                    if !up {
                        tracing::warn!("bus not reachable yet; new streams get 503 until it is");
                    }
                }
            }
        });
        let settings = listener::ConnSettings {
            header_timeout: Duration::from_secs(state.config.http.header_timeout_secs),
        };
        let shutdown = state.shutdown.clone();
        let tracker = state.tracker.clone();
        let housekeeping = tokio::spawn(housekeeping(state.clone()));
        listener::serve(listener, app(state), settings, shutdown, tracker.clone()).await;
        housekeeping.abort();
        tracker.close();
        if tokio::time::timeout(crate::shutdown::DEADLINE, tracker.wait()).await.is_err() {
            tracing::warn!("shutdown deadline passed with connections still open");
        }
    }
}

/// Fills the hub's per-station newest observations and spectra from the
/// store, so `?snapshot=latest` has every station from the start, not only
/// those heard since. Live events that arrived meanwhile are newer and stay.
async fn seed_latest(store: Store, latest: Arc<fanout::Latest>) {
    match store.latest_spectra().await {
        Ok(spectra) => {
            latest.seed(
                spectra
                    .into_iter()
                    .map(|spectrum| crate::observation::ObservationEvent::spectrum(None, spectrum)),
            );
        }
        Err(error) => {
            tracing::warn!(error = %error, "could not read the stations' latest spectra for snapshots")
        }
    }
    const PAGE: u32 = 1000;
    for page in 1.. {
        match store.stations(page, PAGE).await {
            Ok(summaries) => {
                let n = summaries.items.len();
                let n_stations = latest.seed(
                    summaries
                        .items
                        .into_iter()
                        .filter_map(|summary| summary.latest)
                        .map(|observation| crate::observation::ObservationEvent::new(None, observation)),
                );
                if n < PAGE as usize {
                    tracing::debug!(n_stations, "snapshot state seeded from the store");
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "could not read the stations' latest observations for snapshots");
                break;
            }
        }
    }
}

/// Periodic upkeep: forget idle rate-limit keys.
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Some(limiter) = &state.limiter {
            limiter.retain_recent();
        }
    }
}

/// The router, with every route, guard and the JSON fallbacks.
pub fn app(state: AppState) -> Router {
    let history = Router::new()
        .route("/v1/observations", get(rest::history))
        .route("/v1/observations/by-station/{id}", get(rest::by_station))
        .route("/v1/spectra/by-station/{id}", get(rest::spectra_by_station))
        .route("/v1/stations", get(rest::stations))
        .route("/v1/stations/{id}", get(rest::station))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::rate_limit))
        .layer(middleware::from_fn(rest_timeout));
    let streams = Router::new()
        .route("/v1/observations/stream", get(sse::stream))
        .route("/v1/observations/ws", get(ws::stream));
    let v1 = history.merge(streams).route_layer(middleware::from_fn_with_state(state.clone(), guard::auth));
    Router::new()
        .merge(v1)
        .route("/", get(dashboard::index))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn(guard::head_limit))
        .layer(middleware::from_fn_with_state(state.clone(), track_http))
        .layer(cors(&state.config))
        .with_state(state)
}

/// A REST request that takes longer than [`REST_TIMEOUT`] is answered 503
/// (JSON, with `Retry-After`) and its work dropped.
async fn rest_timeout(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable(
            format!("The request took longer than {} s; retry later", REST_TIMEOUT.as_secs()),
            Some(5),
        )
        .into_response(),
    }
}

/// The CORS policy of `cors.origins`: `*` reflects nothing and allows no
/// credentials; a list reflects the matching origin with credentials.
fn cors(config: &Config) -> CorsLayer {
    let layer = CorsLayer::new().allow_methods([Method::GET, Method::OPTIONS]).allow_headers([
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::HeaderName::from_static("last-event-id"),
    ]);
    if config.cors.origins.iter().any(|origin| origin == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let origins: Vec<HeaderValue> =
            config.cors.origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
        layer.allow_origin(AllowOrigin::list(origins)).allow_credentials(true)
    }
}

/// The data of the `connection` event (compatible).
pub fn connection_data() -> String {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!("{{\"status\":\"connected\",\"timestamp\":\"{now}\"}}")
}

/// Counts every request by route and status; times it to response headers.
async fn track_http(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    state.metrics.http_requests.with_label_values(&[&method, &route, &status]).inc();
    state
        .metrics
        .http_request_duration
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn health() -> Json<serde_json::Value> {
    Json(
        json!({ "status": "ok", "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true) }),
    )
}

async fn ready(State(state): State<AppState>) -> Response {
    let store = state.store.ping().await;
    let bus = if state.hub.bus_up() {
        state.bus.ping().await.map_err(|error| error.to_string())
    } else {
        Err("subscription down".to_owned())
    };
    if store.is_ok() && bus.is_ok() {
        return Json(json!({ "status": "ready", "store": "ok", "bus": "ok" })).into_response();
    }
    let describe = |ok: bool| if ok { "ok" } else { "unreachable" };
    if let Err(error) = &store {
        tracing::warn!(error = %error, "readiness: store unreachable");
    }
    if let Err(error) = &bus {
        tracing::warn!(error = %error, "readiness: bus unreachable");
    }
    ApiError::unavailable("Not ready", Some(1))
        .with_details(json!({ "store": describe(store.is_ok()), "bus": describe(bus.is_ok()) }))
        .into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    // One indexed count per scrape keeps `stations_active` current; a slow
    // or unreachable database never holds the scrape up (the last value stays).
    match tokio::time::timeout(Duration::from_millis(500), state.store.count_active_stations()).await {
        Ok(Ok(count)) => state.metrics.stations_active.set(i64::try_from(count).unwrap_or(i64::MAX)),
        Ok(Err(error)) => tracing::debug!(error = %error, "stations_active not refreshed"),
        Err(_) => tracing::debug!("stations_active not refreshed: the database took over 500 ms"),
    }
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))],
        state.metrics.encode(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("Route not found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Serves the gateway on `listener` with the given parts until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    bus: Bus,
    config: Config,
    shutdown: CancellationToken,
) {
    Gateway::new(store, bus, config, shutdown).run(listener).await;
}
