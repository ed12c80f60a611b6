//! `update` and `try_update`: a caller's own refusal comes back as it was,
//! and the compare-and-set loop gives up on time, not on a count.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use persistkit::layer::{
    ForwardAdmin, ForwardBatches, ForwardEvents, ForwardIdempotency, ForwardMetrics, Layer,
};
use persistkit::op::*;
use persistkit::{
    Cx, Error, ErrorKind, Expect, Handle, PutRecord, Record, RecordStore, Result, Store,
    UpdateError,
};
use serde_json::{json, Value};

#[derive(Debug, PartialEq)]
struct NotRingHolder(String);

impl std::fmt::Display for NotRingHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} holds the ring", self.0)
    }
}

#[tokio::test]
async fn a_change_refuses_with_the_callers_own_error_and_nothing_is_written() {
    let h = Handle::new(Arc::new(persistkit::memory::MemoryStore::new()));
    h.put("ring", "holder", &json!({"node": "b"}), Expect::Absent)
        .await
        .unwrap();
    let claim = |cur: Option<&Value>| match cur.and_then(|v| v["node"].as_str()) {
        Some(other) if other != "a" => Err(NotRingHolder(other.to_string())),
        _ => Ok(json!({"node": "a"})),
    };
    let r = h.try_update("ring", "holder", claim).await;
    match r {
        Err(UpdateError::Aborted(e)) => assert_eq!(e, NotRingHolder("b".into())),
        other => panic!("expected the caller's refusal, got {other:?}"),
    }
    let now = h.get("ring", "holder").await.unwrap().unwrap();
    assert_eq!((now.version, now.data), (1, json!({"node": "b"})));

    // The store's own errors come back as Store, bad input first of all.
    match h.try_update("ring", "", claim).await {
        Err(UpdateError::Store(e)) => assert_eq!(e.kind(), ErrorKind::InvalidInput),
        other => panic!("expected the store's refusal, got {other:?}"),
    }
    // And update flattens both into one persistkit error.
    let e = h
        .update("ring", "holder", |_| Err(Error::conflict(None, "not mine")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
}

/// A store whose record puts always lose the race, counting attempts.
#[derive(Debug)]
struct AlwaysLoses {
    inner: Arc<dyn Store>,
    puts: AtomicU32,
}

impl Layer for AlwaysLoses {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}
impl ForwardMetrics for AlwaysLoses {}
impl ForwardEvents for AlwaysLoses {}
impl ForwardIdempotency for AlwaysLoses {}
impl ForwardBatches for AlwaysLoses {}
impl ForwardAdmin for AlwaysLoses {}

#[async_trait::async_trait]
impl RecordStore for AlwaysLoses {
    async fn put(&self, _cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        Err(Error::conflict(Some(7), format!("{} moved on", put.id)))
    }
    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>> {
        self.inner.get(cx, op).await
    }
    async fn delete(&self, cx: &Cx, op: &DeleteRecord<'_>) -> Result<()> {
        self.inner.delete(cx, op).await
    }
    async fn list_records(&self, cx: &Cx, op: &ListRecords<'_>) -> Result<Vec<Record>> {
        self.inner.list_records(cx, op).await
    }
    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>> {
        self.inner.list_collections(cx).await
    }
    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64> {
        self.inner.count(cx, op).await
    }
    async fn create_index(&self, cx: &Cx, index: &persistkit::Index) -> Result<bool> {
        self.inner.create_index(cx, index).await
    }
    async fn list_indexes(&self, cx: &Cx, op: &ListIndexes<'_>) -> Result<Vec<persistkit::Index>> {
        self.inner.list_indexes(cx, op).await
    }
    async fn find(&self, cx: &Cx, op: &FindRecords<'_>) -> Result<Vec<persistkit::Found>> {
        self.inner.find(cx, op).await
    }
}

/// Attempts `update` makes against a store it can never win on, with
/// handle timeout `timeout`, and the error it ends with.
async fn attempts_within(timeout: Duration) -> (u32, Error) {
    let store = Arc::new(AlwaysLoses {
        inner: Arc::new(persistkit::memory::MemoryStore::new()),
        puts: AtomicU32::new(0),
    });
    let h = Handle::new(store.clone()).with_timeout(Some(timeout));
    let e = h
        .update("c", "x", |_| Ok(json!({"n": 1})))
        .await
        .unwrap_err();
    (store.puts.load(Ordering::SeqCst), e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_gives_up_on_time_not_on_a_count() {
    let (short, e) = attempts_within(Duration::from_millis(100)).await;
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(e.current_version(), Some(7), "{e}");
    assert!(
        e.message().contains("lost the race") && e.message().contains("timeout"),
        "the message says why it gave up: {e}"
    );
    let (long, _) = attempts_within(Duration::from_millis(2_000)).await;
    assert!(short >= 2, "it tries again after a lost race ({short})");
    assert!(
        long > 64 && long > short,
        "a longer timeout allows more attempts, past the old fixed 64: {short} in 100 ms, {long} in 2 s"
    );
}

/// A store that does not override `incr` gets the compare-and-set loop,
/// which gives up at the call's deadline; one that does needs no put.
#[tokio::test]
async fn incr_defaults_to_compare_and_set_until_the_deadline() {
    let store = Arc::new(AlwaysLoses {
        inner: Arc::new(persistkit::memory::MemoryStore::new()),
        puts: AtomicU32::new(0),
    });
    let h = Handle::new(store.clone()).with_timeout(Some(Duration::from_millis(300)));
    // AlwaysLoses does not override incr: the default compare-and-set
    // loop runs on its puts, and loses until its deadline.
    let e = h.incr("c", "n", "/n", 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(store.puts.load(Ordering::SeqCst) > 1, "it tried again");
    // The memory store's own incr needs no put at all.
    let h = Handle::new(Arc::new(persistkit::memory::MemoryStore::new()));
    assert_eq!(
        h.incr("c", "n", "/n", 2).await.unwrap().data,
        json!({"n": 2})
    );
}

/// A handle from `open` takes a layer and keeps its namespace, clock,
/// timeout and retry policy.
#[tokio::test]
async fn a_layer_keeps_the_handles_settings() {
    use persistkit::{Observed, ObserverConfig, RetryPolicy};
    let clock_at = persistkit::Timestamp::from_micros(1_700_000_000_000_000).unwrap();
    let clock = Arc::new(persistkit::ManualClock::new(clock_at));
    let h = persistkit::open("memory://")
        .await
        .unwrap()
        .namespace("acme")
        .unwrap()
        .with_clock(clock)
        .with_timeout(Some(Duration::from_millis(750)))
        .with_read_retry(RetryPolicy::new().max_attempts(2));
    let layered = h
        .clone()
        .layer(|s| Observed::wrap(s, ObserverConfig::default()));
    assert_eq!(layered.namespace_name(), "acme");
    assert_eq!(layered.now(), clock_at);
    assert_eq!(layered.timeout(), Some(Duration::from_millis(750)));
    layered
        .put("c", "x", &json!({}), Expect::Absent)
        .await
        .unwrap();
    let r = h.get("c", "x").await.unwrap().unwrap();
    assert_eq!(
        r.created_at, clock_at,
        "written by the layered handle's clock"
    );
    assert!(layered.latency().is_some(), "the layer is in place");
    assert!(h.latency().is_none(), "the original handle has no layer");
}
