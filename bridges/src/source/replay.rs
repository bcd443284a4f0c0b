//! `--replay STATION|FILE --speed X`: history played X times faster than real
//! time, oldest first. FILE is an NDBC file read through the shared parser;
//! STATION is fetched page by page from the gateway's REST API.
//!
//! A spectral FILE (`41010.data_spec`, `41010w2019part.txt`, or any of its
//! set) plays the spectra joined from the five quantity files beside it.
//!
//! A replay ends by itself: when the last observation is sent the source
//! returns and the pipeline drains and exits.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use buoycast::observation::{Observation, ObservationEvent, StationId};
use buoycast::sources::ndbc::{parse, spectral};
use buoycast::spectrum::{join, Quantity, Spectrum};

use super::{Item, SourceContext};

/// What to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayTarget {
    /// An NDBC file.
    File(std::path::PathBuf),
    /// A station's history from the gateway.
    Station(StationId),
}

/// Errors loading history.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Neither a file nor a station id.
    #[error("--replay {0:?}: no such file, and not a station id")]
    Target(String),
    /// The file could not be read.
    #[error("--replay {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an NDBC file.
    #[error("--replay {path}: {reason}")]
    NotNdbc {
        /// The file.
        path: String,
        /// The parser's reason.
        reason: String,
    },
    /// The gateway's REST API failed.
    #[error("--replay {station}: {url}: {reason}")]
    Rest {
        /// The station.
        station: String,
        /// The page URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl ReplayTarget {
    /// A path that exists is a file; otherwise it must be a station id.
    pub fn parse(raw: &str) -> Result<ReplayTarget, ReplayError> {
        let path = Path::new(raw);
        if path.is_file() {
            return Ok(ReplayTarget::File(path.to_path_buf()));
        }
        StationId::parse(raw).map(ReplayTarget::Station).map_err(|_| ReplayError::Target(raw.to_owned()))
    }
}

/// One thing a replay plays.
#[derive(Debug, Clone)]
pub enum Report {
    Observation(Observation),
    /// A wave spectrum, joined from its set of quantity files.
    Spectrum(Spectrum),
}

impl Report {
    fn station(&self) -> &StationId {
        match self {
            Report::Observation(observation) => &observation.station_id,
            Report::Spectrum(spectrum) => &spectrum.station_id,
        }
    }

    fn time(&self) -> chrono::DateTime<chrono::Utc> {
        match self {
            Report::Observation(observation) => observation.observed_at,
            Report::Spectrum(spectrum) => spectrum.timestamp,
        }
    }
}

/// Reads an NDBC file, oldest first (bad lines are logged and skipped): its
/// observations, or for a spectral file the spectra of its set (the five
/// quantity files beside it, docs/REFERENCE.md, Spectrum).
pub fn load_file(path: &Path) -> Result<Vec<Report>, ReplayError> {
    let bytes = std::fs::read(path)
        .map_err(|source| ReplayError::Read { path: path.display().to_string(), source })?;
    let station = path.file_name().and_then(|name| name.to_str()).and_then(parse::station_from_file_name);
    let parsed = match parse::parse(&bytes, station.as_ref()) {
        Ok(parsed) => parsed,
        Err(parse::FileError::NotStdmet { .. })
            if station.is_some() && spectral::quantity_siblings(&path.to_string_lossy()).is_some() =>
        {
            return load_spectra(path, station.as_ref().expect("checked"));
        }
        Err(error) => {
            return Err(ReplayError::NotNdbc { path: path.display().to_string(), reason: error.to_string() })
        }
    };
    for error in parsed.errors.iter().take(20) {
        tracing::warn!(file = %path.display(), line = error.line, error = ?error.kind, "replay: bad line skipped");
    }
    let mut observations = parsed.observations;
    observations.sort_by_key(|observation| observation.observed_at);
    Ok(observations.into_iter().map(Report::Observation).collect())
}

/// The spectra of the set `path` belongs to, oldest first. A missing
/// sibling is fine (its quantity is null in every band); the density file
/// must be there.
fn load_spectra(path: &Path, station: &StationId) -> Result<Vec<Report>, ReplayError> {
    let not_spectral = |reason: String| ReplayError::NotNdbc { path: path.display().to_string(), reason };
    let siblings = spectral::quantity_siblings(&path.to_string_lossy())
        .ok_or_else(|| not_spectral("not a spectral file name".into()))?;
    let mut rows = Vec::new();
    let mut found = Vec::new();
    for (quantity, name) in siblings {
        let sibling = Path::new(&name);
        let Ok(bytes) = std::fs::read(sibling) else {
            if quantity == Quantity::Density {
                return Err(not_spectral(format!("a spectrum needs its density file, {name}, beside it")));
            }
            continue;
        };
        match spectral::parse(&bytes, station, sibling.file_name().and_then(|n| n.to_str())) {
            Ok(spectral::SpectralFile::Quantity(parsed)) => {
                for error in parsed.errors.iter().take(20) {
                    tracing::warn!(file = %name, line = error.line, reason = %error.reason, "replay: bad line skipped");
                }
                found.push(quantity.name());
                rows.extend(parsed.rows);
            }
            Ok(spectral::SpectralFile::Summary(_)) => {}
            Err(error) => return Err(not_spectral(format!("{name}: {error}"))),
        }
    }
    let spectra = join(rows);
    tracing::info!(file = %path.display(), quantities = ?found, n_spectra = spectra.len(), "replay: spectra loaded");
    Ok(spectra.into_iter().map(Report::Spectrum).collect())
}

/// Page size asked of the gateway.
const PAGE_LIMIT: u32 = 1000;

/// Fetches a station's whole history from `GET {source}/v1/observations/by-station/{id}`.
pub async fn load_station(source: &str, station: &StationId) -> Result<Vec<Observation>, ReplayError> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|error| rest_error(station, source, error.to_string()))?;
    let base = source.trim_end_matches('/');
    let mut observations = Vec::new();
    let mut page = 1u32;
    loop {
        let url = format!("{base}/v1/observations/by-station/{station}?page={page}&limit={PAGE_LIMIT}");
        let response =
            client.get(&url).send().await.map_err(|error| rest_error(station, &url, error.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(rest_error(
                station,
                &url,
                format!("status {status}: {}", body.chars().take(200).collect::<String>()),
            ));
        }
        let body: serde_json::Value =
            response.json().await.map_err(|error| rest_error(station, &url, error.to_string()))?;
        let rows = body
            .get("data")
            .and_then(|d| d.as_array())
            .ok_or_else(|| rest_error(station, &url, "no data array".into()))?;
        for row in rows {
            let mut row = row.clone();
            if let Some(object) = row.as_object_mut() {
                if let Some(time) = object.remove("observedAt") {
                    object.insert("timestamp".to_owned(), time);
                }
                if !object.contains_key("stationId") {
                    object.insert("stationId".to_owned(), serde_json::Value::String(station.to_string()));
                }
            }
            match ObservationEvent::decode_bus(row.to_string().as_bytes()) {
                Ok(event) => observations.push(event.observation),
                Err(error) => tracing::warn!(url = %url, error = %error, "replay: row skipped"),
            }
        }
        let meta = body.get("meta");
        let total = meta.and_then(|m| m.get("total")).and_then(|t| t.as_u64());
        let limit =
            meta.and_then(|m| m.get("limit")).and_then(|l| l.as_u64()).unwrap_or(u64::from(PAGE_LIMIT));
        let done = rows.is_empty() || total.map_or(true, |total| u64::from(page) * limit >= total);
        if done {
            break;
        }
        page += 1;
    }
    observations.sort_by_key(|observation| observation.observed_at);
    observations.dedup_by(|a, b| a.observed_at == b.observed_at);
    Ok(observations)
}

fn rest_error(station: &StationId, url: &str, reason: String) -> ReplayError {
    ReplayError::Rest { station: station.to_string(), url: url.to_owned(), reason }
}

/// Media time of a report at `time`: its distance from the first one (at `first`), divided by `speed`.
pub fn replay_offset(
    first: chrono::DateTime<chrono::Utc>,
    time: chrono::DateTime<chrono::Utc>,
    speed: f64,
) -> Duration {
    let gap_s = (time - first).num_milliseconds().max(0) as f64 / 1000.0;
    Duration::try_from_secs_f64(gap_s / speed).unwrap_or(Duration::MAX)
}

/// Plays `reports` (oldest first): each one at `start + offset`. Returns
/// how many were sent (fewer when cancelled).
pub async fn play(reports: Vec<Report>, speed: f64, ctx: SourceContext) -> usize {
    let Some(first) = reports.first().map(Report::time) else {
        tracing::warn!("replay: nothing to play");
        return 0;
    };
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(reports.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} observations ({eta} left)")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut sent = 0;
    for report in reports {
        if !ctx.wanted(report.station()) {
            continue;
        }
        let now = report.time();
        let at = replay_offset(first, now, speed);
        let due = ctx.start.checked_add(at);
        if let Some(due) = due {
            if due > tokio::time::Instant::now() {
                tokio::select! {
                    () = ctx.shutdown.cancelled() => break,
                    () = tokio::time::sleep_until(due) => {}
                }
            }
        }
        if ctx.shutdown.is_cancelled() {
            break;
        }
        let item = match report {
            Report::Observation(observation) => Item::new(ObservationEvent::new(None, observation), at, now),
            Report::Spectrum(spectrum) => Item::from_spectrum(spectrum, at, now),
        };
        if ctx.items_tx.send(item).await.is_err() {
            break;
        }
        sent += 1;
        if let Some(bar) = &progress {
            bar.inc(1);
        }
    }
    if let Some(bar) = progress {
        bar.finish();
    }
    sent
}

/// Loads and plays a replay target.
pub async fn run(
    target: ReplayTarget,
    source: String,
    speed: f64,
    ctx: SourceContext,
) -> anyhow::Result<usize> {
    let reports = match &target {
        ReplayTarget::File(path) => load_file(path)?,
        ReplayTarget::Station(station) => {
            load_station(&source, station).await?.into_iter().map(Report::Observation).collect()
        }
    };
    tracing::info!(n_reports = reports.len(), speed, "replay loaded");
    Ok(play(reports, speed, ctx).await)
}
