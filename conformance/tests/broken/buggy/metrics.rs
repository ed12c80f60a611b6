//! Planted bugs in metrics: partial batches, lossy times, cut names, locale sorts, interpolated quantiles, acknowledgement before commit.

use super::*;

#[async_trait]
impl MetricStore for Buggy {
    async fn write_metrics(&self, cx: &Cx, op: &WriteMetrics<'_>) -> Result<()> {
        let points = op.points;
        if self.bug == Bug::PartialBatch && points.len() > 1 {
            return self
                .inner
                .write_metrics(cx, &WriteMetrics::new(&points[..points.len() / 2]))
                .await;
        }
        match self.bug {
            Bug::AckBeforeCommit => {
                let (inner, cx, points) = (self.inner.clone(), cx.clone(), points.to_vec());
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    let _ = inner.write_metrics(&cx, &WriteMetrics::new(&points)).await;
                });
                Ok(())
            }
            Bug::PointByPoint => {
                for (i, p) in points.iter().enumerate() {
                    self.inner
                        .write_metrics(cx, &WriteMetrics::new(std::slice::from_ref(p)))
                        .await?;
                    if i % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                Ok(())
            }
            Bug::FloatSeconds => {
                let lossy: Vec<MetricPoint> = points
                    .iter()
                    .map(|p| {
                        let secs = p.at.as_micros() as f64 / 1e6;
                        MetricPoint {
                            at: Timestamp::from_micros((secs * 1e6) as i64).unwrap_or(p.at),
                            ..p.clone()
                        }
                    })
                    .collect();
                self.inner
                    .write_metrics(cx, &WriteMetrics::new(&lossy))
                    .await
            }
            Bug::TruncatedNames => {
                let cut: Vec<MetricPoint> = points
                    .iter()
                    .map(|p| {
                        let mut end = p.component.len().min(200);
                        while !p.component.is_char_boundary(end) {
                            end -= 1;
                        }
                        MetricPoint {
                            component: p.component[..end].to_string(),
                            ..p.clone()
                        }
                    })
                    .collect();
                self.inner.write_metrics(cx, &WriteMetrics::new(&cut)).await
            }
            _ => self.inner.write_metrics(cx, op).await,
        }
    }
    async fn read_metrics(&self, cx: &Cx, q: &MetricQuery) -> Result<Vec<StoredMetric>> {
        self.inner.read_metrics(cx, q).await
    }
    async fn list_components(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut v = self.inner.list_components(cx).await?;
        if self.bug == Bug::LocaleSort {
            v.sort_by_key(|s| s.to_lowercase());
        }
        Ok(v)
    }
    async fn list_metric_names(&self, cx: &Cx, op: &ListMetricNames<'_>) -> Result<Vec<String>> {
        self.inner.list_metric_names(cx, op).await
    }
    async fn aggregate(&self, cx: &Cx, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        if self.bug == Bug::WholeRangeFromEpoch && q.bucket.is_whole() {
            let epoch_aligned = AggregateQuery {
                bucket: Bucket::WHOLE,
                ..q.clone()
            };
            return self.inner.aggregate(cx, &epoch_aligned).await;
        }
        let mut rows = self.inner.aggregate(cx, q).await?;
        if self.bug == Bug::InterpolatedQuantiles && !q.quantiles.is_empty() {
            // Read the points back and interpolate, as percentile_cont does.
            let mut values: HashMap<(Timestamp, String, String), Vec<f64>> = HashMap::new();
            let mut after = None;
            loop {
                let page = self
                    .inner
                    .read_metrics(
                        cx,
                        &MetricQuery {
                            component: q.component.clone(),
                            name: q.name.clone(),
                            from: q.from,
                            to: q.to,
                            limit: 10_000,
                            after: after.take(),
                        },
                    )
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(MetricKey {
                    at: last.point.at,
                    component: last.point.component.clone(),
                    name: last.point.name.clone(),
                    seq: last.seq,
                });
                for m in &page {
                    let p = &m.point;
                    values
                        .entry((q.bucket.start_of(p.at), p.component.clone(), p.name.clone()))
                        .or_default()
                        .push(p.value);
                }
            }
            for r in &mut rows {
                let mut v = values
                    .remove(&(r.bucket_start, r.component.clone(), r.name.clone()))
                    .unwrap_or_default();
                v.sort_by(f64::total_cmp);
                r.quantiles = q
                    .quantiles
                    .iter()
                    .map(|&qq| {
                        let x = qq * (v.len() - 1) as f64;
                        let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
                        v[lo] + (v[hi] - v[lo]) * (x - lo as f64)
                    })
                    .collect();
            }
        }
        Ok(rows)
    }
}
