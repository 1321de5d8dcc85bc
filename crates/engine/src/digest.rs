//! Signed audit digests: a signature over the log head, every so often, so that a log cut
//! short, re-hashed or rewritten together with its watermarks is still caught.
//!
//! The hash chain catches an edited entry, and the durable marks (`marks`) catch removed
//! newest entries, but someone who can write the bucket can also rewrite the watermarks or
//! re-hash every entry after the one they changed. A digest is signed with an Ed25519 key
//! the bucket does not hold: `{from_seq, last_seq, head_hash, prev, key_id, at}` and the
//! signature over its canonical JSON. Each digest names the previous one (its `last_seq`
//! and the SHA-256 of its file), so digests form their own chain, and `audit verify
//! --public-key K` checks the signatures, that the chain has no gap, and that the log still
//! holds, at each digest's `last_seq`, the entry whose hash was signed.
//!
//! Layout and the race between processes. Digest `n` covers `(prev.last_seq, last_seq]`;
//! which process writes it is decided by a create-only claim keyed by the previous digest:
//! `_audit/claims/{prev last_seq:020}.json` holds the digest; the winner (and anyone who
//! later finds a claim without its digest, after a crash) writes the same bytes,
//! create-only, to `_audit/digests/{last_seq:020}.json`. So two processes never write two
//! digests after the same predecessor, and the chain never forks.
//!
//! The window: entries newer than the newest digest are protected by the hash chain and the
//! watermarks only. A digest is written every [`DigestOptions::every_entries`] entries or
//! [`DigestOptions::every`], whichever comes first, when there is anything new.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::SecondsFormat;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use crate::canonical::{sha256_hex, to_canonical_string};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::names::Seq;
use crate::state::State;
use crate::store::DynStore;

const DIGESTS_DIR: &str = "_audit/digests";
const CLAIMS_DIR: &str = "_audit/claims";
const FORMAT: u32 = 1;

/// A signing key and when to sign.
#[derive(Clone)]
pub struct DigestOptions {
    pub key: Arc<SigningKey>,
    /// Sign after this many new entries...
    pub every_entries: u64,
    /// ...or after this long, whichever comes first (only when there is anything new).
    pub every: Duration,
}

impl std::fmt::Debug for DigestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestOptions")
            .field("key_id", &key_id(&self.key.verifying_key()))
            .field("every_entries", &self.every_entries)
            .field("every", &self.every)
            .finish()
    }
}

impl DigestOptions {
    /// From a base64 Ed25519 secret key (its 32-byte seed), with the default cadence:
    /// every 1,000 entries or 60 s.
    pub fn from_base64(secret: &str) -> Result<DigestOptions> {
        let bytes: [u8; 32] = STANDARD
            .decode(secret.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                Error::invalid(
                    "digest signing key",
                    "expected the base64 of a 32-byte Ed25519 seed",
                )
            })?;
        Ok(DigestOptions {
            key: Arc::new(SigningKey::from_bytes(&bytes)),
            every_entries: 1000,
            every: Duration::from_secs(60),
        })
    }
}

/// A new key pair: (secret seed, public key), both base64.
pub fn generate_key() -> (String, String) {
    let seed: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&seed);
    (
        STANDARD.encode(seed),
        STANDARD.encode(key.verifying_key().to_bytes()),
    )
}

/// Parses a base64 Ed25519 public key.
pub fn public_key_from_base64(text: &str) -> Result<VerifyingKey> {
    let bytes: [u8; 32] = STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::invalid("public key", "expected the base64 of 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| Error::invalid("public key", e.to_string()))
}

/// A public key as `audit verify --public-key` takes it (base64).
pub fn public_key_base64(key: &VerifyingKey) -> String {
    STANDARD.encode(key.to_bytes())
}

/// A key's id: the first 16 hex digits of the SHA-256 of the public key.
pub fn key_id(key: &VerifyingKey) -> String {
    sha256_hex(key.as_bytes())[..16].to_string()
}

/// The previous digest, as the next one names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrevDigest {
    pub last_seq: Seq,
    /// SHA-256 of the previous digest's file.
    pub hash: String,
}

/// One signed digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    pub format: u32,
    pub from_seq: Seq,
    pub last_seq: Seq,
    /// The hash of the log entry at `last_seq`.
    pub head_hash: String,
    pub prev: Option<PrevDigest>,
    pub key_id: String,
    pub at: String,
    /// Ed25519 over the canonical JSON of every other field, base64.
    pub signature: String,
}

impl Digest {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut body = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut body {
            map.remove("signature");
        }
        to_canonical_string(&body).into_bytes()
    }

    /// The file's bytes (canonical JSON) and their SHA-256.
    pub fn encode(&self) -> (Vec<u8>, String) {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let bytes = to_canonical_string(&value).into_bytes();
        let hash = sha256_hex(&bytes);
        (bytes, hash)
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<(Digest, String)> {
        let digest: Digest = serde_json::from_slice(bytes).map_err(|e| Error::corrupt(path, e))?;
        Ok((digest, sha256_hex(bytes)))
    }

    /// Checks the signature with whichever of `keys` has the digest's key id.
    pub fn verify_signature(&self, keys: &[VerifyingKey]) -> std::result::Result<(), String> {
        let key = keys
            .iter()
            .find(|k| key_id(k) == self.key_id)
            .ok_or_else(|| format!("signed with key {}, which was not given", self.key_id))?;
        let signature = STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or("the signature does not parse")?;
        key.verify(&self.signed_bytes(), &signature)
            .map_err(|_| "the signature does not match".to_string())
    }
}

pub(crate) fn digest_path(last: Seq) -> Path {
    Path::from(format!("{DIGESTS_DIR}/{:020}.json", last.get()))
}

fn claim_path(prev_last: Seq) -> Path {
    Path::from(format!("{CLAIMS_DIR}/{:020}.json", prev_last.get()))
}

/// Positions of the digests present, oldest first.
pub async fn list(store: &DynStore) -> Result<Vec<Seq>> {
    let mut seqs: Vec<Seq> = store
        .list(Some(&Path::from(DIGESTS_DIR)))
        .map_ok(|m| {
            m.location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .and_then(|n| n.parse().ok())
                .map(Seq)
        })
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

async fn read(store: &DynStore, path: &Path) -> Result<Option<(Digest, String)>> {
    match store.get(path).await {
        Ok(got) => Digest::decode(path, &got.bytes().await?).map(Some),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn create(store: &DynStore, path: &Path, bytes: Vec<u8>) -> Result<bool> {
    crate::store::create_if_absent(store, path, bytes).await
}

/// The newest digest: the newest file, then any claim made after it whose file a crash
/// left unwritten (written now, so the chain in `_audit/digests/` is whole).
pub async fn newest(store: &DynStore) -> Result<Option<(Digest, String)>> {
    let mut newest = match list(store).await?.last() {
        Some(seq) => read(store, &digest_path(*seq)).await?,
        None => None,
    };
    loop {
        let after = newest.as_ref().map_or(Seq::ZERO, |(d, _)| d.last_seq);
        match read(store, &claim_path(after)).await? {
            Some((claimed, hash)) if claimed.last_seq > after => {
                create(store, &digest_path(claimed.last_seq), claimed.encode().0).await?;
                newest = Some((claimed, hash));
            }
            _ => return Ok(newest),
        }
    }
}

/// Signs the state `(last_seq, head_hash)` after `prev` and tries to claim its place.
/// Returns the digest that holds the place (ours, or the one another process wrote).
async fn sign_next(
    store: &DynStore,
    opts: &DigestOptions,
    prev: Option<&(Digest, String)>,
    last_seq: Seq,
    head_hash: &str,
    at: String,
) -> Result<(Digest, String)> {
    let prev_last = prev.map_or(Seq::ZERO, |(d, _)| d.last_seq);
    let mut digest = Digest {
        format: FORMAT,
        from_seq: prev_last.next(),
        last_seq,
        head_hash: head_hash.to_string(),
        prev: prev.map(|(d, hash)| PrevDigest {
            last_seq: d.last_seq,
            hash: hash.clone(),
        }),
        key_id: key_id(&opts.key.verifying_key()),
        at,
        signature: String::new(),
    };
    digest.signature = STANDARD.encode(opts.key.sign(&digest.signed_bytes()).to_bytes());
    let (bytes, hash) = digest.encode();
    let claim = claim_path(prev_last);
    if !create(store, &claim, bytes.clone()).await? {
        // Another process signed after the same predecessor first: its digest holds.
        let (theirs, hash) = read(store, &claim)
            .await?
            .ok_or_else(|| Error::corrupt(&claim, "vanished after a lost create"))?;
        create(store, &digest_path(theirs.last_seq), theirs.encode().0).await?;
        return Ok((theirs, hash));
    }
    create(store, &digest_path(last_seq), bytes).await?;
    Ok((digest, hash))
}

/// The newest digest this process knows of (written by it or found in the store).
pub type Newest = Arc<parking_lot::Mutex<Option<Digest>>>;

/// The digest writer: checks once a second whether a digest is due.
///
/// It names only what it needs (the store, the clock and the newest state), not the
/// handle's shared state, so the options below `DbOptions` do not depend on the handle.
pub(crate) async fn run(
    store: DynStore,
    clock: Arc<dyn Clock>,
    snapshot: impl Fn() -> Arc<State> + Send + 'static,
    opts: DigestOptions,
    known: Newest,
    mut stop: watch::Receiver<()>,
) {
    let mut last: Option<(Digest, String)> = None;
    let mut loaded = false;
    let mut since = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(1).min(opts.every));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let result = async {
            if !loaded {
                last = newest(&store).await?;
                *known.lock() = last.as_ref().map(|(d, _)| d.clone());
                loaded = true;
            }
            let state = snapshot();
            let signed = last.as_ref().map_or(Seq::ZERO, |(d, _)| d.last_seq);
            let new = state.seq().get().saturating_sub(signed.get());
            if new == 0 || (new < opts.every_entries && since.elapsed() < opts.every) {
                return Ok::<_, Error>(());
            }
            let at = clock.now().to_rfc3339_opts(SecondsFormat::Millis, true);
            let next = sign_next(
                &store,
                &opts,
                last.as_ref(),
                state.seq(),
                state.head_hash(),
                at,
            )
            .await?;
            tracing::debug!(last_seq = %next.0.last_seq, "audit digest written");
            *known.lock() = Some(next.0.clone());
            last = Some(next);
            since = Instant::now();
            Ok(())
        }
        .await;
        if let Err(e) = result {
            // Re-read the chain next time: another process may have moved it.
            loaded = false;
            tracing::warn!(error = %e, "writing the audit digest failed; retrying");
        }
    }
}

/// What `audit verify --public-key` found in the digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestReport {
    pub verified: usize,
    /// The newest digest's position, when there is one.
    pub newest: Option<Seq>,
    /// The first problem: which digest, and what.
    pub problem: Option<(Seq, String)>,
}

/// Checks every digest: its signature under one of `keys`, that each names its predecessor
/// (no gap, no fork), and that the log holds, at each `last_seq`, the entry that was signed.
pub async fn verify(store: &DynStore, keys: &[VerifyingKey]) -> Result<DigestReport> {
    let mut report = DigestReport {
        verified: 0,
        newest: None,
        problem: None,
    };
    let mut prev: Option<(Digest, String)> = None;
    for seq in list(store).await? {
        let path = digest_path(seq);
        let fail = |report: &mut DigestReport, why: String| {
            report.problem = Some((seq, why));
        };
        let (digest, hash) = match read(store, &path).await {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(Error::Corrupt { reason, .. }) => {
                fail(&mut report, format!("does not parse: {reason}"));
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        report.newest = Some(seq);
        if digest.last_seq != seq {
            fail(
                &mut report,
                format!("is stored at {seq} but covers {}", digest.last_seq),
            );
            return Ok(report);
        }
        if let Err(why) = digest.verify_signature(keys) {
            fail(&mut report, why);
            return Ok(report);
        }
        let expected_prev = prev.as_ref().map(|(d, h)| PrevDigest {
            last_seq: d.last_seq,
            hash: h.clone(),
        });
        let expected_from = prev.as_ref().map_or(Seq(1), |(d, _)| d.last_seq.next());
        if digest.prev != expected_prev || digest.from_seq != expected_from {
            fail(
                &mut report,
                "does not follow the digest before it (a digest is missing or was replaced)"
                    .to_string(),
            );
            return Ok(report);
        }
        match crate::log::read_entry(store, seq).await {
            Ok(Some(entry)) if entry.hash == digest.head_hash => {}
            Ok(Some(_)) => {
                fail(
                    &mut report,
                    format!("the log entry at {seq} is not the one that was signed"),
                );
                return Ok(report);
            }
            Ok(None) => {
                fail(
                    &mut report,
                    format!("the log no longer reaches position {seq}"),
                );
                return Ok(report);
            }
            Err(Error::Corrupt { reason, .. }) => {
                fail(
                    &mut report,
                    format!("the log entry at {seq} is damaged: {reason}"),
                );
                return Ok(report);
            }
            Err(e) => return Err(e),
        }
        report.verified += 1;
        prev = Some((digest, hash));
    }
    Ok(report)
}
