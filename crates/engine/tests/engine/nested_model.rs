//! Property test of nested item operations (entry format 2): random sequences of record
//! and item operations, two levels deep, with retention by count and by age, checked
//! against a reference model that applies the same operations to whole JSON documents.
//! After every operation the engine's record equals the model's; at the end a fresh
//! database replaying the same log holds the same state, `as_of` answers every earlier
//! position with the model's document of that time, and `rebuild` writes the same view.
//!
//! 64 cases by default; `BUCKETBASE_PROPTEST_CASES=<n>` runs more.

use std::sync::Arc;

use bucketbase_engine::collection::Definition;
use bucketbase_engine::collection::audit;
use bucketbase_engine::collection::ops::NestedPath;
use bucketbase_engine::materialize::rebuild;
use bucketbase_engine::{Clock, Database, DbOptions, ManualClock, RecordId, Seq, StoreUrl};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::{coll, meta};

const FLOWS: &str = r#"
name = "flows"
soft_delete = true
[nested.executions]
max_items = 4
[nested.executions.nested.logs]
max_items = 3
max_age = "1h"
"#;

#[derive(Debug, Clone)]
enum Step {
    AppendExecution(u8),
    AppendLog(usize, u8),
    PatchExecution(usize, u8),
    PatchLog(usize, usize, u8),
    RemoveExecution(usize),
    RemoveLog(usize, usize),
    Rename(u8),
    DeleteOrRestore,
    Tick(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => any::<u8>().prop_map(Step::AppendExecution),
        6 => (any::<usize>(), any::<u8>()).prop_map(|(e, v)| Step::AppendLog(e, v)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(e, v)| Step::PatchExecution(e, v)),
        2 => (any::<usize>(), any::<usize>(), any::<u8>()).prop_map(|(e, l, v)| Step::PatchLog(e, l, v)),
        1 => any::<usize>().prop_map(Step::RemoveExecution),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(e, l)| Step::RemoveLog(e, l)),
        1 => any::<u8>().prop_map(Step::Rename),
        1 => Just(Step::DeleteOrRestore),
        2 => (1u16..50).prop_map(Step::Tick),
    ]
}

/// The reference: the record as a whole JSON document, changed the obvious way.
struct Model {
    doc: Value,
    clock: Arc<ManualClock>,
}

impl Model {
    fn now(&self) -> String {
        self.clock
            .now()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    fn live(&self) -> bool {
        self.doc["deleted_at"].is_null()
    }

    fn touch(&mut self, by: &str) {
        self.doc["updated_at"] = json!(self.now());
        self.doc["updated_by"] = json!(by);
    }

    fn executions(&mut self) -> &mut Vec<Value> {
        if !self.doc["executions"].is_array() {
            self.doc["executions"] = json!([]);
        }
        self.doc["executions"].as_array_mut().unwrap()
    }

    fn ids(items: &Value) -> Vec<String> {
        items
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| i["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Retention of one array, as the definition says, after an append.
    fn retain(&mut self, items: &mut Vec<Value>, max: usize, max_age: Option<TimeDelta>) {
        let now: DateTime<Utc> = self.clock.now();
        let over = items.len().saturating_sub(max);
        let expired = max_age.map_or(0, |age| {
            items
                .iter()
                .take_while(|i| {
                    let at: DateTime<Utc> = i["created_at"].as_str().unwrap().parse().unwrap();
                    at < now - age
                })
                .count()
        });
        let prune = over.max(expired);
        if prune > 0 {
            items.drain(..prune);
            self.touch("system");
        }
    }
}

fn options(clock: Arc<ManualClock>) -> DbOptions {
    DbOptions {
        clock,
        materialize: false,
        checkpoint_every: 0,
        ..DbOptions::default()
    }
}

fn path(segments: &[&str]) -> NestedPath {
    NestedPath::parse(segments.iter().map(|s| s.to_string()).collect()).unwrap()
}

async fn run(steps: Vec<Step>) {
    let store = StoreUrl::Memory.build().unwrap();
    let clock = Arc::new(ManualClock::new("2026-05-01T10:00:00Z".parse().unwrap()));
    let db = Database::open(store.clone(), options(clock.clone()))
        .await
        .unwrap();
    db.define_all(&meta(), &[Definition::from_toml(FLOWS).unwrap()])
        .await
        .unwrap();
    let flows = coll("flows");
    let (id, record): (RecordId, Value) = db
        .transact(&meta(), |tx| tx.create(&flows, json!({"name": "f"})))
        .await
        .unwrap()
        .value;
    let mut model = Model {
        doc: record,
        clock: clock.clone(),
    };
    let mut history: Vec<(Seq, Value)> = vec![(db.snapshot().seq(), model.doc.clone())];
    for step in steps {
        let executions = Model::ids(&model.doc["executions"]);
        let pick = |i: usize, of: &[String]| (!of.is_empty()).then(|| of[i % of.len()].clone());
        let logs_of = |model: &Model, e: &str| -> Vec<String> {
            let ex = model.doc["executions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["id"] == e)
                .unwrap();
            Model::ids(&ex["logs"])
        };
        let live = model.live();
        let outcome = match step {
            Step::Tick(minutes) => {
                clock.advance(TimeDelta::minutes(minutes.into()));
                continue;
            }
            Step::AppendExecution(v) => {
                let got = db
                    .transact(&meta(), |tx| {
                        tx.nested_append_at(&flows, &id, &path(&["executions"]), json!({"v": v}))
                    })
                    .await;
                got.map(|c| {
                    model.executions().push(c.value);
                    model.touch("tester");
                    let mut items = std::mem::take(model.executions());
                    model.retain(&mut items, 4, None);
                    *model.executions() = items;
                })
            }
            Step::AppendLog(e, v) => {
                let Some(e) = pick(e, &executions) else {
                    continue;
                };
                let logs = path(&["executions", &e, "logs"]);
                let got = db
                    .transact(&meta(), |tx| {
                        tx.nested_append_at(&flows, &id, &logs, json!({"v": v}))
                    })
                    .await;
                got.map(|c| {
                    let at = executions.iter().position(|x| *x == e).unwrap();
                    let ex = &mut model.executions()[at];
                    if !ex["logs"].is_array() {
                        ex["logs"] = json!([]);
                    }
                    let mut items = std::mem::take(ex["logs"].as_array_mut().unwrap());
                    items.push(c.value);
                    model.touch("tester");
                    model.retain(&mut items, 3, Some(TimeDelta::hours(1)));
                    model.executions()[at]["logs"] = json!(items);
                })
            }
            Step::PatchExecution(e, v) => {
                let Some(e) = pick(e, &executions) else {
                    continue;
                };
                let got = db
                    .transact(&meta(), |tx| {
                        tx.nested_patch_at(
                            &flows,
                            &id,
                            &path(&["executions", &e]),
                            &json!({"v": v}),
                        )
                    })
                    .await;
                got.map(|_| {
                    let now = model.now();
                    let at = executions.iter().position(|x| *x == e).unwrap();
                    let ex = &mut model.executions()[at];
                    ex["v"] = json!(v);
                    ex["updated_at"] = json!(now);
                    model.touch("tester");
                })
            }
            Step::PatchLog(e, l, v) => {
                let Some(e) = pick(e, &executions) else {
                    continue;
                };
                let Some(l) = pick(l, &logs_of(&model, &e)) else {
                    continue;
                };
                let p = path(&["executions", &e, "logs", &l]);
                let got = db
                    .transact(&meta(), |tx| {
                        tx.nested_patch_at(&flows, &id, &p, &json!({"v": v}))
                    })
                    .await;
                got.map(|_| {
                    let now = model.now();
                    let at = executions.iter().position(|x| *x == e).unwrap();
                    let logs = model.executions()[at]["logs"].as_array_mut().unwrap();
                    let log = logs.iter_mut().find(|x| x["id"] == l).unwrap();
                    log["v"] = json!(v);
                    log["updated_at"] = json!(now);
                    model.touch("tester");
                })
            }
            Step::RemoveExecution(e) => {
                let Some(e) = pick(e, &executions) else {
                    continue;
                };
                let got = db
                    .transact(&meta(), |tx| {
                        tx.nested_remove_at(&flows, &id, &path(&["executions", &e]))
                    })
                    .await;
                got.map(|_| {
                    model.executions().retain(|x| x["id"] != e);
                    model.touch("tester");
                })
            }
            Step::RemoveLog(e, l) => {
                let Some(e) = pick(e, &executions) else {
                    continue;
                };
                let Some(l) = pick(l, &logs_of(&model, &e)) else {
                    continue;
                };
                let p = path(&["executions", &e, "logs", &l]);
                let got = db
                    .transact(&meta(), |tx| tx.nested_remove_at(&flows, &id, &p))
                    .await;
                got.map(|_| {
                    let at = executions.iter().position(|x| *x == e).unwrap();
                    let logs = model.executions()[at]["logs"].as_array_mut().unwrap();
                    logs.retain(|x| x["id"] != l);
                    model.touch("tester");
                })
            }
            Step::Rename(v) => {
                let got = db
                    .transact(&meta(), |tx| {
                        tx.update(&flows, &id, &json!({"name": format!("f{v}")}), None)
                    })
                    .await;
                got.map(|_| {
                    model.doc["name"] = json!(format!("f{v}"));
                    model.touch("tester");
                })
            }
            Step::DeleteOrRestore if live => db
                .transact(&meta(), |tx| tx.delete(&flows, &id, None))
                .await
                .map(|_| {
                    model.doc["deleted_at"] = json!(model.now());
                    model.doc["deleted_by"] = json!("tester");
                    model.touch("tester");
                }),
            Step::DeleteOrRestore => db
                .transact(&meta(), |tx| tx.restore(&flows, &id, None))
                .await
                .map(|_| {
                    model.doc["deleted_at"] = Value::Null;
                    model.doc["deleted_by"] = Value::Null;
                    model.touch("tester");
                }),
        };
        // Item operations on a deleted record are refused; nothing else is.
        assert_eq!(
            outcome.is_ok(),
            live || matches!(step, Step::DeleteOrRestore),
            "{step:?}: {outcome:?}"
        );
        let engine = db.snapshot().get(&flows, &id).unwrap().value();
        assert_eq!(engine, model.doc, "after {step:?}");
        if outcome.is_ok() {
            history.push((db.snapshot().seq(), model.doc.clone()));
        }
    }

    let want: Vec<_> = history
        .iter()
        .map(|(seq, _)| (flows.clone(), id.clone(), *seq))
        .collect();
    let answers = audit::as_of_many(db.store(), &want).await.unwrap();
    for ((seq, doc), got) in history.iter().zip(answers) {
        assert_eq!(got, Some((*seq, doc.clone())), "as_of {seq}");
    }
    let state = db.snapshot();
    db.close().await;
    let replayed = Database::open(store, options(clock)).await.unwrap();
    let again = replayed.snapshot();
    assert_eq!(again.seq(), state.seq());
    assert_eq!(again.get(&flows, &id).unwrap().value(), model.doc);
    let (one, two) = (
        StoreUrl::Memory.build().unwrap(),
        StoreUrl::Memory.build().unwrap(),
    );
    rebuild(&one, &state, &|_| {}).await.unwrap();
    rebuild(&two, &again, &|_| {}).await.unwrap();
    assert_eq!(view_files(&one).await, view_files(&two).await);
    replayed.close().await;
}

async fn view_files(store: &bucketbase_engine::DynStore) -> Vec<(String, Vec<u8>)> {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let mut metas: Vec<_> = store.list(None).try_collect().await.unwrap();
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    let mut out = Vec::new();
    for m in metas {
        let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        out.push((m.location.to_string(), bytes.to_vec()));
    }
    out
}

fn cases() -> u32 {
    std::env::var("BUCKETBASE_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn item_operations_match_whole_documents(steps in proptest::collection::vec(step(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(steps));
    }
}
