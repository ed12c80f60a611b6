//! Atomic batches: record puts and deletes (with expectations), event
//! appends and idempotency completions in one namespace, committed all or
//! nothing. See `docs/adr/0007-declarative-batches.md` for why a batch is a
//! list of writes rather than a closure.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::cx::Cx;
use crate::error::Result;
use crate::events::{Appended, NewEvent, PreparedEvent};
use crate::records::{Expect, PutRecord, Record};
use crate::time::Timestamp;

pub mod op;

use op::Apply;

pub use crate::limits::MAX_BATCH_ITEMS;

/// A list of writes to commit together, built with its methods and handed
/// to [`Handle::apply`](crate::Handle::apply).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub(crate) ops: Vec<BatchOp>,
}

/// One write of a [`Batch`].
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum BatchOp {
    Put {
        collection: String,
        id: String,
        data: Value,
        expect: Expect,
        ttl: Option<Duration>,
    },
    Delete {
        collection: String,
        id: String,
        expect: Expect,
    },
    Append(Vec<NewEvent>),
    Complete {
        scope: String,
        key: String,
        token: String,
        response: Value,
    },
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Put a record if `expect` holds (see [`Handle::put`](crate::Handle::put)).
    pub fn put(
        mut self,
        collection: impl Into<String>,
        id: impl Into<String>,
        data: Value,
        expect: Expect,
    ) -> Self {
        self.ops.push(BatchOp::Put {
            collection: collection.into(),
            id: id.into(),
            data,
            expect,
            ttl: None,
        });
        self
    }

    /// Put a record that expires `ttl` from now.
    pub fn put_with_ttl(
        mut self,
        collection: impl Into<String>,
        id: impl Into<String>,
        data: Value,
        expect: Expect,
        ttl: Duration,
    ) -> Self {
        self.ops.push(BatchOp::Put {
            collection: collection.into(),
            id: id.into(),
            data,
            expect,
            ttl: Some(ttl),
        });
        self
    }

    /// Delete a record if `expect` holds.
    pub fn delete(
        mut self,
        collection: impl Into<String>,
        id: impl Into<String>,
        expect: Expect,
    ) -> Self {
        self.ops.push(BatchOp::Delete {
            collection: collection.into(),
            id: id.into(),
            expect,
        });
        self
    }

    /// Append events to the namespace's log (deduplicated as by
    /// [`Handle::append`](crate::Handle::append)).
    pub fn append(mut self, events: Vec<NewEvent>) -> Self {
        self.ops.push(BatchOp::Append(events));
        self
    }

    /// Complete a claimed idempotency key with its response.
    pub fn complete(
        mut self,
        scope: impl Into<String>,
        key: impl Into<String>,
        token: impl Into<String>,
        response: Value,
    ) -> Self {
        self.ops.push(BatchOp::Complete {
            scope: scope.into(),
            key: key.into(),
            token: token.into(),
            response,
        });
        self
    }

    /// How many writes the batch holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// One validated write of a batch, as a backend receives it.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum BatchItem {
    Put {
        collection: String,
        id: String,
        data: Value,
        expect: Expect,
        expires_at: Option<Timestamp>,
    },
    Delete {
        collection: String,
        id: String,
        expect: Expect,
    },
    Append(Vec<PreparedEvent>),
    Complete {
        scope: String,
        key: String,
        token: String,
        response: Value,
    },
}

impl BatchItem {
    /// A put item as the record write it is; `None` for other items.
    pub fn as_put(&self) -> Option<PutRecord<'_>> {
        match self {
            BatchItem::Put {
                collection,
                id,
                data,
                expect,
                expires_at,
            } => Some(PutRecord {
                collection,
                id,
                data,
                expect: *expect,
                expires_at: *expires_at,
            }),
            _ => None,
        }
    }
}

/// What one write of a batch did, in batch order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// The record as written.
    Put(Record),
    /// The record was deleted.
    Deleted,
    /// Where each event landed (or the original, for a duplicate).
    Appended(Vec<Appended>),
    /// The key was completed.
    Completed,
}

/// The batch primitive a backend implements. Items arrive validated.
///
/// # Contract
/// - The items apply in order, each seeing the ones before, as the calls
///   they stand for would; then all of them commit at once, or none does.
/// - No other call sees part of a batch.
/// - The first item that fails stops the batch: the error is what that call
///   would have returned, marked with the item's index
///   ([`Error::at_index`](crate::Error::at_index)), and nothing is written.
#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Apply `items` in one transaction.
    async fn apply(&self, cx: &Cx, op: &Apply<'_>) -> Result<Vec<Applied>>;
}
