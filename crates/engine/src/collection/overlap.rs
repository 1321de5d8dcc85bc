//! Overlap index for exclusion constraints on half-open ranges.
//!
//! This module provides the index behind a constraint like "no two live
//! records with the same `property_id` may have overlapping
//! `[check_in, check_out)` ranges". Ranges are **half-open**: `[a, b)` and
//! `[b, c)` do not overlap, so a same-day turnover (one booking ends exactly
//! when the next starts) is allowed. Empty or inverted ranges (`start >= end`)
//! are never admitted.
//!
//! # What it owns
//!
//! * [`Bound`]: a totally ordered range endpoint (a non-NaN number or a
//!   string). Numbers order before strings; strings compare by bytes, so
//!   ISO-8601 dates/datetimes written in one consistent format compare
//!   chronologically.
//! * [`OverlapIndex`]: per constraint key (the canonical form of e.g. the
//!   `property_id` value, computed by the caller), the set of stored intervals
//!   with the id of the record that owns each one.
//!
//! The index lives inside an immutable database snapshot, so it is built from
//! [`imbl::OrdMap`]s: cloning is O(1) and an update copies only the B-tree
//! paths it touches, leaving every other snapshot that shares the structure
//! unchanged.
//!
//! # Design: intervals under one key are pairwise disjoint
//!
//! Every interval is checked against the others under its key before it is
//! admitted ([`OverlapIndex::insert_checked`]), so **the intervals stored under
//! one key are pairwise disjoint and non-empty**. This invariant is what makes
//! the index small and fast:
//!
//! * distinct intervals have distinct starts, so the per-key map is keyed by
//!   start alone (`start -> (end, id)`);
//! * sorted by start, disjoint intervals also have sorted ends. Among all stored
//!   intervals with `start < q_end`, the one with the greatest start therefore
//!   also has the greatest end, and `[q_start, q_end)` overlaps some stored
//!   interval iff it overlaps *that* one. A query is a single O(log n)
//!   predecessor lookup; no interval tree or augmented max-end data is needed.
//!
//! The unchecked [`OverlapIndex::insert`] exists for rebuilding the index from
//! data that was already validated; it trusts the caller to keep the invariant.
//! If the invariant is broken, [`OverlapIndex::find_overlap`] may miss
//! conflicts.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use imbl::OrdMap;

/// A totally ordered `f64` that is never NaN.
///
/// `-0.0` is normalised to `0.0`, so equality, ordering and hashing agree with
/// numeric comparison (infinities are allowed).
#[derive(Clone, Copy, Debug)]
pub struct OrdF64(f64);

impl OrdF64 {
    /// Wraps `v`, or returns `None` if it is NaN.
    pub fn new(v: f64) -> Option<OrdF64> {
        if v.is_nan() {
            None
        } else if v == 0.0 {
            Some(OrdF64(0.0))
        } else {
            Some(OrdF64(v))
        }
    }

    /// The wrapped value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for OrdF64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for OrdF64 {}

impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> Ordering {
        // Without NaN and with -0.0 normalised, total_cmp is numeric order.
        self.0.total_cmp(&other.0)
    }
}

impl Hash for OrdF64 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// A range endpoint.
///
/// Numbers order before strings; numbers compare by value, strings by bytes
/// (ISO-8601 dates/datetimes in one consistent format compare correctly).
/// Numbers come from JSON as `f64`, so integers beyond 2^53 may compare
/// imprecisely.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bound {
    /// A numeric endpoint.
    Num(OrdF64),
    /// A string endpoint, compared bytewise.
    Text(Arc<str>),
}

impl Bound {
    /// A numeric bound, or `None` if `v` is NaN.
    pub fn num(v: f64) -> Option<Bound> {
        OrdF64::new(v).map(Bound::Num)
    }

    /// A string bound.
    pub fn text(s: &str) -> Bound {
        Bound::Text(Arc::from(s))
    }

    /// Converts a JSON number or string; any other value yields `None`.
    pub fn from_json(v: &serde_json::Value) -> Option<Bound> {
        match v {
            serde_json::Value::Number(n) => Bound::num(n.as_f64()?),
            serde_json::Value::String(s) => Some(Bound::text(s)),
            _ => None,
        }
    }
}

/// Why [`OverlapIndex::insert_checked`] refused an interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverlapError<Id> {
    /// The interval overlaps the stored interval owned by this id.
    Conflict(Id),
    /// The interval is empty or inverted (`start >= end`).
    EmptyRange,
}

impl<Id: fmt::Debug> fmt::Display for OverlapError<Id> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverlapError::Conflict(id) => write!(f, "range overlaps the range of record {id:?}"),
            OverlapError::EmptyRange => f.write_str("range is empty: start must be less than end"),
        }
    }
}

impl<Id: fmt::Debug> std::error::Error for OverlapError<Id> {}

/// One stored interval's end and owner; its start is the map key.
#[derive(Clone, Debug)]
struct Entry<Id> {
    end: Bound,
    id: Id,
}

/// Persistent index of pairwise-disjoint half-open intervals per key.
///
/// See the [module docs](self) for the disjointness invariant. Cloning is
/// O(1); clones are independent snapshots.
#[derive(Clone, Debug)]
pub struct OverlapIndex<Id> {
    /// Canonical key -> (start -> (end, id)). Never holds an empty inner map.
    keys: OrdMap<String, OrdMap<Bound, Entry<Id>>>,
    /// Total number of stored intervals over all keys.
    len: usize,
}

impl<Id> Default for OverlapIndex<Id> {
    fn default() -> Self {
        OverlapIndex {
            keys: OrdMap::new(),
            len: 0,
        }
    }
}

impl<Id: Clone + Ord + fmt::Debug> OverlapIndex<Id> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the id of a stored interval under `key` that overlaps
    /// `[start, end)`, if any. An empty or inverted query range overlaps
    /// nothing.
    ///
    /// O(log n): relies on the disjointness invariant (see the module docs),
    /// so only the stored interval with the greatest start `< end` is checked.
    pub fn find_overlap(&self, key: &str, start: &Bound, end: &Bound) -> Option<&Id> {
        if start >= end {
            return None;
        }
        let (_, candidate) = self.keys.get(key)?.range::<_, Bound>(..end).next_back()?;
        (candidate.end > *start).then_some(&candidate.id)
    }

    /// Inserts `[start, end)` for `id` under `key` unless it is empty or
    /// overlaps a stored interval under the same key.
    ///
    /// This is the only way to admit new data while keeping the invariant that
    /// intervals under one key are pairwise disjoint. On error the index is
    /// unchanged; [`OverlapError::Conflict`] carries the id of one overlapping
    /// record.
    pub fn insert_checked(
        &mut self,
        key: &str,
        start: Bound,
        end: Bound,
        id: Id,
    ) -> Result<(), OverlapError<Id>> {
        if start >= end {
            return Err(OverlapError::EmptyRange);
        }
        if let Some(other) = self.find_overlap(key, &start, &end) {
            return Err(OverlapError::Conflict(other.clone()));
        }
        self.insert(key, start, end, id);
        Ok(())
    }

    /// Inserts `[start, end)` for `id` under `key` **without checking**.
    ///
    /// Use only when rebuilding from already-validated data. The caller must
    /// guarantee that the interval is non-empty (`start < end`) and disjoint
    /// from every interval already stored under `key`; otherwise
    /// [`find_overlap`](Self::find_overlap) may miss conflicts. Because the
    /// per-key map is keyed by start, an interval with the same start as a
    /// stored one replaces it.
    pub fn insert(&mut self, key: &str, start: Bound, end: Bound, id: Id) {
        let entry = Entry { end, id };
        let replaced = match self.keys.get_mut(key) {
            Some(intervals) => intervals.insert(start, entry).is_some(),
            None => {
                self.keys.insert(key.to_owned(), OrdMap::unit(start, entry));
                false
            }
        };
        if !replaced {
            self.len += 1;
        }
    }

    /// Removes the interval starting at `start` under `key` if it belongs to
    /// `id`. Returns whether something was removed. A key whose last interval
    /// is removed is dropped entirely.
    pub fn remove(&mut self, key: &str, start: &Bound, id: &Id) -> bool {
        // Check on the shared structure first so a miss copies nothing.
        match self.keys.get(key).and_then(|m| m.get(start)) {
            Some(entry) if entry.id == *id => {}
            _ => return false,
        }
        let Some(intervals) = self.keys.get_mut(key) else {
            return false;
        };
        intervals.remove(start);
        if intervals.is_empty() {
            self.keys.remove(key);
        }
        self.len -= 1;
        true
    }

    /// Number of stored intervals over all keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no interval is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Instant;

    fn n(v: f64) -> Bound {
        Bound::num(v).unwrap()
    }
    fn d(s: &str) -> Bound {
        Bound::text(s)
    }

    /// All stored intervals as sorted `(key, start, end, id)` tuples.
    fn contents<Id: Clone + Ord>(ix: &OverlapIndex<Id>) -> Vec<(String, Bound, Bound, Id)> {
        let mut out: Vec<_> = ix
            .keys
            .iter()
            .flat_map(|(k, m)| {
                m.iter()
                    .map(move |(s, e)| (k.clone(), s.clone(), e.end.clone(), e.id.clone()))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn same_day_turnover_allowed() {
        let mut ix = OverlapIndex::new();
        ix.insert_checked("p1", d("2024-01-01"), d("2024-01-05"), 1)
            .unwrap();
        ix.insert_checked("p1", d("2024-01-05"), d("2024-01-08"), 2)
            .unwrap();
        assert_eq!(ix.len(), 2);
        assert_eq!(
            ix.insert_checked("p1", d("2024-01-04"), d("2024-01-05"), 3),
            Err(OverlapError::Conflict(1))
        );
        assert_eq!(
            ix.insert_checked("p1", d("2024-01-04"), d("2024-01-06"), 3),
            Err(OverlapError::Conflict(2))
        );
    }

    #[test]
    fn containment_and_identical_ranges_conflict() {
        let mut ix = OverlapIndex::new();
        ix.insert_checked("p", n(10.0), n(20.0), 1).unwrap();
        // New inside old, old inside new, identical.
        assert_eq!(
            ix.insert_checked("p", n(12.0), n(15.0), 2),
            Err(OverlapError::Conflict(1))
        );
        assert_eq!(
            ix.insert_checked("p", n(0.0), n(30.0), 2),
            Err(OverlapError::Conflict(1))
        );
        assert_eq!(
            ix.insert_checked("p", n(10.0), n(20.0), 2),
            Err(OverlapError::Conflict(1))
        );
        // Partial overlaps at either edge.
        assert_eq!(
            ix.insert_checked("p", n(5.0), n(11.0), 2),
            Err(OverlapError::Conflict(1))
        );
        assert_eq!(
            ix.insert_checked("p", n(19.5), n(25.0), 2),
            Err(OverlapError::Conflict(1))
        );
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn adjacent_on_both_sides_allowed() {
        let mut ix = OverlapIndex::new();
        ix.insert_checked("p", n(10.0), n(20.0), 1).unwrap();
        ix.insert_checked("p", n(0.0), n(10.0), 2).unwrap();
        ix.insert_checked("p", n(20.0), n(30.0), 3).unwrap();
        // A gap exactly filled by a new interval.
        ix.insert_checked("p", n(40.0), n(50.0), 4).unwrap();
        ix.insert_checked("p", n(30.0), n(40.0), 5).unwrap();
        assert_eq!(ix.len(), 5);
        assert_eq!(ix.find_overlap("p", &n(29.0), &n(30.0)), Some(&3));
        assert_eq!(ix.find_overlap("p", &n(30.0), &n(31.0)), Some(&5));
        assert_eq!(ix.find_overlap("p", &n(-5.0), &n(0.0)), None);
        assert_eq!(ix.find_overlap("p", &n(50.0), &n(60.0)), None);
    }

    #[test]
    fn empty_and_inverted_ranges_rejected() {
        let mut ix = OverlapIndex::<u32>::new();
        assert_eq!(
            ix.insert_checked("p", n(5.0), n(5.0), 1),
            Err(OverlapError::EmptyRange)
        );
        assert_eq!(
            ix.insert_checked("p", n(6.0), n(5.0), 1),
            Err(OverlapError::EmptyRange)
        );
        assert!(ix.is_empty());
        ix.insert_checked("p", n(0.0), n(10.0), 1).unwrap();
        assert_eq!(ix.find_overlap("p", &n(5.0), &n(3.0)), None);
        assert_eq!(ix.find_overlap("p", &n(5.0), &n(5.0)), None);
    }

    #[test]
    fn plain_insert_for_rebuild() {
        let mut ix = OverlapIndex::new();
        ix.insert("p", n(0.0), n(10.0), 1);
        ix.insert("p", n(10.0), n(20.0), 2);
        assert_eq!(ix.len(), 2);
        // Same start replaces (only possible if the caller broke the invariant).
        ix.insert("p", n(10.0), n(15.0), 3);
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.find_overlap("p", &n(12.0), &n(13.0)), Some(&3));
        assert_eq!(ix.find_overlap("p", &n(16.0), &n(17.0)), None);
    }

    #[test]
    fn different_keys_independent() {
        let mut ix = OverlapIndex::new();
        ix.insert_checked("a", n(0.0), n(10.0), 1).unwrap();
        ix.insert_checked("b", n(0.0), n(10.0), 2).unwrap();
        assert_eq!(ix.find_overlap("a", &n(5.0), &n(6.0)), Some(&1));
        assert_eq!(ix.find_overlap("b", &n(5.0), &n(6.0)), Some(&2));
        assert_eq!(ix.find_overlap("c", &n(5.0), &n(6.0)), None);
        assert_eq!(ix.len(), 2);
    }

    #[test]
    fn remove_then_reinsert() {
        let mut ix = OverlapIndex::new();
        ix.insert_checked("p", n(0.0), n(10.0), 1).unwrap();
        assert!(!ix.remove("p", &n(0.0), &2), "wrong id must not remove");
        assert!(!ix.remove("p", &n(1.0), &1), "wrong start must not remove");
        assert!(!ix.remove("q", &n(0.0), &1), "wrong key must not remove");
        assert!(ix.remove("p", &n(0.0), &1));
        assert!(!ix.remove("p", &n(0.0), &1));
        assert!(ix.is_empty());
        assert!(ix.keys.is_empty(), "empty per-key map must be dropped");
        ix.insert_checked("p", n(5.0), n(15.0), 2).unwrap();
        assert_eq!(ix.find_overlap("p", &n(0.0), &n(6.0)), Some(&2));
    }

    #[test]
    fn numbers_order_before_strings() {
        assert!(n(1e300) < d(""));
        assert!(n(f64::INFINITY) < d("0"));
        assert!(n(-1.0) < n(0.0) && n(0.0) < n(0.5));
        assert_eq!(n(-0.0), n(0.0));
        assert!(d("2024-01-09") < d("2024-01-10"));
        assert!(d("2024-01-01T23:59:59Z") < d("2024-01-02T00:00:00Z"));
        let mut ix = OverlapIndex::new();
        // A numeric range and a text range never overlap each other.
        ix.insert_checked("p", n(0.0), n(100.0), 1).unwrap();
        ix.insert_checked("p", d("2024-01-01"), d("2024-02-01"), 2)
            .unwrap();
        assert_eq!(
            ix.find_overlap("p", &d("2024-01-15"), &d("2024-01-16")),
            Some(&2)
        );
        assert_eq!(ix.find_overlap("p", &n(50.0), &n(51.0)), Some(&1));
    }

    #[test]
    fn from_json_and_nan() {
        use serde_json::json;
        assert_eq!(Bound::from_json(&json!(3)), Some(n(3.0)));
        assert_eq!(Bound::from_json(&json!(-2.5)), Some(n(-2.5)));
        assert_eq!(
            Bound::from_json(&json!("2024-01-01")),
            Some(d("2024-01-01"))
        );
        assert_eq!(Bound::from_json(&json!(null)), None);
        assert_eq!(Bound::from_json(&json!(true)), None);
        assert_eq!(Bound::from_json(&json!([1])), None);
        assert_eq!(Bound::from_json(&json!({"a": 1})), None);
        // JSON cannot carry NaN: serde_json turns it into null.
        assert_eq!(Bound::from_json(&json!(f64::NAN)), None);
        assert_eq!(OrdF64::new(f64::NAN), None);
        assert_eq!(Bound::num(f64::NAN), None);
        assert_eq!(OrdF64::new(-0.0).unwrap().get().to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn clones_are_independent() {
        let mut a = OverlapIndex::new();
        a.insert_checked("p", n(0.0), n(10.0), 1).unwrap();
        a.insert_checked("q", n(0.0), n(10.0), 2).unwrap();
        let before = contents(&a);
        let mut b = a.clone();
        b.insert_checked("p", n(10.0), n(20.0), 3).unwrap();
        assert!(b.remove("q", &n(0.0), &2));
        b.insert_checked("r", n(0.0), n(1.0), 4).unwrap();
        assert_eq!(contents(&a), before);
        assert_eq!(a.len(), 2);
        assert_eq!(a.find_overlap("p", &n(15.0), &n(16.0)), None);
        assert_eq!(b.find_overlap("p", &n(15.0), &n(16.0)), Some(&3));
        assert_eq!(b.len(), 3);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert { key: u8, start: i32, len: i32 },
        RemoveExisting(prop::sample::Index),
        RemoveRandom { key: u8, start: i32, id: u32 },
        Query { key: u8, start: i32, len: i32 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..3, 0i32..30, -2i32..8).prop_map(|(key, start, len)| Op::Insert { key, start, len }),
            2 => any::<prop::sample::Index>().prop_map(Op::RemoveExisting),
            1 => (0u8..3, 0i32..30, 0u32..40).prop_map(|(key, start, id)| Op::RemoveRandom { key, start, id }),
            3 => (0u8..3, -2i32..32, -2i32..10).prop_map(|(key, start, len)| Op::Query { key, start, len }),
        ]
    }

    /// Key 2 uses zero-padded text bounds so both `Bound` kinds are exercised.
    fn bound(key: u8, v: i32) -> Bound {
        if key == 2 {
            d(&format!("{:04}", v + 100))
        } else {
            n(f64::from(v))
        }
    }

    fn key_name(key: u8) -> String {
        format!("k{key}")
    }

    type Model = Vec<(String, Bound, Bound, u32)>;

    fn model_overlaps(model: &Model, key: &str, s: &Bound, e: &Bound) -> Vec<u32> {
        if s >= e {
            return Vec::new();
        }
        model
            .iter()
            .filter(|(k, a, b, _)| k == key && a < e && s < b)
            .map(|t| t.3)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn matches_brute_force(ops in prop::collection::vec(op(), 1..120)) {
            let mut ix = OverlapIndex::<u32>::new();
            let mut model: Model = Vec::new();
            let mut next_id = 0u32;
            for op in ops {
                match op {
                    Op::Insert { key, start, len } => {
                        let (k, s, e) = (key_name(key), bound(key, start), bound(key, start + len));
                        next_id += 1;
                        let hits = model_overlaps(&model, &k, &s, &e);
                        match ix.insert_checked(&k, s.clone(), e.clone(), next_id) {
                            Ok(()) => {
                                prop_assert!(s < e && hits.is_empty());
                                model.push((k, s, e, next_id));
                            }
                            Err(OverlapError::EmptyRange) => prop_assert!(s >= e),
                            Err(OverlapError::Conflict(id)) => {
                                prop_assert!(s < e);
                                prop_assert!(hits.contains(&id), "{id} not in {hits:?}");
                            }
                        }
                    }
                    Op::RemoveExisting(i) => {
                        if !model.is_empty() {
                            let (k, s, _, id) = model.swap_remove(i.index(model.len()));
                            prop_assert!(ix.remove(&k, &s, &id));
                        }
                    }
                    Op::RemoveRandom { key, start, id } => {
                        let (k, s) = (key_name(key), bound(key, start));
                        let pos = model.iter().position(|t| t.0 == k && t.1 == s && t.3 == id);
                        prop_assert_eq!(ix.remove(&k, &s, &id), pos.is_some());
                        if let Some(p) = pos {
                            model.swap_remove(p);
                        }
                    }
                    Op::Query { key, start, len } => {
                        let (k, s, e) = (key_name(key), bound(key, start), bound(key, start + len));
                        let hits = model_overlaps(&model, &k, &s, &e);
                        match ix.find_overlap(&k, &s, &e) {
                            Some(id) => prop_assert!(hits.contains(id)),
                            None => prop_assert!(hits.is_empty()),
                        }
                    }
                }
                let mut sorted = model.clone();
                sorted.sort();
                prop_assert_eq!(contents(&ix), sorted);
                prop_assert_eq!(ix.len(), model.len());
                prop_assert!(ix.keys.values().all(|m| !m.is_empty()));
            }
        }
    }

    #[test]
    #[ignore]
    fn bench_find_overlap() {
        const N: u64 = 10_000;
        const Q: u64 = 100_000;
        let mut ix = OverlapIndex::new();
        for i in 0..N {
            let s = (i * 10) as f64;
            ix.insert_checked("p", n(s), n(s + 7.0), i).unwrap();
        }
        let queries: Vec<(Bound, Bound)> = (0..Q)
            .map(|i| {
                let s = (i.wrapping_mul(2_654_435_761) % (N * 10)) as f64;
                (n(s), n(s + 3.0))
            })
            .collect();
        let t = Instant::now();
        let mut hits = 0usize;
        for (s, e) in &queries {
            if std::hint::black_box(ix.find_overlap("p", s, e)).is_some() {
                hits += 1;
            }
        }
        let per = t.elapsed() / Q as u32;
        println!("find_overlap over {N} intervals: {per:?} per query ({hits} hits of {Q})");
    }
}
