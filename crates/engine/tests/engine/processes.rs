//! Two OS processes writing to one local root.
//!
//! The test re-runs this test binary twice as child processes (running the ignored
//! `child_writer` test with the root in the environment); each child commits through its
//! own handle and prints what was acknowledged. The parent then checks the set.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use crate::concurrency::{SetOutcome, check_set, set_workload};
use crate::support::*;

const ROOT_VAR: &str = "BUCKETBASE_CHILD_ROOT";
const NAME_VAR: &str = "BUCKETBASE_CHILD_NAME";

#[test]
fn two_processes_share_a_local_root() {
    let b = Backend::local();
    let children: Vec<_> = ["p1", "p2"]
        .iter()
        .map(|name| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "processes::child_writer",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ROOT_VAR, &b.url)
                .env(NAME_VAR, name)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut acked = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            // The harness may print "test ... " on the same line before our output.
            if let Some((_, id)) = line.split_once("ACK ") {
                acked.insert(id.trim().to_string());
            }
        }
    }
    assert_eq!(
        acked.len(),
        2 * 32 * 15,
        "every write of both processes acknowledged"
    );
    let outcome = SetOutcome {
        acked,
        unknown: BTreeSet::new(),
        failed: vec![],
    };
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(check_set(&b, &outcome));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs as a child process of two_processes_share_a_local_root"]
async fn child_writer() {
    let (Ok(root), Ok(name)) = (std::env::var(ROOT_VAR), std::env::var(NAME_VAR)) else {
        panic!("run by two_processes_share_a_local_root");
    };
    let db = bucketbase_engine::Database::open_url(&root, options())
        .await
        .unwrap();
    let handles = vec![Arc::new(db)];
    let outcome = set_workload(&handles, 32, 15, &name).await;
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    for id in &outcome.acked {
        println!("ACK {id}");
    }
    Arc::into_inner(handles.into_iter().next().unwrap())
        .unwrap()
        .close()
        .await;
}
