//! Metrics: COPY and UNNEST ingest, windowed reads and aggregates.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use persistkit_core::op::*;
use persistkit_core::*;
use sqlx::postgres::PgConnection;
use sqlx::{Postgres, QueryBuilder};

use crate::error::map;
use crate::sql::*;
use crate::store::*;

/// Batches at least this large go in with binary COPY; smaller ones with
/// one UNNEST statement, which costs fewer round trips.
pub(crate) const COPY_FROM: usize = 1_000;

/// Microseconds from the Unix epoch to Postgres's (2000-01-01).
pub(crate) const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// `points` in Postgres's binary COPY format, for the columns of
/// [`COPY_METRICS`].
pub(crate) fn binary_copy(ns: &str, points: &[MetricPoint]) -> Result<Vec<u8>> {
    fn text(out: &mut Vec<u8>, s: &str) -> Result<()> {
        let len = i32::try_from(s.len()).map_err(|_| Error::invalid("text too long for COPY"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(s.as_bytes());
        Ok(())
    }
    let mut out = Vec::with_capacity(19 + points.len() * 80);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension
    for p in points {
        out.extend_from_slice(&6i16.to_be_bytes());
        text(&mut out, ns)?;
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&(p.at.as_micros() - PG_EPOCH_US).to_be_bytes());
        text(&mut out, &p.component)?;
        text(&mut out, &p.name)?;
        text(&mut out, p.kind.as_str())?;
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&p.value.to_bits().to_be_bytes());
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(out)
}

/// The metric filters a call uses, and only those.
pub(crate) fn metric_filters(
    b: &mut QueryBuilder<Postgres>,
    component: &Option<String>,
    name: &Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) {
    if let Some(c) = component {
        b.push(" AND component = ").push_bind(c.clone());
    }
    if let Some(n) = name {
        b.push(" AND name = ").push_bind(n.clone());
    }
    if let Some(f) = from {
        b.push(" AND at >= ").push_bind(dt(f));
    }
    if let Some(t) = to {
        b.push(" AND at < ").push_bind(dt(t));
    }
}

#[async_trait]
impl MetricStore for PgStore {
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()> {
        let ns = cx.ns();
        let points = op.points;
        if points.len() >= COPY_FROM {
            let rows = binary_copy(ns, points)?;
            let sql = self.sql.render(COPY_METRICS);
            one!(self, |c| async {
                let mut copy = c.copy_in_raw(&sql).await.map_err(map)?;
                copy.send(rows).await.map_err(map)?;
                copy.finish().await.map_err(map)
            }
            .await)?;
            return Ok(());
        }
        // One statement per call: UNNEST keeps the batch atomic and fast.
        let at: Vec<DateTime<Utc>> = points.iter().map(|p| dt(p.at)).collect();
        let component: Vec<&str> = points.iter().map(|p| p.component.as_str()).collect();
        let name: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
        let kind: Vec<&str> = points.iter().map(|p| p.kind.as_str()).collect();
        let value: Vec<f64> = points.iter().map(|p| p.value).collect();
        one!(self, |c| self
            .q(INSERT_METRICS)
            .bind(ns)
            .bind(at)
            .bind(component)
            .bind(name)
            .bind(kind)
            .bind(value)
            .execute(&mut *c)
            .await
            .map_err(map))?;
        Ok(())
    }

    async fn read_metrics(&self, cx: &Cx, q: &MetricQuery) -> Result<Vec<StoredMetric>> {
        let ns = cx.ns();
        let make = || {
            let mut b = QueryBuilder::<Postgres>::new(self.sql.render(READ_METRICS_FROM));
            b.push_bind(ns.to_string());
            metric_filters(&mut b, &q.component, &q.name, q.from, q.to);
            if let Some(k) = &q.after {
                b.push(" AND (at, component, name, seq) > (")
                    .push_bind(dt(k.at))
                    .push(", ")
                    .push_bind(k.component.clone())
                    .push(", ")
                    .push_bind(k.name.clone())
                    .push(", ")
                    .push_bind(k.seq as i64)
                    .push(")");
            }
            b.push(READ_METRICS_ORDER).push_bind(q.limit as i64);
            b
        };
        let rows = self.fetch_built(make).await?;
        rows.iter().map(metric_row).collect()
    }

    async fn list_components(&self, cx: &Cx) -> Result<Vec<String>> {
        let ns = cx.ns();
        one!(read self, |c| self
            .qs(LIST_COMPONENTS)
            .bind(ns)
            .fetch_all(&mut *c)
            .await
            .map_err(map))
    }

    async fn list_metric_names(&self, cx: &Cx, op: &ListMetricNames<'_>) -> Result<Vec<String>> {
        let ns = cx.ns();
        let component = op.component;
        one!(read self, |c| self
            .qs(LIST_METRIC_NAMES)
            .bind(ns)
            .bind(component)
            .fetch_all(&mut *c)
            .await
            .map_err(map))
    }

    async fn aggregate(&self, cx: &Cx, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let ns = cx.ns();
        if let (Some(component), Some(name)) = (&q.component, &q.name) {
            // One series: one ordered pass over its index range, folded
            // here, which sums in read order as the memory oracle does.
            let make = || {
                let mut b = QueryBuilder::<Postgres>::new(self.sql.render(AGGREGATE_SERIES));
                b.push_bind(ns.to_string());
                metric_filters(&mut b, &q.component, &q.name, q.from, q.to);
                b.push(AGGREGATE_SERIES_ORDER);
                b
            };
            let rows = self.fetch_built(make).await?;
            let mut fold = backend::AggregateFold::new(q.bucket, &q.quantiles);
            for r in &rows {
                fold.push(
                    ts(col(r, 0, "metrics.at")?)?,
                    component,
                    name,
                    col(r, 1, "metrics.value")?,
                );
            }
            return Ok(fold.finish());
        }
        let make = || {
            let mut b = QueryBuilder::<Postgres>::new(self.sql.render(AGGREGATE_HEAD));
            b.push_bind(ns.to_string());
            metric_filters(&mut b, &q.component, &q.name, q.from, q.to);
            let mut rest = AGGREGATE_BUCKETS;
            while let Some(i) = rest.find('{') {
                b.push(&rest[..i]);
                let (value, len) = if rest[i..].starts_with("{w}") {
                    (q.bucket.as_micros(), 3)
                } else if rest[i..].starts_with("{o}") {
                    (q.bucket.origin().as_micros(), 3)
                } else {
                    b.push("{");
                    rest = &rest[i + 1..];
                    continue;
                };
                b.push_bind(value);
                rest = &rest[i + len..];
            }
            b.push(rest);
            if !q.quantiles.is_empty() {
                let mut parts = AGGREGATE_QUANTILES.split("{q}");
                b.push(parts.next().unwrap_or_default());
                for part in parts {
                    b.push_bind(q.quantiles.clone()).push(part);
                }
            }
            b.push(AGGREGATE_GROUP);
            b
        };
        let rows = self.fetch_built(make).await?;
        rows.iter()
            .map(|r| {
                let count = seq(r, 3, "count")?;
                let sum: f64 = col(r, 4, "sum")?;
                Ok(AggregateRow {
                    bucket_start: Timestamp::from_micros(
                        col::<i64>(r, 0, "bucket")?.max(Timestamp::MIN.as_micros()),
                    )?,
                    component: col(r, 1, "metrics.component")?,
                    name: col(r, 2, "metrics.name")?,
                    count,
                    sum,
                    min: col(r, 5, "min")?,
                    max: col(r, 6, "max")?,
                    avg: sum / count as f64,
                    last: col(r, 7, "last")?,
                    quantiles: if q.quantiles.is_empty() {
                        Vec::new()
                    } else {
                        col(r, 8, "quantiles")?
                    },
                })
            })
            .collect()
    }
}
