//! The one integration-test binary: one module per feature, sharing the
//! throw-away servers in `harness` (real redis-server and PostgreSQL).
//!
//! Run with `TEST_LOG=1` to see the application's logs.

mod harness;

mod audio_clients;
mod bridge;
mod bus;
mod cli;
mod dashboard;
mod parse;
mod redis_topology;
mod rest;
mod scale;
mod server;
mod spectral;
mod store;
mod stream;
mod tidy;
mod worker;
mod ws;
