//! A Django SQLite database of docsai's old models, made without Django: the schema
//! Django 5.2 writes for tests/django (`django_schema.sql`, dumped once from `manage.py
//! migrate`), filled row for row as tests/django's `manage.py fill --scale N` fills it
//! (the same tables, the same number of rows per unit of scale, the same storage forms:
//! datetimes as text with and without microseconds, booleans as 0/1, JSON as text,
//! decimals in NUMERIC columns, UUIDs as 32 hex digits). Scale 515 makes 99,567 model rows
//! and 2,571 many-to-many pairs, as Django's `fill --scale 515` does (102,138 rows the
//! migration reads). Values come from a fixed-seed generator, so every run migrates the
//! same database.

use std::path::Path;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use rusqlite::{Connection, params};
use serde_json::json;

/// `CREATE TABLE` / `CREATE INDEX` statements of the Django project in tests/django.
const SCHEMA: &str = include_str!("django_schema.sql");

/// splitmix64: deterministic, good enough to spread values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }

    /// A Django UUIDField value: 32 hex digits.
    fn uuid_hex(&mut self) -> String {
        let bytes = (u128::from(self.next()) << 64) | u128::from(self.next());
        uuid::Builder::from_random_bytes(bytes.to_be_bytes())
            .into_uuid()
            .simple()
            .to_string()
    }

    /// A DateTimeField's text: whole seconds for half the rows, microseconds for the
    /// others (both forms Django writes).
    fn when(&mut self) -> String {
        let base = base();
        let t = base + Duration::seconds(self.below(365 * 86_400) as i64);
        if self.below(2) == 0 {
            t.format("%Y-%m-%d %H:%M:%S").to_string()
        } else {
            let micros = 1 + self.below(999_999);
            format!("{}.{micros:06}", t.format("%Y-%m-%d %H:%M:%S"))
        }
    }

    fn day(&mut self) -> String {
        (base().date() + Duration::days(self.below(730) as i64))
            .format("%Y-%m-%d")
            .to_string()
    }

    /// A DecimalField value (`digits` digits, two decimals).
    fn money(&mut self, digits: u32) -> f64 {
        self.below(10u64.pow(digits)) as f64 / 100.0
    }
}

fn base() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date")
}

/// `created_by_id`, `created_at`, `updated_at` of an owned row.
fn owned(rng: &mut Rng, owner: i64) -> (i64, String, String) {
    let created = rng.when();
    let updated = NaiveDateTime::parse_from_str(&created, "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| {
            (t + Duration::hours(1))
                .format("%Y-%m-%d %H:%M:%S%.f")
                .to_string()
        })
        .unwrap_or_else(|_| created.clone());
    (owner, created, updated)
}

/// Makes the database at `path` at `scale`.
pub fn make(path: &Path, scale: usize) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch(SCHEMA)?;
    let tx = conn.transaction()?;
    fill(&tx, scale, &mut Rng(12))?;
    tx.commit()
}

const STATUSES: [&str; 5] = ["queued", "running", "success", "error", "cancelled"];

/// The rows, in `fill`'s order and numbers.
fn fill(tx: &rusqlite::Transaction<'_>, n: usize, rng: &mut Rng) -> rusqlite::Result<()> {
    // Three users with a profile, a fourth ("legacy", id 4) without: every 50th record of
    // the tables `fill` gives it belongs to no one.
    for (i, name) in ["ada", "grace", "linus", "legacy"].iter().enumerate() {
        tx.execute(
            "INSERT INTO auth_user (id, password, is_superuser, username, last_name, email, \
             is_staff, is_active, date_joined, first_name) \
             VALUES (?1, '!', 0, ?2, '', ?3, 0, 1, '2025-01-01 00:00:00', '')",
            params![i as i64 + 1, name, format!("{name}@example.com")],
        )?;
        if i < 3 {
            tx.execute(
                "INSERT INTO docsai_userprofile (uuid, user_id) VALUES (?1, ?2)",
                params![rng.uuid_hex(), i as i64 + 1],
            )?;
        }
    }
    let owner = |i: usize| if i % 50 == 7 { 4 } else { (i % 3) as i64 + 1 };
    let profiled = |i: usize| (i % 3) as i64 + 1;

    let mut st = tx.prepare(
        "INSERT INTO docsai_knowledgebase (created_by_id, created_at, updated_at, title, slug, \
         content, category, tags, is_published, views, metadata) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for i in 0..10 * n {
        let (by, at, up) = owned(rng, owner(i));
        st.execute(params![
            by,
            at,
            up,
            format!("Article {i} ✓"),
            format!("article-{i}"),
            "# Title\n\nBody ".repeat(3),
            rng.pick(&["api", "guides", "faq", ""]),
            json!(["a", format!("t{}", i % 7)]).to_string(),
            i % 2 == 0,
            rng.below(10_000) as i64,
            json!({"source": "import", "rank": i, "nested": {"ok": true, "none": null}})
                .to_string(),
        ])?;
    }

    let mut st = tx.prepare(
        "INSERT INTO docsai_ailearningsession (id, created_by_id, created_at, updated_at, title, \
         topic, model_name, status, total_cost, total_tokens, context, ended_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'gpt-x', ?7, ?8, ?9, ?10, ?11)",
    )?;
    let sessions = 3 * n;
    for i in 0..sessions {
        let (by, at, up) = owned(rng, owner(i));
        st.execute(params![
            i as i64 + 1,
            by,
            at,
            up,
            format!("Session {i}"),
            rng.pick(&["rust", "sql", "s3"]),
            rng.pick(&["active", "completed", "archived"]),
            rng.money(6),
            rng.below(100_000) as i64,
            r#"{"lang": "en"}"#,
            if i % 2 == 1 { Some(rng.when()) } else { None },
        ])?;
    }
    let mut st = tx.prepare(
        "INSERT INTO docsai_chatmessage (session_id, sender, content, tokens, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for s in 0..sessions {
        for j in 0..8 {
            st.execute(params![
                s as i64 + 1,
                rng.pick(&["user", "assistant", "system"]),
                format!("message {j} of Session {s}"),
                j * 10,
                rng.when(),
            ])?;
        }
    }

    let mut st = tx.prepare(
        "INSERT INTO docsai_operationlog (created_by_id, created_at, updated_at, operation_type, \
         status, target, details, error_message, started_at, finished_at, duration_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '', ?8, ?9, ?10)",
    )?;
    for i in 0..10 * n {
        let (by, at, up) = owned(rng, owner(i));
        let done = i % 3 != 0;
        st.execute(params![
            by,
            at,
            up,
            rng.pick(&["sync", "scan", "import"]),
            rng.pick(&["pending", "running", "succeeded", "failed"]),
            format!("/docs/{i}"),
            json!({"items": i}).to_string(),
            rng.when(),
            done.then(|| rng.when()),
            done.then(|| 1 + rng.below(59_999) as i64),
        ])?;
    }

    let mut st = tx.prepare(
        "INSERT INTO docsai_roadmapitem (id, created_by_id, created_at, updated_at, title, \
         description, status, priority, category, target_date, progress) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'why', ?6, ?7, 'core', ?8, ?9)",
    )?;
    for i in 0..5 * n {
        let (by, at, up) = owned(rng, profiled(i));
        st.execute(params![
            i as i64 + 1,
            by,
            at,
            up,
            format!("Roadmap {i}"),
            rng.pick(&["planned", "in_progress", "done"]),
            rng.pick(&["low", "medium", "high", "critical"]),
            (i % 4 != 0).then(|| rng.day()),
            rng.below(101) as i64,
        ])?;
    }
    // Each item depends on up to two earlier items of the same owner.
    let mut st = tx.prepare(
        "INSERT INTO docsai_roadmapitem_dependencies (from_roadmapitem_id, to_roadmapitem_id) \
         VALUES (?1, ?2)",
    )?;
    for i in 0..5 * n {
        for back in [3, 6] {
            if i >= back && i % 2 == 0 {
                st.execute(params![i as i64 + 1, (i - back) as i64 + 1])?;
            }
        }
    }

    let mut st = tx.prepare(
        "INSERT INTO docsai_template (created_by_id, created_at, updated_at, name, template_type, \
         content, variables, is_active, version) \
         VALUES (?1, ?2, ?3, ?4, 'document', 'Hello {{name}}', '{\"name\": \"world\"}', ?5, ?6)",
    )?;
    for i in 0..3 * n {
        let (by, at, up) = owned(rng, owner(i));
        st.execute(params![
            by,
            at,
            up,
            format!("Template {i}"),
            i % 3 != 0,
            1 + (i % 4) as i64
        ])?;
    }
    let mut st = tx.prepare(
        "INSERT INTO docsai_accessibilityscan (created_by_id, created_at, updated_at, url, \
         standard, status, score, issues_count, results, scanned_at) \
         VALUES (?1, ?2, ?3, ?4, 'WCAG2AA', 'completed', ?5, ?6, ?7, ?8)",
    )?;
    for i in 0..3 * n {
        let (by, at, up) = owned(rng, owner(i));
        st.execute(params![
            by,
            at,
            up,
            format!("https://docs.example.com/p/{i}"),
            (i % 5 != 0).then(|| rng.money(4) % 100.0),
            (i % 9) as i64,
            r#"{"violations": [{"id": "color-contrast"}]}"#,
            rng.when(),
        ])?;
    }

    let mut st = tx.prepare(
        "INSERT INTO docsai_testsuite (id, created_by_id, created_at, updated_at, name, \
         description, base_url, config, is_active) \
         VALUES (?1, ?2, ?3, ?4, ?5, '', 'https://api.example.com', '{\"retries\": 1}', 1)",
    )?;
    for i in 0..2 * n {
        let (by, at, up) = owned(rng, owner(i));
        st.execute(params![i as i64 + 1, by, at, up, format!("Suite {i}")])?;
    }
    let mut st = tx.prepare(
        "INSERT INTO docsai_testrun (suite_id, status, started_at, finished_at, duration_ms, \
         passed, failed, skipped, results) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)",
    )?;
    for s in 0..2 * n {
        for j in 0..5i64 {
            st.execute(params![
                s as i64 + 1,
                rng.pick(&["passed", "failed", "error"]),
                rng.when(),
                rng.when(),
                1 + rng.below(99_999) as i64,
                j,
                j % 2,
                json!({"run": j}).to_string(),
            ])?;
        }
    }

    let mut st = tx.prepare(
        "INSERT INTO docsai_credential (id, created_by_id, created_at, updated_at, name, \
         credential_type, description, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', ?7)",
    )?;
    for i in 0..2 * n {
        let (by, at, up) = owned(rng, profiled(i));
        st.execute(params![
            i as i64 + 1,
            by,
            at,
            up,
            format!("Credential {i}"),
            rng.pick(&["httpBasicAuth", "apiKey"]),
            json!({"user": format!("svc{i}"), "password": format!("fixture-secret-{i}")})
                .to_string(),
        ])?;
    }
    workflows(tx, n, rng)?;

    let mut st = tx.prepare(
        "INSERT INTO docsai_workflowtemplate (created_by_id, created_at, updated_at, name, \
         description, category, definition, is_public, usage_count) \
         VALUES (?1, ?2, ?3, ?4, '', 'starter', '{\"nodes\": [], \"connections\": []}', ?5, ?6)",
    )?;
    for i in 0..2 * n {
        let (by, at, up) = owned(rng, owner(i));
        st.execute(params![
            by,
            at,
            up,
            format!("Workflow template {i}"),
            i % 2 == 0,
            i as i64
        ])?;
    }
    api_studio(tx, n, rng)?;

    let mut st = tx.prepare(
        "INSERT INTO docsai_task (id, created_by_id, created_at, updated_at, title, description, \
         status, priority, due_date, estimate_hours) \
         VALUES (?1, ?2, ?3, ?4, ?5, '', ?6, 'medium', ?7, ?8)",
    )?;
    let mut task_owner = Vec::with_capacity(5 * n);
    for i in 0..5 * n {
        let (by, at, up) = owned(rng, owner(i));
        task_owner.push(by);
        st.execute(params![
            i as i64 + 1,
            by,
            at,
            up,
            format!("Task {i}"),
            rng.pick(&["todo", "in_progress", "done"]),
            (i % 2 == 1).then(|| rng.day()),
            (i % 3 != 0).then(|| rng.money(4)),
        ])?;
    }
    let mut st = tx.prepare(
        "INSERT INTO docsai_taskcomment (task_id, author, text, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let names = ["ada", "grace", "linus", "legacy"];
    for (t, by) in task_owner.iter().enumerate() {
        for j in 0..3 {
            st.execute(params![
                t as i64 + 1,
                names[(*by - 1) as usize],
                format!("comment {j}"),
                rng.when(),
            ])?;
        }
    }

    let mut st = tx.prepare(
        "INSERT INTO docsai_jsonstore (created_by_id, created_at, updated_at, key, data, \
         description) VALUES (?1, ?2, ?3, ?4, ?5, '')",
    )?;
    for i in 0..3 * n {
        let (by, at, up) = owned(rng, owner(i));
        st.execute(params![
            by,
            at,
            up,
            format!("settings/{i}"),
            json!({"theme": "dark", "n": i, "list": [1, 2.5, "x", null]}).to_string(),
        ])?;
    }
    Ok(())
}

/// Workflows with 4 nodes, 3 connections and 5 executions of 4 log lines each.
fn workflows(tx: &rusqlite::Transaction<'_>, n: usize, rng: &mut Rng) -> rusqlite::Result<()> {
    let mut st = tx.prepare(
        "INSERT INTO docsai_workflow (id, created_by_id, created_at, updated_at, name, \
         description, active, trigger_type, settings) \
         VALUES (?1, ?2, ?3, ?4, ?5, '', ?6, ?7, '{\"timezone\": \"UTC\"}')",
    )?;
    for i in 0..2 * n {
        let (by, at, up) = owned(rng, (i % 3) as i64 + 1);
        st.execute(params![
            i as i64 + 1,
            by,
            at,
            up,
            format!("Workflow {i}"),
            i % 2 == 0,
            rng.pick(&["manual", "webhook", "schedule"]),
        ])?;
    }
    let mut node = tx.prepare(
        "INSERT INTO docsai_workflownode (workflow_id, node_key, name, node_type, position_x, \
         position_y, parameters, credential_id) VALUES (?1, ?2, ?3, ?4, ?5, 100.5, ?6, ?7)",
    )?;
    let mut conn = tx.prepare(
        "INSERT INTO docsai_workflowconnection (workflow_id, source_node, target_node, \
         output_index) VALUES (?1, ?2, ?3, 0)",
    )?;
    let mut exec = tx.prepare(
        "INSERT INTO docsai_execution (id, workflow_id, execution_uuid, status, mode, started_at, \
         finished_at, data, error) VALUES (?1, ?2, ?3, ?4, 'manual', ?5, ?6, ?7, '')",
    )?;
    let mut execs = 0i64;
    for w in 0..2 * n {
        let wid = w as i64 + 1;
        for k in 0..4i64 {
            node.execute(params![
                wid,
                format!("node{k}"),
                format!("Node {k}"),
                rng.pick(&["http", "code", "if", "set"]),
                k as f64 * 200.0,
                json!({"k": k}).to_string(),
                (k == 1).then_some(wid),
            ])?;
        }
        for k in 0..3 {
            conn.execute(params![wid, format!("node{k}"), format!("node{}", k + 1)])?;
        }
        for k in 0..5 {
            execs += 1;
            exec.execute(params![
                execs,
                wid,
                rng.uuid_hex(),
                rng.pick(&STATUSES),
                rng.when(),
                (k % 2 == 1).then(|| rng.when()),
                json!({"k": k}).to_string(),
            ])?;
        }
    }
    let mut log = tx.prepare(
        "INSERT INTO docsai_executionlog (execution_id, level, message, node_key, timestamp) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for e in 1..=execs {
        for j in 0..4 {
            log.execute(params![
                e,
                rng.pick(&["debug", "info", "warning", "error"]),
                format!("step {j}"),
                format!("node{j}"),
                rng.when(),
            ])?;
        }
    }
    Ok(())
}

/// API collections (10 requests each, a mock for every third request), environments (5
/// variables each, the first secret) and the request history.
fn api_studio(tx: &rusqlite::Transaction<'_>, n: usize, rng: &mut Rng) -> rusqlite::Result<()> {
    let mut st = tx.prepare(
        "INSERT INTO docsai_collection (id, created_by_id, created_at, updated_at, name, \
         description, postman_id, auth, variables) VALUES (?1, ?2, ?3, ?4, ?5, '', ?6, ?7, ?8)",
    )?;
    let mut collection_owner = Vec::with_capacity(n);
    for i in 0..n {
        let (by, at, up) = owned(rng, (i % 3) as i64 + 1);
        collection_owner.push(by);
        let auth = json!({"type": "bearer", "bearer": [
            {"key": "token", "value": format!("fixture-token-{i}"), "type": "string"}]});
        st.execute(params![
            i as i64 + 1,
            by,
            at,
            up,
            format!("API {i}"),
            uuid::Uuid::parse_str(&rng.uuid_hex())
                .map(|u| u.to_string())
                .unwrap_or_default(),
            auth.to_string(),
            r#"[{"key": "base", "value": "https://api.example.com"}]"#,
        ])?;
    }
    let mut req = tx.prepare(
        "INSERT INTO docsai_apirequest (id, collection_id, name, folder, method, url, headers, \
         body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut reqs = Vec::with_capacity(10 * n);
    for c in 0..n {
        for j in 0..10 {
            let id = reqs.len() as i64 + 1;
            let method = rng.pick(&["GET", "POST", "DELETE"]);
            req.execute(params![
                id,
                c as i64 + 1,
                format!("Request {j}"),
                if j % 2 == 1 { "Users/Admin" } else { "" },
                method,
                format!("{{{{base}}}}/users/{j}"),
                r#"[{"key": "Accept", "value": "application/json"}]"#,
                (j % 3 == 0).then_some(r#"{"mode": "raw", "raw": "{}"}"#),
            ])?;
            reqs.push((id, c as i64 + 1, j, method));
        }
    }
    let mut mock = tx.prepare(
        "INSERT INTO docsai_mockendpoint (collection_id, request_id, name, method, path, \
         status_code, body, delay_ms, is_active) \
         VALUES (?1, ?2, ?3, ?4, ?5, 200, '{\"ok\": true}', 0, 1)",
    )?;
    for (k, (id, c, j, method)) in reqs.iter().enumerate() {
        if k % 3 == 0 {
            mock.execute(params![
                c,
                id,
                format!("Example of Request {j}"),
                method,
                format!("/users/{k}")
            ])?;
        }
    }
    let mut env = tx.prepare(
        "INSERT INTO docsai_environment (id, created_by_id, created_at, updated_at, name, \
         description, is_active) VALUES (?1, ?2, ?3, ?4, ?5, '', ?6)",
    )?;
    let mut var = tx.prepare(
        "INSERT INTO docsai_envvariable (environment_id, key, value, is_secret, enabled) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for i in 0..n {
        let (by, at, up) = owned(rng, (i % 3) as i64 + 1);
        env.execute(params![
            i as i64 + 1,
            by,
            at,
            up,
            format!("Env {i}"),
            i == 0
        ])?;
    }
    for e in 0..n {
        for k in 0..5 {
            let value = if k == 0 {
                format!("fixture-env-secret-{e}-{k}")
            } else {
                format!("value-{k}")
            };
            var.execute(params![
                e as i64 + 1,
                format!("VAR_{k}"),
                value,
                k == 0,
                k != 4
            ])?;
        }
    }
    let mut hist = tx.prepare(
        "INSERT INTO docsai_requesthistory (created_by_id, created_at, updated_at, method, url, \
         status_code, duration_ms, response_body, collection_id, environment_id) \
         VALUES (?1, ?2, ?3, 'GET', ?4, ?5, ?6, '{}', ?7, ?8)",
    )?;
    for i in 0..10 * n {
        let (by, at, up) = owned(rng, collection_owner[i % n]);
        hist.execute(params![
            by,
            at,
            up,
            format!("https://api.example.com/users/{i}"),
            (i % 7 != 0).then_some(200),
            i as i64,
            (i % 2 == 1).then_some((i % n) as i64 + 1),
            (i % 3 == 0).then_some((i % n) as i64 + 1),
        ])?;
    }
    Ok(())
}
