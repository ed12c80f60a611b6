//! Records, indexes and `find` through a handle.

use std::time::Duration;

use serde_json::Value;

use super::{paginate, Handle};
use crate::cursor::{self, Page};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{DEFAULT_LIMIT, MAX_INDEXES_PER_COLLECTION, UPDATE_ATTEMPTS};
use crate::op::*;
use crate::records::{Expect, PutRecord, Record};
use crate::records::{Find, FindQuery, Index};
use crate::validate;
use crate::validate::{check_opt_name, check_record, expiry};

impl Handle {
    /// Create or replace a record if `expect` holds. The record does not
    /// expire (a put removes any earlier expiry).
    ///
    /// # Errors
    /// `Conflict` carrying the current version when `expect` fails, or
    /// naming the index and the record holding the key when a unique index
    /// refuses it ([`Error::unique_conflict`]); `InvalidInput` for bad
    /// names, data, or `Expect::Version(0)`.
    pub async fn put(
        &self,
        collection: &str,
        id: &str,
        data: &Value,
        expect: Expect,
    ) -> Result<Record> {
        self.put_record(collection, id, data, expect, None).await
    }

    /// [`put`](Self::put) a record that expires `ttl` from now by the
    /// handle's clock. From then on every call treats it as absent, and
    /// purge removes it.
    ///
    /// # Errors
    /// As `put`; `InvalidInput` for a TTL of zero, over 100 years, or
    /// ending after year 9999.
    pub async fn put_with_ttl(
        &self,
        collection: &str,
        id: &str,
        data: &Value,
        expect: Expect,
        ttl: Duration,
    ) -> Result<Record> {
        self.require(self.capabilities().record_ttl, "record_ttl")?;
        self.put_record(collection, id, data, expect, Some(ttl))
            .await
    }

    async fn put_record(
        &self,
        collection: &str,
        id: &str,
        data: &Value,
        expect: Expect,
        ttl: Option<Duration>,
    ) -> Result<Record> {
        check_record(collection, id, expect)?;
        validate::json("record data", data)?;
        let now = self.checked_now()?;
        let expires_at = ttl.map(|t| expiry(now, t)).transpose()?;
        let put = PutRecord {
            collection,
            id,
            data,
            expect,
            expires_at,
        };
        self.timed("put", self.store.put(&self.cx(now), &put)).await
    }

    /// Fetch a record (`None` when absent or expired).
    ///
    /// # Errors
    /// `InvalidInput` for bad names.
    pub async fn get(&self, collection: &str, id: &str) -> Result<Option<Record>> {
        check_record(collection, id, Expect::Any)?;
        let now = self.checked_now()?;
        let (cx, op) = (self.cx(now), GetRecord::new(collection, id));
        self.read("get", || self.store.get(&cx, &op)).await
    }

    /// How many records of `collection` are live by this handle's clock
    /// (expired ones are not counted), without reading them.
    ///
    /// # Errors
    /// `InvalidInput` for a bad collection name.
    pub async fn count(&self, collection: &str) -> Result<u64> {
        validate::name("collection", collection)?;
        let now = self.checked_now()?;
        let (cx, op) = (self.cx(now), CountRecords::new(collection));
        self.read("count", || self.store.count(&cx, &op)).await
    }

    /// Delete a record if `expect` holds.
    ///
    /// # Errors
    /// `Conflict` carrying the current version when `expect` fails;
    /// `NotFound` when there is no record to delete.
    pub async fn delete(&self, collection: &str, id: &str, expect: Expect) -> Result<()> {
        check_record(collection, id, expect)?;
        let now = self.checked_now()?;
        self.timed(
            "delete",
            self.store
                .delete(&self.cx(now), &DeleteRecord::new(collection, id, expect)),
        )
        .await
    }

    /// Records of `collection` ordered by id byte-wise.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name, limit or cursor.
    pub async fn list_records(
        &self,
        collection: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Record>> {
        validate::name("collection", collection)?;
        validate::limit(limit)?;
        let scope = cursor::scope(&self.ns, &collection);
        let after = match cursor {
            Some(c) => Some(cursor::decode::<String>("records", &scope, c)?),
            None => None,
        };
        let now = self.checked_now()?;
        let (cx, op) = (
            self.cx(now),
            ListRecords::new(collection, after.as_deref(), limit + 1),
        );
        let items = self
            .read("list_records", || self.store.list_records(&cx, &op))
            .await?;
        Ok(paginate(items, limit, |r| {
            cursor::encode("records", &scope, &r.id)
        }))
    }

    /// Declare an index on fields of a collection's records and index the
    /// records already there. Idempotent: `Ok(false)` when the same index
    /// exists.
    ///
    /// # Errors
    /// `InvalidInput` for a bad declaration or a 17th index on one
    /// collection; `Conflict` when an index of that name differs, or when a
    /// unique index would hold two records with one key (then nothing is
    /// created).
    pub async fn create_index(&self, index: &Index) -> Result<bool> {
        validate::index(index)?;
        let caps = self.capabilities();
        self.require(caps.indexes, "indexes")?;
        if index.unique {
            self.require(caps.unique_indexes, "unique_indexes")?;
        }
        let existing = self
            .timed(
                "list_indexes",
                self.store.list_indexes(
                    &self.cx(self.now()),
                    &ListIndexes::new(Some(&index.collection)),
                ),
            )
            .await?;
        if existing.len() >= MAX_INDEXES_PER_COLLECTION
            && !existing.iter().any(|i| i.name == index.name)
        {
            return Err(Error::invalid(format!(
                "collection {:?} has {MAX_INDEXES_PER_COLLECTION} indexes, the most allowed",
                index.collection
            )));
        }
        let now = self.checked_now()?;
        self.timed(
            "create_index",
            self.store.create_index(&self.cx(now), index),
        )
        .await
    }

    /// The indexes of `collection`, or of every collection, ordered by
    /// collection then name.
    ///
    /// # Errors
    /// `InvalidInput` for a bad collection name.
    pub async fn indexes(&self, collection: Option<&str>) -> Result<Vec<Index>> {
        check_opt_name("collection", collection)?;
        let (cx, op) = (self.cx(self.now()), ListIndexes::new(collection));
        self.read("list_indexes", || self.store.list_indexes(&cx, &op))
            .await
    }

    /// Records of `collection` matching `query`, through an index: ordered
    /// by the index's remaining fields, then id, and paged like every
    /// listing. See [`crate::records::index`] for how values compare.
    ///
    /// # Errors
    /// `InvalidInput` when no index serves the query (naming the field), for
    /// an array or object value, a bad limit, or a cursor of another query.
    pub async fn find(&self, collection: &str, query: &Find) -> Result<Page<Record>> {
        self.require(self.capabilities().indexes, "indexes")?;
        validate::name("collection", collection)?;
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        validate::limit(limit)?;
        if query.eq.is_empty() && query.range.is_none() {
            return Err(Error::invalid(
                "find needs at least one field (eq or range); list_records reads a whole collection",
            ));
        }
        let fields = query.eq.iter().map(|(f, _)| f);
        for f in fields.chain(query.range.iter().map(|(f, ..)| f)) {
            validate::field("find field", f)?;
        }
        let indexes = self.indexes(Some(collection)).await?;
        let (index, from, to) = crate::records::index::plan(collection, &indexes, query)?;
        // The index and the key range stand for the query: equal values and
        // the range are in them.
        let scope = cursor::scope(
            &self.ns,
            &(
                collection,
                &index.name,
                hex::encode(&from),
                hex::encode(&to),
            ),
        );
        let after = match &query.cursor {
            Some(c) => {
                let (key, id): (String, String) = cursor::decode("find", &scope, c)?;
                let key = hex::decode(&key).map_err(|e| {
                    Error::invalid(format!("cursor {c:?} is not a find cursor")).with_source(e)
                })?;
                Some((key, id))
            }
            None => None,
        };
        let q = FindQuery {
            index: index.name.clone(),
            from,
            to,
            after,
        };
        let now = self.checked_now()?;
        let (cx, op) = (self.cx(now), FindRecords::new(collection, &q, limit + 1));
        let found = self.read("find", || self.store.find(&cx, &op)).await?;
        let page = paginate(found, limit, |f| {
            cursor::encode("find", &scope, &(hex::encode(&f.key), &f.record.id))
        });
        Ok(Page {
            items: page.items.into_iter().map(|f| f.record).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Read a record, change it with `change`, and write it back at the
    /// version read, again from the read when another writer got there
    /// first: the compare-and-set loop, with up to 64 attempts and a short
    /// jittered pause between them. `change` sees `None` for an absent
    /// record (the write then creates it) and may run more than once. The
    /// record keeps its expiry.
    ///
    /// # Errors
    /// What `change` returns (nothing is written then); `Conflict` after 64
    /// lost races or from a unique index; as `put` otherwise.
    pub async fn update<F>(&self, collection: &str, id: &str, mut change: F) -> Result<Record>
    where
        F: FnMut(Option<&Value>) -> Result<Value> + Send,
    {
        check_record(collection, id, Expect::Any)?;
        let mut pauses = crate::retry::backoff(
            Duration::from_micros(200),
            Duration::from_millis(20),
            UPDATE_ATTEMPTS - 1,
        );
        loop {
            let current = self.get(collection, id).await?;
            let data = change(current.as_ref().map(|r| &r.data))?;
            let (expect, expires_at) = match &current {
                Some(r) => (Expect::Version(r.version), r.expires_at),
                None => (Expect::Absent, None),
            };
            validate::json("record data", &data)?;
            let now = self.checked_now()?;
            let put = PutRecord {
                collection,
                id,
                data: &data,
                expect,
                expires_at: expires_at.filter(|e| *e > now),
            };
            match self.timed("put", self.store.put(&self.cx(now), &put)).await {
                Err(e) if e.kind() == ErrorKind::Conflict && e.unique_conflict().is_none() => {
                    let Some(pause) = pauses.next() else {
                        return Err(Error::conflict(
                            e.current_version(),
                            format!(
                                "update of {collection:?}/{id:?} lost the race {UPDATE_ATTEMPTS} times; \
                                 nothing was written"
                            ),
                        ));
                    };
                    tokio::time::sleep(pause).await;
                }
                done => return done,
            }
        }
    }

    /// Add `by` to the integer at `field` (a JSON pointer) of a record, with
    /// no lost increments among concurrent callers ([`update`](Self::update)
    /// underneath). A missing record or field starts at 0; missing parent
    /// objects are created.
    ///
    /// # Errors
    /// `InvalidInput` when the field holds something other than an integer,
    /// a parent is not an object, or the sum leaves the 64-bit range;
    /// otherwise as `update`.
    pub async fn incr(&self, collection: &str, id: &str, field: &str, by: i64) -> Result<Record> {
        validate::field("incr field", field)?;
        self.update(collection, id, |current| add_to_field(current, field, by))
            .await
    }
}

/// `current` (or `{}` when absent) with `by` added to the integer at the
/// JSON pointer `field`: a missing field counts as 0, missing parents are
/// created as objects.
///
/// # Errors
/// `InvalidInput` when the field holds something other than an integer, a
/// parent is not an object, or the sum leaves the 64-bit signed range.
pub(crate) fn add_to_field(current: Option<&Value>, field: &str, by: i64) -> Result<Value> {
    let mut doc = current
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let tokens = crate::records::index::pointer_tokens(field);
    let (last, parents) = tokens.split_last().expect("a field has a token");
    let mut at = &mut doc;
    for t in parents {
        let Value::Object(map) = at else {
            return Err(Error::invalid(format!(
                "incr: a parent of {field:?} is not an object; nothing was written"
            )));
        };
        at = map
            .entry(t.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    let Value::Object(map) = at else {
        return Err(Error::invalid(format!(
            "incr: the parent of {field:?} is not an object; nothing was written"
        )));
    };
    let old = match map.get(last) {
        None => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            Error::invalid(format!(
                "incr: {field:?} holds {v}, not a 64-bit integer; nothing was written"
            ))
        })?,
    };
    let new = old.checked_add(by).ok_or_else(|| {
        Error::invalid(format!(
            "incr: {old} + {by} at {field:?} leaves the 64-bit range; nothing was written"
        ))
    })?;
    map.insert(last.clone(), Value::from(new));
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn add_to_field_rules() {
        assert_eq!(add_to_field(None, "/n", 2).unwrap(), json!({"n": 2}));
        assert_eq!(
            add_to_field(Some(&json!({"a": {"n": 1}, "x": 1})), "/a/n", -3).unwrap(),
            json!({"a": {"n": -2}, "x": 1})
        );
        assert_eq!(
            add_to_field(Some(&json!({})), "/a/b", 1).unwrap(),
            json!({"a": {"b": 1}})
        );
        assert!(add_to_field(Some(&json!({"n": "1"})), "/n", 1).is_err());
        assert!(add_to_field(Some(&json!({"n": 1.5})), "/n", 1).is_err());
        assert!(add_to_field(Some(&json!({"a": 1})), "/a/b", 1).is_err());
        assert!(add_to_field(Some(&json!({"n": i64::MAX})), "/n", 1).is_err());
        assert!(add_to_field(Some(&json!([1])), "/0", 1).is_err());
    }
}
