//! Wave spectra in the store (docs/REFERENCE.md, Spectrum; migrations
//! `0004_spectra`): one row per (station, time), the bands as JSON columns.
//!
//! Both dialects are here, each query written once per backend: the table is
//! small (one row per station an hour) and simple, so there is no batching.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{stored_station_id, Delivery, Error, Page, PageQuery, Store};
use crate::observation::StationId;
use crate::spectrum::Spectrum;

impl Store {
    /// Stores spectra keyed by (station, time). A new one is inserted; a
    /// stored one whose separation frequency or bands differ is replaced and
    /// its revision goes up; an identical one is left alone. Returns the
    /// spectra inserted or changed, in input order. With
    /// [`Delivery::Outbox`] those enter the outbox (each version is
    /// published once); with [`Delivery::Silent`] they are stored only (a
    /// silent change of a row still pending leaves it pending).
    pub async fn upsert_spectra(
        &self,
        spectra: &[Spectrum],
        delivery: Delivery,
    ) -> Result<Vec<Spectrum>, Error> {
        let operation = "storing spectra";
        let pending = delivery == Delivery::Outbox;
        let mut changed = Vec::new();
        match self {
            Store::Postgres(store) => {
                let mut tx = store.pool().begin().await.map_err(Error::query(operation))?;
                for spectrum in spectra {
                    let row = sqlx::query(
                        "INSERT INTO spectra (station_id, observed_at, sep_freq_hz, bands, pending) \
                         VALUES ($1, $2, $3, $4::jsonb, $5) \
                         ON CONFLICT (station_id, observed_at) DO UPDATE SET sep_freq_hz = EXCLUDED.sep_freq_hz, \
                         bands = EXCLUDED.bands, revision = spectra.revision + 1, fetched_at = now(), \
                         pending = spectra.pending OR EXCLUDED.pending \
                         WHERE spectra.bands IS DISTINCT FROM EXCLUDED.bands \
                         OR spectra.sep_freq_hz IS DISTINCT FROM EXCLUDED.sep_freq_hz \
                         RETURNING revision",
                    )
                    .bind(spectrum.station_id.as_str())
                    .bind(spectrum.timestamp)
                    .bind(spectrum.sep_freq_hz)
                    .bind(spectrum.bands_to_columns())
                    .bind(pending)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(Error::query(operation))?;
                    if row.is_some() {
                        changed.push(spectrum.clone());
                    }
                }
                tx.commit().await.map_err(Error::query(operation))?;
            }
            Store::Sqlite(store) => {
                let mut tx = store.pool().begin().await.map_err(Error::query(operation))?;
                for spectrum in spectra {
                    let row = sqlx::query(
                        "INSERT INTO spectra (station_id, observed_at, sep_freq_hz, bands, pending) \
                         VALUES (?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT (station_id, observed_at) DO UPDATE SET sep_freq_hz = excluded.sep_freq_hz, \
                         bands = excluded.bands, revision = spectra.revision + 1, \
                         fetched_at = CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER), \
                         pending = max(spectra.pending, excluded.pending) \
                         WHERE spectra.bands IS NOT excluded.bands OR spectra.sep_freq_hz IS NOT excluded.sep_freq_hz \
                         RETURNING revision",
                    )
                    .bind(spectrum.station_id.as_str())
                    .bind(spectrum.timestamp.timestamp_micros())
                    .bind(spectrum.sep_freq_hz)
                    .bind(spectrum.bands_to_columns())
                    .bind(pending)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(Error::query(operation))?;
                    if row.is_some() {
                        changed.push(spectrum.clone());
                    }
                }
                tx.commit().await.map_err(Error::query(operation))?;
            }
        }
        Ok(changed)
    }

    /// One page of a station's spectra, counted from the newest as
    /// [`Store::observations_by_station`] does: page 1 is the newest
    /// `limit`, each page oldest first, `since` exclusive; with the total
    /// after `since`.
    pub async fn spectra_by_station(
        &self,
        id: &StationId,
        query: PageQuery,
    ) -> Result<Page<Spectrum>, Error> {
        let operation = "reading a station's spectra";
        let offset = i64::from(query.page.max(1) - 1) * i64::from(query.limit);
        let mut items = Vec::new();
        let total: i64 = match self {
            Store::Postgres(store) => {
                let since = query.since;
                let total: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM spectra WHERE station_id = $1 AND ($2::timestamptz IS NULL OR observed_at > $2)")
                        .bind(id.as_str())
                        .bind(since)
                        .fetch_one(store.pool())
                        .await
                        .map_err(Error::query(operation))?;
                if query.limit > 0 && total > 0 {
                    let rows = sqlx::query(
                        "SELECT station_id, observed_at, sep_freq_hz, bands::text FROM spectra \
                         WHERE station_id = $1 AND ($2::timestamptz IS NULL OR observed_at > $2) \
                         ORDER BY observed_at DESC LIMIT $3 OFFSET $4",
                    )
                    .bind(id.as_str())
                    .bind(since)
                    .bind(i64::from(query.limit))
                    .bind(offset)
                    .fetch_all(store.pool())
                    .await
                    .map_err(Error::query(operation))?;
                    for row in rows.iter().rev() {
                        items.push(pg_spectrum(row)?);
                    }
                }
                total
            }
            Store::Sqlite(store) => {
                let since = query.since.map_or(i64::MIN, |since| since.timestamp_micros());
                let total: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM spectra WHERE station_id = ?1 AND observed_at > ?2",
                )
                .bind(id.as_str())
                .bind(since)
                .fetch_one(store.pool())
                .await
                .map_err(Error::query(operation))?;
                if query.limit > 0 && total > 0 {
                    let rows = sqlx::query(
                        "SELECT station_id, observed_at, sep_freq_hz, bands FROM spectra \
                         WHERE station_id = ?1 AND observed_at > ?2 ORDER BY observed_at DESC LIMIT ?3 OFFSET ?4",
                    )
                    .bind(id.as_str())
                    .bind(since)
                    .bind(i64::from(query.limit))
                    .bind(offset)
                    .fetch_all(store.pool())
                    .await
                    .map_err(Error::query(operation))?;
                    for row in rows.iter().rev() {
                        items.push(sqlite_spectrum(row)?);
                    }
                }
                total
            }
        };
        Ok(Page { items, total: total.max(0) as u64 })
    }
}

impl Store {
    /// Every station's newest spectrum, by station id (the gateway seeds
    /// `?snapshot=latest` with them).
    pub async fn latest_spectra(&self) -> Result<Vec<Spectrum>, Error> {
        let operation = "reading the stations' latest spectra";
        let mut spectra = Vec::new();
        match self {
            Store::Postgres(store) => {
                let rows = sqlx::query(
                    "SELECT DISTINCT ON (station_id) station_id, observed_at, sep_freq_hz, bands::text \
                     FROM spectra ORDER BY station_id, observed_at DESC",
                )
                .fetch_all(store.pool())
                .await
                .map_err(Error::query(operation))?;
                for row in &rows {
                    spectra.push(pg_spectrum(row)?);
                }
            }
            Store::Sqlite(store) => {
                let rows = sqlx::query(
                    "SELECT s.station_id, s.observed_at, s.sep_freq_hz, s.bands FROM spectra s \
                     WHERE s.observed_at = (SELECT max(observed_at) FROM spectra WHERE station_id = s.station_id) \
                     ORDER BY s.station_id",
                )
                .fetch_all(store.pool())
                .await
                .map_err(Error::query(operation))?;
                for row in &rows {
                    spectra.push(sqlite_spectrum(row)?);
                }
            }
        }
        Ok(spectra)
    }
}

/// A PostgreSQL row `station_id, observed_at, sep_freq_hz, bands::text, …` as a spectrum.
pub(super) fn pg_spectrum(row: &sqlx::postgres::PgRow) -> Result<Spectrum, Error> {
    let operation = "reading a spectrum";
    let time: DateTime<Utc> = row.try_get(1).map_err(Error::query(operation))?;
    stored_spectrum(
        row.try_get(0).map_err(Error::query(operation))?,
        time,
        row.try_get(2).map_err(Error::query(operation))?,
        row.try_get(3).map_err(Error::query(operation))?,
    )
}

/// A SQLite row `station_id, observed_at, sep_freq_hz, bands, …` as a spectrum.
pub(super) fn sqlite_spectrum(row: &sqlx::sqlite::SqliteRow) -> Result<Spectrum, Error> {
    let operation = "reading a spectrum";
    let time = super::sqlite::time_from_micros(row.try_get(1).map_err(Error::query(operation))?)?;
    stored_spectrum(
        row.try_get(0).map_err(Error::query(operation))?,
        time,
        row.try_get(2).map_err(Error::query(operation))?,
        row.try_get(3).map_err(Error::query(operation))?,
    )
}

/// A spectrum read back.
fn stored_spectrum(
    station: &str,
    timestamp: DateTime<Utc>,
    sep_freq_hz: Option<f64>,
    bands: &str,
) -> Result<Spectrum, Error> {
    let bands = Spectrum::bands_from_columns(bands)
        .ok_or_else(|| Error::Corrupt { what: "spectrum bands", value: bands.chars().take(80).collect() })?;
    Ok(Spectrum { station_id: stored_station_id(station)?, timestamp, sep_freq_hz, bands })
}
