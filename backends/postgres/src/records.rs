//! Records: versioned puts, reads, deletes, indexes and `find`.

use async_trait::async_trait;
use persistkit_core::backend::*;
use persistkit_core::op::*;
use persistkit_core::validate::canonical_json;
use persistkit_core::*;
use sqlx::postgres::{PgConnection, PgRow};

use crate::error::map;
use crate::sql::*;
use crate::store::*;

/// Attempts a put makes when unique keys keep moving under it.
pub(crate) const PUT_ATTEMPTS: usize = 8;

impl PgStore {
    pub(crate) async fn record_version(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<u64>> {
        let v: Option<i64> = one!(read self, |c| self
            .qs(RECORD_VERSION)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .bind(dt(now))
            .fetch_optional(&mut *c)
            .await
            .map_err(map))?;
        Ok(v.map(u64_of))
    }

    /// After a unique index refused `text` as the data of record `id`:
    /// the index and the record holding the key, and whether that record
    /// has expired at `now`.
    pub(crate) async fn unique_holder(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<Option<(String, String, bool)>> {
        one!(read self, |c| self
            .qa(UNIQUE_HOLDER)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .bind(text)
            .bind(dt(now))
            .fetch_optional(&mut *c)
            .await
            .map_err(map))
    }
}

impl PgStore {
    /// After a unique index of `collection` refused a write: remove the
    /// key's `holder` if it has expired (`Ok(true)`: write again), or fail
    /// with the `Conflict` naming a live one. `Ok(false)` when no record
    /// holds the key any more.
    pub(crate) async fn settle_unique(
        &self,
        ns: &str,
        collection: &str,
        holder: Option<(String, String, bool)>,
        now: Timestamp,
    ) -> Result<bool> {
        match holder {
            Some((_, other, true)) => {
                one!(self, |c| self
                    .q(DELETE_EXPIRED_RECORD)
                    .bind(ns)
                    .bind(collection)
                    .bind(&other)
                    .bind(dt(now))
                    .execute(&mut *c)
                    .await
                    .map_err(map))?;
                Ok(true)
            }
            Some((index, other, false)) => Err(unique_conflict(collection, &index, &other)),
            None => Ok(false),
        }
    }

    /// Write `put` with the statement for its expectation, on `c` (a
    /// connection of its own, or a batch's transaction): the row written,
    /// or `None` when the expectation did not hold (or the record is at its
    /// last version). `text` is the canonical JSON of the data. The one
    /// body both `put` and `apply` use.
    pub(crate) async fn put_on(
        &self,
        c: &mut PgConnection,
        ns: &str,
        put: &PutRecord<'_>,
        text: &str,
        now: Timestamp,
    ) -> Result<Option<PgRow>> {
        let q = match put.expect {
            Expect::Any => self.q(UPSERT_RECORD),
            Expect::Absent => self.q(INSERT_RECORD_IF_ABSENT),
            Expect::Version(_) => self.q(UPDATE_RECORD_AT_VERSION),
        }
        .bind(ns)
        .bind(put.collection)
        .bind(put.id)
        .bind(text)
        .bind(dt(now));
        let exp = put.expires_at.map(dt);
        let q = match put.expect {
            Expect::Version(v) => q.bind(v as i64).bind(exp),
            _ => q.bind(exp),
        };
        q.fetch_optional(&mut *c).await.map_err(map)
    }

    /// Delete a live record (at `version`, when given) on `c`: whether a
    /// row went. The one body both `delete` and `apply` use.
    pub(crate) async fn delete_on(
        &self,
        c: &mut PgConnection,
        ns: &str,
        collection: &str,
        id: &str,
        version: Option<i64>,
        now: Timestamp,
    ) -> Result<bool> {
        let done = self
            .q(DELETE_RECORD)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .bind(version)
            .bind(dt(now))
            .execute(&mut *c)
            .await
            .map_err(map)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl RecordStore for PgStore {
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        let ns = cx.ns();
        let now = cx.now();
        let PutRecord {
            collection,
            id,
            data,
            expect,
            ..
        } = *put;
        let text = canonical_json(data);
        for _ in 0..PUT_ATTEMPTS {
            let row = one!(self, |c| self.put_on(c, ns, put, &text, now).await);
            match row {
                Ok(Some(r)) => return record_row(&r),
                Ok(None) => {
                    return Err(put_refused(
                        collection,
                        id,
                        expect,
                        self.record_version(ns, collection, id, now).await?,
                    ))
                }
                // The records' own key is handled by each statement, so
                // this is a unique index refusing the key.
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    // An expired holder is removed, a gone one moved on:
                    // either way, try again.
                    let holder = self.unique_holder(ns, collection, id, &text, now).await?;
                    self.settle_unique(ns, collection, holder, now).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(
            None,
            "a unique key of this record kept changing concurrently; retry",
        ))
    }

    async fn incr(&self, cx: &Cx, op: &IncrField<'_>) -> Result<Record> {
        let ns = cx.ns();
        let now = cx.now();
        let IncrField { collection, id, .. } = *op;
        for _ in 0..PUT_ATTEMPTS {
            // The live row stays locked from the read to the write: no
            // writer comes between. Only an insert can race (no row to
            // lock yet); its loser reads again and finds the row.
            let mut tx = self.begin().await?;
            let current = self
                .q(GET_RECORD_FOR_UPDATE)
                .bind(ns)
                .bind(collection)
                .bind(id)
                .bind(dt(now))
                .fetch_optional(&mut *tx)
                .await
                .map_err(map)?
                .as_ref()
                .map(record_row)
                .transpose()?;
            let data = incremented(current.as_ref().map(|r| &r.data), op.field, op.by)?;
            let text = canonical_json(&data);
            let put = incr_put(op, current.as_ref(), &data);
            match self.put_on(&mut tx, ns, &put, &text, now).await {
                Ok(Some(r)) => {
                    tx.commit().await.map_err(map)?;
                    return record_row(&r);
                }
                Ok(None) => {
                    let _ = tx.rollback().await;
                }
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    let _ = tx.rollback().await;
                    let holder = self.unique_holder(ns, collection, id, &text, now).await?;
                    self.settle_unique(ns, collection, holder, now).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(
            None,
            "incr: the record kept being created and removed concurrently; retry",
        ))
    }

    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>> {
        let ns = cx.ns();
        let now = cx.now();
        let GetRecord { collection, id, .. } = *op;
        let row = one!(read self, |c| self
            .q(GET_RECORD)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .bind(dt(now))
            .fetch_optional(&mut *c)
            .await
            .map_err(map))?;
        row.as_ref().map(record_row).transpose()
    }

    async fn delete(&self, cx: &Cx, op: &DeleteRecord<'_>) -> Result<()> {
        let ns = cx.ns();
        let now = cx.now();
        let DeleteRecord {
            collection,
            id,
            expect,
            ..
        } = *op;
        let version = match expect {
            Expect::Absent => {
                return match self.record_version(ns, collection, id, now).await? {
                    Some(c) => Err(expectation_error(expect, Some(c))),
                    None => Err(Error::not_found(format!(
                        "record {collection:?}/{id:?} does not exist"
                    ))),
                };
            }
            Expect::Any => None,
            Expect::Version(v) => Some(v as i64),
        };
        if one!(self, |c| self
            .delete_on(c, ns, collection, id, version, now)
            .await)?
        {
            return Ok(());
        }
        match (expect, self.record_version(ns, collection, id, now).await?) {
            (Expect::Any, None) => Err(Error::not_found(format!(
                "record {collection:?}/{id:?} does not exist"
            ))),
            (_, current) => Err(expectation_error(expect, current)),
        }
    }

    async fn list_records(&self, cx: &Cx, op: &ListRecords<'_>) -> Result<Vec<Record>> {
        let ns = cx.ns();
        let now = cx.now();
        let ListRecords {
            collection,
            after,
            limit,
            ..
        } = *op;
        let rows = one!(read self, |c| self
            .q(LIST_RECORDS)
            .bind(ns)
            .bind(collection)
            .bind(after)
            .bind(limit as i64)
            .bind(dt(now))
            .fetch_all(&mut *c)
            .await
            .map_err(map))?;
        rows.iter().map(record_row).collect()
    }

    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64> {
        let ns = cx.ns();
        let collection = op.collection;
        let now = cx.now();
        let n: i64 = one!(read self, |c| self
            .qs(COUNT_RECORDS)
            .bind(ns)
            .bind(collection)
            .bind(dt(now))
            .fetch_one(&mut *c)
            .await
            .map_err(map))?;
        Ok(u64_of(n))
    }

    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>> {
        let ns = cx.ns();
        one!(read self, |c| self
            .qs(LIST_COLLECTIONS)
            .bind(ns)
            .fetch_all(&mut *c)
            .await
            .map_err(map))
    }

    async fn create_index(&self, cx: &Cx, index: &Index) -> Result<bool> {
        let ns = cx.ns();
        let now = cx.now();
        let mut tx = self.begin().await?;
        let created = self.create_index_in(&mut tx, ns, index, now).await?;
        tx.commit().await.map_err(map)?;
        Ok(created)
    }

    async fn list_indexes(&self, cx: &Cx, op: &ListIndexes<'_>) -> Result<Vec<Index>> {
        let ns = cx.ns();
        let collection = op.collection;
        let rows = one!(read self, |c| self
            .q(LIST_INDEXES)
            .bind(ns)
            .bind(collection)
            .fetch_all(&mut *c)
            .await
            .map_err(map))?;
        rows.iter().map(index_row).collect()
    }

    async fn find(&self, cx: &Cx, op: &FindRecords<'_>) -> Result<Vec<Found>> {
        let ns = cx.ns();
        let now = cx.now();
        let FindRecords {
            collection,
            query,
            limit,
            ..
        } = *op;
        let rows = one!(read self, |c| {
            let q = match &query.after {
                None => self.q(FIND_FIRST),
                Some(_) => self.q(FIND_AFTER),
            };
            let q = q
                .bind(ns)
                .bind(collection)
                .bind(&query.index)
                .bind(&query.from)
                .bind(&query.to)
                .bind(dt(now))
                .bind(limit as i64);
            let q = match &query.after {
                None => q,
                Some((key, id)) => q.bind(key).bind(id),
            };
            q.fetch_all(&mut *c).await.map_err(map)
        })?;
        if rows.is_empty() {
            let exists = one!(read self, |c| self
                .q(INDEX_DEFINITION)
                .bind(ns)
                .bind(collection)
                .bind(&query.index)
                .fetch_optional(&mut *c)
                .await
                .map_err(map))?;
            if exists.is_none() {
                return Err(no_such_index(collection, &query.index));
            }
        }
        rows.iter()
            .map(|r| {
                Ok(Found {
                    key: col(r, 0, "record_index_entries.key")?,
                    record: record_row_from(r, 1)?,
                })
            })
            .collect()
    }
}

impl PgStore {
    /// A record's live version, read inside `tx`.
    pub(crate) async fn version_in(
        &self,
        tx: &mut PgConnection,
        ns: &str,
        collection: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<u64>> {
        let v: Option<i64> = self
            .qs(RECORD_VERSION)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .bind(dt(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
        Ok(v.map(u64_of))
    }

    /// Declare an index inside `tx`, under the (namespace, collection)
    /// lock every record write takes shared.
    pub(crate) async fn create_index_in(
        &self,
        tx: &mut PgConnection,
        ns: &str,
        ix: &Index,
        now: Timestamp,
    ) -> Result<bool> {
        let coll = ix.collection.as_str();
        self.q(LOCK_INDEXES)
            .bind(ns)
            .bind(coll)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        let existing = self
            .q(INDEX_DEFINITION)
            .bind(ns)
            .bind(coll)
            .bind(&ix.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
        if let Some(row) = existing {
            let existing = index_row(&row)?;
            return if existing == *ix {
                Ok(false)
            } else {
                Err(index_differs(&existing, ix))
            };
        }
        self.q(DELETE_EXPIRED_IN_COLLECTION)
            .bind(ns)
            .bind(coll)
            .bind(dt(now))
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        let paths = serde_json::to_string(&ix.field_tokens()).expect("strings serialize");
        if ix.unique {
            let twin: Option<String> = self
                .qs(DUPLICATE_KEY)
                .bind(ns)
                .bind(coll)
                .bind(&paths)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map)?;
            if let Some(id) = twin {
                return Err(unique_conflict(coll, &ix.name, &id));
            }
        }
        self.q(INSERT_INDEX)
            .bind(ns)
            .bind(coll)
            .bind(&ix.name)
            .bind(&ix.fields)
            .bind(&paths)
            .bind(ix.unique)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        self.q(BACKFILL_INDEX)
            .bind(ns)
            .bind(coll)
            .bind(&ix.name)
            .bind(ix.unique)
            .bind(&paths)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        Ok(true)
    }
}
