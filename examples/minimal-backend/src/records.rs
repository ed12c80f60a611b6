//! Records: versioned puts with expectations, reads, deletes, listings and
//! counts. No indexes (`create_index` and `find` never reach this store:
//! the handle refuses them, as `indexes` is not declared).

use std::ops::Bound;

use async_trait::async_trait;
use persistkit_core::backend::{check_expect, expectation_error, next_version};
use persistkit_core::op::{
    CountRecords, DeleteRecord, FindRecords, GetRecord, ListIndexes, ListRecords,
};
use persistkit_core::{
    Cx, Error, Expect, Found, Index, PutRecord, Record, RecordStore, Result, Timestamp,
};

use crate::store::{BTreeStore, Space};

/// The record at `(collection, id)` when it is live at `now`.
fn live<'a>(space: &'a Space, collection: &str, id: &str, now: Timestamp) -> Option<&'a Record> {
    space
        .records
        .get(&(collection.to_string(), id.to_string()))
        .filter(|r| r.is_live(now))
}

/// The records of `collection`, in id order, from `after` on (exclusive).
fn collection<'a>(
    space: &'a Space,
    collection: &'a str,
    after: Option<&str>,
) -> impl Iterator<Item = &'a Record> {
    let lower = match after {
        Some(a) => Bound::Excluded((collection.to_string(), a.to_string())),
        None => Bound::Included((collection.to_string(), String::new())),
    };
    space
        .records
        .range((lower, Bound::Unbounded))
        .take_while(move |((c, _), _)| c == collection)
        .map(|(_, r)| r)
}

fn no_indexes() -> Error {
    Error::unsupported("this store declares no indexes")
}

#[async_trait]
impl RecordStore for BTreeStore {
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        let now = cx.now();
        let mut s = self.lock()?;
        let space = s.spaces.entry(cx.ns().to_string()).or_default();
        let current = live(space, put.collection, put.id, now).cloned();
        check_expect(current.as_ref().map(|r| r.version), put.expect)?;
        let rec = match current {
            Some(r) => Record {
                data: put.data.clone(),
                version: next_version(put.collection, put.id, r.version)?,
                updated_at: now,
                expires_at: put.expires_at,
                ..r
            },
            // Absent, or expired: a put starts over at version 1.
            None => Record {
                collection: put.collection.into(),
                id: put.id.into(),
                data: put.data.clone(),
                version: 1,
                created_at: now,
                updated_at: now,
                expires_at: put.expires_at,
            },
        };
        space
            .records
            .insert((rec.collection.clone(), rec.id.clone()), rec.clone());
        Ok(rec)
    }

    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>> {
        let s = self.lock()?;
        Ok(s.spaces
            .get(cx.ns())
            .and_then(|sp| live(sp, op.collection, op.id, cx.now()))
            .cloned())
    }

    async fn delete(&self, cx: &Cx, op: &DeleteRecord<'_>) -> Result<()> {
        let mut s = self.lock()?;
        let space = s.spaces.entry(cx.ns().to_string()).or_default();
        let current = live(space, op.collection, op.id, cx.now()).map(|r| r.version);
        match (current, op.expect) {
            (None, Expect::Version(_)) => Err(expectation_error(op.expect, None)),
            (None, _) => Err(Error::not_found(format!(
                "record {:?}/{:?} does not exist",
                op.collection, op.id
            ))),
            (Some(_), expect) => {
                check_expect(current, expect)?;
                space
                    .records
                    .remove(&(op.collection.to_string(), op.id.to_string()));
                Ok(())
            }
        }
    }

    async fn list_records(&self, cx: &Cx, op: &ListRecords<'_>) -> Result<Vec<Record>> {
        let s = self.lock()?;
        let Some(space) = s.spaces.get(cx.ns()) else {
            return Ok(Vec::new());
        };
        Ok(collection(space, op.collection, op.after)
            .filter(|r| r.is_live(cx.now()))
            .take(op.limit)
            .cloned()
            .collect())
    }

    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>> {
        let s = self.lock()?;
        let mut v: Vec<String> = s
            .spaces
            .get(cx.ns())
            .map(|sp| sp.records.keys().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default();
        v.dedup();
        Ok(v)
    }

    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64> {
        let s = self.lock()?;
        let Some(space) = s.spaces.get(cx.ns()) else {
            return Ok(0);
        };
        Ok(collection(space, op.collection, None)
            .filter(|r| r.is_live(cx.now()))
            .count() as u64)
    }

    async fn create_index(&self, _cx: &Cx, _index: &Index) -> Result<bool> {
        Err(no_indexes())
    }

    async fn list_indexes(&self, _cx: &Cx, _op: &ListIndexes<'_>) -> Result<Vec<Index>> {
        Ok(Vec::new())
    }

    async fn find(&self, _cx: &Cx, _op: &FindRecords<'_>) -> Result<Vec<Found>> {
        Err(no_indexes())
    }
}
