//! The ingest worker (docs/REFERENCE.md, Worker): NDBC files → parser → store → outbox → bus.
//!
//! One [`Worker::run`] is two loops sharing one store, bus and HTTP client:
//! - the poll loop: register the configured sources in `ingest_sources`,
//!   lease the due ones as fetch slots free up ([`Store::claim_sources`],
//!   `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several workers never fetch
//!   one source at once, share a round, and a dead worker's lease expires),
//!   fetch them with conditional GET at most `concurrency` at a time, parse, upsert (new rows enter the outbox in the
//!   same transaction), record the outcome (next due time, validators,
//!   failures → backoff with equal jitter), then publish the outbox;
//! - the outbox loop: publish whatever is still pending (after a bus outage)
//!   oldest first, backing off while the bus is down.
//!
//! Bad input never stores a wrong value: a body whose last line is cut short
//! loses that line, bad lines are skipped by the parser, a file that is not
//! NDBC at all (an HTML page with 200) stores nothing; each is counted in
//! `worker_parse_errors_total` and logged once per file. An implausible value
//! in a row that is kept is stored as null, counted in
//! `ingest_values_rejected_total{field}` and logged once per file too.
//! A store that is down fails the poll, which is retried with backoff; the
//! upsert is idempotent, so nothing is duplicated when it is back.
//!
//! [`Worker::poll_once`] and [`Worker::publish_pending`] are the loop's steps,
//! public so that tests and tools can drive the worker without timers.
//! `backfill.rs` loads history for chosen stations.

pub mod backfill;
pub mod fetch;
pub mod metrics;
pub mod outbox;
pub mod schedule;
mod spectra;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::Either;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::config::{Config, NdbcConfig};
use crate::observation::{Field, StationId, N_FIELDS};
use crate::sources::ndbc::parse::{self, LineError, ValueRejection};
use crate::sources::ndbc::spectral;
use crate::sources::ndbc::stations::parse_active_stations;
use crate::store::{self, ClaimedSource, Delivery, Origin, SourceUpdate, Store};

pub use fetch::{FetchError, Fetched, Fetcher, Validators};
pub use metrics::WorkerMetrics;
pub use outbox::{DrainReport, PublishPolicy};
pub use schedule::Source;

/// How often station metadata (`activestations.xml`) is refreshed.
pub const STATIONS_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Errors that stop a poll (and, from [`Worker::new`], the start).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed (down, or a query error): the poll is retried later.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The metrics could not be registered.
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
}

/// Everything the worker's behaviour depends on.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The NDBC URLs.
    pub ndbc: NdbcConfig,
    /// Stations whose realtime file is polled.
    pub stations: Vec<StationId>,
    /// Stations whose wave spectra (five realtime files) are polled.
    pub spectral_stations: Vec<StationId>,
    /// Whether `latest_obs.txt` is polled.
    pub latest_obs: bool,
    /// Whether `activestations.xml` is polled (at start, then every `stations_interval`).
    pub station_metadata: bool,
    /// Delay between two successful fetches of a station file (`ingest.interval_ms`).
    pub interval: Duration,
    /// Delay between two successful fetches of `latest_obs.txt`
    /// (`ingest.latest_obs_interval_ms`).
    pub latest_obs_interval: Duration,
    /// Delay between two successful fetches of the station metadata.
    pub stations_interval: Duration,
    /// Fetches in flight at once.
    pub concurrency: usize,
    /// Bound on one whole request (connect, headers, body).
    pub request_timeout: Duration,
    /// Bound on connecting.
    pub connect_timeout: Duration,
    /// Backoff after the first failure of a source (jittered between half of it and it).
    pub retry_base: Duration,
    /// Cap on a source's backoff.
    pub retry_cap: Duration,
    /// How long a claimed source stays leased to this worker (longer than a poll can take).
    pub lease: Duration,
    /// How often the poll loop looks for due sources.
    pub tick: Duration,
    /// How often the outbox loop looks for pending rows.
    pub outbox_interval: Duration,
    /// Publishing retries and batch size.
    pub publish: PublishPolicy,
}

impl WorkerOptions {
    /// The options `config` asks for, with the built-in limits.
    pub fn from_config(config: &Config) -> WorkerOptions {
        let interval = config.ingest_interval();
        WorkerOptions {
            ndbc: config.ndbc.clone(),
            stations: config.stations(),
            spectral_stations: config.spectral_stations(),
            latest_obs: config.ingest.latest_obs,
            station_metadata: true,
            interval,
            latest_obs_interval: config.latest_obs_interval(),
            stations_interval: STATIONS_INTERVAL,
            concurrency: 4,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(5).min(interval),
            retry_cap: Duration::from_secs(30 * 60),
            lease: Duration::from_secs(5 * 60),
            tick: interval.min(config.latest_obs_interval()).min(Duration::from_secs(5)),
            outbox_interval: Duration::from_secs(1),
            publish: PublishPolicy::default(),
        }
    }

    /// The sources these options poll.
    pub fn sources(&self) -> Vec<Source> {
        let mut sources = Vec::new();
        if self.station_metadata {
            sources.push(Source::Stations);
        }
        if self.latest_obs {
            sources.push(Source::LatestObs);
        }
        sources.extend(self.stations.iter().cloned().map(Source::Station));
        sources.extend(self.spectral_stations.iter().cloned().map(Source::spectrum));
        sources
    }
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Sources fetched with a 200 and a usable body.
    pub fetched: usize,
    /// Sources answered 304.
    pub not_modified: usize,
    /// Sources that failed (HTTP error, timeout, unusable body).
    pub failed: usize,
    /// New observations stored.
    pub inserted: usize,
    /// Observations published (this poll's and any left in the outbox).
    pub published: usize,
    /// Bad lines and unreadable files.
    pub parse_errors: usize,
    /// Implausible values stored as null in rows that were kept.
    pub values_rejected: usize,
    /// Wave spectra stored new or changed.
    pub spectra: usize,
}

/// The worker. Cheap to clone; clones share the client, store, bus and metrics.
#[derive(Clone)]
pub struct Worker {
    /// Shared state.
    inner: Arc<Inner>,
}

struct Inner {
    /// Where observations, metadata and the schedule live.
    store: Store,
    /// Where new observations are published.
    bus: Bus,
    /// Behaviour.
    options: WorkerOptions,
    /// Counters and gauges.
    metrics: WorkerMetrics,
    /// The HTTP client.
    fetcher: Fetcher,
    /// This worker's lease owner name (host, pid, random suffix).
    owner: String,
}

/// What processing one claimed source ended with.
struct SourceResult {
    /// The update to record.
    update: SourceUpdate,
    /// Counts for the report.
    report: PollReport,
}

impl Worker {
    /// A worker on `store` and `bus` whose metrics register into `registry`.
    pub fn new(
        store: Store,
        bus: Bus,
        options: WorkerOptions,
        registry: &prometheus::Registry,
    ) -> Result<Worker, Error> {
        let metrics = WorkerMetrics::register(registry)?;
        let fetcher = Fetcher::new(options.request_timeout, options.connect_timeout)?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
        let owner = format!("{host}:{}:{:08x}", std::process::id(), rand::random::<u32>());
        Ok(Worker { inner: Arc::new(Inner { store, bus, options, metrics, fetcher, owner }) })
    }

    /// The options it runs with.
    pub fn options(&self) -> &WorkerOptions {
        &self.inner.options
    }

    /// Its metrics.
    pub fn metrics(&self) -> &WorkerMetrics {
        &self.inner.metrics
    }

    /// Its lease owner name.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// One round: fetch every due source this worker can lease, store what
    /// is new, then publish the outbox. A failed fetch is recorded (and
    /// retried after its backoff), not returned; an `Err` is the store failing.
    ///
    /// Sources are leased only as fetch slots free up (at most
    /// `concurrency` at a time), not all at once: a lease covers work in
    /// progress, never a queue that could outlast it, and several workers
    /// share a round's sources between them.
    pub async fn poll_once(&self) -> Result<PollReport, Error> {
        let inner = &self.inner;
        let sources = inner.options.sources();
        let registered: Vec<(String, String)> =
            sources.iter().map(|source| (source.key(), source.url(&inner.options.ndbc))).collect();
        inner.store.ensure_sources(&registered).await?;
        let slots = inner.options.concurrency.max(1);
        // Leases one source at a time, as `buffer_unordered` below asks for
        // one, from those not yet leased by us this round (a source is
        // fetched at most once a round). The claim is polled together with
        // the fetches in flight, so a fetch holding the store's write lock
        // (SQLite) finishes while a claim waits for it.
        let stop = Arc::new(AtomicBool::new(false));
        let keys: Vec<String> = registered.into_iter().map(|(key, _)| key).collect();
        let claims = futures::stream::unfold(keys, {
            let (store, owner, lease, stop) =
                (inner.store.clone(), inner.owner.clone(), inner.options.lease, Arc::clone(&stop));
            move |mut unclaimed| {
                let (store, owner, stop) = (store.clone(), owner.clone(), Arc::clone(&stop));
                async move {
                    if stop.load(Ordering::Relaxed) {
                        return None;
                    }
                    match store.claim_sources(&owner, &unclaimed, 1, lease).await {
                        Ok(mut claimed) => {
                            let claim = claimed.pop()?;
                            unclaimed.retain(|key| *key != claim.key);
                            Some((Ok(claim), unclaimed))
                        }
                        Err(error) => {
                            stop.store(true, Ordering::Relaxed);
                            Some((Err(Error::Store(error)), unclaimed))
                        }
                    }
                }
            }
        });
        let results = claims
            .map(|claim| match claim {
                Ok(claim) => Either::Left(self.process(claim)),
                Err(error) => Either::Right(std::future::ready(Err(error))),
            })
            .buffer_unordered(slots);
        let mut results = std::pin::pin!(results);
        let mut first_error = None;
        let mut report = PollReport::default();
        while let Some(result) = results.next().await {
            match result {
                Ok(source_report) => {
                    report.fetched += source_report.fetched;
                    report.not_modified += source_report.not_modified;
                    report.failed += source_report.failed;
                    report.inserted += source_report.inserted;
                    report.parse_errors += source_report.parse_errors;
                    report.values_rejected += source_report.values_rejected;
                    report.spectra += source_report.spectra;
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                    // Finish what is in flight, lease nothing more.
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        report.published = self.publish_pending().await?.published;
        Ok(report)
    }

    /// Publishes every pending observation, oldest first (see [`outbox::drain`]),
    /// and refreshes the outbox-depth gauge.
    pub async fn publish_pending(&self) -> Result<DrainReport, Error> {
        let inner = &self.inner;
        let report = outbox::drain(&inner.store, &inner.bus, inner.options.publish, &inner.metrics).await?;
        let depth = inner.store.outbox_depth().await?;
        inner.metrics.outbox_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
        Ok(report)
    }

    /// Fetches, parses and stores one claimed source, then records the outcome.
    async fn process(&self, claim: ClaimedSource) -> Result<PollReport, Error> {
        let inner = &self.inner;
        let Some(source) = Source::from_key(&claim.key) else {
            // A key this version does not know: leave it alone for a day.
            let update = SourceUpdate {
                next_due_in: STATIONS_INTERVAL,
                etag: claim.etag.clone(),
                last_modified: claim.last_modified.clone(),
                failures: claim.failures,
                success: false,
                error: Some(format!("unknown source key {:?}", claim.key)),
            };
            inner.store.finish_source(&claim.key, &inner.owner, &update).await?;
            return Ok(PollReport::default());
        };
        let url = source.url(&inner.options.ndbc);
        let validators = Validators { etag: claim.etag.clone(), last_modified: claim.last_modified.clone() };
        let started = Instant::now();
        let fetched = inner.fetcher.get(&url, &validators).await;
        let result = match fetched {
            Ok(Fetched::NotModified) => {
                inner.metrics.fetches.with_label_values(&[source.label(), "not_modified"]).inc();
                tracing::debug!(source = source.label(), "not modified");
                self.success(
                    &source,
                    &claim,
                    validators,
                    PollReport { not_modified: 1, ..Default::default() },
                )
            }
            Ok(Fetched::Modified { body, validators: new_validators }) => {
                match self.ingest(&source, &body).await? {
                    Ok(report) => {
                        inner.metrics.fetches.with_label_values(&[source.label(), "ok"]).inc();
                        if report.inserted > 0 {
                            observe_freshness(
                                &inner.metrics,
                                &source,
                                new_validators.last_modified.as_deref(),
                            );
                        }
                        tracing::debug!(
                            source = source.label(),
                            n_bytes = body.len(),
                            n_inserted = report.inserted,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "fetched"
                        );
                        self.success(&source, &claim, new_validators, report)
                    }
                    Err(reason) => {
                        // The body is unusable (an HTML page with 200, …): keep the
                        // old validators so the next fetch is a full one.
                        inner.metrics.fetches.with_label_values(&[source.label(), "error"]).inc();
                        self.failure(&source, &url, &claim, reason, 1)
                    }
                }
            }
            Err(error) => {
                inner.metrics.fetches.with_label_values(&[source.label(), error.outcome()]).inc();
                self.failure(&source, &url, &claim, error.to_string(), 0)
            }
        };
        if !inner.store.finish_source(&claim.key, &inner.owner, &result.update).await? {
            tracing::warn!(
                source = source.label(),
                "lease expired before the fetch finished; outcome dropped"
            );
        }
        Ok(result.report)
    }

    /// The record of a successful fetch (200 with a usable body, or 304).
    fn success(
        &self,
        source: &Source,
        claim: &ClaimedSource,
        validators: Validators,
        mut report: PollReport,
    ) -> SourceResult {
        let options = &self.inner.options;
        self.inner
            .metrics
            .last_success
            .with_label_values(&[source.label()])
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        if claim.failures > 0 {
            tracing::info!(source = source.label(), after_failures = claim.failures, "fetching works again");
        }
        if report.not_modified == 0 {
            report.fetched = 1;
        }
        let next_due_in = match source {
            Source::Stations => options.stations_interval,
            Source::LatestObs => options.latest_obs_interval,
            Source::Station(_) | Source::Spectrum { .. } => options.interval,
        };
        SourceResult {
            update: SourceUpdate {
                next_due_in,
                etag: validators.etag,
                last_modified: validators.last_modified,
                failures: 0,
                success: true,
                error: None,
            },
            report,
        }
    }

    /// The record of a failed fetch: one log line, backoff with jitter.
    fn failure(
        &self,
        source: &Source,
        url: &str,
        claim: &ClaimedSource,
        reason: String,
        parse_errors: usize,
    ) -> SourceResult {
        let options = &self.inner.options;
        let failures = claim.failures.saturating_add(1);
        let retry_in = schedule::backoff(failures, options.retry_base, options.retry_cap);
        tracing::warn!(
            source = source.label(),
            url = %url,
            error = %reason,
            failures,
            retry_in_ms = retry_in.as_millis() as u64,
            "fetch failed"
        );
        SourceResult {
            update: SourceUpdate {
                next_due_in: retry_in,
                etag: claim.etag.clone(),
                last_modified: claim.last_modified.clone(),
                failures,
                success: false,
                error: Some(reason),
            },
            report: PollReport { failed: 1, parse_errors, ..Default::default() },
        }
    }

    /// Parses a fetched body and stores what it holds. The outer `Err` is the
    /// store failing; the inner one says why the body is unusable.
    async fn ingest(&self, source: &Source, body: &[u8]) -> Result<Result<PollReport, String>, Error> {
        let inner = &self.inner;
        if let Source::Stations = source {
            return match parse_active_stations(body) {
                Ok((stations, errors)) => {
                    if !errors.is_empty() {
                        inner.metrics.parse_errors.inc_by(errors.len() as u64);
                        tracing::warn!(
                            source = source.label(),
                            n_skipped = errors.len(),
                            first = %errors[0],
                            "skipped bad station entries"
                        );
                    }
                    let n_changed = inner.store.upsert_stations(&stations).await?;
                    tracing::info!(n_stations = stations.len(), n_changed, "station metadata refreshed");
                    Ok(Ok(PollReport { parse_errors: errors.len(), ..Default::default() }))
                }
                Err(error) => {
                    inner.metrics.parse_errors.inc();
                    Ok(Err(format!("unusable station list: {error}")))
                }
            };
        }
        if let Source::Spectrum { station, .. } = source {
            return self.ingest_spectra(source, station, body).await;
        }
        let station = match source {
            Source::Station(id) => Some(id),
            _ => None,
        };
        let (complete, cut) = complete_lines(body);
        let parsed = match parse::parse(complete, station) {
            Ok(parsed) => parsed,
            Err(error) => {
                inner.metrics.parse_errors.inc();
                return Ok(Err(format!("unusable file: {error}")));
            }
        };
        let n_bad = parsed.errors.len() + usize::from(cut);
        if n_bad > 0 {
            inner.metrics.parse_errors.inc_by(n_bad as u64);
            log_bad_lines(source, &parsed.errors, cut, parsed.observations.len());
        }
        if !parsed.rejected.is_empty() {
            count_rejected_values(&inner.metrics, &parsed.rejected);
            log_rejected_values(source, &parsed.rejected, parsed.observations.len());
        }
        // A station's own file outranks latest_obs.txt when they disagree (store::Origin).
        let origin = match source {
            Source::Station(_) => Origin::StationFile,
            _ => Origin::Summary,
        };
        let new_rows =
            inner.store.upsert_observations_with(&parsed.observations, Delivery::Outbox, origin).await?;
        inner.metrics.rows_inserted.inc_by(new_rows.len() as u64);
        Ok(Ok(PollReport {
            inserted: new_rows.len(),
            parse_errors: n_bad,
            values_rejected: parsed.rejected.len(),
            ..Default::default()
        }))
    }

    /// Stores a station's spectra: `density` is its fetched `.data_spec`;
    /// the four directional files are fetched beside it (whole: NDBC writes
    /// the five together, so only the density file's validators decide
    /// whether anything changed). A sibling that fails leaves its quantity
    /// null in this round's spectra and is logged; an unusable density file
    /// fails the source.
    async fn ingest_spectra(
        &self,
        source: &Source,
        station: &StationId,
        density: &[u8],
    ) -> Result<Result<PollReport, String>, Error> {
        let inner = &self.inner;
        let url = source.url(&inner.options.ndbc);
        let Some(siblings) = spectral::quantity_siblings(&url) else {
            return Ok(Err(format!("{url} is not a spectral file URL")));
        };
        let files = siblings.map(|(quantity, url)| {
            let name = url.rsplit('/').next().unwrap_or_default().to_owned();
            spectra::SetFile { quantity, url, name }
        });
        let loaded = match spectra::load_set(&inner.fetcher, station, files, Some(density)).await {
            Ok(loaded) => loaded,
            Err(reason) => {
                inner.metrics.parse_errors.inc();
                return Ok(Err(reason));
            }
        };
        inner.metrics.parse_errors.inc_by(loaded.bad_lines as u64);
        let changed = inner.store.upsert_spectra(&loaded.spectra, Delivery::Outbox).await?;
        tracing::debug!(
            source = source.label(),
            n_spectra = loaded.spectra.len(),
            n_changed = changed.len(),
            "spectra stored"
        );
        Ok(Ok(PollReport { spectra: changed.len(), parse_errors: loaded.bad_lines, ..Default::default() }))
    }

    /// Runs the poll loop and the outbox loop until `shutdown` is cancelled,
    /// then releases this worker's leases.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            owner = %self.inner.owner,
            n_sources = self.inner.options.sources().len(),
            interval_ms = self.inner.options.interval.as_millis() as u64,
            "worker started"
        );
        tokio::join!(self.poll_loop(&shutdown), self.outbox_loop(&shutdown));
        let release = self.inner.store.release_sources(&self.inner.owner);
        match tokio::time::timeout(Duration::from_secs(1), release).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(error = %error, "could not release leases; they expire"),
            Err(_) => tracing::debug!("releasing leases timed out; they expire"),
        }
        tracing::info!("worker stopped");
    }

    async fn poll_loop(&self, shutdown: &CancellationToken) {
        let options = &self.inner.options;
        let mut store_failures = 0u32;
        loop {
            let polled = tokio::select! {
                () = shutdown.cancelled() => return,
                polled = self.poll_once() => polled,
            };
            let delay = match polled {
                Ok(report) => {
                    if store_failures > 0 {
                        tracing::info!(
                            after_failures = store_failures,
                            "store reachable again; polling resumed"
                        );
                    }
                    store_failures = 0;
                    if report.fetched + report.failed > 0 {
                        tracing::info!(
                            fetched = report.fetched,
                            not_modified = report.not_modified,
                            failed = report.failed,
                            inserted = report.inserted,
                            published = report.published,
                            "poll done"
                        );
                    }
                    options.tick
                }
                Err(error) => {
                    store_failures = store_failures.saturating_add(1);
                    let delay =
                        schedule::backoff(store_failures, Duration::from_secs(1), Duration::from_secs(60))
                            .max(Duration::from_millis(100));
                    tracing::warn!(
                        error = %error,
                        failures = store_failures,
                        retry_in_ms = delay.as_millis() as u64,
                        "poll failed"
                    );
                    delay
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn outbox_loop(&self, shutdown: &CancellationToken) {
        let options = &self.inner.options;
        let mut failures = 0u32;
        loop {
            let delay = if failures == 0 {
                options.outbox_interval
            } else {
                schedule::backoff(failures, options.outbox_interval, Duration::from_secs(30))
                    .max(options.outbox_interval)
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            let drained = tokio::select! {
                () = shutdown.cancelled() => return,
                drained = self.publish_pending() => drained,
            };
            match drained {
                Ok(DrainReport { failed: None, published }) => {
                    if failures > 0 && published > 0 {
                        tracing::info!(n_published = published, "bus reachable again; outbox published");
                    }
                    failures = 0;
                }
                Ok(DrainReport { failed: Some(_), .. }) => failures = failures.saturating_add(1),
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::debug!(error = %error, "outbox check failed");
                }
            }
        }
    }
}

/// The part of `body` made of complete lines, and whether an incomplete last
/// line was cut off (a truncated transfer must not yield a wrong value such as
/// `101` for `1013.2`).
fn complete_lines(body: &[u8]) -> (&[u8], bool) {
    match body.last() {
        None | Some(b'\n') => (body, false),
        Some(_) => match memchr::memrchr(b'\n', body) {
            Some(end) => (&body[..=end], true),
            None => (&[], true),
        },
    }
}

/// One log line per file with bad lines: how many, and the first few.
fn log_bad_lines(source: &Source, errors: &[LineError], cut: bool, n_rows: usize) {
    const SHOWN: usize = 3;
    let mut sample: Vec<String> = errors.iter().take(SHOWN).map(ToString::to_string).collect();
    if cut {
        sample.push("last line cut short (no newline at the end)".to_owned());
    }
    tracing::warn!(
        source = source.label(),
        n_bad_lines = errors.len() + usize::from(cut),
        n_rows,
        first = %sample.join("; "),
        "skipped bad lines"
    );
}

/// Adds a file's rejected values to `ingest_values_rejected_total{field}`:
/// one label lookup per field, not per value.
fn count_rejected_values(metrics: &WorkerMetrics, rejected: &[ValueRejection]) {
    let mut by_field = [0u64; N_FIELDS];
    for rejection in rejected {
        by_field[rejection.field.index()] += 1;
    }
    for field in Field::ALL {
        let n = by_field[field.index()];
        if n > 0 {
            metrics.values_rejected.with_label_values(&[field.name()]).inc_by(n);
        }
    }
}

/// One log line per file with rejected values: how many, and the first few.
fn log_rejected_values(source: &Source, rejected: &[ValueRejection], n_rows: usize) {
    const SHOWN: usize = 3;
    let sample: Vec<String> = rejected.iter().take(SHOWN).map(ToString::to_string).collect();
    tracing::warn!(
        source = source.label(),
        n_values_rejected = rejected.len(),
        n_rows,
        first = %sample.join("; "),
        "implausible values stored as null"
    );
}

/// `ingest_freshness_seconds`: now − the file's `Last-Modified` (an HTTP
/// date), when the server sent one.
fn observe_freshness(metrics: &WorkerMetrics, source: &Source, last_modified: Option<&str>) {
    let Some(written) = last_modified.and_then(|text| chrono::DateTime::parse_from_rfc2822(text).ok()) else {
        return;
    };
    let kind = match source {
        Source::LatestObs => "latest_obs",
        _ => "station",
    };
    let age = chrono::Utc::now().signed_duration_since(written).num_milliseconds().max(0) as f64 / 1000.0;
    metrics.freshness.with_label_values(&[kind]).observe(age);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_last_line_is_cut_off() {
        assert_eq!(complete_lines(b"a\nb\n"), (&b"a\nb\n"[..], false));
        assert_eq!(complete_lines(b"a\nb 101"), (&b"a\n"[..], true));
        assert_eq!(complete_lines(b"no newline"), (&b""[..], true));
        assert_eq!(complete_lines(b""), (&b""[..], false));
    }

    #[test]
    fn rejected_values_are_counted_by_field() {
        let registry = prometheus::Registry::new();
        let metrics = WorkerMetrics::register(&registry).expect("register");
        let station = StationId::parse("41002").expect("valid");
        let text = "#YY MM DD hh mm WSPD WVHT PRES\n2018 08 01 15 10 6.0 45.0 1013.0\n\
                    2018 08 01 15 20 6.0 46.0 1013.0\n2018 08 01 15 30 6.0 1.0 1200.0\n";
        let parsed = parse::parse(text.as_bytes(), Some(&station)).expect("stdmet");
        assert_eq!((parsed.observations.len(), parsed.rejected.len()), (3, 3));
        count_rejected_values(&metrics, &parsed.rejected);
        let count = |field: Field| metrics.values_rejected.with_label_values(&[field.name()]).get();
        assert_eq!(count(Field::WaveHeightM), 2);
        assert_eq!(count(Field::PressureHpa), 1);
        assert_eq!(count(Field::WindSpeedMps), 0);
        let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).expect("encode");
        let series = format!("ingest_values_rejected_total{{field=\"{}\"}} 2", Field::WaveHeightM.name());
        assert!(text.contains(&series), "{text}");
    }
}
