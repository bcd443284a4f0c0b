//! Store contract tests: the same test bodies run against SQLite (a temp
//! file) and a real PostgreSQL 15 (harness::postgres), so the two backends
//! answer every query alike.
//!
//! Each body is an `async fn(Store)`; the `contract!` macro turns it into
//! `store::sqlite::NAME` and `store::postgres::NAME`. Every test gets a
//! database of its own, so they run in parallel.
//!
//! Rows are built by hand from real NDBC lines (41002, 44013 and a few
//! `latest_obs.txt` stations), plus two tests that load whole fixture files
//! through the parser.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use buoycast::observation::{Field, Measurements, Observation, StationId};
use buoycast::sources::ndbc::parse;
use buoycast::station::Station;
use buoycast::store::{Delivery, Drained, HistoryQuery, Origin, OutboxTable, PageQuery, Store, StoreOptions};
use chrono::{DateTime, TimeZone, Utc};

use crate::harness::{self, fixtures, postgres as pg};

/// What keeps a test's database alive while the test runs.
#[allow(dead_code)]
enum Guard {
    Sqlite(tempfile::TempDir),
    Postgres(pg::TestDb),
}

/// A store on a SQLite file of its own, migrated when `migrated`.
async fn sqlite_store(migrated: bool) -> (Store, Guard) {
    harness::init_logs();
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let url = format!("sqlite://{}", dir.path().join("buoycast.db").display());
    let store = Store::connect(&url, StoreOptions::default()).await.expect("opening the SQLite store");
    if migrated {
        store.migrate().await.expect("migrating SQLite");
    }
    (store, Guard::Sqlite(dir))
}

/// A store on a PostgreSQL database of its own, migrated (a copy of the
/// template) when `migrated`, else empty.
async fn postgres_store(migrated: bool) -> (Store, Guard) {
    harness::init_logs();
    let db = if migrated { pg::test_database().await } else { pg::empty_database().await };
    let store = Store::connect(&db.url, StoreOptions::default()).await.expect("connecting to PostgreSQL");
    (store, Guard::Postgres(db))
}

/// Runs each listed body once per backend, on a migrated store (or, for the
/// `empty:` list, an unmigrated one).
macro_rules! contract {
    (empty: [$($empty:ident),* $(,)?], migrated: [$($name:ident),* $(,)?]) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $empty() {
                    let (store, _guard) = super::sqlite_store(false).await;
                    super::$empty(store).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _guard) = super::sqlite_store(true).await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $empty() {
                    let (store, _guard) = super::postgres_store(false).await;
                    super::$empty(store).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _guard) = super::postgres_store(true).await;
                    super::$name(store).await;
                }
            )*
        }
    };
}

contract!(
    empty: [migrate_twice_is_a_no_op],
    migrated: [
        upsert_returns_new_rows_then_nothing,
        mixed_batch_returns_exactly_the_new_rows,
        repeated_key_in_one_batch_counts_once,
        values_round_trip_exactly,
        by_station_pages_back_from_the_newest,
        history_is_newest_first_with_filters,
        stations_list_metadata_and_latest_observation,
        station_with_data_but_no_metadata,
        unknown_station_is_none,
        large_batch_goes_through,
        concurrent_overlapping_upserts_return_each_row_once,
        realtime_file_round_trips,
        latest_obs_lists_every_station,
        a_revised_row_is_stored_and_published_again_once,
        a_station_file_outranks_latest_obs_and_null_never_erases,
        spectra_round_trip_and_page_back_from_the_newest,
    ]
);

async fn spectra_round_trip_and_page_back_from_the_newest(store: Store) {
    let spectra = fixtures::spectra_41010();
    assert_eq!(spectra.len(), 149);
    assert_eq!(store.upsert_spectra(&spectra, Delivery::Silent).await.expect("store").len(), 149);
    assert!(
        store.upsert_spectra(&spectra, Delivery::Silent).await.expect("store again").is_empty(),
        "nothing changed"
    );
    let mut revised = spectra[148].clone();
    revised.bands[10].density = Some(9.5);
    assert_eq!(
        store.upsert_spectra(&[revised.clone()], Delivery::Silent).await.expect("store a change"),
        vec![revised.clone()]
    );

    let station = StationId::parse("41010").expect("id");
    let page = store
        .spectra_by_station(&station, PageQuery { page: 1, limit: 10, since: None })
        .await
        .expect("page 1");
    assert_eq!(page.total, 149);
    let mut expected = spectra[139..].to_vec();
    expected[9] = revised;
    assert_eq!(page.items, expected, "the newest ten, oldest first, values exact");
    let page2 = store
        .spectra_by_station(&station, PageQuery { page: 2, limit: 10, since: None })
        .await
        .expect("page 2");
    assert_eq!(page2.items, spectra[129..139].to_vec());
    let since = spectra[146].timestamp;
    let after = store
        .spectra_by_station(&station, PageQuery { page: 1, limit: 100, since: Some(since) })
        .await
        .expect("since");
    assert_eq!((after.total, after.items.len()), (2, 2), "since is exclusive");
    let none = store
        .spectra_by_station(
            &StationId::parse("46026").expect("id"),
            PageQuery { page: 1, limit: 10, since: None },
        )
        .await
        .expect("another station");
    assert_eq!((none.total, none.items.len()), (0, 0));
}

// ---------------------------------------------------------------------------
// Fixture rows

fn id(raw: &str) -> StationId {
    StationId::parse(raw).expect("valid station id")
}

fn at(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, hour, minute, 0).single().expect("valid time")
}

fn obs(station: &str, time: DateTime<Utc>, values: &[(Field, f64)]) -> Observation {
    let mut measurements = Measurements::default();
    for &(field, value) in values {
        measurements.set(field, Some(value));
    }
    Observation { station_id: id(station), observed_at: time, measurements }
}

/// Rows of 41002.txt (2018-08-01, newest first in the file), typed by hand.
fn rows_41002() -> Vec<Observation> {
    use Field::*;
    vec![
        // 2018 08 01 15 10 160  6.0  7.0    MM    MM    MM  MM 1022.9    MM  28.0    MM   MM   MM    MM
        obs(
            "41002",
            at(2018, 8, 1, 15, 10),
            &[
                (WindDirDeg, 160.0),
                (WindSpeedMps, 6.0),
                (GustMps, 7.0),
                (PressureHpa, 1022.9),
                (WaterTempC, 28.0),
            ],
        ),
        // 2018 08 01 15 00 150  7.0  8.0    MM    MM    MM  MM 1023.0    MM  28.0    MM   MM +0.6    MM
        obs(
            "41002",
            at(2018, 8, 1, 15, 0),
            &[
                (WindDirDeg, 150.0),
                (WindSpeedMps, 7.0),
                (GustMps, 8.0),
                (PressureHpa, 1023.0),
                (WaterTempC, 28.0),
                (PressureTendencyHpa, 0.6),
            ],
        ),
        // 2018 08 01 14 50 150  7.0  8.0   1.2     6   4.5 209 1023.0    MM  28.0    MM   MM   MM    MM
        obs(
            "41002",
            at(2018, 8, 1, 14, 50),
            &[
                (WindDirDeg, 150.0),
                (WindSpeedMps, 7.0),
                (GustMps, 8.0),
                (WaveHeightM, 1.2),
                (DominantPeriodS, 6.0),
                (AveragePeriodS, 4.5),
                (MeanWaveDirDeg, 209.0),
                (PressureHpa, 1023.0),
                (WaterTempC, 28.0),
            ],
        ),
        // 2018 08 01 10 00 130  7.0 10.0    MM    MM    MM  MM 1021.2    MM  28.0    MM   MM -0.4    MM
        obs(
            "41002",
            at(2018, 8, 1, 10, 0),
            &[
                (WindDirDeg, 130.0),
                (WindSpeedMps, 7.0),
                (GustMps, 10.0),
                (PressureHpa, 1021.2),
                (WaterTempC, 28.0),
                (PressureTendencyHpa, -0.4),
            ],
        ),
        // 2018 07 27 15 50 160  7.0  9.0   1.2     8   5.2  99 1020.0    MM  27.5    MM   MM   MM    MM
        obs(
            "41002",
            at(2018, 7, 27, 15, 50),
            &[
                (WindDirDeg, 160.0),
                (WindSpeedMps, 7.0),
                (GustMps, 9.0),
                (WaveHeightM, 1.2),
                (DominantPeriodS, 8.0),
                (AveragePeriodS, 5.2),
                (MeanWaveDirDeg, 99.0),
                (PressureHpa, 1020.0),
                (WaterTempC, 27.5),
            ],
        ),
    ]
}

/// `latest_obs.txt`-style rows of three other stations.
fn rows_other_stations() -> Vec<Observation> {
    use Field::*;
    vec![
        // 22101  37.24 126.02  2018 07 30 21 00 190   1.0    MM   MM  MM   MM  MM 1005.3    MM  23.9  21.4
        obs(
            "22101",
            at(2018, 7, 30, 21, 0),
            &[
                (WindDirDeg, 190.0),
                (WindSpeedMps, 1.0),
                (PressureHpa, 1005.3),
                (AirTempC, 23.9),
                (WaterTempC, 21.4),
            ],
        ),
        // 22102  34.79 125.78  2018 07 30 21 00  50   2.0    MM   MM  MM   MM  MM 1004.3    MM  23.3  24.0
        obs(
            "22102",
            at(2018, 7, 30, 21, 0),
            &[
                (WindDirDeg, 50.0),
                (WindSpeedMps, 2.0),
                (PressureHpa, 1004.3),
                (AirTempC, 23.3),
                (WaterTempC, 24.0),
            ],
        ),
        // 22103  34.00 127.50  2018 07 30 21 00  20   6.0    MM   MM  MM   MM  MM 1005.4    MM  26.7  25.8
        obs(
            "22103",
            at(2018, 7, 30, 21, 0),
            &[
                (WindDirDeg, 20.0),
                (WindSpeedMps, 6.0),
                (PressureHpa, 1005.4),
                (AirTempC, 26.7),
                (WaterTempC, 25.8),
            ],
        ),
    ]
}

/// `count` rows of `station` every 10 minutes from `start`, values varying by row.
fn series(station: &str, start: DateTime<Utc>, count: usize) -> Vec<Observation> {
    (0..count)
        .map(|i| {
            let step = i as f64;
            let mut measurements = Measurements::default()
                .with(Field::WindDirDeg, (i * 7 % 360) as f64)
                .with(Field::WindSpeedMps, 5.0 + (step * 0.1) % 7.0)
                .with(Field::PressureHpa, 1000.0 + (step * 0.3) % 40.0)
                .with(Field::WaterTempC, 12.5 + (step * 0.01) % 3.0);
            if i % 6 == 5 {
                measurements.set(Field::WaveHeightM, Some(1.0 + (step * 0.05) % 4.0));
            }
            Observation {
                station_id: id(station),
                observed_at: start + chrono::Duration::minutes(10 * i as i64),
                measurements,
            }
        })
        .collect()
}

/// Every row of `station`, read back oldest first through by-station pages.
async fn read_station(store: &Store, station: &StationId) -> Vec<Observation> {
    let mut rows = Vec::new();
    for page in 1.. {
        let query = PageQuery { page, limit: 1000, since: None };
        let got = store.observations_by_station(station, query).await.expect("by-station page");
        if got.items.is_empty() {
            break;
        }
        // Page 1 is the newest rows: each later page goes before the ones read.
        rows.splice(0..0, got.items);
    }
    rows
}

/// `rows` deduplicated by key (first occurrence) and sorted oldest first.
fn oldest_first(rows: &[Observation]) -> Vec<Observation> {
    let mut by_time = BTreeMap::new();
    for row in rows {
        by_time.entry((row.station_id.clone(), row.observed_at)).or_insert_with(|| row.clone());
    }
    by_time.into_values().collect()
}

async fn applied_migrations(store: &Store) -> i64 {
    let sql = "SELECT count(*) FROM _sqlx_migrations WHERE success";
    match store {
        Store::Postgres(pg) => sqlx::query_scalar(sql).fetch_one(pg.pool()).await,
        Store::Sqlite(sqlite) => sqlx::query_scalar(sql).fetch_one(sqlite.pool()).await,
    }
    .expect("reading _sqlx_migrations")
}

// ---------------------------------------------------------------------------
// Contract bodies

async fn migrate_twice_is_a_no_op(store: Store) {
    store.ping().await.expect("ping before migrating");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(store.backend());
    let n_files = std::fs::read_dir(&dir)
        .expect("reading the migrations dir")
        .filter(|entry| entry.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|ext| ext == "sql")))
        .count() as i64;
    store.migrate().await.expect("first migration");
    assert_eq!(applied_migrations(&store).await, n_files);
    let rows = rows_41002();
    assert_eq!(store.upsert_observations(&rows).await.expect("upsert").len(), rows.len());
    store.migrate().await.expect("second migration");
    assert_eq!(applied_migrations(&store).await, n_files);
    let page = store
        .observations_by_station(&id("41002"), PageQuery { page: 1, limit: 100, since: None })
        .await
        .expect("by-station");
    assert_eq!(page.total, rows.len() as u64, "the second migration kept the data");
    store.ping().await.expect("ping after migrating");
}

async fn upsert_returns_new_rows_then_nothing(store: Store) {
    let mut rows = rows_41002();
    rows.extend(rows_other_stations());
    let inserted = store.upsert_observations(&rows).await.expect("first upsert");
    assert_eq!(inserted, rows, "every row is new, returned in input order");
    let again = store.upsert_observations(&rows).await.expect("second upsert");
    assert_eq!(again, Vec::<Observation>::new(), "re-upserting the same rows inserts nothing");
    assert_eq!(store.upsert_observations(&[]).await.expect("empty upsert"), Vec::<Observation>::new());
}

async fn mixed_batch_returns_exactly_the_new_rows(store: Store) {
    let rows = rows_41002();
    store.upsert_observations(&rows[..3]).await.expect("first upsert");
    let batch = vec![rows[3].clone(), rows[0].clone(), rows[4].clone(), rows[1].clone()];
    let inserted = store.upsert_observations(&batch).await.expect("mixed upsert");
    assert_eq!(inserted, vec![rows[3].clone(), rows[4].clone()]);
}

async fn repeated_key_in_one_batch_counts_once(store: Store) {
    let rows = rows_41002();
    let mut changed = rows[0].clone();
    changed.measurements.set(Field::WindSpeedMps, Some(9.5));
    let batch = vec![rows[0].clone(), rows[1].clone(), changed, rows[2].clone(), rows[1].clone()];
    let inserted = store.upsert_observations(&batch).await.expect("upsert");
    assert_eq!(inserted, rows[..3].to_vec(), "each key once, first occurrence, input order");
    let stored = read_station(&store, &id("41002")).await;
    assert_eq!(stored, oldest_first(&rows[..3]), "the first occurrence's values are stored");
    assert_eq!(stored[2].measurements.get(Field::WindSpeedMps), Some(6.0));
}

async fn values_round_trip_exactly(store: Store) {
    use Field::*;
    // Awkward doubles: not exactly representable in decimal, tiny, huge, negative.
    let awkward = [
        (WindDirDeg, 99.0),
        (WindSpeedMps, 0.1 + 0.2),
        (GustMps, 1.0 / 3.0),
        (WaveHeightM, 0.79),
        (DominantPeriodS, 1e-300),
        (AveragePeriodS, 4.499999999999999),
        (MeanWaveDirDeg, 0.0),
        (PressureHpa, 987.4),
        (AirTempC, -40.123456789012345),
        (WaterTempC, -1.9),
        (DewpointC, f64::MIN_POSITIVE),
        (VisibilityNmi, 1.7976931348623157e300),
        (PressureTendencyHpa, -1.2),
        (TideFt, -0.35),
    ];
    let full = obs("44013", at(2022, 6, 5, 13, 0), &awkward);
    let empty = obs("44013", at(2022, 6, 5, 12, 50), &[]);
    // Sub-second times survive to the microsecond.
    let fractional = Observation {
        observed_at: Utc.timestamp_opt(1_654_433_400, 123_456_000).single().expect("valid time"),
        ..obs("44013", at(2022, 6, 5, 12, 40), &[(PressureTendencyHpa, -0.1)])
    };
    let rows = vec![full.clone(), empty.clone(), fractional.clone()];
    assert_eq!(store.upsert_observations(&rows).await.expect("upsert"), rows);
    let stored = read_station(&store, &id("44013")).await;
    assert_eq!(stored, vec![empty.clone(), fractional.clone(), full.clone()]);
    for field in Field::ALL {
        let (want, got) = (full.measurements.get(field), stored[2].measurements.get(field));
        assert_eq!(want.map(f64::to_bits), got.map(f64::to_bits), "{field} round-trips bit for bit");
        assert_eq!(stored[0].measurements.get(field), None, "{field} stays None, never 0");
    }
    // The other read paths decode the same way.
    let history = store
        .observations(HistoryQuery { stations: vec![id("44013")], limit: 10, ..Default::default() })
        .await
        .expect("history");
    assert_eq!(history, vec![full.clone(), fractional, empty]);
    let summary = store.station(&id("44013")).await.expect("station").expect("known station");
    assert_eq!(summary.latest, Some(full));
}

async fn by_station_pages_back_from_the_newest(store: Store) {
    let start = at(2022, 4, 21, 0, 0);
    let rows = series("44013", start, 25);
    let mut all = rows.clone();
    all.extend(series("41002", start, 7));
    // Insert newest first, as NDBC files list them.
    all.reverse();
    store.upsert_observations(&all).await.expect("upsert");
    let station = id("44013");

    let page = |page, limit, since| {
        let store = store.clone();
        let station = station.clone();
        async move {
            store.observations_by_station(&station, PageQuery { page, limit, since }).await.expect("page")
        }
    };
    let first = page(1, 10, None).await;
    assert_eq!(first.total, 25);
    assert_eq!(first.items, rows[15..].to_vec(), "the newest ten, oldest first");
    let third = page(3, 10, None).await;
    assert_eq!((third.total, third.items), (25, rows[..5].to_vec()));
    let beyond = page(4, 10, None).await;
    assert_eq!((beyond.total, beyond.items.len()), (25, 0));
    // `since` is exclusive and narrows the total too.
    let since = rows[18].observed_at;
    let recent = page(1, 5, Some(since)).await;
    assert_eq!((recent.total, recent.items), (6, rows[20..].to_vec()));
    let recent_second = page(2, 5, Some(since)).await;
    assert_eq!(recent_second.items, rows[19..20].to_vec());
    let unknown = store
        .observations_by_station(&id("zzz9"), PageQuery { page: 1, limit: 10, since: None })
        .await
        .expect("unknown station page");
    assert_eq!((unknown.total, unknown.items.len()), (0, 0));
}

async fn history_is_newest_first_with_filters(store: Store) {
    let start = at(2018, 7, 30, 20, 0);
    let a = series("22101", start, 6);
    let b = series("22102", start, 6);
    let c = series("41002", start + chrono::Duration::minutes(5), 6);
    let all: Vec<Observation> = a.iter().chain(&b).chain(&c).cloned().collect();
    store.upsert_observations(&all).await.expect("upsert");

    // Expected orders come from sorting the inputs: newest first, ties by station id.
    let mut newest_first = all.clone();
    newest_first.sort_by(|x, y| y.observed_at.cmp(&x.observed_at).then(x.station_id.cmp(&y.station_id)));

    let query =
        |stations: Vec<StationId>, since, until, limit| HistoryQuery { stations, since, until, limit };
    let got = store.observations(query(vec![], None, None, 5)).await.expect("all stations");
    assert_eq!(got, newest_first[..5].to_vec());
    assert_eq!(got[0].station_id.as_str(), "41002", "the 5-minute offset makes 41002 newest");

    let filtered =
        store.observations(query(vec![id("22101"), id("41002")], None, None, 100)).await.expect("filter");
    let want: Vec<_> = newest_first.iter().filter(|o| o.station_id.as_str() != "22102").cloned().collect();
    assert_eq!(filtered, want);

    let (since, until) = (a[2].observed_at, a[4].observed_at);
    let window = store.observations(query(vec![], Some(since), Some(until), 100)).await.expect("window");
    let want: Vec<_> =
        newest_first.iter().filter(|o| o.observed_at >= since && o.observed_at <= until).cloned().collect();
    assert_eq!(window, want);
    assert_eq!(window.len(), 8, "a and b at 3 times inclusive, c at 2 times between them");

    let one = store.observations(query(vec![id("22102")], Some(since), None, 2)).await.expect("limit");
    assert_eq!(one, vec![b[5].clone(), b[4].clone()]);
    assert!(store.observations(query(vec![], None, None, 0)).await.expect("limit 0").is_empty());
}

fn station_meta(raw: &str, name: &str, lat: f64, lon: f64) -> Station {
    Station {
        id: id(raw),
        name: Some(name.to_owned()),
        lat: Some(lat),
        lon: Some(lon),
        owner: Some("NDBC".to_owned()),
        station_type: Some("buoy".to_owned()),
        active: true,
    }
}

async fn stations_list_metadata_and_latest_observation(store: Store) {
    let s41002 = station_meta("41002", "SOUTH HATTERAS - 225 NM South of Cape Hatteras", 31.743, -74.955);
    let s44013 = station_meta("44013", "BOSTON 16 NM East of Boston, MA", 42.346, -70.651);
    let tplm2 = Station {
        station_type: Some("fixed".to_owned()),
        owner: None,
        ..station_meta("tplm2", "Thomas Point, MD", 38.899, -76.436)
    };
    assert_eq!(
        store.upsert_stations(&[s41002.clone(), s44013.clone(), tplm2.clone()]).await.expect("stations"),
        3
    );
    assert_eq!(
        store.upsert_stations(&[s41002.clone(), s44013.clone()]).await.expect("same again"),
        0,
        "unchanged metadata changes nothing"
    );
    let rows = rows_41002();
    store.upsert_observations(&rows).await.expect("observations");
    // 22101 has data but no metadata.
    store.upsert_observations(&rows_other_stations()[..1]).await.expect("observations");

    let newest = rows.iter().max_by_key(|o| o.observed_at).cloned();
    let page = store.stations(1, 10).await.expect("stations");
    assert_eq!(page.total, 4);
    let ids: Vec<&str> = page.items.iter().map(|s| s.station.id.as_str()).collect();
    assert_eq!(ids, ["22101", "41002", "44013", "tplm2"], "ordered by id");
    assert_eq!(page.items[1].station, s41002);
    assert_eq!(page.items[1].latest, newest);
    assert_eq!(page.items[1].last_observation_at, newest.as_ref().map(|o| o.observed_at));
    assert_eq!(page.items[2].station, s44013);
    assert_eq!((page.items[2].latest.as_ref(), page.items[2].last_observation_at), (None, None));
    assert_eq!(page.items[3].station, tplm2);

    let second = store.stations(2, 3).await.expect("page 2");
    assert_eq!(second.total, 4);
    assert_eq!(second.items.iter().map(|s| s.station.id.as_str()).collect::<Vec<_>>(), ["tplm2"]);

    // Metadata changes are stored; data-only stations get their metadata later.
    let moved = Station { lat: Some(31.75), active: false, ..s41002.clone() };
    let named = station_meta("22101", "Deokjeok-do", 37.24, 126.02);
    assert_eq!(store.upsert_stations(&[moved.clone(), named.clone()]).await.expect("update"), 2);
    let summary = store.station(&id("41002")).await.expect("station").expect("known");
    assert_eq!(summary.station, moved);
    assert_eq!(summary.latest, newest);
    let summary = store.station(&id("22101")).await.expect("station").expect("known");
    assert_eq!(summary.station, named);
    assert_eq!(summary.latest, Some(rows_other_stations()[0].clone()));

    // The REST form: flat station keys plus lastObservationAt and latest.
    let json = serde_json::to_value(&summary).expect("serializes");
    assert_eq!(json["id"], "22101");
    assert_eq!(json["lastObservationAt"], "2018-07-30T21:00:00Z");
    assert_eq!(json["latest"]["pressureHpa"], 1005.3);
}

async fn station_with_data_but_no_metadata(store: Store) {
    let rows = rows_other_stations();
    store.upsert_observations(&rows).await.expect("upsert");
    let summary = store.station(&id("22102")).await.expect("station").expect("stations with data are listed");
    assert_eq!(summary.station, Station::bare(id("22102")));
    assert_eq!(summary.latest, Some(rows[1].clone()));
    assert_eq!(summary.last_observation_at, Some(rows[1].observed_at));
    let page = store.stations(1, 100).await.expect("stations");
    assert_eq!(page.total, 3);
    assert!(page.items.iter().all(|s| s.station.name.is_none() && s.latest.is_some()));
}

async fn unknown_station_is_none(store: Store) {
    store.upsert_observations(&rows_41002()).await.expect("upsert");
    assert_eq!(store.station(&id("46026")).await.expect("station"), None);
    let empty = store.stations(5, 10).await.expect("page past the end");
    assert_eq!((empty.total, empty.items.len()), (1, 0));
}

async fn large_batch_goes_through(store: Store) {
    let start = at(2024, 1, 1, 0, 0);
    let mut rows = Vec::new();
    for station in ["46026", "46042", "46086", "51201"] {
        rows.extend(series(station, start, 5_000));
    }
    let started = Instant::now();
    let inserted = store.upsert_observations(&rows).await.expect("large upsert");
    let elapsed = started.elapsed();
    assert_eq!(inserted.len(), rows.len());
    assert_eq!(inserted, rows);
    eprintln!(
        "{}: upserted {} new rows in {:?} ({:.0} rows/s)",
        store.backend(),
        rows.len(),
        elapsed,
        rows.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
    );
    let started = Instant::now();
    assert!(store.upsert_observations(&rows).await.expect("large re-upsert").is_empty());
    eprintln!("{}: re-upserted {} known rows in {:?}", store.backend(), rows.len(), started.elapsed());
    let page = store
        .observations_by_station(&id("46042"), PageQuery { page: 50, limit: 100, since: None })
        .await
        .expect("page");
    assert_eq!(page.total, 5_000);
    assert_eq!(page.items, rows[5_000..5_100].to_vec(), "the last page is the oldest rows");
    assert!(elapsed < Duration::from_secs(60), "20,000 rows took {elapsed:?}");
}

async fn concurrent_overlapping_upserts_return_each_row_once(store: Store) {
    // Four writers (as several workers would be) with overlapping batches:
    // every row must come back as new from exactly one of them.
    let rows = series("46026", at(2024, 3, 1, 0, 0), 2_000);
    let mut tasks = Vec::new();
    for writer in 0..4_usize {
        let store = store.clone();
        let mut batch: Vec<Observation> = rows[writer * 400..writer * 400 + 800].to_vec();
        if writer % 2 == 1 {
            batch.reverse();
        }
        tasks.push(tokio::spawn(async move { store.upsert_observations(&batch).await }));
    }
    let mut returned = Vec::new();
    for task in tasks {
        returned.extend(task.await.expect("writer task").expect("concurrent upsert"));
    }
    assert_eq!(returned.len(), 2_000, "rows 0..2000 are covered once each");
    assert_eq!(oldest_first(&returned), rows);
}

async fn realtime_file_round_trips(store: Store) {
    let station = id("41002");
    let parsed =
        parse::parse(&fixtures::read("realtime2/41002.txt"), Some(&station)).expect("41002.txt parses");
    assert!(parsed.observations.len() > 6_000, "the fixture's rows parse");
    let inserted = store.upsert_observations(&parsed.observations).await.expect("upsert");
    let unique = oldest_first(&parsed.observations);
    assert_eq!(inserted.len(), unique.len());
    assert_eq!(read_station(&store, &station).await, unique);
    assert!(store.upsert_observations(&parsed.observations).await.expect("re-upsert").is_empty());
}

async fn latest_obs_lists_every_station(store: Store) {
    let parsed = parse::parse(&fixtures::read("latest_obs/latest_obs.txt"), None).expect("latest_obs parses");
    store.upsert_observations(&parsed.observations).await.expect("upsert");
    let by_station: BTreeMap<StationId, Observation> =
        oldest_first(&parsed.observations).into_iter().map(|o| (o.station_id.clone(), o)).collect();
    let page = store.stations(1, 10_000).await.expect("stations");
    assert_eq!(page.total, by_station.len() as u64);
    let listed: Vec<(StationId, Option<Observation>)> =
        page.items.into_iter().map(|s| (s.station.id, s.latest)).collect();
    let want: Vec<(StationId, Option<Observation>)> =
        by_station.into_iter().map(|(station, o)| (station, Some(o))).collect();
    assert_eq!(listed, want);
}

// ---------------------------------------------------------------------------
// Backend-specific

#[tokio::test]
async fn connect_errors_hide_the_password() {
    harness::init_logs();
    let port = harness::free_port();
    let url = format!("postgres://buoy:hunter2@127.0.0.1:{port}/buoycast");
    let options = StoreOptions { acquire_timeout: Duration::from_secs(2), ..StoreOptions::default() };
    let error = Store::connect(&url, options).await.expect_err("nothing listens there");
    let message = error.to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains(&format!("postgres://buoy:***@127.0.0.1:{port}/buoycast")), "{message}");
    let error =
        Store::connect("mysql://root:hunter2@db/x", StoreOptions::default()).await.expect_err("unsupported");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[tokio::test]
async fn sqlite_creates_its_directory_and_uses_wal() {
    harness::init_logs();
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let path = dir.path().join("data").join("nested").join("buoycast.db");
    for url in [format!("sqlite://{}", path.display()), path.display().to_string()] {
        let store = Store::connect(&url, StoreOptions::default()).await.expect("opening SQLite");
        assert_eq!(store.backend(), "sqlite");
        store.migrate().await.expect("migrating");
        let Store::Sqlite(sqlite) = &store else { panic!("a path opens SQLite") };
        let mode: String =
            sqlx::query_scalar("PRAGMA journal_mode").fetch_one(sqlite.pool()).await.expect("journal mode");
        assert_eq!(mode, "wal");
        store.close().await;
    }
    assert!(path.is_file());
}

/// `sqlite::memory:` (for tests): one private database that keeps what is
/// written for as long as the store lives, across many queries.
#[tokio::test]
async fn sqlite_memory_url_is_one_database_for_the_store_lifetime() {
    harness::init_logs();
    let store = Store::connect("sqlite::memory:", StoreOptions::default()).await.expect("opening in memory");
    assert_eq!(store.backend(), "sqlite");
    store.migrate().await.expect("migrating");
    let rows: Vec<_> = (1..=3).map(|n| crate::stream::observation("46026", n)).collect();
    assert_eq!(store.upsert_observations(&rows).await.expect("insert").len(), 3);
    let id = buoycast::observation::StationId::parse("46026").expect("valid");
    for _ in 0..5 {
        let page = store
            .observations_by_station(&id, buoycast::store::PageQuery { page: 1, limit: 10, since: None })
            .await
            .expect("read");
        assert_eq!(page.total, 3);
    }
    store.close().await;
}

/// Drains the whole outbox; returns every event published, in order, and
/// gives each a fake bus id.
async fn drain_all(store: &Store) -> Vec<buoycast::observation::ObservationEvent> {
    let mut published = Vec::new();
    loop {
        let mut batch = Vec::new();
        let drained = store
            .drain_outbox(OutboxTable::Observations, 100, |events| {
                let ids: Vec<String> =
                    (0..events.len()).map(|n| format!("{}-{n}", 1_700_000_000_000u64)).collect();
                batch = events;
                async move { Ok::<_, std::convert::Infallible>(ids) }
            })
            .await
            .expect("drain");
        match drained {
            Drained::Empty => return published,
            Drained::Published(_) => published.append(&mut batch),
            Drained::Failed { .. } => unreachable!("the fake publisher never fails"),
        }
    }
}

/// A value NDBC fills in or revises: the row changes, its revision goes up,
/// and it is published again once; the same file again changes nothing.
async fn a_revised_row_is_stored_and_published_again_once(store: Store) {
    let time = at(2026, 11, 28, 6, 40);
    let first = obs("46026", time, &[(Field::WindSpeedMps, 5.1)]);
    assert_eq!(
        store.upsert_observations(std::slice::from_ref(&first)).await.expect("insert"),
        std::slice::from_ref(&first)
    );
    let published = drain_all(&store).await;
    assert_eq!((published.len(), published[0].revision), (1, 0));

    // The same row again: nothing changes, nothing is published.
    assert!(store.upsert_observations(std::slice::from_ref(&first)).await.expect("same").is_empty());
    assert!(drain_all(&store).await.is_empty());

    // A null filled in (wave height) and a value revised (wind speed).
    let revised = obs("46026", time, &[(Field::WindSpeedMps, 5.3), (Field::WaveHeightM, 1.4)]);
    assert_eq!(
        store.upsert_observations(std::slice::from_ref(&revised)).await.expect("revise"),
        std::slice::from_ref(&revised)
    );
    let published = drain_all(&store).await;
    assert_eq!(published.len(), 1, "published again, once");
    assert_eq!((published[0].revision, &published[0].observation), (1, &revised));
    assert!(published[0].to_bus_json().contains(r#""revised":true"#));
    assert!(store.upsert_observations(std::slice::from_ref(&revised)).await.expect("same again").is_empty());
    assert!(drain_all(&store).await.is_empty());
    // REST shows the latest version.
    assert_eq!(read_station(&store, &id("46026")).await, [revised]);

    // Backfill without publishing stores a correction but never publishes it.
    let silent = obs("46026", time, &[(Field::WindSpeedMps, 5.9), (Field::WaveHeightM, 1.4)]);
    let changed = store
        .upsert_observations_with(std::slice::from_ref(&silent), Delivery::Silent, Origin::StationFile)
        .await;
    assert_eq!(changed.expect("silent revise"), std::slice::from_ref(&silent));
    assert!(drain_all(&store).await.is_empty());
    assert_eq!(read_station(&store, &id("46026")).await, [silent]);
}

/// latest_obs.txt and the station file disagree: the station file wins,
/// latest_obs only fills in what is still null, and a null never erases.
async fn a_station_file_outranks_latest_obs_and_null_never_erases(store: Store) {
    let time = at(2026, 11, 28, 6, 40);
    let summary = |values: &[(Field, f64)]| obs("46026", time, values);
    let upsert = |rows: Vec<Observation>, origin| {
        let store = store.clone();
        async move { store.upsert_observations_with(&rows, Delivery::Outbox, origin).await.expect("upsert") }
    };
    // latest_obs first (rounded pressure), then the station file (exact, with tide).
    upsert(vec![summary(&[(Field::PressureHpa, 1016.0), (Field::WindSpeedMps, 5.0)])], Origin::Summary).await;
    let file = summary(&[(Field::PressureHpa, 1016.3), (Field::WindSpeedMps, 5.0), (Field::TideFt, 1.2)]);
    assert_eq!(upsert(vec![file.clone()], Origin::StationFile).await, std::slice::from_ref(&file));
    // latest_obs again, still rounded: the station file's values stay, nothing flips.
    let again = summary(&[(Field::PressureHpa, 1016.0), (Field::WindSpeedMps, 5.0)]);
    assert!(
        upsert(vec![again], Origin::Summary).await.is_empty(),
        "a summary never overrides the station file"
    );
    // latest_obs with a value the file did not have: filled in.
    let extra = summary(&[(Field::PressureHpa, 1016.0), (Field::WaterTempC, 14.2)]);
    let merged = summary(&[
        (Field::PressureHpa, 1016.3),
        (Field::WindSpeedMps, 5.0),
        (Field::TideFt, 1.2),
        (Field::WaterTempC, 14.2),
    ]);
    assert_eq!(
        upsert(vec![extra], Origin::Summary).await,
        std::slice::from_ref(&merged),
        "returned as stored"
    );
    // The station file again without water temperature (MM): the value stays.
    assert!(upsert(vec![file], Origin::StationFile).await.is_empty(), "a null never erases");
    assert_eq!(read_station(&store, &id("46026")).await, [merged]);
    let revisions: Vec<u32> = drain_all(&store).await.iter().map(|event| event.revision).collect();
    assert_eq!(revisions, [2], "the outbox holds only the newest version, published once");
}

/// One fetch of a three-row file: each row's wind speed, `None` for `MM`.
type Fetch = Vec<Option<u8>>;

/// The store's merge for one source (docs/REFERENCE.md, Corrections): a
/// value replaces, a null keeps what was stored.
fn merge(stored: Option<f64>, fetched: Option<f64>) -> Option<f64> {
    fetched.or(stored)
}

/// Runs `fetches` through the real store (SQLite in memory) and the
/// in-process bus as the worker does (upsert, then drain the outbox with the
/// idempotent publish), losing the outbox's "published" mark after the
/// publish whenever `lose` says so (a crash or a lost reply), and returns
/// the (time, wind speed) of every event subscribers received, and the store.
async fn run_fetches(fetches: &[Fetch], lose: &[bool]) -> (Vec<(DateTime<Utc>, Option<f64>, u32)>, Store) {
    use buoycast::bus::{Bus, BusNotice, MemoryBusOptions};
    let store = Store::connect("sqlite::memory:", StoreOptions::default()).await.expect("in memory");
    store.migrate().await.expect("migrate");
    let bus = Bus::memory(MemoryBusOptions::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut rx = bus.subscribe(shutdown.clone());
    assert!(matches!(rx.recv().await, Some(BusNotice::Connected)));
    let time = |row: usize| at(2026, 11, 28, 6, 0) + chrono::Duration::minutes(10 * row as i64);
    for (n, fetch) in fetches.iter().enumerate() {
        let rows: Vec<Observation> = fetch
            .iter()
            .enumerate()
            .map(|(row, speed)| {
                let mut observation = obs("46026", time(row), &[(Field::PressureHpa, 1015.0)]);
                observation.measurements.set(Field::WindSpeedMps, speed.map(f64::from));
                observation
            })
            .collect();
        store.upsert_observations(&rows).await.expect("upsert");
        if lose.get(n).copied().unwrap_or(false) {
            let bus = bus.clone();
            let lost = store
                .drain_outbox(OutboxTable::Observations, 100, |events| async move {
                    bus.publish_once(&events).await.map_err(|error| error.to_string())?;
                    Err::<Vec<String>, String>("the reply was lost".to_owned())
                })
                .await
                .expect("drain");
            assert!(matches!(lost, Drained::Failed { .. } | Drained::Empty));
        }
        loop {
            let bus = bus.clone();
            let drained = store
                .drain_outbox(OutboxTable::Observations, 100, |events| async move {
                    bus.publish_once(&events).await
                })
                .await
                .expect("drain");
            if matches!(drained, Drained::Empty) {
                break;
            }
        }
    }
    // The in-process bus delivers synchronously into the subscription's queue.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut received = Vec::new();
    while let Ok(notice) = rx.try_recv() {
        if let BusNotice::Event(event) = notice {
            let speed = event.observation.measurements.get(Field::WindSpeedMps);
            received.push((event.observation.observed_at, speed, event.revision));
        }
    }
    shutdown.cancel();
    (received, store)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// For any sequence of fetches of a file whose rows NDBC revises (values
    /// filled in, changed, reported missing), with publishes whose marks get
    /// lost, each distinct version of each row reaches subscribers exactly
    /// once, in order, and the store ends with the last version.
    #[test]
    fn each_distinct_version_reaches_subscribers_once(
        fetches in proptest::collection::vec(proptest::collection::vec(proptest::option::of(0u8..3), 3), 1..6),
        lose in proptest::collection::vec(proptest::prelude::any::<bool>(), 6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (received, store) = runtime.block_on(run_fetches(&fetches, &lose));
        // The model: each row's merged value after each fetch; a change is a version.
        let time = |row: usize| at(2026, 11, 28, 6, 0) + chrono::Duration::minutes(10 * row as i64);
        let mut stored: Vec<Option<Option<f64>>> = vec![None; 3];
        let mut revisions = [0u32; 3];
        let mut expected = Vec::new();
        for fetch in &fetches {
            let mut this_fetch = Vec::new();
            for (row, speed) in fetch.iter().enumerate() {
                let fetched = speed.map(f64::from);
                match stored[row] {
                    None => {
                        stored[row] = Some(fetched);
                        this_fetch.push((time(row), fetched, 0));
                    }
                    Some(before) => {
                        let after = merge(before, fetched);
                        if after != before {
                            revisions[row] += 1;
                            stored[row] = Some(after);
                            this_fetch.push((time(row), after, revisions[row]));
                        }
                    }
                }
            }
            expected.extend(this_fetch);
        }
        proptest::prop_assert_eq!(&received, &expected);
        let rows = runtime.block_on(read_station(&store, &id("46026")));
        let last: Vec<Option<f64>> = rows.iter().map(|row| row.measurements.get(Field::WindSpeedMps)).collect();
        let model: Vec<Option<f64>> = stored.iter().map(|value| value.flatten()).collect();
        proptest::prop_assert_eq!(last, model);
    }
}
