//! Metrics: batched inserts, windowed reads and aggregates.

use async_trait::async_trait;
use persistkit_core::op::*;
use persistkit_core::*;
use rusqlite::{params, Connection};
use std::sync::OnceLock;

use crate::error::map;
use crate::sql::*;
use crate::store::*;

/// Rows per multi-row metrics INSERT, largest first (6 parameters a row,
/// well under SQLite's 32 766-parameter limit).
pub(crate) const METRIC_CHUNKS: &[usize] = &[500];

/// A metric read with only the predicates `q` uses.
pub(crate) fn read_metrics_statement<'a>(ns: &'a str, q: &'a MetricQuery) -> Query<'a> {
    let mut b = Query::new(READ_METRICS_FROM);
    b.bind(ns);
    metric_filters(&mut b, &q.component, &q.name, q.from, q.to);
    if let Some(k) = &q.after {
        b.push(" AND (at, component, name, seq) > (")
            .bind(k.at.as_micros())
            .push(", ")
            .bind(k.component.as_str())
            .push(", ")
            .bind(k.name.as_str())
            .push(", ")
            .bind(k.seq as i64)
            .push(")");
    }
    b.push(READ_METRICS_ORDER).bind(q.limit as i64);
    b
}

/// The metric filters a call uses, and only those.
pub(crate) fn metric_filters<'a>(
    b: &mut Query<'a>,
    component: &'a Option<String>,
    name: &'a Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) {
    if let Some(c) = component {
        b.push(" AND component = ").bind(c.as_str());
    }
    if let Some(n) = name {
        b.push(" AND name = ").bind(n.as_str());
    }
    if let Some(f) = from {
        b.push(" AND at >= ").bind(f.as_micros());
    }
    if let Some(t) = to {
        b.push(" AND at < ").bind(t.as_micros());
    }
}

/// The points an aggregation folds, in read order (the order
/// `read_metrics` uses, so the time index serves it without a sort): only
/// the columns the fold needs, only the filters the call uses.
pub(crate) fn aggregate_statement<'a>(ns: &'a str, q: &'a AggregateQuery) -> Query<'a> {
    let mut b = Query::new(AGGREGATE_POINTS);
    b.bind(ns);
    metric_filters(&mut b, &q.component, &q.name, q.from, q.to);
    b.push(AGGREGATE_ORDER);
    b
}

/// The multi-row INSERT of `rows` points (one of [`METRIC_CHUNKS`]).
pub(crate) fn chunk_insert_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        METRIC_CHUNKS
            .iter()
            .map(|&n| {
                format!(
                    "{INSERT_METRICS_PREFIX}VALUES {}",
                    vec!["(?, ?, ?, ?, ?, ?)"; n].join(", ")
                )
            })
            .collect()
    });
    let i = METRIC_CHUNKS.iter().position(|&n| n == rows).unwrap_or(0);
    &all[i]
}

/// Insert `points` into `ns` inside the caller's transaction: in
/// multi-row statements of the sizes in [`METRIC_CHUNKS`], largest first,
/// and the rest one row at a time.
pub(crate) fn insert_metrics(c: &Connection, ns: &str, mut points: &[MetricPoint]) -> Result<()> {
    for &size in METRIC_CHUNKS {
        let mut chunks = points.chunks_exact(size);
        if chunks.len() > 0 {
            let mut st = c.prepare_cached(chunk_insert_sql(size)).map_err(map)?;
            for chunk in &mut chunks {
                for (i, p) in chunk.iter().enumerate() {
                    let at = i * 6;
                    st.raw_bind_parameter(at + 1, ns).map_err(map)?;
                    st.raw_bind_parameter(at + 2, p.at.as_micros())
                        .map_err(map)?;
                    st.raw_bind_parameter(at + 3, &p.component).map_err(map)?;
                    st.raw_bind_parameter(at + 4, &p.name).map_err(map)?;
                    st.raw_bind_parameter(at + 5, p.kind.as_str())
                        .map_err(map)?;
                    st.raw_bind_parameter(at + 6, p.value).map_err(map)?;
                }
                st.raw_execute().map_err(map)?;
            }
        }
        points = chunks.remainder();
    }
    if !points.is_empty() {
        let mut st = c.prepare_cached(INSERT_METRIC).map_err(map)?;
        for p in points {
            st.execute(params![
                ns,
                p.at.as_micros(),
                p.component,
                p.name,
                p.kind.as_str(),
                p.value
            ])
            .map_err(map)?;
        }
    }
    Ok(())
}

#[async_trait]
impl MetricStore for SqliteStore {
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()> {
        let ns = cx.ns();
        let points = op.points;
        self.pool
            .run_by(cx.deadline(), |c| {
                let tx = immediate(c)?;
                insert_metrics(&tx, ns, points)?;
                tx.commit().map_err(map)
            })
            .await
    }

    async fn read_metrics(&self, cx: &Cx, q: &MetricQuery) -> Result<Vec<StoredMetric>> {
        let ns = cx.ns();
        let b = read_metrics_statement(ns, q);
        self.pool
            .run_by(cx.deadline(), |c| b.rows(c, metric_row))
            .await
    }

    async fn list_components(&self, cx: &Cx) -> Result<Vec<String>> {
        let ns = cx.ns();
        self.pool
            .run_by(cx.deadline(), |c| {
                all(c, LIST_COMPONENTS, [ns], |r| col(r, 0, "component"))
            })
            .await
    }

    async fn list_metric_names(&self, cx: &Cx, op: &ListMetricNames<'_>) -> Result<Vec<String>> {
        let ns = cx.ns();
        let component = op.component;
        self.pool
            .run_by(cx.deadline(), |c| {
                all(c, LIST_METRIC_NAMES, [ns, component], |r| col(r, 0, "name"))
            })
            .await
    }

    async fn aggregate(&self, cx: &Cx, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let ns = cx.ns();
        let b = aggregate_statement(ns, q);
        self.pool
            .run_by(cx.deadline(), |c| {
                // One ordered pass, folded here: no sort of the points in
                // SQL, and sums in read order, as on every backend.
                let mut fold = backend::AggregateFold::new(q.bucket, &q.quantiles);
                b.each(c, |r| {
                    let text = |i: usize, what: &str| {
                        r.get_ref(i)
                            .map_err(map)?
                            .as_str()
                            .map_err(|e| Error::internal(format!("{what}: {e}")))
                    };
                    fold.push(
                        ts(col::<i64>(r, 0, "metrics.at")?)?,
                        text(1, "metrics.component")?,
                        text(2, "metrics.name")?,
                        col(r, 3, "metrics.value")?,
                    );
                    Ok(())
                })?;
                Ok(fold.finish())
            })
            .await
    }
}
