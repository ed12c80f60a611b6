//! Administration: capabilities, migrations, health, retention, archive items.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::cx::Cx;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::idempotency::IdempotencyEntry;
use crate::metrics::MetricPoint;
use crate::records::Record;
use crate::time::Timestamp;

pub mod archive;
pub(crate) mod health;

/// What a backend declares it supports, part by optional part. A call that
/// needs a part the store does not declare is `Unsupported` (the handle
/// refuses it before the backend sees it), and the conformance suite
/// reports the cases of that part as unsupported, never as passed. Checking
/// goes both ways: a store that declares a part must pass its cases.
///
/// Start from [`Capabilities::none`] or [`Capabilities::all`] and set
/// fields; new parts arrive as new fields, so the struct cannot be built
/// by a literal outside this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// Acknowledged writes survive closing and reopening the store.
    pub durable: bool,
    /// Several OS processes may use the same data at once.
    pub shared_across_processes: bool,
    /// [`AdminStore::backup`] writes a native snapshot.
    pub native_backup: bool,
    /// Declared indexes and `find` (REC-4, REC-5).
    #[serde(default)]
    pub indexes: bool,
    /// Unique indexes (REC-6); only with `indexes`.
    #[serde(default)]
    pub unique_indexes: bool,
    /// Records that expire (`put_with_ttl`, a TTL in a batch; REC-7).
    #[serde(default)]
    pub record_ttl: bool,
    /// Atomic batches (`apply`; REC-9, COM-9).
    #[serde(default)]
    pub batches: bool,
}

impl Capabilities {
    /// Nothing optional: where a minimal backend starts.
    pub const fn none() -> Self {
        Capabilities {
            durable: false,
            shared_across_processes: false,
            native_backup: false,
            indexes: false,
            unique_indexes: false,
            record_ttl: false,
            batches: false,
        }
    }

    /// Every optional part of the contract.
    pub const fn all() -> Self {
        Capabilities {
            durable: true,
            shared_across_processes: true,
            native_backup: true,
            indexes: true,
            unique_indexes: true,
            record_ttl: true,
            batches: true,
        }
    }

    /// The record features (indexes, unique indexes, TTL, batches) and no
    /// durability, sharing or backup: what a store in one process's memory
    /// has.
    pub const fn in_memory() -> Self {
        Capabilities {
            durable: false,
            shared_across_processes: false,
            native_backup: false,
            ..Capabilities::all()
        }
    }
}

/// Schema versions: what the database has and what this code expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersions {
    /// Version the database is at (0: not migrated).
    pub current: u32,
    /// Version this code expects.
    pub expected: u32,
}

/// Row counts of one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Metric points.
    pub metrics: u64,
    /// Events.
    pub events: u64,
    /// Idempotency keys (expired ones included until purged).
    pub idempotency_keys: u64,
    /// Records.
    pub records: u64,
}

impl Counts {
    /// Sum over domains.
    pub fn total(&self) -> u64 {
        self.metrics + self.events + self.idempotency_keys + self.records
    }

    /// Add `other`, domain by domain.
    pub fn add(&mut self, other: &Counts) {
        self.metrics += other.metrics;
        self.events += other.events;
        self.idempotency_keys += other.idempotency_keys;
        self.records += other.records;
    }
}

/// Row counts of every namespace holding data (ADM-9), as the admin scope
/// reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoreCounts {
    /// The sum over every namespace.
    pub total: Counts,
    /// Each namespace holding data, by name (sorted byte-wise).
    pub namespaces: std::collections::BTreeMap<String, Counts>,
}

/// Connection pool figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Idle connections.
    pub idle: u32,
    /// Maximum connections.
    pub max: u32,
}

/// Overall health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// All good.
    Healthy,
    /// Working, but pending migrations, an exhausted pool or slow round trips.
    Degraded,
    /// Not working; `error` says why.
    Unhealthy,
}

/// Per-operation latency, as an observer layer keeps it: microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Calls measured.
    pub count: u64,
    /// Calls slower than the observer's threshold.
    pub slow: u64,
    /// Median.
    pub p50_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
}

/// A recorder's counters (see the `recorder` module).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecorderStats {
    /// The namespace it writes to.
    pub namespace: String,
    /// Points waiting in the queue.
    pub queued: u64,
    /// Points the store acknowledged.
    pub written: u64,
    /// Points that will never reach the store: the queue was full, the
    /// value was not finite, the retries ran out, or the recorder was
    /// dropped or shut down first.
    pub dropped: u64,
    /// Write attempts that failed (each retry counts).
    pub failed: u64,
    /// The last write error, if any.
    pub last_error: Option<String>,
}

/// What the layers over a store report for health: each adds its part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Latency per operation, from an observer layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<std::collections::BTreeMap<String, LatencySummary>>,
    /// Counters of the recorders of a recorder layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recorders: Vec<RecorderStats>,
    /// What a layer found wrong; health is at least `degraded` while any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// A cache layer's counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStats>,
    /// A circuit breaker layer's state and counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerStats>,
}

impl Telemetry {
    /// Nothing reported.
    pub fn is_empty(&self) -> bool {
        self.latency.is_none()
            && self.recorders.is_empty()
            && self.problems.is_empty()
            && self.cache.is_none()
            && self.breaker.is_none()
    }
}

/// Where a circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls reach the store.
    Closed,
    /// Calls fail fast with `Unavailable` until the cool-down ends.
    Open,
    /// The cool-down ended: one call probes the store, the others fail fast.
    HalfOpen,
}

/// What a circuit breaker layer reports for health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerStats {
    /// Where it stands now.
    pub state: BreakerState,
    /// `Unavailable` outcomes in a row, now.
    pub consecutive_failures: u32,
    /// How many times it opened since it started.
    pub opened: u64,
    /// Calls it failed fast without reaching the store.
    pub rejected: u64,
}

/// What a cache layer counted since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that went to the store.
    pub misses: u64,
    /// Entries dropped to stay within the size bound.
    pub evictions: u64,
    /// Entries held now (approximate).
    pub entries: u64,
    /// Reads sent to the store because the cache could not be reached.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fallbacks: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The health report. Serializes to stable JSON: every field is always
/// present, except `layers`, which appears when a layer reports something,
/// and `namespaces`, which the admin scope's report has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Overall status.
    pub status: HealthStatus,
    /// Backend name (`memory`, `sqlite`, `postgres`, …).
    pub backend: String,
    /// Namespace the counts are for; empty in the admin scope's report,
    /// whose counts are over every namespace.
    pub namespace: String,
    /// Schema versions; `null` when the database could not be asked.
    pub schema: Option<SchemaVersions>,
    /// Row counts per domain in this namespace.
    pub counts: Option<Counts>,
    /// Storage size in bytes, where the backend can tell.
    pub storage_bytes: Option<u64>,
    /// Pool figures, where there is a pool.
    pub pool: Option<PoolStats>,
    /// Round trip of a trivial query, in microseconds.
    pub latency_us: Option<u64>,
    /// Why the store is unhealthy or degraded.
    pub error: Option<String>,
    /// What the layers over the store report (see [`Telemetry`]).
    #[serde(default, skip_serializing_if = "Telemetry::is_empty")]
    pub layers: Telemetry,
    /// In the admin scope's report only: the counts of each namespace
    /// holding data (`counts` is then their sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<std::collections::BTreeMap<String, Counts>>,
}

/// What to purge, relative to the handle's clock. Expired idempotency keys
/// and expired records are always purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    /// Delete metric points with `at` older than now minus this.
    pub metrics_older_than: Option<Duration>,
    /// Delete events with `occurred_at` older than now minus this.
    pub events_older_than: Option<Duration>,
    /// Delete records with `updated_at` older than now minus this.
    pub records_not_updated_for: Option<Duration>,
}

/// Periods of their own for some metric components and collections, for
/// [`Handle::purge_with`](crate::Handle::purge_with). Each replaces its
/// domain's period in the [`RetentionPolicy`] for that component or
/// collection (longer or shorter), so one namespace can keep one
/// component's metrics two years and the rest 90 days.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionOverrides {
    /// Per metric component: keep its points this long instead.
    pub metrics_by_component: std::collections::BTreeMap<String, Duration>,
    /// Per collection: keep its records this long after their last update
    /// instead.
    pub records_by_collection: std::collections::BTreeMap<String, Duration>,
}

/// Absolute cut-offs, as a backend receives them: delete strictly before each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeCutoffs {
    /// Keys and records with `expires_at <= now` are expired.
    pub now: Timestamp,
    /// Metrics with `at < metrics_before`, except components named in
    /// `metrics_by_component`.
    pub metrics_before: Option<Timestamp>,
    /// Events with `occurred_at < events_before`.
    pub events_before: Option<Timestamp>,
    /// Records with `updated_at < records_before`, except collections named
    /// in `records_by_collection`.
    pub records_before: Option<Timestamp>,
    /// Metrics of a component with `at` before its own cut-off, sorted by
    /// component.
    pub metrics_by_component: Vec<(String, Timestamp)>,
    /// Records of a collection with `updated_at` before its own cut-off,
    /// sorted by collection.
    pub records_by_collection: Vec<(String, Timestamp)>,
}

impl PurgeCutoffs {
    /// Cut-offs that purge only what has expired at `now`.
    pub fn expired_at(now: Timestamp) -> Self {
        PurgeCutoffs {
            now,
            metrics_before: None,
            events_before: None,
            records_before: None,
            metrics_by_component: Vec::new(),
            records_by_collection: Vec::new(),
        }
    }

    /// The cut-off for the metrics of `component`, if any.
    pub fn metric_cutoff(&self, component: &str) -> Option<Timestamp> {
        match self
            .metrics_by_component
            .iter()
            .find(|(c, _)| c == component)
        {
            Some((_, t)) => Some(*t),
            None => self.metrics_before,
        }
    }

    /// The cut-off for the records of `collection`, if any.
    pub fn record_cutoff(&self, collection: &str) -> Option<Timestamp> {
        match self
            .records_by_collection
            .iter()
            .find(|(c, _)| c == collection)
        {
            Some((_, t)) => Some(*t),
            None => self.records_before,
        }
    }
}

/// How many rows a purge deleted, per domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PurgeReport {
    /// Metric points.
    pub metrics: u64,
    /// Events.
    pub events: u64,
    /// Idempotency keys.
    pub idempotency_keys: u64,
    /// Records.
    pub records: u64,
}

/// One item of the portable archive, as [`AdminStore::import`] receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ArchiveItem {
    /// A metric point (its relative order is kept; the sequence is not).
    Metric(MetricPoint),
    /// An event, with its id and position.
    Event(Event),
    /// An idempotency key.
    IdempotencyKey(IdempotencyEntry),
    /// A record, with its version and times.
    Record(Record),
    /// An index declaration; import creates it before loading records.
    Index(crate::records::Index),
}

/// One namespace of an archive, with its items in archive order, as
/// [`AdminStore::import`] receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveNamespace {
    /// The namespace the items belong to.
    pub name: String,
    /// Its items, in archive order.
    pub items: Vec<ArchiveItem>,
}

/// Reports how many items an import has written so far.
pub type ImportProgress<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// Administration primitives a backend implements.
///
/// # Contract
/// - Opening a store migrates it unless told not to; `migrate` twice is a
///   no-op and is safe from two processes at once.
/// - A schema newer than the code is refused with `Schema` naming both versions.
/// - `purge` and `counts` touch only `ns`.
/// - `import` loads a whole archive (every namespace in it) all-or-nothing,
///   keeping event ids and positions, record versions and times, and metric
///   order. Every target namespace must be empty, checked inside the same
///   transaction. It reports progress after each step it writes, because the
///   handle abandons an import that makes no progress within its timeout.
/// - Features not in [`capabilities`](AdminStore::capabilities) return
///   `Unsupported`.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Short backend name.
    fn backend_name(&self) -> &'static str;
    /// Declared capabilities.
    fn capabilities(&self) -> Capabilities;
    /// Apply pending migrations.
    async fn migrate(&self) -> Result<SchemaVersions>;
    /// Current and expected schema versions.
    async fn schema_versions(&self) -> Result<SchemaVersions>;
    /// A trivial round trip.
    async fn ping(&self) -> Result<()>;
    /// Row counts in `ns`.
    async fn counts(&self, cx: &Cx) -> Result<Counts>;
    /// Storage size in bytes, if the backend can tell.
    async fn storage_bytes(&self) -> Result<Option<u64>> {
        Ok(None)
    }
    /// Pool figures, if there is a pool.
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
    /// What layers report for health; a backend reports nothing.
    fn telemetry(&self) -> Telemetry {
        Telemetry::default()
    }
    /// Delete what the cut-offs name, in `ns` only.
    async fn purge(&self, cx: &Cx, cutoffs: &PurgeCutoffs) -> Result<PurgeReport>;
    /// Delete everything in `ns` (metrics, events and the log's head,
    /// idempotency keys, records) in one transaction; other namespaces are
    /// untouched. Returns how many of each were deleted.
    async fn clear(&self, cx: &Cx) -> Result<Counts>;
    /// Namespaces holding any data, sorted byte-wise.
    async fn namespaces(&self) -> Result<Vec<String>>;
    /// Load a checked archive into empty namespaces, all of it or nothing.
    /// Call `progress` with the running item count after each batch
    /// written (at least every few thousand items).
    ///
    /// # Errors
    /// `Conflict` naming the first namespace that already holds data (never
    /// its contents or counts); nothing is written.
    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()>;
    /// Write a native snapshot to `dest`.
    ///
    /// # Errors
    /// `Unsupported` unless `native_backup` is declared.
    async fn backup(&self, dest: &Path) -> Result<()> {
        let _ = dest;
        Err(Error::unsupported(format!(
            "{} has no native backup",
            self.backend_name()
        )))
    }
    /// Close connections. Later calls fail with [`ErrorKind::Closed`]
    /// (not retryable).
    ///
    /// [`ErrorKind::Closed`]: crate::ErrorKind::Closed
    async fn close(&self) {}
}
