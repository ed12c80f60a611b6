//! The recorder as a layer: `write_metrics` goes through one [`Recorder`]
//! per namespace, so any code written against a store (the conformance
//! suite included) runs through the recorder.

use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{Recorder, RecorderConfig};
use persistkit_core::admin::{Capabilities, Telemetry};
use persistkit_core::error::{Error, Result};
use persistkit_core::layer::{
    ForwardAdmin, ForwardBatches, ForwardEvents, ForwardIdempotency, ForwardMetrics,
    ForwardRecords, Layer,
};
use persistkit_core::limits::DEFAULT_TIMEOUT;
use persistkit_core::metrics::{AggregateQuery, AggregateRow, MetricQuery, StoredMetric};
use persistkit_core::op::*;
use persistkit_core::Cx;
use persistkit_core::Handle;
use persistkit_core::Store;

/// A layer whose metric writes are queued and written in batches by a
/// [`Recorder`] per namespace.
///
/// - `write_metrics` validates the batch, queues it whole and returns; the
///   batch is written later in one call, so it stays all-or-nothing and in
///   order.
/// - Every read of this layer (metric reads, counts, export, purge, …)
///   first flushes the recorders, so a caller reads its own writes.
/// - Because a write is acknowledged before it is committed, the layer
///   declares `durable: false`: a crash loses what is queued.
/// - `close` shuts every recorder down (draining its queue) before closing
///   the store beneath; `health` shows each recorder's counters.
pub struct Recorded {
    inner: Arc<dyn Store>,
    config: RecorderConfig,
    timeout: Option<Duration>,
    recorders: Mutex<BTreeMap<String, Recorder>>,
    closed: AtomicBool,
}

impl fmt::Debug for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorded")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Recorded {
    /// Queue the metric writes of `inner` through recorders built with
    /// `config`, each writing with the default handle timeout.
    pub fn wrap(inner: Arc<dyn Store>, config: RecorderConfig) -> Arc<Recorded> {
        Arc::new(Recorded {
            inner,
            config,
            timeout: Some(DEFAULT_TIMEOUT),
            recorders: Mutex::new(BTreeMap::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// The recorder of namespace `ns`, made on first use. Recording through
    /// it and writing through the layer share one queue.
    ///
    /// # Errors
    /// `InvalidInput` for a bad namespace; `Internal` outside a Tokio
    /// runtime; `Closed` once the layer is closed.
    pub fn recorder(&self, ns: &str) -> Result<Recorder> {
        let mut recorders = self.recorders.lock().unwrap_or_else(|p| p.into_inner());
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::closed("the recorder layer is closed"));
        }
        if let Some(r) = recorders.get(ns) {
            return Ok(r.clone());
        }
        let handle = Handle::new(self.inner.clone())
            .namespace(ns)?
            .with_timeout(self.timeout);
        let r = Recorder::new(handle, self.config.clone())?;
        recorders.insert(ns.to_string(), r.clone());
        Ok(r)
    }

    fn all(&self) -> Vec<Recorder> {
        self.recorders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    async fn flush(&self, ns: &str) {
        let r = self
            .recorders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ns)
            .cloned();
        if let Some(r) = r {
            // A recorder that was shut down has nothing left to write.
            let _ = r.flush().await;
        }
    }

    /// Before an administrative call that reads or changes data: flush
    /// every recorder so the call sees every acknowledged write; before
    /// `close`, shut them down. Other calls go straight through.
    async fn before(&self, op: &'static str) {
        match op {
            "close" => {
                // `all` takes the lock after this: it sees every recorder made
                // before, and `recorder` makes none after.
                self.closed.store(true, Ordering::SeqCst);
                let all = self.all();
                for r in all {
                    r.shutdown().await;
                }
            }
            "counts" | "purge" | "clear" | "namespaces" | "import" | "backup" => {
                for r in self.all() {
                    let _ = r.flush().await;
                }
            }
            _ => {}
        }
    }
}

impl Layer for Recorded {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn around<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        call: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            self.before(op).await;
            call.await
        })
    }
}

#[async_trait]
impl ForwardMetrics for Recorded {
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()> {
        let ns = cx.ns();
        let points = op.points;
        self.recorder(ns)?.write(points).await
    }
    async fn read_metrics(&self, cx: &Cx, query: &MetricQuery) -> Result<Vec<StoredMetric>> {
        let ns = cx.ns();
        self.flush(ns).await;
        self.inner.read_metrics(cx, query).await
    }
    async fn list_components(&self, cx: &Cx) -> Result<Vec<String>> {
        let ns = cx.ns();
        self.flush(ns).await;
        self.inner.list_components(cx).await
    }
    async fn list_metric_names(&self, cx: &Cx, op: &ListMetricNames<'_>) -> Result<Vec<String>> {
        let ns = cx.ns();
        self.flush(ns).await;
        self.inner.list_metric_names(cx, op).await
    }
    async fn aggregate(&self, cx: &Cx, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let ns = cx.ns();
        self.flush(ns).await;
        self.inner.aggregate(cx, query).await
    }
}

impl ForwardEvents for Recorded {}
impl ForwardIdempotency for Recorded {}
impl ForwardRecords for Recorded {}
impl ForwardBatches for Recorded {}

impl ForwardAdmin for Recorded {
    fn telemetry(&self) -> Telemetry {
        let mut t = self.inner.telemetry();
        t.recorders.extend(self.all().iter().map(Recorder::stats));
        t
    }

    /// Points are acknowledged once queued, before they are written.
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        c.durable = false;
        c
    }
}
