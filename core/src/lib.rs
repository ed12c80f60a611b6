//! The persistkit contract.
//!
//! Backends implement six small traits ([`MetricStore`], [`EventStore`],
//! [`IdempotencyStore`], [`RecordStore`], [`BatchStore`], [`AdminStore`]),
//! which together make a [`Store`]. Every method takes the call's context
//! ([`Cx`]: namespace, clock reading) and one operation from [`op`].
//! Callers use a [`Handle`]: it scopes every call to one namespace,
//! validates input once (see [`validate`]) before any backend sees it, and
//! takes time from an injectable [`Clock`]. Helpers that keep backends in
//! agreement are in [`backend`]; layers are built on [`layer`].
//!
//! The behaviour is specified in the project's `docs/contract.md` and checked by
//! the `persistkit-conformance` suite.
#![deny(missing_docs)]

pub mod admin;
pub mod backend;
pub mod batch;
mod cursor;
pub mod cx;
mod deadline;
pub mod error;
pub mod events;
mod handle;
pub mod idempotency;
pub mod layer;
pub mod limits;
pub mod metrics;
pub mod op;
pub mod records;
pub mod retry;
mod store;
pub mod time;
pub mod validate;

pub use admin::archive::{
    ExportScope, ExportSummary, ImportSummary, ARCHIVE_VERSION, OLDEST_ARCHIVE_VERSION,
};
pub use admin::{
    AdminStore, ArchiveItem, ArchiveNamespace, BreakerState, BreakerStats, CacheStats,
    Capabilities, Counts, HealthReport, HealthStatus, ImportProgress, LatencySummary, PoolStats,
    PurgeCutoffs, PurgeReport, RecorderStats, RetentionOverrides, RetentionPolicy, SchemaVersions,
    Telemetry,
};
pub use batch::{Applied, Batch, BatchItem, BatchOp, BatchStore};
pub use cursor::Page;
pub use cx::Cx;
pub use error::{error_chain, BoxError, Error, ErrorKind, Result};
pub use events::{Appended, Event, EventFilter, EventQuery, EventStore, NewEvent, PreparedEvent};
pub use handle::{AdminHandle, Handle};
pub use idempotency::{Claim, IdempotencyEntry, IdempotencyStore, KeyState, KeyStatus};
pub use layer::Layer;
#[allow(deprecated)]
pub use limits::UPDATE_ATTEMPTS;
pub use limits::{DEFAULT_LIMIT, DEFAULT_NAMESPACE, DEFAULT_TIMEOUT, MAX_BATCH_ITEMS, MAX_TTL};
pub use metrics::{
    AggregateFilter, AggregateQuery, AggregateRow, Bucket, MetricFilter, MetricKey, MetricKind,
    MetricPoint, MetricQuery, MetricStore, StoredMetric,
};
pub use records::{
    Expect, Find, FindQuery, Found, Index, PutRecord, Record, RecordStore, UpdateError,
};
pub use retry::RetryPolicy;
pub use store::Store;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use validate::redact;

#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;
#[doc(hidden)]
pub use serde_json::Value as __Value;
