//! An example backend: a store that counts the writes it forwards to an inner
//! store. A real backend talks to its database here; the shape is the same:
//! implement the five domain traits, and you have a `persistkit_core::Store`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use persistkit_core::*;
use serde_json::Value;

/// Forwards everything to `inner`, counting write calls.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn Store>,
    writes: AtomicU64,
}

impl CountingStore {
    /// Wrap a store.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        CountingStore {
            inner,
            writes: AtomicU64::new(0),
        }
    }

    /// Write calls so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl MetricStore for CountingStore {
    async fn write_metrics(&self, ns: &str, points: &[MetricPoint]) -> Result<()> {
        self.count();
        self.inner.write_metrics(ns, points).await
    }
    async fn read_metrics(&self, ns: &str, q: &MetricQuery) -> Result<Vec<StoredMetric>> {
        self.inner.read_metrics(ns, q).await
    }
    async fn list_components(&self, ns: &str) -> Result<Vec<String>> {
        self.inner.list_components(ns).await
    }
    async fn list_metric_names(&self, ns: &str, component: &str) -> Result<Vec<String>> {
        self.inner.list_metric_names(ns, component).await
    }
    async fn aggregate(&self, ns: &str, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        self.inner.aggregate(ns, q).await
    }
}

#[async_trait]
impl EventStore for CountingStore {
    async fn append(&self, ns: &str, events: &[PreparedEvent]) -> Result<Vec<Appended>> {
        self.count();
        self.inner.append(ns, events).await
    }
    async fn list_events(&self, ns: &str, q: &EventQuery) -> Result<Vec<Event>> {
        self.inner.list_events(ns, q).await
    }
    async fn read_log(&self, ns: &str, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.inner.read_log(ns, after, limit).await
    }
}

#[async_trait]
impl IdempotencyStore for CountingStore {
    async fn claim(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Claim> {
        self.count();
        self.inner
            .claim(ns, scope, key, token, now, expires_at)
            .await
    }
    async fn complete(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        response: &Value,
        now: Timestamp,
    ) -> Result<()> {
        self.count();
        self.inner
            .complete(ns, scope, key, token, response, now)
            .await
    }
    async fn release(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
    ) -> Result<()> {
        self.count();
        self.inner.release(ns, scope, key, token, now).await
    }
    async fn get_key(&self, ns: &str, scope: &str, key: &str) -> Result<Option<IdempotencyEntry>> {
        self.count();
        self.inner.get_key(ns, scope, key).await
    }

    async fn scan_keys(
        &self,
        ns: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<IdempotencyEntry>> {
        self.inner.scan_keys(ns, after, limit).await
    }
}

#[async_trait]
impl RecordStore for CountingStore {
    async fn put(&self, ns: &str, put: &PutRecord<'_>, now: Timestamp) -> Result<Record> {
        self.count();
        self.inner.put(ns, put, now).await
    }
    async fn get(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Record>> {
        self.inner.get(ns, collection, id, now).await
    }
    async fn delete(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        expect: Expect,
        now: Timestamp,
    ) -> Result<()> {
        self.count();
        self.inner.delete(ns, collection, id, expect, now).await
    }
    async fn list_records(
        &self,
        ns: &str,
        collection: &str,
        after: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Record>> {
        self.inner
            .list_records(ns, collection, after, limit, now)
            .await
    }
    async fn list_collections(&self, ns: &str) -> Result<Vec<String>> {
        self.inner.list_collections(ns).await
    }
    async fn create_index(&self, ns: &str, index: &Index, now: Timestamp) -> Result<bool> {
        self.count();
        self.inner.create_index(ns, index, now).await
    }
    async fn list_indexes(&self, ns: &str, collection: Option<&str>) -> Result<Vec<Index>> {
        self.inner.list_indexes(ns, collection).await
    }
    async fn find(
        &self,
        ns: &str,
        collection: &str,
        query: &FindQuery,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Found>> {
        self.inner.find(ns, collection, query, limit, now).await
    }
}

#[async_trait]
impl BatchStore for CountingStore {
    async fn apply(&self, ns: &str, items: &[BatchItem], now: Timestamp) -> Result<Vec<Applied>> {
        self.count();
        self.inner.apply(ns, items, now).await
    }
}

#[async_trait]
impl AdminStore for CountingStore {
    fn backend_name(&self) -> &'static str {
        "counting"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
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
    async fn counts(&self, ns: &str) -> Result<Counts> {
        self.inner.counts(ns).await
    }
    async fn purge(&self, ns: &str, cutoffs: &PurgeCutoffs) -> Result<PurgeReport> {
        self.count();
        self.inner.purge(ns, cutoffs).await
    }
    async fn clear(&self, ns: &str) -> Result<Counts> {
        self.count();
        self.inner.clear(ns).await
    }
    async fn namespaces(&self) -> Result<Vec<String>> {
        self.inner.namespaces().await
    }
    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        self.count();
        self.inner.import(archive, progress).await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}
