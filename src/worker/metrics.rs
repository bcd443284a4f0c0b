//! The worker's Prometheus metrics (docs/API.md, Metrics), registered into a
//! registry the caller owns: the gateway's in `buoycast run` (one `/metrics`
//! for both), or the worker's own in `buoycast worker`.
//!
//! It deliberately holds no logic: the worker increments these.

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Every worker metric. Cheap to clone (the collectors are reference-counted).
#[derive(Clone)]
pub struct WorkerMetrics {
    /// Fetches by `source` (`latest_obs`, `stations`, or a station id) and
    /// `outcome` (`ok`, `not_modified`, `http_error`, `timeout`, `error`).
    pub fetches: IntCounterVec,
    /// Bad lines (and bad files: an HTML page, a truncated last line) skipped.
    pub parse_errors: IntCounter,
    /// Implausible values set to null in rows that were kept, by `field`
    /// (the camelCase name, `waveHeightM`).
    pub values_rejected: IntCounterVec,
    /// Observations inserted (new rows only).
    pub rows_inserted: IntCounter,
    /// Publish attempts that failed (each retry counts).
    pub publish_failures: IntCounter,
    /// Observations stored but not yet published.
    pub outbox_depth: IntGauge,
    /// Unix time of the last successful fetch (200 or 304), by `station`
    /// (a station id, or `latest_obs` / `stations`).
    pub last_success: GaugeVec,
    /// How long after NDBC wrote a file its new rows were stored (and the
    /// outbox woken to publish them): now − the file's `Last-Modified`, by
    /// `source` (`latest_obs` or `station`).
    pub freshness: HistogramVec,
    /// How old an observation is when it is published: publish time − its
    /// observation time.
    pub observation_age: Histogram,
}

/// Registering failed: a metric of the same name is already in the registry.
#[derive(Debug, thiserror::Error)]
#[error("registering the worker metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl WorkerMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &Registry) -> Result<WorkerMetrics, MetricsError> {
        let metrics = WorkerMetrics {
            fetches: IntCounterVec::new(
                Opts::new("worker_fetches_total", "NDBC fetches, by source and outcome"),
                &["source", "outcome"],
            )?,
            parse_errors: IntCounter::new(
                "worker_parse_errors_total",
                "Bad lines and unreadable files skipped by the worker",
            )?,
            values_rejected: IntCounterVec::new(
                Opts::new(
                    "ingest_values_rejected_total",
                    "Implausible values set to null in rows that were kept, by field",
                ),
                &["field"],
            )?,
            rows_inserted: IntCounter::new(
                "worker_rows_inserted_total",
                "Observations inserted by the worker",
            )?,
            publish_failures: IntCounter::new(
                "worker_publish_failures_total",
                "Failed attempts to publish observations on the bus",
            )?,
            outbox_depth: IntGauge::new("worker_outbox_depth", "Observations stored but not yet published")?,
            last_success: GaugeVec::new(
                Opts::new(
                    "worker_last_success_timestamp_seconds",
                    "Unix time of the last successful fetch, by station (or latest_obs, stations)",
                ),
                &["station"],
            )?,
            freshness: HistogramVec::new(
                HistogramOpts::new(
                    "ingest_freshness_seconds",
                    "NDBC file Last-Modified to its new rows stored and queued for publishing, seconds",
                )
                .buckets(vec![1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0]),
                &["source"],
            )?,
            observation_age: Histogram::with_opts(
                HistogramOpts::new("observation_age_seconds", "Publish time minus observation time, seconds")
                    .buckets(vec![60.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0]),
            )?,
        };
        registry.register(Box::new(metrics.freshness.clone()))?;
        registry.register(Box::new(metrics.observation_age.clone()))?;
        registry.register(Box::new(metrics.fetches.clone()))?;
        registry.register(Box::new(metrics.parse_errors.clone()))?;
        registry.register(Box::new(metrics.values_rejected.clone()))?;
        registry.register(Box::new(metrics.rows_inserted.clone()))?;
        registry.register(Box::new(metrics.publish_failures.clone()))?;
        registry.register(Box::new(metrics.outbox_depth.clone()))?;
        registry.register(Box::new(metrics.last_success.clone()))?;
        Ok(metrics)
    }
}
