//! Records: versioned JSON documents with compare-and-set, declared
//! indexes and `find`.

use async_trait::async_trait;

use crate::error::Result;
use crate::time::Timestamp;

pub mod index;
mod record;

pub use index::{Find, FindQuery, Found, Index};
pub use record::{
    check_expect, expectation_error, next_version, put_refused, version_exhausted, Expect,
    PutRecord, Record,
};

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
