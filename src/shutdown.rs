//! Shutdown: one root [`CancellationToken`] cancelled on SIGINT or SIGTERM,
//! and the deadline every task must meet (docs/REFERENCE.md, Command line:
//! exit within 5 s).
//!
//! Every long-lived loop `select!`s on `token.cancelled()`; spawned tasks join
//! a `TaskTracker` owned by whoever spawned them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long shutdown may take in all, from the signal to exit.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// A root token that is cancelled when a shutdown signal arrives.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        signal().await;
        cancel.cancel();
    });
    token
}
