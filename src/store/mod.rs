//! The store: observations and station metadata, in PostgreSQL (production,
//! several workers and gateways sharing one database) or in one SQLite file
//! (the embedded default), chosen by the database URL (docs/ARCHITECTURE.md;
//! docs/REFERENCE.md, Configuration).
//!
//! [`Store`] is the one interface the worker and the server use; the two
//! backends (`postgres.rs`, `sqlite.rs`) answer the same queries with the same
//! results, which `tests/it/store.rs` checks by running one contract suite
//! against both.
//!
//! Decisions the callers can rely on:
//! - The key is (`station_id`, `observed_at`). [`Store::upsert_observations`]
//!   inserts new rows and applies corrections to stored ones (see
//!   [`Origin`]: a value filled in or revised), and returns exactly the rows
//!   it inserted or changed, in input order, each once; an identical
//!   re-fetch changes and returns nothing. A changed row's `revision` goes up
//!   by one and it enters the outbox again, so the worker publishes each
//!   distinct version of a row once.
//! - Observations may arrive for a station whose metadata is unknown: the
//!   upsert creates a bare `stations` row (id only, see [`Station::bare`]) in
//!   the same transaction, so every station with data is listed by
//!   [`Store::stations`]; [`Store::upsert_stations`] fills the metadata in later.
//! - Times are kept to the microsecond (PostgreSQL's precision; SQLite stores
//!   unix microseconds); finer parts are truncated before insert, and the rows
//!   returned by the upsert carry the stored time.
//! - Measurements round-trip bit for bit; a missing one stays `None`.
//! - Error messages never contain a password: URLs in them are redacted.
//!
//! - New rows go to the transactional outbox (`pending`) unless inserted
//!   with [`Delivery::Silent`] (backfill); the worker publishes them and marks
//!   them with their bus id through [`Store::drain_outbox`] (`outbox.rs`).
//! - The worker's per-source schedule and leases live in `ingest.rs`.
//!
//! It deliberately is not a cache or a job queue.

mod ingest;
mod outbox;
mod postgres;
mod spectra;
mod sqlite;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use serde::{Serialize, Serializer};

use crate::observation::{format_time, Field, Observation, StationId};
use crate::station::Station;

pub use ingest::{ClaimedSource, SourceUpdate};
pub use outbox::{Drained, OutboxTable};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Whether the rows an upsert inserts are to be published on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Into the outbox (`pending`): the worker publishes them, each once.
    Outbox,
    /// Stored only, never published (backfill without `--publish`).
    Silent,
}

/// Where a batch of rows comes from, which decides what wins when two
/// sources disagree about the same (station, time) (docs/REFERENCE.md,
/// Observation, "Corrections"):
/// - a value NDBC no longer reports (null) never erases a stored value;
/// - a non-null value replaces the stored one when its source ranks at least
///   as high as the source that last set the row, and fills it in when the
///   stored one is null whatever the ranks.
///
/// A station's own file is the record NDBC revises; `latest_obs.txt` is a
/// summary of the newest rows, rounded and sometimes shifted by a poll. So
/// the station file wins, and the two never flip a row back and forth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// `latest_obs.txt` and any other summary source (rank 1).
    Summary = 1,
    /// A station's own file: realtime2 `{ID}.txt`, historical files (rank 2).
    StationFile = 2,
}

/// A connected store: a pool of connections to one database.
///
/// Cloning is cheap (the pools are reference-counted) and clones share the pool.
#[derive(Debug, Clone)]
pub enum Store {
    /// PostgreSQL (`postgres://` or `postgresql://` URL).
    Postgres(PgStore),
    /// One SQLite file (`sqlite:` URL or a plain path).
    Sqlite(SqliteStore),
}

/// Connection settings that are not part of the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most connections the pool keeps open.
    pub max_connections: u32,
    /// How long connecting, and each query waiting for a free connection, may take before failing.
    pub acquire_timeout: Duration,
    /// SQLite only: how long a writer waits for another writer's lock before failing.
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Errors of the store. URLs in messages have their password redacted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported database url {url}: expected postgres://, postgresql://, sqlite: or a file path")]
    UnsupportedUrl { url: String },
    #[error("invalid database url {url}: {source}")]
    InvalidUrl { url: String, source: sqlx::Error },
    #[error("creating the database directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("connecting to {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("migrating the {backend} database: {source}")]
    Migrate { backend: &'static str, source: sqlx::migrate::MigrateError },
    #[error("{operation} failed: {source}")]
    Query { operation: &'static str, source: sqlx::Error },
    #[error("the database holds an invalid {what}: {value:?}")]
    Corrupt { what: &'static str, value: String },
}

impl Error {
    /// Wraps a query error, naming what was being done.
    fn query(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
        move |source| Error::Query { operation, source }
    }
}

/// One page of by-station history (`?page=&limit=&since=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    /// 1-based page number; 0 is read as 1.
    pub page: u32,
    /// Rows per page; 0 returns no rows but still the total.
    pub limit: u32,
    /// Only observations strictly after this time (the original's
    /// `observedAt > since`: polling with the last time seen repeats nothing).
    pub since: Option<DateTime<Utc>>,
}

/// History across stations (`?station=&since=&until=&limit=`), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryQuery {
    /// Only these stations; empty means every station.
    pub stations: Vec<StationId>,
    /// Only observations at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only observations at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// Most rows returned.
    pub limit: u32,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// This page's rows.
    pub items: Vec<T>,
    /// How many rows match the filter across all pages.
    pub total: u64,
}

/// A station with its newest observation.
///
/// Serializes flat, in the REST form: the [`Station`] keys, then
/// `lastObservationAt` and `latest` (both `null` for a station without data).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StationSummary {
    /// The metadata; only the id (and `active: true`) for a station known only from its data.
    #[serde(flatten)]
    pub station: Station,
    /// Time of the newest stored observation.
    #[serde(serialize_with = "serialize_optional_time")]
    pub last_observation_at: Option<DateTime<Utc>>,
    /// The newest stored observation.
    pub latest: Option<Observation>,
}

fn serialize_optional_time<S: Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.serialize_str(&format_time(time)),
        None => serializer.serialize_none(),
    }
}

impl Store {
    /// Connects to the database `url` names.
    ///
    /// `postgres://…` and `postgresql://…` open a PostgreSQL pool; `sqlite://PATH`,
    /// `sqlite:PATH` or a plain `PATH` open (creating it and its directory when
    /// missing) a SQLite file in WAL mode; `sqlite::memory:` opens a private
    /// in-memory database on a single connection (it lives as long as the store). It connects at once, so an unreachable
    /// database fails here. It does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Store, Error> {
        match target(url)? {
            Target::Postgres => Ok(Store::Postgres(PgStore::connect(url, &options).await?)),
            Target::Sqlite(path) => Ok(Store::Sqlite(SqliteStore::connect(path, &options).await?)),
            Target::SqliteMemory => Ok(Store::Sqlite(SqliteStore::connect_memory(&options).await?)),
        }
    }

    /// `"postgres"` or `"sqlite"`, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgres",
            Store::Sqlite(_) => "sqlite",
        }
    }

    /// Applies the migrations embedded in the binary that the database lacks.
    ///
    /// Safe to run again (a no-op) and, on PostgreSQL, from several processes
    /// at once (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), Error> {
        match self {
            Store::Postgres(store) => store.migrate().await,
            Store::Sqlite(store) => store.migrate().await,
        }
    }

    /// Checks that the database answers a query (readiness).
    pub async fn ping(&self) -> Result<(), Error> {
        match self {
            Store::Postgres(store) => store.ping().await,
            Store::Sqlite(store) => store.ping().await,
        }
    }

    /// Closes the pool: waits for checked-out connections to come back, then
    /// closes them all (graceful shutdown). Later queries fail.
    pub async fn close(&self) {
        match self {
            Store::Postgres(store) => store.close().await,
            Store::Sqlite(store) => store.close().await,
        }
    }

    /// Inserts the observations whose key is not stored yet, applies the
    /// corrections the others carry (by the rules of [`Origin`]), and returns
    /// exactly the rows inserted or changed, as stored, in input order.
    ///
    /// A key repeated within `rows` counts once (its first occurrence). A
    /// re-upsert of the same file changes and returns nothing. Runs in one
    /// transaction (all or nothing), in batches, and creates a bare
    /// `stations` row for each station not known yet.
    ///
    /// The rows come from a station file, and inserted and changed rows
    /// enter the outbox (see [`Delivery::Outbox`]).
    pub async fn upsert_observations(&self, rows: &[Observation]) -> Result<Vec<Observation>, Error> {
        self.upsert_observations_with(rows, Delivery::Outbox, Origin::StationFile).await
    }

    /// [`Store::upsert_observations`], choosing whether inserted and changed
    /// rows are to be published, and naming where the rows come from.
    pub async fn upsert_observations_with(
        &self,
        rows: &[Observation],
        delivery: Delivery,
        origin: Origin,
    ) -> Result<Vec<Observation>, Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let started = std::time::Instant::now();
        let batch = Batch::new(rows);
        let new_rows = match self {
            Store::Postgres(store) => store.upsert_observations(batch, delivery, origin).await?,
            Store::Sqlite(store) => store.upsert_observations(batch, delivery, origin).await?,
        };
        tracing::debug!(
            backend = self.backend(),
            n_rows = rows.len(),
            n_new = new_rows.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "upserted observations"
        );
        Ok(new_rows)
    }

    /// Inserts or updates station metadata; returns how many stations were
    /// inserted or actually changed.
    ///
    /// A station listed twice counts once (its last occurrence wins).
    pub async fn upsert_stations(&self, stations: &[Station]) -> Result<u64, Error> {
        if stations.is_empty() {
            return Ok(0);
        }
        let stations = dedup_stations(stations);
        match self {
            Store::Postgres(store) => store.upsert_stations(&stations).await,
            Store::Sqlite(store) => store.upsert_stations(&stations).await,
        }
    }

    /// How many stations are marked active (the `stations_active` gauge).
    pub async fn count_active_stations(&self) -> Result<u64, Error> {
        const SQL: &str = "SELECT count(*) FROM stations WHERE active";
        let count: i64 = match self {
            Store::Postgres(store) => sqlx::query_scalar(SQL).fetch_one(store.pool()).await,
            Store::Sqlite(store) => sqlx::query_scalar(SQL).fetch_one(store.pool()).await,
        }
        .map_err(Error::query("counting active stations"))?;
        Ok(count.max(0) as u64)
    }

    /// One page of a station's history, counted from the newest row: page 1
    /// is the newest `limit` rows, page 2 the `limit` before them, and so on;
    /// each page is returned oldest first. With the total number of rows
    /// after `query.since`.
    pub async fn observations_by_station(
        &self,
        id: &StationId,
        query: PageQuery,
    ) -> Result<Page<Observation>, Error> {
        match self {
            Store::Postgres(store) => store.observations_by_station(id, query).await,
            Store::Sqlite(store) => store.observations_by_station(id, query).await,
        }
    }

    /// History across stations, newest first (ties by station id), at most
    /// `query.limit` rows.
    pub async fn observations(&self, query: HistoryQuery) -> Result<Vec<Observation>, Error> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        match self {
            Store::Postgres(store) => store.observations(&query).await,
            Store::Sqlite(store) => store.observations(&query).await,
        }
    }

    /// One page of stations ordered by id (1-based `page`), each with its
    /// newest observation, and the total number of stations.
    pub async fn stations(&self, page: u32, limit: u32) -> Result<Page<StationSummary>, Error> {
        match self {
            Store::Postgres(store) => store.stations(page, limit).await,
            Store::Sqlite(store) => store.stations(page, limit).await,
        }
    }

    /// One station with its newest observation; `None` when the store has
    /// neither metadata nor data for it.
    pub async fn station(&self, id: &StationId) -> Result<Option<StationSummary>, Error> {
        match self {
            Store::Postgres(store) => store.station(id).await,
            Store::Sqlite(store) => store.station(id).await,
        }
    }
}

/// Which backend a URL names.
#[derive(Debug, PartialEq)]
enum Target {
    Postgres,
    Sqlite(PathBuf),
    /// `sqlite::memory:`: one private in-memory database (for tests).
    SqliteMemory,
}

fn target(url: &str) -> Result<Target, Error> {
    let unsupported = || Error::UnsupportedUrl { url: redact(url) };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres);
    }
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if url.contains("://") {
        return Err(unsupported());
    } else {
        url
    };
    // `sqlite:` URLs may carry options (`?mode=rwc`); the store sets its own.
    let path = if url.starts_with("sqlite:") { path.split('?').next().unwrap_or(path) } else { path };
    if path == ":memory:" && url.starts_with("sqlite:") {
        return Ok(Target::SqliteMemory);
    }
    if path.is_empty() || path.starts_with(":memory:") {
        return Err(unsupported());
    }
    Ok(Target::Sqlite(PathBuf::from(path)))
}

/// The URL with credentials masked, for messages and logs.
fn redact(url: &str) -> String {
    crate::config::redact_url(url)
}

/// Rows of observations per insert statement.
///
/// PostgreSQL binds one array per column, so only statement size limits it;
/// SQLite binds 16 values per row and allows 32766 per statement.
const PG_CHUNK_ROWS: usize = 5_000;
const SQLITE_CHUNK_ROWS: usize = 1_000;

/// An upsert batch: the input rows with times truncated to microseconds and
/// repeated keys dropped, in input order, plus the insert order (sorted by key)
/// and which rows the database reported as new.
///
/// Inserting in key order makes concurrent upserts take row locks in the same
/// order, so two workers writing overlapping batches cannot deadlock.
struct Batch {
    /// Unique rows in input order.
    rows: Vec<Observation>,
    /// Indices into `rows`, sorted by (station id, time).
    insert_order: Vec<usize>,
    /// Distinct station ids, sorted.
    stations: Vec<StationId>,
    /// `is_new[i]`: the database inserted `rows[i]`.
    is_new: Vec<bool>,
}

impl Batch {
    fn new(input: &[Observation]) -> Batch {
        let mut seen = std::collections::HashSet::with_capacity(input.len());
        let mut rows = Vec::with_capacity(input.len());
        for row in input {
            let observed_at = truncate_to_micros(row.observed_at);
            if seen.insert((row.station_id.clone(), observed_at)) {
                rows.push(Observation { observed_at, ..row.clone() });
            }
        }
        let mut insert_order: Vec<usize> = (0..rows.len()).collect();
        insert_order.sort_unstable_by(|&a, &b| {
            (&rows[a].station_id, rows[a].observed_at).cmp(&(&rows[b].station_id, rows[b].observed_at))
        });
        let mut stations: Vec<StationId> = insert_order.iter().map(|&i| rows[i].station_id.clone()).collect();
        stations.dedup();
        let is_new = vec![false; rows.len()];
        Batch { rows, insert_order, stations, is_new }
    }

    /// The rows to insert, chunk by chunk, in key order.
    fn chunks(&self, rows_per_chunk: usize) -> impl Iterator<Item = Vec<&Observation>> + '_ {
        self.insert_order.chunks(rows_per_chunk).map(|chunk| chunk.iter().map(|&i| &self.rows[i]).collect())
    }

    /// Marks the rows the database returned as inserted or changed, taking
    /// their values as stored (a correction may keep some stored values).
    fn mark_new(&mut self, stored: Vec<Observation>) -> Result<(), Error> {
        let index: HashMap<(&str, DateTime<Utc>), usize> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| ((row.station_id.as_str(), row.observed_at), i))
            .collect();
        let mut hits = Vec::new();
        for row in stored {
            match index.get(&(row.station_id.as_str(), row.observed_at)) {
                Some(&i) => hits.push((i, row)),
                None => {
                    return Err(Error::Corrupt {
                        what: "upserted key",
                        value: format!("{} {}", row.station_id, format_time(&row.observed_at)),
                    })
                }
            }
        }
        for (i, row) in hits {
            self.is_new[i] = true;
            self.rows[i] = row;
        }
        Ok(())
    }

    /// The inserted rows, in input order.
    fn into_new(self) -> Vec<Observation> {
        self.rows.into_iter().zip(self.is_new).filter_map(|(row, is_new)| is_new.then_some(row)).collect()
    }
}

/// Drops the sub-microsecond part, which neither backend stores.
fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = time.nanosecond();
    time.with_nanosecond(nanos - nanos % 1_000).unwrap_or(time)
}

/// The last occurrence of each station id, in first-seen order.
fn dedup_stations(stations: &[Station]) -> Vec<Station> {
    let mut position: HashMap<&StationId, usize> = HashMap::with_capacity(stations.len());
    let mut out: Vec<Station> = Vec::with_capacity(stations.len());
    for station in stations {
        match position.get(&station.id) {
            Some(&i) => out[i] = station.clone(),
            None => {
                position.insert(&station.id, out.len());
                out.push(station.clone());
            }
        }
    }
    out
}

/// Offset of a 1-based page.
fn offset(page: u32, limit: u32) -> i64 {
    (i64::from(page.max(1)) - 1) * i64::from(limit)
}

/// The observation columns in the order the backends read them:
/// `station_id, observed_at`, then the 14 measurements in [`Field::ALL`] order,
/// each prefixed with `prefix` (a table alias and a dot, or nothing).
fn observation_columns(prefix: &str) -> String {
    let mut columns = format!("{prefix}station_id, {prefix}observed_at");
    for field in Field::ALL {
        columns.push_str(", ");
        columns.push_str(prefix);
        columns.push_str(field.column());
    }
    columns
}

/// [`observation_columns`] without a prefix.
static OBSERVATION_COLUMNS: LazyLock<String> = LazyLock::new(|| observation_columns(""));

/// The corrections clause of both dialects' observation upsert, after
/// `INSERT … ` (docs: [`Origin`]): on a key conflict each measurement takes
/// the merged value, and the row is updated (revision + 1, back into the
/// outbox when `pending` says so, next `seq`) only when a merged value
/// differs from the stored one; it returns the stored columns of every row
/// inserted or changed.
///
/// `distinct` is the dialect's null-safe "differs" operator, `greatest` its
/// two-argument maximum, `pending` and `seq` the new values of those columns.
fn corrections_clause(distinct: &str, greatest: &str, pending: &str, seq: &str) -> String {
    let merged = |column: &str| {
        format!(
            "CASE WHEN excluded.{column} IS NULL THEN observations.{column} \
             WHEN observations.{column} IS NULL OR excluded.source_rank >= observations.source_rank \
             THEN excluded.{column} ELSE observations.{column} END"
        )
    };
    let mut set = Vec::new();
    let mut changed = Vec::new();
    for field in Field::ALL {
        let column = field.column();
        set.push(format!("{column} = {}", merged(column)));
        changed.push(format!("({}) {distinct} observations.{column}", merged(column)));
    }
    format!(
        " ON CONFLICT (station_id, observed_at) DO UPDATE SET {}, \
         source_rank = {greatest}(observations.source_rank, excluded.source_rank), \
         revision = observations.revision + 1, pending = {pending}, seq = {seq} \
         WHERE {} RETURNING {}",
        set.join(", "),
        changed.join(" OR "),
        *OBSERVATION_COLUMNS,
    )
}

/// The station columns in the order the backends read them.
const STATION_COLUMNS: &str = "s.id, s.name, s.lat, s.lon, s.owner, s.station_type, s.active";

/// Parses a station id read from the database.
fn stored_station_id(raw: &str) -> Result<StationId, Error> {
    StationId::parse(raw).map_err(|_| Error::Corrupt { what: "station id", value: raw.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn urls_choose_the_backend() {
        assert_eq!(target("postgres://u:p@db/buoycast").expect("pg"), Target::Postgres);
        assert_eq!(target("postgresql://db/buoycast").expect("pg"), Target::Postgres);
        assert_eq!(
            target("sqlite://./data/buoycast.db").expect("sqlite"),
            Target::Sqlite("./data/buoycast.db".into())
        );
        assert_eq!(target("sqlite:///var/lib/b.db").expect("sqlite"), Target::Sqlite("/var/lib/b.db".into()));
        assert_eq!(target("sqlite:data/b.db?mode=rwc").expect("sqlite"), Target::Sqlite("data/b.db".into()));
        assert_eq!(target("data/buoycast.db").expect("path"), Target::Sqlite("data/buoycast.db".into()));
        let error = target("mysql://root:hunter2@db/x").expect_err("unsupported");
        assert_eq!(
            error.to_string(),
            "unsupported database url mysql://root:***@db/x: expected postgres://, postgresql://, sqlite: or a file path"
        );
        assert_eq!(target("sqlite::memory:").expect("memory"), Target::SqliteMemory);
        assert_eq!(target("sqlite://:memory:").expect("memory"), Target::SqliteMemory);
        assert!(target("").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://buoy:s3cret@db:5432/buoycast"), "postgres://buoy:***@db:5432/buoycast");
        assert_eq!(
            redact("postgres://db/buoycast?user=a&password=s3cret"),
            "postgres://db/buoycast?user=a&password=***"
        );
        assert_eq!(redact("postgres://buoy@db/buoycast"), "postgres://buoy@db/buoycast");
        assert_eq!(redact("sqlite://./data/buoycast.db"), "sqlite://./data/buoycast.db");
        assert_eq!(redact("data/buoycast.db"), "data/buoycast.db");
        assert_eq!(redact("weird://u:p@[not a url"), "weird://***@[not a url");
    }

    #[test]
    fn batches_drop_repeated_keys_and_sort_for_insert() {
        let time = |minute| Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).single().expect("valid time");
        let obs = |id: &str, minute| Observation {
            station_id: StationId::parse(id).expect("valid id"),
            observed_at: time(minute),
            measurements: Default::default(),
        };
        let input = [obs("b", 1), obs("a", 2), obs("b", 1), obs("a", 1)];
        let mut batch = Batch::new(&input);
        assert_eq!(batch.rows.len(), 3);
        assert_eq!(batch.stations.iter().map(StationId::as_str).collect::<Vec<_>>(), ["a", "b"]);
        let order: Vec<_> =
            batch.chunks(2).flatten().map(|o| (o.station_id.as_str().to_owned(), o.observed_at)).collect();
        assert_eq!(order, [("a".to_owned(), time(1)), ("a".to_owned(), time(2)), ("b".to_owned(), time(1))]);
        batch.mark_new(vec![obs("a", 1), obs("b", 1)]).expect("known keys");
        assert_eq!(batch.into_new(), [obs("b", 1), obs("a", 1)]);
    }

    #[test]
    fn times_keep_microseconds() {
        let time = Utc.timestamp_opt(1_700_000_000, 123_456_789).single().expect("valid time");
        assert_eq!(truncate_to_micros(time).nanosecond(), 123_456_000);
    }
}
