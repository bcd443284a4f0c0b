-- buoycast schema, SQLite: station metadata and observations (SPEC 2, 3).
--
-- Times are INTEGER unix microseconds (UTC): they sort correctly, compare
-- fast, and carry exactly the precision PostgreSQL's timestamptz keeps, so
-- both backends round-trip the same DateTime<Utc>.
-- (In the sqlite3 shell: datetime(observed_at / 1000000, 'unixepoch').)
--
-- observations.station_id deliberately has no foreign key: the store creates
-- a bare stations row (id only) for every station it sees in data, in the same
-- transaction as the observations.
--
-- The measurement columns are named by Field::column() in src/observation.rs.
-- All are REAL (directions included) so that every value read back is the
-- value written; NULL means missing, never 0.

CREATE TABLE stations (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT,
    lat          REAL,
    lon          REAL,
    owner        TEXT,
    station_type TEXT,
    active       INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    -- Whether the row came from station metadata rather than being created
    -- bare because observations arrived first.
    has_metadata INTEGER NOT NULL DEFAULT 0 CHECK (has_metadata IN (0, 1)),
    updated_at   INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))
) WITHOUT ROWID;

CREATE TABLE observations (
    station_id            TEXT NOT NULL,
    observed_at           INTEGER NOT NULL,
    wind_dir_deg          REAL,
    wind_speed_mps        REAL,
    gust_mps              REAL,
    wave_height_m         REAL,
    dominant_period_s     REAL,
    average_period_s      REAL,
    mean_wave_dir_deg     REAL,
    pressure_hpa          REAL,
    air_temp_c            REAL,
    water_temp_c          REAL,
    dewpoint_c            REAL,
    visibility_nmi        REAL,
    pressure_tendency_hpa REAL,
    tide_ft               REAL,
    inserted_at           INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    PRIMARY KEY (station_id, observed_at)
) WITHOUT ROWID;

-- History across stations, newest first (GET /v1/observations).
CREATE INDEX observations_observed_at_idx ON observations (observed_at);
