//! The `bucketbase` binary: parses the command line and starts the chosen command.
//! Everything it does lives in the library crates (and `commands`), so tests can call it.

mod apps;
mod backup;
mod commands;
mod keys;
mod recover;
mod revert;
mod serve;
mod settings;

// JSON documents are many small allocations: mimalloc is measurably faster than the
// system allocator on imports and commits (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Only a matter of speed: if the kernel refuses, the server runs as it would have.
    let _ = bucketbase_engine::memory::no_transparent_huge_pages();
    let matches = commands::command().get_matches();
    match commands::run_matches(matches).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
