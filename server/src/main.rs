//! The `qontak` binary. Everything lives in the `server` library so tests can drive it.

fn main() -> std::process::ExitCode {
    server::cli::main()
}
