//! The `buoycast` command line (SPEC 6): flags, subcommands, and the
//! start-up of each role. `main.rs` only calls [`main`].
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

/// The subcommands of SPEC 6.
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
    },
    /// Print the observations of an NDBC file as JSON lines.
    Parse {
        /// An NDBC standard-meteorological file (realtime2, historical or latest_obs.txt).
        file: PathBuf,
    },
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Parse { file }) = &cli.command {
        // Pure and synchronous: no config, runtime or logs needed.
        return match parse::run(file) {
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
        Command::Run | Command::Serve => {
            if matches!(command, Command::Run) {
                tracing::warn!("the ingest worker is not implemented yet: serving only what reaches the bus");
            }
            let shutdown = crate::shutdown::on_signal();
            let listener = crate::server::listener::bind(config.listen)
                .with_context(|| format!("binding {} (config key `listen`)", config.listen))?;
            serve(listener, config, shutdown).await
        }
        Command::Worker => anyhow::bail!("`buoycast worker` is not implemented yet"),
        Command::Backfill { .. } => anyhow::bail!("`buoycast backfill` is not implemented yet"),
        Command::Parse { file } => {
            parse::run(&file)?;
            Ok(())
        }
    }
}

/// Opens the store and bus, then serves the gateway on `listener` until
/// `shutdown` is cancelled. Tests call this with port 0.
pub async fn serve(listener: TcpListener, config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let bus = open_bus(&config)?;
    let addr = listener.local_addr().context("reading the listener's address")?;
    tracing::info!(%addr, store = store.backend(), bus = bus.backend_name(), "gateway listening");
    crate::server::serve(listener, store, bus, config, shutdown).await;
    Ok(())
}

/// Connects to the configured store and applies its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.store_url();
    if config.database_url.is_none() {
        if let Some(parent) = config.sqlite_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {} for the SQLite store", parent.display()))?;
        }
    }
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
