//! Health output, reviewed by a person: insta snapshots with volatile fields
//! redacted (not deleted), one per reference backend.

use std::sync::Arc;

use persistkit_conformance::harnesses::{MemoryHarness, PostgresHarness, SqliteHarness};
use persistkit_conformance::{Ctx, Harness, SetupError};
use persistkit_core::{Expect, MetricPoint, NewEvent, Timestamp};
use rstest::rstest;
use serde_json::json;

async fn health_json(harness: Arc<dyn Harness>) -> Option<serde_json::Value> {
    let ctx = match Ctx::new(harness.clone()).await {
        Ok(ctx) => ctx,
        Err(SetupError::Skip(why)) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED health snapshot of {}: {why}",
                harness.name()
            );
            return None;
        }
        Err(SetupError::Fail(why)) => panic!("fixture: {why}"),
    };
    let h = ctx.handle();
    let at = Timestamp::from_secs(1_700_000_000).unwrap();
    h.write_metrics(&[MetricPoint::gauge(at, "api", "rps", 1.0)])
        .await
        .unwrap();
    h.append(&[NewEvent::new("signup", at, json!({"u": 1}))])
        .await
        .unwrap();
    h.put("jobs", "1", &json!({"n": 1}), Expect::Absent)
        .await
        .unwrap();
    let v = serde_json::to_value(h.health().await).unwrap();
    ctx.cleanup().await;
    Some(v)
}

#[rstest]
#[case::memory(Arc::new(MemoryHarness))]
#[case::sqlite(Arc::new(SqliteHarness::new()))]
#[case::postgres(Arc::new(PostgresHarness::from_env()))]
#[tokio::test]
async fn health_snapshot(#[case] harness: Arc<dyn Harness>) {
    let Some(v) = health_json(harness).await else {
        return;
    };
    let name = v["backend"].as_str().unwrap().to_string();
    insta::assert_json_snapshot!(format!("health_{name}"), v, {
        ".latency_us" => "[latency]",
        ".pool.size" => "[open connections]",
        ".pool.idle" => "[idle connections]",
        ".storage_bytes" => insta::dynamic_redaction(|value, _| {
            // Present where the backend can tell; the size itself varies.
            if value.as_u64().is_some() { "[bytes]".into() } else { value }
        }),
    });
}
