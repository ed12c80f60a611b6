//! The suite catches broken stores: a buggy decorator breaks ordering, dedupe
//! and atomicity, and the cases guarding those rules must fail, each with a
//! message naming the rule.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use persistkit_conformance::harnesses::MemoryHarness;
use persistkit_conformance::{all_cases, run_case, Fixture, Harness, SetupError, Status};
use persistkit_core::layer::{
    ForwardAdmin, ForwardBatches, ForwardEvents, ForwardIdempotency, ForwardMetrics, ForwardRecords,
};
use persistkit_core::op::*;
use persistkit_core::*;
use rstest::rstest;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bug {
    /// `clear` empties every namespace, not just its own.
    ClearAllNamespaces,
    /// `get_key` claims the key before reading it: the read-only state
    /// lookup creates keys.
    LookupClaims,
    /// `list_events` returns ties in reverse id order.
    TieOrder,
    /// `append` never reports duplicates and stores them again.
    NoDedupe,
    /// `write_metrics` writes only the first half of a batch.
    PartialBatch,
    /// `claim` always acquires.
    EveryoneWins,
    /// `list_components` sorts case-insensitively, like a default collation.
    LocaleSort,
    /// `import` commits namespace by namespace.
    ImportPerNamespace,
    /// `import` keeps ids and positions as floats.
    LossyPositions,
    /// `import` writes every namespace into `default`.
    ImportIntoDefault,
    /// A full log or a record at its last version wraps silently instead
    /// of refusing the write.
    SilentOverflow,
    /// A closed store answers "unavailable, retry".
    ClosedIsRetryable,
    /// Dedupe keys outlive the events that retention purged.
    DedupeSurvivesPurge,
    /// `read_log` and `list_records` ignore where to continue: the same
    /// page comes back for ever.
    EndlessPages,
    /// `get` busy-loops without ever yielding to the runtime.
    NeverYields,
    /// `claim` checks whether the key is taken, then takes it: two critical
    /// sections with no await point between them.
    CheckThenInsert,
    /// `append` reserves a position, then writes the event: positions
    /// follow reservation order, not commit order.
    ReserveThenWrite,
    /// `write_metrics` commits point by point.
    PointByPoint,
    /// `append` commits event by event.
    AppendOneByOne,
    /// `import` writes item by item through the ordinary write calls.
    ImportItemByItem,
    /// Metric times go through float seconds.
    FloatSeconds,
    /// Metric components are cut to 200 bytes.
    TruncatedNames,
    /// Collections are listed case-insensitively, like a default collation.
    CollectionLocaleSort,
    /// Metric writes are acknowledged at once and committed a moment later,
    /// in the background.
    AckBeforeCommit,
    /// Declares `durable`, and its harness offers no way to reopen.
    DurableWithoutReopen,
    /// Refuses a newer schema with a message that names no versions.
    VaguelyNewerSchema,
    /// A newest-first listing continues from its cursor oldest first.
    NewestFirstPagesForward,
    /// Quantiles interpolate between neighbours (`percentile_cont`) instead
    /// of taking the nearest rank.
    InterpolatedQuantiles,
    /// A store opened "in another schema" lands on the same tables, as when
    /// a pooler drops the start-up setting that chose the schema.
    MergedSchemas,
    /// A conditional record write ignores the version it expects.
    VersionIgnored,
    /// Reads of a record ignore its expiry.
    ExpiredStillVisible,
    /// `count` counts expired records too.
    CountIncludesExpired,
    /// Purge leaves expired records behind.
    PurgeKeepsExpired,
    /// A unique index is created as a plain one.
    UniqueNotEnforced,
    /// `find` orders by id instead of by the index key.
    FindByIdOrder,
    /// `find` ignores the key range: every record of the index matches.
    FindIgnoresRange,
    /// `import` drops the archive's index declarations.
    ImportSkipsIndexes,
    /// A batch runs item by item through the ordinary calls: what came
    /// before a failing item stays written, and others see it meanwhile.
    BatchItemByItem,
    /// Purge applies each domain's period to everything, ignoring the
    /// periods of components and collections.
    OneRetentionPeriod,
    /// A read cache that is not invalidated by `clear`.
    CacheForgetsClear,
    /// A read cache that is not invalidated by `delete`.
    CacheForgetsDelete,
    /// A read cache that stores what it read even when a write invalidated
    /// the key while it was reading.
    CacheStoresStaleReads,
    /// Declaring an index under a taken name is a silent no-op, whatever
    /// its fields (an `ON CONFLICT DO NOTHING` on the declaration).
    IndexNameOnly,
}

/// A decorator that forwards every call, except where it plants its bug.
#[derive(Debug)]
struct Buggy {
    inner: Arc<dyn Store>,
    bug: Bug,
    /// Every append result by dedupe key, for `DedupeSurvivesPurge`.
    seen: Mutex<HashMap<(String, Timestamp, String), Appended>>,
    /// Claimed keys, for `CheckThenInsert`.
    claims: Mutex<std::collections::HashSet<(String, String, String)>>,
    /// The log of `ReserveThenWrite`: the last position handed out, and
    /// the events written so far.
    reserved: std::sync::atomic::AtomicU64,
    log: Mutex<std::collections::BTreeMap<u64, Event>>,
    /// The read cache of the cache bugs.
    cache: Mutex<HashMap<(String, String, String), Option<Record>>>,
}

impl Buggy {
    fn closed_as_unavailable<T>(&self, r: Result<T>) -> Result<T> {
        match r {
            Err(e) if self.bug == Bug::ClosedIsRetryable && e.kind() == ErrorKind::Closed => {
                Err(Error::unavailable("store closed; retry"))
            }
            other => other,
        }
    }
}

#[async_trait]
impl MetricStore for Buggy {
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()> {
        let points = op.points;
        if self.bug == Bug::PartialBatch && points.len() > 1 {
            return self
                .inner
                .write_metrics(cx, &WriteMetrics::new(&points[..points.len() / 2]))
                .await;
        }
        match self.bug {
            Bug::AckBeforeCommit => {
                let (inner, cx, points) = (self.inner.clone(), cx.clone(), points.to_vec());
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    let _ = inner.write_metrics(&cx, &WriteMetrics::new(&points)).await;
                });
                Ok(())
            }
            Bug::PointByPoint => {
                for (i, p) in points.iter().enumerate() {
                    self.inner
                        .write_metrics(cx, &WriteMetrics::new(std::slice::from_ref(p)))
                        .await?;
                    if i % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                Ok(())
            }
            Bug::FloatSeconds => {
                let lossy: Vec<MetricPoint> = points
                    .iter()
                    .map(|p| {
                        let secs = p.at.as_micros() as f64 / 1e6;
                        MetricPoint {
                            at: Timestamp::from_micros((secs * 1e6) as i64).unwrap_or(p.at),
                            ..p.clone()
                        }
                    })
                    .collect();
                self.inner
                    .write_metrics(cx, &WriteMetrics::new(&lossy))
                    .await
            }
            Bug::TruncatedNames => {
                let cut: Vec<MetricPoint> = points
                    .iter()
                    .map(|p| {
                        let mut end = p.component.len().min(200);
                        while !p.component.is_char_boundary(end) {
                            end -= 1;
                        }
                        MetricPoint {
                            component: p.component[..end].to_string(),
                            ..p.clone()
                        }
                    })
                    .collect();
                self.inner.write_metrics(cx, &WriteMetrics::new(&cut)).await
            }
            _ => self.inner.write_metrics(cx, op).await,
        }
    }
    async fn read_metrics(&self, cx: &Cx, q: &MetricQuery) -> Result<Vec<StoredMetric>> {
        self.inner.read_metrics(cx, q).await
    }
    async fn list_components(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut v = self.inner.list_components(cx).await?;
        if self.bug == Bug::LocaleSort {
            v.sort_by_key(|s| s.to_lowercase());
        }
        Ok(v)
    }
    async fn list_metric_names(&self, cx: &Cx, op: &ListMetricNames<'_>) -> Result<Vec<String>> {
        self.inner.list_metric_names(cx, op).await
    }
    async fn aggregate(&self, cx: &Cx, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let mut rows = self.inner.aggregate(cx, q).await?;
        if self.bug == Bug::InterpolatedQuantiles && !q.quantiles.is_empty() {
            // Read the points back and interpolate, as percentile_cont does.
            let mut values: HashMap<(Timestamp, String, String), Vec<f64>> = HashMap::new();
            let mut after = None;
            loop {
                let page = self
                    .inner
                    .read_metrics(
                        cx,
                        &MetricQuery {
                            component: q.component.clone(),
                            name: q.name.clone(),
                            from: q.from,
                            to: q.to,
                            limit: 10_000,
                            after: after.take(),
                        },
                    )
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(MetricKey {
                    at: last.point.at,
                    component: last.point.component.clone(),
                    name: last.point.name.clone(),
                    seq: last.seq,
                });
                for m in &page {
                    let p = &m.point;
                    values
                        .entry((q.bucket.start_of(p.at), p.component.clone(), p.name.clone()))
                        .or_default()
                        .push(p.value);
                }
            }
            for r in &mut rows {
                let mut v = values
                    .remove(&(r.bucket_start, r.component.clone(), r.name.clone()))
                    .unwrap_or_default();
                v.sort_by(f64::total_cmp);
                r.quantiles = q
                    .quantiles
                    .iter()
                    .map(|&qq| {
                        let x = qq * (v.len() - 1) as f64;
                        let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
                        v[lo] + (v[hi] - v[lo]) * (x - lo as f64)
                    })
                    .collect();
            }
        }
        Ok(rows)
    }
}

#[async_trait]
impl EventStore for Buggy {
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>> {
        let events = op.events;
        if self.bug == Bug::NoDedupe {
            // Salt the digest so nothing ever matches.
            let salted: Vec<PreparedEvent> = events
                .iter()
                .map(|e| PreparedEvent {
                    digest: format!("{}-{}", e.digest, uuid()),
                    ..e.clone()
                })
                .collect();
            return self.inner.append(cx, &Append::new(&salted)).await;
        }
        if self.bug == Bug::ReserveThenWrite {
            let mut out = Vec::new();
            for e in events {
                let position = self
                    .reserved
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    + 1;
                let event = Event {
                    id: position,
                    position,
                    kind: e.kind.clone(),
                    occurred_at: e.occurred_at,
                    data: e.data.clone(),
                };
                self.log.lock().unwrap().insert(position, event);
                out.push(Appended {
                    id: position,
                    position,
                    duplicate: false,
                });
            }
            return Ok(out);
        }
        if self.bug == Bug::AppendOneByOne {
            let mut out = Vec::new();
            for (i, e) in events.iter().enumerate() {
                out.extend(
                    self.inner
                        .append(cx, &Append::new(std::slice::from_ref(e)))
                        .await?,
                );
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            return Ok(out);
        }
        if self.bug == Bug::DedupeSurvivesPurge && events.len() == 1 {
            let e = &events[0];
            let key = (e.kind.clone(), e.occurred_at, e.digest.clone());
            if let Some(a) = self.seen.lock().unwrap().get(&key) {
                return Ok(vec![Appended {
                    duplicate: true,
                    ..*a
                }]);
            }
            let out = self.inner.append(cx, op).await?;
            self.seen.lock().unwrap().insert(key, out[0]);
            return Ok(out);
        }
        match self.inner.append(cx, op).await {
            Err(e) if self.bug == Bug::SilentOverflow && e.kind() == ErrorKind::InvalidInput => {
                Ok(events
                    .iter()
                    .map(|_| Appended {
                        id: 0,
                        position: 0,
                        duplicate: false,
                    })
                    .collect())
            }
            other => self.closed_as_unavailable(other),
        }
    }
    async fn list_events(&self, cx: &Cx, q: &EventQuery) -> Result<Vec<Event>> {
        if self.bug == Bug::NewestFirstPagesForward && q.newest_first && q.after.is_some() {
            let forward = EventQuery {
                newest_first: false,
                ..q.clone()
            };
            return self.inner.list_events(cx, &forward).await;
        }
        let mut v = self.inner.list_events(cx, q).await?;
        if self.bug == Bug::TieOrder {
            v.sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at).then(b.id.cmp(&a.id)));
        }
        Ok(v)
    }
    async fn read_log(&self, cx: &Cx, op: &ReadLog) -> Result<Vec<Event>> {
        let ReadLog { after, limit, .. } = *op;
        if self.bug == Bug::ReserveThenWrite {
            let log = self.log.lock().unwrap();
            return Ok(log
                .range(after + 1..)
                .take(limit)
                .map(|(_, e)| e.clone())
                .collect());
        }
        let after = if self.bug == Bug::EndlessPages {
            0
        } else {
            after
        };
        self.inner.read_log(cx, &ReadLog::new(after, limit)).await
    }
}

fn uuid() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    u128::from(N.fetch_add(1, Ordering::SeqCst))
}

#[async_trait]
impl IdempotencyStore for Buggy {
    async fn claim(&self, cx: &Cx, op: &ClaimKey<'_>) -> Result<Claim> {
        let ns = cx.ns();
        let s = op.scope;
        let k = op.key;
        let tok = op.token;
        let now = cx.now();
        let exp = op.expires_at;
        if self.bug == Bug::CheckThenInsert {
            let key = (ns.to_string(), s.to_string(), k.to_string());
            let taken = self.claims.lock().unwrap().contains(&key);
            if taken {
                return Ok(Claim::Exists {
                    state: KeyState::InProgress,
                    claimed_at: now,
                    expires_at: exp,
                });
            }
            self.claims.lock().unwrap().insert(key);
            return Ok(Claim::Acquired {
                token: tok.into(),
                expires_at: exp,
            });
        }
        let c = self.inner.claim(cx, op).await?;
        if self.bug == Bug::EveryoneWins {
            return Ok(Claim::Acquired {
                token: tok.into(),
                expires_at: exp,
            });
        }
        Ok(c)
    }
    async fn complete(&self, cx: &Cx, op: &CompleteKey<'_>) -> Result<()> {
        self.inner.complete(cx, op).await
    }
    async fn release(&self, cx: &Cx, op: &ReleaseKey<'_>) -> Result<()> {
        self.inner.release(cx, op).await
    }
    async fn get_key(&self, cx: &Cx, op: &GetKey<'_>) -> Result<Option<IdempotencyEntry>> {
        let GetKey { scope, key, .. } = *op;
        if self.bug == Bug::LookupClaims {
            // A lookup written as "claim, then read": it creates the key.
            self.inner
                .claim(
                    &cx.at(Timestamp::MIN),
                    &ClaimKey::new(scope, key, "observer", Timestamp::MAX),
                )
                .await?;
        }
        self.inner.get_key(cx, op).await
    }

    async fn scan_keys(&self, cx: &Cx, op: &ScanKeys<'_>) -> Result<Vec<IdempotencyEntry>> {
        self.inner.scan_keys(cx, op).await
    }
}

#[async_trait]
impl RecordStore for Buggy {
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        let ns = cx.ns();
        let now = cx.now();
        let mut put = *put;
        if self.bug == Bug::VersionIgnored && matches!(put.expect, Expect::Version(_)) {
            // An UPDATE that forgot `AND version = $n`.
            put.expect = Expect::Any;
        }
        self.forget(Some((ns, put.collection, put.id)));
        match self.inner.put(cx, &put).await {
            Err(err)
                if self.bug == Bug::SilentOverflow && err.kind() == ErrorKind::InvalidInput =>
            {
                // The version wraps, as an INTEGER column turned REAL would.
                Ok(Record {
                    collection: put.collection.into(),
                    id: put.id.into(),
                    data: put.data.clone(),
                    version: 0,
                    created_at: now,
                    updated_at: now,
                    expires_at: put.expires_at,
                })
            }
            other => self.closed_as_unavailable(other),
        }
    }
    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>> {
        let ns = cx.ns();
        let c = op.collection;
        let id = op.id;
        if self.bug == Bug::NeverYields {
            // Holds its thread far past any case timeout, never awaiting.
            let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        let cx = &if self.bug == Bug::ExpiredStillVisible {
            // A read that forgot `AND expires_at > now`.
            cx.at(Timestamp::MIN)
        } else {
            cx.clone()
        };
        if self.caches() {
            let key = (ns.to_string(), c.to_string(), id.to_string());
            if let Some(hit) = self.cache.lock().unwrap().get(&key) {
                return Ok(hit.clone());
            }
            let r = self.inner.get(cx, op).await?;
            if self.bug == Bug::CacheStoresStaleReads {
                // The time a remote cache takes to answer: writes land here.
                tokio::task::yield_now().await;
            }
            self.cache.lock().unwrap().insert(key, r.clone());
            return Ok(r);
        }
        let r = self.inner.get(cx, op).await;
        self.closed_as_unavailable(r)
    }
    async fn delete(&self, cx: &Cx, op: &DeleteRecord<'_>) -> Result<()> {
        let ns = cx.ns();
        let c = op.collection;
        let id = op.id;
        if self.bug != Bug::CacheForgetsDelete {
            self.forget(Some((ns, c, id)));
        }
        self.inner.delete(cx, op).await
    }
    async fn list_records(&self, cx: &Cx, op: &ListRecords<'_>) -> Result<Vec<Record>> {
        let ListRecords {
            collection,
            after,
            limit,
            ..
        } = *op;
        let after = if self.bug == Bug::EndlessPages {
            None
        } else {
            after
        };
        self.inner
            .list_records(cx, &ListRecords::new(collection, after, limit))
            .await
    }
    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64> {
        if self.bug == Bug::CountIncludesExpired {
            // A count that forgot `AND expires_at > now`.
            return self.inner.count(&cx.at(Timestamp::MIN), op).await;
        }
        self.inner.count(cx, op).await
    }
    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut v = self.inner.list_collections(cx).await?;
        if self.bug == Bug::CollectionLocaleSort {
            v.sort_by_key(|s| s.to_lowercase());
        }
        Ok(v)
    }
    async fn create_index(&self, cx: &Cx, index: &Index) -> Result<bool> {
        if self.bug == Bug::IndexNameOnly {
            let taken = self
                .inner
                .list_indexes(cx, &ListIndexes::new(Some(&index.collection)))
                .await?;
            if taken.iter().any(|i| i.name == index.name) {
                return Ok(false);
            }
        }
        if self.bug == Bug::UniqueNotEnforced {
            // A CREATE INDEX that forgot UNIQUE.
            let plain = Index {
                unique: false,
                ..index.clone()
            };
            return self.inner.create_index(cx, &plain).await;
        }
        self.inner.create_index(cx, index).await
    }
    async fn list_indexes(&self, cx: &Cx, op: &ListIndexes<'_>) -> Result<Vec<Index>> {
        self.inner.list_indexes(cx, op).await
    }
    async fn find(&self, cx: &Cx, op: &FindRecords<'_>) -> Result<Vec<Found>> {
        let c = op.collection;
        let FindRecords { query, limit, .. } = *op;
        match self.bug {
            Bug::FindByIdOrder => {
                // Reads the whole range, then orders by id, not by key.
                let all = FindQuery {
                    after: None,
                    ..query.clone()
                };
                let mut v = self
                    .inner
                    .find(cx, &FindRecords::new(c, &all, usize::MAX))
                    .await?;
                v.sort_by(|a, b| a.record.id.cmp(&b.record.id));
                if let Some((_, after)) = &query.after {
                    v.retain(|f| f.record.id > *after);
                }
                v.truncate(limit);
                Ok(v)
            }
            Bug::FindIgnoresRange => {
                // A WHERE that kept only the index name.
                let everything = FindQuery {
                    from: Vec::new(),
                    to: vec![0xFF],
                    ..query.clone()
                };
                self.inner
                    .find(cx, &FindRecords::new(c, &everything, limit))
                    .await
            }
            _ => self.inner.find(cx, op).await,
        }
    }
}

#[async_trait]
impl BatchStore for Buggy {
    async fn apply(&self, cx: &Cx, op: &Apply<'_>) -> Result<Vec<Applied>> {
        let ns = cx.ns();
        let items = op.items;
        for item in items {
            if let BatchItem::Put { collection, id, .. }
            | BatchItem::Delete { collection, id, .. } = item
            {
                self.forget(Some((ns, collection, id)));
            }
        }
        if self.bug != Bug::BatchItemByItem {
            return self.inner.apply(cx, op).await;
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let one = self
                .inner
                .apply(cx, &Apply::new(std::slice::from_ref(item)))
                .await
                .map_err(|e| Error::new(e.kind(), e.message().to_string()).at_index(i))?;
            out.extend(one);
            tokio::task::yield_now().await;
        }
        Ok(out)
    }
}

#[async_trait]
impl AdminStore for Buggy {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        if self.bug == Bug::DurableWithoutReopen {
            c.durable = true;
        }
        c
    }
    async fn migrate(&self) -> Result<SchemaVersions> {
        self.inner.migrate().await
    }
    async fn schema_versions(&self) -> Result<SchemaVersions> {
        self.inner.schema_versions().await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn counts(&self, cx: &Cx) -> Result<Counts> {
        self.inner.counts(cx).await
    }
    async fn purge(&self, cx: &Cx, c: &PurgeCutoffs) -> Result<PurgeReport> {
        self.forget(None);
        if self.bug == Bug::OneRetentionPeriod {
            let mut flat = c.clone();
            flat.metrics_by_component.clear();
            flat.records_by_collection.clear();
            return self.inner.purge(cx, &flat).await;
        }
        if self.bug == Bug::PurgeKeepsExpired {
            // Purges by age only: nothing has expired as of the beginning
            // of time (expired idempotency keys stay too).
            let mut by_age = c.clone();
            by_age.now = Timestamp::MIN;
            return self.inner.purge(cx, &by_age).await;
        }
        self.inner.purge(cx, c).await
    }
    async fn clear(&self, cx: &Cx) -> Result<Counts> {
        if self.bug != Bug::CacheForgetsClear {
            self.forget(None);
        }
        if self.bug == Bug::ClearAllNamespaces {
            // A DELETE that forgot its `WHERE ns = …`.
            let mut n = self.inner.clear(cx).await?;
            for other in self.inner.namespaces().await? {
                let more = self.inner.clear(&cx.in_namespace(&other)).await?;
                n.metrics += more.metrics;
                n.events += more.events;
                n.idempotency_keys += more.idempotency_keys;
                n.records += more.records;
            }
            return Ok(n);
        }
        self.inner.clear(cx).await
    }
    async fn namespaces(&self) -> Result<Vec<String>> {
        self.inner.namespaces().await
    }
    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        self.forget(None);
        match self.bug {
            Bug::ImportSkipsIndexes => {
                let archive: Vec<ArchiveNamespace> = archive
                    .iter()
                    .map(|a| ArchiveNamespace {
                        name: a.name.clone(),
                        items: a
                            .items
                            .iter()
                            .filter(|i| !matches!(i, ArchiveItem::Index(_)))
                            .cloned()
                            .collect(),
                    })
                    .collect();
                self.inner.import(&archive, progress).await
            }
            Bug::ImportPerNamespace => {
                for a in archive {
                    self.inner.import(std::slice::from_ref(a), progress).await?;
                }
                Ok(())
            }
            Bug::LossyPositions => {
                let lossy = |v: u64| (v as f64) as u64;
                let archive: Vec<ArchiveNamespace> = archive
                    .iter()
                    .map(|a| ArchiveNamespace {
                        name: a.name.clone(),
                        items: a
                            .items
                            .iter()
                            .map(|i| match i {
                                ArchiveItem::Event(e) => ArchiveItem::Event(Event {
                                    id: lossy(e.id),
                                    position: lossy(e.position),
                                    ..e.clone()
                                }),
                                other => other.clone(),
                            })
                            .collect(),
                    })
                    .collect();
                self.inner.import(&archive, progress).await
            }
            Bug::ImportIntoDefault => {
                let archive: Vec<ArchiveNamespace> = archive
                    .iter()
                    .map(|a| ArchiveNamespace {
                        name: DEFAULT_NAMESPACE.into(),
                        items: a.items.clone(),
                    })
                    .collect();
                self.inner.import(&archive, progress).await
            }
            Bug::ImportItemByItem => {
                for a in archive {
                    for (i, item) in a.items.iter().enumerate() {
                        match item {
                            ArchiveItem::Metric(p) => {
                                self.inner
                                    .write_metrics(
                                        &Cx::new(&a.name, Timestamp::MIN),
                                        &WriteMetrics::new(std::slice::from_ref(p)),
                                    )
                                    .await?
                            }
                            ArchiveItem::Record(r) => {
                                self.inner
                                    .put(
                                        &Cx::new(&a.name, r.updated_at),
                                        &PutRecord {
                                            collection: &r.collection,
                                            id: &r.id,
                                            data: &r.data,
                                            expect: Expect::Any,
                                            expires_at: r.expires_at,
                                        },
                                    )
                                    .await?;
                            }
                            _ => {}
                        }
                        if i % 100 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                }
                Ok(())
            }
            _ => self.inner.import(archive, progress).await,
        }
    }
    async fn close(&self) {
        self.inner.close().await
    }
    async fn backup(&self, dest: &Path) -> Result<()> {
        self.inner.backup(dest).await
    }
}

struct BuggyHarness(Bug);

/// Hooks whose "other schema" is this one.
struct MergedSchemaHooks(Arc<dyn Store>);

#[async_trait]
impl persistkit_conformance::FixtureHooks for MergedSchemaHooks {
    async fn connect(&self) -> Result<Arc<dyn Store>> {
        Ok(self.0.clone())
    }
    async fn sibling(&self) -> Option<Result<Arc<dyn Store>>> {
        Some(Ok(self.0.clone()))
    }
}

/// Hooks whose newer-schema refusal says "schema 10 is too new": a number,
/// but neither the code's version nor the database's.
struct VagueSchemaHooks(Arc<dyn Store>);

#[async_trait]
impl persistkit_conformance::FixtureHooks for VagueSchemaHooks {
    async fn connect(&self) -> Result<Arc<dyn Store>> {
        Ok(self.0.clone())
    }
    async fn open_with_newer_schema(&self) -> Option<Result<Arc<dyn Store>>> {
        Some(Err(Error::schema(
            "database schema 10 is too new for this code (see issue 21)",
        )))
    }
}

impl Buggy {
    fn new(inner: Arc<dyn Store>, bug: Bug) -> Self {
        Buggy {
            inner,
            bug,
            seen: Mutex::default(),
            claims: Mutex::default(),
            reserved: Default::default(),
            log: Mutex::default(),
            cache: Mutex::default(),
        }
    }

    /// Whether this bug is a read cache (one that forgets an invalidation).
    fn caches(&self) -> bool {
        matches!(
            self.bug,
            Bug::CacheForgetsClear | Bug::CacheForgetsDelete | Bug::CacheStoresStaleReads
        )
    }

    /// Drop cached reads: one record, or (`None`) all of them.
    fn forget(&self, key: Option<(&str, &str, &str)>) {
        let mut c = self.cache.lock().unwrap();
        match key {
            Some((ns, coll, id)) => {
                c.remove(&(ns.to_string(), coll.to_string(), id.to_string()));
            }
            None => c.clear(),
        }
    }
}

/// The bug over SQLite, whose data a second process can open: for the
/// cross-process and crash cases. The child entry below opens the same.
struct BuggySqlite(Bug);

#[async_trait]
impl Harness for BuggySqlite {
    fn name(&self) -> String {
        format!("buggy sqlite ({:?})", self.0)
    }
    async fn fresh(&self) -> std::result::Result<Fixture, SetupError> {
        let inner = persistkit_conformance::harnesses::SqliteHarness::new()
            .fresh()
            .await?;
        Ok(Fixture {
            store: Arc::new(Buggy::new(inner.store, self.0)),
            hooks: inner.hooks,
        })
    }
    async fn open_location(&self, location: &str) -> Result<Arc<dyn Store>> {
        let inner = persistkit_conformance::harnesses::SqliteHarness::new()
            .open_location(location)
            .await?;
        Ok(Arc::new(Buggy::new(inner, self.0)))
    }
}

/// Not tests: the second processes of the cross-process self-tests, one
/// per planted bug.
#[test]
#[ignore = "second process of the self-tests; they start it themselves"]
fn buggy_child_check_then_insert() {
    persistkit_conformance::child::serve(BuggySqlite(Bug::CheckThenInsert));
}

#[test]
#[ignore = "second process of the self-tests; they start it themselves"]
fn buggy_child_ack_before_commit() {
    persistkit_conformance::child::serve(BuggySqlite(Bug::AckBeforeCommit));
}

/// A cross-process case on the buggy SQLite store, with `entry` (which
/// plants the same bug) as the second process.
async fn outcome_across_processes(
    bug: Bug,
    entry: &str,
    domain: &str,
    name: &str,
) -> (Status, String) {
    let case = all_cases()
        .into_iter()
        .find(|c| c.domain == domain && c.name == name)
        .expect("case exists");
    let child = persistkit_conformance::child::ChildCommand::test_entry(entry);
    let r = persistkit_conformance::run_case_with_child(
        Arc::new(BuggySqlite(bug)),
        &case,
        std::time::Duration::from_secs(120),
        child,
    )
    .await;
    (r.status, r.message.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_local_claims_fail_the_cross_process_case() {
    let (status, message) = outcome_across_processes(
        Bug::CheckThenInsert,
        "buggy_child_check_then_insert",
        "admin",
        "shared_across_processes_holds",
    )
    .await;
    assert_eq!(status, Status::Failed, "{message}");
    assert!(
        message.contains("exactly one process acquires"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_before_commit_fails_the_crash_case() {
    let (status, message) = outcome_across_processes(
        Bug::AckBeforeCommit,
        "buggy_child_ack_before_commit",
        "admin",
        "acknowledged_writes_survive_a_killed_writer",
    )
    .await;
    assert_eq!(status, Status::Failed, "{message}");
    assert!(message.contains("acknowledged metric batch"), "{message}");
}

#[async_trait]
impl Harness for BuggyHarness {
    fn name(&self) -> String {
        format!("buggy memory ({:?})", self.0)
    }
    async fn fresh(&self) -> std::result::Result<Fixture, SetupError> {
        let inner = MemoryHarness.fresh().await?.store;
        let store: Arc<dyn Store> = Arc::new(Buggy::new(inner, self.0));
        if self.0 == Bug::MergedSchemas {
            return Ok(Fixture {
                store: store.clone(),
                hooks: Box::new(MergedSchemaHooks(store)),
            });
        }
        if self.0 == Bug::VaguelyNewerSchema {
            return Ok(Fixture {
                store: store.clone(),
                hooks: Box::new(VagueSchemaHooks(store)),
            });
        }
        Ok(Fixture::shared(store))
    }
}

async fn outcome(bug: Bug, domain: &str, name: &str) -> (Status, String) {
    let case = all_cases()
        .into_iter()
        .find(|c| c.domain == domain && c.name == name)
        .expect("case exists");
    let r = run_case(Arc::new(BuggyHarness(bug)), &case).await;
    (r.status, r.message.unwrap_or_default())
}

#[rstest]
#[case(
    Bug::TieOrder,
    "events",
    "equal_times_list_in_stable_order",
    "ordered by id"
)]
#[case(
    Bug::TieOrder,
    "events",
    "list_orders_by_time_then_id",
    "(occurred_at, id)"
)]
#[case(
    Bug::NoDedupe,
    "events",
    "duplicate_returns_existing_id",
    "flagged duplicate"
)]
#[case(
    Bug::NoDedupe,
    "events",
    "concurrent_duplicates_write_once",
    "exactly one"
)]
#[case(
    Bug::NoDedupe,
    "events",
    "dedupe_uses_canonical_json",
    "canonical JSON"
)]
#[case(
    Bug::PartialBatch,
    "metrics",
    "write_keeps_identical_points",
    "identical points are all kept"
)]
#[case(
    Bug::PartialBatch,
    "metrics",
    "paging_returns_every_point_once",
    "every written point"
)]
#[case(
    Bug::EveryoneWins,
    "idempotency",
    "exactly_one_of_64_claimers_acquires",
    "exactly one acquires"
)]
#[case(
    Bug::EveryoneWins,
    "idempotency",
    "live_key_reports_in_progress",
    "in progress"
)]
#[case(Bug::LocaleSort, "metrics", "components_sorted_bytewise", "byte-wise")]
#[case(
    Bug::ImportPerNamespace,
    "admin",
    "import_is_all_or_nothing_across_namespaces",
    "must write nothing of namespace a"
)]
#[case(
    Bug::LossyPositions,
    "admin",
    "import_checks_sequence_bounds",
    "round-trip exactly"
)]
#[case(
    Bug::ImportIntoDefault,
    "admin",
    "handle_export_and_import_stay_in_namespace",
    "B's import lands in B"
)]
#[case(
    Bug::SilentOverflow,
    "events",
    "full_log_refuses_appends",
    "end of range: appending to a log at its last position"
)]
#[case(
    Bug::SilentOverflow,
    "records",
    "last_version_refuses_writes",
    "end of range: put"
)]
#[case(
    Bug::ClosedIsRetryable,
    "admin",
    "closed_store_is_not_retryable",
    "not be retryable"
)]
#[case(
    Bug::EndlessPages,
    "events",
    "read_log_resumes_after_position",
    "read_log(after, limit) returns the next"
)]
#[case(
    Bug::EndlessPages,
    "records",
    "list_orders_ids_bytewise",
    "paging returns every record once"
)]
#[case(
    Bug::PointByPoint,
    "common",
    "metric_batches_are_visible_whole",
    "part of a batch"
)]
#[case(
    Bug::AppendOneByOne,
    "common",
    "event_batches_are_visible_whole",
    "part of a batch"
)]
#[case(
    Bug::ImportItemByItem,
    "common",
    "imports_are_visible_whole",
    "part of a batch"
)]
#[case(
    Bug::FloatSeconds,
    "common",
    "timestamps_round_trip_across_the_range",
    "microseconds read back equal"
)]
#[case(
    Bug::TruncatedNames,
    "common",
    "every_name_round_trips_at_1_and_255_bytes",
    "255 bytes"
)]
#[case(
    Bug::LocaleSort,
    "common",
    "every_listing_sorts_bytewise",
    "components"
)]
#[case(
    Bug::CollectionLocaleSort,
    "common",
    "every_listing_sorts_bytewise",
    "collections"
)]
#[case(
    Bug::DurableWithoutReopen,
    "admin",
    "durable_across_reopen",
    "no reopen hook"
)]
#[case(
    Bug::VaguelyNewerSchema,
    "admin",
    "newer_schema_is_refused",
    "names both versions"
)]
#[case(
    Bug::MergedSchemas,
    "admin",
    "stores_in_other_schemas_are_separate",
    "another schema of the same database sees nothing"
)]
#[case(
    Bug::NewestFirstPagesForward,
    "events",
    "newest_first_reverses_the_listing",
    "EVT-5"
)]
#[case(
    Bug::InterpolatedQuantiles,
    "metrics",
    "aggregate_quantiles_by_nearest_rank",
    "MET-6"
)]
#[case(Bug::LookupClaims, "idempotency", "key_state_is_read_only", "IDM-6")]
#[case(
    Bug::ClearAllNamespaces,
    "admin",
    "clear_empties_one_namespace",
    "ADM-8"
)]
#[case(
    Bug::DedupeSurvivesPurge,
    "events",
    "purged_event_can_be_appended_again",
    "dedupe after purge"
)]
#[case(Bug::IndexNameOnly, "records", "indexes_are_declared_once", "REC-4")]
#[case(Bug::FindByIdOrder, "records", "find_orders_by_index_then_id", "REC-5")]
#[case(
    Bug::FindIgnoresRange,
    "records",
    "find_orders_by_index_then_id",
    "REC-5"
)]
#[case(
    Bug::FindIgnoresRange,
    "records",
    "find_pages_and_follows_writes",
    "REC-5"
)]
#[case(
    Bug::UniqueNotEnforced,
    "records",
    "unique_index_refuses_a_second_record",
    "REC-6"
)]
#[case(
    Bug::UniqueNotEnforced,
    "records",
    "unique_key_race_has_one_winner",
    "REC-6"
)]
#[case(
    Bug::ExpiredStillVisible,
    "records",
    "expired_records_are_absent",
    "REC-7"
)]
#[case(
    Bug::CountIncludesExpired,
    "records",
    "count_is_the_live_records_of_a_collection",
    "REC-11"
)]
#[case(
    Bug::PurgeKeepsExpired,
    "records",
    "expired_records_are_absent",
    "REC-7"
)]
#[case(
    Bug::VersionIgnored,
    "records",
    "update_and_incr_lose_nothing",
    "REC-8"
)]
#[case(
    Bug::ImportSkipsIndexes,
    "records",
    "archive_carries_indexes_and_expiry",
    "ADM-4"
)]
#[case(
    Bug::BatchItemByItem,
    "records",
    "batch_commits_all_or_nothing",
    "REC-9"
)]
#[case(
    Bug::BatchItemByItem,
    "common",
    "record_batches_are_visible_whole",
    "REC-9"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_planted_bug_fails_the_case_that_guards_it(
    #[case] bug: Bug,
    #[case] domain: &str,
    #[case] name: &str,
    #[case] rule: &str,
) {
    let (status, message) = outcome(bug, domain, name).await;
    assert_eq!(
        status,
        Status::Failed,
        "{bug:?} must fail {domain}::{name}; message: {message}"
    );
    assert!(
        message.contains(rule),
        "the failure must name the rule ({rule:?}); got: {message}"
    );
}

/// The same cases pass on the unbroken store, so the failures above come
/// from the planted bugs.
#[rstest]
#[case("events", "equal_times_list_in_stable_order")]
#[case("events", "duplicate_returns_existing_id")]
#[case("metrics", "write_keeps_identical_points")]
#[case("idempotency", "exactly_one_of_64_claimers_acquires")]
#[case("metrics", "components_sorted_bytewise")]
#[case("admin", "import_is_all_or_nothing_across_namespaces")]
#[case("admin", "import_checks_sequence_bounds")]
#[case("admin", "handle_export_and_import_stay_in_namespace")]
#[case("events", "full_log_refuses_appends")]
#[case("records", "last_version_refuses_writes")]
#[case("admin", "closed_store_is_not_retryable")]
#[case("events", "purged_event_can_be_appended_again")]
#[case("idempotency", "exactly_one_acquires_across_handles")]
#[case("events", "gap_free_log_under_concurrent_appends")]
#[case("events", "concurrent_duplicates_write_once")]
#[case("records", "no_lost_updates_across_handles")]
#[case("common", "metric_batches_are_visible_whole")]
#[case("common", "event_batches_are_visible_whole")]
#[case("common", "imports_are_visible_whole")]
#[case("common", "timestamps_round_trip_across_the_range")]
#[case("common", "every_name_round_trips_at_1_and_255_bytes")]
#[case("common", "every_listing_sorts_bytewise")]
#[case("metrics", "aggregate_quantiles_by_nearest_rank")]
#[case("events", "newest_first_reverses_the_listing")]
#[case("idempotency", "key_state_is_read_only")]
#[case("admin", "clear_empties_one_namespace")]
#[case("records", "indexes_are_declared_once")]
#[case("records", "find_orders_by_index_then_id")]
#[case("records", "find_pages_and_follows_writes")]
#[case("records", "unique_index_refuses_a_second_record")]
#[case("records", "unique_key_race_has_one_winner")]
#[case("records", "expired_records_are_absent")]
#[case("records", "update_and_incr_lose_nothing")]
#[case("records", "archive_carries_indexes_and_expiry")]
#[case("records", "batch_commits_all_or_nothing")]
#[case("admin", "purge_by_component_and_collection")]
#[case("records", "reads_follow_every_write")]
#[case("records", "reads_never_go_back")]
#[case("common", "record_batches_are_visible_whole")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_cases_pass_without_the_bug(#[case] domain: &str, #[case] name: &str) {
    let case = all_cases()
        .into_iter()
        .find(|c| c.domain == domain && c.name == name)
        .unwrap();
    let r = run_case(Arc::new(MemoryHarness), &case).await;
    assert_eq!(r.status, Status::Passed, "{:?}", r.message);
}

/// A harness that cannot run anything here.
struct Unreachable;

#[async_trait]
impl Harness for Unreachable {
    fn name(&self) -> String {
        "unreachable".into()
    }
    async fn fresh(&self) -> std::result::Result<Fixture, SetupError> {
        Err(SetupError::Skip("no server here".into()))
    }
}

/// With PERSISTKIT_FAIL_ON_SKIP=1 a skipped case fails its `#[test]`;
/// without it, the test passes and says SKIPPED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_skip_turns_skips_into_failures() {
    let strict = tokio::spawn(persistkit_conformance::run_case_as_test_with(
        Unreachable,
        "records",
        "get_missing_is_none",
        true,
    ))
    .await;
    let panic = strict.expect_err("a skip must fail under PERSISTKIT_FAIL_ON_SKIP=1");
    let text = panic
        .into_panic()
        .downcast::<String>()
        .map(|s| *s)
        .unwrap_or_default();
    assert!(
        text.contains("skipped") && text.contains("no server here"),
        "{text}"
    );
    tokio::spawn(persistkit_conformance::run_case_as_test_with(
        Unreachable,
        "records",
        "get_missing_is_none",
        false,
    ))
    .await
    .expect("without the switch a skip is reported, not failed");
}

/// A backend call that never yields cannot hang the run: the case fails at
/// its time limit and the caller goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_yields_fails_within_the_timeout() {
    let _alone = HEAVY.lock().await;
    let case = all_cases()
        .into_iter()
        .find(|c| c.domain == "records" && c.name == "get_missing_is_none")
        .unwrap();
    let limit = std::time::Duration::from_secs(1);
    let started = std::time::Instant::now();
    let r = persistkit_conformance::run_case_within(
        Arc::new(BuggyHarness(Bug::NeverYields)),
        &case,
        limit,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(r.status, Status::Failed, "{:?}", r.message);
    assert!(
        r.message.as_deref().unwrap_or("").contains("never hang"),
        "{:?}",
        r.message
    );
    assert!(
        took < limit + std::time::Duration::from_secs(1),
        "reported after {took:?}, not at the {limit:?} limit"
    );
    // The abandoned call spins on for a moment; let it end before the
    // race measurements get the cores.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
}

/// Tests that need the machine's cores to themselves take turns: the race
/// detection measurements, and the busy-looping backend.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Race detection does not depend on luck: a planted race is caught in at
/// least 99 of 100 runs of the case that guards it.
async fn detection_rate(bug: Bug, domain: &str, name: &str, rule: &str) {
    let _alone = HEAVY.lock().await;
    let mut caught = 0;
    let started = std::time::Instant::now();
    for _ in 0..100 {
        let (status, message) = outcome(bug, domain, name).await;
        if status == Status::Failed {
            assert!(message.contains(rule), "{message}");
            caught += 1;
        }
    }
    eprintln!(
        "race detection: {bug:?} caught by {domain}::{name} in {caught} of 100 runs ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(caught >= 99, "{bug:?} caught in only {caught} of 100 runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_then_insert_is_caught_99_of_100_times() {
    detection_rate(
        Bug::CheckThenInsert,
        "idempotency",
        "exactly_one_acquires_across_handles",
        "exactly one acquires",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_then_write_is_caught_99_of_100_times() {
    detection_rate(
        Bug::ReserveThenWrite,
        "events",
        "gap_free_log_under_concurrent_appends",
        "never skips an event that commits late",
    )
    .await;
}

/// The same cross-process cases pass on the unbroken SQLite store with the
/// same machinery, so the failures above come from the bugs.
#[test]
#[ignore = "second process of the self-tests; they start it themselves"]
fn sqlite_child() {
    persistkit_conformance::child::serve(persistkit_conformance::harnesses::SqliteHarness::new());
}

#[rstest]
#[case("shared_across_processes_holds")]
#[case("acknowledged_writes_survive_a_killed_writer")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_process_cases_pass_without_the_bug(#[case] name: &str) {
    let case = all_cases()
        .into_iter()
        .find(|c| c.domain == "admin" && c.name == name)
        .unwrap();
    let r = persistkit_conformance::run_case_with_child(
        Arc::new(persistkit_conformance::harnesses::SqliteHarness::new()),
        &case,
        std::time::Duration::from_secs(120),
        persistkit_conformance::child::ChildCommand::test_entry("sqlite_child"),
    )
    .await;
    assert_eq!(r.status, Status::Passed, "{:?}", r.message);
}

/// A cache that is one process's, over a store that says it is shared
/// across processes, and keeps saying so: what a cache layer that forgot
/// to drop the capability would be.
#[derive(Debug)]
struct ClaimsShared {
    inner: Arc<dyn Store>,
}

impl Layer for ClaimsShared {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}

impl ForwardMetrics for ClaimsShared {}
impl ForwardEvents for ClaimsShared {}
impl ForwardIdempotency for ClaimsShared {}
impl ForwardRecords for ClaimsShared {}
impl ForwardBatches for ClaimsShared {}

impl ForwardAdmin for ClaimsShared {
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        c.shared_across_processes = true;
        c
    }
}

/// SQLite behind an in-process cache that claims to be shared; the second
/// handle shares the cache, as a second handle in one process would.
fn process_local_cache(
) -> persistkit_conformance::harnesses::Layered<persistkit_conformance::harnesses::SqliteHarness> {
    persistkit_conformance::harnesses::Layered::new(
        persistkit_conformance::harnesses::SqliteHarness::new(),
        "process-local cache claiming sharing",
        |s| {
            Arc::new(ClaimsShared {
                inner: persistkit_cache::Cached::wrap(s, persistkit_cache::CacheConfig::default()),
            })
        },
    )
    .one_layer_per_process()
}

#[test]
#[ignore = "second process of the self-tests; they start it themselves"]
fn buggy_child_process_local_cache() {
    persistkit_conformance::child::serve(process_local_cache());
}

/// Only the cross-process case sees it: every single-process case passes
/// through the cache, and the other process's write never reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_local_cache_claiming_sharing_fails_the_cross_process_read_case() {
    let run = |name: &'static str| async move {
        let case = all_cases()
            .into_iter()
            .find(|c| c.domain == "records" && c.name == name)
            .expect("case exists");
        persistkit_conformance::run_case_with_child(
            Arc::new(process_local_cache()),
            &case,
            std::time::Duration::from_secs(120),
            persistkit_conformance::child::ChildCommand::test_entry(
                "buggy_child_process_local_cache",
            ),
        )
        .await
    };
    let r = run("reads_follow_writes_across_processes").await;
    let message = r.message.unwrap_or_default();
    assert_eq!(r.status, Status::Failed, "{message}");
    assert!(message.contains("another process"), "{message}");
    assert!(message.contains("REC-10"), "{message}");
    for name in ["reads_follow_every_write", "reads_never_go_back"] {
        let r = run(name).await;
        assert_eq!(r.status, Status::Passed, "{name}: {:?}", r.message);
    }
}

/// Memory that declares none of the optional record parts (indexes, unique
/// indexes, record TTL, batches): what a minimal fourth backend declares.
#[derive(Debug)]
struct DeclaresNoRecordParts {
    inner: Arc<dyn Store>,
}

impl Layer for DeclaresNoRecordParts {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}
impl ForwardMetrics for DeclaresNoRecordParts {}
impl ForwardEvents for DeclaresNoRecordParts {}
impl ForwardIdempotency for DeclaresNoRecordParts {}
impl ForwardRecords for DeclaresNoRecordParts {}
impl ForwardBatches for DeclaresNoRecordParts {}

impl ForwardAdmin for DeclaresNoRecordParts {
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        c.indexes = false;
        c.unique_indexes = false;
        c.record_ttl = false;
        c.batches = false;
        c
    }
}

struct NoRecordPartsHarness;

#[async_trait]
impl Harness for NoRecordPartsHarness {
    fn name(&self) -> String {
        "memory declaring no optional record parts".into()
    }
    async fn fresh(&self) -> std::result::Result<Fixture, SetupError> {
        let inner = MemoryHarness.fresh().await?.store;
        Ok(Fixture::shared(Arc::new(DeclaresNoRecordParts { inner })))
    }
}

/// ADM-7: a part a store does not declare is refused with `Unsupported` by
/// the handle, and its cases report unsupported, never passed; every case
/// that needs none of those parts still runs and passes.
#[tokio::test]
async fn undeclared_parts_are_refused_and_reported_unsupported() {
    let needs_a_part = [
        "records::indexes_are_declared_once",
        "records::find_orders_by_index_then_id",
        "records::find_pages_and_follows_writes",
        "records::unique_index_refuses_a_second_record",
        "records::unique_key_race_has_one_winner",
        "records::expired_records_are_absent",
        "records::archive_carries_indexes_and_expiry",
        "records::batch_commits_all_or_nothing",
        "common::record_batches_are_visible_whole",
    ];
    let harness = Arc::new(NoRecordPartsHarness);
    for case in all_cases() {
        let id = format!("{}::{}", case.domain, case.name);
        let r = run_case(harness.clone(), &case).await;
        let full = run_case(Arc::new(MemoryHarness), &case).await;
        if needs_a_part.contains(&id.as_str()) {
            assert_eq!(full.status, Status::Passed, "{id} on plain memory");
            assert_eq!(r.status, Status::Unsupported, "{id}: {:?}", r.message);
            assert!(
                r.message
                    .as_deref()
                    .unwrap_or("")
                    .contains("does not declare"),
                "{id}: the report says which part is missing: {:?}",
                r.message
            );
        } else {
            assert_eq!(
                r.status, full.status,
                "{id}: a case that needs none of the parts runs as on plain memory: {:?}",
                r.message
            );
        }
    }

    let h = Handle::new(Arc::new(DeclaresNoRecordParts {
        inner: Arc::new(persistkit_memory::MemoryStore::new()),
    }));
    let refused = [
        h.create_index(&Index::new("c", "i", ["/a"])).await.err(),
        h.find("c", &Find::new().eq("/a", 1)).await.err(),
        h.put_with_ttl(
            "c",
            "1",
            &serde_json::json!({}),
            Expect::Any,
            std::time::Duration::from_secs(1),
        )
        .await
        .err(),
        h.apply(&Batch::new().delete("c", "1", Expect::Any))
            .await
            .err(),
    ];
    for e in refused {
        let e = e.expect("an undeclared part is refused");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    }
    assert_eq!(
        h.get("c", "1").await.unwrap(),
        None,
        "nothing of a refused call was written"
    );
}
