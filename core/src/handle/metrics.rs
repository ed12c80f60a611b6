//! Metrics through a handle.

use crate::cursor::{self, Page};
use crate::error::{Error, Result};
use crate::limits::DEFAULT_LIMIT;
use crate::metrics::{
    AggregateFilter, AggregateQuery, AggregateRow, Bucket, MetricFilter, MetricKey, MetricPoint,
    MetricQuery, StoredMetric,
};
use crate::validate;
use crate::validate::{check_opt_name, check_range};

use super::{paginate, Handle};
use crate::op::*;

impl Handle {
    /// Append points: all of them or, if any is invalid, none. Negative zero
    /// is stored as zero.
    ///
    /// # Errors
    /// `InvalidInput` with the index of the first bad point.
    pub async fn write_metrics(&self, points: &[MetricPoint]) -> Result<()> {
        for (i, p) in points.iter().enumerate() {
            validate::point(p).map_err(|e| e.at_index(i))?;
        }
        if points.is_empty() {
            return Ok(());
        }
        // -0.0 equals 0.0 but prints differently; SQLite cannot keep it, so no
        // backend does, and archives stay byte-identical across backends.
        if points
            .iter()
            .any(|p| p.value == 0.0 && p.value.is_sign_negative())
        {
            let fixed: Vec<MetricPoint> = points
                .iter()
                .map(|p| MetricPoint {
                    value: p.value + 0.0,
                    ..p.clone()
                })
                .collect();
            return self
                .timed(
                    "write_metrics",
                    self.store
                        .write_metrics(&self.cx(self.now()), &WriteMetrics::new(&fixed)),
                )
                .await;
        }
        self.timed(
            "write_metrics",
            self.store
                .write_metrics(&self.cx(self.now()), &WriteMetrics::new(points)),
        )
        .await
    }

    /// Read points ordered by `(at, component, name, insertion sequence)`.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name, limit, range or cursor.
    pub async fn read_metrics(&self, filter: &MetricFilter) -> Result<Page<StoredMetric>> {
        check_opt_name("component", filter.component.as_deref())?;
        check_opt_name("metric name", filter.name.as_deref())?;
        check_range(filter.from, filter.to)?;
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
        validate::limit(limit)?;
        let scope = cursor::scope(
            &self.ns,
            &(&filter.component, &filter.name, filter.from, filter.to),
        );
        let after = match &filter.cursor {
            Some(c) => {
                let k = cursor::decode::<MetricKey>("metrics", &scope, c)?;
                cursor::check_sequence("metrics", c, k.seq)?;
                Some(k)
            }
            None => None,
        };
        let query = MetricQuery {
            component: filter.component.clone(),
            name: filter.name.clone(),
            from: filter.from,
            to: filter.to,
            limit: limit + 1,
            after,
        };
        let items = self
            .timed(
                "read_metrics",
                self.store.read_metrics(&self.cx(self.now()), &query),
            )
            .await?;
        Ok(paginate(items, limit, |m| {
            cursor::encode(
                "metrics",
                &scope,
                &MetricKey {
                    at: m.point.at,
                    component: m.point.component.clone(),
                    name: m.point.name.clone(),
                    seq: m.seq,
                },
            )
        }))
    }

    /// Distinct components, sorted byte-wise.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached.
    pub async fn list_components(&self) -> Result<Vec<String>> {
        self.timed(
            "list_components",
            self.store.list_components(&self.cx(self.now())),
        )
        .await
    }

    /// Distinct metric names of `component`, sorted byte-wise.
    ///
    /// # Errors
    /// `InvalidInput` for a bad component name.
    pub async fn list_metric_names(&self, component: &str) -> Result<Vec<String>> {
        validate::name("component", component)?;
        self.timed(
            "list_metric_names",
            self.store
                .list_metric_names(&self.cx(self.now()), &ListMetricNames::new(component)),
        )
        .await
    }

    /// Aggregate into epoch-aligned buckets of `bucket` seconds, or with
    /// [`Bucket::WHOLE`] into one row per series over the whole range
    /// `[from, to)`, whose `bucket_start` is `from` (MET-7).
    ///
    /// # Errors
    /// `InvalidInput` for a zero or too wide bucket, a bad name or range, or
    /// a quantile outside `[0, 1]` (or more than 16 of them).
    pub async fn aggregate(
        &self,
        filter: &AggregateFilter,
        bucket: Bucket,
    ) -> Result<Vec<AggregateRow>> {
        check_opt_name("component", filter.component.as_deref())?;
        check_opt_name("metric name", filter.name.as_deref())?;
        check_range(filter.from, filter.to)?;
        let bucket = if bucket.is_whole() {
            Bucket::whole_from(filter.from.unwrap_or(crate::Timestamp::MIN))
        } else {
            bucket
        };
        if !bucket.is_whole()
            && (bucket.as_secs() == 0 || bucket.as_secs() > validate::MAX_BUCKET_SECONDS)
        {
            return Err(Error::invalid(format!(
                "bucket must be 1..={} seconds, got {}",
                validate::MAX_BUCKET_SECONDS,
                bucket.as_secs()
            )));
        }
        let quantiles = validate::quantiles(&filter.quantiles)?;
        let query = AggregateQuery {
            component: filter.component.clone(),
            name: filter.name.clone(),
            from: filter.from,
            to: filter.to,
            bucket,
            quantiles,
        };
        self.timed(
            "aggregate",
            self.store.aggregate(&self.cx(self.now()), &query),
        )
        .await
    }
}
