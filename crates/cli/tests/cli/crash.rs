//! Crash rounds at the process level (issue 14, item 5).
//!
//! 32 clients run mixed work against `bucketbase serve` on a local root: creates of stays
//! (overlapping ranges in a few rooms, codes from a small pool, so the exclusion and the
//! unique constraint refuse many), label changes, moves, nested note appends, deletes and
//! restores. A harness kills the server with SIGKILL at a random moment 2–5 s into each
//! round and starts it again on the same root: 10 rounds with one process, then rounds
//! with two processes on the root, killing one or both. After every restart the checker
//! (`crash/checker.rs`) compares the server with what the clients were told, checks the
//! constraints, and `bucketbase audit verify` must pass.
//!
//! The seed is printed; `CRASH_SEED=<n>` replays the same choices (not the same timing).

mod checker;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use checker::{Model, Outcome, Seen, Stay};
use serde_json::{Value, json};

use super::bucketbase;
use bucketbase_testkit::process::{ADMIN, ADMIN_PASSWORD};

use super::processes::serve_with;

const CLIENTS: usize = 32;
const ONE_PROCESS_ROUNDS: usize = 10;
const TWO_PROCESS_ROUNDS: usize = 5;
/// Rooms and days the stays are spread over: tight enough that overlaps are common.
const ROOMS: u64 = 12;
const DAYS: u64 = 300;

/// SplitMix64: a seeded, dependency-free source of choices.
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
}

const STAYS: &str = r#"{
  "name": "stays", "soft_delete": true, "index": ["room", "code"],
  "schema": {"type": "object", "required": ["room", "start", "end", "code"],
    "properties": {"room": {"type": "integer"}, "start": {"type": "integer"},
      "end": {"type": "integer"}, "code": {"type": "string"}, "label": {"type": "string"}}},
  "check": [{"name": "ends_after_start", "expr": "record.end > record.start"}],
  "unique": [{"name": "stay_code", "fields": ["code"]}],
  "exclude": [{"name": "no_overlap", "key": ["room"], "start": "start", "end": "end"}],
  "nested": {"notes": {"schema": {"type": "object", "required": ["text"],
    "properties": {"text": {"type": "string"}}}}}
}"#;

/// What one client saw in a round.
#[derive(Default)]
struct Tally {
    acked: u64,
    failed: u64,
    unknown: u64,
    /// Answers that are neither a success, a constraint refusal nor a crash.
    unexpected: Vec<String>,
}

/// Sends a write and classifies its answer.
async fn send(req: reqwest::RequestBuilder, tally: &mut Tally, what: &str) -> Outcome {
    let Ok(r) = req.send().await else {
        tally.unknown += 1;
        return Outcome::Unknown;
    };
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    match status {
        200..=299 => {
            tally.acked += 1;
            Outcome::Acked
        }
        409 => {
            tally.failed += 1;
            Outcome::Failed
        }
        500..=599 if body["error"]["code"] != "internal" => {
            tally.unknown += 1;
            Outcome::Unknown
        }
        _ => {
            tally.unexpected.push(format!("{what}: {status} {body}"));
            tally.failed += 1;
            Outcome::Failed
        }
    }
}

fn body(stay: &Stay) -> Value {
    json!({"room": stay.room, "start": stay.start, "end": stay.end, "code": stay.code,
           "label": stay.label})
}

/// One client's round: writes to its own records until the round stops or its server
/// dies (after an unknown outcome it stops: the state is settled by the next check).
async fn client(
    c: usize,
    round: usize,
    url: String,
    token: String,
    mut model: Model,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> (Model, Tally) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    let mut k = 0u64;
    let api = format!("{url}/api/v1/stays");
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let ids = model.ids();
        let live = ids.iter().filter(|id| !model.known(id).unwrap().deleted);
        let outcome = if live.count() < 5 || rng.below(6) == 0 {
            let id = format!("c{c}-{round}-{k}");
            let start = rng.below(DAYS) as i64;
            let stay = Stay {
                room: rng.below(ROOMS) as i64,
                start,
                end: start + 1 + rng.below(8) as i64,
                code: format!("K{}", rng.below(2000)),
                label: "v0".into(),
                deleted: false,
            };
            let mut doc = body(&stay);
            doc["id"] = json!(id);
            let req = http.post(&api).bearer_auth(&token).json(&doc);
            let outcome = send(req, &mut tally, "create").await;
            model.write(&id, stay, outcome);
            outcome
        } else {
            let id = ids[rng.below(ids.len() as u64) as usize].clone();
            let cur = model.known(&id).unwrap().clone();
            let mut new = cur.clone();
            let (req, what) = match rng.below(5) {
                _ if cur.deleted => {
                    new.deleted = false;
                    (http.post(format!("{api}/{id}/restore")), "restore")
                }
                0 => {
                    new.deleted = true;
                    (http.delete(format!("{api}/{id}")), "delete")
                }
                1 => {
                    new.start = rng.below(DAYS) as i64;
                    new.end = new.start + 1 + rng.below(8) as i64;
                    let patch = json!({"start": new.start, "end": new.end});
                    (http.patch(format!("{api}/{id}")).json(&patch), "move")
                }
                2 => {
                    new.label = format!("v{round}-{k}");
                    let patch = json!({"label": new.label});
                    (http.patch(format!("{api}/{id}")).json(&patch), "label")
                }
                _ => {
                    let text = format!("{id}-n{round}-{k}");
                    let req = http
                        .post(format!("{api}/{id}/notes"))
                        .bearer_auth(&token)
                        .json(&json!({"text": text}));
                    let outcome = send(req, &mut tally, "append").await;
                    model.append(&id, &text, outcome);
                    if outcome == Outcome::Unknown {
                        break;
                    }
                    continue;
                }
            };
            let outcome = send(req.bearer_auth(&token), &mut tally, what).await;
            model.write(&id, new, outcome);
            outcome
        };
        if outcome == Outcome::Unknown {
            break;
        }
    }
    (model, tally)
}

/// Sends a request that must be answered, and returns its JSON body.
pub async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

/// Everything the server shows, deleted records included, with their notes.
async fn read_all(url: &str, token: &str) -> BTreeMap<String, Seen> {
    let http = reqwest::Client::new();
    let mut seen = BTreeMap::new();
    for page in 1.. {
        let list = http
            .get(format!(
                "{url}/api/v1/stays?include_deleted=true&per_page=1000&page={page}"
            ))
            .header("x-bucketbase-consistency", "latest");
        let r = json_of(list.bearer_auth(token)).await;
        let items = r["data"].as_array().unwrap_or_else(|| panic!("{r}"));
        for item in items {
            let id = item["id"].as_str().unwrap().to_string();
            let notes = match item.get("notes").and_then(Value::as_array) {
                Some(notes) => notes.clone(),
                None => {
                    let notes = http.get(format!("{url}/api/v1/stays/{id}/notes"));
                    let r = json_of(notes.bearer_auth(token)).await;
                    r["data"].as_array().cloned().unwrap_or_default()
                }
            };
            let stay = Stay {
                room: item["room"].as_i64().unwrap(),
                start: item["start"].as_i64().unwrap(),
                end: item["end"].as_i64().unwrap(),
                code: item["code"].as_str().unwrap().to_string(),
                label: item["label"].as_str().unwrap_or_default().to_string(),
                deleted: !item["deleted_at"].is_null(),
            };
            let notes: BTreeSet<String> = notes
                .iter()
                .map(|n| n["text"].as_str().unwrap().to_string())
                .collect();
            seen.insert(id, Seen { stay, notes });
        }
        if items.len() < 1000 {
            break;
        }
    }
    seen
}

fn audit_verify(root: &str) {
    let out = bucketbase()
        .args(["audit", "verify", "--store", root])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_rounds_keep_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test seed: CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let mut servers = vec![serve_with(root, &[])];
    let token = servers[0].login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    let defined = reqwest::Client::new()
        .post(format!("{}/api/v1/collections", servers[0].url))
        .bearer_auth(&token)
        .json(&serde_json::from_str::<Value>(STAYS).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(defined.status(), 200, "{}", defined.text().await.unwrap());

    let mut model = Model::default();
    let mut total = Tally::default();
    for round in 0..ONE_PROCESS_ROUNDS + TWO_PROCESS_ROUNDS {
        let processes = if round < ONE_PROCESS_ROUNDS { 1 } else { 2 };
        while servers.len() < processes {
            servers.push(serve_with(root, &[]));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                tokio::spawn(client(
                    c,
                    round,
                    servers[c % servers.len()].url.clone(),
                    token.clone(),
                    model.take_owned(&format!("c{c}-")),
                    rng.next(),
                    stop.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(2000 + rng.below(3000))).await;
        // Dropping a Server kills it with SIGKILL (`Child::kill`).
        match (processes, rng.below(3)) {
            (1, _) | (_, 2) => servers.clear(),
            (_, which) => drop(servers.remove(which as usize)),
        }
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            let (owned, tally) = c.await.unwrap();
            model.merge(owned);
            total.acked += tally.acked;
            total.failed += tally.failed;
            total.unknown += tally.unknown;
            total.unexpected.extend(tally.unexpected);
        }
        while servers.len() < processes {
            servers.push(serve_with(root, &[]));
        }
        assert!(
            total.unexpected.is_empty(),
            "round {round}, CRASH_SEED={seed}: unexpected answers: {:#?}",
            total.unexpected
        );
        let seen = read_all(&servers[0].url, &token).await;
        let problems = model.check(&seen);
        assert!(
            problems.is_empty(),
            "round {round} ({processes} processes), CRASH_SEED={seed}: {problems:#?}"
        );
        audit_verify(root);
        println!(
            "round {round} ({processes} processes): {} records; so far {} acknowledged, {} \
             refused, {} unknown",
            seen.len(),
            total.acked,
            total.failed,
            total.unknown
        );
    }
    assert!(
        total.acked > 0 && total.failed > 0,
        "the load did real work"
    );
}
