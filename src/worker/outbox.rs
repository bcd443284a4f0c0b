//! Publishing the outbox (docs/REFERENCE.md, Worker; docs/API.md, Catch-up):
//! every stored-but-unpublished observation, then every spectrum, reaches
//! the bus once, oldest first.
//!
//! [`drain`] repeatedly asks the store for the oldest pending rows
//! ([`Store::drain_outbox`]) and publishes them with
//! [`Bus::publish_once`] — up to [`PublishPolicy::attempts`] tries with
//! exponential backoff — and the store marks them with their bus ids. When
//! every attempt fails the rows stay pending (the insert is never undone) and
//! the worker's outbox loop tries again later.
//!
//! It deliberately does not fetch or insert anything.

use std::time::Duration;

use crate::bus::{self, Bus};
use crate::observation::ObservationEvent;
use crate::store::{Drained, OutboxTable, Store};

use super::metrics::WorkerMetrics;

/// How publishing is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishPolicy {
    /// Tries per batch (docs/REFERENCE.md, Worker: 3).
    pub attempts: u32,
    /// Delay after the first failed try; doubled after each further one.
    pub first_delay: Duration,
    /// Rows per batch.
    pub batch: usize,
}

impl Default for PublishPolicy {
    fn default() -> Self {
        PublishPolicy { attempts: 3, first_delay: Duration::from_millis(200), batch: 500 }
    }
}

/// What a drain did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrainReport {
    /// Rows published and marked.
    pub published: usize,
    /// Why it stopped early, when publishing failed after every attempt
    /// (the rows stay pending).
    pub failed: Option<String>,
}

/// Publishes pending rows, batch after batch, until none is left or a
/// batch cannot be published.
pub async fn drain(
    store: &Store,
    bus: &Bus,
    policy: PublishPolicy,
    metrics: &WorkerMetrics,
) -> Result<DrainReport, crate::store::Error> {
    let mut report = DrainReport::default();
    for table in OutboxTable::ALL {
        loop {
            let publish = |rows| publish_with_retries(bus, rows, policy, metrics);
            match store.drain_outbox(table, policy.batch, publish).await? {
                Drained::Empty => break,
                Drained::Published(n_rows) => {
                    report.published += n_rows;
                    if n_rows < policy.batch {
                        break;
                    }
                }
                Drained::Failed { n_rows, error } => {
                    tracing::warn!(
                        bus = bus.backend_name(),
                        n_rows,
                        ?table,
                        attempts = policy.attempts,
                        error = %error,
                        "publishing failed; the rows stay in the outbox and are retried later"
                    );
                    report.failed = Some(error.to_string());
                    return Ok(report);
                }
            }
        }
    }
    if report.published > 0 {
        tracing::debug!(n_published = report.published, "published observations from the outbox");
    }
    Ok(report)
}

/// Publishes `rows` idempotently, retrying with exponential backoff.
async fn publish_with_retries(
    bus: &Bus,
    rows: Vec<ObservationEvent>,
    policy: PublishPolicy,
    metrics: &WorkerMetrics,
) -> Result<Vec<String>, bus::Error> {
    let mut delay = policy.first_delay;
    let mut attempt = 1;
    loop {
        match bus.publish_once(&rows).await {
            Ok(ids) => {
                let now = chrono::Utc::now();
                for row in &rows {
                    let age = now.signed_duration_since(row.observation.observed_at);
                    metrics.observation_age.observe(age.num_milliseconds().max(0) as f64 / 1000.0);
                }
                return Ok(ids);
            }
            Err(error) => {
                metrics.publish_failures.inc();
                if attempt >= policy.attempts.max(1) {
                    return Err(error);
                }
                tracing::debug!(attempt, error = %error, n_rows = rows.len(), "publish failed; retrying");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
                attempt += 1;
            }
        }
    }
}
