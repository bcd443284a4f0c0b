//! Ingest benchmark (work in progress): see the final version.

fn main() {}
