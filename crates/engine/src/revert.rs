//! Reverting a changeset: every transaction of an import, a migration, a request or one
//! log entry, undone as one new transaction.
//!
//! Every transaction in the log carries its source (`import:<id>`, `migration:<id>`,
//! `api`, ...) and request id, and holds everything it wrote: the records its operations
//! touched, and what its cascades and hooks (automatic tasks, the auto-task ledger) wrote
//! in the same commit. A changeset is the set of transactions that carry one source, one
//! request id, or sit in one log entry (group commit may have batched unrelated requests
//! into an entry: the plan lists every transaction it holds).
//!
//! [`prepare`] reads the log once, in order, and finds:
//! - the changeset's transactions and the records they wrote, each with the positions of
//!   its first and last write in the changeset;
//! - each record's state before the changeset: none when the changeset created it (its
//!   first event there is a `create`), otherwise the record as of the position before
//!   its first write (an `as_of` read);
//! - **conflicts**: writes of those records by transactions outside the changeset after
//!   its first write to them (their collection, record, fields, actor, time, source).
//!
//! [`Revert::apply`] then puts every record back in one transaction (source
//! `revert:<changeset>`, so a revert is itself a changeset that can be reverted), in the
//! reverse order of first writes (an automatic task before its booking): a record the
//! changeset created is soft-deleted where the collection has soft delete and purged
//! otherwise, an updated one gets its prior fields back, a deleted one is restored. It
//! refuses when there are conflicts, unless forced, and re-checks each record's version
//! inside the transaction, so a write that lands after the plan was made is a conflict
//! too. The handle's hooks do not run in it ([`crate::txn::Tag::NO_HOOKS`]): the changeset
//! already holds what they did, and that is reverted with it. The commit checks every
//! rule on the result, as for any commit: a restore that would collide with a newer
//! record is refused, naming it.
//!
//! [`Revert::dry_run`] runs the same transaction as a trial on the current state: exactly
//! what would change, or the rule it would break, without writing anything.
//!
//! Cost: finding a changeset by source or request id reads the whole log (16 entries at a
//! time); one by position reads that entry and the entries after it. The prior states
//! take one more walk back from the changeset's last first write, each entry read once.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::collection::audit;
use crate::collection::event::Source;
use crate::db::Database;
use crate::error::{Error, Result};
use crate::log::{TxnRecord, read_entry};
use crate::names::{CollectionName, RecordId, Seq};
use crate::txn::{Committed, Tag, Txn, TxnMeta};
use crate::txn::{Reverted, diff};

/// Which transactions to revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changeset {
    /// Every transaction with this source (`import:<id>`, `migration:<id>`, ...).
    Source(String),
    /// Every transaction of one API request.
    RequestId(String),
    /// Every transaction of one log entry.
    Seq(Seq),
}

impl Changeset {
    /// How the changeset is named in a revert's source: `revert:<label>`.
    pub fn label(&self) -> String {
        match self {
            Changeset::Source(source) => source.clone(),
            Changeset::RequestId(id) => format!("request:{id}"),
            Changeset::Seq(seq) => format!("seq:{}", seq.get()),
        }
    }

    fn holds(&self, seq: Seq, txn: &TxnRecord) -> bool {
        match self {
            Changeset::Source(source) => txn.source == *source,
            Changeset::RequestId(id) => txn.request_id.as_deref() == Some(id.as_str()),
            Changeset::Seq(at) => seq == *at,
        }
    }
}

/// One transaction of the changeset.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub seq: Seq,
    pub txn_id: String,
    pub at: String,
    pub actor: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Records it wrote.
    pub records: usize,
}

/// A write outside the changeset to a record the changeset wrote, after it did.
#[derive(Debug, Clone, Serialize)]
pub struct Conflict {
    pub collection: String,
    pub record_id: String,
    pub seq: Seq,
    pub at: String,
    pub actor: String,
    pub source: String,
    /// What the later change did (`update`, `delete`, ...), when its event says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The fields it changed, when its event says.
    pub fields: Vec<String>,
}

/// What the revert does (or would do) to one record.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub collection: String,
    pub record_id: String,
    pub action: Reverted,
    /// Field-level changes, as audit events show them (secrets masked).
    pub changes: Value,
}

/// A record the changeset wrote: where, and what it was before.
#[derive(Debug, Clone)]
struct Target {
    collection: CollectionName,
    id: RecordId,
    /// The changeset's last write to it.
    last: Seq,
    /// Its stored form before the changeset (`None`: it did not exist).
    prior: Option<Value>,
}

/// A changeset found in the log, ready to revert (see the module docs).
#[derive(Debug, Clone, Serialize)]
pub struct Revert {
    pub changeset: String,
    /// The log position the plan was made at.
    pub head: Seq,
    pub transactions: Vec<Member>,
    pub conflicts: Vec<Conflict>,
    /// Records of system collections (users, sessions, definitions) the changeset wrote;
    /// a revert leaves them alone.
    pub skipped: Vec<String>,
    #[serde(skip)]
    targets: Vec<Target>,
}

/// The audit event fields a revert reads.
#[derive(Deserialize)]
struct EventFields {
    collection: Option<String>,
    record_id: Option<String>,
    action: Option<String>,
    at: Option<String>,
    actor: Option<String>,
    source: Option<String>,
    #[serde(default)]
    changes: serde_json::Map<String, Value>,
}

/// A transaction's events, by the record each is about (its first event of a record).
type Events = HashMap<(CollectionName, RecordId), EventFields>;

fn events(txn: &TxnRecord) -> Events {
    let puts = crate::collection::created::Puts::of(txn);
    let mut events = Events::with_capacity(txn.audit.len());
    let parsed = txn
        .audit
        .iter()
        .filter_map(|e| puts.full_event(e).ok())
        .filter_map(|e| serde_json::from_value::<EventFields>(e).ok());
    for event in parsed {
        let subject = (event.collection.as_deref(), event.record_id.as_deref());
        let (Some(c), Some(id)) = subject else {
            continue;
        };
        let (Ok(c), Ok(id)) = (CollectionName::parse_any(c), RecordId::parse(id)) else {
            continue;
        };
        events.entry((c, id)).or_insert(event);
    }
    events
}

/// Finds `changeset` in the log of `db` and what reverting it means (see the module docs).
/// A changeset with no transaction is `not_found`.
pub async fn prepare(db: &Database, changeset: &Changeset) -> Result<Revert> {
    let snapshot = db.snapshot();
    let head = snapshot.seq();
    let store = db.store();
    let first_entry = match changeset {
        Changeset::Seq(seq) if *seq > head || seq.get() == 0 => {
            return Err(Error::FutureSeq {
                requested: *seq,
                head,
            });
        }
        Changeset::Seq(seq) => seq.get(),
        _ => 1,
    };
    let mut members = Vec::new();
    let mut conflicts = Vec::new();
    // Per record written: its index in `order`, whether the changeset created it, and
    // the positions of its first and last writes there.
    let mut written: HashMap<(CollectionName, RecordId), (Seq, Seq, bool)> = HashMap::new();
    let mut order: Vec<(CollectionName, RecordId)> = Vec::new();
    let mut entries = futures::stream::iter(first_entry..=head.get())
        .map(|s| read_entry(store, Seq(s)))
        .buffered(16);
    while let Some(entry) = entries.try_next().await? {
        let Some(entry) = entry else { continue };
        let seq = entry.seq();
        for txn in &entry.body.txns {
            let member = changeset.holds(seq, txn);
            if !member && written.is_empty() {
                continue;
            }
            let events = events(txn);
            if member {
                members.push(Member {
                    seq,
                    txn_id: txn.id.to_string(),
                    at: entry.body.at.clone(),
                    actor: txn.actor.clone(),
                    source: txn.source.clone(),
                    request_id: txn.request_id.clone(),
                    records: txn.ops.len(),
                });
            }
            for op in &txn.ops {
                let key = (op.collection.clone(), op.id.clone());
                match (member, written.get_mut(&key)) {
                    (true, Some((_, last, _))) => *last = seq,
                    (true, None) => {
                        let created = events
                            .get(&key)
                            .is_some_and(|e| e.action.as_deref() == Some("create"));
                        written.insert(key.clone(), (seq, seq, created));
                        order.push(key);
                    }
                    (false, Some(_)) => {
                        let event = events.get(&key);
                        conflicts.push(Conflict {
                            collection: op.collection.to_string(),
                            record_id: op.id.to_string(),
                            seq,
                            at: event
                                .and_then(|e| e.at.clone())
                                .unwrap_or_else(|| entry.body.at.clone()),
                            actor: event
                                .and_then(|e| e.actor.clone())
                                .unwrap_or_else(|| txn.actor.clone()),
                            source: event
                                .and_then(|e| e.source.clone())
                                .unwrap_or_else(|| txn.source.clone()),
                            action: event.and_then(|e| e.action.clone()),
                            fields: event
                                .map(|e| e.changes.keys().cloned().collect())
                                .unwrap_or_default(),
                        });
                    }
                    (false, None) => {}
                }
            }
        }
    }
    if members.is_empty() {
        return Err(Error::NotFound {
            collection: "changeset".into(),
            id: changeset.label(),
        });
    }
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    // Prior states of the records the changeset did not create (the targets at
    // `needs`), in one walk back.
    let mut asks = Vec::new();
    let mut needs = Vec::new();
    // Reverse order of first writes: what hooks and cascades wrote after a record goes
    // back before it.
    for (collection, id) in order.into_iter().rev() {
        if collection.is_system() {
            skipped.push(format!("{collection}/{id}"));
            continue;
        }
        let (first, last, created) = written[&(collection.clone(), id.clone())];
        if !created {
            needs.push(targets.len());
            asks.push((collection.clone(), id.clone(), Seq(first.get() - 1)));
        }
        targets.push(Target {
            collection,
            id,
            last,
            prior: None,
        });
    }
    let priors = audit::as_of_many(store, &asks).await?;
    for (i, prior) in needs.into_iter().zip(priors) {
        targets[i].prior = prior.map(|(_, doc)| doc);
    }
    Ok(Revert {
        changeset: changeset.label(),
        head,
        transactions: members,
        conflicts,
        skipped,
        targets,
    })
}

impl Revert {
    /// The records the revert puts back (as `collection/id`), in the order it does.
    pub fn records(&self) -> impl Iterator<Item = (&CollectionName, &RecordId)> {
        self.targets.iter().map(|t| (&t.collection, &t.id))
    }

    /// Leaves the records of the collections `keep` names as they are (an app that
    /// records the changeset itself, like aristay's import log, updates it instead).
    pub fn leave(&mut self, keep: impl Fn(&CollectionName) -> bool) {
        self.targets.retain(|t| !keep(&t.collection));
        self.conflicts
            .retain(|c| CollectionName::parse_any(&c.collection).map_or(true, |name| !keep(&name)));
    }

    /// The transaction a revert commits as: `meta`'s actor and request id, the source
    /// `revert:<changeset>`, no hooks.
    pub fn meta(&self, meta: &TxnMeta) -> TxnMeta {
        TxnMeta {
            source: Source::Revert(self.changeset.clone()),
            ..meta.clone()
        }
        .with_tag(Tag::NO_HOOKS)
    }

    /// What the revert would change, checked like a commit against the current state,
    /// without writing (conflicts are listed in [`Revert::conflicts`], not refused here).
    /// `finish` runs at the end of the transaction, as in [`Revert::apply`].
    pub fn dry_run(
        &self,
        db: &Database,
        meta: &TxnMeta,
        finish: &(dyn Fn(&mut Txn) -> Result<()> + Sync),
    ) -> Result<Vec<Step>> {
        db.trial(&self.meta(meta))
            .step(|tx| self.revert_in(tx, true, finish))
    }

    /// Reverts, in one transaction. Refuses with `revert_conflict` when records changed
    /// after the changeset wrote them, unless `force`. `finish` runs at the end of the
    /// transaction (an app marks its own record of the changeset there).
    pub async fn apply(
        &self,
        db: &Database,
        meta: &TxnMeta,
        force: bool,
        finish: &(dyn Fn(&mut Txn) -> Result<()> + Sync),
    ) -> Result<Committed<Vec<Step>>> {
        if !force && !self.conflicts.is_empty() {
            return Err(self.conflict(self.conflicted_records()));
        }
        db.transact(&self.meta(meta), |tx| self.revert_in(tx, force, finish))
            .await
    }

    /// How many records [`Revert::conflicts`] name.
    pub fn conflicted_records(&self) -> usize {
        let mut records: Vec<(&str, &str)> = self
            .conflicts
            .iter()
            .map(|c| (c.collection.as_str(), c.record_id.as_str()))
            .collect();
        records.sort_unstable();
        records.dedup();
        records.len()
    }

    fn conflict(&self, records: usize) -> Error {
        Error::RevertConflict {
            changeset: self.changeset.clone(),
            records,
        }
    }

    fn revert_in(
        &self,
        tx: &mut Txn,
        force: bool,
        finish: &(dyn Fn(&mut Txn) -> Result<()> + Sync),
    ) -> Result<Vec<Step>> {
        let mut steps = Vec::with_capacity(self.targets.len());
        let mut late = 0;
        for target in &self.targets {
            let (c, id) = (&target.collection, &target.id);
            let current = tx.get_doc(c, id);
            if current.as_ref().is_some_and(|d| d.version > target.last) && !force {
                // Changed since the changeset wrote it: known at planning (listed), or
                // written since the plan was made.
                late += 1;
                continue;
            }
            let before = current.map(|d| d.value());
            let action = tx.revert_record(c, id, target.prior.as_ref())?;
            if action == Reverted::Unchanged {
                continue;
            }
            let after = tx.get_value(c, id);
            let def = tx.definition(c)?;
            steps.push(Step {
                collection: c.to_string(),
                record_id: id.to_string(),
                action,
                changes: diff(&def, before.as_ref(), after.as_ref()),
            });
        }
        if late > 0 {
            return Err(self.conflict(late));
        }
        finish(tx)?;
        Ok(steps)
    }
}
