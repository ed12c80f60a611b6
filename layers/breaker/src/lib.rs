//! The circuit breaker layer: after a run of `Unavailable` errors it stops
//! sending calls to the store for a cool-down, failing them fast, then lets
//! one call probe the store and closes again when the probe gets through.
//!
//! ```
//! # async fn demo(store: std::sync::Arc<dyn persistkit_core::Store>) {
//! use std::time::Duration;
//! use persistkit_breaker::{Breaker, BreakerConfig};
//! use persistkit_core::Handle;
//! let config = BreakerConfig::default().failures(5).cool_down(Duration::from_secs(5));
//! let handle = Handle::new(Breaker::wrap(store, config));
//! # }
//! ```
//!
//! - **Closed**: every call reaches the store. An `Unavailable` outcome
//!   adds one to a run; any other outcome (success, `Conflict`, …) ends the
//!   run. A call abandoned before it answered, which is how the handle's
//!   timeout ends a call the database does not answer, counts as
//!   `Unavailable`. When the run reaches [`BreakerConfig::failures`], the
//!   breaker opens.
//! - **Open**: calls fail at once with `Unavailable` (retryable), and the
//!   store is not called, until [`BreakerConfig::cool_down`] has passed.
//! - **Half-open**: the first call after the cool-down probes the store;
//!   the others fail fast while it runs. A probe that gets through (any
//!   outcome but `Unavailable`) closes the breaker; one that does not opens
//!   it for another cool-down.
//!
//! The calls a health report makes (`ping`, `schema_versions`, `counts`,
//! `storage_bytes`) and `close` always reach the store and never count, so
//! `health` tells how the database is, and shows the breaker's state
//! beside it (`layers.breaker`); while the breaker is not closed, health is
//! at least `degraded`.
#![deny(missing_docs)]

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use persistkit_core::admin::{BreakerState, BreakerStats, Telemetry};
use persistkit_core::error::Result;
use persistkit_core::layer::{
    ForwardAdmin, ForwardBatches, ForwardEvents, ForwardIdempotency, ForwardMetrics,
    ForwardRecords, Layer,
};
use persistkit_core::{Error, ErrorKind, Store};

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// `Unavailable` outcomes in a row that open the breaker. Default 5.
    pub failures: u32,
    /// How long an open breaker fails calls fast before it probes.
    /// Default 5 s.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            cool_down: Duration::from_secs(5),
        }
    }
}

/// Setters for every option, so adding one never breaks a caller
/// (the struct is `#[non_exhaustive]`).
impl BreakerConfig {
    /// `Unavailable` outcomes in a row that open the breaker (at least 1).
    pub fn failures(mut self, n: u32) -> Self {
        self.failures = n.max(1);
        self
    }

    /// How long an open breaker fails calls fast before it probes.
    pub fn cool_down(mut self, d: Duration) -> Self {
        self.cool_down = d;
        self
    }
}

/// The calls a health report makes, and `close`: never gated, never counted.
const UNGATED: &[&str] = &[
    "ping",
    "schema_versions",
    "counts",
    "storage_bytes",
    "close",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Closed,
    Open {
        until: Instant,
    },
    /// The cool-down ended and a probe is running.
    Probing,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    consecutive: u32,
    opened: u64,
    rejected: u64,
}

/// How a call was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// While closed.
    Normal,
    /// As the probe after a cool-down.
    Probe,
}

/// A layer that fails calls fast while the store beneath keeps answering
/// `Unavailable` (see the crate's documentation).
pub struct Breaker {
    inner: Arc<dyn Store>,
    config: BreakerConfig,
    state: Mutex<State>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Breaker {
    /// A breaker over `inner`.
    pub fn wrap(inner: Arc<dyn Store>, config: BreakerConfig) -> Arc<Breaker> {
        Arc::new(Breaker {
            inner,
            config: config.failures(config.failures),
            state: Mutex::new(State {
                mode: Mode::Closed,
                consecutive: 0,
                opened: 0,
                rejected: 0,
            }),
        })
    }

    /// Where the breaker stands, and its counters.
    pub fn stats(&self) -> BreakerStats {
        let s = self.lock();
        BreakerStats {
            state: match s.mode {
                Mode::Closed => BreakerState::Closed,
                Mode::Open { until } if Instant::now() < until => BreakerState::Open,
                Mode::Open { .. } | Mode::Probing => BreakerState::HalfOpen,
            },
            consecutive_failures: s.consecutive,
            opened: s.opened,
            rejected: s.rejected,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Let a call through, or say why not.
    fn admit(&self, op: &'static str) -> Result<Admission> {
        let mut s = self.lock();
        let now = Instant::now();
        match s.mode {
            Mode::Closed => Ok(Admission::Normal),
            Mode::Open { until } if now >= until => {
                s.mode = Mode::Probing;
                Ok(Admission::Probe)
            }
            Mode::Open { until } => {
                s.rejected += 1;
                Err(Error::unavailable(format!(
                    "circuit breaker open after {} Unavailable errors in a row: {op} was not sent \
                     to the store; a probe goes through in {:?}",
                    s.consecutive,
                    until - now
                )))
            }
            Mode::Probing => {
                s.rejected += 1;
                Err(Error::unavailable(format!(
                    "circuit breaker half-open after {} Unavailable errors in a row: {op} was not \
                     sent to the store while a probe runs",
                    s.consecutive
                )))
            }
        }
    }

    /// What a call that was let through came to.
    fn settle(&self, admission: Admission, unavailable: bool) {
        let mut s = self.lock();
        if !unavailable {
            s.consecutive = 0;
            if admission == Admission::Probe {
                s.mode = Mode::Closed;
                tracing::info!("circuit breaker closed: the probe reached the store");
            }
            return;
        }
        s.consecutive = s.consecutive.saturating_add(1);
        let open = match admission {
            Admission::Probe => true,
            Admission::Normal => s.mode == Mode::Closed && s.consecutive >= self.config.failures,
        };
        if open {
            s.mode = Mode::Open {
                until: Instant::now() + self.config.cool_down,
            };
            s.opened += 1;
            tracing::warn!(
                failures = s.consecutive,
                cool_down_ms = self.config.cool_down.as_millis() as u64,
                "circuit breaker open: calls fail fast until a probe gets through"
            );
        }
    }
}

/// Settles a call that was dropped before it answered as `Unavailable`.
struct Pending<'a> {
    breaker: &'a Breaker,
    admission: Admission,
    settled: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.settle(self.admission, true);
        }
    }
}

impl Layer for Breaker {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn around<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        call: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        if UNGATED.contains(&op) {
            return call;
        }
        Box::pin(async move {
            let admission = self.admit(op)?;
            let mut pending = Pending {
                breaker: self,
                admission,
                settled: false,
            };
            let r = call.await;
            pending.settled = true;
            let unavailable = matches!(&r, Err(e) if e.kind() == ErrorKind::Unavailable);
            self.settle(admission, unavailable);
            r
        })
    }
}

impl ForwardMetrics for Breaker {}
impl ForwardEvents for Breaker {}
impl ForwardIdempotency for Breaker {}
impl ForwardRecords for Breaker {}
impl ForwardBatches for Breaker {}

impl ForwardAdmin for Breaker {
    fn telemetry(&self) -> Telemetry {
        let mut t = self.inner.telemetry();
        let stats = self.stats();
        if stats.state != BreakerState::Closed {
            t.problems.push(format!(
                "circuit breaker {}: {} Unavailable errors in a row; calls fail fast until a probe \
                 reaches the store",
                match stats.state {
                    BreakerState::Open => "open",
                    _ => "half-open",
                },
                stats.consecutive_failures
            ));
        }
        t.breaker = Some(stats);
        t
    }
}
