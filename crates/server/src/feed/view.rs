//! What one subscriber may see of each change: the access rules, its filters, and the
//! record as the JSON API shows it.
//!
//! A subscription has a *view*: the records of its collections that the caller may list
//! and view, that match its `record_id=` and `filter=`. For each change the record as
//! its transaction left it is judged against the view with the caller's `auth` as of the
//! newest state the subscriber knows (rights are re-checked per entry, not fixed at
//! connect time), and the record before the change with the `auth` it had before:
//! - in the view now: the change is sent (record rendered like a read: secrets masked,
//!   redacted fields redacted; an item operation carries the item and its path);
//! - in the view before but not now: `removed` (a purge or hard delete is sent as
//!   itself, with no record), and nothing more about it while it stays out;
//! - in neither: nothing, not even the id.
//!
//! When the caller's `auth` itself changes (an owner loses a property), the records of
//! the view that it no longer admits are found by a scan of the subscribed collections
//! and each gets a `removed`.

use std::collections::HashSet;
use std::sync::Arc;

use bucketbase_engine::collection::Compiled;
use bucketbase_engine::collection::expr::{Expr, ExprError, Vars};
use bucketbase_engine::collection::records::{Secrets, render_item};
use bucketbase_engine::feed::{Applied, FeedChange, FeedPos, ItemOp, changes};
use bucketbase_engine::{CollectionName, RecordId, State};
use serde_json::{Value, json};

use crate::AppState;
use crate::access::{Action, Caller};
use crate::auth::Principal;
use crate::routes::records::show;

/// What a subscription asks for.
#[derive(Debug, Clone)]
pub struct Spec {
    pub collections: Vec<CollectionName>,
    pub record_id: Option<RecordId>,
    /// Compiled like a list's `filter=` (same limits); a record it fails on does not
    /// match.
    pub filter: Option<Arc<Expr>>,
    /// Send changes after this position.
    pub since: FeedPos,
}

/// One message of a subscription, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A change (or a `removed`) at position `id`; `event` is the SSE event name.
    Event {
        id: FeedPos,
        event: &'static str,
        data: Value,
    },
    /// Cut off because the client did not keep up: resume after `resume`.
    Dropped { resume: FeedPos },
    /// Ended by the server (an expired token, a store error): an error envelope.
    End { code: &'static str, message: String },
}

/// A subscriber's judge: the caller, its current `auth`, and its spec.
pub(crate) struct View {
    pub st: AppState,
    pub principal: Principal,
    pub auth: Value,
    /// The log position `auth` was computed at.
    pub auth_seq: Option<bucketbase_engine::Seq>,
    pub spec: Spec,
}

impl View {
    pub fn new(st: AppState, caller: Caller, spec: Spec) -> Self {
        View {
            st,
            principal: caller.principal,
            auth: caller.auth,
            auth_seq: None,
            spec,
        }
    }

    fn caller(&self, auth: &Value) -> Caller {
        Caller {
            principal: self.principal.clone(),
            auth: auth.clone(),
        }
    }

    /// Whether `record` of `def` is in the view for a caller with `auth`.
    fn admits(&self, def: &Compiled, id: &RecordId, record: &Value, auth: &Value) -> bool {
        if self.spec.record_id.as_ref().is_some_and(|r| r != id) {
            return false;
        }
        let caller = self.caller(auth);
        if !caller.may(def, Action::List, record) || !caller.may(def, Action::View, record) {
            return false;
        }
        self.spec.filter.as_ref().is_none_or(|f| {
            let vars = Vars::new().with("record", record).with("auth", auth);
            match f.eval_bool(&vars) {
                Ok(matched) => matched,
                Err(ExprError::Mismatch { .. }) | Err(_) => false,
            }
        })
    }

    /// Replaces the principal (a re-authenticated token may carry a new role).
    pub fn set_principal(&mut self, principal: Principal) {
        if principal != self.principal {
            self.principal = principal;
            self.auth_seq = None;
        }
    }

    /// The messages one applied entry gives this subscriber, judged against `state`
    /// (the state just after the entry when live, the newest one when replayed).
    ///
    /// `new_auth` is [`View::auth_at`] of `state` (the caller's `auth` when it changed).
    pub fn entry(
        &mut self,
        applied: &Applied,
        state: &State,
        new_auth: Option<Value>,
    ) -> Vec<Message> {
        let changes = changes(applied);
        let old_auth = self.auth.clone();
        let mut out = Vec::new();
        // Records that left the view because `auth` changed: sent after the entry's
        // own changes, at the positions that follow them.
        let mut left = Vec::new();
        if let Some(auth) = new_auth {
            self.auth = auth;
            let touched: HashSet<(&CollectionName, &RecordId)> =
                changes.iter().map(|c| (&c.collection, &c.id)).collect();
            let seq = applied.entry.seq();
            let indexes = changes.len() as u32..;
            for (index, (c, id)) in indexes.zip(self.left_view(state, &old_auth, &touched)) {
                let pos = FeedPos {
                    seq,
                    index: Some(index),
                };
                if self.since_ok(pos) {
                    left.push(removed(pos, &c, &id));
                }
            }
        }
        let mut gone: HashSet<(CollectionName, RecordId)> = HashSet::new();
        for change in &changes {
            if !self.spec.collections.contains(&change.collection) || !self.since_ok(change.pos()) {
                continue;
            }
            let Some(def) = state.definition(&change.collection).cloned() else {
                continue;
            };
            // An item operation leaves the record's own fields (what rules read) as they
            // were; a replayed one does not carry the record: it is judged as the record
            // is now, and a record since deleted as one without fields (a rule that reads
            // a field does not admit it; nothing is sent on a guess).
            let (record, before) = match (&change.item, &change.record) {
                (Some(_), None) => {
                    let now = state
                        .get(&change.collection, &change.id)
                        .map(|d| d.value())
                        .unwrap_or_else(|| json!({ "id": change.id.as_str() }));
                    (Some(now.clone()), Some(now))
                }
                _ => (change.record.clone(), change.before.clone()),
            };
            let now_in = record
                .as_ref()
                .is_some_and(|r| self.admits(&def, &change.id, r, &self.auth));
            let was_in = before
                .as_ref()
                .is_some_and(|r| self.admits(&def, &change.id, r, &old_auth));
            let key = (change.collection.clone(), change.id.clone());
            if now_in || (was_in && record.is_none()) {
                out.push(self.render(&def, change));
            } else if was_in && gone.insert(key) {
                out.push(removed(change.pos(), &change.collection, &change.id));
            }
        }
        out.extend(left);
        out
    }

    /// The caller's `auth` as of `state`, when it differs from the current one (an
    /// index lookup or two: computed once per state). A change means a scan of the
    /// subscribed collections ([`View::entry`]): the caller runs that off the workers.
    pub fn auth_at(&mut self, state: &State) -> Option<Value> {
        if self.auth_seq == Some(state.seq()) {
            return None;
        }
        self.auth_seq = Some(state.seq());
        let caller = Caller::at(self.principal.clone(), &self.st, state);
        (caller.auth != self.auth).then_some(caller.auth)
    }

    fn since_ok(&self, pos: FeedPos) -> bool {
        self.spec
            .since
            .precedes(pos.seq, pos.index.unwrap_or(u32::MAX))
    }

    /// Records of the subscribed collections the view admitted with `old` auth and no
    /// longer admits (those this entry changed are judged as changes instead).
    fn left_view(
        &self,
        state: &State,
        old: &Value,
        touched: &HashSet<(&CollectionName, &RecordId)>,
    ) -> Vec<(CollectionName, RecordId)> {
        let mut out = Vec::new();
        for c in &self.spec.collections {
            let (Some(def), Some(coll)) = (state.definition(c), state.collection(c)) else {
                continue;
            };
            let ids: Box<dyn Iterator<Item = &RecordId>> = match &self.spec.record_id {
                Some(id) => Box::new(coll.docs.get(id).map(|_| id).into_iter()),
                None => Box::new(coll.docs.keys()),
            };
            for id in ids {
                if touched.contains(&(c, id)) {
                    continue;
                }
                let record = coll.docs.get(id).expect("listed").value();
                if self.admits(def, id, &record, old) && !self.admits(def, id, &record, &self.auth)
                {
                    out.push((c.clone(), id.clone()));
                }
            }
        }
        out
    }

    fn render(&self, def: &Compiled, change: &FeedChange) -> Message {
        let pos = change.pos();
        let mut data = json!({
            "id": pos.to_string(),
            "seq": change.seq.get(),
            "collection": change.collection.as_str(),
            "record_id": change.id.as_str(),
            "action": change.action,
        });
        let event = match &change.item {
            Some(item) => {
                // An item shows as item answers do: its secrets masked.
                let shown = item.item.clone().and_then(|mut v| {
                    render_item(def, &change.id, &item.path, &mut v, Secrets::Mask, None).ok()?;
                    Some(v)
                });
                data["item"] = json!({
                    "op": item.op,
                    "path": item.path(),
                    "item": shown,
                });
                match item.op {
                    ItemOp::Added => "item_added",
                    ItemOp::Updated => "item_updated",
                    ItemOp::Removed => "item_removed",
                }
            }
            None => {
                data["record"] = change
                    .record
                    .clone()
                    .and_then(|r| show(&self.st, def, &change.id, r, change.seq).ok())
                    .unwrap_or(Value::Null);
                action_name(&data["action"])
            }
        };
        Message::Event {
            id: pos,
            event,
            data,
        }
    }
}

fn action_name(action: &Value) -> &'static str {
    match action.as_str() {
        Some("create") => "create",
        Some("delete") => "delete",
        Some("restore") => "restore",
        Some("purge") => "purge",
        _ => "update",
    }
}

fn removed(pos: FeedPos, c: &CollectionName, id: &RecordId) -> Message {
    Message::Event {
        id: pos,
        event: "removed",
        data: json!({
            "id": pos.to_string(),
            "seq": pos.seq.get(),
            "collection": c.as_str(),
            "record_id": id.as_str(),
            "action": "removed",
        }),
    }
}
