//! Paths to the real NDBC fixture files in `tests/fixtures/ndbc/` (where each
//! came from: its SOURCES.md).

use std::path::PathBuf;

/// The fixture root, `tests/fixtures/ndbc` in this repository.
pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ndbc"))
}

/// One fixture file, e.g. `path("realtime2/41002.txt")`.
pub fn path(relative: &str) -> PathBuf {
    root().join(relative)
}

/// The bytes of one fixture file.
pub fn read(relative: &str) -> Vec<u8> {
    let path = path(relative);
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// The rows of one spectral fixture of a quantity (`realtime2/41010.swdir`),
/// parsed with the station its name starts with.
pub fn spectral_rows(relative: &str) -> Vec<buoycast::spectrum::SpectralRow> {
    use buoycast::sources::ndbc::spectral::{self, SpectralFile};
    let name = relative.rsplit('/').next().expect("a file name");
    let station = buoycast::observation::StationId::parse(&name[..5]).expect("a station id");
    match spectral::parse(&read(relative), &station, Some(name)) {
        Ok(SpectralFile::Quantity(parsed)) => {
            assert!(parsed.errors.is_empty(), "{relative}: {:?}", parsed.errors);
            parsed.rows
        }
        other => panic!("{relative}: {other:?}"),
    }
}

/// The 149 spectra of 41010's five realtime files, oldest first.
pub fn spectra_41010() -> Vec<buoycast::spectrum::Spectrum> {
    let rows = ["data_spec", "swdir", "swdir2", "swr1", "swr2"]
        .iter()
        .flat_map(|ext| spectral_rows(&format!("realtime2/41010.{ext}")));
    buoycast::spectrum::join(rows)
}
