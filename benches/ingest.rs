//! Ingest benchmark (issue 3): every realtime stdmet fixture replicated to
//! ~800 stations × 45 days (~5M rows) and upserted into a throw-away
//! PostgreSQL through the store's batched upsert (`UNNEST`), one station file
//! per call as the worker and the backfill do; prints rows/s.
//!
//! Run: `cargo bench --bench ingest` (release). `BENCH_DATABASE_URL` uses an
//! existing (empty, migratable) database instead of starting one;
//! `BENCH_STATIONS` (default 800) and `BENCH_CONCURRENCY` (default 2,
//! upserts in flight) change the shape.
//!
//! The throw-away server is the integration tests' own
//! (`tests/it/harness/postgres.rs`: `initdb` + `postgres` in a temp dir, as
//! the `postgres` user when run as root, fsync off, a migrated template;
//! stopped when this process exits). It is not a test: it asserts only that
//! every row was inserted once.

use std::path::PathBuf;
use std::time::Instant;

use buoycast::observation::{Observation, StationId};
use buoycast::sources::ndbc::parse;
use buoycast::store::{Delivery, Origin, Store};
use futures::StreamExt;

/// The realtime stdmet fixtures.
const FIXTURES: [(&str, &str); 4] =
    [("41002.txt", "41002"), ("44013.txt", "44013"), ("TPLM2.txt", "tplm2"), ("46097.txt", "46097")];
/// Rows per replicated station (45 days at a 10-minute cadence is 6480).
const ROWS_PER_STATION: usize = 6_400;

/// The integration tests' throw-away PostgreSQL (only part of it is used here).
#[allow(dead_code)]
#[path = "../tests/it/harness/postgres.rs"]
mod postgres;

/// A free TCP port on 127.0.0.1 (what the harness module asks its parent for).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn main() {
    let n_stations: usize = env_number("BENCH_STATIONS", 800);
    let concurrency: usize = env_number("BENCH_CONCURRENCY", 2);
    let templates = templates();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let url = match std::env::var("BENCH_DATABASE_URL") {
        Ok(url) => url,
        Err(_) => runtime.block_on(postgres::test_database()).url,
    };
    runtime.block_on(async {
        let options = buoycast::store::StoreOptions { max_connections: 8, ..Default::default() };
        let store = Store::connect(&url, options).await.expect("connecting to PostgreSQL");
        store.migrate().await.expect("migrating");
        let started = Instant::now();
        let mut inserted = 0usize;
        let mut uploads = futures::stream::iter(0..n_stations)
            .map(|station_idx| {
                let store = store.clone();
                let rows = station_rows(&templates, station_idx);
                async move {
                    store
                        .upsert_observations_with(&rows, Delivery::Silent, Origin::StationFile)
                        .await
                        .expect("upsert")
                        .len()
                }
            })
            .buffer_unordered(concurrency.max(1));
        while let Some(n_new) = uploads.next().await {
            inserted += n_new;
        }
        let elapsed = started.elapsed();
        assert_eq!(inserted, n_stations * ROWS_PER_STATION, "every row inserted once");
        println!(
            "ingest: {inserted} rows ({n_stations} stations x {ROWS_PER_STATION}) in {:.2} s = {:.0} rows/s \
             (concurrency {concurrency}, PostgreSQL UNNEST upserts)",
            elapsed.as_secs_f64(),
            inserted as f64 / elapsed.as_secs_f64()
        );
        // Re-ingesting the same files stores nothing (the worker's steady state).
        let started = Instant::now();
        let again = store
            .upsert_observations_with(&station_rows(&templates, 0), Delivery::Silent, Origin::StationFile)
            .await
            .expect("re-upsert");
        assert!(again.is_empty());
        println!(
            "re-ingest of one station file: {:.1} ms, 0 new rows",
            started.elapsed().as_secs_f64() * 1000.0
        );
        store.close().await;
    });
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// Each fixture's distinct rows, repeated with time shifts (one file span
/// plus ten minutes apart) up to [`ROWS_PER_STATION`].
fn templates() -> Vec<Vec<Observation>> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ndbc/realtime2"));
    FIXTURES
        .iter()
        .map(|(file, station)| {
            let bytes = std::fs::read(root.join(file)).expect("reading a realtime fixture");
            let station = StationId::parse(station).expect("valid id");
            let mut rows = parse::parse(&bytes, Some(&station)).expect("fixture parses").observations;
            rows.sort_by_key(|row| row.observed_at);
            rows.dedup_by_key(|row| row.observed_at);
            let first = rows.first().expect("rows").observed_at;
            let last = rows.last().expect("rows").observed_at;
            let shift = last - first + chrono::Duration::minutes(10);
            let mut out = Vec::with_capacity(ROWS_PER_STATION);
            let mut copy = 0;
            while out.len() < ROWS_PER_STATION {
                for row in &rows {
                    if out.len() == ROWS_PER_STATION {
                        break;
                    }
                    let mut row = row.clone();
                    row.observed_at += shift * copy;
                    out.push(row);
                }
                copy += 1;
            }
            out
        })
        .collect()
}

/// Station `station_idx`'s rows: a template under a new id (`b0000`…).
fn station_rows(templates: &[Vec<Observation>], station_idx: usize) -> Vec<Observation> {
    let station = StationId::parse(&format!("b{station_idx:04}")).expect("valid id");
    templates[station_idx % templates.len()]
        .iter()
        .map(|row| Observation { station_id: station.clone(), ..row.clone() })
        .collect()
}
