//! The handle callers use: scoped to one namespace, validating every input
//! before any backend sees it, and reading time from an injectable clock.

use std::fmt;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::admin::{
    Capabilities, Counts, HealthReport, HealthStatus, PurgeCutoffs, PurgeReport,
    RetentionOverrides, RetentionPolicy, SchemaVersions,
};
use crate::archive::{self, ExportScope, ExportSummary, ImportSummary};
use crate::batch::{Applied, Batch, BatchItem, BatchOp, MAX_BATCH_ITEMS};
use crate::cursor::{self, Page};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Appended, Event, EventFilter, EventQuery, NewEvent, PreparedEvent};
use crate::idempotency::{Claim, KeyStatus};
use crate::index::{Find, FindQuery, Index, MAX_INDEXES_PER_COLLECTION};
use crate::metrics::{
    AggregateFilter, AggregateQuery, AggregateRow, Bucket, MetricFilter, MetricKey, MetricPoint,
    MetricQuery, StoredMetric,
};
use crate::records::{Expect, PutRecord, Record};
use crate::retry::RetryPolicy;
use crate::store::Store;
use crate::time::{Clock, SystemClock, Timestamp};
use crate::validate;

/// The namespace a handle uses unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Page size when a filter names none.
pub const DEFAULT_LIMIT: usize = 1_000;
/// Longest idempotency TTL: about 100 years.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 366 * 86_400);
/// How long a call may wait for the backend before it is `Unavailable`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts [`Handle::update`] makes before giving up with `Conflict`.
pub const UPDATE_ATTEMPTS: u32 = 64;

/// A store seen through one namespace. Cheap to clone.
///
/// Every method validates its input against the contract (see
/// [`validate`]) before the backend sees it, so bad input is `InvalidInput`
/// and writes nothing, on every backend.
#[derive(Clone)]
pub struct Handle {
    store: Arc<dyn Store>,
    ns: Arc<str>,
    clock: Arc<dyn Clock>,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("backend", &self.store.backend_name())
            .field("namespace", &self.ns)
            .finish()
    }
}

impl Handle {
    /// A handle on `store` in the `default` namespace, with the system clock.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Handle {
            store,
            ns: Arc::from(DEFAULT_NAMESPACE),
            clock: Arc::new(SystemClock),
            timeout: Some(DEFAULT_TIMEOUT),
            retry: None,
        }
    }

    /// Retry reads that fail with `Unavailable` (the store restarting, a
    /// failover, a pool briefly exhausted) under `policy`: exponential
    /// backoff with jitter, bounded in attempts. Off by default. Writes are
    /// not retried, because a write that timed out may have been committed;
    /// wrap one you know is safe to repeat in [`retrying`](Self::retrying).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// A read: [`timed`](Self::timed), again under the retry policy.
    async fn read<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        crate::retry::run(self.retry, || self.timed(what, call())).await
    }

    /// Fail any call that gets no answer within `timeout` with `Unavailable`
    /// (default 5 s; `None` waits forever). An import may take longer as a
    /// whole, but each of its batches must make progress within `timeout`.
    /// The backend's own pool and lock timeouts still apply inside.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Run a backend call under the handle's timeout, in a `persistkit`
    /// tracing span carrying the operation, namespace, backend and outcome
    /// (`ok` or the error kind).
    async fn timed<T>(
        &self,
        what: &'static str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        use tracing::Instrument;
        let span = tracing::debug_span!(
            "persistkit",
            op = what,
            ns = %self.ns,
            backend = self.store.backend_name(),
            outcome = tracing::field::Empty,
        );
        let inner = span.clone();
        async move {
            let r = within(self.timeout, self.store.backend_name(), what, call).await;
            inner.record(
                "outcome",
                match &r {
                    Ok(_) => "ok",
                    Err(e) => e.kind().as_str(),
                },
            );
            r
        }
        .instrument(span)
        .await
    }

    /// Latency per operation, when an [`Observed`](crate::Observed) layer
    /// is part of the store; `None` otherwise.
    pub fn latency(&self) -> Option<std::collections::BTreeMap<String, crate::LatencySummary>> {
        self.store.telemetry().latency
    }

    /// The same store seen through namespace `ns`.
    ///
    /// # Errors
    /// `InvalidInput` when `ns` is not a valid name.
    pub fn namespace(&self, ns: &str) -> Result<Handle> {
        validate::name("namespace", ns)?;
        Ok(Handle {
            ns: Arc::from(ns),
            ..self.clone()
        })
    }

    /// Use `clock` for expiry, retention and record times.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// This handle's namespace.
    pub fn namespace_name(&self) -> &str {
        &self.ns
    }

    /// The backend underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current time by this handle's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The clock's time, checked like any input: a clock outside years
    /// 1..=9999 is `InvalidInput`, before anything is written.
    fn checked_now(&self) -> Result<Timestamp> {
        let now = self.clock.now();
        Timestamp::from_micros(now.as_micros()).map_err(|_| {
            Error::invalid(format!(
                "the handle's clock reads {}µs since the epoch, outside years 1..=9999; nothing was written",
                now.as_micros()
            ))
        })
    }

    /// Operations over every namespace of this store (export and import of
    /// several namespaces). A `Handle` never reaches beyond its own
    /// namespace; this is the explicit way to.
    pub fn admin(&self) -> AdminHandle {
        AdminHandle {
            store: self.store.clone(),
            timeout: self.timeout,
        }
    }

    /// What the backend declares.
    pub fn capabilities(&self) -> Capabilities {
        self.store.capabilities()
    }

    // ---- metrics -------------------------------------------------------

    /// Append points: all of them or, if any is invalid, none. Negative zero
    /// is stored as zero.
    ///
    /// # Errors
    /// `InvalidInput` with the index of the first bad point.
    pub async fn write_metrics(&self, points: &[MetricPoint]) -> Result<()> {
        for (i, p) in points.iter().enumerate() {
            validate::point(p).map_err(|e| e.at_index(i))?;
        }
        if points.is_empty() {
            return Ok(());
        }
        // -0.0 equals 0.0 but prints differently; SQLite cannot keep it, so no
        // backend does, and archives stay byte-identical across backends.
        if points
            .iter()
            .any(|p| p.value == 0.0 && p.value.is_sign_negative())
        {
            let fixed: Vec<MetricPoint> = points
                .iter()
                .map(|p| MetricPoint {
                    value: p.value + 0.0,
                    ..p.clone()
                })
                .collect();
            return self
                .timed("write_metrics", self.store.write_metrics(&self.ns, &fixed))
                .await;
        }
        self.timed("write_metrics", self.store.write_metrics(&self.ns, points))
            .await
    }

    /// Read points ordered by `(at, component, name, insertion sequence)`.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name, limit, range or cursor.
    pub async fn read_metrics(&self, filter: &MetricFilter) -> Result<Page<StoredMetric>> {
        check_opt_name("component", filter.component.as_deref())?;
        check_opt_name("metric name", filter.name.as_deref())?;
        check_range(filter.from, filter.to)?;
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
        validate::limit(limit)?;
        let after = match &filter.cursor {
            Some(c) => {
                let k = cursor::decode::<MetricKey>("metrics", c)?;
                cursor::check_sequence("metrics", c, k.seq)?;
                Some(k)
            }
            None => None,
        };
        let query = MetricQuery {
            component: filter.component.clone(),
            name: filter.name.clone(),
            from: filter.from,
            to: filter.to,
            limit: limit + 1,
            after,
        };
        let items = self
            .timed("read_metrics", self.store.read_metrics(&self.ns, &query))
            .await?;
        Ok(paginate(items, limit, |m| {
            cursor::encode(
                "metrics",
                &MetricKey {
                    at: m.point.at,
                    component: m.point.component.clone(),
                    name: m.point.name.clone(),
                    seq: m.seq,
                },
            )
        }))
    }

    /// Distinct components, sorted byte-wise.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached.
    pub async fn list_components(&self) -> Result<Vec<String>> {
        self.timed("list_components", self.store.list_components(&self.ns))
            .await
    }

    /// Distinct metric names of `component`, sorted byte-wise.
    ///
    /// # Errors
    /// `InvalidInput` for a bad component name.
    pub async fn list_metric_names(&self, component: &str) -> Result<Vec<String>> {
        validate::name("component", component)?;
        self.timed(
            "list_metric_names",
            self.store.list_metric_names(&self.ns, component),
        )
        .await
    }

    /// Aggregate into epoch-aligned buckets of `bucket` seconds.
    ///
    /// # Errors
    /// `InvalidInput` for a zero or too wide bucket, a bad name or range, or
    /// a quantile outside `[0, 1]` (or more than 16 of them).
    pub async fn aggregate(
        &self,
        filter: &AggregateFilter,
        bucket: Bucket,
    ) -> Result<Vec<AggregateRow>> {
        check_opt_name("component", filter.component.as_deref())?;
        check_opt_name("metric name", filter.name.as_deref())?;
        check_range(filter.from, filter.to)?;
        if bucket.as_secs() == 0 || bucket.as_secs() > validate::MAX_BUCKET_SECONDS {
            return Err(Error::invalid(format!(
                "bucket must be 1..={} seconds, got {}",
                validate::MAX_BUCKET_SECONDS,
                bucket.as_secs()
            )));
        }
        let quantiles = validate::quantiles(&filter.quantiles)?;
        let query = AggregateQuery {
            component: filter.component.clone(),
            name: filter.name.clone(),
            from: filter.from,
            to: filter.to,
            bucket,
            quantiles,
        };
        self.timed("aggregate", self.store.aggregate(&self.ns, &query))
            .await
    }

    // ---- events --------------------------------------------------------

    /// Append events idempotently; one result per event, in order.
    ///
    /// # Errors
    /// `InvalidInput` with the index of the first bad event; nothing is written.
    pub async fn append(&self, events: &[NewEvent]) -> Result<Vec<Appended>> {
        let mut prepared = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            prepared.push(prepare_event(e).map_err(|err| err.at_index(i))?);
        }
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        self.timed("append", self.store.append(&self.ns, &prepared))
            .await
    }

    /// List events ordered by `(occurred_at, id)`, oldest first, or newest
    /// first with [`EventFilter::newest_first`]. A cursor continues in the
    /// order of the listing that returned it.
    ///
    /// # Errors
    /// `InvalidInput` for a bad kind, limit, range or cursor.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<Page<Event>> {
        for k in &filter.kinds {
            validate::name("event kind", k)?;
        }
        check_range(filter.from, filter.to)?;
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
        validate::limit(limit)?;
        let after = match &filter.cursor {
            Some(c) => {
                let k = cursor::decode::<(Timestamp, u64)>("events", c)?;
                cursor::check_sequence("events", c, k.1)?;
                Some(k)
            }
            None => None,
        };
        let mut kinds = filter.kinds.clone();
        kinds.sort();
        kinds.dedup();
        let query = EventQuery {
            from: filter.from,
            to: filter.to,
            kinds,
            limit: limit + 1,
            after,
            newest_first: filter.newest_first,
        };
        let items = self
            .timed("list_events", self.store.list_events(&self.ns, &query))
            .await?;
        Ok(paginate(items, limit, |e| {
            cursor::encode("events", &(e.occurred_at, e.id))
        }))
    }

    /// Events with `position > after`, in commit order, at most `limit`.
    ///
    /// # Errors
    /// `InvalidInput` for a limit outside 1..=10 000.
    pub async fn read_log(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        validate::limit(limit)?;
        self.timed("read_log", self.store.read_log(&self.ns, after, limit))
            .await
    }

    // ---- idempotency ---------------------------------------------------

    /// Claim `(scope, key)` for `ttl`.
    ///
    /// # Errors
    /// `InvalidInput` for bad names or a TTL of zero or over 100 years.
    pub async fn claim(&self, scope: &str, key: &str, ttl: Duration) -> Result<Claim> {
        check_key(scope, key)?;
        let now = self.checked_now()?;
        let expires_at = expiry(now, ttl)?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.timed(
            "claim",
            self.store
                .claim(&self.ns, scope, key, &token, now, expires_at),
        )
        .await
    }

    /// The state of `(scope, key)` now, read-only: `None` when the key is
    /// absent or expired, else whether it is in progress or completed (with
    /// its response) and its times. It never claims, takes over or extends
    /// a key, and shows no token.
    ///
    /// # Errors
    /// `InvalidInput` for a bad scope or key.
    pub async fn key_state(&self, scope: &str, key: &str) -> Result<Option<KeyStatus>> {
        check_key(scope, key)?;
        let now = self.checked_now()?;
        let entry = self
            .timed("key_state", self.store.get_key(&self.ns, scope, key))
            .await?;
        Ok(entry.and_then(|e| e.status(now)))
    }

    /// Store the outcome of a claimed key, for replay.
    ///
    /// # Errors
    /// `Conflict` for a wrong token or a key already completed; `NotFound`
    /// for an absent or expired key; `InvalidInput` for a bad response.
    pub async fn complete(
        &self,
        scope: &str,
        key: &str,
        token: &str,
        response: &Value,
    ) -> Result<()> {
        check_key(scope, key)?;
        validate::json("response", response)?;
        let now = self.checked_now()?;
        self.timed(
            "complete",
            self.store
                .complete(&self.ns, scope, key, token, response, now),
        )
        .await
    }

    /// Give up a claim so a retry can acquire the key.
    ///
    /// # Errors
    /// `Conflict` for a wrong token or a completed key; `NotFound` for an
    /// absent or expired key.
    pub async fn release(&self, scope: &str, key: &str, token: &str) -> Result<()> {
        check_key(scope, key)?;
        let now = self.checked_now()?;
        self.timed(
            "release",
            self.store.release(&self.ns, scope, key, token, now),
        )
        .await
    }

    // ---- records -------------------------------------------------------

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
        self.timed("put", self.store.put(&self.ns, &put, now)).await
    }

    /// Fetch a record (`None` when absent or expired).
    ///
    /// # Errors
    /// `InvalidInput` for bad names.
    pub async fn get(&self, collection: &str, id: &str) -> Result<Option<Record>> {
        check_record(collection, id, Expect::Any)?;
        let now = self.checked_now()?;
        self.read("get", || self.store.get(&self.ns, collection, id, now))
            .await
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
            self.store.delete(&self.ns, collection, id, expect, now),
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
        let after = match cursor {
            Some(c) => Some(cursor::decode::<String>("records", c)?),
            None => None,
        };
        let now = self.checked_now()?;
        let items = self
            .read("list_records", || {
                self.store
                    .list_records(&self.ns, collection, after.as_deref(), limit + 1, now)
            })
            .await?;
        Ok(paginate(items, limit, |r| cursor::encode("records", &r.id)))
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
        let existing = self
            .timed(
                "list_indexes",
                self.store.list_indexes(&self.ns, Some(&index.collection)),
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
            self.store.create_index(&self.ns, index, now),
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
        self.read("list_indexes", || {
            self.store.list_indexes(&self.ns, collection)
        })
        .await
    }

    /// Records of `collection` matching `query`, through an index: ordered
    /// by the index's remaining fields, then id, and paged like every
    /// listing. See [`crate::index`] for how values compare.
    ///
    /// # Errors
    /// `InvalidInput` when no index serves the query (naming the field), for
    /// an array or object value, a bad limit, or a cursor of another query.
    pub async fn find(&self, collection: &str, query: &Find) -> Result<Page<Record>> {
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
        let (index, from, to) = crate::index::plan(collection, &indexes, query)?;
        let after = match &query.cursor {
            Some(c) => {
                let (name, key, id): (String, String, String) = cursor::decode("find", c)?;
                let key = hex::decode(&key)
                    .ok()
                    .filter(|_| name == index.name)
                    .ok_or_else(|| {
                        Error::invalid(format!("cursor {c:?} is not a cursor of this query"))
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
        let found = self
            .read("find", || {
                self.store.find(&self.ns, collection, &q, limit + 1, now)
            })
            .await?;
        let page = paginate(found, limit, |f| {
            cursor::encode("find", &(&index.name, hex::encode(&f.key), &f.record.id))
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
            match self.timed("put", self.store.put(&self.ns, &put, now)).await {
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
        self.update(collection, id, |current| {
            crate::records::add_to_field(current, field, by)
        })
        .await
    }

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
        self.timed("apply", self.store.apply(&self.ns, &items, now))
            .await
    }

    /// Run `call` again while it fails with `Unavailable`, under this
    /// handle's retry policy ([`with_retry`](Self::with_retry); without one,
    /// once). For writes you know are safe to repeat: a write that timed out
    /// may have been committed.
    ///
    /// # Errors
    /// The last error.
    pub async fn retrying<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        crate::retry::run(self.retry, call).await
    }

    // ---- administration ------------------------------------------------

    /// Apply pending migrations (a no-op when there are none).
    ///
    /// # Errors
    /// `Schema` when the database is newer than the code or a migration fails.
    pub async fn migrate(&self) -> Result<SchemaVersions> {
        self.timed("migrate", self.store.migrate()).await
    }

    /// Row counts per domain in this namespace.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached.
    pub async fn counts(&self) -> Result<Counts> {
        self.timed("counts", self.store.counts(&self.ns)).await
    }

    /// A health report. Never fails: a down database is `unhealthy` with the
    /// error.
    pub async fn health(&self) -> HealthReport {
        let checked = health(self.store.as_ref(), &self.ns);
        match self.timeout {
            None => checked.await,
            Some(limit) => match tokio::time::timeout(limit, checked).await {
                Ok(r) => r,
                Err(_) => HealthReport {
                    status: HealthStatus::Unhealthy,
                    backend: self.store.backend_name().to_string(),
                    namespace: self.ns.to_string(),
                    schema: None,
                    counts: None,
                    storage_bytes: None,
                    pool: self.store.pool_stats(),
                    latency_us: None,
                    error: Some(format!("no answer within {limit:?}")),
                    layers: self.store.telemetry(),
                },
            },
        }
    }

    /// Delete what `policy` names, expired idempotency keys and expired
    /// records, in this namespace only.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached.
    pub async fn purge(&self, policy: &RetentionPolicy) -> Result<PurgeReport> {
        self.purge_with(policy, &RetentionOverrides::default())
            .await
    }

    /// [`purge`](Self::purge), with periods of their own for some metric
    /// components and collections (`overrides`), which replace the
    /// policy's period for them.
    ///
    /// # Errors
    /// `InvalidInput` for a bad component or collection name (nothing is
    /// purged); `Unavailable` when the database cannot be reached.
    pub async fn purge_with(
        &self,
        policy: &RetentionPolicy,
        overrides: &RetentionOverrides,
    ) -> Result<PurgeReport> {
        for c in overrides.metrics_by_component.keys() {
            validate::name("component", c)?;
        }
        for c in overrides.records_by_collection.keys() {
            validate::name("collection", c)?;
        }
        let now = self.checked_now()?;
        let before = |d: &Duration| now.saturating_sub(*d);
        let cutoffs = PurgeCutoffs {
            now,
            metrics_before: policy.metrics_older_than.as_ref().map(before),
            events_before: policy.events_older_than.as_ref().map(before),
            records_before: policy.records_not_updated_for.as_ref().map(before),
            metrics_by_component: overrides
                .metrics_by_component
                .iter()
                .map(|(c, d)| (c.clone(), before(d)))
                .collect(),
            records_by_collection: overrides
                .records_by_collection
                .iter()
                .map(|(c, d)| (c.clone(), before(d)))
                .collect(),
        };
        self.timed("purge", self.store.purge(&self.ns, &cutoffs))
            .await
    }

    /// Empty this handle's namespace: every metric point, event, idempotency
    /// key and record in it, at once (one transaction). Other namespaces are
    /// untouched. The event log starts again at position 1 and dedupe
    /// forgets the deleted events, so pollers of this namespace must start
    /// over. For test resets, and before importing an archive over a
    /// namespace. Returns how many of each were deleted.
    ///
    /// # Errors
    /// As any write: `Unavailable` when the store cannot be reached (then
    /// nothing was deleted).
    pub async fn clear(&self) -> Result<Counts> {
        self.timed("clear", self.store.clear(&self.ns)).await
    }

    /// Write the portable archive of this namespace to `out`. `progress` is
    /// called with the running item count.
    ///
    /// # Errors
    /// `InvalidInput` for [`ExportScope::All`]: a handle never sees other
    /// namespaces (use [`Handle::admin`]); `Internal` when `out` fails to
    /// write.
    pub async fn export(
        &self,
        scope: ExportScope,
        out: &mut (dyn Write + Send),
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<ExportSummary> {
        if scope == ExportScope::All {
            return Err(Error::invalid(format!(
                "a handle on namespace {:?} exports only that namespace; \
                 use Handle::admin() to export every namespace",
                self.ns
            )));
        }
        archive::export(
            self.store.as_ref(),
            self.timeout,
            std::slice::from_ref(&self.ns.to_string()),
            out,
            progress,
        )
        .await
    }

    /// Load a portable archive of this handle's namespace into it, while it
    /// is empty. The whole archive is read and checked before anything is
    /// written, and it lands all-or-nothing.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed archive (with the line number) or one
    /// that holds another namespace (use [`Handle::admin`] for those);
    /// `Conflict` when the namespace already holds data; `Unavailable` when
    /// the backend makes no progress within the handle's timeout.
    pub async fn import(
        &self,
        input: &mut (dyn BufRead + Send),
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<ImportSummary> {
        let parsed = archive::parse(input)?;
        if let Some(other) = parsed.iter().find(|ns| *ns.name != *self.ns) {
            return Err(Error::invalid(format!(
                "the archive holds namespace {:?}; a handle on namespace {:?} imports only into \
                 its own namespace (use Handle::admin() to import several); nothing was imported",
                other.name, self.ns
            )));
        }
        archive::import(self.store.as_ref(), &parsed, self.timeout, progress).await
    }

    /// Native backup to `dest`, where the backend declares one.
    ///
    /// # Errors
    /// `Unsupported` when the backend has none; `InvalidInput` when `dest`
    /// exists.
    pub async fn backup(&self, dest: &Path) -> Result<()> {
        if !self.capabilities().native_backup {
            return Err(Error::unsupported(format!(
                "{} does not declare native_backup",
                self.store.backend_name()
            )));
        }
        if dest.exists() {
            return Err(Error::invalid(format!(
                "backup destination {} already exists",
                dest.display()
            )));
        }
        self.store.backup(dest).await
    }
}

/// Run `call` with a time limit: no answer within `limit` is `Unavailable`.
pub(crate) async fn within<T>(
    limit: Option<Duration>,
    backend: &str,
    what: &str,
    call: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    // A backend's error says what went wrong; this says where.
    let call = async { call.await.map_err(|e| e.in_operation(what)) };
    match limit {
        None => call.await,
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(r) => r,
            Err(_) => Err(Error::unavailable(format!(
                "{what}: no answer from {backend} within {limit:?}"
            ))),
        },
    }
}

async fn health(store: &dyn Store, ns: &str) -> HealthReport {
    let mut report = HealthReport {
        status: HealthStatus::Healthy,
        backend: store.backend_name().to_string(),
        namespace: ns.to_string(),
        schema: None,
        counts: None,
        storage_bytes: None,
        pool: store.pool_stats(),
        latency_us: None,
        error: None,
        layers: store.telemetry(),
    };
    let started = Instant::now();
    if let Err(e) = store.ping().await {
        report.status = HealthStatus::Unhealthy;
        report.error = Some(error_chain(&e));
        return report;
    }
    report.latency_us = Some(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    let gathered = async {
        let schema = store.schema_versions().await?;
        // Tables of an older schema may not hold what this code counts.
        let counts = if schema.current == schema.expected {
            Some(store.counts(ns).await?)
        } else {
            None
        };
        let bytes = store.storage_bytes().await?;
        Ok::<_, Error>((schema, counts, bytes))
    };
    match gathered.await {
        Ok((schema, counts, bytes)) => {
            report.schema = Some(schema);
            report.counts = counts;
            report.storage_bytes = bytes;
            let mut problems = Vec::new();
            if schema.current > schema.expected {
                report.status = HealthStatus::Unhealthy;
                problems.push(format!(
                    "database schema {} is newer than this code's {}",
                    schema.current, schema.expected
                ));
            } else if schema.current < schema.expected {
                let pending: Vec<String> = (schema.current + 1..=schema.expected)
                    .map(|v| v.to_string())
                    .collect();
                problems.push(format!(
                    "migrations pending: version {} (the database is at {}, this code expects {}); run `persistkit migrate`",
                    pending.join(", "),
                    schema.current,
                    schema.expected
                ));
            }
            if let Some(p) = report.pool {
                if p.idle == 0 && p.size >= p.max {
                    problems.push(format!("pool exhausted: {} of {} in use", p.size, p.max));
                }
            }
            if started.elapsed() > Duration::from_secs(1) {
                problems.push("round trip slower than 1 s".to_string());
            }
            problems.extend(report.layers.problems.iter().cloned());
            if !problems.is_empty() {
                if report.status == HealthStatus::Healthy {
                    report.status = HealthStatus::Degraded;
                }
                report.error = Some(problems.join("; "));
            }
        }
        Err(e) => {
            report.status = HealthStatus::Unhealthy;
            report.error = Some(error_chain(&e));
        }
    }
    report
}

/// `e` and its sources, joined with ": ", each thing said once: a source
/// whose text the chain already holds (drivers often wrap an error and
/// print it again) is left out.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let text = src.to_string();
        if !text.is_empty() && !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = src.source();
    }
    s
}

fn paginate<T>(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next_cursor }
}

fn prepare_event(e: &NewEvent) -> Result<PreparedEvent> {
    validate::name("event kind", &e.kind)?;
    let checked = validate::json("event data", &e.data)?;
    let digest = checked.sha256_hex();
    Ok(PreparedEvent {
        kind: e.kind.clone(),
        occurred_at: e.occurred_at,
        data: checked.value,
        canonical: checked.canonical,
        digest,
    })
}

/// `now + ttl`, for a TTL of more than zero and at most [`MAX_TTL`] that
/// ends by year 9999.
fn expiry(now: Timestamp, ttl: Duration) -> Result<Timestamp> {
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(Error::invalid(format!(
            "ttl must be more than zero and at most 100 years, got {ttl:?}"
        )));
    }
    now.checked_add(ttl).map_err(|_| {
        Error::invalid(format!(
            "ttl {ttl:?} from {now} ends after year 9999; nothing was written"
        ))
    })
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

fn check_key(scope: &str, key: &str) -> Result<()> {
    validate::name("idempotency scope", scope)?;
    validate::name("idempotency key", key)
}

fn check_record(collection: &str, id: &str, expect: Expect) -> Result<()> {
    validate::name("collection", collection)?;
    validate::name("record id", id)?;
    if let Expect::Version(v) = expect {
        validate::sequence("expected version", v)?;
    }
    Ok(())
}

fn check_opt_name(what: &str, v: Option<&str>) -> Result<()> {
    v.map_or(Ok(()), |v| validate::name(what, v))
}

fn check_range(from: Option<Timestamp>, to: Option<Timestamp>) -> Result<()> {
    match (from, to) {
        (Some(f), Some(t)) if f > t => Err(Error::invalid(format!(
            "time range is inverted: from {f} is after to {t}"
        ))),
        _ => Ok(()),
    }
}

/// Operations over every namespace of a store: listing namespaces, and
/// exporting or importing all of them at once. Get one with
/// [`Handle::admin`] or [`AdminHandle::new`]; it is the only way to reach
/// beyond one namespace.
#[derive(Clone)]
pub struct AdminHandle {
    store: Arc<dyn Store>,
    timeout: Option<Duration>,
}

impl fmt::Debug for AdminHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminHandle")
            .field("backend", &self.store.backend_name())
            .finish()
    }
}

impl AdminHandle {
    /// Every-namespace operations on `store`, with the default timeout.
    pub fn new(store: Arc<dyn Store>) -> Self {
        AdminHandle {
            store,
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// As [`Handle::with_timeout`].
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Namespaces holding any data, sorted byte-wise.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached.
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        within(
            self.timeout,
            self.store.backend_name(),
            "namespaces",
            self.store.namespaces(),
        )
        .await
    }

    /// Write the portable archive of every namespace with data to `out`.
    ///
    /// # Errors
    /// `Internal` when `out` fails to write; `Unavailable` when a page read
    /// gets no answer within the timeout.
    pub async fn export(
        &self,
        out: &mut (dyn Write + Send),
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<ExportSummary> {
        let namespaces = self.namespaces().await?;
        archive::export(
            self.store.as_ref(),
            self.timeout,
            &namespaces,
            out,
            progress,
        )
        .await
    }

    /// Load a portable archive (every namespace it holds) into a store where
    /// those namespaces are empty: all of it, or nothing.
    ///
    /// # Errors
    /// As [`Handle::import`], without the one-namespace rule.
    pub async fn import(
        &self,
        input: &mut (dyn BufRead + Send),
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<ImportSummary> {
        let parsed = archive::parse(input)?;
        archive::import(self.store.as_ref(), &parsed, self.timeout, progress).await
    }
}
