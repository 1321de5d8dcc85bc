//! Uploaded workbooks kept between the steps of an import in the admin UI (upload, then
//! the mapping, the dry run, the commit), so that a person uploads the file once.
//!
//! Kept in this process's memory, bounded: at most [`MAX_FILES`] files and [`MAX_BYTES`]
//! in all (the oldest go first), each for [`TTL_MINUTES`]. A file is found by a random
//! token *and* the uploader's user id, so a token alone gives nobody else the file. After
//! a restart, behind a load balancer without sticky sessions, or after eviction, the page
//! says the upload has expired and asks for the file again: the stash is a convenience,
//! never the place a workbook lives.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;

pub const MAX_FILES: usize = 16;
pub const MAX_BYTES: usize = 64 * 1024 * 1024;
pub const TTL_MINUTES: i64 = 30;

/// A stashed upload.
#[derive(Clone)]
pub struct Upload {
    pub token: String,
    pub owner: String,
    pub file_name: String,
    pub bytes: std::sync::Arc<Vec<u8>>,
    pub at: DateTime<Utc>,
}

#[derive(Default)]
pub struct Stash(Mutex<VecDeque<Upload>>);

impl Stash {
    /// Keeps `upload`, dropping what expired and then the oldest files until it fits.
    pub fn put(&self, upload: Upload) {
        let mut files = self.0.lock();
        let now = upload.at;
        files.retain(|u| now - u.at < Duration::minutes(TTL_MINUTES));
        while !files.is_empty()
            && (files.len() >= MAX_FILES
                || files.iter().map(|u| u.bytes.len()).sum::<usize>() + upload.bytes.len()
                    > MAX_BYTES)
        {
            files.pop_front();
        }
        files.push_back(upload);
    }

    /// The upload `token` of `owner`, if it is still kept and fresh at `now`.
    pub fn get(&self, token: &str, owner: &str, now: DateTime<Utc>) -> Option<Upload> {
        self.0
            .lock()
            .iter()
            .find(|u| u.token == token && u.owner == owner)
            .filter(|u| now - u.at < Duration::minutes(TTL_MINUTES))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(token: &str, owner: &str, size: usize, at: DateTime<Utc>) -> Upload {
        Upload {
            token: token.into(),
            owner: owner.into(),
            file_name: "b.xlsx".into(),
            bytes: std::sync::Arc::new(vec![0; size]),
            at,
        }
    }

    #[test]
    fn uploads_are_found_by_token_and_owner_within_the_bounds() {
        let t0 = DateTime::parse_from_rfc3339("2026-07-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let stash = Stash::default();
        stash.put(upload("a", "ann", 10, t0));
        assert!(stash.get("a", "ann", t0).is_some());
        assert!(stash.get("a", "bob", t0).is_none(), "another user's token");
        assert!(
            stash
                .get("a", "ann", t0 + Duration::minutes(TTL_MINUTES))
                .is_none(),
            "expired"
        );
        for i in 0..MAX_FILES {
            stash.put(upload(&format!("f{i}"), "ann", 10, t0));
        }
        assert!(stash.get("a", "ann", t0).is_none(), "the oldest went first");
        stash.put(upload("big", "ann", MAX_BYTES, t0));
        assert_eq!(stash.0.lock().len(), 1, "bytes are bounded too");
    }
}
