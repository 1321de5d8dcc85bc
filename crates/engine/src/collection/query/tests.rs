//! The list semantics against a reference that parses and sorts everything.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, json};

use super::*;
use crate::canonical::{to_canonical_raw, to_canonical_string};

thread_local! {
    /// Forces the plan's choices: walk a sort index; look documents up one by one.
    pub(super) static FORCE: std::cell::Cell<(Option<bool>, Option<bool>)> =
        const { std::cell::Cell::new((None, None)) };
}
use crate::collection::Definition;
use crate::collection::integrity::Mode;
use crate::log::{Op, TxnRecord};
use crate::names::Seq;

/// The list as first written: parses every record, sorts them all with [`compare`].
/// An equality filter on an `index` field matches canonical JSON exactly once some
/// record has the field (what the index answered).
fn reference(
    state: &State,
    c: &CollectionName,
    query: &Query,
    vars: &[(&str, &Value)],
    visible: &dyn Fn(&Value) -> bool,
) -> Result<Page> {
    let (def, coll) = checked(state, c, query)?;
    let Some(coll) = coll else {
        return Ok(Page::empty(query));
    };
    let docs: Vec<(RecordId, Value)> = coll
        .docs
        .iter()
        .map(|(id, d)| (id.clone(), d.value()))
        .collect();
    let mut indexed = Vec::new();
    let mut rest = Vec::new();
    for (field, value) in &query.equals {
        if def.is_secret(field) {
            return Err(Error::invalid("filter", format!("{field} is secret")));
        }
        if def.def.index.contains(field) && docs.iter().any(|(_, v)| v.get(field).is_some()) {
            let mut forms = vec![to_canonical_string(value)];
            if let Value::String(s) = value
                && let Ok(parsed) = serde_json::from_str::<Value>(s)
                && !parsed.is_string()
            {
                forms.push(to_canonical_string(&parsed));
            }
            indexed.push((field, forms));
        } else {
            rest.push((field, value));
        }
    }
    let mut matched: Vec<(RecordId, Value)> = Vec::new();
    for (id, value) in docs {
        let live = super::super::keys::is_live(&value);
        let keep = match query.deleted {
            Deleted::Exclude => live,
            Deleted::Include => true,
            Deleted::Only => !live,
        };
        let in_index = indexed.iter().all(|(f, forms)| {
            value
                .get(f.as_str())
                .is_some_and(|v| forms.contains(&to_canonical_string(v)))
        });
        if !keep
            || !in_index
            || !rest
                .iter()
                .all(|(f, v)| loosely_equal(value.get(f.as_str()), v))
        {
            continue;
        }
        if !visible(&value) {
            continue;
        }
        if let Some(filter) = &query.filter {
            let mut scope = Vars::new().with("record", &value);
            for (name, v) in vars {
                scope = scope.with(name, v);
            }
            if !filter_matches(filter, &scope)? {
                continue;
            }
        }
        matched.push((id, value));
    }
    matched.sort_by(|(ia, a), (ib, b)| {
        for (field, desc) in &query.sort {
            let ord = compare(a.get(field), b.get(field));
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        ia.cmp(ib)
    });
    let total = matched.len();
    let start = (query.page - 1).saturating_mul(query.per_page);
    let items = matched
        .into_iter()
        .skip(start)
        .take(query.per_page)
        .map(|(id, value)| {
            let version = coll.docs.get(&id).map(|d| d.version).unwrap_or_default();
            render(Some(def), c, &id, value, version, Secrets::Omit, None)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        items,
        total,
        page: query.page,
        per_page: query.per_page,
    })
}

/// A total order on JSON for sorting: null < bool < number < string < array < object.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    let (a, b) = (a.unwrap_or(&Value::Null), b.unwrap_or(&Value::Null));
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ if rank(a) != rank(b) => rank(a).cmp(&rank(b)),
        _ => to_canonical_string(a).cmp(&to_canonical_string(b)),
    }
}

const ITEMS: &str = r#"
name = "items"
soft_delete = true
index = ["a", "b", "n", "s"]
secret = ["pw"]
schema = { type = "object" }
"#;

/// Fields records may have: `a`, `b`, `n`, `s` indexed (`n` is rarely set).
const FIELDS: [&str; 7] = ["a", "b", "c", "n", "num", "s", "pw"];

fn items() -> CollectionName {
    CollectionName::parse("items").unwrap()
}

fn txn(ops: Vec<Op>) -> TxnRecord {
    TxnRecord {
        actor: "test".into(),
        audit: Vec::new(),
        id: uuid::Uuid::nil(),
        ops,
        reads: Vec::new(),
        request_id: None,
        source: "test".into(),
        unaudited: None,
    }
}

fn put(c: &CollectionName, id: &str, doc: &Value) -> Op {
    Op::whole(
        c.clone(),
        RecordId::parse(id).unwrap(),
        Some(Arc::from(to_canonical_raw(doc))),
    )
}

/// What happens to record `i` after the creates.
#[derive(Debug, Clone)]
enum Change {
    Update(usize, Vec<(usize, Option<Value>)>),
    SoftDelete(usize),
    Restore(usize, bool),
    Purge(usize),
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0i64..4).prop_map(Value::from),
        prop::sample::select(vec![1.0f64, 2.5, -0.0, 0.0, 3.0, -1.5]).prop_map(Value::from),
        Just(json!(18446744073709551615u64)),
        Just(json!(18446744073709551614u64)),
        prop::sample::select(vec!["x", "y", "1", "2.5", "true", "null", "", "Ä", "a\"b"])
            .prop_map(Value::from),
        Just(json!([1, 2])),
        Just(json!(["x"])),
        Just(json!([])),
        Just(json!({"k": 1})),
        Just(json!({"j": [true]})),
    ]
}

fn fields() -> impl Strategy<Value = Vec<(usize, Option<Value>)>> {
    prop::collection::vec(
        (0..FIELDS.len(), prop::option::weighted(0.8, value())),
        0..6,
    )
}

fn build(records: &[Vec<(usize, Option<Value>)>], changes: &[Change]) -> State {
    let mut state = State::default();
    let mut seq = Seq::ZERO;
    let mut apply = |state: &mut State, ops: Vec<Op>| {
        seq = seq.next();
        state.apply_txn(&txn(ops), seq, Mode::Trust).unwrap();
    };
    let def = Definition::from_toml(ITEMS).unwrap();
    let definitions = CollectionName::definitions();
    apply(&mut state, vec![put(&definitions, "items", &def.to_json())]);
    let c = items();
    let mut docs: Vec<Option<Map<String, Value>>> = Vec::new();
    let mut ops = Vec::new();
    for (i, fields) in records.iter().enumerate() {
        let mut doc = Map::new();
        doc.insert("id".into(), json!(format!("r{i:02}")));
        doc.insert("deleted_at".into(), Value::Null);
        for (f, v) in fields {
            if let Some(v) = v {
                doc.insert(FIELDS[*f].into(), v.clone());
            }
        }
        ops.push(put(&c, &format!("r{i:02}"), &Value::Object(doc.clone())));
        docs.push(Some(doc));
        // A few transactions of a few records.
        if i % 3 == 2 {
            apply(&mut state, std::mem::take(&mut ops));
        }
    }
    apply(&mut state, ops);
    for change in changes {
        let (i, doc) = match change {
            Change::Update(i, _)
            | Change::SoftDelete(i)
            | Change::Restore(i, _)
            | Change::Purge(i) => (*i, docs.get_mut(*i).and_then(Option::as_mut)),
        };
        let Some(doc) = doc else { continue };
        let id = format!("r{i:02}");
        match change {
            Change::Update(_, fields) => {
                for (f, v) in fields {
                    match v {
                        Some(v) => doc.insert(FIELDS[*f].into(), v.clone()),
                        None => doc.remove(FIELDS[*f]),
                    };
                }
            }
            Change::SoftDelete(_) => {
                doc.insert("deleted_at".into(), json!("2024-01-01T00:00:00Z"));
            }
            Change::Restore(_, explicit) => {
                if *explicit {
                    doc.insert("deleted_at".into(), Value::Null);
                } else {
                    doc.remove("deleted_at");
                }
            }
            Change::Purge(_) => {
                docs[i] = None;
                apply(
                    &mut state,
                    vec![Op::whole(c.clone(), RecordId::parse(&id).unwrap(), None)],
                );
                continue;
            }
        }
        let doc = Value::Object(doc.clone());
        apply(&mut state, vec![put(&c, &id, &doc)]);
    }
    state
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0usize..30, fields()).prop_map(|(i, f)| Change::Update(i, f)),
        3 => (0usize..30).prop_map(Change::SoftDelete),
        1 => (0usize..30, any::<bool>()).prop_map(|(i, e)| Change::Restore(i, e)),
        1 => (0usize..30).prop_map(Change::Purge),
    ]
}

const FILTERS: &[&str] = &[
    r#"record.a == "x""#,
    r#"record.a == "x" && record.num >= 1"#,
    r#"record.b == true && has(record.c)"#,
    r#""y" == record.s && record.a != null"#,
    r#"record.n == null"#,
    r#"record.a == "1" || record.c == 1"#,
    "record.num >= 1",
    "has(record.c) && record.c == 1",
    "size(record) > 3",
    "record.a == record.b",
    "[1, 2].exists(record, record == 1)",
    r#"record.s == "Ä" && record.b == "x""#,
    "record.num",
    r#"record.pw == "p""#,
    r#"record.a == auth.want"#,
    "record.num >= 1 && record.num < 2.5",
    "1 < record.num && record.a != 1",
    "record.num == 1 && record.b == record.b",
    "record.num != 1.0 && record.a <= 'x'",
    "record.num != 1",
    "record.a > 'x' || record.a < 'x'",
    "record.b != true && record.c == null",
    "record.num > 18446744073709551614u",
    "record.num >= 18446744073709551615u && record.num <= 18446744073709551615.0",
    "record.num >= -1 && record.num <= 2",
    "-1.5 == record.num",
    "record.a == null && record.b != null",
    "record.s >= 'x' && has(record.a)",
    "record.b == false",
    "record.num < 3 && record.num > 0.5 && record.a != 'y'",
];

const SORTABLE: [&str; 9] = ["a", "b", "c", "n", "num", "s", "id", "zz", "pw"];

fn query() -> impl Strategy<Value = Query> {
    let equals = prop::collection::vec(
        (
            prop::sample::select(vec!["a", "b", "c", "n", "s", "num", "zz", "pw"]),
            prop_oneof![
                value(),
                prop::sample::select(vec![
                    "1",
                    "2.5",
                    "true",
                    "null",
                    "x",
                    "[1,2]",
                    "{\"k\":1}",
                    "3.0"
                ])
                .prop_map(Value::from),
            ],
        ),
        0..3,
    );
    let sort = prop::collection::vec(
        (prop::sample::select(SORTABLE.to_vec()), any::<bool>()),
        0..3,
    );
    let filter = prop::option::weighted(0.4, prop::sample::select(FILTERS.to_vec()));
    let deleted = prop::sample::select(vec![Deleted::Exclude, Deleted::Include, Deleted::Only]);
    (
        equals,
        filter,
        sort,
        1usize..5,
        prop_oneof![1usize..8, Just(50usize)],
        deleted,
    )
        .prop_map(|(equals, filter, sort, page, per_page, deleted)| Query {
            equals: equals
                .into_iter()
                .map(|(f, v)| (f.to_string(), v))
                .collect(),
            filter: filter.map(|f| Expr::compile(f).unwrap()),
            sort: sort.into_iter().map(|(f, d)| (f.to_string(), d)).collect(),
            page,
            per_page,
            deleted,
            budget: None,
        })
}

fn same(fast: Result<Page>, slow: Result<Page>) -> std::result::Result<(), TestCaseError> {
    match (fast, slow) {
        (Ok(fast), Ok(slow)) => {
            prop_assert_eq!(fast.total, slow.total, "total");
            prop_assert_eq!(fast.items, slow.items);
        }
        (Err(_), Err(_)) => {}
        (fast, slow) => prop_assert!(false, "fast {fast:?}, reference {slow:?}"),
    }
    Ok(())
}

/// Access rules for [`list_under_rule`]: ones the indexes bound (`a`, `s` are indexed),
/// ones that hold for a role, and ones only records can decide.
const RULES: [&str; 11] = [
    r#"record.a == auth.want && record.c == 1"#,
    r#"auth.role != "manager" && has(record.b) && record.b == "x" || record.a == auth.want && has(record.a)"#,
    r#"auth.role == "manager" || record.a == auth.want"#,
    r#"record.s in auth.list"#,
    r#"auth.role == "owner" && record.a in auth.list"#,
    r#"auth.role == "manager" || (auth.role == "staff" && has(record.b) && record.b == auth.want) || (auth.role == "owner" && record.s in auth.list)"#,
    r#"record.c == 1"#,
    r#"auth.role == "manager""#,
    r#"false"#,
    r#"record.a == auth.missing || auth.nope"#,
    r#"auth.role == "owner" && record.a == auth.want || record.c == "x""#,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn lists_match_the_reference(
        records in prop::collection::vec(fields(), 0..30),
        changes in prop::collection::vec(change(), 0..12),
        queries in prop::collection::vec(query(), 1..12),
    ) {
        let state = build(&records, &changes);
        let c = items();
        let auth = json!({"want": "x"});
        let vars: &[(&str, &Value)] = &[("auth", &auth)];
        let everyone = |_: &Value| true;
        let some = |v: &Value| v.get("c").is_none_or(|c| c != &json!(1));
        let auths = [
            json!({"role": "manager", "want": "x", "list": ["x", "1", true]}),
            json!({"role": "owner", "want": "y", "list": ["y", "Ä", null]}),
            json!({"role": "staff", "want": 1, "list": [1, "x"]}),
        ];
        let rules: Vec<Expr> = RULES.iter().map(|r| Expr::compile(r).unwrap()).collect();
        for q in &queries {
            for force in [(None, None), (Some(true), Some(true)), (Some(false), Some(false))] {
                FORCE.set(force);
                let fast = list_with(&state, &c, q, vars, None, None);
                FORCE.set((None, None));
                same(fast, reference(&state, &c, q, vars, &everyone))?;
            }
            let fast = list(&state, &c, q, vars, &everyone, None);
            same(fast, reference(&state, &c, q, vars, &everyone))?;
            let fast = list(&state, &c, q, vars, &some, None);
            same(fast, reference(&state, &c, q, vars, &some))?;
            for auth in &auths {
                let vars: &[(&str, &Value)] = &[("auth", auth)];
                for rule in &rules {
                    let decide = |record: &Value| {
                        rule.eval_bool(&Vars::new().with("auth", auth).with("record", record))
                            .unwrap_or(false)
                    };
                    let fast = list_under_rule(&state, &c, q, vars, Some(rule), None);
                    same(fast, reference(&state, &c, q, vars, &decide))?;
                }
            }
        }
    }

    #[test]
    fn sort_keys_order_like_values(a in prop::option::of(value()), b in prop::option::of(value())) {
        let (ka, kb) = (SortKey::of(a.as_ref()), SortKey::of(b.as_ref()));
        prop_assert_eq!(ka.order(&kb), compare(a.as_ref(), b.as_ref()));
        let canonical = |v: &Option<Value>| v.as_ref().map(to_canonical_string);
        prop_assert_eq!(ka == kb, canonical(&a) == canonical(&b));
        if ka.order(&kb) != Ordering::Equal {
            prop_assert_eq!(ka.cmp(&kb), ka.order(&kb));
        }
    }
}

/// The caller's access is decided before the filter runs, so the filter's errors are
/// about records the caller may see: there, `1/0`, a result that is not a bool and a
/// bad regex fail the list, while a missing field only skips the record.
#[test]
fn filter_errors_after_access() {
    let records: Vec<_> = (0..10).map(|i| vec![(4, Some(json!(i)))]).collect();
    let state = build(&records, &[]);
    let c = items();
    let run = |filter: &str, visible: &dyn Fn(&Value) -> bool| {
        let q = Query {
            filter: Some(Expr::compile(filter).unwrap()),
            ..Query::default()
        };
        list(&state, &c, &q, &[], visible, None)
            .map(|page| page.total)
            .map_err(|e| e.code().as_str())
    };
    let all = |_: &Value| true;
    let none = |_: &Value| false;
    let positive = |v: &Value| v["num"].as_i64().is_some_and(|n| n > 0);
    assert_eq!(run("10 / record.num > 1", &all), Err("invalid_filter"));
    assert_eq!(run("10 / record.num > 1", &positive), Ok(5));
    assert_eq!(run("record.num", &all), Err("invalid_filter"));
    assert_eq!(run("record.num", &none), Ok(0));
    assert_eq!(run("record.zz > 1", &all), Ok(0));
    assert_eq!(run("record.zz > 1 || record.num == 3", &all), Ok(1));
    assert_eq!(run("string(record.num).matches('^[1-3]$')", &all), Ok(3));
    assert_eq!(
        run("string(record.num).matches('(' + 'x')", &all),
        Err("invalid_filter")
    );
    let err = list_with(
        &state,
        &c,
        &Query {
            filter: Some(Expr::compile("1 / 0 == 1").unwrap()),
            ..Query::default()
        },
        &[],
        None,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("Division by zero"), "{err}");
}

#[test]
fn a_spent_budget_stops_the_list() {
    let records = vec![vec![(4, Some(json!(1)))]; 200];
    let state = build(&records, &[]);
    let c = items();
    let spent = Query {
        filter: Some(Expr::compile("record.num + 1 == 2").unwrap()),
        budget: Some(Duration::ZERO),
        ..Query::default()
    };
    let err = list_with(&state, &c, &spent, &[], None, None).unwrap_err();
    assert_eq!(err.code(), "query_too_costly");
    assert!(err.to_string().contains("(a, b, n, s)"), "{err}");
    let ample = Query {
        budget: Some(Duration::from_secs(3600)),
        ..spent.clone()
    };
    assert_eq!(
        list_with(&state, &c, &ample, &[], None, None)
            .unwrap()
            .total,
        200
    );
    // What the indexes answer alone evaluates nothing.
    let indexed = Query {
        filter: None,
        ..spent
    };
    assert_eq!(
        list_with(&state, &c, &indexed, &[], None, None)
            .unwrap()
            .total,
        200
    );
}

/// Where a comparison claims to know CEL's verdict, it agrees with CEL.
#[test]
fn comparisons_agree_with_cel() {
    let values = [
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(1),
        json!(2),
        json!(-1),
        json!(1.0),
        json!(2.5),
        json!(-0.0),
        json!(9007199254740993u64),
        json!(9223372036854775807i64),
        json!(9223372036854775808u64),
        json!(18446744073709551615u64),
        json!(""),
        json!("x"),
        json!("y"),
        json!("é"),
        json!("1"),
        json!([1]),
        json!({"x": 1}),
    ];
    let literals = [
        "null",
        "true",
        "false",
        "0",
        "1",
        "2",
        "-1",
        "1.0",
        "2.5",
        "-0.0",
        "9007199254740992.0",
        "9223372036854775807",
        "9223372036854775808u",
        "18446744073709551615u",
        "18446744073709551615.0",
        "1u",
        "''",
        "'x'",
        "'é'",
        "'1'",
    ];
    let ops = ["==", "!=", "<", "<=", ">", ">="];
    let mut settled = 0;
    for literal in literals {
        for op in ops {
            for source in [
                format!("record.f {op} {literal}"),
                format!("{literal} {op} record.f"),
            ] {
                let filter = Expr::compile(&source).unwrap();
                let shape = FilterShape::of(&filter, &[]);
                assert!(shape.complete, "{source}");
                for value in values.iter().map(Some).chain([None]) {
                    let record = match value {
                        Some(v) => json!({"f": v}),
                        None => json!({}),
                    };
                    let cel = filter.eval_bool(&Vars::new().with("record", &record));
                    let fields = ["f"];
                    let ours = shape.verdict(&Record::Fields(&fields, vec![value.cloned()]));
                    if let Some(ours) = ours {
                        settled += 1;
                        assert_eq!(ours, cel == Ok(true), "{source} on {value:?}: CEL {cel:?}");
                    }
                }
            }
        }
    }
    assert!(settled > 1000, "{settled}");
}

#[test]
fn filter_shapes() {
    let shape = |src: &str| FilterShape::of(&Expr::compile(src).unwrap(), &[]);
    let s = shape(r#"record.rooms >= 5 && record.city == "c3""#);
    let equals: Vec<_> = s.equals().collect();
    assert_eq!(equals, [("city", json!("c3"))]);
    assert!(s.complete && s.compares.len() == 2);
    let fields: Vec<_> = s.fields.unwrap().into_iter().collect();
    assert_eq!(fields, ["city", "rooms"]);
    let s = shape(r#"has(record.x) || record.y.z == true"#);
    assert!(s.compares.is_empty() && !s.complete);
    let fields: Vec<_> = s.fields.unwrap().into_iter().collect();
    assert_eq!(fields, ["x", "y"]);
    let s = shape("5 <= record.rooms && record.a.b == 1 && record.c != null");
    assert_eq!(s.compares.len(), 2);
    assert_eq!(
        (s.compares[0].field.as_str(), s.compares[0].op),
        ("rooms", super::Op::Ge)
    );
    assert!(!s.complete && s.equals().next().is_none());
    assert!(shape("size(record) > 1").fields.is_none());
    assert!(shape(r#"record["a"] == 1"#).fields.is_none());
    // A leading dot names the same variable.
    let dotted = shape(".record.a == 1 && .record.b == 'x'").fields;
    assert!(dotted.is_none_or(|f| f.len() == 2));
    let auth = json!({});
    let filter = Expr::compile("record.a == 'x'").unwrap();
    let s = FilterShape::of(&filter, &[("record", &auth)]);
    assert!(s.fields.is_none() && s.compares.is_empty() && !s.complete);
}

#[test]
fn picks_top_level_fields() {
    let doc = |v: Value| Doc::whole(Seq(1), Arc::from(to_canonical_raw(&v)));
    let object = doc(json!({"a": {"x": [1]}, "b": "t", "c\"d": 2, "e": null}));
    let fields = ["a", "c\"d", "e", "z"];
    let record = Record::of(object.body(), &fields, false);
    assert!(matches!(record, Record::Fields(..)));
    assert_eq!(record.get("a"), Some(&json!({"x": [1]})));
    assert_eq!(record.get("e"), Some(&Value::Null));
    assert_eq!(record.get("z"), None);
    assert_eq!(record.get("b"), None, "not read");
    assert_eq!(
        *record.object(),
        json!({"a": {"x": [1]}, "c\"d": 2, "e": null})
    );
    let array = doc(json!([1, 2]));
    let record = Record::of(array.body(), &fields, false);
    assert_eq!(*record.object(), json!([1, 2]));
}
