//! Recovering from a damaged newest log entry: quarantine its bytes, void its slot.
//!
//! A log entry is written once, create-only. On a local root the file appears whole (a
//! fully written, fsynced staging file is hard-linked into place), but other filesystems,
//! S3 clients and hands can leave a torn or partial file in the newest slot. Start-up
//! cannot replay it and must not guess, so it stops with [`Error::TornHead`]; this module
//! is what the operator runs next (`bucketbase recover`).
//!
//! The procedure keeps every promise of the log (docs/decisions/0012-void-entries.md):
//!
//! 1. Walk the whole chain. Act only when the first damage is an entry that does not
//!    decode or fails its hash **and** is the newest file of the log. Damage anywhere else
//!    is tampering or media loss, not a torn write: refuse, and point at `audit verify`.
//! 2. Refuse when a durable mark (checkpoint, view watermark, signed digest) says that
//!    position was committed: its data was acknowledged, and voiding it would drop it.
//!    Restoring the file from a backup is the only right answer then.
//! 3. Copy the damaged bytes to `_quarantine/{seq:020}.{sha256}.bin` (create-only), so
//!    nothing is ever thrown away.
//! 4. Replace the slot with a *void* entry: no transactions, `void: {sha256, bytes}` of
//!    what was there, chained to the previous entry. The slot is never reused for other
//!    data, replay applies it as "nothing changed but the head", and `audit verify`
//!    reports it. Replacing (not create-only) is safe here because no committer can
//!    write into an occupied slot; the bytes are re-read just before, so two operators
//!    racing cannot void different contents.

use chrono::SecondsFormat;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::canonical::sha256_hex;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::log::{EntryBody, LogEntry, VoidRecord, parse_log_path};
use crate::marks::DurableMarks;
use crate::names::Seq;
use crate::store::{DynStore, LOG_DIR, log_path};
use crate::verify::{Damage, verify_chain};

/// Where damaged log bytes are kept.
pub const QUARANTINE_DIR: &str = "_quarantine";

/// `_quarantine/{seq:020}.{sha256}.bin`.
pub fn quarantine_path(seq: Seq, sha256: &str) -> Path {
    Path::from(format!("{QUARANTINE_DIR}/{:020}.{sha256}.bin", seq.get()))
}

/// What `recover` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The log is intact up to `head`: nothing was changed.
    Intact { head: Seq },
    /// The newest entry was damaged: its bytes were quarantined and the slot voided.
    Voided {
        seq: Seq,
        quarantined: Path,
        void: VoidRecord,
    },
}

/// The newest position in `_log/`, by listing.
async fn newest(store: &DynStore) -> Result<Option<Seq>> {
    let listed: Vec<Option<Seq>> = store
        .list(Some(&Path::from(LOG_DIR)))
        .map_ok(|m| parse_log_path(&m.location))
        .try_collect()
        .await?;
    Ok(listed.into_iter().flatten().max())
}

/// The bytes of slot `seq`, if they do not decode as an entry (`None` when they do).
async fn damaged_bytes(store: &DynStore, seq: Seq) -> Result<Option<(bytes::Bytes, String)>> {
    let path = log_path(seq);
    let bytes = store.get(&path).await?.bytes().await?;
    Ok(match LogEntry::decode(path.as_ref(), &bytes) {
        Ok(_) => None,
        Err(Error::Corrupt { reason, .. }) => Some((bytes, reason)),
        Err(e) => return Err(e),
    })
}

/// Start-up's view of a damaged entry: [`Error::TornHead`] when it is the newest file of
/// the log and does not decode; the error unchanged otherwise.
pub(crate) async fn classify(store: &DynStore, err: Error) -> Error {
    let Error::Corrupt { path, .. } = &err else {
        return err;
    };
    let Some(seq) = parse_log_path(&Path::from(path.as_str())) else {
        return err;
    };
    match (newest(store).await, damaged_bytes(store, seq).await) {
        (Ok(Some(last)), Ok(Some((_, reason)))) if last == seq => Error::TornHead {
            path: path.clone(),
            seq,
            reason,
        },
        _ => err,
    }
}

/// Quarantines and voids a damaged newest entry (see the module docs); refuses any
/// other damage with [`Error::Corrupt`] saying why.
pub async fn recover(store: &DynStore, clock: &dyn Clock) -> Result<Recovery> {
    let Some(last) = newest(store).await? else {
        return Ok(Recovery::Intact { head: Seq::ZERO });
    };
    let report = verify_chain(store, &|_| {}).await?;
    let Some(brk) = report.first_break else {
        return Ok(Recovery::Intact { head: last });
    };
    let path = log_path(brk.seq);
    let damaged = if brk.seq == last && brk.damage == Damage::Altered {
        damaged_bytes(store, last).await?
    } else {
        None
    };
    let Some((bytes, _)) = damaged else {
        return Err(Error::corrupt(
            path,
            format!(
                "{:?}: {}. Only a damaged newest entry (a torn write) can be voided; this is \
                 damage inside the log, which means tampering or lost media. Nothing was \
                 changed; see `bucketbase audit verify` and restore from a backup",
                brk.damage, brk.detail
            ),
        ));
    };
    let marks = DurableMarks::read(store, store).await?;
    if let Some((mark, by)) = marks.highest().filter(|(mark, _)| *mark >= last) {
        return Err(Error::corrupt(
            path,
            format!(
                "is damaged, but {by} says position {mark} was committed: this entry was \
                 acknowledged, and voiding it would drop its data. Nothing was changed; \
                 restore the file from a backup"
            ),
        ));
    }
    // The walk stopped at `last`: its head hash is that of `last - 1` (or the genesis).
    let prev_hash = report.head_hash;
    let void = VoidRecord {
        bytes: bytes.len() as u64,
        sha256: sha256_hex(&bytes),
    };
    let quarantined = quarantine_path(last, &void.sha256);
    match store
        .put_opts(
            &quarantined,
            PutPayload::from_bytes(bytes),
            PutOptions::from(PutMode::Create),
        )
        .await
    {
        // Same name, same hash: an earlier run got this far.
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let (_, file) = LogEntry::seal(EntryBody {
        at: clock.now().to_rfc3339_opts(SecondsFormat::Millis, true),
        prev_hash,
        seq: last,
        txns: Vec::new(),
        v: crate::log::ENTRY_FORMAT,
        void: Some(void.clone()),
    });
    match damaged_bytes(store, last).await? {
        Some((now, _)) if sha256_hex(&now) == void.sha256 => {}
        _ => {
            return Err(Error::corrupt(
                path,
                "changed while it was being recovered (is another recovery running?); the \
                 damaged bytes are kept in _quarantine/; run the command again",
            ));
        }
    }
    store
        .put_opts(
            &path,
            PutPayload::from(file),
            PutOptions::from(PutMode::Overwrite),
        )
        .await?;
    Ok(Recovery::Voided {
        seq: last,
        quarantined,
        void,
    })
}
