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
//! in [`Telemetry`](crate::Telemetry), by overriding
//! [`ForwardAdmin::telemetry`]: a layer adds its part to what the store
//! beneath reports.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::admin::{
    AdminStore, ArchiveNamespace, Capabilities, Counts, ImportProgress, PoolStats, PurgeCutoffs,
    PurgeReport, SchemaVersions, Telemetry,
};
use crate::batch::{Applied, BatchItem, BatchStore};
use crate::error::Result;
use crate::events::{Appended, Event, EventQuery, EventStore, PreparedEvent};
use crate::idempotency::{Claim, IdempotencyEntry, IdempotencyStore};
use crate::metrics::{
    AggregateQuery, AggregateRow, MetricPoint, MetricQuery, MetricStore, StoredMetric,
};
use crate::records::{Expect, FindQuery, Found, Index, PutRecord, Record, RecordStore};
use crate::store::Store;
use crate::time::Timestamp;

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
    async fn write_metrics(&self, ns: &str, points: &[MetricPoint]) -> Result<()> {
        self.around("write_metrics", self.inner().write_metrics(ns, points))
            .await
    }
    /// See [`MetricStore::read_metrics`].
    async fn read_metrics(&self, ns: &str, query: &MetricQuery) -> Result<Vec<StoredMetric>> {
        self.around("read_metrics", self.inner().read_metrics(ns, query))
            .await
    }
    /// See [`MetricStore::list_components`].
    async fn list_components(&self, ns: &str) -> Result<Vec<String>> {
        self.around("list_components", self.inner().list_components(ns))
            .await
    }
    /// See [`MetricStore::list_metric_names`].
    async fn list_metric_names(&self, ns: &str, component: &str) -> Result<Vec<String>> {
        self.around(
            "list_metric_names",
            self.inner().list_metric_names(ns, component),
        )
        .await
    }
    /// See [`MetricStore::aggregate`].
    async fn aggregate(&self, ns: &str, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        self.around("aggregate", self.inner().aggregate(ns, query))
            .await
    }
}

#[async_trait]
impl<L: ForwardMetrics> MetricStore for L {
    async fn write_metrics(&self, ns: &str, points: &[MetricPoint]) -> Result<()> {
        ForwardMetrics::write_metrics(self, ns, points).await
    }
    async fn read_metrics(&self, ns: &str, query: &MetricQuery) -> Result<Vec<StoredMetric>> {
        ForwardMetrics::read_metrics(self, ns, query).await
    }
    async fn list_components(&self, ns: &str) -> Result<Vec<String>> {
        ForwardMetrics::list_components(self, ns).await
    }
    async fn list_metric_names(&self, ns: &str, component: &str) -> Result<Vec<String>> {
        ForwardMetrics::list_metric_names(self, ns, component).await
    }
    async fn aggregate(&self, ns: &str, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        ForwardMetrics::aggregate(self, ns, query).await
    }
}

/// [`EventStore`] by forwarding to [`Layer::inner`]; override what changes.
#[async_trait]
pub trait ForwardEvents: Layer {
    /// See [`EventStore::append`].
    async fn append(&self, ns: &str, events: &[PreparedEvent]) -> Result<Vec<Appended>> {
        self.around("append", self.inner().append(ns, events)).await
    }
    /// See [`EventStore::list_events`].
    async fn list_events(&self, ns: &str, query: &EventQuery) -> Result<Vec<Event>> {
        self.around("list_events", self.inner().list_events(ns, query))
            .await
    }
    /// See [`EventStore::read_log`].
    async fn read_log(&self, ns: &str, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.around("read_log", self.inner().read_log(ns, after, limit))
            .await
    }
}

#[async_trait]
impl<L: ForwardEvents> EventStore for L {
    async fn append(&self, ns: &str, events: &[PreparedEvent]) -> Result<Vec<Appended>> {
        ForwardEvents::append(self, ns, events).await
    }
    async fn list_events(&self, ns: &str, query: &EventQuery) -> Result<Vec<Event>> {
        ForwardEvents::list_events(self, ns, query).await
    }
    async fn read_log(&self, ns: &str, after: u64, limit: usize) -> Result<Vec<Event>> {
        ForwardEvents::read_log(self, ns, after, limit).await
    }
}

/// [`IdempotencyStore`] by forwarding to [`Layer::inner`]; override what
/// changes.
#[async_trait]
pub trait ForwardIdempotency: Layer {
    /// See [`IdempotencyStore::claim`].
    async fn claim(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Claim> {
        self.around(
            "claim",
            self.inner().claim(ns, scope, key, token, now, expires_at),
        )
        .await
    }
    /// See [`IdempotencyStore::complete`].
    async fn complete(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        response: &Value,
        now: Timestamp,
    ) -> Result<()> {
        self.around(
            "complete",
            self.inner().complete(ns, scope, key, token, response, now),
        )
        .await
    }
    /// See [`IdempotencyStore::release`].
    async fn release(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
    ) -> Result<()> {
        self.around("release", self.inner().release(ns, scope, key, token, now))
            .await
    }
    /// See [`IdempotencyStore::get_key`].
    async fn get_key(&self, ns: &str, scope: &str, key: &str) -> Result<Option<IdempotencyEntry>> {
        self.around("get_key", self.inner().get_key(ns, scope, key))
            .await
    }
    /// See [`IdempotencyStore::scan_keys`].
    async fn scan_keys(
        &self,
        ns: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<IdempotencyEntry>> {
        self.around("scan_keys", self.inner().scan_keys(ns, after, limit))
            .await
    }
}

#[async_trait]
impl<L: ForwardIdempotency> IdempotencyStore for L {
    async fn claim(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Claim> {
        ForwardIdempotency::claim(self, ns, scope, key, token, now, expires_at).await
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
        ForwardIdempotency::complete(self, ns, scope, key, token, response, now).await
    }
    async fn release(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
    ) -> Result<()> {
        ForwardIdempotency::release(self, ns, scope, key, token, now).await
    }
    async fn get_key(&self, ns: &str, scope: &str, key: &str) -> Result<Option<IdempotencyEntry>> {
        ForwardIdempotency::get_key(self, ns, scope, key).await
    }
    async fn scan_keys(
        &self,
        ns: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<IdempotencyEntry>> {
        ForwardIdempotency::scan_keys(self, ns, after, limit).await
    }
}

/// [`RecordStore`] by forwarding to [`Layer::inner`]; override what
/// changes. A layer that must see every record write implements
/// [`RecordStore`] itself instead.
#[async_trait]
pub trait ForwardRecords: Layer {
    /// See [`RecordStore::put`].
    async fn put(&self, ns: &str, put: &PutRecord<'_>, now: Timestamp) -> Result<Record> {
        self.around("put", self.inner().put(ns, put, now)).await
    }
    /// See [`RecordStore::get`].
    async fn get(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Record>> {
        self.around("get", self.inner().get(ns, collection, id, now))
            .await
    }
    /// See [`RecordStore::delete`].
    async fn delete(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        expect: Expect,
        now: Timestamp,
    ) -> Result<()> {
        self.around(
            "delete",
            self.inner().delete(ns, collection, id, expect, now),
        )
        .await
    }
    /// See [`RecordStore::list_records`].
    async fn list_records(
        &self,
        ns: &str,
        collection: &str,
        after: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Record>> {
        self.around(
            "list_records",
            self.inner().list_records(ns, collection, after, limit, now),
        )
        .await
    }
    /// See [`RecordStore::list_collections`].
    async fn list_collections(&self, ns: &str) -> Result<Vec<String>> {
        self.around("list_collections", self.inner().list_collections(ns))
            .await
    }
    /// See [`RecordStore::create_index`].
    async fn create_index(&self, ns: &str, index: &Index, now: Timestamp) -> Result<bool> {
        self.around("create_index", self.inner().create_index(ns, index, now))
            .await
    }
    /// See [`RecordStore::list_indexes`].
    async fn list_indexes(&self, ns: &str, collection: Option<&str>) -> Result<Vec<Index>> {
        self.around("list_indexes", self.inner().list_indexes(ns, collection))
            .await
    }
    /// See [`RecordStore::find`].
    async fn find(
        &self,
        ns: &str,
        collection: &str,
        query: &FindQuery,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Found>> {
        self.around("find", self.inner().find(ns, collection, query, limit, now))
            .await
    }
}

#[async_trait]
impl<L: ForwardRecords> RecordStore for L {
    async fn put(&self, ns: &str, put: &PutRecord<'_>, now: Timestamp) -> Result<Record> {
        ForwardRecords::put(self, ns, put, now).await
    }
    async fn get(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Record>> {
        ForwardRecords::get(self, ns, collection, id, now).await
    }
    async fn delete(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        expect: Expect,
        now: Timestamp,
    ) -> Result<()> {
        ForwardRecords::delete(self, ns, collection, id, expect, now).await
    }
    async fn list_records(
        &self,
        ns: &str,
        collection: &str,
        after: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Record>> {
        ForwardRecords::list_records(self, ns, collection, after, limit, now).await
    }
    async fn list_collections(&self, ns: &str) -> Result<Vec<String>> {
        ForwardRecords::list_collections(self, ns).await
    }
    async fn create_index(&self, ns: &str, index: &Index, now: Timestamp) -> Result<bool> {
        ForwardRecords::create_index(self, ns, index, now).await
    }
    async fn list_indexes(&self, ns: &str, collection: Option<&str>) -> Result<Vec<Index>> {
        ForwardRecords::list_indexes(self, ns, collection).await
    }
    async fn find(
        &self,
        ns: &str,
        collection: &str,
        query: &FindQuery,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Found>> {
        ForwardRecords::find(self, ns, collection, query, limit, now).await
    }
}

/// [`BatchStore`] by forwarding to [`Layer::inner`]; override what changes.
#[async_trait]
pub trait ForwardBatches: Layer {
    /// See [`BatchStore::apply`].
    async fn apply(&self, ns: &str, items: &[BatchItem], now: Timestamp) -> Result<Vec<Applied>> {
        self.around("apply", self.inner().apply(ns, items, now))
            .await
    }
}

#[async_trait]
impl<L: ForwardBatches> BatchStore for L {
    async fn apply(&self, ns: &str, items: &[BatchItem], now: Timestamp) -> Result<Vec<Applied>> {
        ForwardBatches::apply(self, ns, items, now).await
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
    async fn counts(&self, ns: &str) -> Result<Counts> {
        self.around("counts", self.inner().counts(ns)).await
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
    async fn purge(&self, ns: &str, cutoffs: &PurgeCutoffs) -> Result<PurgeReport> {
        self.around("purge", self.inner().purge(ns, cutoffs)).await
    }
    /// See [`AdminStore::clear`].
    async fn clear(&self, ns: &str) -> Result<Counts> {
        self.around("clear", self.inner().clear(ns)).await
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
    async fn counts(&self, ns: &str) -> Result<Counts> {
        ForwardAdmin::counts(self, ns).await
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
    async fn purge(&self, ns: &str, cutoffs: &PurgeCutoffs) -> Result<PurgeReport> {
        ForwardAdmin::purge(self, ns, cutoffs).await
    }
    async fn clear(&self, ns: &str) -> Result<Counts> {
        ForwardAdmin::clear(self, ns).await
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
