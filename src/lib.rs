//! buoycast: streams live NDBC ocean-buoy observations to browsers (SSE,
//! WebSocket), OSC hosts and DAWs.
//!
//! Module map (see `docs/ARCHITECTURE.md` for the full codemap):
//! - [`observation`], [`station`], [`spectrum`]: the schema and its wire forms, no I/O.
//! - [`log_throttle`], [`backoff`]: one log line per period for a repeating
//!   condition; the one retry delay (capped exponential, equal jitter).
//! - [`sources::ndbc`]: the NDBC file parsers (pure; fetching the files is the worker's).
//! - [`sse`]: the event-stream decoder of the bridge's SSE source and the tests' client.
//! - `store`: PostgreSQL and SQLite persistence (feature `server`).
//! - `bus`, `redact`: Redis Pub/Sub and in-process fan-in with catch-up ids
//!   (feature `bus`, which `server` includes; the bridge uses it without the rest).
//! - `worker`: NDBC fetching, ingest, the outbox publisher, backfill (feature `server`).
//! - `config`, `telemetry`, `shutdown`, `server`, `cli`: the service side (feature `server`).
//!
//! Without the default `server` feature this crate is only the schema and the
//! parsers, which is what the `bridge` binary links.

pub mod backoff;
pub mod log_throttle;
pub mod observation;
#[cfg(feature = "bus")]
pub mod redact;
pub mod sources;
pub mod spectrum;
pub mod sse;
pub mod station;

#[cfg(feature = "bus")]
pub mod bus;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod shutdown;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
pub mod worker;
