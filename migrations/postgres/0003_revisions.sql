-- Corrections (docs/REFERENCE.md, Observation): NDBC rewrites its files, and
-- a row it already served may come back with a value filled in or revised.
--
-- `revision` counts the versions of a row: 0 as first stored, +1 for each
-- change (each is published again, once, with "revised": true).
-- `source_rank` is the rank of the source that last set the row's values:
-- 2 for a station's own file (realtime2 {ID}.txt, historical files), 1 for
-- latest_obs.txt and other sources. A source of lower rank than the row's
-- only fills in values that are still null; a null never erases a value.
ALTER TABLE observations ADD COLUMN revision integer NOT NULL DEFAULT 0;
ALTER TABLE observations ADD COLUMN source_rank smallint NOT NULL DEFAULT 0;
