//! `?snapshot=latest` at scale (harness = false): an in-process gateway on
//! its embedded default (SQLite in a temp dir, in-process bus) knows 1,000
//! stations; 1,000 SSE clients connect at once asking for the snapshot while
//! live events keep being published. Prints how long the clients took to
//! get their whole snapshot (p50 / p99 / max), the gateway process's CPU
//! for it, and checks every client got every live event published after it
//! connected exactly once, and no live event that repeats its snapshot.
//!
//! Run: `cargo bench --bench snapshot` (`-- --clients N --stations M`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use buoycast::bus::Bus;
use buoycast::config::{Config, Overrides};
use buoycast::observation::{Field, Measurements, Observation, StationId};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// User + system CPU time of this process so far (`/proc/self/stat`), Linux only.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / 100.0))
}

fn observation(station: usize, n: i64) -> Observation {
    Observation {
        station_id: StationId::parse(&format!("s{station}")).expect("station id"),
        observed_at: chrono::DateTime::from_timestamp(1_764_000_000 + n * 600, 0).expect("time"),
        measurements: Measurements::default().with(Field::WaveHeightM, 1.0 + n as f64 / 100.0),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() as f64) - 1.0) * p).round() as usize]
}

/// What one client saw.
struct Seen {
    /// Time from request to its last snapshot event.
    snapshot_took: Duration,
    /// Snapshot events (station → time).
    snapshot: std::collections::HashMap<String, String>,
    /// Live event ids, in order.
    live: Vec<String>,
    /// Live events that repeated the snapshot (same station and time).
    repeats: usize,
}

async fn client(url: String, stations: usize, until: tokio::sync::watch::Receiver<bool>) -> Seen {
    let started = Instant::now();
    let response = reqwest::get(&url).await.expect("stream request");
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut seen =
        Seen { snapshot_took: Duration::ZERO, snapshot: Default::default(), live: Vec::new(), repeats: 0 };
    loop {
        let next = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
        let chunk = match next {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(_) => break,
            Err(_) if *until.borrow() => break,
            Err(_) => continue,
        };
        buffer.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut event = "";
            let mut id = None;
            let mut data = "";
            for line in frame.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    event = value;
                } else if let Some(value) = line.strip_prefix("id: ") {
                    id = Some(value.to_owned());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = value;
                }
            }
            let key = || {
                let value: serde_json::Value = serde_json::from_str(data).expect("JSON data");
                (
                    value["stationId"].as_str().unwrap_or("").to_owned(),
                    value["timestamp"].as_str().unwrap_or("").to_owned(),
                )
            };
            match event {
                "snapshot" => {
                    let (station, time) = key();
                    seen.snapshot.insert(station, time);
                    if seen.snapshot.len() == stations {
                        seen.snapshot_took = started.elapsed();
                    }
                }
                "observation" => {
                    let (station, time) = key();
                    if seen.snapshot.get(&station) == Some(&time) {
                        seen.repeats += 1;
                    }
                    seen.live.push(id.expect("live events have ids"));
                }
                _ => {}
            }
        }
    }
    seen
}

fn main() {
    let mut clients = 1000usize;
    let mut stations = 1000usize;
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--clients" => clients = pair[1].parse().expect("--clients N"),
            "--stations" => stations = pair[1].parse().expect("--stations N"),
            _ => {}
        }
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let env: std::collections::HashMap<String, String> = [
            ("BUOYCAST_SQLITE_PATH".to_owned(), dir.path().join("bench.db").display().to_string()),
            ("BUOYCAST_MAX_CONNECTIONS".to_owned(), (clients + 100).to_string()),
            ("BUOYCAST_CLIENT_QUEUE".to_owned(), "4096".to_owned()),
        ]
        .into_iter()
        .collect();
        let overrides = Overrides { listen: Some("127.0.0.1:0".into()), ..Overrides::default() };
        let config = Config::load_from(&overrides, &env, dir.path()).expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let store = buoycast::cli::open_store(&config).await.expect("store");
        let bus: Bus = buoycast::cli::open_bus_seeded(&config, &store).await.expect("bus");
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(buoycast::server::serve(listener, store, bus.clone(), config, shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Every station reports once: the hub's state has all of them.
        let first: Vec<Observation> = (0..stations).map(|s| observation(s, 0)).collect();
        bus.publish(&first).await.expect("publish");
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Live events keep coming while everyone connects.
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        let publisher = {
            let bus = bus.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 1..=200i64 {
                    let batch: Vec<Observation> = (0..10).map(|k| observation((n as usize * 10 + k) % stations, n)).collect();
                    let published = bus.publish(&batch).await.expect("publish");
                    for (id, observation) in published.into_iter().zip(&batch) {
                        ids.push((
                            id,
                            observation.station_id.to_string(),
                            buoycast::observation::format_time(&observation.observed_at),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                ids
            })
        };
        let url = format!("http://{addr}/v1/observations/stream?snapshot=latest");
        let cpu_before = cpu_time();
        let wall = Instant::now();
        let tasks: Vec<_> =
            (0..clients).map(|_| tokio::spawn(client(url.clone(), stations, done_rx.clone()))).collect();
        let published = publisher.await.expect("publisher");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = done_tx.send(true);
        let mut seen = Vec::with_capacity(clients);
        for task in tasks {
            seen.push(task.await.expect("client"));
        }
        let elapsed = wall.elapsed();
        let cpu = cpu_time().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(6), server).await;

        let mut took: Vec<Duration> = seen.iter().map(|s| s.snapshot_took).collect();
        took.sort_unstable();
        let complete = seen.iter().filter(|s| s.snapshot.len() == stations).count();
        let (mut lost, mut duplicated, mut repeats) = (0usize, 0usize, 0usize);
        for s in &seen {
            let unique: HashSet<&String> = s.live.iter().collect();
            duplicated += s.live.len() - unique.len();
            repeats += s.repeats;
            // Every event after the client's first live one must be there (it
            // was connected by then), unless its snapshot already had it or newer.
            if let Some(first) = s.live.first() {
                let from = published.iter().position(|(id, _, _)| id == first).unwrap_or(0);
                lost += published[from..]
                    .iter()
                    .filter(|(id, station, time)| {
                        !unique.contains(id) && s.snapshot.get(station).map_or(true, |shown| shown < time)
                    })
                    .count();
            }
        }
        println!(
            "snapshot=latest: {clients} SSE clients × {stations} stations, {} live events published meanwhile",
            published.len()
        );
        println!(
            "  whole snapshot received: {complete}/{clients} clients; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(&took, 0.5).as_secs_f64() * 1e3,
            percentile(&took, 0.99).as_secs_f64() * 1e3,
            took.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
        println!(
            "  live events: {lost} lost, {duplicated} duplicated, {repeats} repeating a snapshot; run {:.2} s",
            elapsed.as_secs_f64()
        );
        if let Some(cpu) = cpu {
            let events = (clients * stations) as f64;
            println!(
                "  CPU (gateway and clients in one process): {:.2} s, {:.2} µs per snapshot event delivered",
                cpu.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / events
            );
        }
    });
}
