//! Metrics: append points, read them in order, aggregate.

use async_trait::async_trait;
use persistkit_core::backend::aggregate_sorted;
use persistkit_core::op::{ListMetricNames, WriteMetrics};
use persistkit_core::{
    AggregateQuery, AggregateRow, Cx, MetricPoint, MetricQuery, MetricStore, Result, StoredMetric,
    Timestamp,
};

use crate::store::BTreeStore;

fn matches(
    component: &Option<String>,
    name: &Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    p: &MetricPoint,
) -> bool {
    component.as_ref().is_none_or(|c| *c == p.component)
        && name.as_ref().is_none_or(|n| *n == p.name)
        && from.is_none_or(|f| p.at >= f)
        && to.is_none_or(|t| p.at < t)
}

#[async_trait]
impl MetricStore for BTreeStore {
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()> {
        let mut s = self.lock()?;
        let mut seq = s.next_seq;
        let space = s.spaces.entry(cx.ns().to_string()).or_default();
        for p in op.points {
            seq += 1;
            let key = (p.at, p.component.clone(), p.name.clone(), seq);
            space.metrics.insert(key, p.clone());
        }
        s.next_seq = seq;
        Ok(())
    }

    async fn read_metrics(&self, cx: &Cx, q: &MetricQuery) -> Result<Vec<StoredMetric>> {
        let s = self.lock()?;
        let Some(space) = s.spaces.get(cx.ns()) else {
            return Ok(Vec::new());
        };
        let after = q
            .after
            .as_ref()
            .map(|k| (k.at, k.component.clone(), k.name.clone(), k.seq));
        Ok(space
            .metrics
            .iter()
            .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
            .filter(|(_, p)| matches(&q.component, &q.name, q.from, q.to, p))
            .take(q.limit)
            .map(|(k, p)| StoredMetric {
                seq: k.3,
                point: p.clone(),
            })
            .collect())
    }

    async fn list_components(&self, cx: &Cx) -> Result<Vec<String>> {
        let s = self.lock()?;
        let mut v: Vec<String> = s
            .spaces
            .get(cx.ns())
            .map(|sp| sp.metrics.values().map(|p| p.component.clone()).collect())
            .unwrap_or_default();
        v.sort();
        v.dedup();
        Ok(v)
    }

    async fn list_metric_names(&self, cx: &Cx, op: &ListMetricNames<'_>) -> Result<Vec<String>> {
        let s = self.lock()?;
        let mut v: Vec<String> = s
            .spaces
            .get(cx.ns())
            .map(|sp| {
                sp.metrics
                    .values()
                    .filter(|p| p.component == op.component)
                    .map(|p| p.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.dedup();
        Ok(v)
    }

    async fn aggregate(&self, cx: &Cx, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let s = self.lock()?;
        let Some(space) = s.spaces.get(cx.ns()) else {
            return Ok(Vec::new());
        };
        let points: Vec<StoredMetric> = space
            .metrics
            .iter()
            .filter(|(_, p)| matches(&q.component, &q.name, q.from, q.to, p))
            .map(|(k, p)| StoredMetric {
                seq: k.3,
                point: p.clone(),
            })
            .collect();
        Ok(aggregate_sorted(&points, q.bucket, &q.quantiles))
    }
}
