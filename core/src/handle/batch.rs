//! Batches through a handle.

use crate::batch::{Applied, Batch, BatchItem, BatchOp};
use crate::error::{Error, Result};
use crate::limits::MAX_BATCH_ITEMS;
use crate::time::Timestamp;
use crate::validate;
use crate::validate::{check_key, check_record, expiry, prepare_event};

use super::Handle;
use crate::op::*;

impl Handle {
    /// Commit the writes of `batch` (record puts and deletes with
    /// expectations, appends, idempotency completions) in this namespace
    /// all at once, or none of them. The writes apply in order, each seeing
    /// the ones before; no other call sees part of the batch.
    ///
    /// # Errors
    /// The error of the first write that fails, as its own call would
    /// return it, marked with its index in the batch
    /// ([`Error::index`]); nothing is written then. `InvalidInput` for bad
    /// input in any write, or more than 1 000 writes.
    pub async fn apply(&self, batch: &Batch) -> Result<Vec<Applied>> {
        let caps = self.capabilities();
        self.require(caps.batches, "batches")?;
        if batch
            .ops
            .iter()
            .any(|op| matches!(op, BatchOp::Put { ttl: Some(_), .. }))
        {
            self.require(caps.record_ttl, "record_ttl")?;
        }
        if batch.ops.len() > MAX_BATCH_ITEMS {
            return Err(Error::invalid(format!(
                "a batch holds at most {MAX_BATCH_ITEMS} writes, got {}",
                batch.ops.len()
            )));
        }
        let now = self.checked_now()?;
        let mut items = Vec::with_capacity(batch.ops.len());
        for (i, op) in batch.ops.iter().enumerate() {
            items.push(prepare_op(op, now).map_err(|e| e.at_index(i))?);
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.timed(
            "apply",
            self.store.apply(&self.cx(now), &Apply::new(&items)),
        )
        .await
    }
}

/// Check one write of a batch, as its own call would, and prepare it.
fn prepare_op(op: &BatchOp, now: Timestamp) -> Result<BatchItem> {
    Ok(match op {
        BatchOp::Put {
            collection,
            id,
            data,
            expect,
            ttl,
        } => {
            check_record(collection, id, *expect)?;
            validate::json("record data", data)?;
            BatchItem::Put {
                collection: collection.clone(),
                id: id.clone(),
                data: data.clone(),
                expect: *expect,
                expires_at: ttl.map(|t| expiry(now, t)).transpose()?,
            }
        }
        BatchOp::Delete {
            collection,
            id,
            expect,
        } => {
            check_record(collection, id, *expect)?;
            BatchItem::Delete {
                collection: collection.clone(),
                id: id.clone(),
                expect: *expect,
            }
        }
        BatchOp::Append(events) => {
            if events.is_empty() {
                return Err(Error::invalid(
                    "an append in a batch needs at least one event",
                ));
            }
            BatchItem::Append(events.iter().map(prepare_event).collect::<Result<_>>()?)
        }
        BatchOp::Complete {
            scope,
            key,
            token,
            response,
        } => {
            check_key(scope, key)?;
            validate::json("response", response)?;
            BatchItem::Complete {
                scope: scope.clone(),
                key: key.clone(),
                token: token.clone(),
                response: response.clone(),
            }
        }
    })
}
