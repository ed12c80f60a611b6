//! The group-commit layer: concurrent appends share one call to the store
//! beneath, and every caller still gets its own answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use persistkit::layer::*;
use persistkit::memory::MemoryStore;
use persistkit::op::*;
use persistkit::*;
use serde_json::json;

/// Memory, with appends that take a while (so callers pile up), that
/// count the calls and the events per call, and that fail any batch
/// holding an event of kind `poison`.
#[derive(Debug)]
struct Slow {
    inner: Arc<dyn Store>,
    calls: AtomicUsize,
    largest: AtomicUsize,
}

#[async_trait::async_trait]
impl ForwardEvents for Slow {
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>> {
        let events = op.events;
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.largest.fetch_max(events.len(), Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        if events.iter().any(|e| e.kind == "poison") {
            return Err(Error::invalid("poisoned batch"));
        }
        self.inner.append(cx, op).await
    }
}

impl Layer for Slow {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}
impl ForwardMetrics for Slow {}
impl ForwardIdempotency for Slow {}
impl ForwardRecords for Slow {}
impl ForwardBatches for Slow {}
impl ForwardAdmin for Slow {}

fn setup() -> (Handle, Arc<Slow>) {
    let slow = Arc::new(Slow {
        inner: Arc::new(MemoryStore::new()),
        calls: AtomicUsize::new(0),
        largest: AtomicUsize::new(0),
    });
    (Handle::new(GroupCommit::wrap(slow.clone())), slow)
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_secs(1_700_000_000 + s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_calls_and_keep_their_own_results() {
    let (h, slow) = setup();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                h.append(&[
                    NewEvent::new("paid", at(i), json!({"order": i})),
                    NewEvent::new("shipped", at(i), json!({"order": i})),
                ])
                .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().unwrap());
    }
    let calls = slow.calls.load(Ordering::SeqCst);
    assert!(
        calls < 16,
        "16 concurrent appends took {calls} calls: nothing was grouped"
    );
    assert!(slow.largest.load(Ordering::SeqCst) > 2);
    // Each caller got its own two events, and the log holds each once, in
    // position order, gap-free.
    let log = h.read_log(0, 100).await.unwrap();
    assert_eq!(log.len(), 32);
    assert!(log
        .iter()
        .enumerate()
        .all(|(i, e)| e.position == i as u64 + 1));
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|a| !a.duplicate));
        let mine: Vec<&Event> = log
            .iter()
            .filter(|e| e.data == json!({"order": i}))
            .collect();
        assert_eq!(
            r.iter().map(|a| a.id).collect::<Vec<_>>(),
            mine.iter().map(|e| e.id).collect::<Vec<_>>(),
            "caller {i} got the ids of its own events"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_fails_alone() {
    let (h, _slow) = setup();
    // Keep the writer busy so the next appends queue up together.
    let first = {
        let h = h.clone();
        tokio::spawn(async move { h.append(&[NewEvent::new("a", at(0), json!({}))]).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let h = h.clone();
            let kind = if i == 3 { "poison" } else { "ok" };
            tokio::spawn(async move {
                h.append(&[NewEvent::new(kind, at(i), json!({"i": i}))])
                    .await
            })
        })
        .collect();
    first.await.unwrap().unwrap();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        if i == 3 {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidInput);
        } else {
            assert_eq!(
                r.unwrap().len(),
                1,
                "batch {i} is not hurt by another's failure"
            );
        }
    }
    let log = h.read_log(0, 100).await.unwrap();
    assert_eq!(log.len(), 6, "everything but the poisoned batch");
    assert!(log.iter().all(|e| e.kind != "poison"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_from_two_callers_in_one_group_is_stored_once() {
    let (h, _slow) = setup();
    let blocker = {
        let h = h.clone();
        tokio::spawn(async move { h.append(&[NewEvent::new("a", at(0), json!({}))]).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let same = || NewEvent::new("paid", at(1), json!({"order": 7}));
    let (one, two) = ([same()], [same()]);
    let (a, b) = tokio::join!(h.append(&one), h.append(&two));
    blocker.await.unwrap().unwrap();
    let (a, b) = (a.unwrap()[0], b.unwrap()[0]);
    assert_eq!(a.id, b.id);
    assert_eq!(
        [a.duplicate, b.duplicate].iter().filter(|d| !**d).count(),
        1,
        "exactly one of them stored it"
    );
    assert_eq!(h.read_log(0, 100).await.unwrap().len(), 2);
}

/// A writer kept busy for longer than any caller's timeout writes each
/// group under its own callers' deadline, not the first caller's: on
/// SQLite, where a deadline passed is refused before any statement,
/// sustained appends keep succeeding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_writer_outlives_the_first_callers_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/gc.db", dir.path().display());
    let store = persistkit::sqlite::SqliteStore::open(&url).await.unwrap();
    let h = Handle::new(GroupCommit::wrap(Arc::new(store)))
        .with_timeout(Some(Duration::from_millis(300)));
    let until = std::time::Instant::now() + Duration::from_millis(1_500);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while std::time::Instant::now() < until {
                h.append(&[NewEvent::new(
                    "tick",
                    Timestamp::now(),
                    json!({"w": w, "n": n}),
                )])
                .await
                .unwrap_or_else(|e| panic!("writer {w}, append {n}: {e}"));
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(
        h.counts().await.unwrap().events,
        total,
        "every append landed"
    );
}
