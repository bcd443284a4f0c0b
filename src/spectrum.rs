//! Directional wave spectra (docs/REFERENCE.md, Spectrum): the five
//! per-band quantities NDBC publishes, one file each, joined by (station,
//! time) into one [`Spectrum`], and the values derived from it. No I/O.
//!
//! NDBC's directional spectrum is energy density S(f) in m²/Hz per frequency
//! band and, for each band, the mean direction α1, the principal direction
//! α2 (degrees, where the waves come from) and the normalised polar
//! coordinates r1 and r2 (0–1) of the Fourier coefficients. The band layout
//! is whatever the row says: 47 bands from 0.02 to 0.485 Hz today, 38 from
//! 0.03 Hz in the 1990s; nothing here assumes either.

use chrono::{DateTime, Utc};

use serde::Serialize;

use crate::observation::{serialize_time, SchemaError, StationId};

/// One of the five per-band quantities of a directional spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quantity {
    /// Spectral energy density, m²/Hz (`.data_spec`, historical `w`).
    Density,
    /// Mean wave direction α1, degrees (`.swdir`, historical `d`).
    Alpha1,
    /// Principal wave direction α2, degrees (`.swdir2`, historical `i`).
    Alpha2,
    /// First normalised polar coordinate r1, 0–1 (`.swr1`, historical `j`, × 100 there).
    R1,
    /// Second normalised polar coordinate r2, 0–1 (`.swr2`, historical `k`, × 100 there).
    R2,
}

impl Quantity {
    /// Every quantity, in the order a spectrum's bands list them.
    pub const ALL: [Quantity; 5] =
        [Quantity::Density, Quantity::Alpha1, Quantity::Alpha2, Quantity::R1, Quantity::R2];

    /// The wire name: `density`, `alpha1`, `alpha2`, `r1`, `r2`.
    pub const fn name(self) -> &'static str {
        match self {
            Quantity::Density => "density",
            Quantity::Alpha1 => "alpha1",
            Quantity::Alpha2 => "alpha2",
            Quantity::R1 => "r1",
            Quantity::R2 => "r2",
        }
    }

    /// The quantity of a wire name.
    pub fn from_name(name: &str) -> Option<Quantity> {
        Quantity::ALL.into_iter().find(|q| q.name() == name)
    }

    /// The plausible range of a value (after scaling r1, r2 to 0–1). Density
    /// has no ceiling below NDBC's 999 marker (a hurricane's narrow peak can
    /// reach hundreds of m²/Hz).
    pub const fn valid_range(self) -> (f64, f64) {
        match self {
            Quantity::Density => (0.0, 999.0),
            Quantity::Alpha1 | Quantity::Alpha2 => (0.0, 360.0),
            Quantity::R1 | Quantity::R2 => (0.0, 1.0),
        }
    }
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of one spectral file: one quantity over the row's bands.
/// Serialized as `buoycast parse` prints it (docs/REFERENCE.md, Command
/// line): `{"stationId","timestamp","quantity","sepFreqHz"?,"bands":[{"freqHz","value"}]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpectralRow {
    pub station_id: StationId,
    #[serde(serialize_with = "serialize_time")]
    pub timestamp: DateTime<Utc>,
    pub quantity: Quantity,
    /// The separation frequency between swell and wind sea, Hz: `None` when
    /// the file has no such column (every file but realtime `.data_spec`),
    /// `Some(None)` when the column holds NDBC's missing marker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sep_freq_hz: Option<Option<f64>>,
    /// (frequency in Hz, value or `None` when missing), in file order.
    #[serde(serialize_with = "band_values")]
    pub bands: Vec<(f64, Option<f64>)>,
}

impl SpectralRow {
    /// The row as `buoycast parse` prints it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A row's bands as `[{"freqHz","value"}]`.
fn band_values<S: serde::Serializer>(bands: &[(f64, Option<f64>)], serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct BandValue {
        freq_hz: f64,
        value: Option<f64>,
    }
    serializer.collect_seq(bands.iter().map(|&(freq_hz, value)| BandValue { freq_hz, value }))
}

/// One band of a joined spectrum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Centre frequency, Hz.
    pub freq_hz: f64,
    /// Energy density, m²/Hz.
    pub density: Option<f64>,
    /// Mean direction, degrees.
    pub alpha1: Option<f64>,
    /// Principal direction, degrees.
    pub alpha2: Option<f64>,
    /// 0–1.
    pub r1: Option<f64>,
    /// 0–1.
    pub r2: Option<f64>,
}

impl Band {
    /// The band's value of one quantity.
    pub fn get(&self, quantity: Quantity) -> Option<f64> {
        match quantity {
            Quantity::Density => self.density,
            Quantity::Alpha1 => self.alpha1,
            Quantity::Alpha2 => self.alpha2,
            Quantity::R1 => self.r1,
            Quantity::R2 => self.r2,
        }
    }

    fn set(&mut self, quantity: Quantity, value: Option<f64>) {
        let slot = match quantity {
            Quantity::Density => &mut self.density,
            Quantity::Alpha1 => &mut self.alpha1,
            Quantity::Alpha2 => &mut self.alpha2,
            Quantity::R1 => &mut self.r1,
            Quantity::R2 => &mut self.r2,
        };
        *slot = value;
    }

    /// Directional spread, degrees, from r1 (Kuik et al. 1988):
    /// σ = √(2 (1 − r1)) radians.
    pub fn spread_deg(&self) -> Option<f64> {
        self.r1.map(|r1| (2.0 * (1.0 - r1.clamp(0.0, 1.0))).sqrt().to_degrees())
    }
}

/// A directional wave spectrum: one station at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrum {
    pub station_id: StationId,
    pub timestamp: DateTime<Utc>,
    /// Swell / wind-sea separation frequency, Hz, when NDBC gives it.
    pub sep_freq_hz: Option<f64>,
    /// In ascending file order (NDBC's is ascending frequency).
    pub bands: Vec<Band>,
}

/// Frequencies closer than this are the same band (NDBC writes the same
/// decimals in every file of a time, so this only absorbs parsing noise).
const SAME_FREQ_HZ: f64 = 1e-6;

/// Joins rows of the five quantities by (station, time) into spectra, sorted
/// by station then time. The density row of a time defines its bands; the
/// other quantities fill the bands of the same frequency (a band the density
/// row lacks is dropped), and a time without a density row makes no
/// spectrum: without energy there is nothing to hear. When a quantity comes
/// twice for one time, the later row wins.
pub fn join(rows: impl IntoIterator<Item = SpectralRow>) -> Vec<Spectrum> {
    let mut by_key: std::collections::BTreeMap<(StationId, DateTime<Utc>), Vec<SpectralRow>> =
        std::collections::BTreeMap::new();
    for row in rows {
        by_key.entry((row.station_id.clone(), row.timestamp)).or_default().push(row);
    }
    let mut spectra = Vec::with_capacity(by_key.len());
    for ((station_id, timestamp), rows) in by_key {
        let Some(density) = rows.iter().rev().find(|row| row.quantity == Quantity::Density) else {
            continue;
        };
        let mut bands: Vec<Band> = density
            .bands
            .iter()
            .map(|&(freq_hz, value)| Band {
                freq_hz,
                density: value,
                alpha1: None,
                alpha2: None,
                r1: None,
                r2: None,
            })
            .collect();
        for row in rows.iter().filter(|row| row.quantity != Quantity::Density) {
            for &(freq, value) in &row.bands {
                if let Some(band) = bands.iter_mut().find(|band| (band.freq_hz - freq).abs() < SAME_FREQ_HZ) {
                    band.set(row.quantity, value);
                }
            }
        }
        spectra.push(Spectrum { station_id, timestamp, sep_freq_hz: density.sep_freq_hz.flatten(), bands });
    }
    spectra
}

/// Values derived from a spectrum (docs/REFERENCE.md, Spectrum, Derived
/// values). Moments m_n = Σ fⁿ S(f) Δf over the bands with a density, Δf a
/// band's width: from the midpoint with the band below to the midpoint with
/// the band above (the first and last bands mirror their inner half).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Derived {
    /// 4 √m0, metres.
    pub significant_height_m: Option<f64>,
    /// The centre frequency of the band with the most density, Hz.
    pub peak_freq_hz: Option<f64>,
    /// 1 / peak frequency, seconds.
    pub peak_period_s: Option<f64>,
    /// m0 / m1 (Tm01), seconds.
    pub mean_period_s: Option<f64>,
    /// Σ S Δf over the bands below the separation frequency, m².
    pub swell_energy_m2: Option<f64>,
    /// Σ S Δf over the bands at or above it, m².
    pub wind_sea_energy_m2: Option<f64>,
}

impl Spectrum {
    /// Each band's width Δf, Hz (see [`Derived`]).
    pub fn band_widths(&self) -> Vec<f64> {
        let f: Vec<f64> = self.bands.iter().map(|band| band.freq_hz).collect();
        let n = f.len();
        (0..n)
            .map(|i| match (i.checked_sub(1).map(|j| f[j]), f.get(i + 1)) {
                (Some(below), Some(above)) => (above - below) / 2.0,
                (None, Some(above)) => above - f[i],
                (Some(below), None) => f[i] - below,
                (None, None) => 0.0,
            })
            .collect()
    }

    /// The derived values; each is `None` when the bands do not give it
    /// (no density at all, no separation frequency, zero energy).
    pub fn derived(&self) -> Derived {
        let widths = self.band_widths();
        let (mut m0, mut m1, mut swell, mut wind, mut any) = (0.0, 0.0, 0.0, 0.0, false);
        let mut peak: Option<(f64, f64)> = None;
        for (band, width) in self.bands.iter().zip(&widths) {
            let Some(s) = band.density else { continue };
            any = true;
            m0 += s * width;
            m1 += band.freq_hz * s * width;
            if self.sep_freq_hz.is_some_and(|sep| band.freq_hz < sep) {
                swell += s * width;
            } else {
                wind += s * width;
            }
            if peak.map_or(true, |(_, best)| s > best) {
                peak = Some((band.freq_hz, s));
            }
        }
        if !any {
            return Derived::default();
        }
        let peak_freq_hz = peak.filter(|&(_, s)| s > 0.0).map(|(f, _)| f);
        let with_sep = |energy: f64| self.sep_freq_hz.map(|_| energy);
        Derived {
            significant_height_m: Some(4.0 * m0.sqrt()),
            peak_freq_hz,
            peak_period_s: peak_freq_hz.map(|f| 1.0 / f),
            mean_period_s: (m1 > 0.0).then(|| m0 / m1),
            swell_energy_m2: with_sep(swell),
            wind_sea_energy_m2: with_sep(wind),
        }
    }

    /// The spectrum as the streams and REST send it (docs/REFERENCE.md,
    /// Spectrum; its [`Serialize`] form as a string).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The bands as the store keeps them: JSON columns of equal length,
    /// `{"freqHz":[…],"density":[…],"alpha1":[…],"alpha2":[…],"r1":[…],"r2":[…]}`.
    pub fn bands_to_columns(&self) -> String {
        let column = |get: fn(&Band) -> Option<f64>| self.bands.iter().map(get).collect();
        let columns = Columns {
            freq_hz: self.bands.iter().map(|band| band.freq_hz).collect(),
            density: column(|band| band.density),
            alpha1: column(|band| band.alpha1),
            alpha2: column(|band| band.alpha2),
            r1: column(|band| band.r1),
            r2: column(|band| band.r2),
        };
        serde_json::to_string(&columns).unwrap_or_default()
    }

    /// Bands from [`Spectrum::bands_to_columns`]' form; `None` when it is not
    /// that (columns missing or of different lengths, a frequency null).
    pub fn bands_from_columns(text: &str) -> Option<Vec<Band>> {
        let c: Columns = serde_json::from_str(text).ok()?;
        let n = c.freq_hz.len();
        if [c.density.len(), c.alpha1.len(), c.alpha2.len(), c.r1.len(), c.r2.len()]
            .iter()
            .any(|len| *len != n)
        {
            return None;
        }
        Some(
            (0..n)
                .map(|i| Band {
                    freq_hz: c.freq_hz[i],
                    density: c.density[i],
                    alpha1: c.alpha1[i],
                    alpha2: c.alpha2[i],
                    r1: c.r1[i],
                    r2: c.r2[i],
                })
                .collect(),
        )
    }
}

impl Spectrum {
    /// The largest band count a bus message may carry (NDBC sends 47; this
    /// bounds what a hostile message can make every subscriber allocate).
    pub const MAX_BANDS: usize = 512;

    /// A spectrum from a bus message's fields (its [`Serialize`] form; the
    /// derived values in it are ignored and computed again). A band needs a
    /// positive finite `freqHz`; a value that is not a finite number in its
    /// quantity's range (density ≥ 0, directions 0–360, r1/r2 0–1) becomes
    /// null, as a bad measurement does in an observation.
    pub fn from_wire(
        station_id: StationId,
        timestamp: DateTime<Utc>,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Spectrum, SchemaError> {
        let bad = |reason: String| SchemaError::BadValue { field: "bands", reason };
        let Some(serde_json::Value::Array(wire_bands)) = fields.get("bands") else {
            return Err(SchemaError::Missing("bands"));
        };
        if wire_bands.len() > Self::MAX_BANDS {
            return Err(bad(format!("{} bands, at most {} allowed", wire_bands.len(), Self::MAX_BANDS)));
        }
        let mut bands = Vec::with_capacity(wire_bands.len());
        for (i, band) in wire_bands.iter().enumerate() {
            let freq_hz = band
                .get("freqHz")
                .and_then(serde_json::Value::as_f64)
                .filter(|f| f.is_finite() && *f > 0.0)
                .ok_or_else(|| bad(format!("band {i} has no positive freqHz")))?;
            let value = |key: &str, range: std::ops::RangeInclusive<f64>| {
                band.get(key).and_then(serde_json::Value::as_f64).filter(|v| range.contains(v))
            };
            bands.push(Band {
                freq_hz,
                density: value("density", 0.0..=f64::MAX),
                alpha1: value("alpha1", 0.0..=360.0),
                alpha2: value("alpha2", 0.0..=360.0),
                r1: value("r1", 0.0..=1.0),
                r2: value("r2", 0.0..=1.0),
            });
        }
        let sep_freq_hz =
            fields.get("sepFreqHz").and_then(serde_json::Value::as_f64).filter(|f| f.is_finite() && *f > 0.0);
        Ok(Spectrum { station_id, timestamp, sep_freq_hz, bands })
    }
}

/// The store's form of a spectrum's bands (one column per quantity).
#[derive(Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Columns {
    freq_hz: Vec<f64>,
    density: Vec<Option<f64>>,
    alpha1: Vec<Option<f64>>,
    alpha2: Vec<Option<f64>>,
    r1: Vec<Option<f64>>,
    r2: Vec<Option<f64>>,
}

/// `{"stationId","timestamp","sepFreqHz","bands":[{"freqHz","density",
/// "alpha1","alpha2","r1","r2","spreadDeg"}],"significantHeightM",
/// "peakFreqHz","peakPeriodS","meanPeriodS","swellEnergyM2","windSeaEnergyM2"}`,
/// keys in that order.
impl Serialize for Spectrum {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            station_id: &'a StationId,
            #[serde(serialize_with = "serialize_time")]
            timestamp: &'a DateTime<Utc>,
            sep_freq_hz: Option<f64>,
            bands: Vec<BandOut>,
            significant_height_m: Option<f64>,
            peak_freq_hz: Option<f64>,
            peak_period_s: Option<f64>,
            mean_period_s: Option<f64>,
            swell_energy_m2: Option<f64>,
            wind_sea_energy_m2: Option<f64>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct BandOut {
            freq_hz: f64,
            density: Option<f64>,
            alpha1: Option<f64>,
            alpha2: Option<f64>,
            r1: Option<f64>,
            r2: Option<f64>,
            spread_deg: Option<f64>,
        }
        let derived = self.derived();
        let out = Out {
            station_id: &self.station_id,
            timestamp: &self.timestamp,
            sep_freq_hz: self.sep_freq_hz,
            bands: self
                .bands
                .iter()
                .map(|band| BandOut {
                    freq_hz: band.freq_hz,
                    density: band.density,
                    alpha1: band.alpha1,
                    alpha2: band.alpha2,
                    r1: band.r1,
                    r2: band.r2,
                    spread_deg: band.spread_deg(),
                })
                .collect(),
            significant_height_m: derived.significant_height_m,
            peak_freq_hz: derived.peak_freq_hz,
            peak_period_s: derived.peak_period_s,
            mean_period_s: derived.mean_period_s,
            swell_energy_m2: derived.swell_energy_m2,
            wind_sea_energy_m2: derived.wind_sea_energy_m2,
        };
        out.serialize(serializer)
    }
}

/// One row of a spectral summary file (`.spec`): NDBC's own split of the
/// sea into swell and wind waves. Serialized as `buoycast parse` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpectralSummary {
    pub station_id: StationId,
    #[serde(serialize_with = "serialize_time")]
    pub timestamp: DateTime<Utc>,
    /// WVHT, m.
    pub wave_height_m: Option<f64>,
    /// SwH, m.
    pub swell_height_m: Option<f64>,
    /// SwP, s.
    pub swell_period_s: Option<f64>,
    /// WWH, m.
    pub wind_wave_height_m: Option<f64>,
    /// WWP, s.
    pub wind_wave_period_s: Option<f64>,
    /// SwD: a compass point as whole degrees.
    pub swell_dir_deg: Option<u16>,
    /// WWD: a compass point as whole degrees.
    pub wind_wave_dir_deg: Option<u16>,
    /// STEEPNESS as NDBC words it (`SWELL`, `AVERAGE`, `STEEP`, `VERY_STEEP`).
    pub steepness: Option<String>,
    /// APD, s.
    pub average_period_s: Option<f64>,
    /// MWD, degrees.
    pub mean_wave_dir_deg: Option<u16>,
}

impl SpectralSummary {
    /// The row as `buoycast parse` prints it (docs/REFERENCE.md, Command
    /// line), keys in the order of the struct's fields.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The 16 compass points, clockwise from north.
const COMPASS: [&str; 16] =
    ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"];

/// A compass point (`SSW`) as whole degrees: its index × 22.5, rounded half
/// up (`NNE` = 23, `SSW` = 203).
pub fn compass_to_degrees(point: &str) -> Option<u16> {
    let index = COMPASS.iter().position(|p| *p == point)?;
    Some(((index as f64) * 22.5 + 0.5).floor() as u16)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2020, 6, 8, hour, 50, 0).single().expect("time")
    }

    fn row(quantity: Quantity, hour: u32, bands: &[(f64, Option<f64>)]) -> SpectralRow {
        SpectralRow {
            station_id: StationId::parse("41010").expect("id"),
            timestamp: at(hour),
            quantity,
            sep_freq_hz: (quantity == Quantity::Density).then_some(Some(0.1)),
            bands: bands.to_vec(),
        }
    }

    #[test]
    fn join_fills_bands_by_frequency_and_needs_density() {
        let spectra = join([
            row(Quantity::Alpha1, 3, &[(0.05, Some(200.0)), (0.07, Some(210.0)), (0.2, Some(5.0))]),
            row(Quantity::Density, 3, &[(0.05, Some(1.0)), (0.1, Some(2.0))]),
            row(Quantity::R1, 3, &[(0.1, Some(0.5))]),
            row(Quantity::R1, 2, &[(0.1, Some(0.5))]),
        ]);
        assert_eq!(spectra.len(), 1, "02:50 has no density");
        let spectrum = &spectra[0];
        assert_eq!(spectrum.sep_freq_hz, Some(0.1));
        assert_eq!(
            spectrum.bands,
            vec![
                Band {
                    freq_hz: 0.05,
                    density: Some(1.0),
                    alpha1: Some(200.0),
                    alpha2: None,
                    r1: None,
                    r2: None
                },
                Band {
                    freq_hz: 0.1,
                    density: Some(2.0),
                    alpha1: None,
                    alpha2: None,
                    r1: Some(0.5),
                    r2: None
                },
            ]
        );
    }

    #[test]
    fn derived_values_against_hand_computed_ones() {
        // Bands 0.05, 0.10, 0.15, 0.20 Hz: widths 0.05 each (edges mirrored).
        // S = 1, 4, 2, 1 m²/Hz; sep 0.12 Hz.
        let spectrum = Spectrum {
            station_id: StationId::parse("41010").expect("id"),
            timestamp: at(3),
            sep_freq_hz: Some(0.12),
            bands: [(0.05, 1.0), (0.10, 4.0), (0.15, 2.0), (0.20, 1.0)]
                .into_iter()
                .map(|(f, s)| Band {
                    freq_hz: f,
                    density: Some(s),
                    alpha1: None,
                    alpha2: None,
                    r1: Some(0.5),
                    r2: None,
                })
                .collect(),
        };
        let widths = spectrum.band_widths();
        assert!(widths.iter().all(|w| (w - 0.05).abs() < 1e-12), "{widths:?}");
        let d = spectrum.derived();
        // m0 = 0.05 × (1 + 4 + 2 + 1) = 0.4; Hs = 4 √0.4.
        let hs = 4.0 * 0.4f64.sqrt();
        assert!((d.significant_height_m.expect("hs") - hs).abs() < 1e-12);
        assert_eq!(d.peak_freq_hz, Some(0.10));
        assert!((d.peak_period_s.expect("tp") - 10.0).abs() < 1e-12);
        // m1 = 0.05 × (0.05 + 0.4 + 0.3 + 0.2) = 0.0475; Tm01 = 0.4 / 0.0475.
        assert!((d.mean_period_s.expect("tm01") - 0.4 / 0.0475).abs() < 1e-9);
        // Swell: the bands below 0.12 Hz, 0.05 × (1 + 4); wind sea: 0.05 × (2 + 1).
        assert!((d.swell_energy_m2.expect("swell") - 0.25).abs() < 1e-12);
        assert!((d.wind_sea_energy_m2.expect("wind") - 0.15).abs() < 1e-12);
        // r1 = 0.5: σ = √(2 × 0.5) = 1 rad.
        assert!((spectrum.bands[0].spread_deg().expect("spread") - 1f64.to_degrees()).abs() < 1e-12);
    }

    #[test]
    fn derived_values_are_none_without_what_they_need() {
        let mut spectrum = join([row(Quantity::Density, 3, &[(0.05, None), (0.1, None)])]).remove(0);
        assert_eq!(spectrum.derived(), Derived::default());
        spectrum.sep_freq_hz = None;
        spectrum.bands[0].density = Some(0.0);
        let d = spectrum.derived();
        assert_eq!(d.significant_height_m, Some(0.0));
        assert_eq!((d.peak_freq_hz, d.mean_period_s, d.swell_energy_m2), (None, None, None));
    }
}
