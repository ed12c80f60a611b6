//! Batches: every item in one IMMEDIATE transaction, through the same
//! per-item bodies the single calls use.

use async_trait::async_trait;
use persistkit_core::op::*;
use persistkit_core::*;

use crate::error::map;
use crate::events::*;
use crate::idempotency::*;
use crate::records::*;
use crate::store::*;

#[async_trait]
impl BatchStore for SqliteStore {
    async fn apply(&self, cx: &Cx, op: &Apply<'_>) -> Result<Vec<Applied>> {
        let ns = cx.ns();
        let items = op.items;
        let now = cx.now();
        self.pool
            .run_by(cx.deadline(), |c| {
                // One IMMEDIATE transaction: dropped (rolled back) at the
                // first item that fails.
                let tx = immediate(c)?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let done = match item {
                        BatchItem::Put { .. } => {
                            put_in(&tx, ns, &item.as_put().expect("a put"), now).map(Applied::Put)
                        }
                        BatchItem::Delete {
                            collection,
                            id,
                            expect,
                        } => delete_in(&tx, ns, collection, id, *expect, now)
                            .map(|()| Applied::Deleted),
                        BatchItem::Append(events) => {
                            append_on(&tx, ns, events).map(Applied::Appended)
                        }
                        BatchItem::Complete {
                            scope,
                            key,
                            token,
                            response,
                        } => complete_on(&tx, ns, scope, key, token, response, now)
                            .map(|()| Applied::Completed),
                    };
                    out.push(done.map_err(|e| e.at_index(i))?);
                }
                tx.commit().map_err(map)?;
                Ok(out)
            })
            .await
    }
}
