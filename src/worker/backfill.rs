//! `buoycast backfill` (docs/REFERENCE.md, Worker): load the 45-day realtime2
//! history of chosen stations into the store, with a progress bar (stations
//! done, rows inserted, rate; hidden when stderr is not a terminal).
//!
//! It is resumable: upserts are idempotent, so running it again after an
//! interruption stores only what is missing. Backfilled rows are stored with
//! [`Delivery::Silent`] (never published, and never picked up by a worker's
//! outbox later) unless `publish` is set, in which case they enter the
//! outbox and are published here, oldest first.
//!
//! `days` keeps the rows within that many days of the newest row of each
//! file (for live NDBC files that is "the last `days` days"; realtime2 files
//! hold 45). Observations come only from realtime2 files.
//!
//! [`backfill_spectra`] loads a year of wave spectra from the historical
//! archives (docs/REFERENCE.md, Spectrum): the five gzipped yearly files of
//! each station, joined and stored.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use super::fetch::{Fetched, Fetcher, Validators};
use super::metrics::WorkerMetrics;
use super::outbox::{self, PublishPolicy};
use super::schedule::station_url;
use crate::bus::Bus;
use crate::observation::StationId;
use crate::sources::ndbc::{parse, spectral};
use crate::store::{Delivery, Origin, Store};

/// What to backfill.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// `ndbc.realtime_base`.
    pub realtime_base: String,
    /// The stations.
    pub stations: Vec<StationId>,
    /// Keep rows within this many days of each file's newest row.
    pub days: u32,
    /// Publish the new rows (else stored silently).
    pub publish: bool,
    /// Stations fetched at once.
    pub concurrency: usize,
    /// Bound on one request.
    pub request_timeout: Duration,
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
}

/// What a backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Stations loaded.
    pub stations_done: usize,
    /// Stations that failed (fetch or unusable file), with why.
    pub failures: Vec<(StationId, String)>,
    /// Rows in the files within the window.
    pub rows_read: usize,
    /// New rows stored.
    pub rows_inserted: usize,
    /// Rows published (with `publish`).
    pub rows_published: usize,
    /// Bad lines skipped.
    pub bad_lines: usize,
    /// Implausible values stored as null in rows that were kept.
    pub values_rejected: usize,
}

/// Runs a backfill. `bus` is used only with `options.publish`. An `Err` is
/// the store failing (rerun to resume); station failures are in the report.
pub async fn backfill(
    store: &Store,
    bus: Option<&Bus>,
    options: &BackfillOptions,
) -> Result<BackfillReport, super::Error> {
    let fetcher = Fetcher::new(options.request_timeout, Duration::from_secs(10))?;
    let bar = if options.progress && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(options.stations.len() as u64);
        let style = ProgressStyle::with_template("{bar:30} {pos}/{len} stations, {msg} [{elapsed_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    } else {
        ProgressBar::hidden()
    };
    let delivery = if options.publish { Delivery::Outbox } else { Delivery::Silent };
    let started = Instant::now();
    let mut report = BackfillReport::default();
    let mut loads = futures::stream::iter(options.stations.iter().cloned())
        .map(|station| {
            let fetcher = &fetcher;
            async move {
                let url = station_url(&options.realtime_base, &station);
                let loaded = load_station(fetcher, &url, &station, options.days).await;
                (station, url, loaded)
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    while let Some((station, url, loaded)) = loads.next().await {
        match loaded {
            Ok(Loaded { rows, bad_lines, values_rejected }) => {
                report.rows_read += rows.len();
                report.bad_lines += bad_lines;
                report.values_rejected += values_rejected;
                let inserted = store.upsert_observations_with(&rows, delivery, Origin::StationFile).await?;
                report.rows_inserted += inserted.len();
                report.stations_done += 1;
                tracing::info!(
                    station = %station,
                    n_rows = rows.len(),
                    n_inserted = inserted.len(),
                    n_bad_lines = bad_lines,
                    n_values_rejected = values_rejected,
                    "station backfilled"
                );
            }
            Err(reason) => {
                tracing::warn!(station = %station, url = %url, error = %reason, "backfill of a station failed");
                report.failures.push((station, reason));
            }
        }
        bar.inc(1);
        let rate = report.rows_inserted as f64 / started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!("{} rows inserted, {rate:.0} rows/s", report.rows_inserted));
    }
    drop(loads);
    bar.finish_and_clear();
    if options.publish {
        if let Some(bus) = bus {
            let metrics = WorkerMetrics::register(&prometheus::Registry::new())?;
            let drained = outbox::drain(store, bus, PublishPolicy::default(), &metrics).await?;
            report.rows_published = drained.published;
            if let Some(error) = drained.failed {
                tracing::warn!(error = %error, "some backfilled rows are not published yet; a running worker will publish them");
            }
        }
    }
    Ok(report)
}

/// One station's file, parsed.
struct Loaded {
    /// Its rows within the window.
    rows: Vec<crate::observation::Observation>,
    /// Bad lines in the whole file (a cut last line included).
    bad_lines: usize,
    /// Implausible values stored as null, in the whole file.
    values_rejected: usize,
}

/// Fetches and parses one station's file: its rows within `days` of its
/// newest row, and the number of bad lines and rejected values (logged once
/// per file, as by the worker).
async fn load_station(
    fetcher: &Fetcher,
    url: &str,
    station: &StationId,
    days: u32,
) -> Result<Loaded, String> {
    let body = match fetcher.get(url, &Validators::default()).await.map_err(|error| error.to_string())? {
        Fetched::Modified { body, .. } => body,
        Fetched::NotModified => return Err("unexpected 304 to an unconditional request".to_owned()),
    };
    let (complete, cut) = super::complete_lines(&body);
    let parsed = parse::parse(complete, Some(station)).map_err(|error| format!("unusable file: {error}"))?;
    if !parsed.rejected.is_empty() {
        let source = super::Source::Station(station.clone());
        super::log_rejected_values(&source, &parsed.rejected, parsed.observations.len());
    }
    let newest = parsed.observations.iter().map(|row| row.observed_at).max();
    let rows = match newest {
        Some(newest) => {
            let from = newest - chrono::Duration::days(i64::from(days));
            parsed.observations.into_iter().filter(|row| row.observed_at > from).collect()
        }
        None => Vec::new(),
    };
    Ok(Loaded {
        rows,
        bad_lines: parsed.errors.len() + usize::from(cut),
        values_rejected: parsed.rejected.len(),
    })
}

/// A year of spectra to load.
#[derive(Debug, Clone)]
pub struct SpectraBackfillOptions {
    /// `ndbc.historical_base`.
    pub historical_base: String,
    /// The stations.
    pub stations: Vec<StationId>,
    /// The year.
    pub year: i32,
    /// Bound on one request.
    pub request_timeout: Duration,
}

/// What a spectra backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpectraBackfillReport {
    /// Stations loaded.
    pub stations_done: usize,
    /// Stations that failed (no density file, unusable file), with why.
    pub failures: Vec<(StationId, String)>,
    /// Spectra joined from the files.
    pub spectra_read: usize,
    /// Spectra stored new or changed.
    pub spectra_stored: usize,
    /// Bad lines skipped.
    pub bad_lines: usize,
}

/// Loads `options.year` of each station's spectra. A directional file that
/// is missing or unusable leaves its quantity null (logged); a missing
/// density file fails the station. An `Err` is the store failing.
pub async fn backfill_spectra(
    store: &Store,
    options: &SpectraBackfillOptions,
) -> Result<SpectraBackfillReport, super::Error> {
    let fetcher = Fetcher::new(options.request_timeout, Duration::from_secs(10))?;
    let mut report = SpectraBackfillReport::default();
    for station in &options.stations {
        // The archives: `{historical_base}/{dir}/{id}{letter}{year}.txt.gz`.
        let files = spectral::FILE_NAMES.map(|names| {
            let name = format!("{station}{}{}.txt", char::from(names.letter), options.year);
            let url =
                format!("{}/{}/{name}.gz", options.historical_base.trim_end_matches('/'), names.archive);
            super::spectra::SetFile { quantity: names.quantity, url, name }
        });
        let loaded = match super::spectra::load_set(&fetcher, station, files, None).await {
            Ok(loaded) => loaded,
            Err(reason) => {
                tracing::warn!(station = %station, error = %reason, "spectra backfill of a station failed");
                report.failures.push((station.clone(), reason));
                continue;
            }
        };
        report.bad_lines += loaded.bad_lines;
        let stored = store.upsert_spectra(&loaded.spectra, Delivery::Silent).await?;
        tracing::info!(station = %station, year = options.year, n_spectra = loaded.spectra.len(), n_stored = stored.len(), "spectra backfilled");
        report.spectra_read += loaded.spectra.len();
        report.spectra_stored += stored.len();
        report.stations_done += 1;
    }
    Ok(report)
}
