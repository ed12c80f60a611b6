//! `persistkit bench recorder`: the recorder's hot path beside the `metrics`
//! crate with a plain atomic recorder, and sustained throughput through the
//! recorder beside direct 10 000-point batches, measured in the same run.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use persistkit::memory::MemoryStore;
use persistkit::{Handle, MetricPoint, MetricsFacade, Overflow, Recorder, RecorderConfig, Store};

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The baseline recorder: every counter is one shared atomic.
struct AtomicRecorder(Arc<AtomicCounter>);

struct AtomicCounter(AtomicU64);

impl metrics::CounterFn for AtomicCounter {
    fn increment(&self, v: u64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    fn absolute(&self, v: u64) {
        self.0.fetch_max(v, Ordering::Relaxed);
    }
}

impl metrics::Recorder for AtomicRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.0.clone())
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// Nanoseconds per call of `op` on each of `threads` threads, `per_thread`
/// calls each, all starting together; the median of 3 runs.
fn ns_per_op(threads: usize, per_thread: usize, op: impl Fn(usize) + Sync) -> f64 {
    let mut runs: Vec<f64> = (0..3)
        .map(|_| {
            let start = std::sync::Barrier::new(threads);
            let took: Vec<Duration> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads)
                    .map(|t| {
                        let (start, op) = (&start, &op);
                        s.spawn(move || {
                            start.wait();
                            let t0 = Instant::now();
                            for i in 0..per_thread {
                                op(black_box(t * per_thread + i));
                            }
                            t0.elapsed()
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().expect("bench thread"))
                    .collect()
            });
            took.iter().map(|d| d.as_nanos() as f64).sum::<f64>() / (threads * per_thread) as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[1]
}

struct Row {
    name: String,
    ours: f64,
    base: f64,
    target: &'static str,
}

/// Hot-path figures: the recorder queues into a memory store whose writer
/// waits (interval one hour), so only the recording is timed; the queue is
/// drained between runs, untimed.
pub async fn hot_path(per_thread: usize) -> Result<String, String> {
    let h = Handle::new(Arc::new(MemoryStore::new())).with_timeout(None);
    let rec = Recorder::new(
        h.clone(),
        RecorderConfig::default()
            .capacity(3 * 2 * per_thread + 16)
            .batch_size(1 << 30)
            .interval(Duration::from_secs(3_600)),
    )
    .map_err(err)?;
    let counter = rec.counter("api", "requests").map_err(err)?;
    let base = AtomicRecorder(Arc::new(AtomicCounter(AtomicU64::new(0))));
    let base_handle = metrics::with_local_recorder(&base, || metrics::counter!("api.requests"));
    let facade = MetricsFacade::new(rec.clone());
    let mut rows = Vec::new();
    for threads in [1usize, 2] {
        eprintln!("bench: hot path, {threads} thread(s), {per_thread} points each …");
        let ours = ns_per_op(threads, per_thread, |_| counter.incr(1));
        rec.flush().await.map_err(err)?;
        let b = ns_per_op(threads, per_thread, |_| base_handle.increment(1));
        rows.push(Row {
            name: format!("record through a handle, {threads} thread(s)"),
            ours,
            base: b,
            target: "≤ 20 ns",
        });
        let ours = ns_per_op(threads, per_thread, |_| rec.count("api", "requests", 1));
        rec.flush().await.map_err(err)?;
        let b = ns_per_op(threads, per_thread, |_| {
            metrics::with_local_recorder(&base, || metrics::counter!("api.requests").increment(1))
        });
        rows.push(Row {
            name: format!("record by name, {threads} thread(s)"),
            ours,
            base: b,
            target: "≤ 100 ns",
        });
        let ours = ns_per_op(threads, per_thread, |_| {
            metrics::with_local_recorder(&facade, || metrics::counter!("api.requests").increment(1))
        });
        rec.flush().await.map_err(err)?;
        rows.push(Row {
            name: format!("counter! through the facade, {threads} thread(s)"),
            ours,
            base: b,
            target: "",
        });
    }
    let stats = rec.shutdown().await;
    if stats.dropped > 0 {
        return Err(format!("the hot-path bench dropped points: {stats:?}"));
    }
    let mut s =
        String::from("== bench: recorder hot path (memory store, writer idle while timed) ==\n");
    s += "baseline = the metrics crate with a recorder whose counter is one shared atomic (handle; counter! macro)\n";
    s += &format!(
        "{:<44} {:>12} {:>12} {:>8} {:>10}\n",
        "figure", "persistkit", "baseline", "ratio", "target"
    );
    for r in &rows {
        s += &format!(
            "{:<44} {:>12} {:>12} {:>7.2}× {:>10}\n",
            r.name,
            format!("{:.1} ns", r.ours),
            format!("{:.1} ns", r.base),
            r.base / r.ours,
            r.target
        );
    }
    s += "ratio = baseline time / persistkit time (1.00× = as fast); ns per recorded point per thread, median of 3 runs\n";
    s += &format!(
        "{} points recorded and written, none dropped",
        stats.written
    );
    Ok(s)
}

/// Every point of `h`'s namespace, in insertion order.
async fn read_back(h: &Handle) -> Result<Vec<MetricPoint>, String> {
    let mut out = Vec::new();
    let mut f = persistkit::MetricFilter {
        limit: Some(10_000),
        ..Default::default()
    };
    loop {
        let page = h.read_metrics(&f).await.map_err(err)?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => f.cursor = Some(c),
            None => break,
        }
    }
    out.sort_by_key(|m| m.seq);
    Ok(out.into_iter().map(|m| m.point).collect())
}

/// Sustained throughput into `ours` through a recorder (one producer
/// recording by handle into 6 series, `Overflow::Wait`, timed until
/// shutdown has written everything), beside writing the very same points
/// (read back, untimed) with direct 10 000-point `write_metrics` batches
/// into `base`, an empty store of the same backend.
async fn one_round(
    ours: Arc<dyn Store>,
    base: Arc<dyn Store>,
    points: usize,
) -> Result<(f64, f64, u64), String> {
    eprintln!("bench: {points} points through the recorder …");
    let h = Handle::new(ours).with_timeout(None);
    let rec = Recorder::new(
        h.clone(),
        RecorderConfig::default().overflow(Overflow::Wait(Duration::from_secs(60))),
    )
    .map_err(err)?;
    let gauges: Vec<_> = (0..6)
        .map(|i| rec.gauge_handle(["api", "db", "web"][i % 3], ["rps", "latency"][i % 2]))
        .collect::<persistkit::Result<_>>()
        .map_err(err)?;
    let t = Instant::now();
    let producer = tokio::task::spawn_blocking(move || {
        for i in 0..points {
            gauges[i % 6].set(i as f64);
        }
    });
    producer.await.map_err(err)?;
    let stats = rec.shutdown().await;
    let ours_rate = points as f64 / t.elapsed().as_secs_f64();
    if stats.written != points as u64 {
        return Err(format!("the recorder did not write every point: {stats:?}"));
    }

    let same = read_back(&h).await?;
    eprintln!(
        "bench: the same {} points in direct 10 000-point batches …",
        same.len()
    );
    let direct = Handle::new(base).with_timeout(None);
    let t = Instant::now();
    for batch in same.chunks(10_000) {
        direct.write_metrics(batch).await.map_err(err)?;
    }
    let base_rate = same.len() as f64 / t.elapsed().as_secs_f64();

    Ok((ours_rate, base_rate, stats.written))
}

/// [`one_round`] on `warm_up` first (the first heavy write of a process
/// runs slower on either side: allocator and page cache growth), then on
/// `measured`, which is what is reported.
pub async fn sustained(
    title: &str,
    warm_up: (Arc<dyn Store>, Arc<dyn Store>),
    measured: (Arc<dyn Store>, Arc<dyn Store>),
    points: usize,
) -> Result<String, String> {
    eprintln!("bench: warm-up round (not reported) …");
    one_round(warm_up.0, warm_up.1, points).await?;
    let (ours_rate, base_rate, written) = one_round(measured.0, measured.1, points).await?;
    let mut s = format!("== bench: sustained recording, {title} ==\n");
    s += &format!(
        "{:<44} {:>14} {:>14} {:>8} {:>10}\n",
        "figure", "persistkit", "baseline", "ratio", "target"
    );
    s += &format!(
        "{:<44} {:>14} {:>14} {:>7.2}× {:>10}\n",
        "points/s through the recorder vs direct",
        format!("{ours_rate:.0}/s"),
        format!("{base_rate:.0}/s"),
        ours_rate / base_rate,
        "≥ 0.80×"
    );
    s += &format!(
        "baseline = the same points, direct write_metrics in 10 000-point batches; {} points written through the recorder, none dropped",
        written
    );
    Ok(s)
}
