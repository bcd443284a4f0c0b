//! PostgreSQL backend of [`Store`](super::Store): the production store that
//! several workers and gateways share.
//!
//! Bulk writes bind one array per column and insert with
//! `INSERT … SELECT * FROM UNNEST(…) ON CONFLICT DO NOTHING RETURNING`, so a
//! batch of thousands of rows is one round trip and one statement.
//!
//! It is not the public interface: callers go through `Store`; [`PgStore::pool`]
//! serves the store's PostgreSQL-only queries elsewhere: the worker's source
//! leases (`ingest.rs`, `FOR UPDATE SKIP LOCKED`) and the outbox drain
//! (`outbox.rs`, under an advisory lock).

use std::str::FromStr;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use super::{
    offset, redact, stored_station_id, Batch, Delivery, Error, HistoryQuery, Origin, Page, PageQuery,
    StationSummary, StoreOptions, OBSERVATION_COLUMNS, PG_CHUNK_ROWS, STATION_COLUMNS,
};
use crate::observation::{Field, Measurements, Observation, StationId, N_FIELDS};
use crate::station::Station;

/// The PostgreSQL migrations, embedded at build time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A PostgreSQL connection pool holding the buoycast schema.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// The pool every query goes through.
    pool: PgPool,
}

/// `INSERT … SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::float8[] …)`;
/// new rows take the column defaults: into the outbox (`pending`), with the next `seq`.
static INSERT_OBSERVATIONS: LazyLock<String> = LazyLock::new(|| insert_observations(Delivery::Outbox));

/// The same, with `pending = false`: stored, never published.
static INSERT_OBSERVATIONS_SILENT: LazyLock<String> = LazyLock::new(|| insert_observations(Delivery::Silent));

fn insert_observations(delivery: Delivery) -> String {
    let mut arrays = String::from("$1::text[], $2::timestamptz[]");
    for n in 0..N_FIELDS {
        arrays.push_str(&format!(", ${}::float8[]", n + 3));
    }
    let rank = format!("${}::smallint", N_FIELDS + 3);
    let (pending_column, pending_value, pending_update) = match delivery {
        Delivery::Outbox => ("", "", "true"),
        Delivery::Silent => (", pending", ", false", "observations.pending"),
    };
    format!(
        "INSERT INTO observations ({columns}{pending_column}, source_rank) \
         SELECT *{pending_value}, {rank} FROM UNNEST({arrays}){corrections}",
        columns = *OBSERVATION_COLUMNS,
        corrections = super::corrections_clause(
            "IS DISTINCT FROM",
            "GREATEST",
            pending_update,
            "nextval('observations_seq')"
        ),
    )
}

/// Station summaries: a page of stations, each joined with its newest
/// observation through the primary-key index (one index probe per station).
static SELECT_SUMMARIES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {STATION_COLUMNS}, {observation} FROM stations_page s \
         LEFT JOIN LATERAL (SELECT * FROM observations o WHERE o.station_id = s.id \
         ORDER BY o.observed_at DESC LIMIT 1) o ON true ORDER BY s.id",
        observation = super::observation_columns("o."),
    )
});

impl PgStore {
    /// Opens a pool to `url` (one connection at once, to fail early).
    pub(super) async fn connect(url: &str, options: &StoreOptions) -> Result<PgStore, Error> {
        let connect_options = PgConnectOptions::from_str(url)
            .map_err(|source| Error::InvalidUrl { url: redact(url), source })?
            .application_name("buoycast");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect_options)
            .await
            .map_err(|source| Error::Connect { url: redact(url), source })?;
        Ok(PgStore { pool })
    }

    /// The underlying pool, for features that need PostgreSQL specifically.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) async fn migrate(&self) -> Result<(), Error> {
        MIGRATOR.run(&self.pool).await.map_err(|source| Error::Migrate { backend: "postgres", source })
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
        let insert: &str = match delivery {
            Delivery::Outbox => &INSERT_OBSERVATIONS,
            Delivery::Silent => &INSERT_OBSERVATIONS_SILENT,
        };
        let operation = "upserting observations";
        let mut tx = self.pool.begin().await.map_err(Error::query(operation))?;
        let station_ids: Vec<&str> = batch.stations.iter().map(StationId::as_str).collect();
        sqlx::query("INSERT INTO stations (id) SELECT * FROM UNNEST($1::text[]) ON CONFLICT (id) DO NOTHING")
            .bind(station_ids)
            .execute(&mut *tx)
            .await
            .map_err(Error::query(operation))?;
        let mut inserted = Vec::new();
        for chunk in batch.chunks(PG_CHUNK_ROWS) {
            let ids: Vec<&str> = chunk.iter().map(|row| row.station_id.as_str()).collect();
            let times: Vec<DateTime<Utc>> = chunk.iter().map(|row| row.observed_at).collect();
            let mut query = sqlx::query(insert).bind(ids).bind(times);
            for field in Field::ALL {
                let column: Vec<Option<f64>> = chunk.iter().map(|row| row.measurements.get(field)).collect();
                query = query.bind(column);
            }
            let rows =
                query.bind(origin as i16).fetch_all(&mut *tx).await.map_err(Error::query(operation))?;
            for row in rows {
                inserted.push(read_observation(&row, 0)?);
            }
        }
        tx.commit().await.map_err(Error::query(operation))?;
        batch.mark_new(inserted)?;
        Ok(batch.into_new())
    }

    pub(super) async fn upsert_stations(&self, stations: &[Station]) -> Result<u64, Error> {
        let result = sqlx::query(
            "INSERT INTO stations (id, name, lat, lon, owner, station_type, active, has_metadata, updated_at) \
             SELECT u.id, u.name, u.lat, u.lon, u.owner, u.station_type, u.active, true, now() \
             FROM UNNEST($1::text[], $2::text[], $3::float8[], $4::float8[], $5::text[], $6::text[], $7::bool[]) \
             AS u(id, name, lat, lon, owner, station_type, active) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, lat = excluded.lat, lon = excluded.lon, \
             owner = excluded.owner, station_type = excluded.station_type, active = excluded.active, \
             has_metadata = true, updated_at = now() \
             WHERE NOT stations.has_metadata \
             OR (stations.name, stations.lat, stations.lon, stations.owner, stations.station_type, stations.active) \
             IS DISTINCT FROM \
             (excluded.name, excluded.lat, excluded.lon, excluded.owner, excluded.station_type, excluded.active)",
        )
        .bind(stations.iter().map(|s| s.id.as_str()).collect::<Vec<_>>())
        .bind(stations.iter().map(|s| s.name.as_deref()).collect::<Vec<_>>())
        .bind(stations.iter().map(|s| s.lat).collect::<Vec<_>>())
        .bind(stations.iter().map(|s| s.lon).collect::<Vec<_>>())
        .bind(stations.iter().map(|s| s.owner.as_deref()).collect::<Vec<_>>())
        .bind(stations.iter().map(|s| s.station_type.as_deref()).collect::<Vec<_>>())
        .bind(stations.iter().map(|s| s.active).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map_err(Error::query("upserting stations"))?;
        Ok(result.rows_affected())
    }

    pub(super) async fn observations_by_station(
        &self,
        id: &StationId,
        query: PageQuery,
    ) -> Result<Page<Observation>, Error> {
        let operation = "reading a station's observations";
        let filter = |builder: &mut QueryBuilder<'_, Postgres>| {
            builder.push(" FROM observations WHERE station_id = ").push_bind(id.as_str().to_owned());
            if let Some(since) = query.since {
                builder.push(" AND observed_at > ").push_bind(since);
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
            QueryBuilder::new(format!("SELECT {} FROM observations WHERE true", *OBSERVATION_COLUMNS));
        if !query.stations.is_empty() {
            let ids: Vec<String> = query.stations.iter().map(|id| id.as_str().to_owned()).collect();
            select.push(" AND station_id = ANY(").push_bind(ids).push(")");
        }
        if let Some(since) = query.since {
            select.push(" AND observed_at >= ").push_bind(since);
        }
        if let Some(until) = query.until {
            select.push(" AND observed_at <= ").push_bind(until);
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
            let sql = format!(
                "WITH stations_page AS (SELECT * FROM stations ORDER BY id LIMIT $1 OFFSET $2) {}",
                *SELECT_SUMMARIES
            );
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
        let sql =
            format!("WITH stations_page AS (SELECT * FROM stations WHERE id = $1) {}", *SELECT_SUMMARIES);
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::query("reading a station"))?;
        row.as_ref().map(read_summary).transpose()
    }
}

/// Reads the observation columns starting at column `first`.
pub(super) fn read_observation(row: &PgRow, first: usize) -> Result<Observation, Error> {
    let operation = "decoding an observation";
    let station_id: String = row.try_get(first).map_err(Error::query(operation))?;
    let observed_at: DateTime<Utc> = row.try_get(first + 1).map_err(Error::query(operation))?;
    let mut measurements = Measurements::default();
    for field in Field::ALL {
        let value: Option<f64> = row.try_get(first + 2 + field.index()).map_err(Error::query(operation))?;
        measurements.set(field, value);
    }
    Ok(Observation { station_id: stored_station_id(&station_id)?, observed_at, measurements })
}

/// Reads [`STATION_COLUMNS`] and the (possibly all-NULL) observation after them.
fn read_summary(row: &PgRow) -> Result<StationSummary, Error> {
    let operation = "decoding a station";
    let id: String = row.try_get(0).map_err(Error::query(operation))?;
    let station = Station {
        id: stored_station_id(&id)?,
        name: row.try_get(1).map_err(Error::query(operation))?,
        lat: row.try_get(2).map_err(Error::query(operation))?,
        lon: row.try_get(3).map_err(Error::query(operation))?,
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
