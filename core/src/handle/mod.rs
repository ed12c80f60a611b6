//! The handle callers use: scoped to one namespace, validating every input
//! before any backend sees it, and reading time from an injectable clock.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::admin::Capabilities;
use crate::cursor::Page;
use crate::cx::Cx;
use crate::deadline::within;
use crate::error::{Error, Result};
use crate::limits::{DEFAULT_NAMESPACE, DEFAULT_TIMEOUT};
use crate::retry::RetryPolicy;
use crate::store::Store;
use crate::time::{Clock, SystemClock, Timestamp};
use crate::validate;

mod admin;
mod batch;
mod events;
mod idempotency;
mod metrics;
mod records;

pub use admin::AdminHandle;

/// A store seen through one namespace. Cheap to clone.
///
/// Every method validates its input against the contract (see
/// [`validate`]) before the backend sees it, so bad input is `InvalidInput`
/// and writes nothing, on every backend.
#[derive(Clone)]
pub struct Handle {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) ns: Arc<str>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: Option<RetryPolicy>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("backend", &self.store.backend_name())
            .field("namespace", &self.ns)
            .finish()
    }
}

impl Handle {
    /// A handle on `store` in the `default` namespace, with the system clock.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Handle {
            store,
            ns: Arc::from(DEFAULT_NAMESPACE),
            clock: Arc::new(SystemClock),
            timeout: Some(DEFAULT_TIMEOUT),
            retry: None,
        }
    }

    /// Retry reads that fail with `Unavailable` (the store restarting, a
    /// failover, a pool briefly exhausted) under `policy`: exponential
    /// backoff with jitter, bounded in attempts. Off by default. Writes are
    /// not retried, because a write that timed out may have been committed;
    /// wrap one you know is safe to repeat in [`retrying`](Self::retrying).
    pub fn with_read_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The former name of [`with_read_retry`](Self::with_read_retry),
    /// which says what it does: only reads are retried.
    #[deprecated(note = "only reads are retried: use with_read_retry")]
    pub fn with_retry(self, policy: RetryPolicy) -> Self {
        self.with_read_retry(policy)
    }

    /// A read: [`timed`](Self::timed), again under the retry policy.
    pub(crate) async fn read<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        crate::retry::run(self.retry, || self.timed(what, call())).await
    }

    /// Fail any call that gets no answer within `timeout` with `Unavailable`
    /// (default 5 s; `None` waits forever). An import may take longer as a
    /// whole, but each of its batches must make progress within `timeout`.
    /// The backend's own pool and lock timeouts still apply inside.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Run a backend call under the handle's timeout, in a `persistkit`
    /// tracing span carrying the operation, namespace, backend and outcome
    /// (`ok` or the error kind).
    pub(crate) async fn timed<T>(
        &self,
        what: &'static str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        use tracing::Instrument;
        let span = tracing::debug_span!(
            "persistkit",
            op = what,
            ns = %self.ns,
            backend = self.store.backend_name(),
            outcome = tracing::field::Empty,
        );
        let inner = span.clone();
        async move {
            let r = within(self.timeout, self.store.backend_name(), what, call).await;
            inner.record(
                "outcome",
                match &r {
                    Ok(_) => "ok",
                    Err(e) => e.kind().as_str(),
                },
            );
            r
        }
        .instrument(span)
        .await
    }

    /// Latency per operation, when an `Observed` (`persistkit-observe`) layer
    /// is part of the store; `None` otherwise.
    pub fn latency(&self) -> Option<std::collections::BTreeMap<String, crate::LatencySummary>> {
        self.store.telemetry().latency
    }

    /// `Unsupported` unless the store declares the part of the contract a
    /// call needs (`declared`, named `part` as in [`Capabilities`]).
    pub(crate) fn require(&self, declared: bool, part: &str) -> Result<()> {
        if declared {
            return Ok(());
        }
        Err(Error::unsupported(format!(
            "this {} store does not declare `{part}` in its capabilities",
            self.store.backend_name()
        )))
    }

    /// The context of one call at clock reading `now`, due within the
    /// handle's timeout from here.
    pub(crate) fn cx(&self, now: Timestamp) -> Cx {
        let deadline = self
            .timeout
            .and_then(|t| std::time::Instant::now().checked_add(t));
        Cx::checked(self.ns.clone(), now).with_deadline(deadline)
    }

    /// The same store seen through namespace `ns`.
    ///
    /// # Errors
    /// `InvalidInput` when `ns` is not a valid name.
    pub fn namespace(&self, ns: &str) -> Result<Handle> {
        validate::name("namespace", ns)?;
        Ok(Handle {
            ns: Arc::from(ns),
            ..self.clone()
        })
    }

    /// Use `clock` for expiry, retention and record times.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same handle over a layer: `wrap` receives the store underneath
    /// and returns the layered one (`|s| Observed::wrap(s, config)`). The
    /// namespace, clock, timeout and retry policy stay as they were, so a
    /// handle from `open` or `from_env` takes a layer without being built
    /// again.
    pub fn layer<S>(self, wrap: impl FnOnce(Arc<dyn Store>) -> Arc<S>) -> Handle
    where
        S: Store + 'static,
    {
        let store: Arc<dyn Store> = wrap(self.store.clone());
        Handle { store, ..self }
    }

    /// The handle's timeout: how long a call may wait for the store.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// This handle's namespace.
    pub fn namespace_name(&self) -> &str {
        &self.ns
    }

    /// The backend underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current time by this handle's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The clock's time, checked like any input: a clock outside years
    /// 1..=9999 is `InvalidInput`, before anything is written.
    pub(crate) fn checked_now(&self) -> Result<Timestamp> {
        let now = self.clock.now();
        Timestamp::from_micros(now.as_micros()).map_err(|_| {
            Error::invalid(format!(
                "the handle's clock reads {}µs since the epoch, outside years 1..=9999; nothing was written",
                now.as_micros()
            ))
        })
    }

    /// Operations over every namespace of this store (export and import of
    /// several namespaces). A `Handle` never reaches beyond its own
    /// namespace; this is the explicit way to.
    pub fn admin(&self) -> AdminHandle {
        AdminHandle {
            store: self.store.clone(),
            timeout: self.timeout,
        }
    }

    /// What the backend declares.
    pub fn capabilities(&self) -> Capabilities {
        self.store.capabilities()
    }

    /// Run `call` again while it fails with `Unavailable`, under this
    /// handle's retry policy ([`with_retry`](Self::with_retry); without one,
    /// once). For writes you know are safe to repeat: a write that timed out
    /// may have been committed.
    ///
    /// # Errors
    /// The last error.
    pub async fn retrying<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        crate::retry::run(self.retry, call).await
    }
}

pub(crate) fn paginate<T>(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next_cursor }
}
