//! Redis directly as a source: SUBSCRIBE `observations:new` (the bus of
//! docs/REFERENCE.md, Bus messages and stream ids) and reconnect with backoff
//! when Redis goes away.
//!
//! Live only: Redis Pub/Sub has no catch-up; use the gateway's SSE stream
//! for Last-Event-ID reconnects.

use std::time::Duration;

use buoycast::observation::ObservationEvent;
use futures::StreamExt;

use super::{sleep_or_cancel, Backoff, LogThrottle, SessionEnd, SourceContext};

/// The bus channel.
pub const CHANNEL: &str = "observations:new";

/// Runs the Redis source until cancelled.
pub async fn run(redis_url: String, ctx: SourceContext) -> anyhow::Result<()> {
    let client =
        redis::Client::open(redis_url.as_str()).map_err(|error| anyhow::anyhow!("--redis: {error}"))?;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut log_limit = LogThrottle::new(Duration::from_secs(10));
    loop {
        match session(&client, &mut backoff, &ctx).await {
            SessionEnd::Shutdown | SessionEnd::DownstreamClosed => return Ok(()),
            SessionEnd::Disconnected(reason) => {
                let delay = backoff.next_delay();
                if let Some(suppressed) = log_limit.check() {
                    tracing::warn!(reason = %reason, retry_in_ms = delay.as_millis() as u64, suppressed, "redis source disconnected, reconnecting");
                }
                if sleep_or_cancel(delay, &ctx.shutdown).await {
                    return Ok(());
                }
            }
        }
    }
}

async fn session(client: &redis::Client, backoff: &mut Backoff, ctx: &SourceContext) -> SessionEnd {
    let connected = tokio::select! {
        () = ctx.shutdown.cancelled() => return SessionEnd::Shutdown,
        connected = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub()) => connected,
    };
    let mut pubsub = match connected {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(error)) => return SessionEnd::Disconnected(error.to_string()),
        Err(_) => return SessionEnd::Disconnected("connect timed out".to_owned()),
    };
    if let Err(error) = pubsub.subscribe(CHANNEL).await {
        return SessionEnd::Disconnected(error.to_string());
    }
    backoff.reset();
    tracing::info!(channel = CHANNEL, "redis source subscribed");
    let mut messages = pubsub.on_message();
    let mut invalid_log = LogThrottle::new(Duration::from_secs(10));
    loop {
        let message = tokio::select! {
            () = ctx.shutdown.cancelled() => return SessionEnd::Shutdown,
            message = messages.next() => message,
        };
        let Some(message) = message else {
            return SessionEnd::Disconnected("subscription closed".to_owned());
        };
        match ObservationEvent::decode_bus(message.get_payload_bytes()) {
            Ok(event) => {
                if !ctx.send_live(event).await {
                    return SessionEnd::DownstreamClosed;
                }
            }
            Err(error) => {
                if let Some(suppressed) = invalid_log.check() {
                    tracing::warn!(error = %error, suppressed, "redis: message dropped");
                }
            }
        }
    }
}
