//! Redis directly as a source (`--redis URL`): a consumer of the gateway's
//! own bus client (`buoycast::bus`, docs/REFERENCE.md, Bus messages and
//! stream ids), so every URL form the gateway takes works here (`redis://`,
//! `rediss://` with TLS, `redis+sentinel://`, `redis+cluster://`), a refused
//! SUBSCRIBE is seen for what it is, and nothing published while the bridge
//! was away from Redis is lost:
//!
//! - on start (unless `--no-snapshot`), every station's newest observation
//!   and newest spectrum of the last [`STATE_WINDOW`] from the bus's log,
//!   sorted by station, as the gateway's `?snapshot=latest` does;
//! - after a lost connection, a failover or a Redis restart with
//!   persistence, what the log holds after the last id delivered (or, if
//!   none was, after the moment the subscription first came up), then live
//!   again, with no event twice;
//! - when the log cannot place that id (trimmed, or lost with a Redis
//!   restart without persistence), a warning: live goes on.
//!
//! Messages without an id (the original worker's plain PUBLISH) are
//! forwarded live and cannot be caught up.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use buoycast::bus::{anchor_position, parse_stream_id, Bus, BusNotice, RedisBusOptions, Replay};
use buoycast::observation::{EventKind, ObservationEvent, StationId};

use super::{LogThrottle, SourceContext};

/// The bus channel.
pub const CHANNEL: &str = buoycast::bus::CHANNEL;

/// How far back the start-up state reaches: NDBC stations report at least
/// hourly, so three hours find every reporting station's newest reading.
pub const STATE_WINDOW: Duration = Duration::from_secs(3 * 60 * 60);

/// Events asked of the log per read.
const PAGE: usize = 1000;

/// What the source has delivered, for de-duplication and catch-up.
#[derive(Default)]
struct Position {
    /// The newest id delivered.
    last: Option<((u64, u64), String)>,
    /// When the subscription first came up (the catch-up anchor before any id).
    up_since: Option<SystemTime>,
}

impl Position {
    /// Whether `event` is new (not at or before the last id delivered);
    /// records its id when it is. Events without an id are always new.
    fn admit(&mut self, event: &ObservationEvent) -> bool {
        let Some(id) = event.id.as_deref() else { return true };
        let Some(parsed) = parse_stream_id(id) else { return true };
        if self.last.as_ref().is_some_and(|(last, _)| parsed <= *last) {
            return false;
        }
        self.last = Some((parsed, id.to_owned()));
        true
    }

    /// Where a catch-up read starts.
    fn resume_from(&self) -> Option<String> {
        if let Some((_, id)) = &self.last {
            return Some(id.clone());
        }
        self.up_since.map(anchor_position)
    }
}

/// Runs the Redis source until cancelled.
pub async fn run(redis_url: String, ctx: SourceContext) -> anyhow::Result<()> {
    let bus = Bus::redis(&redis_url, RedisBusOptions::default())
        .map_err(|error| anyhow::anyhow!("--redis: {error}"))?;
    let mut notices = bus.subscribe(ctx.shutdown.clone());
    let mut position = Position::default();
    let mut down_log = LogThrottle::new(Duration::from_secs(10));
    let mut catch_up_due = false;
    let mut state_due = ctx.snapshot;
    while let Some(notice) = notices.recv().await {
        match notice {
            BusNotice::Event(event) => {
                if position.admit(&event) && !ctx.send_live(event).await {
                    return Ok(());
                }
            }
            BusNotice::Invalid { .. } => {} // logged and counted by the bus
            BusNotice::Connected => {
                tracing::info!(channel = CHANNEL, "redis source subscribed");
                if position.up_since.is_none() {
                    position.up_since = Some(SystemTime::now());
                }
                if std::mem::take(&mut state_due) {
                    if !send_state(&bus, &mut position, &ctx).await {
                        return Ok(());
                    }
                } else if std::mem::take(&mut catch_up_due) && !catch_up(&bus, &mut position, &ctx).await {
                    return Ok(());
                }
            }
            BusNotice::Disconnected { error } => {
                catch_up_due = true;
                if let Some(suppressed) = down_log.check() {
                    tracing::warn!(reason = %error, suppressed, "redis source disconnected; it reconnects and catches up");
                }
            }
        }
    }
    Ok(())
}

/// One page of the log after `after`: after an event's id (`with_id`: an id
/// the log no longer holds is an error), or after a position.
async fn read_page(bus: &Bus, after: &str, with_id: bool) -> Result<Vec<ObservationEvent>, String> {
    if !with_id {
        return bus.read_since(after, PAGE).await.map_err(|error| format!("reading the log failed: {error}"));
    }
    match bus.read_after(after, PAGE).await {
        Ok(Replay::Events(events)) => Ok(events),
        Ok(Replay::Reset) => {
            Err("the log no longer holds what came after the last event; readings were missed".into())
        }
        Err(error) => Err(format!("reading the log failed: {error}")),
    }
}

/// Sends what the log holds after the position; false when the pipeline is gone.
async fn catch_up(bus: &Bus, position: &mut Position, ctx: &SourceContext) -> bool {
    let Some(mut after) = position.resume_from() else { return true };
    let with_id = position.last.is_some();
    let mut n = 0usize;
    loop {
        let events = match read_page(bus, &after, with_id).await {
            Ok(events) => events,
            Err(why) => {
                tracing::warn!(after = %after, "redis source: {why}; live goes on");
                return true;
            }
        };
        let full = events.len() == PAGE;
        for event in events {
            if let Some(id) = &event.id {
                after.clone_from(id);
            }
            if position.admit(&event) {
                n += 1;
                if !ctx.send_live(event).await {
                    return false;
                }
            }
        }
        if !full {
            break;
        }
    }
    tracing::info!(n_events = n, "redis source caught up");
    true
}

/// Sends every station's newest observation, then every station's newest
/// spectrum, of the last [`STATE_WINDOW`], sorted by station, and moves the
/// position past them; false when the pipeline is gone.
async fn send_state(bus: &Bus, position: &mut Position, ctx: &SourceContext) -> bool {
    let mut after =
        anchor_position(SystemTime::now().checked_sub(STATE_WINDOW).unwrap_or(SystemTime::UNIX_EPOCH));
    let mut newest: BTreeMap<(EventKind, StationId), ObservationEvent> = BTreeMap::new();
    loop {
        let events = match read_page(bus, &after, false).await {
            Ok(events) => events,
            Err(why) => {
                tracing::warn!("redis source: cannot read the current state ({why}); live only");
                return true;
            }
        };
        let full = events.len() == PAGE;
        for event in events {
            if let Some(id) = &event.id {
                after.clone_from(id);
            }
            position.admit(&event);
            let key = (event.kind(), event.observation.station_id.clone());
            if newest
                .get(&key)
                .map_or(true, |held| held.observation.observed_at <= event.observation.observed_at)
            {
                newest.insert(key, event);
            }
        }
        if !full {
            break;
        }
    }
    let n = newest.len();
    for event in newest.into_values() {
        if !ctx.send_live(event).await {
            return false;
        }
    }
    tracing::info!(n_stations = n, "redis source: current state sent");
    true
}

#[cfg(test)]
mod tests {
    use buoycast::observation::{Measurements, Observation};

    use super::*;

    fn event(id: Option<&str>) -> ObservationEvent {
        ObservationEvent::new(
            id.map(str::to_owned),
            Observation {
                station_id: StationId::parse("46026").expect("id"),
                observed_at: chrono::DateTime::UNIX_EPOCH,
                measurements: Measurements::default(),
            },
        )
    }

    #[test]
    fn ids_at_or_before_the_last_are_dropped_and_id_less_messages_pass() {
        let mut position = Position::default();
        assert!(position.admit(&event(Some("5-0"))));
        assert!(!position.admit(&event(Some("5-0"))));
        assert!(!position.admit(&event(Some("4-9"))));
        assert!(position.admit(&event(None)));
        assert!(position.admit(&event(Some("5-1"))));
        assert_eq!(position.resume_from().as_deref(), Some("5-1"));
    }

    #[test]
    fn without_an_id_catch_up_starts_before_the_subscription_came_up() {
        let position =
            Position { last: None, up_since: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(10)) };
        assert_eq!(position.resume_from().as_deref(), Some("8000-0"));
        assert_eq!(Position::default().resume_from(), None);
    }
}
