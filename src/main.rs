//! `sluice`: the single binary. `sluice serve` runs the platform on a data directory.

mod bootstrap;
mod cli;
mod connectors;
mod http;
mod observability;
mod server;
mod time;

use clap::Parser;

/// mimalloc instead of the system allocator: the ingest and execution paths allocate many
/// short-lived buffers, where glibc's malloc showed up in profiles (free-list consolidation).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
