//! The recorder, the `metrics` facade and the observer, on the memory
//! backend and behind a stand-in for a slow, blocked or dead database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use persistkit::layer::*;
use persistkit::memory::MemoryStore;
use persistkit::op::*;
use persistkit::*;

/// What the stand-in database does with metric writes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Db {
    /// Writes after a pause.
    Slow(Duration),
    /// Never answers.
    Blocked,
    /// Refuses: `Unavailable` at once.
    Dead,
}

/// A layer over memory whose metric writes are slow, blocked or refused.
#[derive(Debug)]
struct Troubled {
    inner: Arc<dyn Store>,
    db: Db,
    attempts: AtomicU64,
}

#[async_trait::async_trait]
impl ForwardMetrics for Troubled {
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        match self.db {
            Db::Slow(d) => {
                tokio::time::sleep(d).await;
                self.inner.write_metrics(cx, op).await
            }
            Db::Blocked => std::future::pending().await,
            Db::Dead => Err(Error::unavailable("connection refused")),
        }
    }
}

impl Layer for Troubled {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}
impl ForwardEvents for Troubled {}
impl ForwardIdempotency for Troubled {}
impl ForwardRecords for Troubled {}
impl ForwardBatches for Troubled {}
impl ForwardAdmin for Troubled {}

fn troubled(db: Db) -> (Handle, Arc<Troubled>) {
    let t = Arc::new(Troubled {
        inner: Arc::new(MemoryStore::new()),
        db,
        attempts: AtomicU64::new(0),
    });
    (Handle::new(t.clone()), t)
}

fn memory() -> Handle {
    Handle::new(Arc::new(MemoryStore::new()))
}

/// Every point of the handle's namespace.
async fn all_points(h: &Handle) -> Vec<StoredMetric> {
    let mut out = Vec::new();
    let mut f = MetricFilter {
        limit: Some(10_000),
        ..Default::default()
    };
    loop {
        let page = h.read_metrics(&f).await.unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => f.cursor = Some(c),
            None => return out,
        }
    }
}

/// No test may hang: a stuck call fails here instead.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 30 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_loses_nothing() {
    let h = memory();
    let rec = Recorder::new(h.clone(), RecorderConfig::default().batch_size(1_000)).unwrap();
    const PER_THREAD: u64 = 20_000;
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let rec = rec.clone();
            std::thread::spawn(move || {
                let c = rec.counter("api", "requests").unwrap();
                for i in 0..PER_THREAD {
                    if i % 2 == 0 {
                        c.incr(1);
                    } else {
                        rec.gauge("api", &format!("worker-{t}"), i as f64);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    rec.write(&[MetricPoint::gauge(
        Timestamp::from_secs(0).unwrap(),
        "batch",
        "x",
        1.0,
    )])
    .await
    .unwrap();
    let stats = bounded("shutdown", rec.shutdown()).await;
    let recorded = 2 * PER_THREAD + 1;
    assert_eq!(
        (stats.written, stats.dropped, stats.queued),
        (recorded, 0, 0),
        "{stats:?}"
    );
    let points = all_points(&h).await;
    assert_eq!(
        points.len() as u64,
        recorded,
        "read back exactly what was recorded"
    );
    let requests: f64 = points
        .iter()
        .filter(|m| m.point.name == "requests")
        .map(|m| m.point.value)
        .sum();
    assert_eq!(requests, PER_THREAD as f64, "every increment arrived once");
    assert!(points
        .iter()
        .filter(|m| m.point.name == "requests")
        .all(|m| m.point.kind == MetricKind::Counter));
    // After shutdown nothing is taken, and it is counted.
    rec.gauge("api", "late", 1.0);
    assert_eq!(rec.stats().dropped, 1);
    assert_eq!(
        rec.write(&[MetricPoint::gauge(h.now(), "a", "b", 1.0)])
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Closed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_keep_their_times_values_and_order() {
    let h = memory();
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_secs(1_700_000_000).unwrap(),
    ));
    let h = h.with_clock(clock.clone());
    let rec = Recorder::new(h.clone(), RecorderConfig::default()).unwrap();
    let at = |s: i64| Timestamp::from_secs(s).unwrap();
    let mut expected = Vec::new();
    for i in 0..100 {
        let p = MetricPoint::gauge(at(1_600_000_000 + i % 7), "c", "n", i as f64);
        rec.record(p.clone());
        expected.push(p);
    }
    let batch: Vec<MetricPoint> = (0..50)
        .map(|i| MetricPoint::counter(at(1_600_000_000), "c", "m", -(i as f64)))
        .collect();
    rec.write(&batch).await.unwrap();
    expected.extend(batch);
    // Points recorded without a time take the handle's clock.
    rec.flush().await.unwrap();
    rec.gauge("c", "now", 0.5);
    rec.flush().await.unwrap();
    expected.push(MetricPoint::gauge(clock.now(), "c", "now", 0.5));
    let got: Vec<MetricPoint> = {
        let mut v = all_points(&h).await;
        v.sort_by_key(|m| m.seq);
        v.into_iter().map(|m| m.point).collect()
    };
    assert_eq!(
        got, expected,
        "exactly the points recorded, in order, with their times"
    );
    rec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_drops_and_counts() {
    let (h, _db) = troubled(Db::Blocked);
    let rec = Recorder::new(h, RecorderConfig::default().capacity(100).batch_size(10)).unwrap();
    let c = rec.counter("api", "requests").unwrap();
    bounded("recording into a full queue", async {
        for _ in 0..1_000 {
            c.incr(1);
        }
    })
    .await;
    let s = rec.stats();
    // The background task may hold one batch (10) in its blocked write.
    let accounted = s.queued + s.dropped;
    assert!(
        (990..=1_000).contains(&accounted),
        "queued + dropped must account for every point but the one batch in flight: {s:?}"
    );
    assert!(s.dropped >= 890, "{s:?}");
    assert_eq!(s.written, 0);
    let w = rec
        .write(&[MetricPoint::gauge(
            Timestamp::from_secs(0).unwrap(),
            "a",
            "b",
            1.0,
        )])
        .await;
    assert_eq!(
        w.unwrap_err().kind(),
        ErrorKind::Unavailable,
        "a batch that cannot be queued is an error, not a silent loss"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_never_blocks_the_caller() {
    for db in [Db::Dead, Db::Blocked] {
        let (h, stand_in) = troubled(db);
        let h = h.with_timeout(Some(Duration::from_millis(100)));
        let rec = Recorder::new(
            h.clone(),
            RecorderConfig::default()
                .batch_size(5_000)
                .max_retries(2)
                .retry_delay(Duration::from_millis(1)),
        )
        .unwrap();
        let c = rec.counter("api", "requests").unwrap();
        bounded("recording against a dead backend", async {
            for _ in 0..5_000 {
                c.incr(1);
                rec.gauge("api", "latency", 1.0);
            }
        })
        .await;
        let stats = bounded("shutdown against a dead backend", rec.shutdown()).await;
        assert_eq!(stats.written, 0, "{db:?}: {stats:?}");
        assert_eq!(
            stats.dropped, 10_000,
            "{db:?}: every point is counted: {stats:?}"
        );
        assert!(stats.failed >= 3, "{db:?}: {stats:?}");
        assert!(stand_in.attempts.load(Ordering::SeqCst) >= 3);
        let e = stats.last_error.unwrap_or_default();
        assert!(
            e.contains("refused") || e.contains("no answer"),
            "{db:?}: the last error says why: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_policy_waits_for_room_and_loses_nothing() {
    let (h, _db) = troubled(Db::Slow(Duration::from_millis(2)));
    let rec = Recorder::new(
        h.clone(),
        RecorderConfig::default()
            .capacity(16)
            .batch_size(8)
            .overflow(Overflow::Wait(Duration::from_secs(10))),
    )
    .unwrap();
    let c = rec.counter("api", "requests").unwrap();
    let rec2 = rec.clone();
    let producer = tokio::task::spawn_blocking(move || {
        for _ in 0..500 {
            c.incr(1);
        }
        drop(rec2);
    });
    bounded("producer", producer).await.unwrap();
    let stats = bounded("shutdown", rec.shutdown()).await;
    assert_eq!((stats.written, stats.dropped), (500, 0), "{stats:?}");
    assert_eq!(all_points(&h).await.len(), 500);
}

/// Captures what `tracing` prints while `f` runs.
fn logs_of(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let out = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || out.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_without_shutdown_says_how_much_was_lost() {
    let (h, _db) = troubled(Db::Blocked);
    let rec = Recorder::new(
        h,
        RecorderConfig::default().interval(Duration::from_secs(3_600)),
    )
    .unwrap();
    let c = rec.counter("api", "requests").unwrap();
    for _ in 0..37 {
        c.incr(1);
    }
    let logs = logs_of(|| drop(rec));
    assert!(
        logs.contains("WARN") && logs.contains("37 points lost"),
        "dropping must say how much was lost: {logs}"
    );
    c.incr(1); // the handle outlives its recorder: counted, not queued
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_facade_persists_counters_gauges_and_histograms() {
    let h = memory();
    let rec = Recorder::new(h.clone(), RecorderConfig::default()).unwrap();
    let facade = MetricsFacade::new(rec.clone());
    ::metrics::with_local_recorder(&facade, || {
        ::metrics::counter!("http.requests", "method" => "GET", "code" => "200").increment(3);
        ::metrics::counter!("http.requests", "method" => "GET", "code" => "200").increment(2);
        ::metrics::counter!("jobs", "component" => "worker").absolute(10);
        ::metrics::counter!("jobs", "component" => "worker").absolute(12);
        let g = ::metrics::gauge!("pool.size");
        g.set(4.0);
        g.increment(2.0);
        g.decrement(1.0);
        for v in [5.0, 1.0, 3.0] {
            ::metrics::histogram!("http.latency_ms").record(v);
        }
        let long = "x".repeat(300);
        ::metrics::counter!(long).increment(1); // breaks the naming rules: a no-op
    });
    let stats = bounded("shutdown", rec.shutdown()).await;
    assert_eq!(stats.dropped, 0, "{stats:?}");
    let mut got: Vec<(String, String, MetricKind, f64)> = all_points(&h)
        .await
        .into_iter()
        .map(|m| (m.point.component, m.point.name, m.point.kind, m.point.value))
        .collect();
    got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let s = |c: &str, n: &str, k: MetricKind, v: f64| (c.to_string(), n.to_string(), k, v);
    use MetricKind::{Counter as C, Gauge as G};
    assert_eq!(
        got,
        vec![
            s("http", "latency_ms", G, 5.0),
            s("http", "latency_ms", G, 1.0),
            s("http", "latency_ms", G, 3.0),
            s("http", "requests{code=200,method=GET}", C, 3.0),
            s("http", "requests{code=200,method=GET}", C, 2.0),
            s("pool", "size", G, 4.0),
            s("pool", "size", G, 6.0),
            s("pool", "size", G, 5.0),
            s("worker", "jobs", C, 10.0),
            s("worker", "jobs", C, 2.0),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorder_layer_reports_its_counters_in_health() {
    let layer = Recorded::wrap(Arc::new(MemoryStore::new()), RecorderConfig::default());
    let h = Handle::new(layer.clone());
    let rec = layer.recorder("default").unwrap();
    rec.count("api", "requests", 1);
    h.write_metrics(&[MetricPoint::gauge(h.now(), "api", "x", 1.0)])
        .await
        .unwrap();
    // A read through the layer sees both: reads flush first.
    assert_eq!(h.counts().await.unwrap().metrics, 2);
    let report = h.health().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    let r = &report.layers.recorders;
    assert_eq!(r.len(), 1, "{report:?}");
    assert_eq!(
        (r[0].namespace.as_str(), r[0].written, r[0].dropped),
        ("default", 2, 0)
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["layers"]["recorders"][0]["written"], 2);
    assert!(
        !AdminStore::capabilities(&*layer).durable,
        "acknowledged before commit: not durable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_keeps_percentiles_per_operation_and_counts_slow_calls() {
    let (inner, _db) = troubled(Db::Slow(Duration::from_millis(3)));
    let observed = Observed::wrap(
        inner.store().clone(),
        ObserverConfig::default().slow(Duration::from_millis(2)),
    );
    let h = Handle::new(observed.clone());
    assert_eq!(
        h.latency(),
        Some(Default::default()),
        "nothing measured yet"
    );
    let logs = {
        let h = h.clone();
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            logs_of(|| {
                rt.block_on(async {
                    for i in 0..20 {
                        h.write_metrics(&[MetricPoint::gauge(h.now(), "c", "n", i as f64)])
                            .await
                            .unwrap();
                        h.get("jobs", "1").await.unwrap();
                    }
                })
            })
        })
        .await
        .unwrap()
    };
    let l = h.latency().expect("an observer is in the store");
    let w = l["write_metrics"];
    assert_eq!((w.count, w.slow), (20, 20), "{w:?}");
    assert!(
        w.p50_us >= 3_000 && w.p50_us <= w.p95_us && w.p95_us <= w.p99_us && w.p99_us <= w.max_us,
        "{w:?}"
    );
    let g = l["get"];
    assert_eq!(g.count, 20);
    assert!(g.p50_us < 2_000 && g.slow < 20, "{g:?}");
    assert!(
        logs.contains("slow persistkit call") && logs.contains("write_metrics"),
        "slow calls are logged with their operation: {logs}"
    );
    let report = h.health().await;
    assert!(report.layers.latency.unwrap().contains_key("write_metrics"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_runs_in_a_span_with_its_outcome() {
    let h = memory();
    let logs = {
        let h = h.clone();
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
            #[derive(Clone)]
            struct W(Arc<Mutex<Vec<u8>>>);
            impl std::io::Write for W {
                fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                    self.0.lock().unwrap().extend_from_slice(b);
                    Ok(b.len())
                }
                fn flush(&mut self) -> std::io::Result<()> {
                    Ok(())
                }
            }
            let w = W(buf.clone());
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
                .with_writer(move || w.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                rt.block_on(async {
                    h.get("jobs", "1").await.unwrap();
                    let _ = h
                        .put("jobs", "1", &serde_json::json!({}), Expect::Version(9))
                        .await;
                })
            });
            let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
            text
        })
        .await
        .unwrap()
    };
    assert!(
        logs.contains("op=\"get\"") && logs.contains("outcome=\"ok\""),
        "{logs}"
    );
    assert!(
        logs.contains("op=\"put\"")
            && logs.contains("outcome=\"conflict\"")
            && logs.contains("ns=default"),
        "{logs}"
    );
}
