//! The operations on records, as a backend receives them. A put is
//! [`PutRecord`](super::PutRecord), declaring an index takes the
//! [`Index`](super::Index) itself.

use super::{Expect, FindQuery};

/// Read one record (REC-2), unless expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetRecord<'a> {
    /// Collection.
    pub collection: &'a str,
    /// Id within the collection.
    pub id: &'a str,
}

impl<'a> GetRecord<'a> {
    /// Read `collection`/`id`.
    pub fn new(collection: &'a str, id: &'a str) -> Self {
        GetRecord { collection, id }
    }
}

/// Delete one record if `expect` holds (REC-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeleteRecord<'a> {
    /// Collection.
    pub collection: &'a str,
    /// Id within the collection.
    pub id: &'a str,
    /// What the delete expects to find.
    pub expect: Expect,
}

impl<'a> DeleteRecord<'a> {
    /// Delete `collection`/`id` if `expect` holds.
    pub fn new(collection: &'a str, id: &'a str, expect: Expect) -> Self {
        DeleteRecord {
            collection,
            id,
            expect,
        }
    }
}

/// Page through a collection by id, byte-wise (COM-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListRecords<'a> {
    /// Collection.
    pub collection: &'a str,
    /// Records with an id after this, exclusive.
    pub after: Option<&'a str>,
    /// At most this many.
    pub limit: usize,
}

impl<'a> ListRecords<'a> {
    /// At most `limit` records of `collection` with an id after `after`.
    pub fn new(collection: &'a str, after: Option<&'a str>, limit: usize) -> Self {
        ListRecords {
            collection,
            after,
            limit,
        }
    }
}

/// Count the live records of a collection (REC-11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CountRecords<'a> {
    /// Collection.
    pub collection: &'a str,
}

impl<'a> CountRecords<'a> {
    /// Count the live records of `collection`.
    pub fn new(collection: &'a str) -> Self {
        CountRecords { collection }
    }
}

/// Add to an integer field of one record (REC-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IncrField<'a> {
    /// Collection.
    pub collection: &'a str,
    /// Id within the collection.
    pub id: &'a str,
    /// The field, a JSON pointer (checked).
    pub field: &'a str,
    /// What to add (may be negative).
    pub by: i64,
}

impl<'a> IncrField<'a> {
    /// Add `by` to the integer at `field` of `collection`/`id`.
    pub fn new(collection: &'a str, id: &'a str, field: &'a str, by: i64) -> Self {
        IncrField {
            collection,
            id,
            field,
            by,
        }
    }
}

/// The declared indexes of one collection, or of all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListIndexes<'a> {
    /// The collection (`None`: every collection).
    pub collection: Option<&'a str>,
}

impl<'a> ListIndexes<'a> {
    /// The indexes of `collection`, or of every collection.
    pub fn new(collection: Option<&'a str>) -> Self {
        ListIndexes { collection }
    }
}

/// Records of a collection through one index's key range (REC-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FindRecords<'a> {
    /// Collection.
    pub collection: &'a str,
    /// The index, the key range and where to resume.
    pub query: &'a FindQuery,
    /// At most this many.
    pub limit: usize,
}

impl<'a> FindRecords<'a> {
    /// At most `limit` records of `collection` that `query` selects.
    pub fn new(collection: &'a str, query: &'a FindQuery, limit: usize) -> Self {
        FindRecords {
            collection,
            query,
            limit,
        }
    }
}
