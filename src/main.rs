//! `sluice`: the single binary. `sluice serve` runs the platform on a data directory.

mod bootstrap;
mod cli;
mod connectors;
mod housekeeping;
mod http;
mod observability;
mod own_calls;
mod server;
mod time;

use clap::Parser;

/// jemalloc instead of the system allocator. Buffers here are often allocated on one thread
/// and freed on another (an HTTP worker builds a write, the committer applies it, a storage
/// worker drops the memtable). glibc's malloc spent its time consolidating free lists (one-step
/// at 7.5 k/s: ~415 µs of CPU per event against ~240). mimalloc collected other threads' frees:
/// ~19 % of the server's samples in `perf`, against ~8 % for jemalloc, which also keeps peak
/// memory ~10 % lower; CPU per event is 7 % lower in a slow period of the machine and the same
/// within the noise in a fast one (loadtest/README.md, "allocator").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    observability::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        cli::Command::Serve(args) => runtime.block_on(server::serve(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
