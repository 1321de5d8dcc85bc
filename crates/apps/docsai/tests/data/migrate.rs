//! The migration reader on a database made by real Django (tests/django: the seed's
//! models, migrated and filled by Django itself in the repository's .venv). Without
//! Django installed these tests say so and pass, except under `CI=true`, where Django
//! must be there (scripts/test installs it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bucketbase_docsai::definitions::definitions;
use bucketbase_docsai::migrate::{
    DOCSAI_MAPPING, Document, ErrorKind, Mapping, ReadOptions, Source, TableStats,
};
use serde_json::Value;

/// Makes the fixture database in `dir` with Django.
fn make_django_db(py: &Path, dir: &Path) -> PathBuf {
    let db = dir.join("db.sqlite3");
    let project = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/django");
    bucketbase_testkit::django::make_db(py, &project, &db);
    db
}

fn django_python() -> Option<PathBuf> {
    bucketbase_testkit::django::python()
}

/// The Django-made database (made once per test run), or `None` to skip.
fn django_db() -> Option<&'static Path> {
    static DB: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    DB.get_or_init(|| {
        let py = django_python()?;
        let dir = tempfile::tempdir().unwrap();
        let db = make_django_db(&py, dir.path());
        Some((dir, db))
    })
    .as_ref()
    .map(|(_, db)| db.as_path())
}

fn mapping() -> Mapping {
    Mapping::from_toml(DOCSAI_MAPPING).expect("the shipped mapping parses")
}

/// Reads every table: documents by collection, and the stats.
fn read_all(
    db: &Path,
    options: &ReadOptions,
) -> (BTreeMap<String, Vec<Document>>, Vec<TableStats>) {
    let source = Source::open(db).unwrap();
    let m = mapping();
    let mut docs: BTreeMap<String, Vec<Document>> = BTreeMap::new();
    let mut stats = Vec::new();
    for t in &m.tables {
        let s = source
            .read_table(&m, t, options, |d| {
                docs.entry(d.collection.clone()).or_default().push(d);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", t.table));
        stats.push(s);
    }
    (docs, stats)
}

fn sql_count(db: &Path, sql: &str) -> u64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64
}

#[test]
fn the_mapping_covers_every_table_and_column_of_the_django_schema() {
    let Some(db) = django_db() else { return };
    let report = Source::open(db).unwrap().check(&mapping()).unwrap();
    assert_eq!(report.unmapped_tables, Vec::<String>::new());
    assert_eq!(report.unmapped_columns, BTreeMap::new());
}

/// Every field the mapping writes is declared by the collection (or nested array) it
/// writes into, two levels deep (the executions' logs).
#[test]
fn the_mapping_writes_only_declared_fields() {
    let defs: BTreeMap<String, Value> = definitions()
        .into_iter()
        .map(|d| (d.name.clone(), d.to_json()))
        .collect();
    let props = |schema: &Value| -> BTreeSet<String> {
        schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let field =
        |c: &str, s: &bucketbase_docsai::migrate::mapping::ColumnSpec| s.resolved(c).field.unwrap();
    for t in &mapping().tables {
        let def = &defs[&t.collection];
        let own = props(&def["schema"]);
        for (c, s) in &t.columns {
            assert!(own.contains(&field(c, s)), "{}.{c}", t.table);
        }
        for m in &t.many {
            assert!(own.contains(&m.field), "{}", m.field);
        }
        for n in &t.nested {
            let item = props(&def["nested"][&n.field]["schema"]);
            for (c, s) in &n.columns {
                assert!(item.contains(&field(c, s)), "{}.{c}", n.table);
            }
            for g in &n.nested {
                let sub = props(&def["nested"][&n.field]["nested"][&g.field]["schema"]);
                for (c, s) in &g.columns {
                    assert!(sub.contains(&field(c, s)), "{}.{c}", g.table);
                }
            }
        }
    }
}

#[test]
fn counts_nesting_and_validity() {
    let Some(db) = django_db() else { return };
    let (docs, stats) = read_all(db, &ReadOptions::default());
    let m = mapping();
    for (t, s) in m.tables.iter().zip(&stats) {
        assert_eq!(
            s.records,
            sql_count(db, &format!("SELECT count(*) FROM {}", t.table)),
            "{}",
            t.table
        );
        for n in &t.nested {
            let rows = sql_count(db, &format!("SELECT count(*) FROM {}", n.table));
            assert_eq!(s.items[&n.table], rows, "{}", n.table);
            for g in &n.nested {
                assert_eq!(
                    s.items[&g.table],
                    sql_count(db, &format!("SELECT count(*) FROM {}", g.table))
                );
            }
        }
        assert_eq!(s.orphans, BTreeMap::new(), "{}", t.table);
    }
    // Nesting, two levels: each workflow has 4 nodes, 3 connections and 5 executions,
    // each with 4 log lines.
    for w in &docs["workflows"] {
        let r = &w.record;
        assert_eq!(r["nodes"].as_array().unwrap().len(), 4);
        assert_eq!(r["connections"].as_array().unwrap().len(), 3);
        let execs = r["executions"].as_array().unwrap();
        assert_eq!(execs.len(), 5);
        for e in execs {
            assert_eq!(e["logs"].as_array().unwrap().len(), 4);
        }
    }
    // Every document fits its collection's definition (the logs: their own schema).
    let next = definitions()
        .into_iter()
        .find(|d| d.name == "workflows")
        .unwrap()
        .to_json();
    let logs = jsonschema::options()
        .should_validate_formats(true)
        .build(&next["nested"]["executions"]["nested"]["logs"]["schema"])
        .unwrap();
    for def in definitions() {
        let compiled = def.compile().unwrap();
        for d in docs.get(&def.name).into_iter().flatten() {
            let mut record = Value::Object(d.record.clone());
            for e in record
                .get_mut("executions")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                for log in e
                    .as_object_mut()
                    .unwrap()
                    .remove("logs")
                    .unwrap()
                    .as_array()
                    .unwrap()
                {
                    let mut log = log.clone();
                    log.as_object_mut().unwrap().retain(|k, _| k != "id");
                    assert!(logs.is_valid(&log), "{log}");
                }
            }
            compiled
                .validate_fields(&record)
                .unwrap_or_else(|e| panic!("{} {}: {e:?}", def.name, d.key));
        }
    }
}

fn by_key<'a>(docs: &'a BTreeMap<String, Vec<Document>>, c: &str, key: &str) -> &'a Document {
    docs[c].iter().find(|d| d.key == key).unwrap()
}

#[test]
fn references_and_many_to_many_become_translated_ids() {
    let Some(db) = django_db() else { return };
    let (docs, _) = read_all(db, &ReadOptions::default());
    let c = rusqlite::Connection::open(db).unwrap();
    // request_history.collection_id -> the api_collections record's id.
    let mut stmt = c
        .prepare("SELECT id, collection_id FROM docsai_requesthistory")
        .unwrap();
    let rows: Vec<(i64, Option<i64>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(rows.iter().any(|r| r.1.is_some()) && rows.iter().any(|r| r.1.is_none()));
    for (id, coll) in rows {
        let h = by_key(&docs, "request_history", &id.to_string());
        match coll {
            Some(cid) => assert_eq!(
                h.record["collection_id"],
                by_key(&docs, "api_collections", &cid.to_string())
                    .id
                    .as_str()
            ),
            None => assert!(!h.record.contains_key("collection_id")),
        }
    }
    // A mock's request is an item of the same record.
    for a in &docs["api_collections"] {
        let ids: BTreeSet<&str> = a.record["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        for m in a.record["mocks"].as_array().unwrap() {
            assert!(ids.contains(m["request_id"].as_str().unwrap()));
        }
    }
    // A node's credential is a credentials record.
    let creds: BTreeSet<&str> = docs["credentials"].iter().map(|d| d.id.as_str()).collect();
    let linked: Vec<&Value> = docs["workflows"]
        .iter()
        .flat_map(|w| w.record["nodes"].as_array().unwrap())
        .filter_map(|n| n.get("credential_id"))
        .collect();
    assert!(!linked.is_empty());
    assert!(linked.iter().all(|c| creds.contains(c.as_str().unwrap())));
    // Roadmap dependencies: one id per through-table row, each a roadmap item.
    let items: BTreeSet<&str> = docs["roadmap_items"]
        .iter()
        .map(|d| d.id.as_str())
        .collect();
    let deps: Vec<&Value> = docs["roadmap_items"]
        .iter()
        .flat_map(|d| d.record["dependencies"].as_array().unwrap())
        .collect();
    assert_eq!(
        deps.len() as u64,
        sql_count(db, "SELECT count(*) FROM docsai_roadmapitem_dependencies")
    );
    assert!(deps.iter().all(|d| items.contains(d.as_str().unwrap())));
}

#[test]
fn casts_of_django_storage_forms() {
    let Some(db) = django_db() else { return };
    let (docs, _) = read_all(db, &ReadOptions::default());
    let k = by_key(&docs, "knowledge", "1");
    assert!(k.record["is_published"].is_boolean());
    assert!(k.record["metadata"]["nested"]["ok"].as_bool().unwrap());
    assert!(k.record["tags"].is_array());
    assert!(k.record.contains_key("view_count") && !k.record.contains_key("views"));
    let created = k.created_at.as_deref().unwrap();
    assert!(created.ends_with('Z') && created.contains('T'), "{created}");
    assert!(by_key(&docs, "ai_sessions", "1").record["total_cost"].is_number());
    let e = &by_key(&docs, "workflows", "1").record["executions"][0];
    let ext = e["external_id"].as_str().unwrap();
    assert_eq!((ext.len(), ext.matches('-').count()), (36, 4));
    let vars = by_key(&docs, "environments", "1").record["variables"]
        .as_array()
        .unwrap();
    assert_eq!(vars[0]["type"], "secret");
    assert_eq!(vars[1]["type"], "default");
    assert_eq!(
        by_key(&docs, "api_collections", "1").record["requests"][1]["folder_path"],
        serde_json::json!(["Users", "Admin"])
    );
}

#[test]
fn owners_come_from_the_profile_table_or_the_owner_option() {
    let Some(db) = django_db() else { return };
    let (docs, stats) = read_all(db, &ReadOptions::default());
    let legacy = "(SELECT id FROM auth_user WHERE username = 'legacy')";
    let unowned: u64 = mapping()
        .tables
        .iter()
        .map(|t| {
            sql_count(
                db,
                &format!(
                    "SELECT count(*) FROM {} WHERE created_by_id = {legacy}",
                    t.table
                ),
            )
        })
        .sum();
    assert!(unowned > 0);
    assert_eq!(stats.iter().map(|s| s.unowned).sum::<u64>(), unowned);
    let uuids: BTreeSet<String> = {
        let c = rusqlite::Connection::open(db).unwrap();
        let mut s = c.prepare("SELECT uuid FROM docsai_userprofile").unwrap();
        s.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|u| {
                uuid::Uuid::parse_str(&u.unwrap())
                    .unwrap()
                    .hyphenated()
                    .to_string()
            })
            .collect()
    };
    for d in docs.values().flatten() {
        if let Some(o) = &d.created_by {
            assert!(uuids.contains(o));
        }
    }
    let everyone = uuid::Uuid::from_u128(7);
    let (docs, stats) = read_all(
        db,
        &ReadOptions {
            owner: Some(everyone),
        },
    );
    assert_eq!(stats.iter().map(|s| s.unowned).sum::<u64>(), 0);
    assert!(
        docs.values()
            .flatten()
            .all(|d| d.created_by.as_deref() == Some(everyone.to_string().as_str()))
    );
}

#[test]
fn secrets_ids_and_determinism() {
    let Some(db) = django_db() else { return };
    let before = std::fs::read(db).unwrap();
    let (a, _) = read_all(db, &ReadOptions::default());
    let (b, _) = read_all(db, &ReadOptions::default());
    assert_eq!(a, b, "a second read is the same, ids included");
    assert_eq!(
        std::fs::read(db).unwrap(),
        before,
        "the source is not written"
    );
    assert!(a["credentials"].iter().all(|d| d.secrets == ["/data"]));
    assert!(a["api_collections"].iter().all(|d| d.secrets == ["/auth"]));
    // A variable's value is sealed by the definition when its type is `secret` (the
    // mapping does not mark the column: a default variable's value stays readable).
    assert!(a["environments"].iter().all(|d| d.secrets.is_empty()));
    let ids: BTreeSet<&str> = a.values().flatten().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), a.values().map(Vec::len).sum::<usize>());
}

/// The fixture is the same every time it is made (a fixed seed, fixed timestamps), so
/// the tests' expectations and the benchmark's figures hold from run to run.
#[test]
fn the_django_fixture_is_deterministic() {
    let Some(db) = django_db() else { return };
    let py = django_python().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let again = make_django_db(&py, dir.path());
    assert_eq!(
        read_all(db, &ReadOptions::default()),
        read_all(&again, &ReadOptions::default())
    );
}

/// A copy of the database to damage.
fn copy(db: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("copy.sqlite3");
    std::fs::copy(db, &to).unwrap();
    (dir, to)
}

#[test]
fn orphan_foreign_keys_are_counted_not_written() {
    let Some(db) = django_db() else { return };
    let (_dir, db) = copy(db);
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA foreign_keys = OFF;
         DELETE FROM docsai_workflow WHERE id = 1;
         DELETE FROM docsai_collection WHERE id = 1;
         DELETE FROM docsai_roadmapitem WHERE id = 1;",
    )
    .unwrap();
    drop(c);
    let (_, stats) = read_all(&db, &ReadOptions::default());
    let orphans: BTreeMap<String, u64> = stats.iter().flat_map(|s| s.orphans.clone()).collect();
    assert_eq!(orphans["docsai_workflownode.workflow_id"], 4);
    assert_eq!(orphans["docsai_execution.workflow_id"], 5);
    assert_eq!(orphans["docsai_executionlog.execution_id"], 20);
    assert_eq!(orphans["docsai_apirequest.collection_id"], 10);
    let pointing = sql_count(
        &db,
        "SELECT count(*) FROM docsai_requesthistory WHERE collection_id = 1",
    );
    assert_eq!(orphans["docsai_requesthistory.collection_id"], pointing);
    let deps = sql_count(
        &db,
        "SELECT count(*) FROM docsai_roadmapitem_dependencies WHERE to_roadmapitem_id = 1",
    );
    assert_eq!(
        orphans
            .get("docsai_roadmapitem_dependencies.to_roadmapitem_id")
            .copied()
            .unwrap_or(0),
        deps
    );
}

#[test]
fn mapping_and_value_errors_are_typed_and_name_the_place() {
    let Some(db) = django_db() else { return };
    let source = Source::open(db).unwrap();
    let bad = DOCSAI_MAPPING.replace("slug = \"slug\"", "slug = \"slug\"\nno_such_column = \"x\"");
    let e = source
        .check(&Mapping::from_toml(&bad).unwrap())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema);
    assert!(
        e.to_string()
            .contains("docsai_knowledgebase has no column no_such_column"),
        "{e}"
    );
    let three = "[[table]]\ntable = \"a\"\ncollection = \"a\"\n[[table.nested]]\ntable = \"b\"\nfield = \"b\"\nparent = \"a_id\"\n[[table.nested.nested]]\ntable = \"c\"\nfield = \"c\"\nparent = \"b_id\"\n[[table.nested.nested.nested]]\ntable = \"d\"\nfield = \"d\"\nparent = \"c_id\"\n";
    assert_eq!(
        Mapping::from_toml(three).unwrap_err().kind(),
        ErrorKind::Mapping
    );
    assert!(Source::open(Path::new("/nonexistent/db.sqlite3")).is_err());

    let (_dir, copy) = copy(db);
    let c = rusqlite::Connection::open(&copy).unwrap();
    c.execute(
        "UPDATE docsai_knowledgebase SET is_published = 'yes' WHERE id = 3",
        [],
    )
    .unwrap();
    drop(c);
    let m = mapping();
    let e = Source::open(&copy)
        .unwrap()
        .read_table(&m, &m.tables[0], &ReadOptions::default(), |_| Ok(()))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cast);
    assert!(
        e.to_string()
            .starts_with("docsai_knowledgebase row 3, column is_published"),
        "{e}"
    );
}
