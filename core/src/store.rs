//! The `Store` super-trait.

use std::fmt::Debug;

use crate::admin::AdminStore;
use crate::batch::BatchStore;
use crate::events::EventStore;
use crate::idempotency::IdempotencyStore;
use crate::metrics::MetricStore;
use crate::records::RecordStore;

/// Everything a backend implements: the six domain traits. Implemented for
/// every type that implements them, and usable as `Arc<dyn Store>`.
///
/// Backends receive validated input only: callers go through
/// [`Handle`](crate::Handle), which checks every rule of the contract first.
pub trait Store:
    MetricStore
    + EventStore
    + IdempotencyStore
    + RecordStore
    + BatchStore
    + AdminStore
    + Debug
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: MetricStore
        + EventStore
        + IdempotencyStore
        + RecordStore
        + BatchStore
        + AdminStore
        + Debug
        + Send
        + Sync
{
}
