//! The log never shrinks: the durable marks a root carries, checked against the log head.
//!
//! Acknowledged commits leave traces outside the log: the newest checkpoint (the state at
//! its position, with that entry's hash), the newest signed audit digest (`digest`), and
//! the view watermark `_meta/view.json` (the view is complete up to there, and it only
//! moves once the log holds those entries). A
//! log whose head is below either has lost acknowledged entries: an accident (a restored
//! backup of `_log/` only, a careless clean-up) or a clumsy attacker. Opening such a root
//! would serve a shorter history, answer 404 for acknowledged records and write new data
//! into the removed slot numbers. So start-up refuses it, and `audit verify` reports the
//! missing positions as removed. Signed digests (with a key) close the gap for an attacker
//! who also rewrites these marks.
//!
//! Start-up does not require the log entries a checkpoint covers (an operator may archive
//! them); `audit verify` walks the whole chain and reports any that are missing.

use object_store::ObjectStoreExt;

use crate::error::{Error, Result};
use crate::names::Seq;
use crate::store::{DynStore, view_watermark_path};

/// The positions a root's derived files claim the log reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurableMarks {
    /// The newest checkpoint manifest present.
    pub checkpoint: Option<Seq>,
    /// The view watermark.
    pub view: Option<Seq>,
    /// The newest signed audit digest (see `digest`).
    pub digest: Option<Seq>,
}

impl DurableMarks {
    /// Reads the marks: one listing of `_checkpoints/` and one GET of the watermark. A
    /// watermark that does not parse is ignored (it is derived; start-up rewrites it).
    pub async fn read(store: &DynStore, view_store: &DynStore) -> Result<DurableMarks> {
        let checkpoints = crate::checkpoint::list(store).await?;
        DurableMarks::read_with(store, view_store, &checkpoints).await
    }

    /// [`DurableMarks::read`] with the checkpoint listing (newest first) already made.
    pub async fn read_with(
        store: &DynStore,
        view_store: &DynStore,
        checkpoints: &[Seq],
    ) -> Result<DurableMarks> {
        let checkpoint = checkpoints.first().copied();
        let view = match view_store.get(&view_watermark_path()).await {
            Ok(got) => crate::view::parse_seq(&got.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let digest = crate::digest::list(store).await?.last().copied();
        Ok(DurableMarks {
            checkpoint,
            view,
            digest,
        })
    }

    /// The highest position claimed, and what claims it.
    pub fn highest(&self) -> Option<(Seq, &'static str)> {
        [
            self.checkpoint.map(|s| (s, "the newest checkpoint")),
            self.view
                .map(|s| (s, "the view watermark (_meta/view.json)")),
            self.digest.map(|s| (s, "the newest signed audit digest")),
        ]
        .into_iter()
        .flatten()
        .max_by_key(|(seq, _)| *seq)
    }

    /// Refuses a log head below a mark.
    pub fn check(&self, head: Seq) -> Result<()> {
        match self.highest() {
            Some((mark, by)) if mark > head => Err(Error::LogTruncated { head, mark, by }),
            _ => Ok(()),
        }
    }
}
