//! OSC encoding of directional wave spectra (docs/REFERENCE.md, OSC address
//! space: Spectra), and `--spectrum-audible`'s mapping of the ocean's
//! frequencies into the audible range. Pure, like [`crate::osc`].
//!
//! Per spectrum, under `{prefix}/{stationId}/spectrum/`: `freqs` and one
//! message per band quantity (`density`, `alpha1`, `alpha2`, `r1`, `r2`,
//! `spread`), each with one float32 per band in band order; with
//! `--spectrum-audible`, `audible` (each band's frequency in the audible
//! range); the derived values as single floats; and `time`. A missing band
//! value keeps its place in the list: 0 for density (no energy, no sound),
//! −1 for the others (outside every range, so a patch can test `< 0`).

use std::str::FromStr;

use buoycast::spectrum::{Quantity, Spectrum};
use rosc::{OscMessage, OscType};

/// The ocean's band that `--spectrum-audible` maps: NDBC's spectra run from
/// 0.02 to 0.485 Hz; this rounds the top up.
pub const OCEAN_HZ: (f64, f64) = (0.02, 0.5);

/// `--spectrum-audible LOW:HIGH`: ocean frequencies mapped exponentially
/// (pitch-linear) onto LOW..HIGH Hz. An ocean octave is always the same
/// musical interval, and a frequency keeps its pitch from row to row and
/// station to station, since the ocean band is fixed ([`OCEAN_HZ`]), not
/// the row's own lowest and highest band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Audible {
    /// Where 0.02 Hz lands, Hz.
    pub low: f64,
    /// Where 0.5 Hz lands, Hz.
    pub high: f64,
}

impl Audible {
    /// a = LOW · (HIGH / LOW)^x, x = ln(f / 0.02) / ln(0.5 / 0.02), clamped to 0..1.
    pub fn map(&self, ocean_hz: f64) -> f64 {
        let (f0, f1) = OCEAN_HZ;
        let x = ((ocean_hz / f0).ln() / (f1 / f0).ln()).clamp(0.0, 1.0);
        self.low * (self.high / self.low).powf(x)
    }
}

impl FromStr for Audible {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "--spectrum-audible {s:?}: expected LOW:HIGH in Hz, 20 <= LOW < HIGH <= 20000, e.g. 110:1760"
            )
        };
        let (low, high) = s.split_once(':').ok_or_else(bad)?;
        let (low, high): (f64, f64) =
            (low.trim().parse().map_err(|_| bad())?, high.trim().parse().map_err(|_| bad())?);
        if (20.0..20_000.0).contains(&low) && high > low && high <= 20_000.0 {
            Ok(Audible { low, high })
        } else {
            Err(bad())
        }
    }
}

/// The per-band lists, in send order, with the value a missing band gets.
const LISTS: [(&str, Quantity, f32); 5] = [
    ("density", Quantity::Density, 0.0),
    ("alpha1", Quantity::Alpha1, -1.0),
    ("alpha2", Quantity::Alpha2, -1.0),
    ("r1", Quantity::R1, -1.0),
    ("r2", Quantity::R2, -1.0),
];

/// The messages for one spectrum, in send order, under `prefix` (the map's
/// address prefix, `/buoy` by default).
pub fn messages(prefix: &str, spectrum: &Spectrum, audible: Option<Audible>) -> Vec<OscMessage> {
    let base = format!("{prefix}/{}/spectrum", spectrum.station_id);
    let list = |values: &mut dyn Iterator<Item = f32>| values.map(OscType::Float).collect::<Vec<_>>();
    let mut out = Vec::with_capacity(16);
    out.push(OscMessage {
        addr: format!("{base}/freqs"),
        args: list(&mut spectrum.bands.iter().map(|band| band.freq_hz as f32)),
    });
    if let Some(audible) = audible {
        out.push(OscMessage {
            addr: format!("{base}/audible"),
            args: list(&mut spectrum.bands.iter().map(|band| audible.map(band.freq_hz) as f32)),
        });
    }
    for (name, quantity, missing) in LISTS {
        out.push(OscMessage {
            addr: format!("{base}/{name}"),
            args: list(
                &mut spectrum.bands.iter().map(|band| band.get(quantity).map_or(missing, |v| v as f32)),
            ),
        });
    }
    out.push(OscMessage {
        addr: format!("{base}/spread"),
        args: list(&mut spectrum.bands.iter().map(|band| band.spread_deg().map_or(-1.0, |v| v as f32))),
    });
    let derived = spectrum.derived();
    for (name, value) in [
        ("sepFreqHz", spectrum.sep_freq_hz),
        ("significantHeightM", derived.significant_height_m),
        ("peakFreqHz", derived.peak_freq_hz),
        ("peakPeriodS", derived.peak_period_s),
        ("meanPeriodS", derived.mean_period_s),
        ("swellEnergyM2", derived.swell_energy_m2),
        ("windSeaEnergyM2", derived.wind_sea_energy_m2),
    ] {
        // A value the spectrum does not give is not sent (the host keeps its last).
        if let Some(value) = value {
            out.push(OscMessage { addr: format!("{base}/{name}"), args: vec![OscType::Float(value as f32)] });
        }
    }
    out.push(crate::osc::time_message(format!("{base}/time"), spectrum.timestamp));
    out
}

#[cfg(test)]
mod tests {
    use buoycast::observation::StationId;
    use buoycast::spectrum::Band;
    use chrono::TimeZone;

    use super::*;

    fn band(freq_hz: f64, density: Option<f64>, r1: Option<f64>) -> Band {
        Band { freq_hz, density, alpha1: Some(180.0), alpha2: None, r1, r2: None }
    }

    #[test]
    fn audible_maps_the_ocean_band_pitch_linearly() {
        let audible: Audible = "110:1760".parse().expect("valid");
        assert!((audible.map(0.02) - 110.0).abs() < 1e-9);
        assert!((audible.map(0.5) - 1760.0).abs() < 1e-9);
        // The ocean band spans 25×; 110..1760 is 16×: the geometric middle maps to the middle.
        assert!((audible.map((0.02f64 * 0.5).sqrt()) - 440.0).abs() < 1e-9);
        assert_eq!(audible.map(0.001), 110.0, "clamped");
        for bad in ["", "110", "10:1000", "500:400", "100:30000", "a:b"] {
            assert!(bad.parse::<Audible>().is_err(), "{bad}");
        }
    }

    #[test]
    fn one_list_per_quantity_with_missing_values_in_place() {
        let spectrum = Spectrum {
            station_id: StationId::parse("41010").expect("id"),
            timestamp: chrono::Utc.with_ymd_and_hms(2020, 6, 8, 3, 50, 0).single().expect("time"),
            sep_freq_hz: Some(0.1),
            bands: vec![band(0.05, Some(1.0), Some(0.5)), band(0.1, None, None)],
        };
        let messages = messages("/buoy", &spectrum, None);
        let get = |addr: &str| messages.iter().find(|m| m.addr == addr).map(|m| m.args.clone());
        assert_eq!(get("/buoy/41010/spectrum/freqs"), Some(vec![OscType::Float(0.05), OscType::Float(0.1)]));
        assert_eq!(get("/buoy/41010/spectrum/density"), Some(vec![OscType::Float(1.0), OscType::Float(0.0)]));
        assert_eq!(get("/buoy/41010/spectrum/r1"), Some(vec![OscType::Float(0.5), OscType::Float(-1.0)]));
        assert_eq!(
            get("/buoy/41010/spectrum/alpha2"),
            Some(vec![OscType::Float(-1.0), OscType::Float(-1.0)])
        );
        assert_eq!(get("/buoy/41010/spectrum/audible"), None);
        assert_eq!(get("/buoy/41010/spectrum/peakFreqHz"), Some(vec![OscType::Float(0.05)]));
        assert_eq!(
            get("/buoy/41010/spectrum/time"),
            Some([2020, 6, 8, 3, 50].into_iter().map(OscType::Int).collect())
        );
    }
}
