//! `bucketbase recover`: the operator's answer to a damaged newest log entry.
//!
//! Start-up refuses a root whose newest `_log/` file is torn (it names this command);
//! the engine's `recover` module does the work: it quarantines the damaged bytes under
//! `_quarantine/` and writes a void entry in that slot, and it refuses every other kind
//! of damage. This module only drives it and reports, so the rules live in one place.

use std::process::ExitCode;

use anyhow::Context;
use bucketbase_engine::recover::{Recovery, recover};
use bucketbase_engine::{SystemClock, UuidV7Ids, store};

pub async fn run(url: &str) -> anyhow::Result<ExitCode> {
    crate::commands::existing_root(url)?;
    let store = store::open(url, &UuidV7Ids)
        .await
        .with_context(|| format!("opening {url}"))?;
    match recover(&store, &SystemClock)
        .await
        .context("nothing was recovered")?
    {
        Recovery::Intact { head } => {
            println!("the log is intact up to position {head}: nothing to recover");
        }
        Recovery::Voided {
            seq,
            quarantined,
            void,
        } => {
            println!(
                "position {seq} was damaged ({} bytes, sha256 {}): moved to {quarantined}; \
                 the slot now holds a void entry and the chain continues. The server can \
                 start again.",
                void.bytes, void.sha256
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
