//! Layers: a layer wraps any [`Store`] and is a `Store`, so layers compose
//! (`Observed` over `Recorded` over SQLite) and the whole conformance suite
//! runs through them, as OpenDAL's layers do.
//!
//! A layer is one small struct holding the store beneath as
//! `Arc<dyn Store>`. It implements [`Layer`] (where the store beneath is),
//! and then, per domain, either the domain's forwarding trait or the domain
//! trait itself:
//!
//! - [`ForwardMetrics`], [`ForwardEvents`], [`ForwardIdempotency`],
//!   [`ForwardRecords`], [`ForwardBatches`] and [`ForwardAdmin`] forward
//!   every method by default. A layer overrides only the methods it
//!   changes, and a method added to the contract later forwards through it
//!   without a change.
//! - A layer that must see every write of a domain (a cache must invalidate
//!   on each one) implements the domain trait itself, which has no
//!   defaults: a write method added to the contract then does not compile
//!   for that layer until it decides what the write means to it.
//!
//! ```
//! use std::sync::Arc;
//! use persistkit_core::layer::*;
//! use persistkit_core::Store;
//!
//! /// Forwards everything: the smallest layer there is.
//! #[derive(Debug)]
//! struct Nothing {
//!     inner: Arc<dyn Store>,
//! }
//!
//! impl Layer for Nothing {
//!     fn inner(&self) -> &Arc<dyn Store> {
//!         &self.inner
//!     }
//! }
//! impl ForwardMetrics for Nothing {}
//! impl ForwardEvents for Nothing {}
//! impl ForwardIdempotency for Nothing {}
//! impl ForwardRecords for Nothing {}
//! impl ForwardBatches for Nothing {}
//! impl ForwardAdmin for Nothing {}
//! ```
//!
//! Every forwarded call goes through [`Layer::around`], which the observer
//! layer uses to time every call. Whatever a layer wants in `health` goes
//! in [`Telemetry`], by overriding
//! [`ForwardAdmin::telemetry`]: a layer adds its part to what the store
//! beneath reports.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::admin::{
    AdminStore, ArchiveNamespace, Capabilities, Counts, ImportProgress, PoolStats, PurgeCutoffs,
    PurgeReport, SchemaVersions, Telemetry,
};
use crate::batch::{Applied, BatchStore};
use crate::cx::Cx;
use crate::error::Result;
use crate::events::{Appended, Event, EventQuery, EventStore};
use crate::idempotency::{Claim, IdempotencyEntry, IdempotencyStore};
use crate::metrics::{AggregateQuery, AggregateRow, MetricQuery, MetricStore, StoredMetric};
use crate::op::*;
use crate::records::{Found, Index, PutRecord, Record, RecordStore};
use crate::store::Store;

/// A store that wraps another one.
pub trait Layer: Debug + Send + Sync {
    /// The store beneath.
    fn inner(&self) -> &Arc<dyn Store>;

    /// Every forwarded call runs through this, named by its operation
    /// (default: straight through). The observer times calls here.
    fn around<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        call: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        let _ = op;
        call
    }
}

/// [`MetricStore`] by forwarding to [`Layer::inner`]; override what changes.
#[async_trait]
pub trait ForwardMetrics: Layer {
    /// See [`MetricStore::write_metrics`].
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()> {
        self.around("write_metrics", self.inner().write_metrics(cx, op))
            .await
    }
    /// See [`MetricStore::read_metrics`].
    async fn read_metrics(&self, cx: &Cx, query: &MetricQuery) -> Result<Vec<StoredMetric>> {
        self.around("read_metrics", self.inner().read_metrics(cx, query))
            .await
    }
    /// See [`MetricStore::list_components`].
    async fn list_components(&self, cx: &Cx) -> Result<Vec<String>> {
        self.around("list_components", self.inner().list_components(cx))
            .await
    }
    /// See [`MetricStore::list_metric_names`].
    async fn list_metric_names(&self, cx: &Cx, op: &ListMetricNames<'_>) -> Result<Vec<String>> {
        self.around("list_metric_names", self.inner().list_metric_names(cx, op))
            .await
    }
    /// See [`MetricStore::aggregate`].
    async fn aggregate(&self, cx: &Cx, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        self.around("aggregate", self.inner().aggregate(cx, query))
            .await
    }
}

#[async_trait]
impl<L: ForwardMetrics> MetricStore for L {
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()> {
        ForwardMetrics::write_metrics(self, cx, op).await
    }
    async fn read_metrics(&self, cx: &Cx, query: &MetricQuery) -> Result<Vec<StoredMetric>> {
        ForwardMetrics::read_metrics(self, cx, query).await
    }
    async fn list_components(&self, cx: &Cx) -> Result<Vec<String>> {
        ForwardMetrics::list_components(self, cx).await
    }
    async fn list_metric_names(&self, cx: &Cx, op: &ListMetricNames<'_>) -> Result<Vec<String>> {
        ForwardMetrics::list_metric_names(self, cx, op).await
    }
    async fn aggregate(&self, cx: &Cx, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        ForwardMetrics::aggregate(self, cx, query).await
    }
}

/// [`EventStore`] by forwarding to [`Layer::inner`]; override what changes.
#[async_trait]
pub trait ForwardEvents: Layer {
    /// See [`EventStore::append`].
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>> {
        self.around("append", self.inner().append(cx, op)).await
    }
    /// See [`EventStore::list_events`].
    async fn list_events(&self, cx: &Cx, query: &EventQuery) -> Result<Vec<Event>> {
        self.around("list_events", self.inner().list_events(cx, query))
            .await
    }
    /// See [`EventStore::read_log`].
    async fn read_log(&self, cx: &Cx, op: &ReadLog) -> Result<Vec<Event>> {
        self.around("read_log", self.inner().read_log(cx, op)).await
    }
}

#[async_trait]
impl<L: ForwardEvents> EventStore for L {
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>> {
        ForwardEvents::append(self, cx, op).await
    }
    async fn list_events(&self, cx: &Cx, query: &EventQuery) -> Result<Vec<Event>> {
        ForwardEvents::list_events(self, cx, query).await
    }
    async fn read_log(&self, cx: &Cx, op: &ReadLog) -> Result<Vec<Event>> {
        ForwardEvents::read_log(self, cx, op).await
    }
}

/// [`IdempotencyStore`] by forwarding to [`Layer::inner`]; override what
/// changes.
#[async_trait]
pub trait ForwardIdempotency: Layer {
    /// See [`IdempotencyStore::claim`].
    async fn claim(&self, cx: &Cx, op: &ClaimKey<'_>) -> Result<Claim> {
        self.around("claim", self.inner().claim(cx, op)).await
    }
    /// See [`IdempotencyStore::complete`].
    async fn complete(&self, cx: &Cx, op: &CompleteKey<'_>) -> Result<()> {
        self.around("complete", self.inner().complete(cx, op)).await
    }
    /// See [`IdempotencyStore::release`].
    async fn release(&self, cx: &Cx, op: &ReleaseKey<'_>) -> Result<()> {
        self.around("release", self.inner().release(cx, op)).await
    }

    /// See [`IdempotencyStore::extend`].
    async fn extend(&self, cx: &Cx, op: &ExtendKey<'_>) -> Result<()> {
        self.around("extend", self.inner().extend(cx, op)).await
    }
    /// See [`IdempotencyStore::get_key`].
    async fn get_key(&self, cx: &Cx, op: &GetKey<'_>) -> Result<Option<IdempotencyEntry>> {
        self.around("get_key", self.inner().get_key(cx, op)).await
    }
    /// See [`IdempotencyStore::scan_keys`].
    async fn scan_keys(&self, cx: &Cx, op: &ScanKeys<'_>) -> Result<Vec<IdempotencyEntry>> {
        self.around("scan_keys", self.inner().scan_keys(cx, op))
            .await
    }
}

#[async_trait]
impl<L: ForwardIdempotency> IdempotencyStore for L {
    async fn claim(&self, cx: &Cx, op: &ClaimKey<'_>) -> Result<Claim> {
        ForwardIdempotency::claim(self, cx, op).await
    }
    async fn complete(&self, cx: &Cx, op: &CompleteKey<'_>) -> Result<()> {
        ForwardIdempotency::complete(self, cx, op).await
    }
    async fn release(&self, cx: &Cx, op: &ReleaseKey<'_>) -> Result<()> {
        ForwardIdempotency::release(self, cx, op).await
    }
    async fn extend(&self, cx: &Cx, op: &ExtendKey<'_>) -> Result<()> {
        ForwardIdempotency::extend(self, cx, op).await
    }
    async fn get_key(&self, cx: &Cx, op: &GetKey<'_>) -> Result<Option<IdempotencyEntry>> {
        ForwardIdempotency::get_key(self, cx, op).await
    }
    async fn scan_keys(&self, cx: &Cx, op: &ScanKeys<'_>) -> Result<Vec<IdempotencyEntry>> {
        ForwardIdempotency::scan_keys(self, cx, op).await
    }
}

/// [`RecordStore`] by forwarding to [`Layer::inner`]; override what
/// changes. A layer that must see every record write implements
/// [`RecordStore`] itself instead.
#[async_trait]
pub trait ForwardRecords: Layer {
    /// See [`RecordStore::put`].
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        self.around("put", self.inner().put(cx, put)).await
    }
    /// See [`RecordStore::incr`].
    async fn incr(&self, cx: &Cx, op: &IncrField<'_>) -> Result<Record> {
        self.around("incr", self.inner().incr(cx, op)).await
    }
    /// See [`RecordStore::get`].
    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>> {
        self.around("get", self.inner().get(cx, op)).await
    }
    /// See [`RecordStore::delete`].
    async fn delete(&self, cx: &Cx, op: &DeleteRecord<'_>) -> Result<()> {
        self.around("delete", self.inner().delete(cx, op)).await
    }
    /// See [`RecordStore::list_records`].
    async fn list_records(&self, cx: &Cx, op: &ListRecords<'_>) -> Result<Vec<Record>> {
        self.around("list_records", self.inner().list_records(cx, op))
            .await
    }
    /// See [`RecordStore::list_collections`].
    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>> {
        self.around("list_collections", self.inner().list_collections(cx))
            .await
    }
    /// See [`RecordStore::count`].
    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64> {
        self.around("count", self.inner().count(cx, op)).await
    }
    /// See [`RecordStore::create_index`].
    async fn create_index(&self, cx: &Cx, index: &Index) -> Result<bool> {
        self.around("create_index", self.inner().create_index(cx, index))
            .await
    }
    /// See [`RecordStore::list_indexes`].
    async fn list_indexes(&self, cx: &Cx, op: &ListIndexes<'_>) -> Result<Vec<Index>> {
        self.around("list_indexes", self.inner().list_indexes(cx, op))
            .await
    }
    /// See [`RecordStore::find`].
    async fn find(&self, cx: &Cx, op: &FindRecords<'_>) -> Result<Vec<Found>> {
        self.around("find", self.inner().find(cx, op)).await
    }
}

#[async_trait]
impl<L: ForwardRecords> RecordStore for L {
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        ForwardRecords::put(self, cx, put).await
    }
    async fn incr(&self, cx: &Cx, op: &IncrField<'_>) -> Result<Record> {
        ForwardRecords::incr(self, cx, op).await
    }
    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>> {
        ForwardRecords::get(self, cx, op).await
    }
    async fn delete(&self, cx: &Cx, op: &DeleteRecord<'_>) -> Result<()> {
        ForwardRecords::delete(self, cx, op).await
    }
    async fn list_records(&self, cx: &Cx, op: &ListRecords<'_>) -> Result<Vec<Record>> {
        ForwardRecords::list_records(self, cx, op).await
    }
    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>> {
        ForwardRecords::list_collections(self, cx).await
    }
    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64> {
        ForwardRecords::count(self, cx, op).await
    }
    async fn create_index(&self, cx: &Cx, index: &Index) -> Result<bool> {
        ForwardRecords::create_index(self, cx, index).await
    }
    async fn list_indexes(&self, cx: &Cx, op: &ListIndexes<'_>) -> Result<Vec<Index>> {
        ForwardRecords::list_indexes(self, cx, op).await
    }
    async fn find(&self, cx: &Cx, op: &FindRecords<'_>) -> Result<Vec<Found>> {
        ForwardRecords::find(self, cx, op).await
    }
}

/// [`BatchStore`] by forwarding to [`Layer::inner`]; override what changes.
#[async_trait]
pub trait ForwardBatches: Layer {
    /// See [`BatchStore::apply`].
    async fn apply(&self, cx: &Cx, op: &Apply<'_>) -> Result<Vec<Applied>> {
        self.around("apply", self.inner().apply(cx, op)).await
    }
}

#[async_trait]
impl<L: ForwardBatches> BatchStore for L {
    async fn apply(&self, cx: &Cx, op: &Apply<'_>) -> Result<Vec<Applied>> {
        ForwardBatches::apply(self, cx, op).await
    }
}

/// [`AdminStore`] by forwarding to [`Layer::inner`]; override what changes
/// (a layer adds its part of `health` in [`telemetry`](Self::telemetry),
/// and drops what it cannot keep in [`capabilities`](Self::capabilities)).
#[async_trait]
pub trait ForwardAdmin: Layer {
    /// See [`AdminStore::backend_name`].
    fn backend_name(&self) -> &'static str {
        self.inner().backend_name()
    }
    /// See [`AdminStore::capabilities`].
    fn capabilities(&self) -> Capabilities {
        self.inner().capabilities()
    }
    /// See [`AdminStore::migrate`].
    async fn migrate(&self) -> Result<SchemaVersions> {
        self.around("migrate", self.inner().migrate()).await
    }
    /// See [`AdminStore::schema_versions`].
    async fn schema_versions(&self) -> Result<SchemaVersions> {
        self.around("schema_versions", self.inner().schema_versions())
            .await
    }
    /// See [`AdminStore::ping`].
    async fn ping(&self) -> Result<()> {
        self.around("ping", self.inner().ping()).await
    }
    /// See [`AdminStore::counts`].
    async fn counts(&self, cx: &Cx) -> Result<Counts> {
        self.around("counts", self.inner().counts(cx)).await
    }
    /// See [`AdminStore::storage_bytes`].
    async fn storage_bytes(&self) -> Result<Option<u64>> {
        self.around("storage_bytes", self.inner().storage_bytes())
            .await
    }
    /// See [`AdminStore::pool_stats`].
    fn pool_stats(&self) -> Option<PoolStats> {
        self.inner().pool_stats()
    }
    /// See [`AdminStore::telemetry`].
    fn telemetry(&self) -> Telemetry {
        self.inner().telemetry()
    }
    /// See [`AdminStore::purge`].
    async fn purge(&self, cx: &Cx, cutoffs: &PurgeCutoffs) -> Result<PurgeReport> {
        self.around("purge", self.inner().purge(cx, cutoffs)).await
    }
    /// See [`AdminStore::clear`].
    async fn clear(&self, cx: &Cx) -> Result<Counts> {
        self.around("clear", self.inner().clear(cx)).await
    }
    /// See [`AdminStore::namespaces`].
    async fn namespaces(&self) -> Result<Vec<String>> {
        self.around("namespaces", self.inner().namespaces()).await
    }
    /// See [`AdminStore::import`].
    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        self.around("import", self.inner().import(archive, progress))
            .await
    }
    /// See [`AdminStore::backup`].
    async fn backup(&self, dest: &Path) -> Result<()> {
        self.around("backup", self.inner().backup(dest)).await
    }
    /// See [`AdminStore::close`].
    async fn close(&self) {
        let close = Box::pin(async {
            self.inner().close().await;
            Ok(())
        });
        let _ = self.around("close", close).await;
    }
}

#[async_trait]
impl<L: ForwardAdmin> AdminStore for L {
    fn backend_name(&self) -> &'static str {
        ForwardAdmin::backend_name(self)
    }
    fn capabilities(&self) -> Capabilities {
        ForwardAdmin::capabilities(self)
    }
    async fn migrate(&self) -> Result<SchemaVersions> {
        ForwardAdmin::migrate(self).await
    }
    async fn schema_versions(&self) -> Result<SchemaVersions> {
        ForwardAdmin::schema_versions(self).await
    }
    async fn ping(&self) -> Result<()> {
        ForwardAdmin::ping(self).await
    }
    async fn counts(&self, cx: &Cx) -> Result<Counts> {
        ForwardAdmin::counts(self, cx).await
    }
    async fn storage_bytes(&self) -> Result<Option<u64>> {
        ForwardAdmin::storage_bytes(self).await
    }
    fn pool_stats(&self) -> Option<PoolStats> {
        ForwardAdmin::pool_stats(self)
    }
    fn telemetry(&self) -> Telemetry {
        ForwardAdmin::telemetry(self)
    }
    async fn purge(&self, cx: &Cx, cutoffs: &PurgeCutoffs) -> Result<PurgeReport> {
        ForwardAdmin::purge(self, cx, cutoffs).await
    }
    async fn clear(&self, cx: &Cx) -> Result<Counts> {
        ForwardAdmin::clear(self, cx).await
    }
    async fn namespaces(&self) -> Result<Vec<String>> {
        ForwardAdmin::namespaces(self).await
    }
    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        ForwardAdmin::import(self, archive, progress).await
    }
    async fn backup(&self, dest: &Path) -> Result<()> {
        ForwardAdmin::backup(self, dest).await
    }
    async fn close(&self) {
        ForwardAdmin::close(self).await
    }
}
