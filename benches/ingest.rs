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
//! The throw-away server is `initdb` + `postgres` in a temp dir (as the
//! `postgres` user when run as root), fsync off, stopped at the end.
//! It is not a test: it asserts only that every row was inserted once.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use buoycast::observation::{Observation, StationId};
use buoycast::sources::ndbc::parse;
use buoycast::store::{Delivery, Store};
use futures::StreamExt;

/// The realtime stdmet fixtures.
const FIXTURES: [(&str, &str); 4] =
    [("41002.txt", "41002"), ("44013.txt", "44013"), ("TPLM2.txt", "tplm2"), ("46097.txt", "46097")];
/// Rows per replicated station (45 days at a 10-minute cadence is 6480).
const ROWS_PER_STATION: usize = 6_400;
const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

fn main() {
    let n_stations: usize = env_number("BENCH_STATIONS", 800);
    let concurrency: usize = env_number("BENCH_CONCURRENCY", 2);
    let templates = templates();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let (url, server) = match std::env::var("BENCH_DATABASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = TempPostgres::start();
            (server.url(), Some(server))
        }
    };
    runtime.block_on(async {
        let options = buoycast::store::StoreOptions { max_connections: 8, ..Default::default() };
        let store = Store::connect(&url, options).await.expect("connecting to PostgreSQL");
        store.migrate().await.expect("migrating");
        let started = Instant::now();
        let mut inserted = 0usize;
        let mut uploads =
            futures::stream::iter(0..n_stations)
                .map(|station_idx| {
                    let store = store.clone();
                    let rows = station_rows(&templates, station_idx);
                    async move {
                        store.upsert_observations_with(&rows, Delivery::Silent).await.expect("upsert").len()
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
            .upsert_observations_with(&station_rows(&templates, 0), Delivery::Silent)
            .await
            .expect("re-upsert");
        assert!(again.is_empty());
        println!(
            "re-ingest of one station file: {:.1} ms, 0 new rows",
            started.elapsed().as_secs_f64() * 1000.0
        );
        store.close().await;
    });
    drop(server);
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// Each fixture's distinct rows, repeated with time shifts (one file span
/// plus ten minutes apart) up to [`ROWS_PER_STATION`].
fn templates() -> Vec<Vec<Observation>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/ndbc/realtime2");
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

/// A throw-away PostgreSQL cluster, stopped and removed on drop.
struct TempPostgres {
    dir: PathBuf,
    port: u16,
    server: Child,
}

impl TempPostgres {
    fn start() -> TempPostgres {
        let dir = tempfile::Builder::new().prefix("buoycast-bench-pg-").tempdir().expect("temp dir").keep();
        let user = run_as();
        if let Some((uid, gid)) = user {
            let status = Command::new("chown").arg(format!("{uid}:{gid}")).arg(&dir).status().expect("chown");
            assert!(status.success(), "chown failed");
        }
        let data = dir.join("data");
        let output = pg_command("initdb", user, &dir)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("running initdb");
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.join("postgres.log")).expect("log file");
        let server = pg_command("postgres", user, &dir)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "shared_buffers=256MB", "-c", "max_wal_size=4GB"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Accepting TCP is not accepting queries yet: give start-up a moment.
        std::thread::sleep(Duration::from_millis(500));
        TempPostgres { dir, port, server }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // SIGINT: fast shutdown.
        let _ = Command::new("kill").arg("-INT").arg(self.server.id().to_string()).status();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_as() -> Option<(u32, u32)> {
    let euid = Command::new("id").arg("-u").output().expect("id -u");
    if String::from_utf8_lossy(&euid.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let entry = passwd.lines().find(|line| line.starts_with("postgres:")).expect("a postgres user");
    let fields: Vec<&str> = entry.split(':').collect();
    Some((fields[2].parse().expect("uid"), fields[3].parse().expect("gid")))
}

fn pg_command(program: &str, user: Option<(u32, u32)>, dir: &Path) -> Command {
    let mut command = Command::new(Path::new(BIN_DIR).join(program));
    command.current_dir(dir).env_remove("PGDATA").env_remove("PGPORT").env_remove("PGHOST");
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command
}
