//! An example backend: a store that counts the writes it forwards to an inner
//! store. A real backend talks to its database here; the shape is the same:
//! implement the five domain traits, and you have a `persistkit_core::Store`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use persistkit_core::op::*;
use persistkit_core::*;

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

    fn tally(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl MetricStore for CountingStore {
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()> {
        self.tally();
        self.inner.write_metrics(cx, op).await
    }
    async fn read_metrics(&self, cx: &Cx, q: &MetricQuery) -> Result<Vec<StoredMetric>> {
        self.inner.read_metrics(cx, q).await
    }
    async fn list_components(&self, cx: &Cx) -> Result<Vec<String>> {
        self.inner.list_components(cx).await
    }
    async fn list_metric_names(&self, cx: &Cx, op: &ListMetricNames<'_>) -> Result<Vec<String>> {
        self.inner.list_metric_names(cx, op).await
    }
    async fn aggregate(&self, cx: &Cx, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        self.inner.aggregate(cx, q).await
    }
}

#[async_trait]
impl EventStore for CountingStore {
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>> {
        self.tally();
        self.inner.append(cx, op).await
    }
    async fn list_events(&self, cx: &Cx, q: &EventQuery) -> Result<Vec<Event>> {
        self.inner.list_events(cx, q).await
    }
    async fn read_log(&self, cx: &Cx, op: &ReadLog) -> Result<Vec<Event>> {
        self.inner.read_log(cx, op).await
    }
}

#[async_trait]
impl IdempotencyStore for CountingStore {
    async fn claim(&self, cx: &Cx, op: &ClaimKey<'_>) -> Result<Claim> {
        self.tally();
        self.inner.claim(cx, op).await
    }
    async fn complete(&self, cx: &Cx, op: &CompleteKey<'_>) -> Result<()> {
        self.tally();
        self.inner.complete(cx, op).await
    }
    async fn release(&self, cx: &Cx, op: &ReleaseKey<'_>) -> Result<()> {
        self.tally();
        self.inner.release(cx, op).await
    }
    async fn get_key(&self, cx: &Cx, op: &GetKey<'_>) -> Result<Option<IdempotencyEntry>> {
        self.tally();
        self.inner.get_key(cx, op).await
    }

    async fn scan_keys(&self, cx: &Cx, op: &ScanKeys<'_>) -> Result<Vec<IdempotencyEntry>> {
        self.inner.scan_keys(cx, op).await
    }
}

#[async_trait]
impl RecordStore for CountingStore {
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        self.tally();
        self.inner.put(cx, put).await
    }
    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>> {
        self.inner.get(cx, op).await
    }
    async fn delete(&self, cx: &Cx, op: &DeleteRecord<'_>) -> Result<()> {
        self.tally();
        self.inner.delete(cx, op).await
    }
    async fn list_records(&self, cx: &Cx, op: &ListRecords<'_>) -> Result<Vec<Record>> {
        self.inner.list_records(cx, op).await
    }
    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>> {
        self.inner.list_collections(cx).await
    }
    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64> {
        self.tally();
        self.inner.count(cx, op).await
    }
    async fn create_index(&self, cx: &Cx, index: &Index) -> Result<bool> {
        self.tally();
        self.inner.create_index(cx, index).await
    }
    async fn list_indexes(&self, cx: &Cx, op: &ListIndexes<'_>) -> Result<Vec<Index>> {
        self.inner.list_indexes(cx, op).await
    }
    async fn find(&self, cx: &Cx, op: &FindRecords<'_>) -> Result<Vec<Found>> {
        self.inner.find(cx, op).await
    }
}

#[async_trait]
impl BatchStore for CountingStore {
    async fn apply(&self, cx: &Cx, op: &Apply<'_>) -> Result<Vec<Applied>> {
        self.tally();
        self.inner.apply(cx, op).await
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
    async fn counts(&self, cx: &Cx) -> Result<Counts> {
        self.inner.counts(cx).await
    }
    async fn purge(&self, cx: &Cx, cutoffs: &PurgeCutoffs) -> Result<PurgeReport> {
        self.tally();
        self.inner.purge(cx, cutoffs).await
    }
    async fn clear(&self, cx: &Cx) -> Result<Counts> {
        self.tally();
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
        self.tally();
        self.inner.import(archive, progress).await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}
