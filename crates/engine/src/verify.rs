//! Verifying the audit hash chain.
//!
//! Every log entry names the hash of the one before it, and its own hash covers its
//! canonical content. Walking the log from the start therefore finds the first entry that
//! was edited (its hash no longer matches), removed (a gap), moved (it says it belongs at
//! another position) or replaced by a re-hashed forgery (the next entry's `prev_hash` no
//! longer matches it). The durable marks (the newest checkpoint, the view watermark: see
//! `marks`) say how far the log reached, which also catches its newest entries removed.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::error::{Error, Result};
use crate::log::{GENESIS_HASH, LogEntry, VoidRecord, parse_log_path};
use crate::marks::DurableMarks;
use crate::names::Seq;
use crate::store::{DynStore, LOG_DIR, log_path};

/// What kind of damage was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The entry's content does not match its hash, or it does not parse.
    Altered,
    /// The entry is missing: later entries exist, or a checkpoint covers it.
    Removed,
    /// The entry says it belongs at another position.
    Reordered,
}

/// The first damaged entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: Seq,
    pub damage: Damage,
    pub detail: String,
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked and found intact.
    pub verified: u64,
    /// Hash of the last intact entry.
    pub head_hash: String,
    pub first_break: Option<ChainBreak>,
    /// Void entries met on the way, in log order (see `recover`).
    pub voided: Vec<(Seq, VoidRecord)>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Walks the whole log. `progress` is called with each verified position.
pub async fn verify_chain(
    store: &DynStore,
    progress: &(dyn Fn(Seq) + Sync),
) -> Result<VerifyReport> {
    let mut listed: Vec<Seq> = store
        .list(Some(&Path::from(LOG_DIR)))
        .map_ok(|m| parse_log_path(&m.location))
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    listed.sort_unstable();
    let log_end = listed.last().copied().unwrap_or(Seq::ZERO);
    let claimed = DurableMarks::read(store, store).await?.highest();
    let last = log_end.max(claimed.map_or(Seq::ZERO, |(seq, _)| seq));

    let mut prev_hash = GENESIS_HASH.to_string();
    let mut voided = Vec::new();
    let report = |verified: u64,
                  head_hash: String,
                  brk: Option<ChainBreak>,
                  voided: Vec<(Seq, VoidRecord)>| VerifyReport {
        verified,
        head_hash,
        first_break: brk,
        voided,
    };
    let mut present = listed.into_iter().peekable();
    for n in 1..=last.get() {
        let seq = Seq(n);
        if present.peek() != Some(&seq) {
            return Ok(report(
                n - 1,
                prev_hash,
                Some(ChainBreak {
                    seq,
                    damage: Damage::Removed,
                    detail: match claimed {
                        Some((mark, by)) if seq > log_end => format!(
                            "{} is missing: the log ends at {log_end}, but {by} says position \
                             {mark} was committed",
                            log_path(seq)
                        ),
                        _ => format!("{} is missing but later positions exist", log_path(seq)),
                    },
                }),
                voided,
            ));
        }
        present.next();
        let path = log_path(seq);
        let bytes = store.get(&path).await?.bytes().await?;
        let entry = match LogEntry::decode(path.as_ref(), &bytes) {
            Ok(entry) => entry,
            Err(Error::Corrupt { reason, .. }) => {
                return Ok(report(
                    n - 1,
                    prev_hash,
                    Some(ChainBreak {
                        seq,
                        damage: Damage::Altered,
                        detail: reason,
                    }),
                    voided,
                ));
            }
            Err(e) => return Err(e),
        };
        if entry.seq() != seq {
            return Ok(report(
                n - 1,
                prev_hash,
                Some(ChainBreak {
                    seq,
                    damage: Damage::Reordered,
                    detail: format!("holds the entry of position {}", entry.seq()),
                }),
                voided,
            ));
        }
        if entry.body.prev_hash != prev_hash {
            // This entry is intact but does not follow its predecessor: the predecessor
            // was replaced by a different, self-consistent entry.
            let at = Seq(n - 1);
            return Ok(report(
                n.saturating_sub(2),
                prev_hash,
                Some(ChainBreak {
                    seq: at,
                    damage: Damage::Altered,
                    detail: format!(
                        "entry {n} links to a different predecessor than the one stored at {at}"
                    ),
                }),
                voided,
            ));
        }
        if let Some(void) = entry.body.void {
            voided.push((seq, void));
        }
        prev_hash = entry.hash;
        progress(seq);
    }
    Ok(report(last.get(), prev_hash, None, voided))
}
