//! Records: versioned puts, reads, deletes, indexes and `find`.

use async_trait::async_trait;
use persistkit_core::backend::*;
use persistkit_core::op::*;
use persistkit_core::validate::canonical_json;
use persistkit_core::*;
use rusqlite::{params, Connection, Row};

use crate::error::map;
use crate::sql::*;
use crate::store::*;

pub(crate) fn record_version_in(
    c: &Connection,
    ns: &str,
    collection: &str,
    id: &str,
    now: Timestamp,
) -> Result<Option<u64>> {
    Ok(first(
        c,
        RECORD_VERSION,
        params![ns, collection, id, now.as_micros()],
        |r| col::<i64>(r, 0, "records.version"),
    )?
    .map(u64_of))
}

/// Attempts a put makes when unique keys keep moving under it.
pub(crate) const PUT_ATTEMPTS: usize = 8;

/// One record write on `c` (which may be inside a transaction): the
/// statement for `expect`, then, when a unique index refuses the key, the
/// holder is named, or removed and the write tried again if it expired.
pub(crate) fn put_in(
    c: &Connection,
    ns: &str,
    put: &PutRecord<'_>,
    now: Timestamp,
) -> Result<Record> {
    let PutRecord {
        collection,
        id,
        data,
        expect,
        expires_at,
    } = *put;
    let text = canonical_json(data);
    let at = now.as_micros();
    let exp = expires_at.map(|t| t.as_micros());
    for _ in 0..PUT_ATTEMPTS {
        let row = match expect {
            // No row when the record is at its last version.
            Expect::Any => first(
                c,
                UPSERT_RECORD,
                params![ns, collection, id, text, at, exp],
                record_row,
            ),
            Expect::Absent => first(
                c,
                INSERT_RECORD_IF_ABSENT,
                params![ns, collection, id, text, at, exp],
                record_row,
            ),
            Expect::Version(v) => first(
                c,
                UPDATE_RECORD_AT_VERSION,
                params![ns, collection, id, text, at, v as i64, exp],
                record_row,
            ),
        };
        match row {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {
                return Err(put_refused(
                    collection,
                    id,
                    expect,
                    record_version_in(c, ns, collection, id, now)?,
                ))
            }
            // The records' own key is handled by each statement, so this
            // is a unique index refusing the key.
            Err(e) if e.kind() == ErrorKind::Conflict => {
                let holder = first(c, UNIQUE_HOLDER, params![ns, collection, id, text], |r| {
                    Ok((
                        col::<String>(r, 0, "record_indexes.name")?,
                        col::<String>(r, 1, "record_index_entries.id")?,
                        col::<Option<i64>>(r, 2, "records.expires_at")?,
                    ))
                })?;
                match holder {
                    Some((_, other, Some(until))) if until <= at => {
                        exec(c, DELETE_EXPIRED_RECORD, params![ns, collection, other, at])?;
                    }
                    Some((index, other, _)) => {
                        return Err(unique_conflict(collection, &index, &other))
                    }
                    None => {} // it moved on: try again
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::conflict(
        None,
        "a unique key of this record kept changing concurrently; retry",
    ))
}

/// Declare an index on `c`, inside the caller's IMMEDIATE transaction.
pub(crate) fn create_index_in(
    c: &Connection,
    ns: &str,
    ix: &Index,
    now: Timestamp,
) -> Result<bool> {
    let coll = ix.collection.as_str();
    if let Some(existing) = first(c, INDEX_DEFINITION, params![ns, coll, ix.name], index_row)? {
        return if existing == *ix {
            Ok(false)
        } else {
            Err(index_differs(&existing, ix))
        };
    }
    exec(
        c,
        DELETE_EXPIRED_IN_COLLECTION,
        params![ns, coll, now.as_micros()],
    )?;
    let fields = serde_json::to_string(&ix.fields).expect("strings serialize");
    if ix.unique {
        if let Some(id) = first(c, DUPLICATE_KEY, params![ns, coll, fields], |r| {
            col::<String>(r, 0, "records.id")
        })? {
            return Err(unique_conflict(coll, &ix.name, &id));
        }
    }
    exec(
        c,
        INSERT_INDEX,
        params![ns, coll, ix.name, fields, ix.unique],
    )?;
    exec(
        c,
        BACKFILL_INDEX,
        params![ns, coll, ix.name, ix.unique, fields],
    )?;
    Ok(true)
}

#[async_trait]
impl RecordStore for SqliteStore {
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        let ns = cx.ns();
        let now = cx.now();
        self.pool
            .run_by(cx.deadline(), |c| put_in(c, ns, put, now))
            .await
    }

    async fn incr(&self, cx: &Cx, op: &IncrField<'_>) -> Result<Record> {
        let ns = cx.ns();
        let now = cx.now();
        self.pool
            .run_by(cx.deadline(), |c| {
                // One IMMEDIATE transaction holds the write lock from the
                // read to the write: no writer comes between.
                let tx = immediate(c)?;
                let current = first(
                    &tx,
                    GET_RECORD,
                    params![ns, op.collection, op.id, now.as_micros()],
                    record_row,
                )?;
                let data = incremented(current.as_ref().map(|r| &r.data), op.field, op.by)?;
                let put = incr_put(op, current.as_ref(), &data);
                let written = put_in(&tx, ns, &put, now)?;
                tx.commit().map_err(map)?;
                Ok(written)
            })
            .await
    }

    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>> {
        let ns = cx.ns();
        let now = cx.now();
        let GetRecord { collection, id, .. } = *op;
        self.pool
            .run_by(cx.deadline(), |c| {
                first(
                    c,
                    GET_RECORD,
                    params![ns, collection, id, now.as_micros()],
                    record_row,
                )
            })
            .await
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
        self.pool
            .run_by(cx.deadline(), |c| {
                delete_in(c, ns, collection, id, expect, now)
            })
            .await
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
        self.pool
            .run_by(cx.deadline(), |c| {
                all(
                    c,
                    LIST_RECORDS,
                    params![ns, collection, after, limit as i64, now.as_micros()],
                    record_row,
                )
            })
            .await
    }

    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64> {
        let ns = cx.ns();
        let collection = op.collection;
        let now = cx.now();
        self.pool
            .run_by(cx.deadline(), |c| {
                first(
                    c,
                    COUNT_RECORDS,
                    params![ns, collection, now.as_micros()],
                    |r| seq(r, 0, "count"),
                )
            })
            .await
            .map(Option::unwrap_or_default)
    }

    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>> {
        let ns = cx.ns();
        self.pool
            .run_by(cx.deadline(), |c| {
                all(c, LIST_COLLECTIONS, [ns], |r| col(r, 0, "collection"))
            })
            .await
    }

    async fn create_index(&self, cx: &Cx, index: &Index) -> Result<bool> {
        let ns = cx.ns();
        let now = cx.now();
        self.pool
            .run_by(cx.deadline(), |c| {
                let tx = immediate(c)?;
                let created = create_index_in(&tx, ns, index, now)?;
                tx.commit().map_err(map)?;
                Ok(created)
            })
            .await
    }

    async fn list_indexes(&self, cx: &Cx, op: &ListIndexes<'_>) -> Result<Vec<Index>> {
        let ns = cx.ns();
        let collection = op.collection;
        self.pool
            .run_by(cx.deadline(), |c| {
                all(c, LIST_INDEXES, params![ns, collection], index_row)
            })
            .await
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
        self.pool
            .run_by(cx.deadline(), |c| {
                let row = |r: &Row<'_>| {
                    Ok(Found {
                        key: col(r, 0, "record_index_entries.key")?,
                        record: record_row_from(r, 1)?,
                    })
                };
                let (at, limit) = (now.as_micros(), limit as i64);
                let (ix, from, to) = (&query.index, &query.from, &query.to);
                let found = match &query.after {
                    None => all(
                        c,
                        FIND_FIRST,
                        params![ns, collection, ix, from, to, at, limit],
                        row,
                    )?,
                    Some((key, id)) => all(
                        c,
                        FIND_AFTER,
                        params![ns, collection, ix, from, to, at, limit, key, id],
                        row,
                    )?,
                };
                if found.is_empty()
                    && first(
                        c,
                        INDEX_DEFINITION,
                        params![ns, collection, query.index],
                        index_row,
                    )?
                    .is_none()
                {
                    return Err(no_such_index(collection, &query.index));
                }
                Ok(found)
            })
            .await
    }
}

pub(crate) fn delete_in(
    c: &Connection,
    ns: &str,
    collection: &str,
    id: &str,
    expect: Expect,
    now: Timestamp,
) -> Result<()> {
    let version = match expect {
        Expect::Absent => {
            return match record_version_in(c, ns, collection, id, now)? {
                Some(v) => Err(expectation_error(expect, Some(v))),
                None => Err(Error::not_found(format!(
                    "record {collection:?}/{id:?} does not exist"
                ))),
            };
        }
        Expect::Any => None,
        Expect::Version(v) => Some(v as i64),
    };
    let done = exec(
        c,
        DELETE_RECORD,
        params![ns, collection, id, version, now.as_micros()],
    )?;
    if done == 1 {
        return Ok(());
    }
    match (expect, record_version_in(c, ns, collection, id, now)?) {
        (Expect::Any, None) => Err(Error::not_found(format!(
            "record {collection:?}/{id:?} does not exist"
        ))),
        (_, current) => Err(expectation_error(expect, current)),
    }
}
