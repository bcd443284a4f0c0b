//! One wave spectrum from NDBC's files to a listener (issue "Directional
//! wave spectra", docs/BENCHMARKS.md): each round, the five spectral files
//! of station 41010 gain a new row on a local HTTP server standing in for
//! NDBC; the bench starts a worker poll at once and times how long until
//! the spectrum reaches
//! - an SSE client of the gateway (`?kinds=spectrum`), and
//! - an OSC host: a UDP socket behind a real `bridge --source` process,
//!   which receives the spectrum's messages (`/buoy/41010/spectrum/time`
//!   comes last).
//!
//! The path is the product's own: HTTP fetch of the five files, parse, join,
//! store (SQLite) with the outbox, publish on the in-process bus, the
//! gateway's hub and SSE encoding, and for OSC the bridge's SSE source,
//! pipeline and UDP sink. The poll interval is left out (the poll starts
//! when the row is there): what NDBC's hourly cadence adds is not ours.
//!
//! Run: `cargo bench --bench spectrum_path` (release; it builds the release
//! `bridge` first when it is missing). `BENCH_ROUNDS` (default 300).
//! It asserts only that every round's spectrum arrived at both.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use buoycast::config::{Config, Overrides};
use buoycast::observation::StationId;
use buoycast::worker::{Worker, WorkerOptions};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

const EXTENSIONS: [&str; 5] = ["data_spec", "swdir", "swdir2", "swr1", "swr2"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Each file's header and newest row, with the row's time left to fill in.
fn templates() -> Vec<(String, String, String)> {
    EXTENSIONS
        .iter()
        .map(|ext| {
            let path = repo().join(format!("tests/fixtures/ndbc/realtime2/41010.{ext}"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let header: String = text
                .lines()
                .take_while(|line| line.starts_with('#'))
                .map(|line| format!("{line}\n"))
                .collect();
            let row = text.lines().find(|line| !line.starts_with('#')).expect("a data row");
            // `YYYY MM DD hh mm` is the first 16 characters.
            (format!("/realtime2/41010.{ext}"), header, row[16..].to_owned())
        })
        .collect()
}

/// The bodies the stand-in NDBC serves, by path.
type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

async fn serve_files(files: Files) -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let files = Arc::clone(&files);
        async move {
            let body = files.lock().expect("lock").get(uri.path()).cloned();
            match body {
                Some(body) => (axum::http::StatusCode::OK, body),
                None => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// The release `bridge`, built when missing.
fn bridge_binary() -> PathBuf {
    let path = repo().join("target/release/bridge");
    if !path.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "-p", "buoycast-bridges", "--bin", "bridge"])
            .current_dir(repo())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the bridge failed");
    }
    path
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn report(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{what}: n={} p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 0.99),
        ms[ms.len() - 1]
    );
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let bridge = bridge_binary();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async move {
        let files: Files = Arc::default();
        let ndbc = serve_files(Arc::clone(&files)).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let env: HashMap<String, String> = [
            ("BUOYCAST_SQLITE_PATH".to_owned(), dir.path().join("bench.db").display().to_string()),
            ("NDBC_API_BASE".to_owned(), format!("http://{ndbc}/realtime2")),
        ]
        .into_iter()
        .collect();
        let config = Config::load_from(&Overrides::default(), &env, dir.path()).expect("config");
        let store = buoycast::cli::open_store(&config).await.expect("store");
        let bus = buoycast::cli::open_bus_seeded(&config, &store).await.expect("bus");
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(buoycast::server::serve(
            listener,
            store.clone(),
            bus.clone(),
            config.clone(),
            shutdown.clone(),
        ));

        let mut options = WorkerOptions::from_config(&config);
        options.ndbc.realtime_base = format!("http://{ndbc}/realtime2");
        options.stations = Vec::new();
        options.spectral_stations = vec![StationId::parse("41010").expect("id")];
        options.latest_obs = false;
        options.station_metadata = false;
        options.interval = Duration::from_millis(1);
        let worker =
            Worker::new(store.clone(), bus.clone(), options, &prometheus::Registry::new()).expect("worker");

        // The SSE client: every spectrum's arrival, by its timestamp.
        let (sse_tx, mut sse_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
        let url = format!("{base}/v1/observations/stream?kinds=spectrum");
        let response = loop {
            match reqwest::get(&url).await {
                Ok(response) if response.status() == 200 => break response,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        tokio::spawn(async move {
            let mut decoder = buoycast::sse::Decoder::new();
            let mut body = response.bytes_stream();
            while let Some(Ok(chunk)) = body.next().await {
                let now = Instant::now();
                for item in decoder.feed(&chunk) {
                    if let buoycast::sse::Item::Event(event) = item {
                        if event.event == "spectrum" {
                            let data: serde_json::Value = serde_json::from_str(&event.data).expect("JSON");
                            let at = data["timestamp"].as_str().unwrap_or_default().to_owned();
                            let _ = sse_tx.send((at, now));
                        }
                    }
                }
            }
        });

        // The OSC host: a UDP socket behind a real bridge.
        let socket = UdpSocket::bind("127.0.0.1:0").expect("udp");
        let osc_addr = socket.local_addr().expect("addr");
        let (osc_tx, osc_rx) = std::sync::mpsc::channel::<Instant>();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            let needle = b"/buoy/41010/spectrum/time";
            while let Ok(n) = socket.recv(&mut buf) {
                let now = Instant::now();
                if buf[..n].windows(needle.len()).any(|w| w == needle) && osc_tx.send(now).is_err() {
                    return;
                }
            }
        });
        let mut child = std::process::Command::new(&bridge)
            .args(["--source", &base, "--osc", &osc_addr.to_string(), "--no-snapshot"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the bridge starts");
        // Let the bridge connect before the first round.
        tokio::time::sleep(Duration::from_secs(2)).await;

        let templates = templates();
        let start = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").expect("time").to_utc();
        let (mut to_sse, mut to_osc) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let at = start + chrono::Duration::hours(round as i64);
            let stamp = at.format("%Y %m %d %H %M").to_string();
            {
                let mut served = files.lock().expect("lock");
                for (path, header, rest) in &templates {
                    served.insert(path.clone(), format!("{header}{stamp}{rest}\n").into_bytes());
                }
            }
            // Timed from the poll that fetches it (a poll can find the source
            // not due yet for a millisecond: its next due time is stored).
            let mut attempts = 0;
            let began = loop {
                let began = Instant::now();
                let report = worker.poll_once().await.expect("poll");
                if report.spectra == 1 {
                    break began;
                }
                assert_eq!(report.fetched, 0, "round {round}: a fetch without a new spectrum ({report:?})");
                attempts += 1;
                assert!(attempts < 1000, "round {round}: the source never came due");
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            let want = buoycast::observation::format_time(&at);
            let arrived = loop {
                let (stamp, arrived) = tokio::time::timeout(Duration::from_secs(5), sse_rx.recv())
                    .await
                    .expect("in time")
                    .expect("open");
                if stamp == want {
                    break arrived;
                }
            };
            to_sse.push(arrived.duration_since(began).as_secs_f64() * 1e3);
            let heard = osc_rx.recv_timeout(Duration::from_secs(5)).expect("the OSC host hears it");
            to_osc.push(heard.duration_since(began).as_secs_f64() * 1e3);
        }
        let _ = child.kill();
        let _ = child.wait();
        println!("one spectrum (46 bands) from NDBC's five files over HTTP to a listener, {rounds} rounds:");
        report("  to an SSE client (?kinds=spectrum)", to_sse);
        report("  to an OSC host through bridge --source", to_osc);
        shutdown.cancel();
    });
}
