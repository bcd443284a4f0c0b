//! The `buoycast` binary: everything lives in the library ([`buoycast::cli`]).

fn main() -> std::process::ExitCode {
    buoycast::cli::main()
}
