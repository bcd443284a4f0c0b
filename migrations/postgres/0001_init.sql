-- buoycast schema, PostgreSQL: station metadata and observations (SPEC 2, 3).
--
-- observations.station_id deliberately has no foreign key: the store creates
-- a bare stations row (id only) for every station it sees in data, in the same
-- transaction as the observations, so a station never lacks its row, and the
-- hot insert path skips a per-row foreign-key check.
--
-- The measurement columns are named by Field::column() in src/observation.rs.
-- All are double precision (directions included) so that every value read
-- back is bit-for-bit the value written; NULL means missing, never 0.
--
-- Later migrations (the worker's transactional outbox and station leases) add
-- their own columns and tables; nothing here depends on them.

CREATE TABLE stations (
    id           text PRIMARY KEY CHECK (id ~ '^[a-z0-9]{1,16}$'),
    name         text,
    lat          double precision,
    lon          double precision,
    owner        text,
    station_type text,
    active       boolean NOT NULL DEFAULT true,
    -- Whether the row came from station metadata (activestations.xml) rather
    -- than being created bare because observations arrived first.
    has_metadata boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE observations (
    station_id            text NOT NULL,
    observed_at           timestamptz NOT NULL,
    wind_dir_deg          double precision,
    wind_speed_mps        double precision,
    gust_mps              double precision,
    wave_height_m         double precision,
    dominant_period_s     double precision,
    average_period_s      double precision,
    mean_wave_dir_deg     double precision,
    pressure_hpa          double precision,
    air_temp_c            double precision,
    water_temp_c          double precision,
    dewpoint_c            double precision,
    visibility_nmi        double precision,
    pressure_tendency_hpa double precision,
    tide_ft               double precision,
    inserted_at           timestamptz NOT NULL DEFAULT now(),
    -- The key (SPEC 2); its index also serves by-station history (both
    -- directions) and the latest observation of a station.
    PRIMARY KEY (station_id, observed_at)
);

-- History across stations, newest first (GET /v1/observations).
CREATE INDEX observations_observed_at_idx ON observations (observed_at);
