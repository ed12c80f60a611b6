//! The breaker over a store that can be made to fail or hang: it opens
//! after a run of `Unavailable`, fails fast without calling the store,
//! probes once after the cool-down, and closes or opens again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use persistkit_breaker::{Breaker, BreakerConfig};
use persistkit_core::admin::{BreakerState, BreakerStats};
use persistkit_core::layer::*;
use persistkit_core::{Error, ErrorKind, Expect, Handle, HealthStatus, Result, Store};
use serde_json::json;
use tokio::sync::Notify;

/// Counts the calls that reach it; fails them with `Unavailable` while
/// `failing`, and holds them until released while `hanging`.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn Store>,
    failing: AtomicBool,
    hanging: AtomicBool,
    release: Notify,
    reached: AtomicU64,
}

impl Layer for Flaky {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn around<'a, T: Send + 'a>(
        &'a self,
        _op: &'static str,
        call: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            self.reached.fetch_add(1, Ordering::SeqCst);
            if self.hanging.load(Ordering::SeqCst) {
                self.release.notified().await;
            }
            if self.failing.load(Ordering::SeqCst) {
                return Err(Error::unavailable("the database does not answer"));
            }
            call.await
        })
    }
}
impl ForwardMetrics for Flaky {}
impl ForwardEvents for Flaky {}
impl ForwardIdempotency for Flaky {}
impl ForwardRecords for Flaky {}
impl ForwardBatches for Flaky {}
impl ForwardAdmin for Flaky {}

struct Rig {
    flaky: Arc<Flaky>,
    breaker: Arc<Breaker>,
    h: Handle,
}

fn rig(failures: u32) -> Rig {
    let flaky = Arc::new(Flaky {
        inner: Arc::new(persistkit_memory::MemoryStore::new()),
        failing: AtomicBool::new(false),
        hanging: AtomicBool::new(false),
        release: Notify::new(),
        reached: AtomicU64::new(0),
    });
    let breaker = Breaker::wrap(
        flaky.clone(),
        BreakerConfig::default()
            .failures(failures)
            .cool_down(Duration::from_secs(10)),
    );
    let h = Handle::new(breaker.clone());
    Rig { flaky, breaker, h }
}

impl Rig {
    fn fail(&self, on: bool) {
        self.flaky.failing.store(on, Ordering::SeqCst);
    }
    fn reached(&self) -> u64 {
        self.flaky.reached.load(Ordering::SeqCst)
    }
    async fn get(&self) -> Result<Option<persistkit_core::Record>> {
        self.h.get("jobs", "1").await
    }
}

fn state(b: &Breaker) -> BreakerState {
    b.stats().state
}

#[tokio::test(start_paused = true)]
async fn opens_after_a_run_of_unavailable_and_fails_fast() {
    let r = rig(3);
    r.fail(true);
    for _ in 0..3 {
        assert_eq!(r.get().await.unwrap_err().kind(), ErrorKind::Unavailable);
    }
    assert_eq!(r.reached(), 3);
    assert_eq!(state(&r.breaker), BreakerState::Open);
    let e = r.get().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_retryable());
    assert!(e.message().contains("circuit breaker open"), "{e}");
    assert_eq!(r.reached(), 3, "an open breaker does not call the store");
    assert_eq!(
        r.breaker.stats(),
        BreakerStats {
            state: BreakerState::Open,
            consecutive_failures: 3,
            opened: 1,
            rejected: 1,
        }
    );
    // The database is back, the breaker still open: health pings the store
    // itself, and is degraded with the breaker's state beside it.
    r.fail(false);
    let health = r.h.health().await;
    assert_eq!(health.status, HealthStatus::Degraded, "{health:?}");
    assert!(health
        .error
        .unwrap_or_default()
        .contains("circuit breaker open"));
    assert_eq!(
        health.layers.breaker.map(|b| b.state),
        Some(BreakerState::Open)
    );
    let v = serde_json::to_value(r.h.health().await).unwrap();
    assert_eq!(v["layers"]["breaker"]["state"], json!("open"));
}

#[tokio::test(start_paused = true)]
async fn only_unavailable_counts_and_any_other_outcome_ends_the_run() {
    let r = rig(3);
    r.h.put("jobs", "1", &json!({}), Expect::Absent)
        .await
        .unwrap();
    r.fail(true);
    for _ in 0..2 {
        r.get().await.unwrap_err();
    }
    r.fail(false);
    let conflict = r.h.put("jobs", "1", &json!({}), Expect::Absent).await;
    assert_eq!(conflict.unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(r.breaker.stats().consecutive_failures, 0);
    r.fail(true);
    for _ in 0..2 {
        r.get().await.unwrap_err();
    }
    assert_eq!(
        state(&r.breaker),
        BreakerState::Closed,
        "2 + 2 is no run of 3"
    );
    r.get().await.unwrap_err();
    assert_eq!(state(&r.breaker), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_probe_after_the_cool_down_closes_it() {
    let r = rig(1);
    r.fail(true);
    r.get().await.unwrap_err();
    tokio::time::advance(Duration::from_secs(9)).await;
    r.fail(false);
    r.get().await.unwrap_err();
    assert_eq!(r.reached(), 1, "still cooling down");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(state(&r.breaker), BreakerState::HalfOpen);
    assert_eq!(r.get().await.unwrap(), None, "the probe reaches the store");
    assert_eq!(r.reached(), 2);
    assert_eq!(state(&r.breaker), BreakerState::Closed);
    assert_eq!(r.get().await.unwrap(), None);
    assert_eq!(r.reached(), 3);
    assert_eq!(r.h.health().await.status, HealthStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_it_for_another_cool_down() {
    let r = rig(1);
    r.fail(true);
    r.get().await.unwrap_err();
    tokio::time::advance(Duration::from_secs(10)).await;
    r.get().await.unwrap_err();
    assert_eq!(r.reached(), 2, "the probe went to the store");
    let s = r.breaker.stats();
    assert_eq!((s.state, s.opened), (BreakerState::Open, 2));
    r.get().await.unwrap_err();
    assert_eq!(r.reached(), 2, "open again: fail fast");
}

#[tokio::test(start_paused = true)]
async fn one_probe_at_a_time() {
    let r = Arc::new(rig(1));
    r.fail(true);
    r.get().await.unwrap_err();
    tokio::time::advance(Duration::from_secs(10)).await;
    r.fail(false);
    r.flaky.hanging.store(true, Ordering::SeqCst);
    let probe = tokio::spawn({
        let r = r.clone();
        async move { r.get().await }
    });
    while r.reached() < 2 {
        tokio::task::yield_now().await;
    }
    let e = r.get().await.unwrap_err();
    assert!(e.message().contains("probe runs"), "{e}");
    assert_eq!(
        r.reached(),
        2,
        "a second call waits for no probe: it fails fast"
    );
    r.flaky.hanging.store(false, Ordering::SeqCst);
    r.flaky.release.notify_one();
    assert_eq!(probe.await.unwrap().unwrap(), None);
    assert_eq!(state(&r.breaker), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_call_the_handle_abandons_counts_as_unavailable() {
    let r = rig(1);
    let h = r.h.clone().with_timeout(Some(Duration::from_millis(100)));
    r.flaky.hanging.store(true, Ordering::SeqCst);
    let e = h.get("jobs", "1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(state(&r.breaker), BreakerState::Open);
    r.flaky.hanging.store(false, Ordering::SeqCst);
    h.get("jobs", "1").await.unwrap_err();
    assert_eq!(r.reached(), 1);
}
