//! The `bucketbase` binary: parses the command line and starts the chosen command.
//! Everything it does lives in the library crates (and `commands`), so tests can call it.

mod backup;
mod commands;
mod import;
mod recover;
mod revert;
mod serve;
mod settings;

use clap::Parser;

// JSON documents are many small allocations: mimalloc is measurably faster than the
// system allocator on imports and commits (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
