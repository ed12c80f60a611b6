//! Metrics: points ordered by time, then series and sequence.

use async_trait::async_trait;
use persistkit_core::backend::aggregate_sorted;
use persistkit_core::op::*;
use persistkit_core::Cx;
use persistkit_core::{
    AggregateQuery, AggregateRow, MetricPoint, MetricQuery, MetricStore, Result, StoredMetric,
    Timestamp,
};
use std::ops::Bound;

use crate::state::*;
use crate::store::*;

pub(crate) fn order_of(m: &StoredMetric) -> MetricOrder {
    (
        m.point.at,
        m.point.component.clone(),
        m.point.name.clone(),
        m.seq,
    )
}

pub(crate) fn matches_metric(
    q_component: &Option<String>,
    q_name: &Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    p: &MetricPoint,
) -> bool {
    q_component.as_ref().is_none_or(|c| *c == p.component)
        && q_name.as_ref().is_none_or(|n| *n == p.name)
        && from.is_none_or(|f| p.at >= f)
        && to.is_none_or(|t| p.at < t)
}

#[async_trait]
impl MetricStore for MemoryStore {
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()> {
        let ns = cx.ns();
        let points = op.points;
        let mut s = self.lock()?;
        let mut seq = s.next_seq;
        let series = s.metrics.entry(ns.to_string()).or_default();
        for p in points {
            seq += 1;
            let m = StoredMetric {
                seq,
                point: p.clone(),
            };
            series.insert(order_of(&m), m);
        }
        s.next_seq = seq;
        Ok(())
    }

    async fn read_metrics(&self, cx: &Cx, q: &MetricQuery) -> Result<Vec<StoredMetric>> {
        let ns = cx.ns();
        let s = self.lock()?;
        let Some(series) = s.metrics.get(ns) else {
            return Ok(Vec::new());
        };
        let lower = match &q.after {
            Some(k) => Bound::Excluded((k.at, k.component.clone(), k.name.clone(), k.seq)),
            None => Bound::Unbounded,
        };
        Ok(series
            .range((lower, Bound::Unbounded))
            .map(|(_, m)| m)
            .filter(|m| matches_metric(&q.component, &q.name, q.from, q.to, &m.point))
            .take(q.limit)
            .cloned()
            .collect())
    }

    async fn list_components(&self, cx: &Cx) -> Result<Vec<String>> {
        let ns = cx.ns();
        let s = self.lock()?;
        let mut v: Vec<String> = s
            .metrics
            .get(ns)
            .map(|m| m.values().map(|m| m.point.component.clone()).collect())
            .unwrap_or_default();
        v.sort();
        v.dedup();
        Ok(v)
    }

    async fn list_metric_names(&self, cx: &Cx, op: &ListMetricNames<'_>) -> Result<Vec<String>> {
        let ns = cx.ns();
        let component = op.component;
        let s = self.lock()?;
        let mut v: Vec<String> = s
            .metrics
            .get(ns)
            .map(|m| {
                m.values()
                    .filter(|m| m.point.component == component)
                    .map(|m| m.point.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.dedup();
        Ok(v)
    }

    async fn aggregate(&self, cx: &Cx, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let ns = cx.ns();
        let s = self.lock()?;
        let Some(series) = s.metrics.get(ns) else {
            return Ok(Vec::new());
        };
        let points = series
            .values()
            .filter(|m| matches_metric(&q.component, &q.name, q.from, q.to, &m.point));
        Ok(aggregate_sorted(points, q.bucket, &q.quantiles))
    }
}
