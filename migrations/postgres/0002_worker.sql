-- The worker's tables (SPEC 3): the transactional outbox on observations and
-- the per-source schedule with leases that lets several workers share the
-- polling.
--
-- Outbox: a row inserted by the live worker is `pending` until it has been
-- published on the bus; then it carries its `bus_id` (the stream id) and
-- `published_at`. `seq` orders pending rows by insertion, so they are
-- published oldest first after a bus outage. Rows stored before this
-- migration, and backfilled rows (not published unless asked), have
-- pending = false: they never reach live subscribers later.
--
-- The columns are added without a volatile default first so that existing
-- rows are not rewritten; new rows then get a sequence value and
-- pending = true by default.

CREATE SEQUENCE observations_seq;
ALTER TABLE observations ADD COLUMN seq bigint;
ALTER TABLE observations ALTER COLUMN seq SET DEFAULT nextval('observations_seq');
ALTER SEQUENCE observations_seq OWNED BY observations.seq;
ALTER TABLE observations ADD COLUMN pending boolean NOT NULL DEFAULT false;
ALTER TABLE observations ALTER COLUMN pending SET DEFAULT true;
ALTER TABLE observations ADD COLUMN bus_id text;
ALTER TABLE observations ADD COLUMN published_at timestamptz;

-- The outbox: only unpublished rows, in insertion order.
CREATE INDEX observations_outbox_idx ON observations (seq) WHERE pending;
-- Recently published rows (seeding the in-process bus at start-up).
CREATE INDEX observations_published_at_idx ON observations (published_at) WHERE published_at IS NOT NULL;

-- One row per thing the worker polls: `latest_obs`, `stations` (the
-- activestations.xml metadata) and `station:{id}` (a realtime2 file).
-- A worker claims due rows with FOR UPDATE SKIP LOCKED and holds them by a
-- lease (`lease_owner`, `leased_until`); a crashed worker's lease expires.
CREATE TABLE ingest_sources (
    key            text PRIMARY KEY,
    url            text NOT NULL,
    next_due_at    timestamptz NOT NULL DEFAULT now(),
    lease_owner    text,
    leased_until   timestamptz,
    -- Conditional GET validators of the last successful fetch.
    etag           text,
    last_modified  text,
    -- Failed fetches in a row (drives the backoff); 0 after a success.
    failures       integer NOT NULL DEFAULT 0,
    last_success_at timestamptz,
    last_error     text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ingest_sources_due_idx ON ingest_sources (next_due_at);
