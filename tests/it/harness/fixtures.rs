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
