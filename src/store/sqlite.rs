//! SQLite backend of [`Store`](super::Store): the embedded default, one file,
//! no service to run (docs/ARCHITECTURE.md).
//!
//! The file is opened in WAL mode (readers never block the writer), with a
//! busy timeout, foreign keys on, and `synchronous = NORMAL` (safe against
//! corruption in WAL mode; a power cut may lose the last commits, which the
//! next fetch of the same NDBC files restores). Write transactions start with
//! `BEGIN IMMEDIATE`, so two writers queue on the busy timeout instead of
//! failing when a read transaction would have to be upgraded. Times are
//! INTEGER unix microseconds (see the migration).
//!
//! It is not the public interface: callers go through `Store`.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{
    offset, stored_station_id, Batch, Delivery, Error, HistoryQuery, Origin, Page, PageQuery, StationSummary,
    StoreOptions, OBSERVATION_COLUMNS, SQLITE_CHUNK_ROWS, STATION_COLUMNS,
};
use crate::observation::{Field, Measurements, Observation, StationId};
use crate::station::Station;

/// The SQLite migrations, embedded at build time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The corrections clause of the observation upsert (`super::corrections_clause`),
/// built once per delivery: back into the outbox, or `pending` left as it was.
static CORRECTIONS_OUTBOX: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| super::corrections_clause("IS NOT", "max", "1", "excluded.seq"));
static CORRECTIONS_SILENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    super::corrections_clause("IS NOT", "max", "observations.pending", "excluded.seq")
});

/// The expression SQLite evaluates to "now" in unix microseconds.
const NOW_MICROS: &str = "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)";

/// Station rows per statement (8 binds each).
const STATION_CHUNK_ROWS: usize = 2_000;

/// A pool of connections to one SQLite file holding the buoycast schema.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The pool every query goes through.
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating when missing) the file at `path` and its directory.
    pub(super) async fn connect(path: PathBuf, options: &StoreOptions) -> Result<SqliteStore, Error> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| Error::CreateDir { path: dir.to_path_buf(), source })?;
        }
        let connect_options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect_options)
            .await
            .map_err(|source| Error::Connect { url: format!("sqlite://{}", path.display()), source })?;
        Ok(SqliteStore { pool })
    }

    /// One in-memory database: a pool of exactly one connection that never
    /// closes (each new connection would open another, empty, database).
    pub(super) async fn connect_memory(options: &StoreOptions) -> Result<SqliteStore, Error> {
        let connect_options =
            SqliteConnectOptions::new().in_memory(true).busy_timeout(options.busy_timeout).foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect_options)
            .await
            .map_err(|source| Error::Connect { url: "sqlite::memory:".to_owned(), source })?;
        Ok(SqliteStore { pool })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(super) async fn migrate(&self) -> Result<(), Error> {
        MIGRATOR.run(&self.pool).await.map_err(|source| Error::Migrate { backend: "sqlite", source })
    }

    pub(super) async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(Error::query("pinging the database"))?;
        Ok(())
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    pub(super) async fn upsert_observations(
        &self,
        mut batch: Batch,
        delivery: Delivery,
        origin: Origin,
    ) -> Result<Vec<Observation>, Error> {
        let operation = "upserting observations";
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(Error::query(operation))?;
        for chunk in batch.stations.chunks(STATION_CHUNK_ROWS) {
            let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO stations (id) ");
            insert.push_values(chunk, |mut row, id| {
                row.push_bind(id.as_str());
            });
            insert.push(" ON CONFLICT (id) DO NOTHING");
            insert.build().execute(&mut *tx).await.map_err(Error::query(operation))?;
        }
        let mut inserted = Vec::new();
        let pending = i64::from(delivery == Delivery::Outbox);
        let corrections: &str = match delivery {
            Delivery::Outbox => &CORRECTIONS_OUTBOX,
            Delivery::Silent => &CORRECTIONS_SILENT,
        };
        for chunk in batch.chunks(SQLITE_CHUNK_ROWS) {
            // Reserve one insertion number per candidate row (gaps are fine).
            let n_rows = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
            let last: i64 =
                sqlx::query_scalar("UPDATE observation_seq SET last = last + ? WHERE id = 1 RETURNING last")
                    .bind(n_rows)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(Error::query(operation))?;
            let mut seq = last - n_rows;
            let mut insert = QueryBuilder::<Sqlite>::new(format!(
                "INSERT INTO observations ({}, seq, pending, source_rank) ",
                *OBSERVATION_COLUMNS
            ));
            insert.push_values(chunk, |mut values, row| {
                seq += 1;
                values.push_bind(row.station_id.as_str()).push_bind(row.observed_at.timestamp_micros());
                for field in Field::ALL {
                    values.push_bind(row.measurements.get(field));
                }
                values.push_bind(seq).push_bind(pending).push_bind(origin as i64);
            });
            insert.push(corrections);
            let rows = insert.build().fetch_all(&mut *tx).await.map_err(Error::query(operation))?;
            for row in rows {
                inserted.push(read_observation(&row, 0)?);
            }
        }
        tx.commit().await.map_err(Error::query(operation))?;
        batch.mark_new(inserted)?;
        Ok(batch.into_new())
    }

    pub(super) async fn upsert_stations(&self, stations: &[Station]) -> Result<u64, Error> {
        let operation = "upserting stations";
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(Error::query(operation))?;
        let mut n_changed = 0;
        for chunk in stations.chunks(STATION_CHUNK_ROWS) {
            let mut upsert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO stations (id, name, lat, lon, owner, station_type, active, has_metadata, updated_at) ",
            );
            upsert.push_values(chunk, |mut values, station| {
                values
                    .push_bind(station.id.as_str())
                    .push_bind(station.name.as_deref())
                    .push_bind(station.lat)
                    .push_bind(station.lon)
                    .push_bind(station.owner.as_deref())
                    .push_bind(station.station_type.as_deref())
                    .push_bind(station.active)
                    .push("1")
                    .push(NOW_MICROS);
            });
            upsert.push(
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name, lat = excluded.lat, lon = excluded.lon, \
                 owner = excluded.owner, station_type = excluded.station_type, active = excluded.active, \
                 has_metadata = 1, updated_at = excluded.updated_at \
                 WHERE stations.has_metadata = 0 OR stations.name IS NOT excluded.name \
                 OR stations.lat IS NOT excluded.lat OR stations.lon IS NOT excluded.lon \
                 OR stations.owner IS NOT excluded.owner OR stations.station_type IS NOT excluded.station_type \
                 OR stations.active IS NOT excluded.active",
            );
            n_changed +=
                upsert.build().execute(&mut *tx).await.map_err(Error::query(operation))?.rows_affected();
        }
        tx.commit().await.map_err(Error::query(operation))?;
        Ok(n_changed)
    }

    pub(super) async fn observations_by_station(
        &self,
        id: &StationId,
        query: PageQuery,
    ) -> Result<Page<Observation>, Error> {
        let operation = "reading a station's observations";
        let filter = |builder: &mut QueryBuilder<'_, Sqlite>| {
            builder.push(" FROM observations WHERE station_id = ").push_bind(id.as_str().to_owned());
            if let Some(since) = query.since {
                builder.push(" AND observed_at > ").push_bind(since.timestamp_micros());
            }
        };
        let mut count = QueryBuilder::new("SELECT count(*)");
        filter(&mut count);
        let total: i64 = count
            .build()
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(Error::query(operation))?;
        let mut items = Vec::new();
        if query.limit > 0 && total > 0 {
            let mut select = QueryBuilder::new(format!("SELECT {}", *OBSERVATION_COLUMNS));
            filter(&mut select);
            select.push(" ORDER BY observed_at DESC LIMIT ").push_bind(i64::from(query.limit));
            select.push(" OFFSET ").push_bind(offset(query.page, query.limit));
            let rows = select.build().fetch_all(&self.pool).await.map_err(Error::query(operation))?;
            // Newest first from the index; the page is returned oldest first.
            items = rows.iter().rev().map(|row| read_observation(row, 0)).collect::<Result<_, _>>()?;
        }
        Ok(Page { items, total: total.max(0) as u64 })
    }

    pub(super) async fn observations(&self, query: &HistoryQuery) -> Result<Vec<Observation>, Error> {
        let mut select =
            QueryBuilder::new(format!("SELECT {} FROM observations WHERE 1", *OBSERVATION_COLUMNS));
        if !query.stations.is_empty() {
            select.push(" AND station_id IN (");
            let mut ids = select.separated(", ");
            for id in &query.stations {
                ids.push_bind(id.as_str().to_owned());
            }
            select.push(")");
        }
        if let Some(since) = query.since {
            select.push(" AND observed_at >= ").push_bind(since.timestamp_micros());
        }
        if let Some(until) = query.until {
            select.push(" AND observed_at <= ").push_bind(until.timestamp_micros());
        }
        select.push(" ORDER BY observed_at DESC, station_id ASC LIMIT ").push_bind(i64::from(query.limit));
        let rows =
            select.build().fetch_all(&self.pool).await.map_err(Error::query("reading observations"))?;
        rows.iter().map(|row| read_observation(row, 0)).collect()
    }

    pub(super) async fn stations(&self, page: u32, limit: u32) -> Result<Page<StationSummary>, Error> {
        let operation = "reading stations";
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM stations")
            .fetch_one(&self.pool)
            .await
            .map_err(Error::query(operation))?;
        let mut items = Vec::new();
        if limit > 0 && total > 0 {
            let sql = summaries_sql("SELECT * FROM stations ORDER BY id LIMIT ?1 OFFSET ?2");
            let rows = sqlx::query(&sql)
                .bind(i64::from(limit))
                .bind(offset(page, limit))
                .fetch_all(&self.pool)
                .await
                .map_err(Error::query(operation))?;
            items = rows.iter().map(read_summary).collect::<Result<_, _>>()?;
        }
        Ok(Page { items, total: total.max(0) as u64 })
    }

    pub(super) async fn station(&self, id: &StationId) -> Result<Option<StationSummary>, Error> {
        let sql = summaries_sql("SELECT * FROM stations WHERE id = ?1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::query("reading a station"))?;
        row.as_ref().map(read_summary).transpose()
    }
}

/// Station summaries for the stations `stations_select` picks, each joined
/// with its newest observation (SQLite has no LATERAL; the `max()` subquery is
/// answered from the primary-key index).
fn summaries_sql(stations_select: &str) -> String {
    format!(
        "SELECT {STATION_COLUMNS}, {observation} FROM ({stations_select}) s \
         LEFT JOIN observations o ON o.station_id = s.id AND o.observed_at = \
         (SELECT max(m.observed_at) FROM observations m WHERE m.station_id = s.id) ORDER BY s.id",
        observation = super::observation_columns("o."),
    )
}

/// A stored time (unix microseconds) as a `DateTime<Utc>`.
pub(super) fn time_from_micros(micros: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .ok_or_else(|| Error::Corrupt { what: "time", value: micros.to_string() })
}

/// Reads the observation columns starting at column `first`.
pub(super) fn read_observation(row: &SqliteRow, first: usize) -> Result<Observation, Error> {
    let operation = "decoding an observation";
    let station_id: String = row.try_get(first).map_err(Error::query(operation))?;
    let micros: i64 = row.try_get(first + 1).map_err(Error::query(operation))?;
    let mut measurements = Measurements::default();
    for field in Field::ALL {
        // Unchecked: SQLite reports the storage class of each value, and a
        // REAL column may hand back a whole number stored compactly.
        let value: Option<f64> =
            row.try_get_unchecked(first + 2 + field.index()).map_err(Error::query(operation))?;
        measurements.set(field, value);
    }
    Ok(Observation {
        station_id: stored_station_id(&station_id)?,
        observed_at: time_from_micros(micros)?,
        measurements,
    })
}

/// Reads [`STATION_COLUMNS`] and the (possibly all-NULL) observation after them.
fn read_summary(row: &SqliteRow) -> Result<StationSummary, Error> {
    let operation = "decoding a station";
    let id: String = row.try_get(0).map_err(Error::query(operation))?;
    let station = Station {
        id: stored_station_id(&id)?,
        name: row.try_get(1).map_err(Error::query(operation))?,
        lat: row.try_get_unchecked(2).map_err(Error::query(operation))?,
        lon: row.try_get_unchecked(3).map_err(Error::query(operation))?,
        owner: row.try_get(4).map_err(Error::query(operation))?,
        station_type: row.try_get(5).map_err(Error::query(operation))?,
        active: row.try_get(6).map_err(Error::query(operation))?,
    };
    let observation_station: Option<String> = row.try_get(7).map_err(Error::query(operation))?;
    let latest = match observation_station {
        Some(_) => Some(read_observation(row, 7)?),
        None => None,
    };
    Ok(StationSummary { station, last_observation_at: latest.as_ref().map(|o| o.observed_at), latest })
}
