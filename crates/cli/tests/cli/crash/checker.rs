//! The crash test's checker, in the style of Jepsen's set checker.
//!
//! Every client owns its records, so it knows what each of them may hold: after an
//! acknowledged write exactly the written value, after a definite failure the value
//! before, after an unknown outcome (the server died mid-request) either. A check compares
//! what the restarted server shows with those possibilities, then collapses the model to
//! what it saw (a read settles an unknown). It also checks the constraints over everything
//! live: no two stays of a room overlap, no two share a code.

use std::collections::{BTreeMap, BTreeSet};

/// The fields of a stay the test writes and checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stay {
    pub room: i64,
    pub start: i64,
    pub end: i64,
    pub code: String,
    pub label: String,
    pub deleted: bool,
}

/// What a request's answer tells about its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the write is committed.
    Acked,
    /// A definite 4xx refusal: the write is not committed.
    Failed,
    /// No answer, or a 5xx: either.
    Unknown,
}

/// What a note may be, after the appends a client made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Present,
    Absent,
    Either,
}

/// One record's possible states.
#[derive(Debug, Default)]
struct Possible {
    /// Acceptable contents; `None` means "does not exist".
    states: Vec<Option<Stay>>,
    notes: BTreeMap<String, Fate>,
}

/// What the clients did, and what it allows.
#[derive(Debug, Default)]
pub struct Model {
    records: BTreeMap<String, Possible>,
}

/// What the server shows for one record.
#[derive(Debug, Clone)]
pub struct Seen {
    pub stay: Stay,
    pub notes: BTreeSet<String>,
}

impl Model {
    /// The record's state when the client knows it exactly (`None` if it is absent or
    /// uncertain).
    pub fn known(&self, id: &str) -> Option<&Stay> {
        match self.records.get(id).map(|p| p.states.as_slice()) {
            Some([Some(stay)]) => Some(stay),
            _ => None,
        }
    }

    /// Ids of records known to exist.
    pub fn ids(&self) -> Vec<String> {
        self.records
            .keys()
            .filter(|id| self.known(id).is_some())
            .cloned()
            .collect()
    }

    /// A write that would leave the record as `new` (a create when it did not exist).
    pub fn write(&mut self, id: &str, new: Stay, outcome: Outcome) {
        let p = self
            .records
            .entry(id.to_string())
            .or_insert_with(|| Possible {
                states: vec![None],
                ..Possible::default()
            });
        match outcome {
            Outcome::Acked => p.states = vec![Some(new)],
            Outcome::Failed => {}
            Outcome::Unknown => p.states.push(Some(new)),
        }
    }

    /// An append of note `text` to record `id`.
    pub fn append(&mut self, id: &str, text: &str, outcome: Outcome) {
        let fate = match outcome {
            Outcome::Acked => Fate::Present,
            Outcome::Failed => Fate::Absent,
            Outcome::Unknown => Fate::Either,
        };
        if let Some(p) = self.records.get_mut(id) {
            p.notes.insert(text.to_string(), fate);
        }
    }

    /// Merges another client's model (clients own disjoint records).
    pub fn merge(&mut self, other: Model) {
        self.records.extend(other.records);
    }

    /// Splits the records out by owner prefix (`c{n}-`), for the next round's clients.
    pub fn take_owned(&mut self, prefix: &str) -> Model {
        let ids: Vec<String> = self
            .records
            .keys()
            .filter(|id| id.starts_with(prefix))
            .cloned()
            .collect();
        Model {
            records: ids
                .into_iter()
                .map(|id| {
                    let p = self.records.remove(&id).expect("listed");
                    (id, p)
                })
                .collect(),
        }
    }

    /// Compares what the server shows with what the clients did; returns every problem
    /// found, and collapses the model to what was seen.
    pub fn check(&mut self, seen: &BTreeMap<String, Seen>) -> Vec<String> {
        let mut problems = Vec::new();
        for id in seen.keys() {
            if !self.records.contains_key(id) {
                problems.push(format!("{id} exists, but no client ever wrote it"));
            }
        }
        for (id, p) in &mut self.records {
            let got = seen.get(id);
            let state = got.map(|s| s.stay.clone());
            if !p.states.contains(&state) {
                problems.push(format!(
                    "{id}: the server shows {state:?}, but the acknowledged history allows \
                     only {:?}",
                    p.states
                ));
            }
            let shown = got.map(|s| &s.notes);
            for (text, fate) in &p.notes {
                let present = shown.is_some_and(|n| n.contains(text));
                match (fate, present) {
                    (Fate::Present, false) => {
                        problems.push(format!("{id}: acknowledged note {text} is missing"))
                    }
                    (Fate::Absent, true) => {
                        problems.push(format!("{id}: refused note {text} appears"))
                    }
                    _ => {}
                }
            }
            for text in shown.into_iter().flatten() {
                if !p.notes.contains_key(text) {
                    problems.push(format!("{id}: note {text} appears but was never sent"));
                }
            }
            p.states = vec![state];
            p.notes = p
                .notes
                .keys()
                .map(|t| {
                    let fate = if shown.is_some_and(|n| n.contains(t)) {
                        Fate::Present
                    } else {
                        Fate::Absent
                    };
                    (t.clone(), fate)
                })
                .collect();
        }
        problems.extend(constraints(seen));
        problems
    }
}

/// The constraints over the live records: no overlap per room, unique codes.
fn constraints(seen: &BTreeMap<String, Seen>) -> Vec<String> {
    let mut problems = Vec::new();
    let live: Vec<(&String, &Stay)> = seen
        .iter()
        .filter(|(_, s)| !s.stay.deleted)
        .map(|(id, s)| (id, &s.stay))
        .collect();
    let mut codes: BTreeMap<&str, &String> = BTreeMap::new();
    for (id, stay) in &live {
        if let Some(other) = codes.insert(&stay.code, id) {
            problems.push(format!("{id} and {other} share the code {}", stay.code));
        }
    }
    for (i, (a, x)) in live.iter().enumerate() {
        for (b, y) in &live[i + 1..] {
            if x.room == y.room && x.start < y.end && y.start < x.end {
                problems.push(format!("{a} and {b} overlap in room {}", x.room));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stay(room: i64, start: i64, code: &str) -> Stay {
        Stay {
            room,
            start,
            end: start + 2,
            code: code.into(),
            label: "v0".into(),
            deleted: false,
        }
    }

    fn seen(stays: &[(&str, Stay, &[&str])]) -> BTreeMap<String, Seen> {
        stays
            .iter()
            .map(|(id, s, notes)| {
                let notes = notes.iter().map(|n| n.to_string()).collect();
                (
                    id.to_string(),
                    Seen {
                        stay: s.clone(),
                        notes,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_checker_catches_lost_phantom_and_conflicting_writes() {
        let mut model = Model::default();
        model.write("a", stay(1, 0, "K1"), Outcome::Acked);
        model.append("a", "a-n1", Outcome::Acked);
        model.write("b", stay(1, 10, "K2"), Outcome::Failed);
        model.write("c", stay(2, 0, "K3"), Outcome::Unknown);
        // Everything as promised: c may or may not be there.
        assert!(
            model
                .check(&seen(&[("a", stay(1, 0, "K1"), &["a-n1"])]))
                .is_empty()
        );

        let mut moved = stay(1, 0, "K1");
        moved.start = 5;
        let problems = model.check(&seen(&[
            ("a", moved, &[]),
            ("b", stay(1, 10, "K2"), &[]),
            ("x", stay(1, 11, "K2"), &[]),
        ]));
        let text = problems.join("\n");
        assert!(text.contains("a: the server shows"), "{text}");
        assert!(text.contains("acknowledged note a-n1 is missing"), "{text}");
        assert!(
            text.contains("x exists, but no client ever wrote it"),
            "{text}"
        );
        assert!(text.contains("overlap in room 1"), "{text}");
        assert!(text.contains("share the code K2"), "{text}");
    }
}
