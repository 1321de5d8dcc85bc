//! `bucketbase rebuild`: every view file re-derived from a state, orphans removed.

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::error::Result;
use crate::names::{CollectionName, RecordId};
use crate::state::State;
use crate::store::{DynStore, index_view_path, view_watermark_path};

use super::WRITE_CONCURRENCY;
use super::files::{put_view, write_doc};
use super::render::{index_fields, render_index};
use crate::view::{ViewWriteMode, render_watermark};

/// What [`rebuild`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildReport {
    pub docs: u64,
    pub indexes: u64,
    pub removed: u64,
}

/// Re-derives every view file from `state`, and removes view files of records that no
/// longer exist. `progress` is called with the number of documents written so far.
pub async fn rebuild(
    store: &DynStore,
    state: &State,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<RebuildReport> {
    let mut report = RebuildReport::default();
    let mode = ViewWriteMode::Overwrite;
    for (c, coll) in state.collections() {
        let written = futures::stream::iter(coll.docs.iter())
            .map(|(id, doc)| write_doc(store, mode, c, id, Some(doc)))
            .buffer_unordered(WRITE_CONCURRENCY * 2)
            .try_fold(0u64, |n, ()| {
                let n = n + 1;
                if n % 1000 == 0 {
                    progress(report.docs + n);
                }
                async move { Ok(n) }
            })
            .await?;
        report.docs += written;
        progress(report.docs);
        let bytes = render_index(c, coll, &index_fields(state, c));
        put_view(store, mode, &index_view_path(c), bytes, coll.changed).await?;
        report.indexes += 1;
    }
    report.removed = remove_orphans(store, state).await?;
    put_view(
        store,
        mode,
        &view_watermark_path(),
        render_watermark(state.seq()),
        state.seq(),
    )
    .await?;
    Ok(report)
}

/// Deletes `{collection}/{id}.json` files whose record is gone. Only touches keys that
/// look like view files (a valid collection name and record id), never `_` prefixes.
async fn remove_orphans(store: &DynStore, state: &State) -> Result<u64> {
    let listed: Vec<Path> = store
        .list(None)
        .map_ok(|m| m.location)
        .try_collect()
        .await?;
    let orphans: Vec<Path> = listed
        .into_iter()
        .filter(|path| {
            let parts: Vec<_> = path.parts().collect();
            let [c, file] = parts.as_slice() else {
                return false;
            };
            let (Ok(c), Some(id)) = (
                CollectionName::parse(c.as_ref()),
                file.as_ref().strip_suffix(".json"),
            ) else {
                return false;
            };
            if id == "index" {
                return state.collection(&c).is_none();
            }
            RecordId::parse(id).is_ok_and(|id| state.get(&c, &id).is_none())
        })
        .collect();
    let n = orphans.len() as u64;
    for path in orphans {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}
