//! Paths to the real NDBC fixture files (`../shared/fixtures/ndbc`, see its SOURCES.md).

use std::path::PathBuf;

/// The fixture root: `BUOYCAST_FIXTURES` if set, else `../shared/fixtures/ndbc`
/// beside the repository (where the workplace and CI put `shared/`).
pub fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os("BUOYCAST_FIXTURES") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidate = manifest.join("../shared/fixtures/ndbc");
    assert!(candidate.is_dir(), "NDBC fixtures not found at {}: set BUOYCAST_FIXTURES", candidate.display());
    candidate
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
