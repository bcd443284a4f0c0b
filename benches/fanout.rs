//! Gateway fan-out benchmark (issue 4, "Performance"): a real `redis-server`
//! and the release `buoycast serve` binary as separate processes, N SSE
//! clients connecting at once, M events published through the Redis bus.
//!
//! Run with `cargo bench --bench fanout` (or `scripts/bench-fanout.sh`).
//! Knobs (environment, or `--clients/--events/--interval-ms/--runs/--sources`):
//! - `BUOYCAST_BENCH_CLIENTS`: comma-separated client counts (default `1000,5000,10000`)
//! - `BUOYCAST_BENCH_EVENTS`: events published per run (default 50)
//! - `BUOYCAST_BENCH_INTERVAL_MS`: spacing between events (default 100)
//! - `BUOYCAST_BENCH_RUNS`: runs per client count; with more than one a
//!   `median` row follows (default 3)
//! - `BUOYCAST_BENCH_SOURCES`: loopback source addresses 127.0.0.1..=x the
//!   clients connect from, to stay clear of the ephemeral port range (default 8)
//! - `soak [MINUTES]` (or `--soak-minutes N`, `BUOYCAST_BENCH_SOAK_MINUTES`):
//!   1,000 clients, one event a second for N minutes (default 2); RSS and
//!   latency every 30 s, failing when memory grows or an event is lost
//!
//! Each run prints one table row: connect time (each client's own `connect()`
//! to its `connection` event) p50/p99 and the time until all N were in;
//! publish→receive latency (the instant before `Bus::publish` to the arrival
//! of the event at each client) p50/p99/max; events lost (N×M − received);
//! the server's RSS growth per connection, idle after connecting and after
//! the events; the server's CPU (utime+stime) during the publishing phase
//! divided by N×M deliveries, and during the connect burst divided by N; and
//! the bench's own CPU during the burst divided by N.
//!
//! "Arrival" is the kernel's receive timestamp on the client socket
//! (`SO_TIMESTAMPNS`): when the gateway's bytes reached the client. The
//! `rd` columns end instead when the client task got to read them, which
//! adds the bench's own scheduling delay (10,000 clients in one process).
//! With `BUOYCAST_BENCH_PERF=PREFIX` the gateway is profiled with `perf`;
//! `BUOYCAST_BENCH_PERF_PHASE=connect` limits that to the connect burst.
//!
//! The clients share the machine with the server: on a 2-core box every
//! figure includes the clients' own CPU contention. Everything is bounded
//! (counts and deadlines) and only talks to 127.0.0.x. It is not a load
//! generator for remote hosts, and it checks nothing about SSE correctness
//! beyond ids and event names (the integration tests do that).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use buoycast::bus::{parse_stream_id, Bus, RedisBusOptions};
use buoycast::observation::{Field, Measurements, Observation, StationId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a process may take to become ready (redis PING, gateway `/ready`).
const READY_WITHIN: Duration = Duration::from_secs(20);
/// How long one client's blocking handshake (and request write) may take:
/// long enough for SYN retransmits (1 s, 3 s, 7 s) after a full backlog.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one client may take from `connect()` to its `connection` event.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after the last publish the clients may still be receiving.
const DRAIN_GRACE: Duration = Duration::from_secs(10);
/// Pause between "everyone connected" and the idle RSS reading.
const SETTLE: Duration = Duration::from_secs(1);
/// Marks a process that already re-executed itself with a raised fd limit.
const REEXEC_MARK: &str = "BUOYCAST_BENCH_REEXEC";

type AnyResult<T> = Result<T, String>;

/// What to run.
#[derive(Debug, Clone)]
struct Plan {
    /// Client counts, one block of runs each.
    clients: Vec<usize>,
    /// Events per run.
    events: usize,
    /// Spacing between events.
    interval: Duration,
    /// Runs per client count.
    runs: usize,
    /// Number of loopback source addresses.
    sources: u8,
    /// Soak mode: run this many minutes with one event a second and report
    /// RSS and latency over time (0: the usual fan-out runs).
    soak_minutes: usize,
}

impl Plan {
    fn from_env_and_args() -> AnyResult<Plan> {
        let mut values: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
        for (key, var) in [
            ("clients", "BUOYCAST_BENCH_CLIENTS"),
            ("events", "BUOYCAST_BENCH_EVENTS"),
            ("interval-ms", "BUOYCAST_BENCH_INTERVAL_MS"),
            ("runs", "BUOYCAST_BENCH_RUNS"),
            ("sources", "BUOYCAST_BENCH_SOURCES"),
            ("soak-minutes", "BUOYCAST_BENCH_SOAK_MINUTES"),
        ] {
            if let Ok(value) = std::env::var(var) {
                values.insert(key, value);
            }
        }
        // `cargo bench` passes `--bench`; anything we do not know is ignored.
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].trim_start_matches("--");
            let (key, inline) = match arg.split_once('=') {
                Some((key, value)) => (key, Some(value.to_owned())),
                None => (arg, None),
            };
            if arg == "soak" && !args[i].starts_with("--") {
                // `soak [MINUTES]`: the soak mode, 2 minutes unless a number follows.
                let minutes = args.get(i + 1).filter(|next| next.parse::<usize>().is_ok());
                if minutes.is_some() {
                    i += 1;
                }
                values.insert("soak-minutes", minutes.cloned().unwrap_or_else(|| "2".to_owned()));
                i += 1;
                continue;
            }
            if let Some(known) = ["clients", "events", "interval-ms", "runs", "sources", "soak-minutes"]
                .into_iter()
                .find(|k| *k == key)
            {
                let value = match inline {
                    Some(value) => value,
                    None => {
                        i += 1;
                        args.get(i).cloned().ok_or_else(|| format!("--{known} needs a value"))?
                    }
                };
                values.insert(known, value);
            }
            i += 1;
        }
        let number = |key: &str, default: usize| -> AnyResult<usize> {
            match values.get(key) {
                Some(raw) => raw.trim().parse().map_err(|_| format!("{key}: not a number: {raw:?}")),
                None => Ok(default),
            }
        };
        let clients = match values.get("clients") {
            Some(raw) => raw
                .split(',')
                .map(|part| {
                    part.trim().parse::<usize>().map_err(|_| format!("clients: not a number: {part:?}"))
                })
                .collect::<AnyResult<Vec<usize>>>()?,
            None => vec![1000, 5000, 10_000],
        };
        let sources = number("sources", 8)?.clamp(1, 250) as u8;
        let soak_minutes = number("soak-minutes", 0)?;
        let clients = if soak_minutes > 0 && !values.contains_key("clients") { vec![1000] } else { clients };
        let plan = Plan {
            clients,
            events: number("events", 50)?.max(1),
            interval: Duration::from_millis(number("interval-ms", 100)? as u64),
            runs: number("runs", 3)?.max(1),
            sources,
            soak_minutes,
        };
        if plan.clients.contains(&0) {
            return Err("clients: counts must be positive".to_owned());
        }
        Ok(plan)
    }
}

/// One run's figures.
#[derive(Debug, Clone, Default)]
struct Figures {
    clients: usize,
    events: usize,
    load: f64,
    connect_p50_ms: f64,
    connect_p99_ms: f64,
    all_in_ms: f64,
    connect_failed: usize,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    latency_max_ms: f64,
    /// Connect p99 with the client's read time as the end (see [`Stamp`]).
    read_connect_p99_ms: f64,
    /// Latency p99 with the client's read time as the end.
    read_latency_p99_ms: f64,
    /// TCP handshake p99 (`connect()` returned): no handshake waited on a full backlog.
    tcp_connect_p99_ms: f64,
    lost: usize,
    lagged: usize,
    baseline_mib: f64,
    idle_kib_per_conn: f64,
    after_kib_per_conn: f64,
    cpu_us_per_delivery: f64,
    cpu_us_per_connect: f64,
    /// The bench's own CPU (its clients) during the connect burst, per client.
    client_cpu_us_per_connect: f64,
}

fn main() -> ExitCode {
    let plan = match Plan::from_env_and_args() {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("fanout bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let largest = plan.clients.iter().copied().max().unwrap_or(0);
    if let Some(code) = raise_fd_limit(largest + 512) {
        return code;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("fanout bench: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if plan.soak_minutes > 0 {
        let clients = plan.clients.first().copied().unwrap_or(1000);
        return match runtime.block_on(soak(&plan, clients)) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(error) => {
                eprintln!("fanout bench: soak failed: {error}");
                ExitCode::FAILURE
            }
        };
    }
    eprintln!(
        "fanout bench: clients {:?}, {} events every {:?}, {} run(s) each, {} source address(es), {} cores",
        plan.clients,
        plan.events,
        plan.interval,
        plan.runs,
        plan.sources,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    print_header();
    let mut failed = false;
    for &clients in &plan.clients {
        let mut rows = Vec::new();
        for run in 1..=plan.runs {
            match runtime.block_on(run_once(&plan, clients)) {
                Ok(figures) => {
                    print_row(&format!("run {run}"), &figures);
                    rows.push(figures);
                }
                Err(error) => {
                    eprintln!("fanout bench: {clients} clients, run {run} failed: {error}");
                    failed = true;
                }
            }
        }
        if rows.len() > 1 {
            let median = median_of(&rows);
            print_row("median", &median);
            print_verdict(&median);
        } else if let Some(only) = rows.first() {
            print_verdict(only);
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_header() {
    println!(
        "| {:<8} | {:>7} | {:>6} | {:>4} | {:>9} | {:>9} | {:>8} | {:>8} | {:>9} | {:>9} | {:>9} | {:>11} | {:>11} | {:>6} | {:>8} | {:>10} | {:>11} | {:>10} | {:>9} | {:>12} |",
        "run",
        "clients",
        "events",
        "load",
        "conn p50",
        "conn p99",
        "all in",
        "tcp p99",
        "lat p50",
        "lat p99",
        "lat max",
        "rd conn p99",
        "rd lat p99",
        "lost",
        "base MiB",
        "KiB/c idle",
        "KiB/c after",
        "CPU µs/dlv",
        "µs/conn",
        "bench µs/c"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|",
        "-".repeat(10),
        "-".repeat(9),
        "-".repeat(8),
        "-".repeat(6),
        "-".repeat(11),
        "-".repeat(11),
        "-".repeat(10),
        "-".repeat(10),
        "-".repeat(11),
        "-".repeat(11),
        "-".repeat(11),
        "-".repeat(13),
        "-".repeat(13),
        "-".repeat(8),
        "-".repeat(10),
        "-".repeat(12),
        "-".repeat(13),
        "-".repeat(12),
        "-".repeat(11),
        "-".repeat(14)
    );
}

fn print_row(label: &str, f: &Figures) {
    let mut lost = f.lost.to_string();
    if f.lagged > 0 || f.connect_failed > 0 {
        lost = format!("{lost}*");
    }
    println!(
        "| {:<8} | {:>7} | {:>6} | {:>4.1} | {:>6.1} ms | {:>6.1} ms | {:>5.0} ms | {:>5.1} ms | {:>6.1} ms | {:>6.1} ms | {:>6.1} ms | {:>8.1} ms | {:>8.1} ms | {:>6} | {:>8.1} | {:>10.2} | {:>11.2} | {:>10.2} | {:>9.1} | {:>12.1} |",
        label,
        f.clients,
        f.events,
        f.load,
        f.connect_p50_ms,
        f.connect_p99_ms,
        f.all_in_ms,
        f.tcp_connect_p99_ms,
        f.latency_p50_ms,
        f.latency_p99_ms,
        f.latency_max_ms,
        f.read_connect_p99_ms,
        f.read_latency_p99_ms,
        lost,
        f.baseline_mib,
        f.idle_kib_per_conn,
        f.after_kib_per_conn,
        f.cpu_us_per_delivery,
        f.cpu_us_per_connect,
        f.client_cpu_us_per_connect
    );
    if f.lagged > 0 || f.connect_failed > 0 {
        println!("  * {} client(s) failed to connect, {} were told `lagged`", f.connect_failed, f.lagged);
    }
}

/// Checks the figures against the targets and prints what misses.
fn print_verdict(f: &Figures) {
    let latency_target = match f.clients {
        0..=1000 => 30.0,
        1001..=5000 => 100.0,
        _ => 200.0,
    };
    let mut misses = Vec::new();
    if f.lost > 0 {
        misses.push(format!("{} events lost", f.lost));
    }
    if f.latency_p99_ms > latency_target {
        misses.push(format!("latency p99 {:.1} ms > {latency_target} ms", f.latency_p99_ms));
    }
    if f.clients >= 10_000 && f.connect_p99_ms > 150.0 {
        misses.push(format!("connect p99 {:.1} ms > 150 ms", f.connect_p99_ms));
    }
    for (what, kib) in [("idle", f.idle_kib_per_conn), ("after events", f.after_kib_per_conn)] {
        if kib > 10.0 {
            misses.push(format!("{kib:.2} KiB/connection {what} > 10 KiB"));
        }
    }
    if f.cpu_us_per_delivery > 14.0 {
        misses.push(format!("{:.2} µs CPU/delivery > 14 µs", f.cpu_us_per_delivery));
    }
    if misses.is_empty() {
        println!("  {} clients: every target met", f.clients);
    } else {
        println!("  {} clients: MISSED {}", f.clients, misses.join("; "));
    }
}

/// The median of every column independently.
fn median_of(rows: &[Figures]) -> Figures {
    fn med(rows: &[Figures], get: impl Fn(&Figures) -> f64) -> f64 {
        let mut values: Vec<f64> = rows.iter().map(get).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }
    Figures {
        clients: rows[0].clients,
        events: rows[0].events,
        load: med(rows, |f| f.load),
        connect_p50_ms: med(rows, |f| f.connect_p50_ms),
        connect_p99_ms: med(rows, |f| f.connect_p99_ms),
        all_in_ms: med(rows, |f| f.all_in_ms),
        connect_failed: med(rows, |f| f.connect_failed as f64) as usize,
        latency_p50_ms: med(rows, |f| f.latency_p50_ms),
        latency_p99_ms: med(rows, |f| f.latency_p99_ms),
        latency_max_ms: med(rows, |f| f.latency_max_ms),
        read_connect_p99_ms: med(rows, |f| f.read_connect_p99_ms),
        read_latency_p99_ms: med(rows, |f| f.read_latency_p99_ms),
        tcp_connect_p99_ms: med(rows, |f| f.tcp_connect_p99_ms),
        lost: med(rows, |f| f.lost as f64) as usize,
        lagged: med(rows, |f| f.lagged as f64) as usize,
        baseline_mib: med(rows, |f| f.baseline_mib),
        idle_kib_per_conn: med(rows, |f| f.idle_kib_per_conn),
        after_kib_per_conn: med(rows, |f| f.after_kib_per_conn),
        cpu_us_per_delivery: med(rows, |f| f.cpu_us_per_delivery),
        cpu_us_per_connect: med(rows, |f| f.cpu_us_per_connect),
        client_cpu_us_per_connect: med(rows, |f| f.client_cpu_us_per_connect),
    }
}

/// Makes sure this process (and so its children) may open `needed` files:
/// when the soft limit is lower and the hard limit allows it, re-executes
/// itself under `ulimit -n HARD` (no unsafe `setrlimit` needed). Returns an
/// exit code when it did (the child's), `None` to carry on here.
fn raise_fd_limit(needed: usize) -> Option<ExitCode> {
    let Some((soft, hard)) = fd_limits() else {
        eprintln!("fanout bench: cannot read the open-files limit; carrying on");
        return None;
    };
    if soft >= needed as u64 {
        return None;
    }
    if hard <= soft || std::env::var_os(REEXEC_MARK).is_some() {
        eprintln!(
            "fanout bench: open-files limit {soft} (hard {hard}) is below the {needed} this run needs; \
             expect connect failures"
        );
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    eprintln!("fanout bench: raising the open-files limit from {soft} to {hard} (re-executing)");
    let status = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n \"$1\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(hard.to_string())
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(REEXEC_MARK, "1")
        .status();
    match status {
        Ok(status) if status.success() => Some(ExitCode::SUCCESS),
        Ok(_) => Some(ExitCode::FAILURE),
        Err(error) => {
            eprintln!("fanout bench: re-executing failed ({error}); carrying on with {soft}");
            None
        }
    }
}

/// (soft, hard) `Max open files` of this process.
fn fd_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    let mut numbers = line["Max open files".len()..].split_whitespace();
    let soft = numbers.next()?.parse().ok()?;
    let hard = numbers.next().and_then(|hard| hard.parse().ok()).unwrap_or(u64::MAX);
    Some((soft, hard))
}

/// A child process killed (by its own pid) when dropped.
struct Owned {
    child: Child,
    what: &'static str,
}

impl Drop for Owned {
    fn drop(&mut self) {
        // Already exited is fine: wait() reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Owned {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn check_alive(&mut self, log: &Path) -> AnyResult<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); log:\n{}",
                self.what,
                std::fs::read_to_string(log).unwrap_or_default()
            )),
            Err(error) => Err(format!("{}: {error}", self.what)),
        }
    }
}

fn free_port() -> AnyResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
    Ok(listener.local_addr().map_err(|e| format!("free port: {e}"))?.port())
}

fn start_redis(dir: &Path) -> AnyResult<(Owned, u16)> {
    let log = dir.join("redis.log");
    for _ in 0..5 {
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--maxclients", "1000", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot spawn redis-server: {e}"))?;
        let mut redis = Owned { child, what: "redis-server" };
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if redis_pong(port) {
                return Ok((redis, port));
            }
            if redis.check_alive(&log).is_err() {
                break; // port taken in between: try another
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Err(format!("redis-server did not start; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default()))
}

fn redis_pong(port: u16) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

fn start_gateway(dir: &Path, redis_port: u16, clients: usize) -> AnyResult<(Owned, u16, PathBuf)> {
    let log = dir.join("gateway.log");
    let port = free_port()?;
    let out = std::fs::File::create(&log).map_err(|e| format!("gateway log: {e}"))?;
    let err = out.try_clone().map_err(|e| format!("gateway log: {e}"))?;
    let child = Command::new(env!("CARGO_BIN_EXE_buoycast"))
        .arg("serve")
        .current_dir(dir)
        .env("REDIS_URL", format!("redis://127.0.0.1:{redis_port}"))
        .env("BUOYCAST_LISTEN", format!("127.0.0.1:{port}"))
        .env("BUOYCAST_SQLITE_PATH", dir.join("bench.sqlite"))
        .env("BUOYCAST_MAX_CONNECTIONS", (clients + 1000).to_string())
        .env("RUST_LOG", std::env::var("BUOYCAST_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .env_remove("PORT")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot spawn {}: {e}", env!("CARGO_BIN_EXE_buoycast")))?;
    let mut gateway = Owned { child, what: "buoycast serve" };
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        gateway.check_alive(&log)?;
        if http_status(port, "/ready") == Some(200) {
            return Ok((gateway, port, log));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "gateway not ready within {READY_WITHIN:?}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status code of a plain `GET path` (blocking, for readiness).
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// VmRSS of `pid`, in bytes.
fn rss_bytes(pid: u32) -> AnyResult<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).ok_or("no VmRSS line")?;
    let kib: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|_| format!("bad VmRSS line {line:?}"))?;
    Ok(kib * 1024)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> AnyResult<u64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the `(comm)`; utime and stime are fields 14 and 15 overall.
    let rest = stat.rsplit_once(')').ok_or("bad /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> AnyResult<u64> {
        fields.get(i).and_then(|v| v.parse().ok()).ok_or_else(|| format!("bad /proc stat field {i}"))
    };
    Ok(field(11)? + field(12)?)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when unknown).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// With `BUOYCAST_BENCH_PERF=PREFIX`, records the gateway with `perf record`
/// into `PREFIX-{clients}.data` (for finding bottlenecks; it costs CPU).
fn start_profiler(pid: u32, clients: usize) -> AnyResult<Option<Owned>> {
    let Ok(prefix) = std::env::var("BUOYCAST_BENCH_PERF") else { return Ok(None) };
    let child = Command::new("perf")
        .args(["record", "-q", "-F", "999", "-g", "-p", &pid.to_string(), "-o"])
        .arg(format!("{prefix}-{clients}.data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot spawn perf: {e}"))?;
    Ok(Some(Owned { child, what: "perf" }))
}

/// Lets `perf record` write its file (SIGINT to our own child), then reaps it.
fn stop_profiler(mut profiler: Owned) {
    let _ = Command::new("kill").arg("-INT").arg(profiler.pid().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = profiler.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A synthetic observation with the fields a typical NDBC buoy reports.
fn observation(n: usize) -> AnyResult<Observation> {
    let base = chrono::DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z")
        .map_err(|e| e.to_string())?
        .with_timezone(&chrono::Utc);
    let x = n as f64;
    Ok(Observation {
        station_id: StationId::parse("46026").map_err(|e| e.to_string())?,
        observed_at: base + chrono::Duration::minutes(10 * n as i64),
        measurements: Measurements::default()
            .with(Field::WindDirDeg, 270.0)
            .with(Field::WindSpeedMps, 5.5 + x / 100.0)
            .with(Field::GustMps, 7.1)
            .with(Field::WaveHeightM, 1.2 + x / 100.0)
            .with(Field::DominantPeriodS, 11.0)
            .with(Field::AveragePeriodS, 7.4)
            .with(Field::MeanWaveDirDeg, 285.0)
            .with(Field::PressureHpa, 1013.4)
            .with(Field::AirTempC, 14.2)
            .with(Field::WaterTempC, 13.1),
    })
}

/// What one client saw.
#[derive(Default)]
struct ClientReport {
    /// Its own `connect()` → `connection` event, when it got there.
    connect: Option<Stamp<Duration>>,
    /// Its own `connect()` → the end of the TCP handshake.
    handshake: Option<Duration>,
    /// Observation events: stream id, and when the bytes that completed them arrived.
    events: Vec<((u64, u64), Stamp<Instant>)>,
    /// It was told `lagged`.
    lagged: bool,
    /// Why it stopped early, if it did.
    error: Option<String>,
}

/// When something reached a client, two ways: `arrived` is when the kernel
/// queued the bytes on the client's socket (`SO_TIMESTAMPNS`), `read` is
/// when the client task got to read them. The gap is the bench's own
/// scheduling: 10,000 clients in one process on the gateway's two cores
/// read late, which remote clients would not.
#[derive(Debug, Clone, Copy)]
struct Stamp<T> {
    arrived: T,
    read: T,
}

/// Shared counters the clients bump.
#[derive(Default)]
struct Progress {
    connected: AtomicUsize,
    failed: AtomicUsize,
    finished: AtomicUsize,
}

/// Opens the bench's own bus connection and publishes once, so the bus and
/// the gateway's hub are warm before anyone listens; the gateway's RSS then.
async fn warm_up(redis_port: u16, pid: u32) -> AnyResult<(Bus, u64)> {
    let bus = Bus::redis(&format!("redis://127.0.0.1:{redis_port}"), RedisBusOptions::default())
        .map_err(|e| e.to_string())?;
    bus.publish(&[observation(0)?]).await.map_err(|e| format!("warm-up publish: {e}"))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok((bus, rss_bytes(pid)?))
}

/// `clients` client tasks parked on a start signal.
struct Crowd {
    /// Each client's task; yields its report.
    tasks: Vec<tokio::task::JoinHandle<ClientReport>>,
    /// Counters the clients bump.
    progress: Arc<Progress>,
    /// Cancel to let every client close its socket.
    stop: CancellationToken,
    /// Send `true` to make them all connect at once.
    go: watch::Sender<bool>,
}

/// Spawns `clients` clients, spread over the plan's source addresses, each
/// expecting `expected` observations from the gateway on `port`.
fn spawn_crowd(plan: &Plan, clients: usize, port: u16, expected: usize) -> Crowd {
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let progress = Arc::new(Progress::default());
    let stop = CancellationToken::new();
    let (go, go_rx) = watch::channel(false);
    let tasks = (0..clients)
        .map(|index| {
            let source = (plan.sources > 1)
                .then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % plan.sources as usize) as u8)));
            tokio::spawn(client(target, source, go_rx.clone(), Arc::clone(&progress), expected, stop.clone()))
        })
        .collect();
    Crowd { tasks, progress, stop, go }
}

async fn run_once(plan: &Plan, clients: usize) -> AnyResult<Figures> {
    let dir =
        tempfile::Builder::new().prefix("buoycast-fanout-").tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let load = load_average();
    let (redis, redis_port) = start_redis(dir.path())?;
    let (mut gateway, port, gateway_log) = start_gateway(dir.path(), redis_port, clients)?;
    let pid = gateway.pid();
    let connect_only = std::env::var("BUOYCAST_BENCH_PERF_PHASE").is_ok_and(|phase| phase == "connect");
    let mut profiler = if connect_only { None } else { start_profiler(pid, clients)? };

    let (bus, baseline) = warm_up(redis_port, pid).await?;
    // Every client waits on `go`, then connects at once.
    let Crowd { tasks, progress, stop, go: go_tx } = spawn_crowd(plan, clients, port, plan.events);
    tokio::task::yield_now().await;
    if connect_only {
        profiler = start_profiler(pid, clients)?;
        // perf needs a moment to attach before the burst.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let connect_ticks = cpu_ticks(pid)?;
    let client_ticks = cpu_ticks(std::process::id())?;
    let started = Instant::now();
    go_tx.send_replace(true);
    let connect_deadline = started + CONNECT_TIMEOUT + Duration::from_secs(5);
    while progress.connected.load(Ordering::Acquire) + progress.failed.load(Ordering::Acquire) < clients {
        if Instant::now() > connect_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_in = started.elapsed();
    let connect_ticks = cpu_ticks(pid)?.saturating_sub(connect_ticks);
    let client_ticks = cpu_ticks(std::process::id())?.saturating_sub(client_ticks);
    if connect_only {
        if let Some(profiler) = profiler.take() {
            stop_profiler(profiler);
        }
    }
    gateway.check_alive(&gateway_log)?;
    tokio::time::sleep(SETTLE).await;
    let idle = rss_bytes(pid)?;

    // Publish M events, spaced out; note the instant before each publish call.
    let ticks_before = cpu_ticks(pid)?;
    let mut sent: Vec<((u64, u64), Instant)> = Vec::with_capacity(plan.events);
    let schedule = tokio::time::Instant::now();
    for n in 1..=plan.events {
        tokio::time::sleep_until(schedule + plan.interval * (n as u32 - 1)).await;
        let at = Instant::now();
        let ids = bus.publish(&[observation(n)?]).await.map_err(|e| format!("publish {n}: {e}"))?;
        let id = ids.first().and_then(|id| parse_stream_id(id)).ok_or("publish returned no parsable id")?;
        sent.push((id, at));
    }
    let drain_deadline = Instant::now() + DRAIN_GRACE;
    let connected = progress.connected.load(Ordering::Acquire);
    while progress.finished.load(Ordering::Acquire) < connected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ticks_after = cpu_ticks(pid)?;
    let after = rss_bytes(pid)?;
    gateway.check_alive(&gateway_log)?;
    stop.cancel();

    let mut reports = Vec::with_capacity(clients);
    for task in tasks {
        reports.push(task.await.map_err(|e| format!("client task: {e}"))?);
    }
    if let Some(profiler) = profiler {
        stop_profiler(profiler);
    }
    drop(gateway);
    drop(redis);

    // Figures.
    let mut connects: Vec<Duration> = reports.iter().filter_map(|r| r.connect.map(|c| c.arrived)).collect();
    connects.sort_unstable();
    let mut connects_read: Vec<Duration> = reports.iter().filter_map(|r| r.connect.map(|c| c.read)).collect();
    connects_read.sort_unstable();
    let mut handshakes: Vec<Duration> = reports.iter().filter_map(|r| r.handshake).collect();
    handshakes.sort_unstable();
    let connect_failed = clients - connects.len();
    if let Some(error) = reports.iter().find_map(|r| r.error.as_deref()) {
        eprintln!("fanout bench: first client error: {error}");
    }
    let published: std::collections::HashMap<(u64, u64), Instant> = sent.iter().copied().collect();
    let mut latencies: Vec<Duration> = Vec::with_capacity(clients * plan.events);
    let mut latencies_read: Vec<Duration> = Vec::with_capacity(clients * plan.events);
    let mut received = 0usize;
    for report in &reports {
        let mut seen = std::collections::HashSet::with_capacity(report.events.len());
        for (id, at) in &report.events {
            if let Some(sent_at) = published.get(id) {
                if seen.insert(*id) {
                    received += 1;
                    latencies.push(at.arrived.saturating_duration_since(*sent_at));
                    latencies_read.push(at.read.saturating_duration_since(*sent_at));
                }
            }
        }
    }
    latencies.sort_unstable();
    latencies_read.sort_unstable();
    let deliveries = (clients * plan.events) as f64;
    let cpu_secs = (ticks_after.saturating_sub(ticks_before)) as f64 / clock_ticks();
    let per_conn_kib = |bytes: u64| (bytes as f64 - baseline as f64) / clients as f64 / 1024.0;
    Ok(Figures {
        clients,
        events: plan.events,
        load,
        connect_p50_ms: ms(percentile(&connects, 50.0)),
        connect_p99_ms: ms(percentile(&connects, 99.0)),
        all_in_ms: ms(all_in),
        connect_failed,
        latency_p50_ms: ms(percentile(&latencies, 50.0)),
        latency_p99_ms: ms(percentile(&latencies, 99.0)),
        latency_max_ms: ms(latencies.last().copied().unwrap_or_default()),
        read_connect_p99_ms: ms(percentile(&connects_read, 99.0)),
        tcp_connect_p99_ms: ms(percentile(&handshakes, 99.0)),
        read_latency_p99_ms: ms(percentile(&latencies_read, 99.0)),
        lost: clients * plan.events - received,
        lagged: reports.iter().filter(|r| r.lagged).count(),
        baseline_mib: baseline as f64 / (1024.0 * 1024.0),
        idle_kib_per_conn: per_conn_kib(idle),
        after_kib_per_conn: per_conn_kib(after),
        cpu_us_per_delivery: cpu_secs * 1e6 / deliveries,
        cpu_us_per_connect: connect_ticks as f64 / clock_ticks() * 1e6 / clients as f64,
        client_cpu_us_per_connect: client_ticks as f64 / clock_ticks() * 1e6 / clients as f64,
    })
}

/// Soak: `clients` clients, one event a second for `plan.soak_minutes`
/// minutes; prints the gateway's RSS and the delivery latency per window and
/// says whether memory stayed flat. `Ok(false)` when events were lost or
/// memory grew.
async fn soak(plan: &Plan, clients: usize) -> AnyResult<bool> {
    const WINDOW: usize = 30;
    let total = plan.soak_minutes * 60;
    eprintln!("fanout bench: soak, {clients} clients, 1 event/s for {} min", plan.soak_minutes);
    let dir =
        tempfile::Builder::new().prefix("buoycast-soak-").tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let (redis, redis_port) = start_redis(dir.path())?;
    let (mut gateway, port, gateway_log) = start_gateway(dir.path(), redis_port, clients)?;
    let pid = gateway.pid();
    let (bus, baseline) = warm_up(redis_port, pid).await?;
    let Crowd { tasks, progress, stop, go: go_tx } = spawn_crowd(plan, clients, port, total);
    go_tx.send_replace(true);
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    while progress.connected.load(Ordering::Acquire) + progress.failed.load(Ordering::Acquire) < clients
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connected = progress.connected.load(Ordering::Acquire);
    println!(
        "soak: {connected}/{clients} clients connected; baseline RSS {:.1} MiB",
        baseline as f64 / 1048576.0
    );
    println!("{:>8} {:>10} {:>12}", "t (s)", "RSS MiB", "KiB/conn");
    let mut sent: Vec<((u64, u64), Instant)> = Vec::with_capacity(total);
    let mut rss_samples: Vec<(usize, u64)> = Vec::new();
    let schedule = tokio::time::Instant::now();
    for n in 1..=total {
        tokio::time::sleep_until(schedule + Duration::from_secs(n as u64 - 1)).await;
        let at = Instant::now();
        let ids = bus.publish(&[observation(n)?]).await.map_err(|e| format!("publish {n}: {e}"))?;
        let id = ids.first().and_then(|id| parse_stream_id(id)).ok_or("publish returned no parsable id")?;
        sent.push((id, at));
        if n % WINDOW == 0 || n == total {
            let rss = rss_bytes(pid)?;
            rss_samples.push((n, rss));
            println!(
                "{:>8} {:>10.1} {:>12.2}",
                n,
                rss as f64 / 1048576.0,
                (rss as f64 - baseline as f64) / clients as f64 / 1024.0
            );
            gateway.check_alive(&gateway_log)?;
        }
    }
    let drain_deadline = Instant::now() + DRAIN_GRACE;
    while progress.finished.load(Ordering::Acquire) < connected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    let mut reports = Vec::with_capacity(clients);
    for task in tasks {
        reports.push(task.await.map_err(|e| format!("client task: {e}"))?);
    }
    drop(gateway);
    drop(redis);

    // Latency per window of published events.
    let index: std::collections::HashMap<(u64, u64), (usize, Instant)> =
        sent.iter().enumerate().map(|(i, (id, at))| (*id, (i, *at))).collect();
    let n_windows = total.div_ceil(WINDOW);
    let mut windows: Vec<Vec<Duration>> = vec![Vec::new(); n_windows];
    for report in &reports {
        for (id, at) in &report.events {
            if let Some((i, sent_at)) = index.get(id) {
                windows[i / WINDOW].push(at.arrived.saturating_duration_since(*sent_at));
            }
        }
    }
    println!("{:>8} {:>10} {:>10} {:>10} {:>8}", "window", "p50 ms", "p99 ms", "max ms", "lost");
    let mut lost_total = 0usize;
    for (w, latencies) in windows.iter_mut().enumerate() {
        latencies.sort_unstable();
        let expected = connected * WINDOW.min(total - w * WINDOW);
        let lost = expected.saturating_sub(latencies.len());
        lost_total += lost;
        println!(
            "{:>8} {:>10.1} {:>10.1} {:>10.1} {:>8}",
            format!("{}s", (w + 1) * WINDOW),
            ms(percentile(latencies, 50.0)),
            ms(percentile(latencies, 99.0)),
            ms(latencies.last().copied().unwrap_or_default()),
            lost
        );
    }
    // Flat memory: the last sample within 5 % (or 1 MiB) of the one a quarter in.
    let quarter = rss_samples.get(rss_samples.len() / 4).map(|s| s.1).unwrap_or(baseline);
    let last = rss_samples.last().map(|s| s.1).unwrap_or(baseline);
    let growth = last as f64 - quarter as f64;
    let flat = growth <= (quarter as f64 * 0.05).max(1048576.0);
    println!(
        "soak: RSS {:.1} MiB a quarter in, {:.1} MiB at the end ({:+.1} %): {}; lost {lost_total}",
        quarter as f64 / 1048576.0,
        last as f64 / 1048576.0,
        growth / quarter as f64 * 100.0,
        if flat { "flat" } else { "GROWING" }
    );
    Ok(flat && lost_total == 0)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted values (zero when empty).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One SSE client: a plain HTTP/1.1 request over a TCP socket, a
/// chunked-encoding decoder and an SSE frame splitter. Stops after
/// `expected` observation events, on `stop`, or on any error.
async fn client(
    target: SocketAddr,
    source: Option<IpAddr>,
    mut go: watch::Receiver<bool>,
    progress: Arc<Progress>,
    expected: usize,
    stop: CancellationToken,
) -> ClientReport {
    let mut report = ClientReport { events: Vec::with_capacity(expected), ..ClientReport::default() };
    if go.wait_for(|go| *go).await.is_err() {
        report.error = Some("start signal dropped".to_owned());
        progress.failed.fetch_add(1, Ordering::AcqRel);
        return report;
    }
    let began = Instant::now();
    let began_wall = SystemTime::now();
    let stream = match open(target, source) {
        Ok((stream, handshake)) => {
            report.handshake = Some(handshake - began);
            stream
        }
        Err(error) => {
            report.error = Some(error);
            progress.failed.fetch_add(1, Ordering::AcqRel);
            return report;
        }
    };
    let mut reader = SseReader::default();
    let mut buf = vec![0u8; 4096];
    let mut counted_connect = false;
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        let read = tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(deadline), if !counted_connect => {
                report.error = Some("no connection event in time".to_owned());
                break;
            }
            read = read_stamped(&stream, &mut buf) => read,
        };
        let (n, arrived_wall) = match read {
            Ok((0, _)) => {
                report.error = Some("server closed the stream".to_owned());
                break;
            }
            Ok(pair) => pair,
            Err(error) => {
                report.error = Some(format!("read: {error}"));
                break;
            }
        };
        let read_at = Instant::now();
        // No kernel timestamp: count the read time for both.
        let arrived_at = arrived_wall
            .and_then(|wall| wall.duration_since(began_wall).ok())
            .map_or(read_at, |since| (began + since).min(read_at));
        let stamp = Stamp { arrived: arrived_at, read: read_at };
        if let Err(error) = reader.feed(&buf[..n], stamp, &mut report) {
            report.error = Some(error);
            break;
        }
        if !counted_connect && reader.connected {
            counted_connect = true;
            report.connect = Some(Stamp { arrived: arrived_at - began, read: read_at - began });
            progress.connected.fetch_add(1, Ordering::AcqRel);
        }
        if report.lagged || report.events.len() >= expected {
            break;
        }
    }
    if counted_connect {
        progress.finished.fetch_add(1, Ordering::AcqRel);
    } else {
        progress.failed.fetch_add(1, Ordering::AcqRel);
    }
    // Keep the socket open until everyone is done, so the server's fan-out
    // width stays N for the whole run.
    stop.cancelled().await;
    drop(stream);
    report
}

/// Connects and sends the request in one go, as a browser does: nothing
/// else of the bench runs between the handshake and the request (with an
/// async connect, the task would wait behind thousands of other clients'
/// first steps before it could send, and the wait would count against the
/// gateway). On loopback the blocking connect takes microseconds; it is
/// bounded by [`HANDSHAKE_TIMEOUT`]. Also returns when the handshake was done.
fn open(target: SocketAddr, source: Option<IpAddr>) -> Result<(tokio::net::TcpStream, Instant), String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket =
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).map_err(|e| format!("socket: {e}"))?;
    if let Some(source) = source {
        // The port is picked at connect() from the whole 4-tuple, which is
        // far cheaper than bind() reserving one among thousands.
        bind_address_no_port(&socket).map_err(|e| format!("IP_BIND_ADDRESS_NO_PORT: {e}"))?;
        socket.bind(&SocketAddr::new(source, 0).into()).map_err(|e| format!("bind {source}: {e}"))?;
    }
    socket.connect_timeout(&target.into(), HANDSHAKE_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let handshake = Instant::now();
    let request = format!(
        "GET /v1/observations/stream HTTP/1.1\r\nHost: {target}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    );
    let mut stream = std::net::TcpStream::from(socket);
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(|e| format!("SO_SNDTIMEO: {e}"))?;
    stream.write_all(request.as_bytes()).map_err(|e| format!("write request: {e}"))?;
    stream.set_nonblocking(true).map_err(|e| format!("O_NONBLOCK: {e}"))?;
    let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| format!("register: {e}"))?;
    enable_receive_timestamps(&stream).map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
    Ok((stream, handshake))
}

#[cfg(target_os = "linux")]
fn bind_address_no_port(socket: &socket2::Socket) -> std::io::Result<()> {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::IpBindAddressNoPort, &true)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn bind_address_no_port(_socket: &socket2::Socket) -> std::io::Result<()> {
    Ok(())
}

/// Asks the kernel to stamp each received segment (`SO_TIMESTAMPNS`).
#[cfg(target_os = "linux")]
fn enable_receive_timestamps(stream: &tokio::net::TcpStream) -> std::io::Result<()> {
    nix::sys::socket::setsockopt(stream, nix::sys::socket::sockopt::ReceiveTimestampns, &true)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn enable_receive_timestamps(_stream: &tokio::net::TcpStream) -> std::io::Result<()> {
    Ok(())
}

/// Reads what is there into `buf`: the byte count, and when the kernel
/// received those bytes (wall clock), if it said.
async fn read_stamped(
    stream: &tokio::net::TcpStream,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<SystemTime>)> {
    loop {
        stream.readable().await?;
        match stream.try_io(tokio::io::Interest::READABLE, || recv_stamped(stream, buf)) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

#[cfg(target_os = "linux")]
fn recv_stamped(
    stream: &tokio::net::TcpStream,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<SystemTime>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd as _;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())?;
    let mut arrived = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmTimestampns(at) = cmsg {
            let (Ok(secs), Ok(nanos)) = (u64::try_from(at.tv_sec()), u32::try_from(at.tv_nsec())) else {
                continue;
            };
            arrived = Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos));
        }
    }
    Ok((msg.bytes, arrived))
}

#[cfg(not(target_os = "linux"))]
fn recv_stamped(
    stream: &tokio::net::TcpStream,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<SystemTime>)> {
    stream.try_read(buf).map(|n| (n, None))
}

/// Incremental HTTP response + chunked body + SSE frame parser.
#[derive(Default)]
struct SseReader {
    /// Response head parsed.
    head_done: bool,
    /// The body is `Transfer-Encoding: chunked`.
    chunked: bool,
    chunk: ChunkState,
    /// Undecoded head bytes, then SSE bytes not yet split into frames.
    pending: Vec<u8>,
    /// The `connection` event arrived.
    connected: bool,
}

#[derive(Default, Clone, Copy)]
enum ChunkState {
    #[default]
    Size,
    SizeValue(usize),
    Extension(usize),
    SizeLf(usize),
    Data(usize),
    DataCr,
    DataLf,
    Done,
}

impl SseReader {
    fn feed(
        &mut self,
        mut bytes: &[u8],
        now: Stamp<Instant>,
        report: &mut ClientReport,
    ) -> Result<(), String> {
        if !self.head_done {
            self.pending.extend_from_slice(bytes);
            let Some(end) = memchr::memmem::find(&self.pending, b"\r\n\r\n") else {
                if self.pending.len() > 16 * 1024 {
                    return Err("response head too long".to_owned());
                }
                return Ok(());
            };
            let head = String::from_utf8_lossy(&self.pending[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(format!("unexpected response: {}", head.lines().next().unwrap_or_default()));
            }
            self.chunked =
                head.lines().any(|line| line.starts_with("transfer-encoding:") && line.contains("chunked"));
            self.head_done = true;
            let body = self.pending.split_off(end + 4);
            self.pending = Vec::with_capacity(1024);
            bytes = &[];
            self.body(&body)?;
        }
        self.body(bytes)?;
        self.frames(now, report);
        Ok(())
    }

    fn body(&mut self, bytes: &[u8]) -> Result<(), String> {
        if !self.chunked {
            self.pending.extend_from_slice(bytes);
            return Ok(());
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.chunk = match self.chunk {
                ChunkState::Size | ChunkState::SizeValue(_) => {
                    let so_far = if let ChunkState::SizeValue(v) = self.chunk { v } else { 0 };
                    match (b as char).to_digit(16) {
                        Some(d) => ChunkState::SizeValue(so_far * 16 + d as usize),
                        None if b == b';' => ChunkState::Extension(so_far),
                        None if b == b'\r' => ChunkState::SizeLf(so_far),
                        None => return Err(format!("bad chunk size byte {b:#x}")),
                    }
                }
                ChunkState::Extension(v) => {
                    if b == b'\r' {
                        ChunkState::SizeLf(v)
                    } else {
                        ChunkState::Extension(v)
                    }
                }
                ChunkState::SizeLf(v) => match (b, v) {
                    (b'\n', 0) => ChunkState::Done,
                    (b'\n', v) => ChunkState::Data(v),
                    _ => return Err("bad chunk size line".to_owned()),
                },
                ChunkState::Data(left) => {
                    let take = left.min(bytes.len() - i);
                    self.pending.extend_from_slice(&bytes[i..i + take]);
                    i += take;
                    self.chunk =
                        if take == left { ChunkState::DataCr } else { ChunkState::Data(left - take) };
                    continue;
                }
                ChunkState::DataCr if b == b'\r' => ChunkState::DataLf,
                ChunkState::DataLf if b == b'\n' => ChunkState::Size,
                ChunkState::DataCr | ChunkState::DataLf => return Err("bad chunk trailer".to_owned()),
                ChunkState::Done => return Err("data after the last chunk".to_owned()),
            };
            i += 1;
        }
        Ok(())
    }

    fn frames(&mut self, now: Stamp<Instant>, report: &mut ClientReport) {
        let mut start = 0;
        while let Some(at) = memchr::memmem::find(&self.pending[start..], b"\n\n") {
            let frame = &self.pending[start..start + at];
            let mut id = None;
            let mut event: &[u8] = b"message";
            for line in frame.split(|b| *b == b'\n') {
                if let Some(value) = line.strip_prefix(b"id: ") {
                    id = std::str::from_utf8(value).ok().and_then(parse_stream_id);
                } else if let Some(value) = line.strip_prefix(b"event: ") {
                    event = value;
                }
            }
            match event {
                b"observation" => {
                    if let Some(id) = id {
                        report.events.push((id, now));
                    }
                }
                b"connection" => self.connected = true,
                b"lagged" => report.lagged = true,
                _ => {}
            }
            start += at + 2;
        }
        self.pending.drain(..start);
    }
}
