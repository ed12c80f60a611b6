//! Layers: a layer wraps any [`Store`] and is a `Store`, so layers compose
//! (`Observed` over `Recorded` over SQLite) and the whole conformance suite
//! runs through them, as OpenDAL's layers do.
//!
//! A layer is one small struct holding the store beneath as
//! `Arc<dyn Store>`. It implements the domain traits it changes by hand and
//! forwards the others with the `forward_*` macros of this module, which
//! write every method once, here, so a layer stays a few lines long:
//!
//! ```
//! use std::sync::Arc;
//! use persistkit_core::*;
//!
//! /// Forwards everything: the smallest layer there is.
//! #[derive(Debug)]
//! struct Nothing {
//!     inner: Arc<dyn Store>,
//! }
//! persistkit_core::forward_metric_store!(Nothing, inner);
//! persistkit_core::forward_event_store!(Nothing, inner);
//! persistkit_core::forward_idempotency_store!(Nothing, inner);
//! persistkit_core::forward_record_store!(Nothing, inner);
//! persistkit_core::forward_batch_store!(Nothing, inner);
//! persistkit_core::forward_admin_store!(Nothing, inner);
//!
//! impl Layer for Nothing {
//!     fn inner(&self) -> &Arc<dyn Store> {
//!         &self.inner
//!     }
//! }
//! ```
//!
//! Each macro takes an optional third argument, the name of a method of the
//! layer that every forwarded call goes through:
//! `async fn around<T>(&self, op: &'static str, call: impl Future<Output = Result<T>>) -> Result<T>`.
//! The observer layer uses it to time every call.
//!
//! Whatever a layer wants in `health` goes in [`Telemetry`], through
//! [`AdminStore::telemetry`](crate::AdminStore::telemetry): a layer adds its
//! part to what the store beneath reports.

use std::sync::Arc;

use crate::store::Store;

/// A store that wraps another one.
pub trait Layer: Store {
    /// The store beneath.
    fn inner(&self) -> &Arc<dyn Store>;
}

/// Calls one forwarded method, through the layer's `around` method when
/// one is named.
#[doc(hidden)]
#[macro_export]
macro_rules! __forward_call {
    ($self:ident, [], $op:literal, $call:expr) => {
        $call.await
    };
    ($self:ident, [$around:ident], $op:literal, $call:expr) => {
        $self.$around($op, $call).await
    };
}

/// Implement [`MetricStore`](crate::MetricStore) for a layer by forwarding
/// to the field `$inner` (optionally through the method `$around`).
#[macro_export]
macro_rules! forward_metric_store {
    ($ty:ty, $inner:ident $(, $around:ident)?) => {
        #[$crate::__async_trait]
        impl $crate::MetricStore for $ty {
            async fn write_metrics(&self, ns: &str, points: &[$crate::MetricPoint]) -> $crate::Result<()> {
                $crate::__forward_call!(self, [$($around)?], "write_metrics", self.$inner.write_metrics(ns, points))
            }
            async fn read_metrics(&self, ns: &str, query: &$crate::MetricQuery) -> $crate::Result<Vec<$crate::StoredMetric>> {
                $crate::__forward_call!(self, [$($around)?], "read_metrics", self.$inner.read_metrics(ns, query))
            }
            async fn list_components(&self, ns: &str) -> $crate::Result<Vec<String>> {
                $crate::__forward_call!(self, [$($around)?], "list_components", self.$inner.list_components(ns))
            }
            async fn list_metric_names(&self, ns: &str, component: &str) -> $crate::Result<Vec<String>> {
                $crate::__forward_call!(self, [$($around)?], "list_metric_names", self.$inner.list_metric_names(ns, component))
            }
            async fn aggregate(&self, ns: &str, query: &$crate::AggregateQuery) -> $crate::Result<Vec<$crate::AggregateRow>> {
                $crate::__forward_call!(self, [$($around)?], "aggregate", self.$inner.aggregate(ns, query))
            }
        }
    };
}

/// Implement [`EventStore`](crate::EventStore) for a layer by forwarding.
#[macro_export]
macro_rules! forward_event_store {
    ($ty:ty, $inner:ident $(, $around:ident)?) => {
        #[$crate::__async_trait]
        impl $crate::EventStore for $ty {
            async fn append(&self, ns: &str, events: &[$crate::PreparedEvent]) -> $crate::Result<Vec<$crate::Appended>> {
                $crate::__forward_call!(self, [$($around)?], "append", self.$inner.append(ns, events))
            }
            async fn list_events(&self, ns: &str, query: &$crate::EventQuery) -> $crate::Result<Vec<$crate::Event>> {
                $crate::__forward_call!(self, [$($around)?], "list_events", self.$inner.list_events(ns, query))
            }
            async fn read_log(&self, ns: &str, after: u64, limit: usize) -> $crate::Result<Vec<$crate::Event>> {
                $crate::__forward_call!(self, [$($around)?], "read_log", self.$inner.read_log(ns, after, limit))
            }
        }
    };
}

/// Implement [`IdempotencyStore`](crate::IdempotencyStore) for a layer by
/// forwarding.
#[macro_export]
macro_rules! forward_idempotency_store {
    ($ty:ty, $inner:ident $(, $around:ident)?) => {
        #[$crate::__async_trait]
        impl $crate::IdempotencyStore for $ty {
            async fn claim(
                &self,
                ns: &str,
                scope: &str,
                key: &str,
                token: &str,
                now: $crate::Timestamp,
                expires_at: $crate::Timestamp,
            ) -> $crate::Result<$crate::Claim> {
                $crate::__forward_call!(self, [$($around)?], "claim", self.$inner.claim(ns, scope, key, token, now, expires_at))
            }
            async fn complete(
                &self,
                ns: &str,
                scope: &str,
                key: &str,
                token: &str,
                response: &$crate::__Value,
                now: $crate::Timestamp,
            ) -> $crate::Result<()> {
                $crate::__forward_call!(self, [$($around)?], "complete", self.$inner.complete(ns, scope, key, token, response, now))
            }
            async fn release(
                &self,
                ns: &str,
                scope: &str,
                key: &str,
                token: &str,
                now: $crate::Timestamp,
            ) -> $crate::Result<()> {
                $crate::__forward_call!(self, [$($around)?], "release", self.$inner.release(ns, scope, key, token, now))
            }
            async fn get_key(
                &self,
                ns: &str,
                scope: &str,
                key: &str,
            ) -> $crate::Result<Option<$crate::IdempotencyEntry>> {
                $crate::__forward_call!(self, [$($around)?], "get_key", self.$inner.get_key(ns, scope, key))
            }
            async fn scan_keys(
                &self,
                ns: &str,
                after: Option<(&str, &str)>,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::IdempotencyEntry>> {
                $crate::__forward_call!(self, [$($around)?], "scan_keys", self.$inner.scan_keys(ns, after, limit))
            }
        }
    };
}

/// Implement [`RecordStore`](crate::RecordStore) for a layer by forwarding.
#[macro_export]
macro_rules! forward_record_store {
    ($ty:ty, $inner:ident $(, $around:ident)?) => {
        #[$crate::__async_trait]
        impl $crate::RecordStore for $ty {
            async fn put(
                &self,
                ns: &str,
                put: &$crate::PutRecord<'_>,
                now: $crate::Timestamp,
            ) -> $crate::Result<$crate::Record> {
                $crate::__forward_call!(self, [$($around)?], "put", self.$inner.put(ns, put, now))
            }
            async fn get(&self, ns: &str, collection: &str, id: &str, now: $crate::Timestamp) -> $crate::Result<Option<$crate::Record>> {
                $crate::__forward_call!(self, [$($around)?], "get", self.$inner.get(ns, collection, id, now))
            }
            async fn delete(&self, ns: &str, collection: &str, id: &str, expect: $crate::Expect, now: $crate::Timestamp) -> $crate::Result<()> {
                $crate::__forward_call!(self, [$($around)?], "delete", self.$inner.delete(ns, collection, id, expect, now))
            }
            async fn list_records(
                &self,
                ns: &str,
                collection: &str,
                after: Option<&str>,
                limit: usize,
                now: $crate::Timestamp,
            ) -> $crate::Result<Vec<$crate::Record>> {
                $crate::__forward_call!(self, [$($around)?], "list_records", self.$inner.list_records(ns, collection, after, limit, now))
            }
            async fn create_index(&self, ns: &str, index: &$crate::Index, now: $crate::Timestamp) -> $crate::Result<bool> {
                $crate::__forward_call!(self, [$($around)?], "create_index", self.$inner.create_index(ns, index, now))
            }
            async fn list_indexes(&self, ns: &str, collection: Option<&str>) -> $crate::Result<Vec<$crate::Index>> {
                $crate::__forward_call!(self, [$($around)?], "list_indexes", self.$inner.list_indexes(ns, collection))
            }
            async fn find(
                &self,
                ns: &str,
                collection: &str,
                query: &$crate::FindQuery,
                limit: usize,
                now: $crate::Timestamp,
            ) -> $crate::Result<Vec<$crate::Found>> {
                $crate::__forward_call!(self, [$($around)?], "find", self.$inner.find(ns, collection, query, limit, now))
            }
            async fn list_collections(&self, ns: &str) -> $crate::Result<Vec<String>> {
                $crate::__forward_call!(self, [$($around)?], "list_collections", self.$inner.list_collections(ns))
            }
        }
    };
}

/// Implement [`BatchStore`](crate::BatchStore) for a layer by forwarding.
#[macro_export]
macro_rules! forward_batch_store {
    ($ty:ty, $inner:ident $(, $around:ident)?) => {
        #[$crate::__async_trait]
        impl $crate::BatchStore for $ty {
            async fn apply(
                &self,
                ns: &str,
                items: &[$crate::BatchItem],
                now: $crate::Timestamp,
            ) -> $crate::Result<Vec<$crate::Applied>> {
                $crate::__forward_call!(self, [$($around)?], "apply", self.$inner.apply(ns, items, now))
            }
        }
    };
}

/// Implement [`AdminStore`](crate::AdminStore) for a layer by forwarding.
/// `telemetry` and `capabilities` forward too; a layer that changes them
/// names a method `fn(&self, T) -> T` that adjusts the inner store's:
/// `forward_admin_store!(MyLayer, inner; telemetry = add_mine; capabilities = mine)`.
#[macro_export]
macro_rules! forward_admin_store {
    ($ty:ty, $inner:ident $(, $around:ident)? $(; telemetry = $telemetry:ident)? $(; capabilities = $capabilities:ident)?) => {
        #[$crate::__async_trait]
        impl $crate::AdminStore for $ty {
            fn backend_name(&self) -> &'static str {
                self.$inner.backend_name()
            }
            fn capabilities(&self) -> $crate::Capabilities {
                let c = self.$inner.capabilities();
                $( let c = self.$capabilities(c); )?
                c
            }
            async fn migrate(&self) -> $crate::Result<$crate::SchemaVersions> {
                $crate::__forward_call!(self, [$($around)?], "migrate", self.$inner.migrate())
            }
            async fn schema_versions(&self) -> $crate::Result<$crate::SchemaVersions> {
                $crate::__forward_call!(self, [$($around)?], "schema_versions", self.$inner.schema_versions())
            }
            async fn ping(&self) -> $crate::Result<()> {
                $crate::__forward_call!(self, [$($around)?], "ping", self.$inner.ping())
            }
            async fn counts(&self, ns: &str) -> $crate::Result<$crate::Counts> {
                $crate::__forward_call!(self, [$($around)?], "counts", self.$inner.counts(ns))
            }
            async fn storage_bytes(&self) -> $crate::Result<Option<u64>> {
                $crate::__forward_call!(self, [$($around)?], "storage_bytes", self.$inner.storage_bytes())
            }
            fn pool_stats(&self) -> Option<$crate::PoolStats> {
                self.$inner.pool_stats()
            }
            fn telemetry(&self) -> $crate::Telemetry {
                let t = self.$inner.telemetry();
                $( let t = self.$telemetry(t); )?
                t
            }
            async fn purge(&self, ns: &str, cutoffs: &$crate::PurgeCutoffs) -> $crate::Result<$crate::PurgeReport> {
                $crate::__forward_call!(self, [$($around)?], "purge", self.$inner.purge(ns, cutoffs))
            }
            async fn clear(&self, ns: &str) -> $crate::Result<$crate::Counts> {
                $crate::__forward_call!(self, [$($around)?], "clear", self.$inner.clear(ns))
            }
            async fn namespaces(&self) -> $crate::Result<Vec<String>> {
                $crate::__forward_call!(self, [$($around)?], "namespaces", self.$inner.namespaces())
            }
            async fn import(
                &self,
                archive: &[$crate::ArchiveNamespace],
                progress: $crate::ImportProgress<'_>,
            ) -> $crate::Result<()> {
                $crate::__forward_call!(self, [$($around)?], "import", self.$inner.import(archive, progress))
            }
            async fn backup(&self, dest: &::std::path::Path) -> $crate::Result<()> {
                $crate::__forward_call!(self, [$($around)?], "backup", self.$inner.backup(dest))
            }
            async fn close(&self) {
                let _ = $crate::__forward_call!(self, [$($around)?], "close", async {
                    self.$inner.close().await;
                    Ok::<(), $crate::Error>(())
                });
            }
        }
    };
}
