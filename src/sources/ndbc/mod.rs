//! NDBC: the file parsers (pure, no I/O) and, with the worker, the fetcher.

pub mod parse;
pub mod spectral;
pub mod stations;
