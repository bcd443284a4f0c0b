//! The bridge's integration tests: one binary, one module per feature.

mod harness;
mod mapping;
mod midi;
mod notes;
mod osc_format;
mod oscquery;
mod shaping;
mod sinks;
mod sources;
