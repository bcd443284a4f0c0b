//! The `buoycast` binary: everything lives in the library ([`buoycast::cli`]).
//!
//! It only picks the allocator: jemalloc holds a stream connection in less
//! memory than glibc malloc (see docs/BENCHMARKS.md for the figures).

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    buoycast::cli::main()
}
