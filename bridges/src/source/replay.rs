//! `--replay STATION|FILE --speed X`: history played X times faster than real
//! time, oldest first. FILE is an NDBC file read through the shared parser;
//! STATION is fetched page by page from the gateway's REST API.
//!
//! A replay ends by itself: when the last observation is sent the source
//! returns and the pipeline drains and exits.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use buoycast::observation::{Observation, ObservationEvent, StationId};
use buoycast::sources::ndbc::parse;

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

/// Reads an NDBC file: observations oldest first (bad lines are logged and skipped).
pub fn load_file(path: &Path) -> Result<Vec<Observation>, ReplayError> {
    let bytes = std::fs::read(path)
        .map_err(|source| ReplayError::Read { path: path.display().to_string(), source })?;
    let station = path.file_name().and_then(|name| name.to_str()).and_then(parse::station_from_file_name);
    let parsed = parse::parse(&bytes, station.as_ref()).map_err(|error| ReplayError::NotNdbc {
        path: path.display().to_string(),
        reason: error.to_string(),
    })?;
    for error in parsed.errors.iter().take(20) {
        tracing::warn!(file = %path.display(), line = error.line, error = ?error.kind, "replay: bad line skipped");
    }
    let mut observations = parsed.observations;
    observations.sort_by_key(|observation| observation.observed_at);
    Ok(observations)
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

/// Media time of an observation: its distance from the first one, divided by `speed`.
pub fn replay_offset(first: &Observation, observation: &Observation, speed: f64) -> Duration {
    let gap_s = (observation.observed_at - first.observed_at).num_milliseconds().max(0) as f64 / 1000.0;
    Duration::try_from_secs_f64(gap_s / speed).unwrap_or(Duration::MAX)
}

/// Plays `observations` (oldest first): each one at `start + offset`. Returns
/// how many were sent (fewer when cancelled).
pub async fn play(observations: Vec<Observation>, speed: f64, ctx: SourceContext) -> usize {
    let Some(first) = observations.first().cloned() else {
        tracing::warn!("replay: nothing to play");
        return 0;
    };
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(observations.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} observations ({eta} left)")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut sent = 0;
    for observation in observations {
        if !ctx.wanted(&observation.station_id) {
            continue;
        }
        let at = replay_offset(&first, &observation, speed);
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
        let now = observation.observed_at;
        let item = Item::new(ObservationEvent::new(None, observation), at, now);
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
    let observations = match &target {
        ReplayTarget::File(path) => load_file(path)?,
        ReplayTarget::Station(station) => load_station(&source, station).await?,
    };
    tracing::info!(n_observations = observations.len(), speed, "replay loaded");
    Ok(play(observations, speed, ctx).await)
}
