//! The bridge's benchmark (harness = false): prints
//! 1. bus message → UDP packet latency (p50 / p99 / max), in process: the
//!    bus JSON is decoded, filtered, OSC-encoded and sent through the real
//!    pipeline and UDP sink to a local receiver, one message at a time;
//!    and the same through a real `redis-server` when one is installed;
//! 2. replay throughput to OSC: observations per second from a real NDBC
//!    file (repeated) through replay → pipeline → UDP sink, with the drops
//!    counted at the queues and at the receiver.
//!
//! It also measures that latency while 50 stations glide on every field
//! (`smooth`), the shaping clock's packets flowing alongside.
//!
//! Run: `cargo bench -p buoycast-bridges --bench bridge`. Targets: p99 < 1 ms;
//! ≥ 50,000 observations/s with zero drops.

use std::net::UdpSocket as StdUdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use buoycast::observation::{Observation, ObservationEvent};
use buoycast_bridges::cli::OscFormat;
use buoycast_bridges::mapping::Map;
use buoycast_bridges::osc::{NullPolicy, OscEncoder};
use buoycast_bridges::pipeline::Pipeline;
use buoycast_bridges::sink::osc::{run_udp, Frame};
use buoycast_bridges::sink::{SinkQueue, SINK_QUEUE};
use buoycast_bridges::source::{replay, Item, SourceContext};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One of the workspace's NDBC fixture files (`tests/fixtures/ndbc/`).
fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/ndbc")).join(relative)
}

/// A UDP receiver on 127.0.0.1 with a 4 MiB receive buffer (the Linux
/// default of 208 KiB overflows in replay bursts whatever the sender does).
fn receiver() -> StdUdpSocket {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).expect("socket");
    let _ = socket.set_recv_buffer_size(4 << 20);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    socket.bind(&addr.into()).expect("bind");
    socket.into()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn print_latency(label: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    println!(
        "{label}: n={} p50={:.1} µs p99={:.1} µs max={:.1} µs",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
    );
}

struct Wired {
    items_tx: mpsc::Sender<Item>,
    pipeline: tokio::task::JoinHandle<buoycast_bridges::pipeline::PipelineStats>,
    sink: tokio::task::JoinHandle<()>,
}

fn wire(target: String, format: OscFormat, bundle: bool, lossless: bool) -> Wired {
    wire_with(target, format, bundle, lossless, Map::builtin())
}

fn wire_with(target: String, format: OscFormat, bundle: bool, lossless: bool, map: Map) -> Wired {
    let (queue, rx, healthy) = SinkQueue::<Frame>::new(target.clone(), SINK_QUEUE);
    let sink = tokio::spawn(run_udp(target, rx, healthy));
    let shaper =
        Some(buoycast_bridges::shape::Shaper::new(&map)).filter(buoycast_bridges::shape::Shaper::is_on);
    let encoder = OscEncoder { format, null_policy: NullPolicy::Skip, bundle, map, latency: None };
    let pipeline = Pipeline {
        encoder: Some(encoder),
        osc: vec![queue],
        midi: None,
        namespace: None,
        lossless,
        control: None,
        start: tokio::time::Instant::now(),
        start_wall: std::time::SystemTime::now(),
        shaper,
    };
    let (items_tx, items_rx) = mpsc::channel(1024);
    let pipeline = tokio::spawn(pipeline.run(items_rx));
    Wired { items_tx, pipeline, sink }
}

const BUS_MESSAGE: &str = r#"{"id":"1732776600000-0","stationId":"46026","timestamp":"2026-11-28T06:40:00Z","windDirDeg":270,"windSpeedMps":5.1,"gustMps":7.2,"waveHeightM":1.2,"dominantPeriodS":12.0,"averagePeriodS":8.1,"meanWaveDirDeg":280,"pressureHpa":1015.3,"airTempC":14.0,"waterTempC":14.2,"dewpointC":10.1,"visibilityNmi":null,"pressureTendencyHpa":-0.4,"tideFt":null}"#;

async fn latency_in_process(n: usize) {
    let receiver = StdUdpSocket::bind("127.0.0.1:0").expect("bind");
    receiver.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let wired = wire(receiver.local_addr().expect("addr").to_string(), OscFormat::Both, true, false);
    let start = tokio::time::Instant::now();
    let mut samples = Vec::with_capacity(n);
    let mut buf = vec![0u8; 65536];
    for i in 0..n + 200 {
        let sent = Instant::now();
        let event = ObservationEvent::decode_bus(BUS_MESSAGE.as_bytes()).expect("valid bus message");
        let item = Item::new(event, start.elapsed(), chrono::Utc::now());
        wired.items_tx.send(item).await.expect("pipeline");
        let got = tokio::task::block_in_place(|| receiver.recv(&mut buf)).expect("the packet arrives");
        let elapsed = sent.elapsed();
        assert!(got > 0);
        if i >= 200 {
            samples.push(elapsed);
        }
    }
    drop(wired.items_tx);
    let _ = wired.pipeline.await;
    let _ = wired.sink.await;
    print_latency(
        "latency bus message → UDP packet (in process: decode, encode both formats as one bundle, send)",
        samples,
    );
}

/// The same latency while every field of `stations` stations glides
/// (`smooth` on all 14 fields): the 50 Hz shaping clock sends its steps
/// alongside, and a report must still get out at once.
async fn latency_with_smoothing(n: usize, stations: usize) {
    let mut text = String::new();
    for field in buoycast::observation::Field::ALL {
        text.push_str(&format!("[fields.{field}]\nsmooth = 30\n"));
    }
    let map = Map::from_toml(&text, "<bench>").expect("map");
    let receiver = StdUdpSocket::bind("127.0.0.1:0").expect("bind");
    receiver.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let wired =
        wire_with(receiver.local_addr().expect("addr").to_string(), OscFormat::Both, true, false, map);
    let start = tokio::time::Instant::now();
    let report = |station: usize, round: usize| {
        let mut event = ObservationEvent::decode_bus(BUS_MESSAGE.as_bytes()).expect("valid bus message");
        event.observation.station_id =
            buoycast::observation::StationId::parse(&format!("s{station}")).expect("station id");
        for field in buoycast::observation::Field::ALL {
            if let Some(value) = event.observation.measurements.get(field) {
                // Alternate between two values so every field keeps gliding.
                let offset = if round % 2 == 0 { 0.0 } else { 0.5 };
                event.observation.measurements.set(field, Some(value + offset));
            }
        }
        Item::new(event, start.elapsed(), chrono::Utc::now())
    };
    let mut buf = vec![0u8; 65536];
    let is_report = |bytes: &[u8]| bytes.windows(12).any(|w| w == b"/observation");
    // Every station reported twice: from now on all of them glide.
    for round in 0..2 {
        for station in 0..stations {
            wired.items_tx.send(report(station, round)).await.expect("pipeline");
            loop {
                let got = tokio::task::block_in_place(|| receiver.recv(&mut buf)).expect("a packet");
                if is_report(&buf[..got]) {
                    break;
                }
            }
        }
    }
    let mut samples = Vec::with_capacity(n);
    let mut steps = 0u64;
    for i in 0..n {
        let sent = Instant::now();
        wired.items_tx.send(report(i % stations, i / stations + 2)).await.expect("pipeline");
        loop {
            let got = tokio::task::block_in_place(|| receiver.recv(&mut buf)).expect("a packet");
            if is_report(&buf[..got]) {
                break;
            }
            steps += 1;
        }
        samples.push(sent.elapsed());
    }
    drop(wired.items_tx);
    let _ = wired.pipeline.await;
    let _ = wired.sink.await;
    print_latency(
        &format!("latency bus message → UDP packet with smooth on all 14 fields of {stations} gliding stations ({steps} clock-step packets in between)"),
        samples,
    );
}

/// The workspace's throw-away `redis-server` (the integration tests' harness).
#[allow(dead_code)] // the bench uses part of it
#[path = "../../tests/it/harness/redis.rs"]
mod redis_server;

/// A free TCP port on 127.0.0.1 (what the harness module asks its parent for).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

async fn latency_through_redis(n: usize) {
    if Command::new("redis-server").arg("--version").output().is_err() {
        println!("latency through redis: skipped (redis-server not installed)");
        return;
    }
    let server = redis_server::RedisServer::start();
    let url = server.url();
    let result = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = None;
        for _ in 0..100 {
            if let Ok(c) = client.get_multiplexed_async_connection().await {
                conn = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut conn = conn.ok_or_else(|| anyhow::anyhow!("redis did not start"))?;
        let receiver = StdUdpSocket::bind("127.0.0.1:0")?;
        receiver.set_read_timeout(Some(Duration::from_secs(2)))?;
        let wired = wire(receiver.local_addr()?.to_string(), OscFormat::Both, true, false);
        let shutdown = CancellationToken::new();
        let ctx = SourceContext {
            items_tx: wired.items_tx.clone(),
            start: tokio::time::Instant::now(),
            stations: Vec::new(),
            shutdown: shutdown.clone(),
            snapshot: false,
        };
        let source = tokio::spawn(buoycast_bridges::source::redis::run(url.clone(), ctx));
        loop {
            let subscribers: Vec<(String, u64)> =
                redis::cmd("PUBSUB").arg("NUMSUB").arg("observations:new").query_async(&mut conn).await?;
            if subscribers.first().is_some_and(|(_, n)| *n > 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut samples = Vec::with_capacity(n);
        let mut buf = vec![0u8; 65536];
        for i in 0..n + 200 {
            // Increasing ids, as the worker's: the source drops an id it has seen.
            let message = BUS_MESSAGE.replacen("1732776600000-0", &format!("1732776600000-{}", i + 1), 1);
            let sent = Instant::now();
            let _: u64 =
                redis::cmd("PUBLISH").arg("observations:new").arg(&message).query_async(&mut conn).await?;
            tokio::task::block_in_place(|| receiver.recv(&mut buf))?;
            if i >= 200 {
                samples.push(sent.elapsed());
            }
        }
        shutdown.cancel();
        let _ = source.await;
        drop(wired.items_tx);
        let _ = wired.pipeline.await;
        let _ = wired.sink.await;
        print_latency("latency PUBLISH on redis → UDP packet (redis round trip included)", samples);
        Ok::<(), anyhow::Error>(())
    }
    .await;
    if let Err(error) = result {
        println!("latency through redis: failed: {error:#}");
    }
    drop(server);
}

async fn replay_throughput(copies: usize, format: OscFormat, bundle: bool, speed: f64) {
    let path = fixture("realtime2/41002.txt");
    let one: Vec<Observation> = replay::load_file(&path)
        .expect("the fixture is an NDBC file")
        .into_iter()
        .filter_map(|report| match report {
            replay::Report::Observation(observation) => Some(observation),
            replay::Report::Spectrum(_) => None,
        })
        .collect();
    let span =
        one.last().map(|l| l.observed_at).expect("rows") - one[0].observed_at + chrono::Duration::minutes(10);
    let observations: Vec<Observation> = (0..copies)
        .flat_map(|copy| {
            one.iter()
                .map(move |o| Observation { observed_at: o.observed_at + span * copy as i32, ..o.clone() })
        })
        .collect();
    let n = observations.len() as u64;
    let receiver = receiver();
    receiver.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let target = receiver.local_addr().expect("addr").to_string();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while receiver.recv(&mut buf).is_ok() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let wired = wire(target, format, bundle, true);
    let ctx = SourceContext {
        items_tx: wired.items_tx.clone(),
        start: tokio::time::Instant::now(),
        stations: Vec::new(),
        shutdown: CancellationToken::new(),
        snapshot: false,
    };
    drop(wired.items_tx);
    let started = Instant::now();
    let sent =
        replay::play(observations.into_iter().map(replay::Report::Observation).collect(), speed, ctx).await;
    let stats = wired.pipeline.await.expect("pipeline");
    wired.sink.await.expect("sink");
    let elapsed = started.elapsed();
    reader.join().expect("reader");
    let got = received.load(Ordering::Relaxed);
    let label = format!("{format:?}{}, --speed {speed:e}", if bundle { " bundled" } else { "" });
    let lost = n.saturating_sub(got);
    println!(
        "replay throughput ({label}): {sent} observations in {:.3} s = {:.0} observations/s; dropped in the bridge's queues: {}; datagrams received {got} of {n} (lost at the receiver: {lost}){}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        stats.n_dropped,
        if stats.n_dropped == 0 && lost == 0 { " — zero drops" } else { "" },
    );
}

fn main() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        latency_in_process(10_000).await;
        latency_with_smoothing(5_000, 50).await;
        latency_through_redis(5_000).await;
        // As fast as the bridge goes (the receiver thread shares the 2 cores and may lose datagrams).
        replay_throughput(20, OscFormat::Observation, false, 1e12).await;
        replay_throughput(20, OscFormat::Both, true, 1e12).await;
        // Paced: 10-minute rows at 36,000,000x is 60,000 observations/s.
        replay_throughput(20, OscFormat::Observation, false, 3.6e7).await;
        replay_throughput(20, OscFormat::Both, true, 3.6e7).await;
    });
}
