//! Where things live under a database root (`docs/architecture.md`, "The storage, in one picture").
//!
//! Sequence numbers are zero-padded to 20 digits so that lexical order is log order.

use object_store::path::Path;

use crate::names::{CollectionName, RecordId, Seq};

/// Prefix of the commit log.
pub const LOG_DIR: &str = "_log";
/// Prefix of checkpoints.
pub const CHECKPOINT_DIR: &str = "_checkpoints";
/// Prefix of uploaded blobs.
pub const FILES_DIR: &str = "_files";
/// Prefix of the engine's bookkeeping for derived files (the view watermark).
pub const META_DIR: &str = "_meta";

/// `_log/{seq:020}.json`: the commit point of entry `seq`.
pub fn log_path(seq: Seq) -> Path {
    Path::from(format!("{LOG_DIR}/{:020}.json", seq.get()))
}

/// `_checkpoints/{seq:020}.json`: the manifest (commit point) of a checkpoint.
pub fn checkpoint_manifest_path(seq: Seq) -> Path {
    Path::from(format!("{CHECKPOINT_DIR}/{:020}.json", seq.get()))
}

/// `_checkpoints/{seq:020}/{part:05}.jsonl`: one part of a checkpoint's records.
pub fn checkpoint_part_path(seq: Seq, part: usize) -> Path {
    Path::from(format!(
        "{CHECKPOINT_DIR}/{:020}/{part:05}.jsonl",
        seq.get()
    ))
}

/// Parses the sequence number out of a checkpoint manifest key.
pub fn parse_checkpoint_manifest(path: &Path) -> Option<Seq> {
    let name = path.filename()?;
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok().map(Seq))
        .flatten()
}

/// `{collection}/{id}.json`: the materialized current document.
pub fn doc_view_path(collection: &CollectionName, id: &RecordId) -> Path {
    Path::from(format!("{collection}/{id}.json"))
}

/// `{collection}/index.json`: the materialized index of a collection.
pub fn index_view_path(collection: &CollectionName) -> Path {
    Path::from(format!("{collection}/index.json"))
}

/// `_meta/view.json`: how far the materialized view is known to be complete.
pub fn view_watermark_path() -> Path {
    Path::from(format!("{META_DIR}/view.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_log_order() {
        assert_eq!(log_path(Seq(42)).as_ref(), "_log/00000000000000000042.json");
        assert!(log_path(Seq(9)).as_ref() < log_path(Seq(10)).as_ref());
        let m = checkpoint_manifest_path(Seq(4096));
        assert_eq!(parse_checkpoint_manifest(&m), Some(Seq(4096)));
        assert_eq!(
            parse_checkpoint_manifest(&checkpoint_part_path(Seq(1), 0)),
            None
        );
    }
}
