//! What the worker polls and when: the [`Source`]s (the all-stations
//! `latest_obs.txt`, the `activestations.xml` metadata, one realtime2
//! file per configured station, and the spectral files of each spectral
//! station), their keys in the store's `ingest_sources`
//! table, their URLs, and the retry delay after failures (exponential
//! backoff with equal jitter, capped).
//!
//! It deliberately does no I/O: leases and due times live in the store
//! (`store/ingest.rs`), fetching in `fetch.rs`.

use std::time::Duration;

use crate::config::NdbcConfig;
use crate::observation::StationId;

/// One thing the worker polls.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// `ndbc.latest_obs_url`: the newest row of every station in one file.
    LatestObs,
    /// `ndbc.stations_url`: station metadata (refreshed daily).
    Stations,
    /// `{ndbc.realtime_base}/{ID}.txt`: one station's 45-day file.
    Station(StationId),
    /// `{ndbc.realtime_base}/{ID}.data_spec` and its four directional
    /// siblings: one station's wave spectra (built with [`Source::spectrum`]).
    Spectrum {
        /// The station.
        station: StationId,
        /// `{id}.spectrum`, kept so [`Source::label`] can lend it.
        label: String,
    },
}

impl Source {
    /// A station's wave spectra.
    pub fn spectrum(station: StationId) -> Source {
        let label = format!("{station}.spectrum");
        Source::Spectrum { station, label }
    }

    /// Its key in `ingest_sources`: `latest_obs`, `stations`, `station:{id}`,
    /// `spectrum:{id}`.
    pub fn key(&self) -> String {
        match self {
            Source::LatestObs => "latest_obs".to_owned(),
            Source::Stations => "stations".to_owned(),
            Source::Station(id) => format!("station:{id}"),
            Source::Spectrum { station, .. } => format!("spectrum:{station}"),
        }
    }

    /// The source a key names, if any.
    pub fn from_key(key: &str) -> Option<Source> {
        match key {
            "latest_obs" => Some(Source::LatestObs),
            "stations" => Some(Source::Stations),
            _ => {
                let (kind, id) = key.split_once(':')?;
                let id = StationId::parse(id).ok()?;
                match kind {
                    "station" => Some(Source::Station(id)),
                    "spectrum" => Some(Source::spectrum(id)),
                    _ => None,
                }
            }
        }
    }

    /// The label in metrics and logs: `latest_obs`, `stations`, the station
    /// id, or `{id}.spectrum`.
    pub fn label(&self) -> &str {
        match self {
            Source::LatestObs => "latest_obs",
            Source::Stations => "stations",
            Source::Station(id) => id.as_str(),
            Source::Spectrum { label, .. } => label,
        }
    }

    /// Where to fetch it. Realtime file names are the upper-case id
    /// (`TPLM2.txt`); a spectrum's URL is its density file's.
    pub fn url(&self, ndbc: &NdbcConfig) -> String {
        match self {
            Source::LatestObs => ndbc.latest_obs_url.clone(),
            Source::Stations => ndbc.stations_url.clone(),
            Source::Station(id) => station_url(&ndbc.realtime_base, id),
            Source::Spectrum { station, .. } => realtime_url(&ndbc.realtime_base, station, "data_spec"),
        }
    }
}

/// `{base}/{ID}.txt` with the id in upper case.
pub fn station_url(realtime_base: &str, id: &StationId) -> String {
    realtime_url(realtime_base, id, "txt")
}

/// `{base}/{ID}.{extension}` with the id in upper case.
pub fn realtime_url(realtime_base: &str, id: &StationId, extension: &str) -> String {
    format!("{}/{}.{extension}", realtime_base.trim_end_matches('/'), id.as_str().to_ascii_uppercase())
}

/// The delay before retrying after `failures` failures in a row (at least 1):
/// [`crate::backoff::delay`], from half to all of `min(cap, base * 2^(failures-1))`.
pub fn backoff(failures: u32, base: Duration, cap: Duration) -> Duration {
    crate::backoff::delay(failures, base, cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_urls_use_upper_case_ids() {
        let tplm2 = Source::Station(StationId::parse("TPLM2").expect("valid id"));
        let spectrum = Source::spectrum(StationId::parse("41002").expect("valid id"));
        assert_eq!((spectrum.key().as_str(), spectrum.label()), ("spectrum:41002", "41002.spectrum"));
        for source in [Source::LatestObs, Source::Stations, tplm2.clone(), spectrum] {
            assert_eq!(Source::from_key(&source.key()), Some(source.clone()));
        }
        assert_eq!(tplm2.key(), "station:tplm2");
        assert_eq!(tplm2.label(), "tplm2");
        assert_eq!(
            station_url("https://www.ndbc.noaa.gov/data/realtime2/", &StationId::parse("tplm2").expect("id")),
            "https://www.ndbc.noaa.gov/data/realtime2/TPLM2.txt"
        );
        assert_eq!(Source::from_key("station:not valid!"), None);
        assert_eq!(Source::from_key("other"), None);
    }

    #[test]
    fn backoff_is_capped_and_jittered_in_the_upper_half_of_the_exponential_ceiling() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        for failures in 1u32..40 {
            let ceiling = base.saturating_mul(1u32 << failures.saturating_sub(1).min(30)).min(cap);
            for _ in 0..20 {
                let delay = backoff(failures, base, cap);
                assert!(delay <= ceiling && delay >= ceiling / 2, "failures {failures}: {delay:?}");
            }
        }
        // Draws spread over the range rather than sitting at one value.
        let draws: std::collections::HashSet<Duration> = (0..50).map(|_| backoff(10, base, cap)).collect();
        assert!(draws.len() > 10, "{draws:?}");
        assert_eq!(backoff(3, Duration::ZERO, cap), Duration::ZERO);
    }
}
