//! Prometheus metrics of the gateway (docs/API.md, Metrics), in one registry
//! served at `GET /metrics`.
//!
//! The SSE names are the original system's (compatible); WebSocket, bus and
//! HTTP figures are ours. Worker metrics register into the same registry
//! when the worker runs in this process.

use crate::observation::EventKind;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every gateway metric. Cheap to share: clone the `Arc` around it.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Open SSE connections (gauge, despite the `_total` name: the original's).
    pub sse_connections: IntGauge,
    /// SSE events written, by `event_type` (connection, observation, reset, lagged).
    pub sse_events_sent: IntCounterVec,
    /// The series of `sse_events_sent`, resolved once (no label lookup per event).
    pub sse_sent: EventCounters,
    /// How long SSE connections lasted.
    pub sse_connection_duration: Histogram,
    /// Bus arrival → handed to the client's connection, in milliseconds.
    pub sse_broadcast_latency: Histogram,
    /// Clients closed because they fell behind.
    pub stream_lagged: IntCounterVec,
    /// Stream connections refused at the cap.
    pub stream_rejected: IntCounterVec,
    /// Open WebSocket connections.
    pub ws_connections: IntGauge,
    /// WebSocket frames sent, by `event_type`.
    pub ws_events_sent: IntCounterVec,
    /// The series of `ws_events_sent`, resolved once (no label lookup per event).
    pub ws_sent: EventCounters,
    /// How long WebSocket connections lasted.
    pub ws_connection_duration: Histogram,
    /// Valid bus messages received.
    pub bus_received: IntCounter,
    /// Bus messages dropped as invalid.
    pub bus_invalid: IntCounter,
    /// Measurements set to null in otherwise valid bus messages, by `field`.
    pub bus_fields_invalid: IntCounterVec,
    /// Times the bus subscription was lost and came back.
    pub bus_reconnects: IntCounter,
    /// Whether the bus subscription is up (1) or down (0).
    pub bus_up: IntGauge,
    /// HTTP requests by method, route and `status_code` (the original's label).
    pub http_requests: IntCounterVec,
    /// Deliveries to SSE clients that failed, by `reason` (the original's
    /// name; `lagged`: the client fell behind and was closed).
    pub sse_broadcast_errors: IntCounterVec,
    /// Rows returned by the REST history endpoints (the original's name).
    pub observations_queried: IntCounter,
    /// Stations the store lists as active (the original's name; counted
    /// at each scrape).
    pub stations_active: IntGauge,
    /// HTTP request durations (non-streaming responses: time to headers).
    pub http_request_duration: HistogramVec,
}

/// The series of one `*_events_sent_total` family, resolved once:
/// every delivery increments one of them, and a label lookup (hash + lock)
/// per delivery is measurable at 10,000 clients.
#[derive(Clone)]
pub struct EventCounters {
    /// `event_type="connection"`.
    pub connection: IntCounter,
    /// `event_type="observation"`.
    pub observation: IntCounter,
    /// `event_type="reset"`.
    pub reset: IntCounter,
    /// `event_type="lagged"`.
    pub lagged: IntCounter,
    /// `event_type="snapshot"`.
    pub snapshot: IntCounter,
    /// `event_type="spectrum"` (live, replayed and snapshot spectra).
    pub spectrum: IntCounter,
}

impl EventCounters {
    /// Resolves (and so creates, visible at 0) the four series of `family`.
    fn of(family: &IntCounterVec) -> EventCounters {
        EventCounters {
            connection: family.with_label_values(&["connection"]),
            observation: family.with_label_values(&["observation"]),
            reset: family.with_label_values(&["reset"]),
            lagged: family.with_label_values(&["lagged"]),
            snapshot: family.with_label_values(&["snapshot"]),
            spectrum: family.with_label_values(&["spectrum"]),
        }
    }

    /// The series an event of `kind` counts in (a snapshot observation is a `snapshot`).
    pub fn event(&self, kind: EventKind, snapshot: bool) -> &IntCounter {
        match (kind, snapshot) {
            (EventKind::Spectrum, _) => &self.spectrum,
            (EventKind::Observation, true) => &self.snapshot,
            (EventKind::Observation, false) => &self.observation,
        }
    }
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let sse_events_sent = IntCounterVec::new(
            Opts::new("sse_events_sent_total", "SSE events sent, by event type"),
            &["event_type"],
        )
        .expect("valid metric");
        let ws_events_sent = IntCounterVec::new(
            Opts::new("ws_events_sent_total", "WebSocket events sent, by event type"),
            &["event_type"],
        )
        .expect("valid metric");
        let duration_buckets = vec![0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 86_400.0];
        let latency_buckets = vec![0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
        let metrics = Metrics {
            sse_connections: IntGauge::new("sse_connections_total", "Open SSE connections")
                .expect("valid metric"),
            sse_sent: EventCounters::of(&sse_events_sent),
            sse_events_sent,
            sse_connection_duration: Histogram::with_opts(
                HistogramOpts::new("sse_connection_duration_seconds", "SSE connection duration")
                    .buckets(duration_buckets.clone()),
            )
            .expect("valid metric"),
            sse_broadcast_latency: Histogram::with_opts(
                HistogramOpts::new("sse_broadcast_latency_ms", "Bus arrival to client hand-off, ms")
                    .buckets(latency_buckets),
            )
            .expect("valid metric"),
            stream_lagged: IntCounterVec::new(
                Opts::new("stream_lagged_clients_total", "Stream clients closed because they fell behind"),
                &["transport"],
            )
            .expect("valid metric"),
            stream_rejected: IntCounterVec::new(
                Opts::new("stream_rejected_total", "Stream connections refused, by reason"),
                &["reason"],
            )
            .expect("valid metric"),
            ws_connections: IntGauge::new("ws_connections_total", "Open WebSocket connections")
                .expect("valid metric"),
            ws_sent: EventCounters::of(&ws_events_sent),
            ws_events_sent,
            ws_connection_duration: Histogram::with_opts(
                HistogramOpts::new("ws_connection_duration_seconds", "WebSocket connection duration")
                    .buckets(duration_buckets),
            )
            .expect("valid metric"),
            bus_received: IntCounter::new("bus_messages_received_total", "Valid bus messages received")
                .expect("valid metric"),
            bus_invalid: IntCounter::new("bus_messages_invalid_total", "Bus messages dropped as invalid")
                .expect("valid metric"),
            bus_fields_invalid: IntCounterVec::new(
                Opts::new(
                    "bus_message_fields_invalid_total",
                    "Implausible or non-numeric measurements set to null in bus messages, by field",
                ),
                &["field"],
            )
            .expect("valid metric"),
            bus_reconnects: IntCounter::new("bus_reconnects_total", "Bus subscription reconnects")
                .expect("valid metric"),
            bus_up: IntGauge::new("bus_up", "Whether the bus subscription is up").expect("valid metric"),
            http_requests: IntCounterVec::new(
                Opts::new("http_requests_total", "HTTP requests, by method, route and status code"),
                &["method", "route", "status_code"],
            )
            .expect("valid metric"),
            sse_broadcast_errors: IntCounterVec::new(
                Opts::new("sse_broadcast_errors_total", "Failed deliveries to SSE clients, by reason"),
                &["reason"],
            )
            .expect("valid metric"),
            observations_queried: IntCounter::new(
                "observations_queried_total",
                "Observations returned by the REST history endpoints",
            )
            .expect("valid metric"),
            stations_active: IntGauge::new("stations_active", "Stations the store lists as active")
                .expect("valid metric"),
            http_request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "HTTP request duration to response headers",
                ),
                &["method", "route"],
            )
            .expect("valid metric"),
            registry,
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: [Box<dyn prometheus::core::Collector>; 19] = [
            Box::new(self.sse_connections.clone()),
            Box::new(self.sse_events_sent.clone()),
            Box::new(self.sse_connection_duration.clone()),
            Box::new(self.sse_broadcast_latency.clone()),
            Box::new(self.stream_lagged.clone()),
            Box::new(self.stream_rejected.clone()),
            Box::new(self.ws_connections.clone()),
            Box::new(self.ws_events_sent.clone()),
            Box::new(self.ws_connection_duration.clone()),
            Box::new(self.bus_received.clone()),
            Box::new(self.bus_invalid.clone()),
            Box::new(self.bus_reconnects.clone()),
            Box::new(self.bus_up.clone()),
            Box::new(self.http_requests.clone()),
            Box::new(self.http_request_duration.clone()),
            Box::new(self.sse_broadcast_errors.clone()),
            Box::new(self.observations_queried.clone()),
            Box::new(self.stations_active.clone()),
            Box::new(self.bus_fields_invalid.clone()),
        ];
        for collector in collectors {
            self.registry.register(collector).expect("metric names are unique");
        }
        // The labelled event series are visible at 0 from the start: `sse_sent`
        // and `ws_sent` resolved them.
        self.sse_broadcast_errors.with_label_values(&["lagged"]);
        for field in crate::observation::Field::ALL {
            self.bus_fields_invalid.with_label_values(&[field.name()]);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        encode(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The Prometheus text exposition of everything in `registry` (the gateway's
/// `/metrics`, and the worker-only role's).
pub fn encode(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&registry.gather(), &mut buffer) {
        tracing::error!(error = %error, "encoding metrics");
    }
    String::from_utf8(buffer).unwrap_or_default()
}
