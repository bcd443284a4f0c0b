-- Directional wave spectra (docs/REFERENCE.md, Spectrum): one row per
-- station and time, the bands as JSON in columns of equal length:
-- {"freqHz":[…],"density":[…],"alpha1":[…],"alpha2":[…],"r1":[…],"r2":[…]}
-- (null where a band's value is missing). A row whose bands change is
-- updated in place and its revision goes up, as for observations.
CREATE TABLE spectra (
    station_id  text NOT NULL,
    observed_at timestamptz NOT NULL,
    sep_freq_hz double precision,
    bands       jsonb NOT NULL,
    revision    integer NOT NULL DEFAULT 0,
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, observed_at)
);
