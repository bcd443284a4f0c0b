-- Spectra in the outbox (docs/REFERENCE.md, Worker), as 0002 did for
-- observations: a spectrum the live worker stores or changes is `pending`
-- until it has been published on the bus, then carries its `bus_id` and
-- `published_at`. Pending spectra go out oldest observation first.
-- Rows stored before this migration stay pending = false: they never
-- reach live subscribers later.
ALTER TABLE spectra ADD COLUMN pending boolean NOT NULL DEFAULT false;
ALTER TABLE spectra ADD COLUMN bus_id text;
ALTER TABLE spectra ADD COLUMN published_at timestamptz;
CREATE INDEX spectra_outbox_idx ON spectra (observed_at, station_id) WHERE pending;
CREATE INDEX spectra_published_at_idx ON spectra (published_at) WHERE published_at IS NOT NULL;
