//! Metrics: append-only time series points.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::cx::Cx;
use crate::error::{Error, Result};
use crate::time::Timestamp;

mod fold;
pub mod op;

pub use fold::AggregateFold;

use op::{ListMetricNames, WriteMetrics};

/// Counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// A monotonically increasing count.
    Counter,
    /// A value that goes up and down.
    Gauge,
}

impl MetricKind {
    /// `"counter"` or `"gauge"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }

    /// Parse `"counter"` or `"gauge"`.
    ///
    /// # Errors
    /// `InvalidInput` for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "counter" => Ok(MetricKind::Counter),
            "gauge" => Ok(MetricKind::Gauge),
            other => Err(Error::invalid(format!(
                "metric kind must be counter or gauge, got {other:?}"
            ))),
        }
    }
}

/// A point to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// When it was measured.
    pub at: Timestamp,
    /// The component that reports it.
    pub component: String,
    /// The metric's name.
    pub name: String,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// A finite value.
    pub value: f64,
}

impl MetricPoint {
    /// A gauge point.
    pub fn gauge(at: Timestamp, component: &str, name: &str, value: f64) -> Self {
        MetricPoint {
            at,
            component: component.into(),
            name: name.into(),
            kind: MetricKind::Gauge,
            value,
        }
    }

    /// A counter point.
    pub fn counter(at: Timestamp, component: &str, name: &str, value: f64) -> Self {
        MetricPoint {
            kind: MetricKind::Counter,
            ..Self::gauge(at, component, name, value)
        }
    }
}

/// A stored point, with the insertion sequence the store gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMetric {
    /// Insertion sequence: increases with every point written to the store.
    pub seq: u64,
    /// The point.
    #[serde(flatten)]
    pub point: MetricPoint,
}

/// What to read. `limit` defaults to 1 000 and may be at most 10 000.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricFilter {
    /// Only this component.
    pub component: Option<String>,
    /// Only this metric name.
    pub name: Option<String>,
    /// Inclusive lower bound.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound.
    pub to: Option<Timestamp>,
    /// Page size; `None` means 1 000.
    pub limit: Option<usize>,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
}

/// The position of a point in read order; what a metrics cursor encodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricKey {
    /// Time.
    pub at: Timestamp,
    /// Component.
    pub component: String,
    /// Name.
    pub name: String,
    /// Insertion sequence.
    pub seq: u64,
}

/// A validated metrics read, as a backend receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    /// Only this component.
    pub component: Option<String>,
    /// Only this metric name.
    pub name: Option<String>,
    /// Inclusive lower bound.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound.
    pub to: Option<Timestamp>,
    /// Return at most this many points.
    pub limit: usize,
    /// Return only points strictly after this key in read order.
    pub after: Option<MetricKey>,
}

/// A validated aggregation, as a backend receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateQuery {
    /// Only this component.
    pub component: Option<String>,
    /// Only this metric name.
    pub name: Option<String>,
    /// Inclusive lower bound.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound.
    pub to: Option<Timestamp>,
    /// Bucket width.
    pub bucket: Bucket,
    /// Quantiles to compute per row, each in `[0, 1]`, in the order asked
    /// (see [`quantile_rank`]).
    pub quantiles: Vec<f64>,
}

/// An aggregation bucket: a width in whole seconds, aligned to the Unix
/// epoch, or [`Bucket::WHOLE`], one row per series over the whole range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bucket {
    secs: u64,
    /// One bucket over the whole range (`secs` is then 0).
    whole: bool,
    /// Where buckets are aligned, in microseconds: the epoch, or for a
    /// whole-range aggregate the start of the range (set by the handle).
    origin: i64,
}

/// The width a whole-range bucket computes with, in microseconds: wider
/// than the whole timestamp range, small enough that `x % w + w` of any
/// offset between two timestamps fits an `i64`.
const WHOLE_MICROS: i64 = 1 << 62;

impl Bucket {
    /// One minute.
    pub const MINUTE: Bucket = Bucket::seconds(60);
    /// One hour.
    pub const HOUR: Bucket = Bucket::seconds(3_600);
    /// One day.
    pub const DAY: Bucket = Bucket::seconds(86_400);
    /// No bucket: one row per series over the filter's whole range
    /// `[from, to)`, whose `bucket_start` is `from` (year 1 when the range
    /// has no start) (MET-7).
    pub const WHOLE: Bucket = Bucket {
        secs: 0,
        whole: true,
        origin: 0,
    };

    /// A bucket of `secs` seconds. Validity (1..=10 000 years) is checked when
    /// the aggregation runs.
    pub const fn seconds(secs: u64) -> Self {
        Bucket {
            secs,
            whole: false,
            origin: 0,
        }
    }

    /// The whole-range bucket of a range that starts at `from`, as a backend
    /// receives it: every point at or after `from` falls in the one bucket
    /// that starts there.
    pub fn whole_from(from: Timestamp) -> Self {
        Bucket {
            secs: 0,
            whole: true,
            origin: from.as_micros(),
        }
    }

    /// True for [`Bucket::WHOLE`] (and [`Bucket::whole_from`]).
    pub const fn is_whole(self) -> bool {
        self.whole
    }

    /// The width in seconds (0 for a whole-range bucket).
    pub fn as_secs(self) -> u64 {
        self.secs
    }

    /// The width in microseconds: for a whole-range bucket, 2^62, wider
    /// than any range of timestamps.
    pub fn as_micros(self) -> i64 {
        if self.is_whole() {
            return WHOLE_MICROS;
        }
        i64::try_from(self.secs).unwrap_or(i64::MAX / 1_000_000) * 1_000_000
    }

    /// Where the buckets are aligned: the Unix epoch, or the start of a
    /// whole-range bucket.
    pub fn origin(self) -> Timestamp {
        Timestamp::from_micros(self.origin).unwrap_or(Timestamp::MIN)
    }

    /// The start of the bucket holding `at`:
    /// `origin + floor((at - origin) / width) * width`, the origin being
    /// the epoch except for a whole-range bucket.
    pub fn start_of(self, at: Timestamp) -> Timestamp {
        let w = self.as_micros();
        let x = at.as_micros() - self.origin;
        let start = self.origin + x.div_euclid(w) * w;
        // The floor of an in-range time is at most one width before it; clamp
        // to the representable range for buckets that reach before year 1.
        Timestamp::from_micros(start.max(Timestamp::MIN.as_micros())).expect("clamped")
    }
}

/// One row of an aggregation: one (bucket, component, name) with points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateRow {
    /// Start of the bucket.
    pub bucket_start: Timestamp,
    /// Component.
    pub component: String,
    /// Metric name.
    pub name: String,
    /// Number of points.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// `sum / count`.
    pub avg: f64,
    /// Value of the latest point (ties broken by insertion sequence).
    pub last: f64,
    /// The quantiles asked for, in the order asked: for each `q`, the value
    /// at rank [`quantile_rank`]`(q, count)` among the row's values sorted
    /// ascending (nearest rank, as Postgres's `percentile_disc`). Empty when
    /// none were asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantiles: Vec<f64>,
}

/// The 1-based rank of quantile `q` among `n` sorted values, by the nearest-
/// rank method: `max(1, ceil(q × n))`, with `q × n` computed in `f64`. Every
/// backend computes exactly this (Postgres's `percentile_disc` does), so
/// quantiles agree to the bit.
pub fn quantile_rank(q: f64, n: u64) -> u64 {
    let x = q * n as f64;
    // x is in [0, n]: the cast cannot overflow.
    (x.ceil() as u64).clamp(1, n.max(1))
}

/// The nearest-rank quantiles `qs` of `values`, which this sorts.
pub fn quantiles_of(values: &mut [f64], qs: &[f64]) -> Vec<f64> {
    if values.is_empty() {
        return Vec::new();
    }
    values.sort_by(f64::total_cmp);
    let n = values.len() as u64;
    qs.iter()
        .map(|&q| values[(quantile_rank(q, n) - 1) as usize])
        .collect()
}

/// Filter for an aggregation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AggregateFilter {
    /// Only this component.
    pub component: Option<String>,
    /// Only this metric name.
    pub name: Option<String>,
    /// Inclusive lower bound.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound.
    pub to: Option<Timestamp>,
    /// Quantiles to compute per row (at most 16, each in `[0, 1]`), e.g.
    /// `vec![0.5, 0.95, 0.99]`. Empty: none.
    pub quantiles: Vec<f64>,
}

/// Metric primitives a backend implements. Inputs arrive validated.
///
/// # Contract
/// - `write_metrics` appends every point (identical points are all kept), or
///   none of them.
/// - `read_metrics` orders by `(at, component, name, seq)` ascending, filters
///   by component, name and the half-open range `[from, to)`, and returns
///   only points after `after`.
/// - `list_*` return distinct names sorted byte-wise.
/// - `aggregate` groups by `(bucket start, component, name)`, ordered so,
///   with the quantiles asked for by the nearest-rank method
///   ([`quantile_rank`]).
///
/// # Errors
/// `Unavailable` when the database cannot be reached in time.
#[async_trait]
pub trait MetricStore: Send + Sync {
    /// Append points atomically.
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()>;
    /// Read points in order.
    async fn read_metrics(&self, cx: &Cx, query: &MetricQuery) -> Result<Vec<StoredMetric>>;
    /// Distinct components.
    async fn list_components(&self, cx: &Cx) -> Result<Vec<String>>;
    /// Distinct metric names of a component.
    async fn list_metric_names(&self, cx: &Cx, op: &ListMetricNames<'_>) -> Result<Vec<String>>;
    /// Aggregate points into epoch-aligned buckets.
    async fn aggregate(&self, cx: &Cx, query: &AggregateQuery) -> Result<Vec<AggregateRow>>;
}

/// Build aggregate rows from points already in read order, for backends that
/// aggregate in Rust (the memory oracle).
pub fn aggregate_sorted<'a>(
    points: impl IntoIterator<Item = &'a StoredMetric>,
    bucket: Bucket,
    quantiles: &[f64],
) -> Vec<AggregateRow> {
    use std::collections::BTreeMap;
    // (bucket, component, name) -> (row, (at, seq) of the point that is `last`)
    type Key = (Timestamp, Vec<u8>, Vec<u8>);
    // The row, the (at, seq) of the point that is `last`, and the values
    // when quantiles are asked for.
    type Building = (AggregateRow, (Timestamp, u64), Vec<f64>);
    let mut rows: BTreeMap<Key, Building> = BTreeMap::new();
    for m in points {
        let p = &m.point;
        let start = bucket.start_of(p.at);
        let key = (
            start,
            p.component.as_bytes().to_vec(),
            p.name.as_bytes().to_vec(),
        );
        let e = rows.entry(key).or_insert_with(|| {
            (
                AggregateRow {
                    bucket_start: start,
                    component: p.component.clone(),
                    name: p.name.clone(),
                    count: 0,
                    sum: 0.0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                    avg: 0.0,
                    last: p.value,
                    quantiles: Vec::new(),
                },
                (p.at, m.seq),
                Vec::new(),
            )
        });
        let (row, last_key, values) = e;
        if !quantiles.is_empty() {
            values.push(p.value);
        }
        row.count += 1;
        row.sum += p.value;
        row.min = row.min.min(p.value);
        row.max = row.max.max(p.value);
        if (p.at, m.seq) >= *last_key {
            *last_key = (p.at, m.seq);
            row.last = p.value;
        }
    }
    rows.into_values()
        .map(|(mut r, _, mut values)| {
            r.avg = r.sum / r.count as f64;
            r.quantiles = quantiles_of(&mut values, quantiles);
            r
        })
        .collect()
}
