//! Wave spectra in the store (issue "Directional wave spectra"): the 149
//! spectra of 41010's five realtime fixture files, replicated with shifted
//! times to `BENCH_SPECTRA` (default 20,000), upserted into SQLite and into
//! a throw-away PostgreSQL (the integration tests' harness), then the bytes
//! each backend holds per stored spectrum (SQLite: the file after a WAL
//! checkpoint, less the empty migrated file; PostgreSQL:
//! `pg_total_relation_size('spectra')`, TOAST and the primary key included)
//! and the upsert rate. Also: parsing and joining the five files, per set.
//!
//! Run: `cargo bench --bench spectra` (release). It asserts only that every
//! spectrum was stored once.

use std::path::PathBuf;
use std::time::Instant;

use buoycast::observation::StationId;
use buoycast::sources::ndbc::spectral::{self, SpectralFile};
use buoycast::spectrum::{join, Spectrum};
use buoycast::store::{Delivery, Store};

/// The integration tests' throw-away PostgreSQL (only part of it is used here).
#[allow(dead_code)]
#[path = "../tests/it/harness/postgres.rs"]
mod postgres;

/// A free TCP port on 127.0.0.1 (what the harness module asks its parent for).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn fixture(name: &str) -> Vec<u8> {
    let path =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ndbc/realtime2")).join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// The five files of 41010, parsed and joined.
fn load_set(files: &[(String, Vec<u8>)]) -> Vec<Spectrum> {
    let station = StationId::parse("41010").expect("id");
    let rows = files.iter().flat_map(|(name, bytes)| match spectral::parse(bytes, &station, Some(name)) {
        Ok(SpectralFile::Quantity(parsed)) => parsed.rows,
        other => panic!("{name}: {other:?}"),
    });
    join(rows)
}

fn main() {
    let n: usize = std::env::var("BENCH_SPECTRA").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let files: Vec<(String, Vec<u8>)> = ["data_spec", "swdir", "swdir2", "swr1", "swr2"]
        .iter()
        .map(|ext| {
            let name = format!("41010.{ext}");
            let bytes = fixture(&name);
            (name, bytes)
        })
        .collect();
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    let mut best = f64::MAX;
    let mut base = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        base = load_set(&files);
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "parse + join of the five 41010 files ({:.0} KB, {} spectra): {:.2} ms, {:.1} µs per spectrum",
        bytes as f64 / 1e3,
        base.len(),
        best * 1e3,
        best * 1e6 / base.len() as f64
    );
    let week = chrono::Duration::days(8);
    let spectra: Vec<Spectrum> = (0..n)
        .map(|i| {
            let mut spectrum = base[i % base.len()].clone();
            spectrum.timestamp += week * i32::try_from(i / base.len()).expect("copies fit");
            spectrum
        })
        .collect();
    let json: usize = spectra.iter().map(|s| s.bands_to_columns().len()).sum();
    println!("bands as stored (JSON columns): {:.0} bytes per spectrum on average", json as f64 / n as f64);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("spectra.db");
        let store = Store::connect(&format!("sqlite://{}", path.display()), Default::default()).await.expect("sqlite");
        store.migrate().await.expect("migrate");
        let size = |store: &Store| {
            let store = store.clone();
            let path = path.clone();
            async move {
                if let Store::Sqlite(sqlite) = &store {
                    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(sqlite.pool()).await.expect("checkpoint");
                }
                std::fs::metadata(&path).expect("the file").len()
            }
        };
        let empty = size(&store).await;
        let (stored, secs) = upsert_all(&store, &spectra).await;
        let full = size(&store).await;
        println!(
            "SQLite: {stored} spectra in {secs:.2} s = {:.0} spectra/s; {:.0} bytes per stored spectrum",
            stored as f64 / secs,
            (full - empty) as f64 / n as f64
        );
        store.close().await;

        let db = postgres::test_database().await;
        let store = Store::connect(&db.url, Default::default()).await.expect("postgres");
        store.migrate().await.expect("migrate");
        let (stored, secs) = upsert_all(&store, &spectra).await;
        let Store::Postgres(pg) = &store else { unreachable!("a postgres url") };
        let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('spectra')")
            .fetch_one(pg.pool())
            .await
            .expect("relation size");
        println!(
            "PostgreSQL: {stored} spectra in {secs:.2} s = {:.0} spectra/s; {:.0} bytes per stored spectrum (table, TOAST, key)",
            stored as f64 / secs,
            bytes as f64 / n as f64
        );
        store.close().await;
    });
}

/// Upserts in batches of 500; (stored, seconds).
async fn upsert_all(store: &Store, spectra: &[Spectrum]) -> (usize, f64) {
    let started = Instant::now();
    let mut stored = 0;
    for chunk in spectra.chunks(500) {
        stored += store.upsert_spectra(chunk, Delivery::Silent).await.expect("upsert").len();
    }
    assert_eq!(stored, spectra.len(), "every spectrum stored once");
    (stored, started.elapsed().as_secs_f64())
}
