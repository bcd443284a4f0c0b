-- Directional wave spectra, SQLite: see the PostgreSQL migration of the same
-- name. Times are unix microseconds as in 0001; bands are JSON text. A rowid
-- table (unlike 0001's): rows of 1.5 KB fill WITHOUT ROWID pages badly
-- (4.7 KB stored per spectrum against 2 KB here, benches/spectra.rs).
CREATE TABLE spectra (
    station_id  TEXT NOT NULL,
    observed_at INTEGER NOT NULL,
    sep_freq_hz REAL,
    bands       TEXT NOT NULL,
    revision    INTEGER NOT NULL DEFAULT 0,
    fetched_at  INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    PRIMARY KEY (station_id, observed_at)
);
