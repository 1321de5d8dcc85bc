//! Writing one view file: plain or conditional on its `_seq` (see `ViewWriteMode`).

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::error::Result;
use crate::names::{CollectionName, RecordId, Seq};
use crate::state::Doc;
use crate::store::{DynStore, doc_view_path};

use super::render_doc;
use crate::view::{ViewWriteMode, parse_seq};

pub(super) async fn write_doc(
    store: &DynStore,
    mode: ViewWriteMode,
    c: &CollectionName,
    id: &RecordId,
    doc: Option<&Doc>,
) -> Result<()> {
    let path = doc_view_path(c, id);
    match doc {
        Some(doc) => put_view(store, mode, &path, render_doc(doc), doc.version).await,
        None => match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        },
    }
}

/// Reads the `_seq` of a view file; `None` when absent or unreadable.
pub(super) async fn read_seq(store: &DynStore, path: &Path) -> Option<Seq> {
    let bytes = store.get(path).await.ok()?.bytes().await.ok()?;
    parse_seq(&bytes)
}

/// Writes a view file; with `IfNewer`, only over a file with an older `_seq`.
pub(super) async fn put_view(
    store: &DynStore,
    mode: ViewWriteMode,
    path: &Path,
    bytes: Vec<u8>,
    seq: Seq,
) -> Result<()> {
    let payload = PutPayload::from(bytes);
    if mode == ViewWriteMode::Overwrite {
        store.put(path, payload).await?;
        return Ok(());
    }
    loop {
        let put_mode = match store.get(path).await {
            Ok(current) => {
                let meta = current.meta.clone();
                let existing = current.bytes().await?;
                if parse_seq(&existing).is_some_and(|s| s >= seq) {
                    return Ok(());
                }
                PutMode::Update(UpdateVersion {
                    e_tag: meta.e_tag,
                    version: meta.version,
                })
            }
            Err(object_store::Error::NotFound { .. }) => PutMode::Create,
            Err(e) => return Err(e.into()),
        };
        match store
            .put_opts(path, payload.clone(), PutOptions::from(put_mode))
            .await
        {
            Ok(_) => return Ok(()),
            // Someone else replaced (or removed) it meanwhile: look again. A conditional
            // update of a key that is gone answers 412 on some S3 servers (SeaweedFS) and
            // 404 on others (moto, AWS): both mean the same here.
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
