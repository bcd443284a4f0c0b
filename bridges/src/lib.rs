//! The `bridge`: turns buoycast observations into OSC packets and MIDI
//! messages for performers (docs/AUDIO_CLIENTS.md; docs/REFERENCE.md, Command
//! line: `bridge`).
//!
//! Module map:
//! - [`cli`]: the flags.
//! - [`source`]: SSE, WebSocket, Redis and replay sources (one task each).
//! - [`pipeline`]: source → fan-out to the sinks.
//! - [`osc`], [`spectrum`], [`mapping`], [`shape`]: pure encoding (observations,
//!   wave spectra), mapping and shaping math.
//! - [`sink`]: OSC UDP/TCP, OSCQuery, MIDI ports, .mid file.
//! - [`control`]: resend requests (control port, SIGUSR1, `--resend-every`).
//! - [`app`]: wires them from the flags and shuts down cleanly.
//!
//! It links no database and no HTTP server framework (no sqlx, no axum).

pub mod app;
pub mod cli;
pub mod control;
pub mod mapping;
pub mod osc;
pub mod pipeline;
pub mod shape;
pub mod sink;
pub mod source;
pub mod spectrum;
