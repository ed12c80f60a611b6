//! The observer layer: latency histograms per operation, and a warning for
//! every call slower than a threshold.
//!
//! ```
//! # async fn demo(store: std::sync::Arc<dyn persistkit_core::Store>) {
//! use persistkit_core::Handle;
//! use persistkit_observe::{Observed, ObserverConfig};
//! let handle = Handle::new(Observed::wrap(store, ObserverConfig::default()));
//! // … calls …
//! for (op, l) in handle.latency().unwrap_or_default() {
//!     println!("{op}: p50 {} µs, p99 {} µs over {} calls", l.p50_us, l.p99_us, l.count);
//! }
//! # }
//! ```
//!
//! Every call through a [`Handle`](persistkit_core::Handle) also runs in a `tracing`
//! span named `persistkit` with the operation, namespace, backend and
//! outcome, with or without this layer.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use hdrhistogram::Histogram;

use persistkit_core::admin::{LatencySummary, Telemetry};
use persistkit_core::error::Result;
use persistkit_core::layer::{
    ForwardAdmin, ForwardBatches, ForwardEvents, ForwardIdempotency, ForwardMetrics,
    ForwardRecords, Layer,
};
use persistkit_core::Store;

/// What the observer keeps and when it warns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObserverConfig {
    /// A call slower than this is counted as slow and logged at `warn`
    /// with its operation. Default 250 ms.
    pub slow: Duration,
}

/// Setters for every option, so adding one never breaks a caller
/// (the struct is `#[non_exhaustive]`): `ObserverConfig::default().slow(d)`.
impl ObserverConfig {
    /// A call slower than this is counted as slow and logged.
    pub fn slow(mut self, v: Duration) -> Self {
        self.slow = v;
        self
    }
}

impl Default for ObserverConfig {
    fn default() -> Self {
        ObserverConfig {
            slow: Duration::from_millis(250),
        }
    }
}

/// Latencies of one operation.
struct OpStats {
    histogram: Histogram<u64>,
    slow: u64,
}

/// A layer that times every call of the store beneath, per operation.
pub struct Observed {
    inner: Arc<dyn Store>,
    config: ObserverConfig,
    ops: Mutex<BTreeMap<&'static str, OpStats>>,
}

impl fmt::Debug for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observed")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Longest latency a histogram tells apart: one hour, in microseconds.
const MAX_TRACKED_US: u64 = 3_600_000_000;

impl Observed {
    /// Observe every call of `inner`.
    pub fn wrap(inner: Arc<dyn Store>, config: ObserverConfig) -> Arc<Observed> {
        Arc::new(Observed {
            inner,
            config,
            ops: Mutex::new(BTreeMap::new()),
        })
    }

    /// p50/p95/p99/max and counts per operation so far.
    pub fn latency(&self) -> BTreeMap<String, LatencySummary> {
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.iter()
            .map(|(op, s)| {
                let h = &s.histogram;
                (
                    (*op).to_string(),
                    LatencySummary {
                        count: h.len(),
                        slow: s.slow,
                        p50_us: h.value_at_quantile(0.50),
                        p95_us: h.value_at_quantile(0.95),
                        p99_us: h.value_at_quantile(0.99),
                        max_us: h.max(),
                    },
                )
            })
            .collect()
    }

    /// Forget every figure so far.
    pub fn reset(&self) {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn record(&self, op: &'static str, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let slow = took > self.config.slow;
        {
            let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
            let s = ops.entry(op).or_insert_with(|| OpStats {
                histogram: Histogram::new_with_bounds(1, MAX_TRACKED_US, 3)
                    .expect("valid histogram bounds"),
                slow: 0,
            });
            s.histogram.saturating_record(us.max(1));
            s.slow += u64::from(slow);
        }
        if slow {
            tracing::warn!(
                op,
                took_ms = took.as_secs_f64() * 1e3,
                threshold_ms = self.config.slow.as_secs_f64() * 1e3,
                "slow persistkit call"
            );
        }
    }
}

impl Layer for Observed {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn around<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        call: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            let started = Instant::now();
            let r = call.await;
            self.record(op, started.elapsed());
            r
        })
    }
}

impl ForwardMetrics for Observed {}
impl ForwardEvents for Observed {}
impl ForwardIdempotency for Observed {}
impl ForwardRecords for Observed {}
impl ForwardBatches for Observed {}

impl ForwardAdmin for Observed {
    fn telemetry(&self) -> Telemetry {
        let mut t = self.inner.telemetry();
        t.latency = Some(self.latency());
        t
    }
}
