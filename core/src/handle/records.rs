//! Records, indexes and `find` through a handle.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{paginate, Handle};
use crate::cursor::{self, Page};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{DEFAULT_LIMIT, MAX_INDEXES_PER_COLLECTION};
use crate::op::*;
use crate::records::{Expect, PutRecord, Record, UpdateError};
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
    /// first: the compare-and-set loop, with short jittered pauses (from
    /// 0.2 ms, doubling up to 20 ms) between attempts. It gives up on time,
    /// not on a count: when the next attempt would end past the handle's
    /// timeout (5 s without one) from the first read. `change` sees `None`
    /// for an absent record (the write then creates it) and may run more
    /// than once. The record keeps its expiry.
    ///
    /// To abort with an error of your own (not a `persistkit::Error`), use
    /// [`try_update`](Self::try_update). For counters, [`incr`](Self::incr)
    /// never loses a race at all.
    ///
    /// # Errors
    /// What `change` returns (nothing is written then); `Conflict` when
    /// other writers won every race until the timeout (carrying the
    /// current version, with a message saying how many races were lost
    /// and for how long), or from a unique index; as `put` otherwise.
    pub async fn update<F>(&self, collection: &str, id: &str, change: F) -> Result<Record>
    where
        F: FnMut(Option<&Value>) -> Result<Value> + Send,
    {
        self.try_update(collection, id, change)
            .await
            .map_err(UpdateError::flatten)
    }

    /// [`update`](Self::update), with a `change` that may refuse with an
    /// error of the caller's own type (`E`): it comes back as
    /// [`UpdateError::Aborted`], and nothing is written. What the store
    /// says comes back as [`UpdateError::Store`].
    ///
    /// # Errors
    /// `Aborted(e)` when `change` returns `Err(e)`; `Store(e)` as `update`.
    pub async fn try_update<F, E>(
        &self,
        collection: &str,
        id: &str,
        mut change: F,
    ) -> std::result::Result<Record, UpdateError<E>>
    where
        F: FnMut(Option<&Value>) -> std::result::Result<Value, E> + Send,
        E: Send,
    {
        check_record(collection, id, Expect::Any)?;
        let started = Instant::now();
        let budget = self.timeout.unwrap_or(crate::limits::DEFAULT_TIMEOUT);
        let mut pauses = crate::retry::backoff(
            Duration::from_micros(200),
            Duration::from_millis(20),
            u32::MAX,
        );
        let mut lost = 0u32;
        loop {
            let current = self.get(collection, id).await?;
            let data = change(current.as_ref().map(|r| &r.data)).map_err(UpdateError::Aborted)?;
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
                    lost += 1;
                    let pause = pauses.next().unwrap_or(Duration::from_millis(20));
                    if started.elapsed() + pause >= budget {
                        return Err(UpdateError::Store(Error::conflict(
                            e.current_version(),
                            format!(
                                "update of {collection:?}/{id:?} lost the race to other writers \
                                 {lost} times in {:?} (the handle's timeout is {budget:?}); \
                                 nothing was written",
                                started.elapsed()
                            ),
                        )));
                    }
                    tokio::time::sleep(pause).await;
                }
                done => return done.map_err(UpdateError::Store),
            }
        }
    }

    /// Add `by` to the integer at `field` (a JSON pointer) of a record, in
    /// one step of the store: concurrent callers lose no increment, and a
    /// race never surfaces as `Conflict`. A missing record or field starts
    /// at 0; missing parent objects are created; the record keeps its
    /// expiry.
    ///
    /// # Errors
    /// `InvalidInput` when the field holds something other than an integer,
    /// a parent is not an object, or the sum leaves the 64-bit range
    /// (nothing is written); `Conflict` from a unique index; otherwise as
    /// `put`.
    pub async fn incr(&self, collection: &str, id: &str, field: &str, by: i64) -> Result<Record> {
        check_record(collection, id, Expect::Any)?;
        validate::field("incr field", field)?;
        let now = self.checked_now()?;
        let (cx, op) = (self.cx(now), IncrField::new(collection, id, field, by));
        self.timed("incr", self.store.incr(&cx, &op)).await
    }
}
