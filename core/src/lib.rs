//! The persistkit contract.
//!
//! Backends implement the five domain traits ([`MetricStore`], [`EventStore`],
//! [`IdempotencyStore`], [`RecordStore`], [`AdminStore`]), which together make
//! a [`Store`]. Callers use a [`Handle`]: it scopes every call to one
//! namespace, validates input once (see [`validate`]) before any backend sees
//! it, and takes time from an injectable [`Clock`].
//!
//! The behaviour is specified in the project's `docs/contract.md` and checked by
//! the `persistkit-conformance` suite.
#![deny(missing_docs)]

pub mod admin;
pub mod archive;
pub mod batch;
mod cursor;
pub mod error;
pub mod events;
pub mod group_commit;
mod handle;
pub mod idempotency;
pub mod index;
pub mod layer;
pub mod metrics;
pub mod observe;
pub mod recorder;
pub mod records;
pub mod retry;
mod store;
pub mod time;
pub mod validate;

pub use admin::{
    AdminStore, ArchiveItem, ArchiveNamespace, CacheStats, Capabilities, Counts, HealthReport,
    HealthStatus, ImportProgress, LatencySummary, PoolStats, PurgeCutoffs, PurgeReport,
    RecorderStats, RetentionOverrides, RetentionPolicy, SchemaVersions, Telemetry,
};
pub use archive::{
    ExportScope, ExportSummary, ImportSummary, ARCHIVE_VERSION, OLDEST_ARCHIVE_VERSION,
};
pub use batch::{Applied, Batch, BatchItem, BatchOp, BatchStore, MAX_BATCH_ITEMS};
pub use cursor::Page;
pub use error::{BoxError, Error, ErrorKind, Result};
pub use events::{
    next_position, Appended, Event, EventFilter, EventQuery, EventStore, NewEvent, PreparedEvent,
};
pub use group_commit::GroupCommit;
pub use handle::{
    error_chain, AdminHandle, Handle, DEFAULT_LIMIT, DEFAULT_NAMESPACE, DEFAULT_TIMEOUT, MAX_TTL,
    UPDATE_ATTEMPTS,
};
pub use idempotency::{
    check_live_claim, Claim, IdempotencyEntry, IdempotencyStore, KeyState, KeyStatus,
};
pub use index::{index_differs, no_such_index, unique_conflict, Find, FindQuery, Found, Index};
pub use layer::Layer;
pub use metrics::{
    quantile_rank, quantiles_of, AggregateFilter, AggregateQuery, AggregateRow, Bucket,
    MetricFilter, MetricKey, MetricKind, MetricPoint, MetricQuery, MetricStore, StoredMetric,
};
pub use observe::{Observed, ObserverConfig};
pub use recorder::{Counter, Gauge, MetricsFacade, Overflow, Recorded, Recorder, RecorderConfig};
pub use records::{
    check_expect, expectation_error, next_version, put_refused, version_exhausted, Expect,
    PutRecord, Record, RecordStore,
};
pub use retry::RetryPolicy;
pub use store::Store;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};

#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;
#[doc(hidden)]
pub use serde_json::Value as __Value;
