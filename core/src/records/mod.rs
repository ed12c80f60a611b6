//! Records: versioned JSON documents with compare-and-set, declared
//! indexes and `find`.

use async_trait::async_trait;

use crate::cx::Cx;
use crate::error::Result;

mod incr;
pub mod index;
pub mod op;
mod record;

pub use incr::{add_to_field, incr_by_compare_and_set, incr_put, incremented};
pub use index::{Find, FindQuery, Found, Index};
use op::{CountRecords, DeleteRecord, FindRecords, GetRecord, IncrField, ListIndexes, ListRecords};
pub use record::{
    check_expect, expectation_error, next_version, put_refused, version_exhausted, Expect,
    PutRecord, Record, UpdateError,
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
/// - Every write keeps the collection's indexes (see [`crate::records::index`]) in
///   step, in the same transaction; `find` reads one index's key range in
///   (key, id) order.
///
/// # Errors
/// `Conflict` carrying the current version (`None` when absent) when `expect`
/// fails, or built by [`crate::backend::unique_conflict`] when a unique index
/// already has the key; `NotFound` when deleting a record that does not
/// exist (and `expect` does not name a version).
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Create or replace.
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record>;
    /// Add `op.by` to the integer at `op.field` of one record (REC-8): from
    /// `{}` when the record is absent or expired, from 0 when the field is
    /// missing, creating missing parent objects (see
    /// [`incremented`]); the record keeps its
    /// expiry and moves to the next version. One step that no concurrent
    /// writer interleaves with: no increment is lost, and a race is never
    /// the caller's `Conflict`.
    ///
    /// The default reads and writes at the version read, again on a lost
    /// race until the call's deadline
    /// ([`incr_by_compare_and_set`]);
    /// a backend with transactions does it in one.
    ///
    /// # Errors
    /// `InvalidInput` when the field is not an integer, a parent is not an
    /// object or the sum leaves the 64-bit range (nothing written);
    /// `Conflict` from a unique index; as `put` otherwise.
    async fn incr(&self, cx: &Cx, op: &IncrField<'_>) -> Result<Record> {
        incr_by_compare_and_set(self, cx, op).await
    }
    /// Fetch one, unless expired at `now`.
    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>>;
    /// Delete one.
    async fn delete(&self, cx: &Cx, op: &DeleteRecord<'_>) -> Result<()>;
    /// Records with id after `after`, ordered by id, skipping those expired
    /// at `now`.
    async fn list_records(&self, cx: &Cx, op: &ListRecords<'_>) -> Result<Vec<Record>>;
    /// Collections with at least one record (expired ones included until
    /// purged), sorted byte-wise.
    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>>;
    /// How many records of `collection` are live at `now`: the number a
    /// full `list_records` would page through. Answered from the
    /// collection's own key range, never a scan of the namespace.
    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64>;
    /// Declare an index and index the records already there, in one
    /// transaction, after removing the collection's records expired at
    /// `now`. `Ok(false)` when the same index exists already.
    ///
    /// # Errors
    /// `Conflict` when an index of that name has other fields or
    /// uniqueness, or when a unique index finds two records with one key
    /// (nothing is created then).
    async fn create_index(&self, cx: &Cx, index: &Index) -> Result<bool>;
    /// The indexes of `collection` (of every collection when `None`),
    /// ordered by collection then name.
    async fn list_indexes(&self, cx: &Cx, op: &ListIndexes<'_>) -> Result<Vec<Index>>;
    /// Records of `collection` whose key in `query.index` is within
    /// `query.from..query.to` and after `query.after`, in (key, id) order,
    /// skipping those expired at `now`.
    async fn find(&self, cx: &Cx, op: &FindRecords<'_>) -> Result<Vec<Found>>;
}
