//! The health report: a ping, the schema, counts, and what layers add.

use std::time::{Duration, Instant};

use crate::admin::{Counts, HealthReport, HealthStatus, StoreCounts};
use crate::cx::Cx;
use crate::error::{error_chain, Error};
use crate::store::Store;

/// Whose counts a health report carries.
pub(crate) enum Scope<'a> {
    /// One namespace's, that of the context.
    Namespace,
    /// Every namespace's (the admin scope), read with this context's clock
    /// and deadline.
    All(&'a Cx),
}

/// The counts of every namespace holding data, each read on its own.
pub(crate) async fn store_counts(store: &dyn Store, cx: &Cx) -> crate::Result<StoreCounts> {
    let mut out = StoreCounts::default();
    for ns in store.namespaces().await? {
        let c: Counts = store.counts(&cx.in_namespace(&ns)).await?;
        out.total.add(&c);
        out.namespaces.insert(ns, c);
    }
    Ok(out)
}

/// The health of `store` with the counts of `scope`, or, when it does not
/// answer within `timeout`, an `unhealthy` report that says so.
pub(crate) async fn health_within(
    store: &dyn Store,
    cx: &Cx,
    scope: Scope<'_>,
    timeout: Option<Duration>,
) -> HealthReport {
    let namespace = match scope {
        Scope::Namespace => cx.ns().to_string(),
        Scope::All(_) => String::new(),
    };
    let checked = health_of(store, cx, scope);
    let Some(limit) = timeout else {
        return checked.await;
    };
    match tokio::time::timeout(limit, checked).await {
        Ok(r) => r,
        Err(_) => HealthReport {
            status: HealthStatus::Unhealthy,
            backend: store.backend_name().to_string(),
            namespace,
            schema: None,
            counts: None,
            storage_bytes: None,
            pool: store.pool_stats(),
            latency_us: None,
            error: Some(format!("no answer within {limit:?}")),
            layers: store.telemetry(),
            namespaces: None,
        },
    }
}

/// The health of `store`, with the counts of `scope`.
pub(crate) async fn health_of(store: &dyn Store, cx: &Cx, scope: Scope<'_>) -> HealthReport {
    let ns = match scope {
        Scope::Namespace => cx.ns(),
        Scope::All(_) => "",
    };
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
        namespaces: None,
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
        let (counts, namespaces) = match (schema.current == schema.expected, &scope) {
            (false, _) => (None, None),
            (true, Scope::Namespace) => (Some(store.counts(cx).await?), None),
            (true, Scope::All(cx)) => {
                let all = store_counts(store, cx).await?;
                (Some(all.total), Some(all.namespaces))
            }
        };
        let bytes = store.storage_bytes().await?;
        Ok::<_, Error>((schema, counts, namespaces, bytes))
    };
    match gathered.await {
        Ok((schema, counts, namespaces, bytes)) => {
            report.schema = Some(schema);
            report.counts = counts;
            report.namespaces = namespaces;
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
