//! Records, their indexes and `find`.

use async_trait::async_trait;
use persistkit_core::backend::{incr_put, incremented, no_such_index};
use persistkit_core::op::*;
use persistkit_core::Cx;
use persistkit_core::{Found, Index, PutRecord, Record, RecordStore, Result};
use std::ops::Bound;

use crate::store::*;

#[async_trait]
impl RecordStore for MemoryStore {
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        let ns = cx.ns();
        let now = cx.now();
        let mut s = self.lock()?;
        s.records.entry(ns.to_string()).or_default().put(put, now)
    }

    async fn incr(&self, cx: &Cx, op: &IncrField<'_>) -> Result<Record> {
        let now = cx.now();
        let mut s = self.lock()?;
        let recs = s.records.entry(cx.ns().to_string()).or_default();
        // Read and write under one lock: no writer comes between.
        let current = recs.live(op.collection, op.id, now).cloned();
        let data = incremented(current.as_ref().map(|r| &r.data), op.field, op.by)?;
        let put = incr_put(op, current.as_ref(), &data);
        recs.put(&put, now)
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
