//! A transaction's staged writes, by collection and then by id.
//!
//! Two levels rather than one map keyed by `(collection, id)`: a lookup borrows the
//! names it is given (a tuple key had to be built for each lookup, and an import looks
//! records up several times for each one it stages), and below its collection compares
//! ids only. The order is the tuple's, collection then id: the order a
//! collection's staged records are read in, and the order of the log's operations.

use std::collections::BTreeMap;

use super::Staged;
use crate::names::{CollectionName, RecordId};

#[derive(Debug, Default)]
pub(super) struct Writes {
    /// No inner map is empty: a write is replaced, never removed (a delete is staged).
    by_collection: BTreeMap<CollectionName, BTreeMap<RecordId, Staged>>,
}

impl Writes {
    pub(super) fn get(&self, collection: &CollectionName, id: &RecordId) -> Option<&Staged> {
        self.by_collection.get(collection)?.get(id)
    }

    /// Stages `staged` for `collection/id`; answers the write it replaces.
    pub(super) fn insert(
        &mut self,
        collection: &CollectionName,
        id: &RecordId,
        staged: Staged,
    ) -> Option<Staged> {
        self.by_collection
            .entry(collection.clone())
            .or_default()
            .insert(id.clone(), staged)
    }

    pub(super) fn len(&self) -> usize {
        self.by_collection.values().map(BTreeMap::len).sum()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_collection.is_empty()
    }

    /// The staged writes of one collection, in id order.
    pub(super) fn in_collection<'a>(
        &'a self,
        collection: &CollectionName,
    ) -> impl Iterator<Item = (&'a RecordId, &'a Staged)> + 'a {
        self.by_collection.get(collection).into_iter().flatten()
    }

    /// Every staged write, by collection and id.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&CollectionName, &RecordId, &Staged)> {
        self.by_collection
            .iter()
            .flat_map(|(c, records)| records.iter().map(move |(id, staged)| (c, id, staged)))
    }

    /// Every staged write, by collection and id, taken.
    pub(super) fn into_records(self) -> impl Iterator<Item = (CollectionName, RecordId, Staged)> {
        self.by_collection.into_iter().flat_map(|(c, records)| {
            records
                .into_iter()
                .map(move |(id, staged)| (c.clone(), id, staged))
        })
    }
}
