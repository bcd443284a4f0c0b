//! The `buoycast` command line (docs/REFERENCE.md, Command line): flags,
//! subcommands, and the start-up of each role. `main.rs` only calls [`main`].
//!
//! This is the binary edge: errors are `anyhow` with context, printed with
//! `{:#}` and turned into an exit code here.

pub mod parse;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::config::redact_url;
use crate::config::{Config, Overrides};
use crate::store::Store;

/// buoycast: live NDBC ocean-buoy observations for browsers, OSC hosts and DAWs.
///
/// With no subcommand it runs the worker and the gateway in one process on
/// the embedded default (SQLite file + in-process bus), or on PostgreSQL and
/// Redis when DATABASE_URL and REDIS_URL are set.
#[derive(Debug, Parser)]
#[command(name = "buoycast", version, about, long_about = None)]
pub struct Cli {
    /// Config file (default: ./buoycast.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:3000 (overrides PORT and the file).
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Log format.
    #[arg(long, global = true, value_parser = ["human", "json"])]
    pub log_format: Option<String>,
    /// What to run (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands (docs/REFERENCE.md, Command line).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Worker and gateway server in one process (the default).
    Run,
    /// Gateway server only (streams, REST, dashboard).
    Serve,
    /// Worker only: fetch NDBC files, store, publish.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Load the 45-day history of chosen stations.
    Backfill {
        /// Stations, comma-separated (41002,44013).
        #[arg(long, value_delimiter = ',', required = true)]
        stations: Vec<String>,
        /// Days of history to load.
        #[arg(long, default_value_t = 45)]
        days: u32,
        /// Also publish the backfilled rows to live subscribers.
        #[arg(long)]
        publish: bool,
        /// Instead, load this year of the stations' wave spectra from the
        /// historical archives (ndbc.historical_base). Example: --spectra-year 2019
        #[arg(long, value_name = "YYYY", conflicts_with_all = ["publish"])]
        spectra_year: Option<i32>,
    },
    /// Print the observations of an NDBC file as JSON lines.
    Parse {
        /// An NDBC standard-meteorological file (realtime2, historical or latest_obs.txt).
        file: PathBuf,
        /// The station, for a file with no STN column whose name is not an
        /// NDBC file name (41002.txt, 46035h1990.txt).
        #[arg(long, value_name = "ID")]
        station: Option<String>,
    },
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Parse { file, station }) = &cli.command {
        // Pure and synchronous: no config, runtime or logs needed.
        let station = match station.as_deref().map(crate::observation::StationId::parse).transpose() {
            Ok(station) => station,
            Err(error) => {
                eprintln!("buoycast parse: --station: {error}");
                return ExitCode::from(2);
            }
        };
        return match parse::run_with_station(file, station.as_ref()) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("buoycast parse: {error:#}");
                ExitCode::from(2)
            }
        };
    }
    let overrides = Overrides {
        config_file: cli.config.clone(),
        listen: cli.listen.clone(),
        log_format: cli.log_format.clone(),
    };
    let config = match Config::load(&overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("buoycast: refusing to start: {error}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    crate::telemetry::init(config.log.format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("buoycast: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Run);
    let result = runtime.block_on(run(command, config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "buoycast stopped with an error");
            eprintln!("buoycast: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one role until it finishes or a shutdown signal arrives.
pub async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            let store = open_store(&config).await?;
            tracing::info!("migrations applied");
            drop(store);
            Ok(())
        }
        Command::Run => {
            let shutdown = crate::shutdown::on_signal();
            let listener = crate::server::listener::bind_with(config.listen, config.http.reuse_port)
                .with_context(|| format!("binding {} (config key `listen`)", config.listen))?;
            run_all(listener, config, shutdown).await
        }
        Command::Serve => {
            let shutdown = crate::shutdown::on_signal();
            let listener = crate::server::listener::bind_with(config.listen, config.http.reuse_port)
                .with_context(|| format!("binding {} (config key `listen`)", config.listen))?;
            serve(listener, config, shutdown).await
        }
        Command::Worker => {
            let shutdown = crate::shutdown::on_signal();
            // Operators scrape the worker too: /health and /metrics on `listen`.
            let listener = match crate::server::listener::bind_with(config.listen, config.http.reuse_port) {
                Ok(listener) => Some(listener),
                Err(error) => {
                    tracing::warn!(listen = %config.listen, error = %error, "cannot bind `listen`; the worker runs without /health and /metrics");
                    None
                }
            };
            run_worker(listener, config, shutdown).await
        }
        Command::Backfill { stations, spectra_year: Some(year), .. } => {
            run_spectra_backfill(&config, &stations, year).await
        }
        Command::Backfill { stations, days, publish, spectra_year: None } => {
            run_backfill(&config, &stations, days, publish).await
        }
        Command::Parse { file, station } => {
            let station = station.as_deref().map(crate::observation::StationId::parse).transpose()?;
            parse::run_with_station(&file, station.as_ref())?;
            Ok(())
        }
    }
}

/// Opens the store and bus, then serves the gateway on `listener` until
/// `shutdown` is cancelled. Tests call this with port 0.
pub async fn serve(listener: TcpListener, config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let bus = open_bus_seeded(&config, &store).await?;
    let addr = listener.local_addr().context("reading the listener's address")?;
    tracing::info!(%addr, store = store.backend(), bus = bus.backend_name(), "gateway listening");
    crate::server::serve(listener, store, bus, config, shutdown).await;
    Ok(())
}

/// Connects to the configured store and applies its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    // The SQLite store creates its file and directory itself.
    let url = config.store_url();
    let store = Store::connect(&url, Default::default())
        .await
        .with_context(|| format!("opening the store at {}", redact_url(&url)))?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// Connects to Redis when configured, else builds the in-process bus.
pub fn open_bus(config: &Config) -> anyhow::Result<Bus> {
    match &config.redis_url {
        Some(url) => {
            let options = crate::bus::RedisBusOptions { retention: config.retention(), ..Default::default() };
            Bus::redis(url.expose(), options)
                .with_context(|| format!("connecting to Redis at {}", redact_url(url.expose())))
        }
        None => {
            let options =
                crate::bus::MemoryBusOptions { retention: config.retention(), ..Default::default() };
            Ok(Bus::memory(options))
        }
    }
}

/// [`open_bus`], and when that is the in-process bus, its catch-up buffer
/// seeded from the store with the observations published within the
/// retention window (docs/API.md, Catch-up: `Last-Event-ID` catch-up holds across restarts
/// of the embedded mode; Redis keeps its own log).
pub async fn open_bus_seeded(config: &Config, store: &Store) -> anyhow::Result<Bus> {
    if config.redis_url.is_some() {
        return open_bus(config);
    }
    let options = crate::bus::MemoryBusOptions { retention: config.retention(), ..Default::default() };
    let retention = chrono::Duration::from_std(config.retention()).unwrap_or(chrono::Duration::days(1));
    let since = chrono::Utc::now() - retention;
    let seed = store
        .published_since(since, options.capacity)
        .await
        .context("reading recently published observations to seed the in-process bus")?;
    tracing::info!(n_events = seed.len(), "in-process bus seeded from the store");
    Ok(Bus::memory_seeded(options, seed))
}

/// `buoycast run`: the worker and the gateway in one process on `listener`,
/// sharing the store, the bus and the metrics registry (one `/metrics`),
/// until `shutdown` is cancelled. Tests call this with port 0.
pub async fn run_all(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let bus = open_bus_seeded(&config, &store).await?;
    let addr = listener.local_addr().context("reading the listener's address")?;
    let options = crate::worker::WorkerOptions::from_config(&config);
    let gateway = crate::server::Gateway::new(store.clone(), bus.clone(), config, shutdown.clone());
    let worker = crate::worker::Worker::new(store, bus.clone(), options, &gateway.state.metrics.registry)
        .context("starting the worker")?;
    tracing::info!(%addr, bus = bus.backend_name(), "worker and gateway starting");
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));
    gateway.run(listener).await;
    shutdown.cancel();
    if tokio::time::timeout(crate::shutdown::DEADLINE, worker_task).await.is_err() {
        tracing::warn!("the worker did not stop within the shutdown deadline");
    }
    Ok(())
}

/// `buoycast worker`: the worker only, with `/health` and `/metrics` served
/// on `listener` when there is one, until `shutdown` is cancelled.
pub async fn run_worker(
    listener: Option<TcpListener>,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let bus = open_bus(&config)?;
    if bus.backend_name() == "memory" {
        tracing::warn!("no REDIS_URL: this worker publishes on an in-process bus nobody else can read");
    }
    let registry = prometheus::Registry::new();
    let worker =
        crate::worker::Worker::new(store, bus, crate::worker::WorkerOptions::from_config(&config), &registry)
            .context("starting the worker")?;
    let endpoint = listener.map(|listener| {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let app = worker_endpoints(registry);
            let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
            if let Err(error) = served {
                tracing::warn!(error = %error, "the worker's /metrics endpoint stopped");
            }
        })
    });
    worker.run(shutdown).await;
    if let Some(endpoint) = endpoint {
        let _ = tokio::time::timeout(crate::shutdown::DEADLINE, endpoint).await;
    }
    Ok(())
}

/// The worker-only process's `/health` and `/metrics`.
fn worker_endpoints(registry: prometheus::Registry) -> axum::Router {
    use axum::routing::get;
    let metrics = move || {
        let registry = registry.clone();
        async move {
            let text = crate::server::metrics::encode(&registry);
            ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
        }
    };
    axum::Router::new()
        .route(
            "/health",
            get(|| async {
                axum::Json(serde_json::json!({
                    "status": "ok",
                    "role": "worker",
                    "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                }))
            }),
        )
        .route("/metrics", get(metrics))
}

/// `buoycast backfill --spectra-year YYYY`: a year of the chosen stations'
/// wave spectra from the historical archives.
async fn run_spectra_backfill(config: &Config, stations: &[String], year: i32) -> anyhow::Result<()> {
    let stations = stations
        .iter()
        .map(|id| crate::observation::StationId::parse(id))
        .collect::<Result<Vec<_>, _>>()
        .context("reading --stations")?;
    if !(1970..=2100).contains(&year) {
        anyhow::bail!("--spectra-year {year}: expected a year such as 2019");
    }
    let store = open_store(config).await?;
    let options = crate::worker::backfill::SpectraBackfillOptions {
        historical_base: config.ndbc.historical_base.clone(),
        stations,
        year,
        request_timeout: std::time::Duration::from_secs(120),
    };
    let report = crate::worker::backfill::backfill_spectra(&store, &options)
        .await
        .context("backfilling spectra (rerun to resume: nothing is stored twice)")?;
    eprintln!(
        "backfill: {} stations loaded, {} failed, {} spectra read, {} stored, {} bad lines",
        report.stations_done,
        report.failures.len(),
        report.spectra_read,
        report.spectra_stored,
        report.bad_lines
    );
    if !report.failures.is_empty() {
        let names: Vec<String> =
            report.failures.iter().map(|(id, reason)| format!("{id} ({reason})")).collect();
        anyhow::bail!("spectra backfill failed for {}", names.join(", "));
    }
    Ok(())
}

/// `buoycast backfill`: loads the chosen stations' realtime2 history.
async fn run_backfill(config: &Config, stations: &[String], days: u32, publish: bool) -> anyhow::Result<()> {
    let stations = stations
        .iter()
        .map(|id| crate::observation::StationId::parse(id))
        .collect::<Result<Vec<_>, _>>()
        .context("reading --stations")?;
    let store = open_store(config).await?;
    // With the in-process bus, publishing here would reach nobody: the rows
    // stay in the outbox and the embedded `buoycast run` publishes them.
    let bus = if publish && config.redis_url.is_some() { Some(open_bus(config)?) } else { None };
    if publish && bus.is_none() {
        tracing::info!("no REDIS_URL: backfilled rows wait in the outbox for `buoycast run` to publish them");
    }
    let options = crate::worker::backfill::BackfillOptions {
        realtime_base: config.ndbc.realtime_base.clone(),
        stations,
        days,
        publish,
        concurrency: 4,
        request_timeout: std::time::Duration::from_secs(60),
        progress: true,
    };
    let report = crate::worker::backfill::backfill(&store, bus.as_ref(), &options)
        .await
        .context("backfilling (rerun to resume: nothing is stored twice)")?;
    eprintln!(
        "backfill: {} stations loaded, {} failed, {} rows read, {} inserted, {} published, {} bad lines",
        report.stations_done,
        report.failures.len(),
        report.rows_read,
        report.rows_inserted,
        report.rows_published,
        report.bad_lines
    );
    if !report.failures.is_empty() {
        let names: Vec<String> =
            report.failures.iter().map(|(id, reason)| format!("{id} ({reason})")).collect();
        anyhow::bail!("backfill failed for {}", names.join(", "));
    }
    Ok(())
}
