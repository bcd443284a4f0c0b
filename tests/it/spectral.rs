//! The NDBC wave-spectrum files (docs/REFERENCE.md, Spectrum): every
//! spectral fixture through `buoycast parse`, compared value for value with
//! an independent reading of the same file (`tests/independent/
//! read_ndbc_spectral.py`, plain Python written from the file formats, not
//! from our parser), the join of the five quantities and the derived values
//! on real rows.

use std::path::Path;
use std::process::Command;

use buoycast::observation::StationId;
use buoycast::sources::ndbc::spectral::{self, FileError};
use buoycast::spectrum::{join, Quantity};
use serde_json::Value;

use crate::harness::fixtures;

/// Every spectral fixture and how many rows it holds.
const SPECTRAL: [(&str, usize); 14] = [
    ("realtime2/41010.data_spec", 149),
    ("realtime2/41010.swdir", 149),
    ("realtime2/41010.swdir2", 149),
    ("realtime2/41010.swr1", 149),
    ("realtime2/41010.swr2", 149),
    ("realtime2/41010.spec", 149),
    ("realtime2/41002.spec", 1090),
    ("realtime2/44013.spec", 1073),
    ("historical/41010w2019part.txt", 99),
    ("historical/41010d2019part.txt", 99),
    ("historical/41010i2019part.txt", 99),
    ("historical/41010j2019part.txt", 99),
    ("historical/41010k2019part.txt", 99),
    ("historical/46042w1996.txt", 48),
];

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect()
}

fn independent_reading(path: &Path) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/read_ndbc_spectral.py");
    let output = Command::new("python3").arg(script).arg(path).output().expect("python3 runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    json_lines(&String::from_utf8(output.stdout).expect("UTF-8"))
}

#[test]
fn every_spectral_fixture_parses_to_what_an_independent_reading_gives() {
    for (file, rows) in SPECTRAL {
        let path = fixtures::path(file);
        let output =
            Command::new(env!("CARGO_BIN_EXE_buoycast")).arg("parse").arg(&path).output().expect("run");
        assert_eq!(output.status.code(), Some(0), "{file}: {}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8(output.stdout).expect("UTF-8");
        let ours = json_lines(&stdout);
        let theirs = independent_reading(&path);
        assert_eq!(ours.len(), rows, "{file}");
        assert_eq!(theirs.len(), rows, "{file}");
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a, b, "{file}, row {}", i + 1);
        }
        // The documented key order, not only the same keys.
        let first = stdout.lines().next().expect("a row");
        let keys: Vec<&str> = if file.ends_with(".spec") {
            vec!["stationId", "timestamp", "waveHeightM", "swellHeightM", "meanWaveDirDeg"]
        } else {
            vec!["stationId", "timestamp", "quantity", "bands"]
        };
        let at: Vec<Option<usize>> = keys.iter().map(|key| first.find(&format!("\"{key}\":"))).collect();
        assert!(at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1]), "{file}: {first}");
    }
}

#[test]
fn the_cli_says_what_it_nulled_and_keeps_the_row() {
    // 44013.spec has MWD -99 on six rows where every wave field but WVHT is MM.
    let path = fixtures::path("realtime2/44013.spec");
    let output = Command::new(env!("CARGO_BIN_EXE_buoycast")).arg("parse").arg(&path).output().expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("MWD -99 is out of range, 0 to 360 degrees (set to null)").count(),
        6,
        "{stderr}"
    );
    assert!(stderr.contains("1073 rows, 0 bad lines skipped, 6 values set to null"), "{stderr}");
}

#[test]
fn the_five_realtime_files_join_into_one_spectrum_per_time() {
    let spectra = fixtures::spectra_41010();
    assert_eq!(spectra.len(), 149);
    let newest = spectra.last().expect("spectra");
    assert_eq!(newest.timestamp.to_rfc3339(), "2020-06-08T03:50:00+00:00");
    assert_eq!(newest.sep_freq_hz, Some(0.225));
    assert_eq!(newest.bands.len(), 46);
    // The file's own numbers for 0.063 Hz at 03:50: density 0.060, α1 36.0, r1 0.37.
    let band = newest.bands.iter().find(|band| band.freq_hz == 0.063).expect("0.063 Hz");
    assert_eq!((band.density, band.alpha1, band.r1), (Some(0.06), Some(36.0), Some(0.37)));
    assert!(band.alpha2.is_some() && band.r2.is_some());
    // Where α1 is 999 in .swdir the band has no α1 but keeps its density.
    let missing = newest.bands.iter().find(|band| band.freq_hz == 0.033).expect("0.033 Hz");
    assert_eq!((missing.density, missing.alpha1), (Some(0.0), None));

    // Hs from the spectrum against NDBC's own WVHT in 41010.spec at 03:40
    // (ten minutes apart, from the same buoy): the same sea within 20 %.
    let derived = newest.derived();
    let hs = derived.significant_height_m.expect("Hs");
    assert!((hs - 1.1).abs() < 0.22, "Hs {hs} against WVHT 1.1");
    let energy = derived.swell_energy_m2.expect("swell") + derived.wind_sea_energy_m2.expect("wind sea");
    assert!((energy - (hs / 4.0).powi(2)).abs() < 1e-9, "swell + wind sea = m0");
    let peak = derived.peak_freq_hz.expect("peak");
    let max = newest.bands.iter().filter_map(|band| band.density).fold(0.0, f64::max);
    assert_eq!(
        newest.bands.iter().find(|band| band.freq_hz == peak).and_then(|band| band.density),
        Some(max)
    );
}

#[test]
fn the_five_historical_files_join_with_r1_and_r2_on_the_unit_scale() {
    let rows = ["w", "d", "i", "j", "k"]
        .iter()
        .flat_map(|q| fixtures::spectral_rows(&format!("historical/41010{q}2019part.txt")));
    let spectra = join(rows);
    assert_eq!(spectra.len(), 99);
    let first = &spectra[0];
    assert_eq!(first.bands.len(), 47);
    assert_eq!(first.bands[0].freq_hz, 0.02);
    assert_eq!(first.sep_freq_hz, None);
    // The file's first row: r1 59 at .0200 Hz is 0.59; α1 136.
    assert_eq!((first.bands[0].r1, first.bands[0].alpha1), (Some(0.59), Some(136.0)));
    assert!(first.bands.iter().all(|band| band.r1.is_some_and(|r| (0.0..=1.0).contains(&r))));
    assert!(first.derived().swell_energy_m2.is_none(), "no Sep_Freq in historical files");
}

#[test]
fn other_ndbc_files_are_not_spectral() {
    let station = StationId::parse("41002").expect("id");
    for file in
        ["realtime2/41002.txt", "realtime2/41008.cwind", "realtime2/44029.ocean", "latest_obs/latest_obs.txt"]
    {
        let name = file.rsplit('/').next();
        assert_eq!(
            spectral::parse(&fixtures::read(file), &station, name),
            Err(FileError::NotSpectral),
            "{file}"
        );
    }
    assert_eq!(Quantity::from_name("alpha2"), Some(Quantity::Alpha2));
}
