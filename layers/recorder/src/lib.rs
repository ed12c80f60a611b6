//! The recorder: a non-blocking, batched front for metrics on any store.
//!
//! Recording a point queues it and returns; a background task writes the
//! queue in batches, by size or by interval, whichever comes first.
//!
//! ```no_run
//! # async fn demo(handle: persistkit_core::Handle) -> persistkit_core::Result<()> {
//! use persistkit_recorder::{Recorder, RecorderConfig};
//! let rec = Recorder::new(handle, RecorderConfig::default())?;
//! let requests = rec.counter("api", "requests")?; // once, at start-up
//! requests.incr(1); // the hot path: a few nanoseconds
//! rec.gauge("api", "latency_ms", 12.5); // by name: a lookup more
//! rec.flush().await?; // everything recorded so far is written
//! let stats = rec.shutdown().await; // drains the queue, then stops
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//! - The points that reach the store are exactly those recorded, each with
//!   its time: points recorded without one take the handle's clock as the
//!   background task last read it (every [`RecorderConfig::clock_tick`]).
//! - Recording never blocks on the store and never panics. When the queue
//!   is full the point is dropped and counted, or, with [`Overflow::Wait`],
//!   the caller waits for room up to a limit first.
//! - A failed batch is retried with exponential backoff and jitter up to
//!   [`RecorderConfig::max_retries`] times, then counted as dropped.
//! - [`Recorder::flush`] returns once everything recorded before it was
//!   written (or counted as dropped); [`Recorder::shutdown`] drains the
//!   queue and stops. Dropping the last clone without shutting down drops
//!   what is queued and logs how many points were lost.
//! - [`Recorder::stats`] reports queued, written, dropped and failed counts
//!   and the last error; through the [`Recorded`] layer they appear in
//!   `health`.
#![deny(missing_docs)]

mod config;
mod facade;
mod layer;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use backon::{BackoffBuilder, ExponentialBuilder};
use crossbeam_queue::ArrayQueue;
use tokio::sync::{mpsc, oneshot, Notify};

use persistkit_core::admin::RecorderStats;
use persistkit_core::error::error_chain;
use persistkit_core::error::{Error, Result};
use persistkit_core::metrics::{MetricKind, MetricPoint};
use persistkit_core::time::Timestamp;
use persistkit_core::validate;
use persistkit_core::Handle;

pub use config::{Overflow, RecorderConfig};
pub use facade::MetricsFacade;
pub use layer::Recorded;

/// One queue entry.
enum Entry {
    /// A point of a registered series.
    Point { series: u32, at: i64, value: f64 },
    /// A whole batch, written in one call.
    Batch(Vec<MetricPoint>),
}

impl Entry {
    fn points(&self) -> u64 {
        match self {
            Entry::Point { .. } => 1,
            Entry::Batch(b) => b.len() as u64,
        }
    }
}

/// A registered series: what a point id stands for.
struct Series {
    kind: MetricKind,
    component: String,
    name: String,
}

/// The lookup key of a series.
#[derive(Clone, PartialEq, Eq)]
struct SeriesKey {
    kind: MetricKind,
    component: String,
    name: String,
}

/// A borrowed [`SeriesKey`], hashing the same way, so a lookup by name
/// allocates nothing.
struct SeriesRef<'a> {
    kind: MetricKind,
    component: &'a str,
    name: &'a str,
}

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        SeriesRef {
            kind: self.kind,
            component: &self.component,
            name: &self.name,
        }
        .hash(h)
    }
}

impl Hash for SeriesRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.kind.hash(h);
        self.component.hash(h);
        self.name.hash(h);
    }
}

impl hashbrown::Equivalent<SeriesKey> for SeriesRef<'_> {
    fn equivalent(&self, k: &SeriesKey) -> bool {
        self.kind == k.kind && self.component == k.component && self.name == k.name
    }
}

enum Control {
    Flush(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// What recorders, their handles and the background task share.
struct Shared {
    ns: String,
    config: RecorderConfig,
    queue: ArrayQueue<Entry>,
    /// Series id by key; read lock-free on every record by name.
    lookup: ArcSwap<hashbrown::HashMap<SeriesKey, u32>>,
    /// Series by id; registration appends under this lock.
    series: RwLock<Vec<Arc<Series>>>,
    /// The clock as the background task last read it, in µs.
    now_us: AtomicI64,
    closed: AtomicBool,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    warned_overflow: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Signalled whenever the background task takes entries off the queue.
    room: Notify,
}

impl Shared {
    #[inline]
    fn push(&self, entry: Entry) {
        if self.closed.load(Relaxed) {
            self.lose(entry.points(), "the recorder is shut down");
            return;
        }
        if let Err(entry) = self.queue.push(entry) {
            self.overflow(entry);
        }
    }

    #[cold]
    fn overflow(&self, mut entry: Entry) {
        if let Overflow::Wait(limit) = self.config.overflow {
            // Spin briefly, then sleep in growing steps (up to 1 ms), so a
            // waiting producer leaves the cores to the writer.
            let deadline = Instant::now() + limit;
            let mut nap = Duration::from_micros(20);
            for round in 0u32.. {
                if round < 32 {
                    std::hint::spin_loop();
                } else {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Duration::from_millis(1));
                }
                match self.queue.push(entry) {
                    Ok(()) => return,
                    Err(back) => entry = back,
                }
                if Instant::now() >= deadline || self.closed.load(Relaxed) {
                    break;
                }
            }
        }
        if !self.warned_overflow.swap(true, Relaxed) {
            tracing::warn!(
                namespace = %self.ns,
                capacity = self.config.capacity,
                "recorder queue full: dropping points (counted in stats().dropped)"
            );
        }
        self.lose(entry.points(), "the queue is full");
    }

    #[cold]
    fn lose(&self, points: u64, why: &str) {
        self.dropped.fetch_add(points, Relaxed);
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none() {
            *last = Some(format!("dropped: {why}"));
        }
    }

    fn note_error(&self, text: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    /// The id of a series, registering it (after checking its names) the
    /// first time.
    #[inline]
    fn series_id(&self, kind: MetricKind, component: &str, name: &str) -> Result<u32> {
        match self.known(kind, component, name) {
            Some(id) => Ok(id),
            None => self.register(kind, component, name),
        }
    }

    /// The id of a registered series, without allocating.
    #[inline]
    fn known(&self, kind: MetricKind, component: &str, name: &str) -> Option<u32> {
        let probe = SeriesRef {
            kind,
            component,
            name,
        };
        self.lookup.load().get(&probe).copied()
    }

    #[cold]
    fn register(&self, kind: MetricKind, component: &str, name: &str) -> Result<u32> {
        validate::name("component", component)?;
        validate::name("metric name", name)?;
        let mut series = self.series.write().unwrap_or_else(|p| p.into_inner());
        // Another thread may have registered it while this one waited.
        if let Some(id) = self.known(kind, component, name) {
            return Ok(id);
        }
        let id = u32::try_from(series.len())
            .map_err(|_| Error::invalid("a recorder holds at most 2^32 series"))?;
        series.push(Arc::new(Series {
            kind,
            component: component.to_string(),
            name: name.to_string(),
        }));
        let mut map = hashbrown::HashMap::clone(&self.lookup.load());
        map.insert(
            SeriesKey {
                kind,
                component: component.to_string(),
                name: name.to_string(),
            },
            id,
        );
        self.lookup.store(Arc::new(map));
        Ok(id)
    }

    #[inline]
    fn record(&self, series: u32, value: f64) {
        if !value.is_finite() {
            self.lose(1, "a value was not finite");
            return;
        }
        self.push(Entry::Point {
            series,
            at: self.now_us.load(Relaxed),
            value,
        });
    }

    fn stats(&self) -> RecorderStats {
        RecorderStats {
            namespace: self.ns.clone(),
            queued: self.queue.len() as u64,
            written: self.written.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            failed: self.failed.load(Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Take up to `batch_size` points (whole batches stay whole) off the
    /// queue, as points; the count of entries taken.
    fn take_batch(&self, max_entries: usize) -> (Vec<MetricPoint>, usize) {
        let mut points = Vec::new();
        let mut taken = 0;
        let series = self.series.read().unwrap_or_else(|p| p.into_inner());
        while taken < max_entries && points.len() < self.config.batch_size {
            let Some(entry) = self.queue.pop() else { break };
            taken += 1;
            match entry {
                Entry::Point {
                    series: id,
                    at,
                    value,
                } => {
                    let s = &series[id as usize];
                    match Timestamp::from_micros(at) {
                        Ok(at) => points.push(MetricPoint {
                            at,
                            component: s.component.clone(),
                            name: s.name.clone(),
                            kind: s.kind,
                            value,
                        }),
                        Err(_) => self.lose(1, "the clock read outside years 1..=9999"),
                    }
                }
                Entry::Batch(b) => points.extend(b),
            }
        }
        drop(series);
        if taken > 0 {
            self.room.notify_waiters();
        }
        (points, taken)
    }

    /// Write up to `entries` queue entries, batch by batch.
    async fn write_up_to(&self, handle: &Handle, mut entries: usize) {
        while entries > 0 {
            let (points, taken) = self.take_batch(entries);
            if taken == 0 {
                return;
            }
            entries -= taken;
            self.write_with_retries(handle, points).await;
        }
    }

    async fn write_with_retries(&self, handle: &Handle, points: Vec<MetricPoint>) {
        if points.is_empty() {
            return;
        }
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.config.retry_delay)
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(self.config.max_retries)
            .with_jitter()
            .build();
        loop {
            let started = Instant::now();
            match handle.write_metrics(&points).await {
                Ok(()) => {
                    self.written.fetch_add(points.len() as u64, Relaxed);
                    tracing::trace!(namespace = %self.ns, points = points.len(), took = ?started.elapsed(), "recorder batch written");
                    return;
                }
                Err(e) => {
                    self.failed.fetch_add(1, Relaxed);
                    let text = error_chain(&e);
                    self.note_error(text.clone());
                    let delay = if e.is_retryable() {
                        delays.next()
                    } else {
                        None
                    };
                    match delay {
                        Some(d) => {
                            tracing::debug!(namespace = %self.ns, error = %text, "recorder batch failed; retrying in {d:?}");
                            tokio::time::sleep(d).await;
                        }
                        None => {
                            tracing::warn!(
                                namespace = %self.ns,
                                points = points.len(),
                                error = %text,
                                "recorder batch failed for good; its points are dropped"
                            );
                            self.dropped.fetch_add(points.len() as u64, Relaxed);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Mark closed and count what is still queued as lost.
    fn abandon(&self) -> u64 {
        self.closed.store(true, Relaxed);
        let mut lost = 0;
        while let Some(e) = self.queue.pop() {
            lost += e.points();
        }
        if lost > 0 {
            self.lose(lost, "the recorder was dropped without shutdown");
        }
        lost
    }
}

/// The background task: reads the clock every tick, writes by size or by
/// interval, and answers flush and shutdown.
async fn run(shared: Arc<Shared>, handle: Handle, mut control: mpsc::UnboundedReceiver<Control>) {
    let mut tick = tokio::time::interval(shared.config.clock_tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_write = Instant::now();
    loop {
        tokio::select! {
            biased;
            c = control.recv() => match c {
                Some(Control::Flush(done)) => {
                    let n = shared.queue.len();
                    shared.write_up_to(&handle, n).await;
                    last_write = Instant::now();
                    let _ = done.send(());
                }
                Some(Control::Shutdown(done)) => {
                    shared.closed.store(true, Relaxed);
                    shared.write_up_to(&handle, usize::MAX).await;
                    let _ = done.send(());
                    return;
                }
                // Every recorder is gone; `Owner::drop` counted the loss.
                None => return,
            },
            _ = tick.tick() => {
                shared.now_us.store(handle.now().as_micros(), Relaxed);
                let queued = shared.queue.len();
                if queued >= shared.config.batch_size
                    || (queued > 0 && last_write.elapsed() >= shared.config.interval)
                {
                    shared.write_up_to(&handle, queued).await;
                    last_write = Instant::now();
                }
            }
        }
    }
}

/// Owns the background task: when the last [`Recorder`] clone goes, so
/// does the task, and what was still queued is counted and reported.
struct Owner {
    shared: Arc<Shared>,
    control: mpsc::UnboundedSender<Control>,
    shut_down: AtomicBool,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if self.shut_down.load(Relaxed) {
            return;
        }
        let lost = self.shared.abandon();
        if lost > 0 {
            tracing::warn!(
                namespace = %self.shared.ns,
                lost,
                "recorder dropped without shutdown: {lost} points lost; call shutdown().await to drain the queue"
            );
        } else {
            tracing::debug!(namespace = %self.shared.ns, "recorder dropped without shutdown; nothing was queued");
        }
    }
}

/// A non-blocking, batched metrics writer for one namespace. Cheap to
/// clone; clones share the queue.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
    owner: Arc<Owner>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("namespace", &self.shared.ns)
            .field("stats", &self.shared.stats())
            .finish()
    }
}

impl Recorder {
    /// A recorder writing through `handle` (its namespace, clock and
    /// timeout), with its background task on the current Tokio runtime.
    ///
    /// # Errors
    /// `InvalidInput` for a capacity, batch size, interval or tick of zero;
    /// `Internal` outside a Tokio runtime.
    pub fn new(handle: Handle, config: RecorderConfig) -> Result<Recorder> {
        if config.capacity == 0
            || config.batch_size == 0
            || config.interval.is_zero()
            || config.clock_tick.is_zero()
        {
            return Err(Error::invalid(format!(
                "recorder capacity, batch size, interval and clock tick must be more than zero, got {config:?}"
            )));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::internal("Recorder::new needs a Tokio runtime for its background task")
        })?;
        let shared = Arc::new(Shared {
            ns: handle.namespace_name().to_string(),
            queue: ArrayQueue::new(config.capacity),
            config,
            lookup: ArcSwap::from_pointee(hashbrown::HashMap::new()),
            series: RwLock::new(Vec::new()),
            now_us: AtomicI64::new(handle.now().as_micros()),
            closed: AtomicBool::new(false),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            warned_overflow: AtomicBool::new(false),
            last_error: Mutex::new(None),
            room: Notify::new(),
        });
        let (control, rx) = mpsc::unbounded_channel();
        runtime.spawn(run(shared.clone(), handle, rx));
        Ok(Recorder {
            owner: Arc::new(Owner {
                shared: shared.clone(),
                control,
                shut_down: AtomicBool::new(false),
            }),
            shared,
        })
    }

    /// The namespace it writes to.
    pub fn namespace(&self) -> &str {
        &self.shared.ns
    }

    /// A counter handle for the hot path: register once, then
    /// [`Counter::incr`].
    ///
    /// # Errors
    /// `InvalidInput` for a bad component or name.
    pub fn counter(&self, component: &str, name: &str) -> Result<Counter> {
        Ok(Counter {
            id: self
                .shared
                .series_id(MetricKind::Counter, component, name)?,
            shared: self.shared.clone(),
        })
    }

    /// A gauge handle for the hot path: register once, then [`Gauge::set`].
    ///
    /// # Errors
    /// `InvalidInput` for a bad component or name.
    pub fn gauge_handle(&self, component: &str, name: &str) -> Result<Gauge> {
        Ok(Gauge {
            id: self.shared.series_id(MetricKind::Gauge, component, name)?,
            shared: self.shared.clone(),
        })
    }

    /// Record a gauge point by name, timed now. A bad name or a value that
    /// is not finite is dropped and counted, never an error.
    #[inline]
    pub fn gauge(&self, component: &str, name: &str, value: f64) {
        self.by_name(MetricKind::Gauge, component, name, value);
    }

    /// Record a counter increment by name, timed now.
    #[inline]
    pub fn count(&self, component: &str, name: &str, n: u64) {
        self.by_name(MetricKind::Counter, component, name, n as f64);
    }

    #[inline]
    fn by_name(&self, kind: MetricKind, component: &str, name: &str, value: f64) {
        match self.shared.series_id(kind, component, name) {
            Ok(id) => self.shared.record(id, value),
            Err(e) => {
                self.shared.lose(1, "a name was invalid");
                self.shared.note_error(error_chain(&e));
            }
        }
    }

    /// Record a point with its own time. A bad point is dropped and
    /// counted.
    pub fn record(&self, point: MetricPoint) {
        match validate::point(&point) {
            Ok(()) => self.shared.push(Entry::Batch(vec![point])),
            Err(e) => {
                self.shared.lose(1, "a point was invalid");
                self.shared.note_error(error_chain(&e));
            }
        }
    }

    /// Queue a batch to be written in one call, all or nothing, keeping
    /// its order. Unlike recording one point, a batch that cannot be queued
    /// is an error, so the caller knows it was not taken.
    ///
    /// # Errors
    /// `InvalidInput` with the index of the first bad point, and nothing is
    /// queued; `Unavailable` when the queue stays full (at once with
    /// [`Overflow::Drop`], after the wait with [`Overflow::Wait`]); `Closed`
    /// after shutdown.
    pub async fn write(&self, points: &[MetricPoint]) -> Result<()> {
        for (i, p) in points.iter().enumerate() {
            validate::point(p).map_err(|e| e.at_index(i))?;
        }
        if points.is_empty() {
            return Ok(());
        }
        let mut entry = Entry::Batch(points.to_vec());
        let deadline = match self.shared.config.overflow {
            Overflow::Drop => None,
            Overflow::Wait(limit) => Some(tokio::time::Instant::now() + limit),
        };
        loop {
            if self.shared.closed.load(Relaxed) {
                return Err(Error::closed(format!(
                    "the recorder of namespace {:?} is shut down; nothing was queued",
                    self.shared.ns
                )));
            }
            let room = self.shared.room.notified();
            match self.shared.queue.push(entry) {
                Ok(()) => return Ok(()),
                Err(back) => entry = back,
            }
            let waited = match deadline {
                Some(d) => tokio::time::timeout_at(d, room).await.is_ok(),
                None => false,
            };
            if !waited {
                self.shared.lose(entry.points(), "the queue is full");
                return Err(Error::unavailable(format!(
                    "the recorder queue of namespace {:?} is full ({} entries); nothing was queued",
                    self.shared.ns, self.shared.config.capacity
                )));
            }
        }
    }

    /// Wait until everything recorded before this call is written (or
    /// counted as dropped).
    ///
    /// # Errors
    /// `Closed` after shutdown.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let gone = || {
            Error::closed(format!(
                "the recorder of namespace {:?} is shut down",
                self.shared.ns
            ))
        };
        self.owner
            .control
            .send(Control::Flush(tx))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Stop taking points, write everything queued (with retries), stop
    /// the background task, and return the final counters. Points recorded
    /// afterwards are dropped and counted. Calling it again returns the
    /// counters at once.
    pub async fn shutdown(&self) -> RecorderStats {
        if !self.owner.shut_down.swap(true, Relaxed) {
            let (tx, rx) = oneshot::channel();
            if self.owner.control.send(Control::Shutdown(tx)).is_ok() {
                let _ = rx.await;
            }
        }
        self.shared.closed.store(true, Relaxed);
        self.shared.stats()
    }

    /// Counters so far.
    pub fn stats(&self) -> RecorderStats {
        self.shared.stats()
    }
}

/// A registered counter: [`Counter::incr`] queues an increment, timed now.
#[derive(Clone)]
pub struct Counter {
    shared: Arc<Shared>,
    id: u32,
}

impl Counter {
    /// Queue a point of value `n`.
    #[inline]
    pub fn incr(&self, n: u64) {
        self.shared.record(self.id, n as f64);
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter").field("id", &self.id).finish()
    }
}

/// A registered gauge: [`Gauge::set`] queues a value, timed now.
#[derive(Clone)]
pub struct Gauge {
    shared: Arc<Shared>,
    id: u32,
}

impl Gauge {
    /// Queue a point of value `v`; one that is not finite is dropped and
    /// counted.
    #[inline]
    pub fn set(&self, v: f64) {
        self.shared.record(self.id, v);
    }
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge").field("id", &self.id).finish()
    }
}
