//! Batches: planned on a copy of the namespace, swapped in whole.

use async_trait::async_trait;
use persistkit_core::op::*;
use persistkit_core::Cx;
use persistkit_core::{Applied, BatchItem, BatchStore, Result};

use crate::idempotency::complete_in;
use crate::store::*;

#[async_trait]
impl BatchStore for MemoryStore {
    async fn apply(&self, cx: &Cx, op: &Apply<'_>) -> Result<Vec<Applied>> {
        let ns = cx.ns();
        let items = op.items;
        let now = cx.now();
        let mut s = self.lock()?;
        // The batch runs on copies of what it touches; they replace the
        // originals only when every item succeeded.
        let mut recs = None;
        let mut log = None;
        let mut keys = None;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let done = match item {
                BatchItem::Put { .. } => {
                    let put = item.as_put().expect("a put");
                    recs.get_or_insert_with(|| s.records.get(ns).cloned().unwrap_or_default())
                        .put(&put, now)
                        .map(Applied::Put)
                }
                BatchItem::Delete {
                    collection,
                    id,
                    expect,
                } => recs
                    .get_or_insert_with(|| s.records.get(ns).cloned().unwrap_or_default())
                    .delete(collection, id, *expect, now)
                    .map(|()| Applied::Deleted),
                BatchItem::Append(events) => log
                    .get_or_insert_with(|| s.events.get(ns).cloned().unwrap_or_default())
                    .append(ns, events)
                    .map(Applied::Appended),
                BatchItem::Complete {
                    scope,
                    key,
                    token,
                    response,
                } => complete_in(
                    keys.get_or_insert_with(|| s.keys.get(ns).cloned().unwrap_or_default()),
                    scope,
                    key,
                    token,
                    response,
                    now,
                )
                .map(|()| Applied::Completed),
            };
            out.push(done.map_err(|e| e.at_index(i))?);
        }
        if let Some(r) = recs {
            s.records.insert(ns.to_string(), r);
        }
        if let Some(l) = log {
            s.events.insert(ns.to_string(), l);
        }
        if let Some(k) = keys {
            s.keys.insert(ns.to_string(), k);
        }
        Ok(out)
    }
}
