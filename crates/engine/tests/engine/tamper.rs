//! Tampering with the log on disk is detected and the first damaged entry is named.

use bucketbase_engine::verify::{Damage, verify_chain};
use bucketbase_engine::{Seq, log};

use crate::support::*;

/// A local root with five entries; returns the backend and the path of `_log/`.
async fn five_entries() -> (Backend, std::path::PathBuf) {
    let b = Backend::local();
    let db = b.open().await;
    for i in 0..5 {
        put(&db, "things", &format!("t{i}"), doc(i)).await;
    }
    db.close().await;
    let dir = std::path::PathBuf::from(&b.url).join("_log");
    (b, dir)
}

fn entry_file(dir: &std::path::Path, seq: u64) -> std::path::PathBuf {
    dir.join(format!("{seq:020}.json"))
}

async fn first_break(b: &Backend) -> (Seq, Damage) {
    let report = verify_chain(&b.store, &|_| {}).await.unwrap();
    let brk = report.first_break.expect("tampering must be detected");
    (brk.seq, brk.damage)
}

#[tokio::test]
async fn edited_entry_is_named() {
    let (b, dir) = five_entries().await;
    let path = entry_file(&dir, 3);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("item 2", "item 9")).unwrap();
    assert_eq!(first_break(&b).await, (Seq(3), Damage::Altered));
}

#[tokio::test]
async fn removed_entry_is_named() {
    let (b, dir) = five_entries().await;
    std::fs::remove_file(entry_file(&dir, 2)).unwrap();
    assert_eq!(first_break(&b).await, (Seq(2), Damage::Removed));
}

#[tokio::test]
async fn reordered_entries_are_named() {
    let (b, dir) = five_entries().await;
    let (p2, p3) = (entry_file(&dir, 2), entry_file(&dir, 3));
    let (e2, e3) = (std::fs::read(&p2).unwrap(), std::fs::read(&p3).unwrap());
    std::fs::write(&p2, e3).unwrap();
    std::fs::write(&p3, e2).unwrap();
    assert_eq!(first_break(&b).await, (Seq(2), Damage::Reordered));
}

#[tokio::test]
async fn rehashed_forgery_is_named() {
    let (b, dir) = five_entries().await;
    // Rewrite entry 4 and give it a correct hash of its own: its successor's prev_hash
    // still names the original, so the forgery shows.
    let mut entry = log::read_entry(&b.store, Seq(4)).await.unwrap().unwrap();
    entry.body.txns[0].actor = "mallory".into();
    let (_, bytes) = log::LogEntry::seal(entry.body);
    std::fs::write(entry_file(&dir, 4), bytes).unwrap();
    assert_eq!(first_break(&b).await, (Seq(4), Damage::Altered));
}

#[tokio::test]
async fn intact_log_verifies() {
    let (b, _) = five_entries().await;
    let report = verify_chain(&b.store, &|_| {}).await.unwrap();
    assert!(report.is_intact());
    assert_eq!(report.verified, 5);
}
