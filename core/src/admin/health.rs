//! The health report: a ping, the schema, counts, and what layers add.

use std::time::{Duration, Instant};

use crate::admin::{HealthReport, HealthStatus};
use crate::cx::Cx;
use crate::error::{error_chain, Error};
use crate::store::Store;

/// The health of `store`, seen from namespace `ns`.
pub(crate) async fn health(store: &dyn Store, cx: &Cx) -> HealthReport {
    let ns = cx.ns();
    let mut report = HealthReport {
        status: HealthStatus::Healthy,
        backend: store.backend_name().to_string(),
        namespace: ns.to_string(),
        schema: None,
        counts: None,
        storage_bytes: None,
        pool: store.pool_stats(),
        latency_us: None,
        error: None,
        layers: store.telemetry(),
    };
    let started = Instant::now();
    if let Err(e) = store.ping().await {
        report.status = HealthStatus::Unhealthy;
        report.error = Some(error_chain(&e));
        return report;
    }
    report.latency_us = Some(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    let gathered = async {
        let schema = store.schema_versions().await?;
        // Tables of an older schema may not hold what this code counts.
        let counts = if schema.current == schema.expected {
            Some(store.counts(cx).await?)
        } else {
            None
        };
        let bytes = store.storage_bytes().await?;
        Ok::<_, Error>((schema, counts, bytes))
    };
    match gathered.await {
        Ok((schema, counts, bytes)) => {
            report.schema = Some(schema);
            report.counts = counts;
            report.storage_bytes = bytes;
            let mut problems = Vec::new();
            if schema.current > schema.expected {
                report.status = HealthStatus::Unhealthy;
                problems.push(format!(
                    "database schema {} is newer than this code's {}",
                    schema.current, schema.expected
                ));
            } else if schema.current < schema.expected {
                let pending: Vec<String> = (schema.current + 1..=schema.expected)
                    .map(|v| v.to_string())
                    .collect();
                problems.push(format!(
                    "migrations pending: version {} (the database is at {}, this code expects {}); run `persistkit migrate`",
                    pending.join(", "),
                    schema.current,
                    schema.expected
                ));
            }
            if let Some(p) = report.pool {
                if p.idle == 0 && p.size >= p.max {
                    problems.push(format!("pool exhausted: {} of {} in use", p.size, p.max));
                }
            }
            if started.elapsed() > Duration::from_secs(1) {
                problems.push("round trip slower than 1 s".to_string());
            }
            problems.extend(report.layers.problems.iter().cloned());
            if !problems.is_empty() {
                if report.status == HealthStatus::Healthy {
                    report.status = HealthStatus::Degraded;
                }
                report.error = Some(problems.join("; "));
            }
        }
        Err(e) => {
            report.status = HealthStatus::Unhealthy;
            report.error = Some(error_chain(&e));
        }
    }
    report
}
