//! The `qontak` binary. Everything lives in the `server` library so tests can drive it.

/// mimalloc: glibc's malloc (and its free-list consolidation) took about a seventh of the
/// server's time under a webhook flood, where every request allocates its body and JSON.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    server::cli::main()
}
