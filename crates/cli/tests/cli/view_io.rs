//! The materialized view and checkpoints stay off the write path (decision 0020): they
//! are written from one background thread at the lowest CPU and I/O priority, and a
//! collection's `index.json` is rewritten at most once a second, yet the view catches up
//! and its watermark only claims files that are there.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use bucketbase_testkit::process::{ADMIN, ADMIN_PASSWORD, Server};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bucketbase"))
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The background lane's thread of `pid`: its id, nice value and I/O priority class.
#[cfg(target_os = "linux")]
fn lane_thread(pid: u32) -> Option<(u32, i64, libc::c_long)> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "bb-background" {
            continue;
        }
        let tid: u32 = task.file_name().to_str()?.parse().ok()?;
        // Field 19 of `stat` is the nice value; the fields start after the `(comm)`.
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        let after_comm = &stat[stat.rfind(')')? + 2..];
        let nice: i64 = after_comm.split(' ').nth(16)?.parse().ok()?;
        // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, tid) only reads a thread's attribute.
        let ioprio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, tid as libc::c_long) };
        return Some((tid, nice, ioprio >> 13));
    }
    None
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn view_and_checkpoint_writes_run_at_idle_priority() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(bin(), dir.path().to_str().unwrap());
    // The thread lowers its own priority as it starts: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let found = lane_thread(server.pid());
        if found.is_some_and(|(_, nice, class)| nice == 19 && class == 3)
            || Instant::now() > deadline
        {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (_, nice, class) = found.expect("the server has a bb-background thread");
    assert_eq!((nice, class), (19, 3), "nice 19 and the idle I/O class (3)");
}

/// The server runs without transparent huge pages (`bucketbase_engine::memory`): the
/// kernel zeroing 2 MB pages for the allocator was a fifth of an import's CPU.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(bin(), dir.path().to_str().unwrap());
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(str::trim);
    assert_eq!(thp, Some("0"), "{status}");
}

#[tokio::test]
async fn index_json_is_rewritten_at_most_once_a_second_and_the_view_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let server = Server::start(bin(), root.to_str().unwrap());
    let token = server.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    server.define_notes(&token).await;

    // Watch notes/index.json while notes are created one after another for 1.5 s.
    let index = root.join("notes/index.json");
    let watching = tokio::spawn({
        let index = index.clone();
        async move {
            let started = Instant::now();
            let mut seen = BTreeSet::new();
            while started.elapsed() < Duration::from_millis(1500) {
                if let Some(seq) = read_json(&index).and_then(|v| v["_seq"].as_u64()) {
                    seen.insert(seq);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (seen, started.elapsed())
        }
    });
    let mut created = Vec::new();
    let mut last_seq = 0;
    while !watching.is_finished() {
        let (status, seq, body) = server
            .post("/api/v1/notes", &token, json!({"n": created.len()}))
            .await;
        assert_eq!(status, 201, "{body}");
        last_seq = seq.unwrap();
        created.push(body["data"]["id"].as_str().unwrap().to_string());
    }
    let (seen, window) = watching.await.unwrap();
    // Rewritten at most once a second: at most one version per started second of the
    // window (polling may miss some; it cannot see more than were written).
    let most = window.as_secs() as usize + 1;
    assert!(
        seen.len() <= most,
        "{} versions of index.json in {window:?} while {} notes were created: {seen:?}",
        seen.len(),
        created.len()
    );

    // The view catches up: the watermark reaches the last write, and then every file it
    // claims is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let watermark = root.join("_meta/view.json");
    while read_json(&watermark).and_then(|v| v["_seq"].as_u64()) < Some(last_seq) {
        assert!(
            Instant::now() < deadline,
            "the view watermark never reached {last_seq}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let index = read_json(&index).expect("notes/index.json");
    assert_eq!(index["count"], created.len(), "{index}");
    for id in &created {
        let doc = read_json(&root.join(format!("notes/{id}.json"))).expect(id);
        assert_eq!(doc["id"], id.as_str());
    }
    // No staging file is left behind. What is there besides the records' files are
    // spares (decision 0025: `<token>-<n>#1`, replaced files kept to be written again);
    // only index.json was replaced here, and a directory keeps at most two such.
    let staging: Vec<String> = std::fs::read_dir(root.join("notes"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains('#'))
        .collect();
    let spare = |name: &str| {
        name.strip_suffix("#1")
            .and_then(|n| n.split_once('-'))
            .is_some_and(|(token, n)| {
                token.len() == 16
                    && token.bytes().all(|b| b.is_ascii_hexdigit())
                    && n.bytes().all(|b| b.is_ascii_digit())
            })
    };
    assert!(
        staging.len() <= 2 && staging.iter().all(|name| spare(name)),
        "{staging:?}"
    );
}
