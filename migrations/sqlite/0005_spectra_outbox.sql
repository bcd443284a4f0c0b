-- Spectra in the outbox, SQLite: see the PostgreSQL migration of the same
-- name. Times are unix microseconds.
ALTER TABLE spectra ADD COLUMN pending INTEGER NOT NULL DEFAULT 0 CHECK (pending IN (0, 1));
ALTER TABLE spectra ADD COLUMN bus_id TEXT;
ALTER TABLE spectra ADD COLUMN published_at INTEGER;
CREATE INDEX spectra_outbox_idx ON spectra (observed_at, station_id) WHERE pending = 1;
CREATE INDEX spectra_published_at_idx ON spectra (published_at) WHERE published_at IS NOT NULL;
