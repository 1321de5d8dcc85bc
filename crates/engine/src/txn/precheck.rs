//! A large transaction's documents checked while it is still being staged.
//!
//! Why: a document that travels parsed to the committer is validated (schema and `check`
//! expressions) and its index keys derived before the commit, so the committer, which
//! serializes every commit, does neither for it (`Txn::into_pending`,
//! `State::apply_txn`). For an import of thousands of records that work was done when
//! the transaction was handed over, on the caller's thread, after staging: in series
//! with everything else. Staging itself is one thread, so from the
//! [`THRESHOLD`]th document on, a transaction hands each one to a helper thread as it is
//! staged, and that thread checks it meanwhile, on another core.
//!
//! Nothing here is trusted beyond what the caller's thread would have done itself: a
//! result counts for a staged document only if it is for that very value (`Arc::ptr_eq`:
//! the result holds its `Arc`, so the address cannot be reused) and that very definition.
//! A document staged and then replaced, one staged before the helper started, and one the
//! helper did not answer for are checked by `into_pending` as before. Small transactions
//! (every API write) never start a thread.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use serde_json::Value;

use crate::collection::definition::Compiled;
use crate::collection::integrity::validate_doc;
use crate::collection::keys::RecordKeys;
use crate::names::RecordId;

/// Documents staged (and offered) before a helper thread is started.
pub(crate) const THRESHOLD: usize = 256;

struct Job {
    def: Arc<Compiled>,
    id: RecordId,
    value: Arc<Value>,
}

/// A document that passed `def`, with its index keys under `def`.
pub(crate) struct Passed {
    pub def: Arc<Compiled>,
    pub value: Arc<Value>,
    pub keys: RecordKeys,
}

/// The helper of one transaction (see the module docs).
#[derive(Default)]
pub(crate) struct Prechecker {
    offered: usize,
    worker: Option<(mpsc::Sender<Job>, JoinHandle<Vec<Passed>>)>,
}

impl Prechecker {
    /// A document just staged by a record operation with `def`. Below the threshold it
    /// is left for `into_pending`; from it on, the helper checks it.
    pub(crate) fn offer(&mut self, def: &Arc<Compiled>, id: &RecordId, value: &Arc<Value>) {
        self.offered += 1;
        if self.offered < THRESHOLD {
            return;
        }
        let (sender, _) = self.worker.get_or_insert_with(|| {
            let (sender, jobs) = mpsc::channel::<Job>();
            let handle = std::thread::Builder::new()
                .name("bb-precheck".into())
                .spawn(move || check_all(jobs))
                .expect("the OS starts a thread");
            (sender, handle)
        });
        let _ = sender.send(Job {
            def: def.clone(),
            id: id.clone(),
            value: value.clone(),
        });
    }

    /// Every document the helper passed, by the address of its value (empty when none
    /// was started). Waits for the helper to finish what it was sent.
    pub(crate) fn finish(self) -> HashMap<*const Value, Passed> {
        let Some((sender, handle)) = self.worker else {
            return HashMap::new();
        };
        drop(sender);
        // A helper that panicked answered for nothing: `into_pending` checks them all.
        let passed = handle.join().unwrap_or_default();
        passed
            .into_iter()
            .map(|p| (Arc::as_ptr(&p.value), p))
            .collect()
    }
}

fn check_all(jobs: mpsc::Receiver<Job>) -> Vec<Passed> {
    let mut passed = Vec::new();
    for Job { def, id, value } in jobs {
        if validate_doc(&def, &id, &value).is_err() {
            continue;
        }
        if let Ok(keys) = RecordKeys::of(&def, &value) {
            passed.push(Passed { def, value, keys });
        }
    }
    passed
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::collection::Definition;

    fn def(toml: &str) -> Arc<Compiled> {
        Arc::new(Definition::from_toml(toml).unwrap().compile().unwrap())
    }

    #[test]
    fn only_documents_past_the_threshold_that_pass_are_answered_for() {
        let notes = def(
            "name = \"notes\"\nindex = [\"n\"]\n[schema]\ntype = \"object\"\n[schema.properties]\nn = { type = \"integer\" }\n",
        );
        let mut pre = Prechecker::default();
        let mut values = Vec::new();
        for i in 0..THRESHOLD + 10 {
            let bad = i == THRESHOLD + 3;
            let doc = if bad {
                json!({"id": format!("r{i}"), "n": "not a number"})
            } else {
                json!({"id": format!("r{i}"), "n": i})
            };
            let value = Arc::new(doc);
            pre.offer(&notes, &RecordId::parse(&format!("r{i}")).unwrap(), &value);
            values.push(value);
        }
        let passed = pre.finish();
        // Offers before the threshold are left to `into_pending`; the bad one fails.
        assert_eq!(passed.len(), 10);
        assert!(!passed.contains_key(&Arc::as_ptr(&values[THRESHOLD - 2])));
        assert!(!passed.contains_key(&Arc::as_ptr(&values[THRESHOLD + 3])));
        let p = &passed[&Arc::as_ptr(&values[THRESHOLD])];
        assert!(Arc::ptr_eq(&p.def, &notes));
        assert_eq!(p.keys, RecordKeys::of(&notes, &values[THRESHOLD]).unwrap());
        // An equal value elsewhere in memory is not the one that was checked.
        let equal = Arc::new((*values[THRESHOLD]).clone());
        assert!(!passed.contains_key(&Arc::as_ptr(&equal)));
    }

    #[test]
    fn a_small_transaction_starts_no_helper() {
        let notes = def("name = \"notes\"\n");
        let mut pre = Prechecker::default();
        for i in 0..THRESHOLD - 1 {
            pre.offer(
                &notes,
                &RecordId::parse(&format!("r{i}")).unwrap(),
                &Arc::new(json!({})),
            );
        }
        assert!(pre.worker.is_none());
        assert!(pre.finish().is_empty());
    }
}
