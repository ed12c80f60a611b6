//! Aggregation in one ordered pass, for backends that can hand over the
//! points of an aggregate in read order without collecting them.

use std::collections::HashMap;

use super::{quantiles_of, AggregateRow, Bucket};
use crate::time::Timestamp;

/// Up to this many series in a bucket are found by a scan, not a map.
const SCANNED: usize = 16;

/// Folds points, given one at a time in read order (time, component, name,
/// insertion sequence), into the rows of an aggregate, keeping only the
/// rows of the current bucket: no sort, and no copy of a point. `last` is
/// the last point of its row, sums add up in read order (as the memory
/// oracle's do, so results agree to the bit), and quantiles are by nearest
/// rank over the row's values.
///
/// ```
/// use persistkit_core::backend::AggregateFold;
/// use persistkit_core::{Bucket, Timestamp};
/// let mut fold = AggregateFold::new(Bucket::MINUTE, &[0.5]);
/// for (s, v) in [(0, 1.0), (30, 3.0), (61, 5.0)] {
///     fold.push(Timestamp::from_secs(s).unwrap(), "api", "latency", v);
/// }
/// let rows = fold.finish();
/// assert_eq!((rows[0].count, rows[0].last, rows[0].quantiles[0]), (2, 3.0, 1.0));
/// assert_eq!((rows[1].count, rows[1].sum), (1, 5.0));
/// ```
#[derive(Debug)]
pub struct AggregateFold<'q> {
    bucket: Bucket,
    quantiles: &'q [f64],
    current: Option<Timestamp>,
    /// The row the last point went to: the next point is most often of
    /// the same series.
    last: usize,
    /// component → name → index in `rows`, for the current bucket, built
    /// only once a bucket holds many series (a few are scanned).
    index: HashMap<String, HashMap<String, usize>>,
    /// The rows of the current bucket, with their values when quantiles
    /// are asked for.
    rows: Vec<(AggregateRow, Vec<f64>)>,
    done: Vec<AggregateRow>,
}

impl<'q> AggregateFold<'q> {
    /// An empty aggregate into `bucket`-wide rows, with `quantiles`.
    pub fn new(bucket: Bucket, quantiles: &'q [f64]) -> Self {
        AggregateFold {
            bucket,
            quantiles,
            current: None,
            last: 0,
            index: HashMap::new(),
            rows: Vec::new(),
            done: Vec::new(),
        }
    }

    /// Add one point. Points must come in read order; a point of an
    /// earlier bucket than the last one is a caller's bug (checked in debug
    /// builds).
    pub fn push(&mut self, at: Timestamp, component: &str, name: &str, value: f64) {
        let start = self.bucket.start_of(at);
        if self.current != Some(start) {
            debug_assert!(
                self.current.is_none_or(|c| c < start),
                "points must come in read order"
            );
            self.flush();
            self.current = Some(start);
        }
        let found = self.find(component, name);
        let i = match found {
            Some(i) => i,
            None => {
                let i = self.rows.len();
                self.rows.push((
                    AggregateRow {
                        bucket_start: start,
                        component: component.to_string(),
                        name: name.to_string(),
                        count: 0,
                        sum: 0.0,
                        min: f64::INFINITY,
                        max: f64::NEG_INFINITY,
                        avg: 0.0,
                        last: value,
                        quantiles: Vec::new(),
                    },
                    Vec::new(),
                ));
                if i >= SCANNED {
                    if i == SCANNED {
                        // Many series: index the ones scanned so far.
                        for (j, (r, _)) in self.rows[..SCANNED].iter().enumerate() {
                            self.index
                                .entry(r.component.clone())
                                .or_default()
                                .insert(r.name.clone(), j);
                        }
                    }
                    self.index
                        .entry(component.to_string())
                        .or_default()
                        .insert(name.to_string(), i);
                }
                i
            }
        };
        self.last = i;
        let (row, values) = &mut self.rows[i];
        row.count += 1;
        row.sum += value;
        row.min = row.min.min(value);
        row.max = row.max.max(value);
        row.last = value;
        if !self.quantiles.is_empty() {
            values.push(value);
        }
    }

    /// The row of the current bucket for this series, if it has one.
    fn find(&self, component: &str, name: &str) -> Option<usize> {
        let is = |r: &AggregateRow| r.component == component && r.name == name;
        if self.rows.get(self.last).is_some_and(|(r, _)| is(r)) {
            return Some(self.last);
        }
        if self.rows.len() <= SCANNED {
            return self.rows.iter().position(|(r, _)| is(r));
        }
        self.index
            .get(component)
            .and_then(|names| names.get(name))
            .copied()
    }

    /// Close the current bucket: its rows by component and name, byte-wise.
    fn flush(&mut self) {
        self.index.clear();
        self.last = 0;
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_by(|(a, _), (b, _)| (&a.component, &a.name).cmp(&(&b.component, &b.name)));
        for (mut row, mut values) in rows {
            row.avg = row.sum / row.count as f64;
            row.quantiles = quantiles_of(&mut values, self.quantiles);
            self.done.push(row);
        }
    }

    /// The rows, by bucket, component and name.
    pub fn finish(mut self) -> Vec<AggregateRow> {
        self.flush();
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{aggregate_sorted, MetricPoint, StoredMetric};

    /// More series than a bucket scans, so the map is used too.
    const SERIES: [(&str, &str); 20] = [
        ("api", "rps"),
        ("api", "latency"),
        ("db", "rps"),
        ("Z", "é"),
        ("a", "1"),
        ("a", "2"),
        ("a", "3"),
        ("a", "4"),
        ("a", "5"),
        ("a", "6"),
        ("b", "1"),
        ("b", "2"),
        ("b", "3"),
        ("b", "4"),
        ("b", "5"),
        ("b", "6"),
        ("c", "1"),
        ("c", "2"),
        ("c", "3"),
        ("c", "4"),
    ];

    /// The fold agrees to the bit with the oracle's aggregation, on many
    /// series, buckets that skip, ties in time, negative times and
    /// quantiles.
    #[test]
    fn the_fold_agrees_with_aggregate_sorted() {
        let mut points = Vec::new();
        let mut seq = 0;
        for i in 0..1_000i64 {
            // Times repeat (ties), jump over empty buckets and start
            // before the epoch.
            let at =
                Timestamp::from_micros(-90_000_000 + (i / 3) * 7_000_000 + (i % 2) * 13).unwrap();
            for (c, n) in SERIES {
                if (i + c.len() as i64) % 3 == 0 {
                    continue;
                }
                seq += 1;
                points.push(StoredMetric {
                    seq,
                    point: MetricPoint::gauge(at, c, n, ((i * 37) % 101) as f64 * 0.1 - 3.3),
                });
            }
        }
        // Read order: time, component, name, sequence.
        points.sort_by(|a, b| {
            (a.point.at, &a.point.component, &a.point.name, a.seq).cmp(&(
                b.point.at,
                &b.point.component,
                &b.point.name,
                b.seq,
            ))
        });
        for (bucket, qs) in [
            (Bucket::MINUTE, vec![]),
            (Bucket::MINUTE, vec![0.0, 0.5, 0.99, 1.0]),
            (Bucket::HOUR, vec![0.25]),
        ] {
            let mut fold = AggregateFold::new(bucket, &qs);
            for m in &points {
                fold.push(m.point.at, &m.point.component, &m.point.name, m.point.value);
            }
            let folded = fold.finish();
            let oracle = aggregate_sorted(&points, bucket, &qs);
            assert_eq!(folded.len(), oracle.len());
            for (f, o) in folded.iter().zip(&oracle) {
                assert_eq!(format!("{f:?}"), format!("{o:?}"));
            }
        }
        assert!(AggregateFold::new(Bucket::MINUTE, &[]).finish().is_empty());
    }
}
