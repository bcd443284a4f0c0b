-- The worker's tables (SPEC 3), SQLite: the transactional outbox on
-- observations and the per-source schedule (see the PostgreSQL migration
-- for the design; here one in-process worker uses them).
--
-- SQLite cannot give an added column a sequence default, so the store sets
-- `seq` from the one-row counter `observation_seq` in the insert's
-- transaction, and sets `pending` explicitly. Rows stored before this
-- migration get pending = 0: they are never published later.
-- Times are INTEGER unix microseconds, as in 0001.

ALTER TABLE observations ADD COLUMN seq INTEGER;
ALTER TABLE observations ADD COLUMN pending INTEGER NOT NULL DEFAULT 0 CHECK (pending IN (0, 1));
ALTER TABLE observations ADD COLUMN bus_id TEXT;
ALTER TABLE observations ADD COLUMN published_at INTEGER;

CREATE INDEX observations_outbox_idx ON observations (seq) WHERE pending = 1;
CREATE INDEX observations_published_at_idx ON observations (published_at) WHERE published_at IS NOT NULL;

CREATE TABLE observation_seq (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT INTO observation_seq (id, last) VALUES (1, 0);

CREATE TABLE ingest_sources (
    key             TEXT PRIMARY KEY NOT NULL,
    url             TEXT NOT NULL,
    next_due_at     INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    lease_owner     TEXT,
    leased_until    INTEGER,
    etag            TEXT,
    last_modified   TEXT,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_success_at INTEGER,
    last_error      TEXT,
    updated_at      INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))
) WITHOUT ROWID;

CREATE INDEX ingest_sources_due_idx ON ingest_sources (next_due_at);
