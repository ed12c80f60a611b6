//! Records: versioned JSON documents with compare-and-set.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::index::{FindQuery, Found, Index};
use crate::time::Timestamp;
use crate::validate::MAX_SEQUENCE;

/// What a write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// Anything (or nothing).
    Any,
    /// No record.
    Absent,
    /// Exactly this version (1 or more).
    Version(u64),
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Collection.
    pub collection: String,
    /// Id within the collection.
    pub id: String,
    /// The document.
    pub data: Value,
    /// 1 on creation, +1 per write.
    pub version: u64,
    /// When created.
    pub created_at: Timestamp,
    /// When last written.
    pub updated_at: Timestamp,
    /// When it expires, if it does: from then on every call treats it as
    /// absent, and purge removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl Record {
    /// Whether the record is still visible at `now` (not expired).
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
}

/// One record write, as a backend receives it (validated).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PutRecord<'a> {
    /// Collection.
    pub collection: &'a str,
    /// Id within the collection.
    pub id: &'a str,
    /// The new document.
    pub data: &'a Value,
    /// What the write expects to find.
    pub expect: Expect,
    /// When the record expires (`None`: never). Replaces any earlier expiry.
    pub expires_at: Option<Timestamp>,
}

/// Record primitives a backend implements. Inputs arrive validated.
///
/// # Contract
/// - `put` creates (version 1, `created_at = updated_at = now`) or replaces
///   (version + 1, `updated_at = now`) if `expect` holds.
/// - A record deleted and put again starts over at version 1.
/// - A record whose `expires_at` is at or before `now` is absent for every
///   call that takes `now`: not returned, `NotFound` to delete, and a put
///   over it creates (version 1). It holds no unique key.
/// - `list_records` orders by id byte-wise.
/// - Every write keeps the collection's indexes (see [`crate::index`]) in
///   step, in the same transaction; `find` reads one index's key range in
///   (key, id) order.
///
/// # Errors
/// `Conflict` carrying the current version (`None` when absent) when `expect`
/// fails, or built by [`crate::index::unique_conflict`] when a unique index
/// already has the key; `NotFound` when deleting a record that does not
/// exist (and `expect` does not name a version).
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Create or replace.
    async fn put(&self, ns: &str, put: &PutRecord<'_>, now: Timestamp) -> Result<Record>;
    /// Fetch one, unless expired at `now`.
    async fn get(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Record>>;
    /// Delete one.
    async fn delete(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        expect: Expect,
        now: Timestamp,
    ) -> Result<()>;
    /// Records with id after `after`, ordered by id, skipping those expired
    /// at `now`.
    async fn list_records(
        &self,
        ns: &str,
        collection: &str,
        after: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Record>>;
    /// Collections with at least one record (expired ones included until
    /// purged), sorted byte-wise.
    async fn list_collections(&self, ns: &str) -> Result<Vec<String>>;
    /// Declare an index and index the records already there, in one
    /// transaction, after removing the collection's records expired at
    /// `now`. `Ok(false)` when the same index exists already.
    ///
    /// # Errors
    /// `Conflict` when an index of that name has other fields or
    /// uniqueness, or when a unique index finds two records with one key
    /// (nothing is created then).
    async fn create_index(&self, ns: &str, index: &Index, now: Timestamp) -> Result<bool>;
    /// The indexes of `collection` (of every collection when `None`),
    /// ordered by collection then name.
    async fn list_indexes(&self, ns: &str, collection: Option<&str>) -> Result<Vec<Index>>;
    /// Records of `collection` whose key in `query.index` is within
    /// `query.from..query.to` and after `query.after`, in (key, id) order,
    /// skipping those expired at `now`.
    async fn find(
        &self,
        ns: &str,
        collection: &str,
        query: &FindQuery,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Found>>;
}

/// Whether `expect` holds for a record at version `current` (`None`: absent).
///
/// # Errors
/// `Conflict` carrying `current`, as [`expectation_error`] builds it.
pub fn check_expect(current: Option<u64>, expect: Expect) -> Result<()> {
    match (expect, current) {
        (Expect::Any, _) | (Expect::Absent, None) => Ok(()),
        (Expect::Version(v), Some(c)) if v == c => Ok(()),
        _ => Err(expectation_error(expect, current)),
    }
}

/// The error for a write whose expectation failed, given the version read
/// afterwards. Every backend reports failed expectations through this, so
/// the messages and the carried version agree everywhere.
pub fn expectation_error(expect: Expect, current: Option<u64>) -> Error {
    match (expect, current) {
        (Expect::Version(v), Some(c)) => {
            Error::conflict(Some(c), format!("expected version {v}, found version {c}"))
        }
        (Expect::Version(v), None) => {
            Error::conflict(None, format!("expected version {v}, found no record"))
        }
        (_, Some(c)) => Error::conflict(Some(c), format!("expected no record, found version {c}")),
        // The expectation held when re-read: the record changed in between.
        (_, None) => Error::conflict(None, "the record changed concurrently; retry"),
    }
}

/// The version a write of a record at `current` gets.
///
/// # Errors
/// `InvalidInput` when `current` is the last version ([`MAX_SEQUENCE`]):
/// the record cannot be written again, only deleted.
pub fn next_version(collection: &str, id: &str, current: u64) -> Result<u64> {
    if current >= MAX_SEQUENCE {
        return Err(version_exhausted(collection, id));
    }
    Ok(current + 1)
}

/// The error for writing a record that has reached the last version.
pub fn version_exhausted(collection: &str, id: &str) -> Error {
    Error::invalid(format!(
        "record {collection:?}/{id:?} is at version {MAX_SEQUENCE}, the last one; \
         it cannot be written again (delete it to start over); nothing was written"
    ))
}

/// The error for a conditional write that matched no row, given the version
/// read afterwards: the record's last version when `expect` would have held
/// (see [`version_exhausted`]), else the failed expectation.
pub fn put_refused(collection: &str, id: &str, expect: Expect, current: Option<u64>) -> Error {
    if current == Some(MAX_SEQUENCE) && check_expect(current, expect).is_ok() {
        return version_exhausted(collection, id);
    }
    expectation_error(expect, current)
}

/// `current` (or `{}` when absent) with `by` added to the integer at the
/// JSON pointer `field`: a missing field counts as 0, missing parents are
/// created as objects.
///
/// # Errors
/// `InvalidInput` when the field holds something other than an integer, a
/// parent is not an object, or the sum leaves the 64-bit signed range.
pub(crate) fn add_to_field(current: Option<&Value>, field: &str, by: i64) -> Result<Value> {
    let mut doc = current
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let tokens = crate::index::pointer_tokens(field);
    let (last, parents) = tokens.split_last().expect("a field has a token");
    let mut at = &mut doc;
    for t in parents {
        let Value::Object(map) = at else {
            return Err(Error::invalid(format!(
                "incr: a parent of {field:?} is not an object; nothing was written"
            )));
        };
        at = map
            .entry(t.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    let Value::Object(map) = at else {
        return Err(Error::invalid(format!(
            "incr: the parent of {field:?} is not an object; nothing was written"
        )));
    };
    let old = match map.get(last) {
        None => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            Error::invalid(format!(
                "incr: {field:?} holds {v}, not a 64-bit integer; nothing was written"
            ))
        })?,
    };
    let new = old.checked_add(by).ok_or_else(|| {
        Error::invalid(format!(
            "incr: {old} + {by} at {field:?} leaves the 64-bit range; nothing was written"
        ))
    })?;
    map.insert(last.clone(), Value::from(new));
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn add_to_field_rules() {
        assert_eq!(add_to_field(None, "/n", 2).unwrap(), json!({"n": 2}));
        assert_eq!(
            add_to_field(Some(&json!({"a": {"n": 1}, "x": 1})), "/a/n", -3).unwrap(),
            json!({"a": {"n": -2}, "x": 1})
        );
        assert_eq!(
            add_to_field(Some(&json!({})), "/a/b", 1).unwrap(),
            json!({"a": {"b": 1}})
        );
        assert!(add_to_field(Some(&json!({"n": "1"})), "/n", 1).is_err());
        assert!(add_to_field(Some(&json!({"n": 1.5})), "/n", 1).is_err());
        assert!(add_to_field(Some(&json!({"a": 1})), "/a/b", 1).is_err());
        assert!(add_to_field(Some(&json!({"n": i64::MAX})), "/n", 1).is_err());
        assert!(add_to_field(Some(&json!([1])), "/0", 1).is_err());
    }
}
