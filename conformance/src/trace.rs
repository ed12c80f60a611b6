//! The calls a case made, for its failure message: every store a case
//! touches through its [`Ctx`](crate::Ctx) is wrapped in [`Traced`], which
//! notes each call (store, operation, input, answer) in the case's
//! [`CallLog`]. A failure then shows the last calls before it, and the
//! report groups failures by the last call, which is most often the one
//! whose answer the failed check looked at.

use std::fmt::{self, Debug};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use futures::future::BoxFuture;
use persistkit_core::admin::{Counts, PurgeCutoffs, PurgeReport};
use persistkit_core::batch::Applied;
use persistkit_core::events::{Appended, Event, EventQuery};
use persistkit_core::idempotency::{Claim, IdempotencyEntry};
use persistkit_core::layer::{
    ForwardAdmin, ForwardBatches, ForwardEvents, ForwardIdempotency, ForwardMetrics,
    ForwardRecords, Layer,
};
use persistkit_core::metrics::{AggregateQuery, AggregateRow, MetricQuery, StoredMetric};
use persistkit_core::op::*;
use persistkit_core::records::{Found, Index, PutRecord, Record};
use persistkit_core::{error_chain, Cx, Result, Store};

/// How many calls a log keeps: the last ones, which are the ones a failure
/// message shows. A race case makes thousands.
const KEPT: usize = 64;

/// How much of one input or answer a log line shows.
const SHOWN: usize = 180;

/// One call a case made.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// 1 for the first call of the case.
    pub seq: usize,
    /// Which of the case's stores: 1 is the fixture's.
    pub store: usize,
    /// The operation (`list_records`).
    pub op: &'static str,
    /// The namespace and the operation's input, shortened.
    pub input: String,
    /// `None` while the call is running; the answer or the error after.
    pub outcome: Option<String>,
    /// Wall time, once it ended.
    pub ms: Option<f64>,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>4}. [store {}] {}", self.seq, self.store, self.op)?;
        if !self.input.is_empty() {
            write!(f, " {}", self.input)?;
        }
        match (&self.outcome, self.ms) {
            (Some(o), Some(ms)) => write!(f, "\n        -> {o} ({ms:.1} ms)"),
            _ => write!(f, "\n        -> no answer yet"),
        }
    }
}

/// The calls of one case, the last [`KEPT`] of them, in a ring of slots
/// that each lock alone: the 64 contenders of a race case never wait on
/// one another here, so noting their calls does not change how they race.
#[derive(Debug)]
pub(crate) struct CallLog {
    /// Calls started so far; the next one's number is this plus one.
    started: AtomicUsize,
    stores: AtomicUsize,
    slots: Vec<Mutex<Option<Call>>>,
    /// Answers that broke the contract, whatever the case then checked.
    broken: Mutex<Vec<String>>,
    /// What a passing case reports of itself (how much it checked).
    note: Mutex<Option<String>>,
}

impl Default for CallLog {
    fn default() -> Self {
        CallLog {
            started: AtomicUsize::new(0),
            stores: AtomicUsize::new(0),
            note: Mutex::new(None),
            slots: (0..KEPT).map(|_| Mutex::new(None)).collect(),
            broken: Mutex::new(Vec::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CallLog {
    /// Keep what a passing case says of itself.
    pub(crate) fn set_note(&self, note: String) {
        *self.note.lock().unwrap_or_else(|p| p.into_inner()) = Some(note);
    }

    /// What the case said of itself, if anything.
    pub(crate) fn note(&self) -> Option<String> {
        self.note.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A number for the next store the case opens.
    pub(crate) fn next_store(&self) -> usize {
        self.stores.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn start(&self, store: usize, op: &'static str, input: String) -> usize {
        let seq = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        *lock(&self.slots[seq % KEPT]) = Some(Call {
            seq,
            store,
            op,
            input,
            outcome: None,
            ms: None,
        });
        seq
    }

    fn end(&self, seq: usize, outcome: String, ms: f64) {
        let mut slot = lock(&self.slots[seq % KEPT]);
        if let Some(call) = slot.as_mut().filter(|c| c.seq == seq) {
            call.outcome = Some(outcome);
            call.ms = Some(ms);
        }
    }

    fn break_rule(&self, what: String) {
        let mut broken = lock(&self.broken);
        if !broken.contains(&what) {
            broken.push(what);
        }
    }

    /// Answers beneath the handle that broke the contract (a handle may
    /// hide them: it asks for one more item than a page holds).
    pub(crate) fn broken(&self) -> Vec<String> {
        lock(&self.broken).clone()
    }

    /// The kept calls, oldest first, and how many calls there were.
    pub(crate) fn snapshot(&self) -> (Vec<Call>, usize) {
        let mut calls: Vec<Call> = self.slots.iter().filter_map(|s| lock(s).clone()).collect();
        calls.sort_by_key(|c| c.seq);
        (calls, self.started.load(Ordering::Relaxed))
    }
}

/// What a failure message says about the calls: the last `shown` of them,
/// each rendered, and the operation of the last one (what the report
/// groups by).
pub(crate) fn describe(log: &CallLog, shown: usize) -> (Vec<String>, Option<&'static str>) {
    let (calls, _) = log.snapshot();
    let from = calls.len().saturating_sub(shown);
    (
        calls[from..].iter().map(Call::to_string).collect(),
        calls.last().map(|c| c.op),
    )
}

/// The heading over a failure's calls.
pub(crate) fn calls_heading(shown: usize, first: Option<&str>) -> String {
    let first_seq = first
        .and_then(|c| c.trim_start().split('.').next())
        .and_then(|n| n.trim().parse::<usize>().ok());
    match first_seq {
        Some(1) | None => format!("calls made ({shown}):"),
        Some(_) => format!("calls made (the last {shown}):"),
    }
}

/// `v`'s `Debug`, cut at [`SHOWN`] characters: formatting stops there, so a
/// batch of ten thousand points costs no more than a short one.
pub(crate) fn short(v: &dyn Debug) -> String {
    struct Upto(String);
    impl fmt::Write for Upto {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let room = SHOWN.saturating_sub(self.0.chars().count());
            if s.chars().count() <= room {
                self.0.push_str(s);
                Ok(())
            } else {
                self.0.extend(s.chars().take(room));
                Err(fmt::Error)
            }
        }
    }
    use std::fmt::Write as _;
    let mut w = Upto(String::new());
    if write!(w, "{v:?}").is_err() {
        w.0.push('…');
    }
    w.0
}

/// A short, readable form of an answer: records by collection, id and
/// version, events by id and position, points by time and series.
trait Brief {
    fn brief(&self) -> String;
}

/// `s` cut at `n` characters.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

impl Brief for Record {
    fn brief(&self) -> String {
        let expires = self
            .expires_at
            .map_or(String::new(), |t| format!(" expires {t}"));
        format!(
            "{}/{} v{}{expires} {}",
            self.collection,
            self.id,
            self.version,
            cut(&self.data.to_string(), 40)
        )
    }
}

impl Brief for Found {
    fn brief(&self) -> String {
        self.record.brief()
    }
}

impl Brief for Event {
    fn brief(&self) -> String {
        format!(
            "#{} at position {} {} {} {}",
            self.id,
            self.position,
            self.kind,
            self.occurred_at,
            cut(&self.data.to_string(), 40)
        )
    }
}

impl Brief for StoredMetric {
    fn brief(&self) -> String {
        let p = &self.point;
        format!(
            "{} {}/{}={} (seq {})",
            p.at, p.component, p.name, p.value, self.seq
        )
    }
}

impl<T: Brief> Brief for Option<T> {
    fn brief(&self) -> String {
        self.as_ref().map_or("none".into(), Brief::brief)
    }
}

/// The answers with nothing shorter to say than their `Debug`.
macro_rules! brief_by_debug {
    ($($t:ty),*) => {$(
        impl Brief for $t {
            fn brief(&self) -> String {
                short(self)
            }
        }
    )*};
}
brief_by_debug!(
    (),
    bool,
    u64,
    String,
    Appended,
    AggregateRow,
    Claim,
    IdempotencyEntry,
    Index,
    Applied,
    Counts,
    PurgeReport
);

fn many<T: Brief>(v: &[T]) -> String {
    let mut items = String::new();
    for (i, x) in v.iter().enumerate() {
        if items.chars().count() > 2 * SHOWN {
            items.push_str(&format!(", … {} more", v.len() - i));
            break;
        }
        if i > 0 {
            items.push_str(", ");
        }
        items.push_str(&x.brief());
    }
    match v.len() {
        0 => "ok: nothing".into(),
        1 => format!("ok: 1 item: {items}"),
        n => format!("ok: {n} items: [{items}]"),
    }
}

fn one<T: Brief>(v: &T) -> String {
    format!("ok: {}", v.brief())
}

/// A store that notes every call in a [`CallLog`].
pub(crate) struct Traced {
    inner: Arc<dyn Store>,
    log: Arc<CallLog>,
    store: usize,
}

impl Debug for Traced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Transparent: cases that print a store see the one beneath.
        self.inner.fmt(f)
    }
}

impl Traced {
    /// Note every call of `inner` in `log`.
    pub(crate) fn wrap(inner: Arc<dyn Store>, log: &Arc<CallLog>) -> Arc<dyn Store> {
        let store = log.next_store();
        Arc::new(Traced {
            inner,
            log: log.clone(),
            store,
        })
    }

    async fn noted<T>(
        &self,
        op: &'static str,
        input: String,
        call: impl Future<Output = Result<T>>,
        answer: impl FnOnce(&T) -> String,
    ) -> Result<T> {
        let seq = self.log.start(self.store, op, input);
        let started = Instant::now();
        let r = call.await;
        let outcome = match &r {
            Ok(v) => answer(v),
            Err(e) => format!("{} error: {}", e.kind(), error_chain(e)),
        };
        self.log
            .end(seq, outcome, started.elapsed().as_secs_f64() * 1e3);
        r
    }
}

impl Traced {
    /// COM-11: a listing answers at most the `limit` it was asked for.
    fn at_most<T>(&self, op: &'static str, limit: usize, r: Result<Vec<T>>) -> Result<Vec<T>> {
        if let Ok(v) = &r {
            if v.len() > limit {
                let what = format!(
                    "COM-11: {op} answered {} items when asked for at most {limit} \
                     (the handle asks for one more than a page holds, so it may hide this; \
                     a layer or any other caller of the store does not)",
                    v.len()
                );
                self.log.break_rule(what);
            }
        }
        r
    }
}

fn input(cx: &Cx, op: &dyn Debug) -> String {
    match short(op) {
        unit if unit == "()" => format!("ns={:?}", cx.ns()),
        op => format!("ns={:?} {op}", cx.ns()),
    }
}

impl Layer for Traced {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// The calls without an override below (admin calls): noted by name.
    fn around<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        call: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(self.noted(op, String::new(), call, |_: &T| "ok".into()))
    }
}

/// One override per data call, each noting its input and its answer.
macro_rules! noted {
    ($self:ident, $cx:ident, $op:literal, $input:expr, $call:expr, $answer:expr) => {
        $self.noted($op, input($cx, $input), $call, $answer).await
    };
}

#[async_trait]
impl ForwardMetrics for Traced {
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()> {
        noted!(
            self,
            cx,
            "write_metrics",
            op,
            self.inner.write_metrics(cx, op),
            one
        )
    }
    async fn read_metrics(&self, cx: &Cx, query: &MetricQuery) -> Result<Vec<StoredMetric>> {
        let r = noted!(
            self,
            cx,
            "read_metrics",
            query,
            self.inner.read_metrics(cx, query),
            |v: &Vec<_>| many(v)
        );
        self.at_most("read_metrics", query.limit, r)
    }
    async fn list_components(&self, cx: &Cx) -> Result<Vec<String>> {
        noted!(
            self,
            cx,
            "list_components",
            &(),
            self.inner.list_components(cx),
            |v: &Vec<_>| many(v)
        )
    }
    async fn list_metric_names(&self, cx: &Cx, op: &ListMetricNames<'_>) -> Result<Vec<String>> {
        noted!(
            self,
            cx,
            "list_metric_names",
            op,
            self.inner.list_metric_names(cx, op),
            |v: &Vec<_>| many(v)
        )
    }
    async fn aggregate(&self, cx: &Cx, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        noted!(
            self,
            cx,
            "aggregate",
            query,
            self.inner.aggregate(cx, query),
            |v: &Vec<_>| many(v)
        )
    }
}

#[async_trait]
impl ForwardEvents for Traced {
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>> {
        noted!(
            self,
            cx,
            "append",
            op,
            self.inner.append(cx, op),
            |v: &Vec<_>| many(v)
        )
    }
    async fn list_events(&self, cx: &Cx, query: &EventQuery) -> Result<Vec<Event>> {
        let r = noted!(
            self,
            cx,
            "list_events",
            query,
            self.inner.list_events(cx, query),
            |v: &Vec<_>| many(v)
        );
        self.at_most("list_events", query.limit, r)
    }
    async fn read_log(&self, cx: &Cx, op: &ReadLog) -> Result<Vec<Event>> {
        let r = noted!(
            self,
            cx,
            "read_log",
            op,
            self.inner.read_log(cx, op),
            |v: &Vec<_>| many(v)
        );
        self.at_most("read_log", op.limit, r)
    }
}

#[async_trait]
impl ForwardIdempotency for Traced {
    async fn claim(&self, cx: &Cx, op: &ClaimKey<'_>) -> Result<Claim> {
        noted!(self, cx, "claim", op, self.inner.claim(cx, op), one)
    }
    async fn complete(&self, cx: &Cx, op: &CompleteKey<'_>) -> Result<()> {
        noted!(self, cx, "complete", op, self.inner.complete(cx, op), one)
    }
    async fn release(&self, cx: &Cx, op: &ReleaseKey<'_>) -> Result<()> {
        noted!(self, cx, "release", op, self.inner.release(cx, op), one)
    }
    async fn extend(&self, cx: &Cx, op: &ExtendKey<'_>) -> Result<()> {
        noted!(self, cx, "extend", op, self.inner.extend(cx, op), one)
    }
    async fn get_key(&self, cx: &Cx, op: &GetKey<'_>) -> Result<Option<IdempotencyEntry>> {
        noted!(self, cx, "get_key", op, self.inner.get_key(cx, op), one)
    }
    async fn scan_keys(&self, cx: &Cx, op: &ScanKeys<'_>) -> Result<Vec<IdempotencyEntry>> {
        let r = noted!(
            self,
            cx,
            "scan_keys",
            op,
            self.inner.scan_keys(cx, op),
            |v: &Vec<_>| many(v)
        );
        self.at_most("scan_keys", op.limit, r)
    }
}

#[async_trait]
impl ForwardRecords for Traced {
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        noted!(self, cx, "put", put, self.inner.put(cx, put), one)
    }
    async fn incr(&self, cx: &Cx, op: &IncrField<'_>) -> Result<Record> {
        noted!(self, cx, "incr", op, self.inner.incr(cx, op), one)
    }
    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>> {
        noted!(self, cx, "get", op, self.inner.get(cx, op), one)
    }
    async fn delete(&self, cx: &Cx, op: &DeleteRecord<'_>) -> Result<()> {
        noted!(self, cx, "delete", op, self.inner.delete(cx, op), one)
    }
    async fn list_records(&self, cx: &Cx, op: &ListRecords<'_>) -> Result<Vec<Record>> {
        let r = noted!(
            self,
            cx,
            "list_records",
            op,
            self.inner.list_records(cx, op),
            |v: &Vec<_>| many(v)
        );
        self.at_most("list_records", op.limit, r)
    }
    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>> {
        noted!(
            self,
            cx,
            "list_collections",
            &(),
            self.inner.list_collections(cx),
            |v: &Vec<_>| many(v)
        )
    }
    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64> {
        noted!(self, cx, "count", op, self.inner.count(cx, op), one)
    }
    async fn create_index(&self, cx: &Cx, index: &Index) -> Result<bool> {
        noted!(
            self,
            cx,
            "create_index",
            index,
            self.inner.create_index(cx, index),
            one
        )
    }
    async fn list_indexes(&self, cx: &Cx, op: &ListIndexes<'_>) -> Result<Vec<Index>> {
        noted!(
            self,
            cx,
            "list_indexes",
            op,
            self.inner.list_indexes(cx, op),
            |v: &Vec<_>| many(v)
        )
    }
    async fn find(&self, cx: &Cx, op: &FindRecords<'_>) -> Result<Vec<Found>> {
        let r = noted!(self, cx, "find", op, self.inner.find(cx, op), |v: &Vec<
            _,
        >| {
            many(v)
        });
        self.at_most("find", op.limit, r)
    }
}

#[async_trait]
impl ForwardBatches for Traced {
    async fn apply(&self, cx: &Cx, op: &Apply<'_>) -> Result<Vec<Applied>> {
        noted!(
            self,
            cx,
            "apply",
            op,
            self.inner.apply(cx, op),
            |v: &Vec<_>| many(v)
        )
    }
}

#[async_trait]
impl ForwardAdmin for Traced {
    async fn counts(&self, cx: &Cx) -> Result<Counts> {
        noted!(self, cx, "counts", &(), self.inner.counts(cx), one)
    }
    async fn purge(&self, cx: &Cx, cutoffs: &PurgeCutoffs) -> Result<PurgeReport> {
        noted!(
            self,
            cx,
            "purge",
            cutoffs,
            self.inner.purge(cx, cutoffs),
            one
        )
    }
    async fn clear(&self, cx: &Cx) -> Result<Counts> {
        noted!(self, cx, "clear", &(), self.inner.clear(cx), one)
    }
}
