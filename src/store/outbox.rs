//! The transactional outbox (docs/REFERENCE.md, Worker: "nothing inserted is
//! lost to subscribers"): observations and spectra inserted with
//! [`Delivery::Outbox`](super::Delivery) are `pending` in the same transaction
//! that stores them; [`Store::drain_outbox`] publishes the oldest pending rows
//! of one [`OutboxTable`] and marks them with their bus id. Both tables are
//! keyed (station_id, observed_at) and carry `revision`, `pending`, `bus_id`
//! and `published_at`, so one drain serves both; only the columns read and
//! the order differ.
//!
//! On PostgreSQL a drain runs in one transaction: it takes a transaction-level
//! advisory lock (so drains by several workers queue instead of interleaving,
//! which keeps the insertion order on the bus), claims the rows with
//! `FOR UPDATE SKIP LOCKED`, publishes, marks, and commits. A crash or a lost
//! connection after publishing leaves the rows pending; the next drain
//! publishes them again, and the bus's idempotent publish
//! ([`Bus::publish_once`](crate::bus::Bus::publish_once)) answers with the
//! ids they already got instead of publishing twice.
//!
//! On SQLite (one in-process worker) a drain reads, publishes, then marks in
//! a short write transaction, so the writer lock is never held while publishing.
//!
//! It also answers which rows were published recently, to seed the in-process
//! bus's catch-up buffer after a restart. It deliberately does not talk to the bus.

use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Error, Store, OBSERVATION_COLUMNS};
use crate::bus::parse_stream_id;
use crate::observation::{ObservationEvent, N_FIELDS};

/// The PostgreSQL advisory-lock key that serializes outbox drains
/// (`hashtext('buoycast.outbox')` would do too; a constant is clearer).
const OUTBOX_LOCK_KEY: i64 = 0x6275_6f79_6f62_7831; // "buoyobx1"

/// A table whose rows go through the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxTable {
    /// `observations`, published in insertion order (`seq`).
    Observations,
    /// `spectra`, published oldest observation first.
    Spectra,
}

impl OutboxTable {
    /// Both tables, in the order a worker drains them.
    pub const ALL: [OutboxTable; 2] = [OutboxTable::Observations, OutboxTable::Spectra];

    fn name(self) -> &'static str {
        match self {
            OutboxTable::Observations => "observations",
            OutboxTable::Spectra => "spectra",
        }
    }

    /// The row's columns, before `revision[, bus_id]`.
    fn columns(self, postgres: bool) -> String {
        match (self, postgres) {
            (OutboxTable::Observations, _) => OBSERVATION_COLUMNS.clone(),
            (OutboxTable::Spectra, true) => "station_id, observed_at, sep_freq_hz, bands::text".to_owned(),
            (OutboxTable::Spectra, false) => "station_id, observed_at, sep_freq_hz, bands".to_owned(),
        }
    }

    /// Where `revision` is in a selected row.
    fn revision_at(self) -> usize {
        match self {
            OutboxTable::Observations => N_FIELDS + 2,
            OutboxTable::Spectra => 4,
        }
    }

    fn pending_order(self) -> &'static str {
        match self {
            OutboxTable::Observations => "seq",
            OutboxTable::Spectra => "observed_at, station_id",
        }
    }

    /// A PostgreSQL row `{columns}, revision[, bus_id]` as an event.
    fn pg_event(self, row: &sqlx::postgres::PgRow, with_id: bool) -> Result<ObservationEvent, Error> {
        let operation = "reading an outbox row";
        let revision: i32 = row.try_get(self.revision_at()).map_err(Error::query(operation))?;
        let event = match self {
            OutboxTable::Observations => {
                ObservationEvent::new(None, super::postgres::read_observation(row, 0)?)
            }
            OutboxTable::Spectra => ObservationEvent::spectrum(None, super::spectra::pg_spectrum(row)?),
        };
        let id = if with_id {
            row.try_get(self.revision_at() + 1).map_err(Error::query(operation))?
        } else {
            None
        };
        Ok(revised(event, i64::from(revision), id))
    }

    /// A SQLite row `{columns}, revision[, bus_id]` as an event.
    fn sqlite_event(self, row: &sqlx::sqlite::SqliteRow, with_id: bool) -> Result<ObservationEvent, Error> {
        let operation = "reading an outbox row";
        let revision: i64 = row.try_get(self.revision_at()).map_err(Error::query(operation))?;
        let event = match self {
            OutboxTable::Observations => {
                ObservationEvent::new(None, super::sqlite::read_observation(row, 0)?)
            }
            OutboxTable::Spectra => ObservationEvent::spectrum(None, super::spectra::sqlite_spectrum(row)?),
        };
        let id = if with_id {
            row.try_get(self.revision_at() + 1).map_err(Error::query(operation))?
        } else {
            None
        };
        Ok(revised(event, revision, id))
    }
}

/// `event` for a stored row at `revision` (negative or huge values, which
/// the schema never writes, count as 0 or saturate), with its bus id.
fn revised(mut event: ObservationEvent, revision: i64, id: Option<String>) -> ObservationEvent {
    event.revision = u32::try_from(revision.max(0)).unwrap_or(u32::MAX);
    event.id = id;
    event
}

/// What one drain round did.
#[derive(Debug)]
pub enum Drained<E> {
    /// Nothing was pending.
    Empty,
    /// This many rows were published and marked, oldest first.
    Published(usize),
    /// Publishing failed: the rows stay pending for the next round.
    Failed {
        /// Rows that were claimed and stay pending.
        n_rows: usize,
        /// The publisher's error.
        error: E,
    },
}

impl Store {
    /// Publishes at most `limit` pending rows of `table`, oldest first, with
    /// `publish` (which must return one bus id per row, in order), and marks
    /// them published with those ids. Each event carries its row's
    /// `revision` (a correction is published again as a new version); a row
    /// changed again while it was being published stays pending.
    ///
    /// When `publish` fails the rows stay pending and its error comes back in
    /// [`Drained::Failed`]; an `Err` is the store's own failure.
    pub async fn drain_outbox<F, Fut, E>(
        &self,
        table: OutboxTable,
        limit: usize,
        publish: F,
    ) -> Result<Drained<E>, Error>
    where
        F: FnOnce(Vec<ObservationEvent>) -> Fut,
        Fut: Future<Output = Result<Vec<String>, E>>,
    {
        let operation = "draining the outbox";
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let (name, order) = (table.name(), table.pending_order());
        match self {
            Store::Postgres(store) => {
                let mut tx = store.pool().begin().await.map_err(Error::query(operation))?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(OUTBOX_LOCK_KEY)
                    .execute(&mut *tx)
                    .await
                    .map_err(Error::query(operation))?;
                let sql = format!(
                    "SELECT {}, revision FROM {name} WHERE pending ORDER BY {order} LIMIT $1 FOR UPDATE SKIP LOCKED",
                    table.columns(true)
                );
                let rows = sqlx::query(&sql)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(Error::query(operation))?;
                let rows =
                    rows.iter().map(|row| table.pg_event(row, false)).collect::<Result<Vec<_>, _>>()?;
                if rows.is_empty() {
                    tx.commit().await.map_err(Error::query(operation))?;
                    return Ok(Drained::Empty);
                }
                let n_rows = rows.len();
                let ids = match publish(rows.clone()).await {
                    Ok(ids) => check_ids(ids, n_rows)?,
                    Err(error) => {
                        tx.rollback().await.map_err(Error::query(operation))?;
                        return Ok(Drained::Failed { n_rows, error });
                    }
                };
                // The rows are locked (FOR UPDATE): none changed meanwhile.
                let sql = format!(
                    "UPDATE {name} o SET pending = false, bus_id = u.bus_id, published_at = now() \
                     FROM UNNEST($1::text[], $2::timestamptz[], $3::text[]) AS u(station_id, observed_at, bus_id) \
                     WHERE o.station_id = u.station_id AND o.observed_at = u.observed_at"
                );
                sqlx::query(&sql)
                    .bind(rows.iter().map(|row| row.observation.station_id.as_str()).collect::<Vec<_>>())
                    .bind(rows.iter().map(|row| row.observation.observed_at).collect::<Vec<_>>())
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await
                    .map_err(Error::query(operation))?;
                tx.commit().await.map_err(Error::query(operation))?;
                Ok(Drained::Published(n_rows))
            }
            Store::Sqlite(store) => {
                let sql = format!(
                    "SELECT {}, revision FROM {name} WHERE pending = 1 ORDER BY {order} LIMIT ?",
                    table.columns(false)
                );
                let rows = sqlx::query(&sql)
                    .bind(limit)
                    .fetch_all(store.pool())
                    .await
                    .map_err(Error::query(operation))?;
                let rows =
                    rows.iter().map(|row| table.sqlite_event(row, false)).collect::<Result<Vec<_>, _>>()?;
                if rows.is_empty() {
                    return Ok(Drained::Empty);
                }
                let n_rows = rows.len();
                let ids = match publish(rows.clone()).await {
                    Ok(ids) => check_ids(ids, n_rows)?,
                    Err(error) => return Ok(Drained::Failed { n_rows, error }),
                };
                let now = Utc::now().timestamp_micros();
                let mut tx =
                    store.pool().begin_with("BEGIN IMMEDIATE").await.map_err(Error::query(operation))?;
                // Only the version published: a correction stored meanwhile stays pending.
                let sql = format!(
                    "UPDATE {name} SET pending = 0, bus_id = ?, published_at = ? \
                     WHERE station_id = ? AND observed_at = ? AND revision = ?"
                );
                for (row, id) in rows.iter().zip(&ids) {
                    sqlx::query(&sql)
                        .bind(id)
                        .bind(now)
                        .bind(row.observation.station_id.as_str())
                        .bind(row.observation.observed_at.timestamp_micros())
                        .bind(i64::from(row.revision))
                        .execute(&mut *tx)
                        .await
                        .map_err(Error::query(operation))?;
                }
                tx.commit().await.map_err(Error::query(operation))?;
                Ok(Drained::Published(n_rows))
            }
        }
    }

    /// How many rows (observations and spectra) wait in the outbox.
    pub async fn outbox_depth(&self) -> Result<u64, Error> {
        let operation = "counting the outbox";
        let count: i64 = match self {
            Store::Postgres(store) => {
                sqlx::query_scalar(
                    "SELECT (SELECT count(*) FROM observations WHERE pending) \
                     + (SELECT count(*) FROM spectra WHERE pending)",
                )
                .fetch_one(store.pool())
                .await
            }
            Store::Sqlite(store) => {
                sqlx::query_scalar(
                    "SELECT (SELECT count(*) FROM observations WHERE pending = 1) \
                     + (SELECT count(*) FROM spectra WHERE pending = 1)",
                )
                .fetch_one(store.pool())
                .await
            }
        }
        .map_err(Error::query(operation))?;
        Ok(count.max(0) as u64)
    }

    /// The newest `limit` rows of each table published at or after `since`,
    /// with their bus ids, in bus-id order (oldest first).
    ///
    /// The embedded mode seeds its in-process bus with these at start-up, so
    /// a client reconnecting with `Last-Event-ID` after a restart catches up.
    pub async fn published_since(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ObservationEvent>, Error> {
        let operation = "reading recently published rows";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut events = Vec::new();
        for table in OutboxTable::ALL {
            let name = table.name();
            match self {
                Store::Postgres(store) => {
                    let sql = format!(
                        "SELECT {}, revision, bus_id FROM {name} WHERE published_at >= $1 AND bus_id IS NOT NULL \
                         ORDER BY published_at DESC LIMIT $2",
                        table.columns(true)
                    );
                    let rows = sqlx::query(&sql)
                        .bind(since)
                        .bind(limit)
                        .fetch_all(store.pool())
                        .await
                        .map_err(Error::query(operation))?;
                    for row in &rows {
                        events.push(table.pg_event(row, true)?);
                    }
                }
                Store::Sqlite(store) => {
                    let sql = format!(
                        "SELECT {}, revision, bus_id FROM {name} WHERE published_at >= ? AND bus_id IS NOT NULL \
                         ORDER BY published_at DESC LIMIT ?",
                        table.columns(false)
                    );
                    let rows = sqlx::query(&sql)
                        .bind(since.timestamp_micros())
                        .bind(limit)
                        .fetch_all(store.pool())
                        .await
                        .map_err(Error::query(operation))?;
                    for row in &rows {
                        events.push(table.sqlite_event(row, true)?);
                    }
                }
            }
        }
        // Ids are `{ms}-{seq}`: compare them as numbers, not as text.
        let mut keyed = Vec::with_capacity(events.len());
        for event in events {
            let id = event.id.as_deref().unwrap_or_default();
            let key =
                parse_stream_id(id).ok_or_else(|| Error::Corrupt { what: "bus id", value: id.to_owned() })?;
            keyed.push((key, event));
        }
        keyed.sort_by_key(|(key, _)| *key);
        Ok(keyed.into_iter().map(|(_, event)| event).collect())
    }
}

/// The publisher's ids, checked to be one per row.
fn check_ids(ids: Vec<String>, n_rows: usize) -> Result<Vec<String>, Error> {
    if ids.len() != n_rows {
        return Err(Error::Corrupt {
            what: "publish reply",
            value: format!("{} ids for {n_rows} rows", ids.len()),
        });
    }
    Ok(ids)
}
