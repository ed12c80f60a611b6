//! Records, their indexes and `find`.

use async_trait::async_trait;
use persistkit_core::backend::{check_expect, expectation_error, next_version, unique_conflict};
use persistkit_core::backend::{index_differs, no_such_index};
use persistkit_core::op::*;
use persistkit_core::Cx;
use persistkit_core::{
    Error, Expect, Found, Index, PutRecord, Record, RecordStore, Result, Timestamp,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::store::*;

/// One namespace's records and the indexes over them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Records {
    pub(crate) by_id: BTreeMap<(String, String), Record>,
    /// (collection, index name) → the index.
    pub(crate) indexes: BTreeMap<(String, String), MemIndex>,
}

#[derive(Debug, Clone)]
pub(crate) struct MemIndex {
    pub(crate) def: Index,
    /// (key, id) of every record of the collection that has a key.
    pub(crate) entries: BTreeSet<(Vec<u8>, String)>,
}

impl Records {
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn live(&self, collection: &str, id: &str, now: Timestamp) -> Option<&Record> {
        self.by_id
            .get(&(collection.to_string(), id.to_string()))
            .filter(|r| r.is_live(now))
    }

    pub(crate) fn indexes_of<'a>(
        &'a self,
        collection: &'a str,
    ) -> impl Iterator<Item = &'a MemIndex> {
        self.indexes
            .range((collection.to_string(), String::new())..)
            .take_while(move |((c, _), _)| c == collection)
            .map(|(_, ix)| ix)
    }

    /// The first unique index of `collection` where a live record other
    /// than `id` has `data`'s key: (index name, that record's id).
    pub(crate) fn unique_holder(
        &self,
        collection: &str,
        id: &str,
        data: &Value,
        now: Timestamp,
    ) -> Option<(String, String)> {
        self.indexes_of(collection)
            .filter(|ix| ix.def.unique)
            .find_map(|ix| {
                let key = ix.def.key_of(data)?;
                ix.entries
                    .range((key.clone(), String::new())..)
                    .take_while(|(k, _)| *k == key)
                    .find(|(_, other)| other != id && self.live(collection, other, now).is_some())
                    .map(|(_, other)| (ix.def.name.clone(), other.clone()))
            })
    }

    /// Records other than `id`, expired at `now`, that hold one of the
    /// unique keys `data` would take.
    pub(crate) fn expired_holders(
        &self,
        collection: &str,
        id: &str,
        data: &Value,
        now: Timestamp,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for ix in self.indexes_of(collection).filter(|ix| ix.def.unique) {
            let Some(key) = ix.def.key_of(data) else {
                continue;
            };
            out.extend(
                ix.entries
                    .range((key.clone(), String::new())..)
                    .take_while(|(k, _)| *k == key)
                    .filter(|(_, other)| other != id && self.live(collection, other, now).is_none())
                    .map(|(_, other)| other.clone()),
            );
        }
        out
    }

    pub(crate) fn remove(&mut self, collection: &str, id: &str) -> Option<Record> {
        let old = self
            .by_id
            .remove(&(collection.to_string(), id.to_string()))?;
        for ix in self
            .indexes
            .values_mut()
            .filter(|ix| ix.def.collection == collection)
        {
            if let Some(key) = ix.def.key_of(&old.data) {
                ix.entries.remove(&(key, id.to_string()));
            }
        }
        Some(old)
    }

    pub(crate) fn insert(&mut self, rec: Record) {
        self.remove(&rec.collection, &rec.id);
        for ix in self
            .indexes
            .values_mut()
            .filter(|ix| ix.def.collection == rec.collection)
        {
            if let Some(key) = ix.def.key_of(&rec.data) {
                ix.entries.insert((key, rec.id.clone()));
            }
        }
        self.by_id
            .insert((rec.collection.clone(), rec.id.clone()), rec);
    }

    /// Remove the records that `keep` rejects, keeping indexes in step;
    /// how many went.
    pub(crate) fn retain(&mut self, keep: impl Fn(&Record) -> bool) -> u64 {
        let gone: Vec<(String, String)> = self
            .by_id
            .iter()
            .filter(|(_, r)| !keep(r))
            .map(|(k, _)| k.clone())
            .collect();
        for (c, id) in &gone {
            self.remove(c, id);
        }
        gone.len() as u64
    }

    pub(crate) fn put(&mut self, put: &PutRecord<'_>, now: Timestamp) -> Result<Record> {
        let (collection, id) = (put.collection, put.id);
        let current = self.live(collection, id, now);
        check_expect(current.map(|r| r.version), put.expect)?;
        if let Some((index, holder)) = self.unique_holder(collection, id, put.data, now) {
            return Err(unique_conflict(collection, &index, &holder));
        }
        // Expired records holding one of the keys go, as they do in the
        // SQL backends, whose unique indexes would refuse the write.
        for other in self.expired_holders(collection, id, put.data, now) {
            self.remove(collection, &other);
        }
        let current = self.live(collection, id, now);
        let rec = match current {
            Some(r) => Record {
                data: put.data.clone(),
                version: next_version(collection, id, r.version)?,
                updated_at: now,
                expires_at: put.expires_at,
                ..r.clone()
            },
            None => Record {
                collection: collection.into(),
                id: id.into(),
                data: put.data.clone(),
                version: 1,
                created_at: now,
                updated_at: now,
                expires_at: put.expires_at,
            },
        };
        self.insert(rec.clone());
        Ok(rec)
    }

    pub(crate) fn delete(
        &mut self,
        collection: &str,
        id: &str,
        expect: Expect,
        now: Timestamp,
    ) -> Result<()> {
        let current = self.live(collection, id, now).map(|r| r.version);
        match (current, expect) {
            (None, Expect::Version(_)) => Err(expectation_error(expect, None)),
            (None, _) => Err(Error::not_found(format!(
                "record {collection:?}/{id:?} does not exist"
            ))),
            (Some(_), _) => {
                check_expect(current, expect)?;
                self.remove(collection, id);
                Ok(())
            }
        }
    }

    pub(crate) fn create_index(&mut self, index: &Index, now: Timestamp) -> Result<bool> {
        let name = (index.collection.clone(), index.name.clone());
        if let Some(existing) = self.indexes.get(&name) {
            return if existing.def == *index {
                Ok(false)
            } else {
                Err(index_differs(&existing.def, index))
            };
        }
        let coll = index.collection.as_str();
        self.retain(|r| r.collection != coll || r.is_live(now));
        let mut entries = BTreeSet::new();
        for r in self.by_id.values().filter(|r| r.collection == coll) {
            if let Some(key) = index.key_of(&r.data) {
                if index.unique {
                    if let Some((_, other)) = entries
                        .range((key.clone(), String::new())..)
                        .find(|(k, _)| *k == key)
                    {
                        return Err(unique_conflict(coll, &index.name, other));
                    }
                }
                entries.insert((key, r.id.clone()));
            }
        }
        self.indexes.insert(
            name,
            MemIndex {
                def: index.clone(),
                entries,
            },
        );
        Ok(true)
    }
}

#[async_trait]
impl RecordStore for MemoryStore {
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        let ns = cx.ns();
        let now = cx.now();
        let mut s = self.lock()?;
        s.records.entry(ns.to_string()).or_default().put(put, now)
    }

    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>> {
        let ns = cx.ns();
        let now = cx.now();
        let GetRecord { collection, id, .. } = *op;
        let s = self.lock()?;
        Ok(s.records
            .get(ns)
            .and_then(|m| m.live(collection, id, now))
            .cloned())
    }

    async fn delete(&self, cx: &Cx, op: &DeleteRecord<'_>) -> Result<()> {
        let ns = cx.ns();
        let now = cx.now();
        let DeleteRecord {
            collection,
            id,
            expect,
            ..
        } = *op;
        let mut s = self.lock()?;
        s.records
            .entry(ns.to_string())
            .or_default()
            .delete(collection, id, expect, now)
    }

    async fn list_records(&self, cx: &Cx, op: &ListRecords<'_>) -> Result<Vec<Record>> {
        let ns = cx.ns();
        let now = cx.now();
        let ListRecords {
            collection,
            after,
            limit,
            ..
        } = *op;
        let s = self.lock()?;
        let Some(recs) = s.records.get(ns) else {
            return Ok(Vec::new());
        };
        let lower = match after {
            Some(a) => Bound::Excluded((collection.to_string(), a.to_string())),
            None => Bound::Included((collection.to_string(), String::new())),
        };
        Ok(recs
            .by_id
            .range((lower, Bound::Unbounded))
            .take_while(|((c, _), _)| c == collection)
            .filter(|(_, r)| r.is_live(now))
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64> {
        let ns = cx.ns();
        let collection = op.collection;
        let now = cx.now();
        let s = self.lock()?;
        let Some(recs) = s.records.get(ns) else {
            return Ok(0);
        };
        let from = (collection.to_string(), String::new());
        let n = recs
            .by_id
            .range(from..)
            .take_while(|((c, _), _)| c == collection)
            .filter(|(_, r)| r.is_live(now))
            .count();
        Ok(n as u64)
    }

    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>> {
        let ns = cx.ns();
        let s = self.lock()?;
        let mut v: Vec<String> = s
            .records
            .get(ns)
            .map(|m| m.by_id.keys().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default();
        v.dedup();
        Ok(v)
    }

    async fn create_index(&self, cx: &Cx, index: &Index) -> Result<bool> {
        let ns = cx.ns();
        let now = cx.now();
        let mut s = self.lock()?;
        s.records
            .entry(ns.to_string())
            .or_default()
            .create_index(index, now)
    }

    async fn list_indexes(&self, cx: &Cx, op: &ListIndexes<'_>) -> Result<Vec<Index>> {
        let ns = cx.ns();
        let collection = op.collection;
        let s = self.lock()?;
        Ok(s.records
            .get(ns)
            .map(|m| {
                m.indexes
                    .values()
                    .filter(|ix| collection.is_none_or(|c| ix.def.collection == c))
                    .map(|ix| ix.def.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn find(&self, cx: &Cx, op: &FindRecords<'_>) -> Result<Vec<Found>> {
        let ns = cx.ns();
        let now = cx.now();
        let FindRecords {
            collection,
            query,
            limit,
            ..
        } = *op;
        let s = self.lock()?;
        let Some(recs) = s.records.get(ns) else {
            return Ok(Vec::new());
        };
        let Some(ix) = recs
            .indexes
            .get(&(collection.to_string(), query.index.clone()))
        else {
            return Err(no_such_index(collection, &query.index));
        };
        let lower = match &query.after {
            Some((k, id)) if (k, id) >= (&query.from, &String::new()) => {
                Bound::Excluded((k.clone(), id.clone()))
            }
            _ => Bound::Included((query.from.clone(), String::new())),
        };
        Ok(ix
            .entries
            .range((lower, Bound::Unbounded))
            .take_while(|(k, _)| *k < query.to)
            .filter_map(|(k, id)| {
                let record = recs.live(collection, id, now)?.clone();
                Some(Found {
                    key: k.clone(),
                    record,
                })
            })
            .take(limit)
            .collect())
    }
}
