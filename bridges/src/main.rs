//! `bridge`: the command-line entry. Parses flags, sets up logs and signal
//! handling, and runs [`buoycast_bridges::app::run`]; all logic lives in the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = buoycast_bridges::cli::Args::parse();
    if let Err(error) = args.validate() {
        eprintln!("bridge: {error}");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bridge: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        buoycast_bridges::app::run(args, shutdown).await
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bridge: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Cancels on the first SIGINT/SIGTERM; a second one, or a shutdown that
/// takes longer than 5 s, ends the process.
async fn watch_signals(shutdown: CancellationToken) {
    signal().await;
    tracing::info!("shutting down (again to force)");
    shutdown.cancel();
    tokio::select! {
        () = signal() => {}
        () = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
    eprintln!("bridge: shutdown did not finish in time, exiting");
    std::process::exit(1);
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
