//! A layer in a few lines: it counts the write calls it passes on to the
//! store beneath. It implements [`Layer`] (where the store is, and
//! [`Layer::around`], which every forwarded call runs through) and forwards
//! every domain by default, so a method added to the contract needs no
//! change here. A layer that must see every write of a domain (a cache)
//! implements that domain's trait itself instead (ADR 9).
#![deny(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use persistkit_core::layer::{
    ForwardAdmin, ForwardBatches, ForwardEvents, ForwardIdempotency, ForwardMetrics,
    ForwardRecords, Layer,
};
use persistkit_core::{Result, Store};

/// The operations that change data, by the name `around` receives.
const WRITES: &[&str] = &[
    "write_metrics",
    "append",
    "claim",
    "complete",
    "release",
    "put",
    "incr",
    "delete",
    "create_index",
    "apply",
    "purge",
    "clear",
    "import",
];

/// Forwards everything to the store beneath, counting write calls.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn Store>,
    writes: AtomicU64,
}

impl Counting {
    /// Wrap a store.
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            writes: AtomicU64::new(0),
        })
    }

    /// Write calls so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

impl Layer for Counting {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn around<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        call: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        if WRITES.contains(&op) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        call
    }
}

impl ForwardMetrics for Counting {}
impl ForwardEvents for Counting {}
impl ForwardIdempotency for Counting {}
impl ForwardRecords for Counting {}
impl ForwardBatches for Counting {}
impl ForwardAdmin for Counting {}
