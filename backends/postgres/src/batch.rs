//! Batches: every item in one transaction.

use async_trait::async_trait;
use persistkit_core::backend::*;
use persistkit_core::op::*;
use persistkit_core::validate::canonical_json;
use persistkit_core::*;
use sqlx::postgres::PgConnection;

use crate::error::map;
use crate::records::*;
use crate::sql::*;
use crate::store::*;

/// Why a batch stopped at an item.
pub(crate) enum Stop {
    /// The item's own error, read inside the transaction.
    Failed(Error),
    /// A unique index refused a put; the transaction is aborted, so the
    /// holder is looked up after it.
    Unique,
}

#[async_trait]
impl BatchStore for PgStore {
    async fn apply(&self, cx: &Cx, op: &Apply<'_>) -> Result<Vec<Applied>> {
        let ns = cx.ns();
        let items = op.items;
        let now = cx.now();
        for _ in 0..PUT_ATTEMPTS {
            let mut tx = self.begin().await?;
            let mut out = Vec::with_capacity(items.len());
            let mut stopped = None;
            for (i, item) in items.iter().enumerate() {
                match self.apply_item(&mut tx, ns, item, now).await {
                    Ok(done) => out.push(done),
                    Err(stop) => {
                        stopped = Some((i, stop));
                        break;
                    }
                }
            }
            let Some((i, stop)) = stopped else {
                tx.commit().await.map_err(map)?;
                return Ok(out);
            };
            // Dropping the transaction would roll it back too, on the
            // connection's next use; say it now.
            let _ = tx.rollback().await;
            if let Stop::Failed(e) = stop {
                return Err(e.at_index(i));
            }
            let Some(put) = items[i].as_put() else {
                return Err(Error::internal("only a put can meet a unique index").at_index(i));
            };
            let text = canonical_json(put.data);
            let holder = self.holder_after(ns, &items[..i], &put, &text, now).await?;
            match self.settle_unique(ns, put.collection, holder, now).await {
                Ok(true) => {}
                // Freed since, or an earlier item no longer applies.
                Ok(false) => {
                    return Err(Error::conflict(
                        None,
                        format!(
                            "a unique index of collection {:?} refused the key, held by another \
                             write of this batch or by a record changed concurrently; nothing \
                             was written",
                            put.collection
                        ),
                    )
                    .at_index(i))
                }
                Err(e) if e.unique_conflict().is_some() => return Err(e.at_index(i)),
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(
            None,
            "a unique key of this batch kept changing concurrently; retry",
        ))
    }
}

impl PgStore {
    /// The holder of the unique key that refused `put`, as the put saw it:
    /// after the batch's earlier items, which may hold it themselves. The
    /// batch's transaction is aborted by then, so this replays `before` in
    /// a transaction of its own, asks, and rolls back. `None` when no
    /// record holds the key now or an earlier item no longer applies.
    async fn holder_after(
        &self,
        ns: &str,
        before: &[BatchItem],
        put: &PutRecord<'_>,
        text: &str,
        now: Timestamp,
    ) -> Result<Option<(String, String, bool)>> {
        let mut tx = self.begin().await?;
        for item in before {
            if self.apply_item(&mut tx, ns, item, now).await.is_err() {
                let _ = tx.rollback().await;
                return Ok(None);
            }
        }
        let holder = self
            .qa(UNIQUE_HOLDER)
            .bind(ns)
            .bind(put.collection)
            .bind(put.id)
            .bind(text)
            .bind(dt(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(map);
        let _ = tx.rollback().await;
        holder
    }

    /// One item of a batch, inside `tx`.
    pub(crate) async fn apply_item(
        &self,
        tx: &mut PgConnection,
        ns: &str,
        item: &BatchItem,
        now: Timestamp,
    ) -> std::result::Result<Applied, Stop> {
        let failed = Stop::Failed;
        match item {
            BatchItem::Put {
                collection,
                id,
                data,
                expect,
                expires_at,
            } => {
                let put = PutRecord {
                    collection,
                    id,
                    data,
                    expect: *expect,
                    expires_at: *expires_at,
                };
                let text = canonical_json(data);
                match self.put_on(tx, ns, &put, &text, now).await {
                    Ok(Some(r)) => record_row(&r).map(Applied::Put).map_err(failed),
                    Ok(None) => {
                        let current = self
                            .version_in(tx, ns, collection, id, now)
                            .await
                            .map_err(failed)?;
                        Err(failed(put_refused(collection, id, *expect, current)))
                    }
                    Err(e) if e.kind() == ErrorKind::Conflict => Err(Stop::Unique),
                    Err(e) => Err(failed(e)),
                }
            }
            BatchItem::Delete {
                collection,
                id,
                expect,
            } => {
                let current = self
                    .version_in(tx, ns, collection, id, now)
                    .await
                    .map_err(failed)?;
                let refused = match (expect, current) {
                    (Expect::Absent, Some(_)) | (Expect::Version(_), None) => {
                        Some(expectation_error(*expect, current))
                    }
                    (_, None) => Some(Error::not_found(format!(
                        "record {collection:?}/{id:?} does not exist"
                    ))),
                    (Expect::Version(v), Some(c)) if *v != c => {
                        Some(expectation_error(*expect, current))
                    }
                    _ => None,
                };
                if let Some(e) = refused {
                    return Err(failed(e));
                }
                // The version read above is the version deleted: the row is
                // ours (locked by the DELETE) until commit.
                let deleted = self
                    .delete_on(tx, ns, collection, id, current.map(|v| v as i64), now)
                    .await
                    .map_err(failed)?;
                if deleted {
                    Ok(Applied::Deleted)
                } else {
                    Err(failed(Error::conflict(
                        None,
                        "the record changed concurrently; retry",
                    )))
                }
            }
            BatchItem::Append(events) => self
                .append_on(tx, ns, events)
                .await
                .map(Applied::Appended)
                .map_err(failed),
            BatchItem::Complete {
                scope,
                key,
                token,
                response,
            } => {
                let done = self
                    .complete_on(tx, ns, scope, key, token, response, now)
                    .await
                    .map_err(failed)?;
                if done {
                    return Ok(Applied::Completed);
                }
                let row = self
                    .q(GET_KEY)
                    .bind(ns)
                    .bind(scope)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| failed(map(e)))?;
                let entry = row.as_ref().map(key_row).transpose().map_err(failed)?;
                Err(failed(
                    match check_live_claim(
                        entry.as_ref(),
                        scope,
                        key,
                        token,
                        now,
                        "completed again",
                    ) {
                        Err(e) => e,
                        Ok(()) => {
                            Error::conflict(None, "the idempotency key changed concurrently; retry")
                        }
                    },
                ))
            }
        }
    }
}
