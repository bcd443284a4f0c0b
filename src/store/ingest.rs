//! The worker's schedule: one `ingest_sources` row per thing it polls
//! (`latest_obs`, `stations`, `station:{id}`), with when it is next due, its
//! conditional-GET validators, its failure count, and a lease.
//!
//! Several workers share one PostgreSQL: [`Store::claim_sources`] takes due,
//! unleased rows with `UPDATE … WHERE key IN (SELECT … FOR UPDATE SKIP LOCKED)`
//! and stamps them with the worker's lease, so two workers never hold the
//! same source; a crashed worker's lease simply expires (`leased_until`).
//! [`Store::finish_source`] records the outcome and releases the lease, but
//! only while the caller still owns it. SQLite runs one in-process worker and
//! uses the same table with plain `UPDATE … RETURNING`.
//!
//! It deliberately decides nothing (delays, backoff): the worker does.

use std::time::Duration;

use chrono::Utc;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{Error, Store};

/// A source this worker now holds a lease on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedSource {
    /// `latest_obs`, `stations` or `station:{id}`.
    pub key: String,
    /// The URL recorded for it (informational; the worker derives URLs from its config).
    pub url: String,
    /// ETag of the last successful fetch.
    pub etag: Option<String>,
    /// Last-Modified of the last successful fetch.
    pub last_modified: Option<String>,
    /// Failed fetches in a row.
    pub failures: u32,
}

/// The outcome of one fetch of a source, to record when releasing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUpdate {
    /// How long from now until it is due again.
    pub next_due_in: Duration,
    /// Validators to send next time (kept from before on a failure or 304).
    pub etag: Option<String>,
    /// See `etag`.
    pub last_modified: Option<String>,
    /// Failed fetches in a row (0 after a success).
    pub failures: u32,
    /// Whether this fetch succeeded (a 304 is a success).
    pub success: bool,
    /// Why it failed, for operators reading the table.
    pub error: Option<String>,
}

impl Store {
    /// Makes sure a row exists for each `(key, url)`; new ones are due at once.
    /// Existing rows keep their schedule and validators (their URL is updated).
    pub async fn ensure_sources(&self, sources: &[(String, String)]) -> Result<(), Error> {
        if sources.is_empty() {
            return Ok(());
        }
        let operation = "registering ingest sources";
        match self {
            Store::Postgres(store) => {
                sqlx::query(
                    "INSERT INTO ingest_sources (key, url) SELECT * FROM UNNEST($1::text[], $2::text[]) \
                     ON CONFLICT (key) DO UPDATE SET url = excluded.url \
                     WHERE ingest_sources.url IS DISTINCT FROM excluded.url",
                )
                .bind(sources.iter().map(|(key, _)| key.as_str()).collect::<Vec<_>>())
                .bind(sources.iter().map(|(_, url)| url.as_str()).collect::<Vec<_>>())
                .execute(store.pool())
                .await
                .map_err(Error::query(operation))?;
            }
            Store::Sqlite(store) => {
                let now = Utc::now().timestamp_micros();
                for chunk in sources.chunks(1000) {
                    let mut insert =
                        QueryBuilder::<Sqlite>::new("INSERT INTO ingest_sources (key, url, next_due_at) ");
                    insert.push_values(chunk, |mut values, (key, url)| {
                        values.push_bind(key.as_str()).push_bind(url.as_str()).push_bind(now);
                    });
                    insert.push(" ON CONFLICT (key) DO UPDATE SET url = excluded.url");
                    insert.build().execute(store.pool()).await.map_err(Error::query(operation))?;
                }
            }
        }
        Ok(())
    }

    /// Leases up to `limit` of the sources named in `keys` that are due and not
    /// leased by anyone else (or whose lease expired), most overdue first, to
    /// `owner` for `lease`. A worker may re-claim its own leases (left behind
    /// by a poll that failed half-way, e.g. while the store was down).
    pub async fn claim_sources(
        &self,
        owner: &str,
        keys: &[String],
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedSource>, Error> {
        if keys.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let operation = "claiming ingest sources";
        let rows = match self {
            Store::Postgres(store) => sqlx::query(
                "UPDATE ingest_sources SET lease_owner = $1, \
                 leased_until = now() + make_interval(secs => $2), updated_at = now() \
                 WHERE key IN (SELECT key FROM ingest_sources WHERE key = ANY($3) AND next_due_at <= now() \
                 AND (leased_until IS NULL OR leased_until < now() OR lease_owner = $1) \
                 ORDER BY next_due_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
                 RETURNING key, url, etag, last_modified, failures, next_due_at",
            )
            .bind(owner)
            .bind(lease.as_secs_f64())
            .bind(keys)
            .bind(i64::from(limit))
            .fetch_all(store.pool())
            .await
            .map_err(Error::query(operation))?
            .iter()
            .map(read_claim_pg)
            .collect::<Result<Vec<_>, _>>()?,
            Store::Sqlite(store) => {
                let now = Utc::now().timestamp_micros();
                let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
                let mut update = QueryBuilder::<Sqlite>::new("UPDATE ingest_sources SET lease_owner = ");
                update.push_bind(owner).push(", leased_until = ").push_bind(until);
                update.push(", updated_at = ").push_bind(now);
                update.push(" WHERE key IN (SELECT key FROM ingest_sources WHERE key IN (");
                let mut separated = update.separated(", ");
                for key in keys {
                    separated.push_bind(key.as_str());
                }
                update.push(") AND next_due_at <= ").push_bind(now);
                update.push(" AND (leased_until IS NULL OR leased_until < ").push_bind(now);
                update.push(" OR lease_owner = ").push_bind(owner);
                update.push(") ORDER BY next_due_at LIMIT ").push_bind(i64::from(limit));
                update.push(") RETURNING key, url, etag, last_modified, failures, next_due_at");
                update
                    .build()
                    .fetch_all(store.pool())
                    .await
                    .map_err(Error::query(operation))?
                    .iter()
                    .map(read_claim_sqlite)
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        // RETURNING has no order: hand them out most overdue first.
        let mut rows = rows;
        rows.sort_by_key(|(due, claim): &(i64, ClaimedSource)| (*due, claim.key.clone()));
        Ok(rows.into_iter().map(|(_, claim)| claim).collect())
    }

    /// Records the outcome of a fetch and releases the lease; `false` when
    /// `owner` no longer held it (it expired and another worker took over, so
    /// this outcome is dropped).
    pub async fn finish_source(&self, key: &str, owner: &str, update: &SourceUpdate) -> Result<bool, Error> {
        let operation = "recording an ingest source's outcome";
        let failures = i64::from(update.failures);
        let affected = match self {
            Store::Postgres(store) => sqlx::query(
                "UPDATE ingest_sources SET next_due_at = now() + make_interval(secs => $3), \
                 lease_owner = NULL, leased_until = NULL, etag = $4, last_modified = $5, failures = $6, \
                 last_success_at = CASE WHEN $7 THEN now() ELSE last_success_at END, last_error = $8, \
                 updated_at = now() WHERE key = $1 AND lease_owner = $2",
            )
            .bind(key)
            .bind(owner)
            .bind(update.next_due_in.as_secs_f64())
            .bind(update.etag.as_deref())
            .bind(update.last_modified.as_deref())
            .bind(failures)
            .bind(update.success)
            .bind(update.error.as_deref())
            .execute(store.pool())
            .await
            .map_err(Error::query(operation))?
            .rows_affected(),
            Store::Sqlite(store) => {
                let now = Utc::now().timestamp_micros();
                let due =
                    now.saturating_add(i64::try_from(update.next_due_in.as_micros()).unwrap_or(i64::MAX));
                sqlx::query(
                    "UPDATE ingest_sources SET next_due_at = ?, lease_owner = NULL, leased_until = NULL, \
                     etag = ?, last_modified = ?, failures = ?, \
                     last_success_at = CASE WHEN ? THEN ? ELSE last_success_at END, last_error = ?, \
                     updated_at = ? WHERE key = ? AND lease_owner = ?",
                )
                .bind(due)
                .bind(update.etag.as_deref())
                .bind(update.last_modified.as_deref())
                .bind(failures)
                .bind(update.success)
                .bind(now)
                .bind(update.error.as_deref())
                .bind(now)
                .bind(key)
                .bind(owner)
                .execute(store.pool())
                .await
                .map_err(Error::query(operation))?
                .rows_affected()
            }
        };
        Ok(affected == 1)
    }

    /// Releases every lease `owner` holds without changing the schedule
    /// (graceful shutdown: another worker may take them at once).
    pub async fn release_sources(&self, owner: &str) -> Result<(), Error> {
        let operation = "releasing ingest sources";
        match self {
            Store::Postgres(store) => sqlx::query(
                "UPDATE ingest_sources SET lease_owner = NULL, leased_until = NULL WHERE lease_owner = $1",
            )
            .bind(owner)
            .execute(store.pool())
            .await
            .map(|_| ()),
            Store::Sqlite(store) => sqlx::query(
                "UPDATE ingest_sources SET lease_owner = NULL, leased_until = NULL WHERE lease_owner = ?",
            )
            .bind(owner)
            .execute(store.pool())
            .await
            .map(|_| ()),
        }
        .map_err(Error::query(operation))?;
        Ok(())
    }
}

fn read_claim_pg(row: &sqlx::postgres::PgRow) -> Result<(i64, ClaimedSource), Error> {
    let operation = "decoding an ingest source";
    let failures: i32 = row.try_get(4).map_err(Error::query(operation))?;
    let due: chrono::DateTime<Utc> = row.try_get(5).map_err(Error::query(operation))?;
    Ok((
        due.timestamp_micros(),
        ClaimedSource {
            key: row.try_get(0).map_err(Error::query(operation))?,
            url: row.try_get(1).map_err(Error::query(operation))?,
            etag: row.try_get(2).map_err(Error::query(operation))?,
            last_modified: row.try_get(3).map_err(Error::query(operation))?,
            failures: u32::try_from(failures).unwrap_or(0),
        },
    ))
}

fn read_claim_sqlite(row: &sqlx::sqlite::SqliteRow) -> Result<(i64, ClaimedSource), Error> {
    let operation = "decoding an ingest source";
    let failures: i64 = row.try_get(4).map_err(Error::query(operation))?;
    let due: i64 = row.try_get(5).map_err(Error::query(operation))?;
    Ok((
        due,
        ClaimedSource {
            key: row.try_get(0).map_err(Error::query(operation))?,
            url: row.try_get(1).map_err(Error::query(operation))?,
            etag: row.try_get(2).map_err(Error::query(operation))?,
            last_modified: row.try_get(3).map_err(Error::query(operation))?,
            failures: u32::try_from(failures).unwrap_or(0),
        },
    ))
}
