//! The portable archive moves data between backends: export from memory,
//! import into SQLite, export, import into Postgres, export — every archive
//! byte-identical.

use std::sync::Arc;

use persistkit_conformance::harnesses::PostgresHarness;
use persistkit_conformance::{Harness, SetupError};
use persistkit_core::*;
use serde_json::json;

async fn export_all(h: &Handle) -> Vec<u8> {
    let mut out = Vec::new();
    h.admin().export(&mut out, None).await.unwrap();
    out
}

async fn populate(h: &Handle) {
    let t = |s: i64| Timestamp::from_micros(1_700_000_000_000_000 + s * 1_000_001).unwrap();
    for ns in ["acme", "globex"] {
        let n = h.namespace(ns).unwrap();
        n.write_metrics(&[
            MetricPoint::gauge(t(0), "api", "latency", 12.5),
            MetricPoint::counter(t(1), "api", "requests", 3.0),
            MetricPoint::gauge(t(1), "é", "😀", -0.25),
        ])
        .await
        .unwrap();
        n.append(&[
            NewEvent::new(
                "signup",
                t(2),
                json!({"user": "ann", "plan": {"tier": 2, "trial": true}}),
            ),
            NewEvent::new("signup", t(2), json!({"user": "bob"})),
            NewEvent::new("refund", t(3), json!([1, 2.5, null, "x"])),
        ])
        .await
        .unwrap();
        let c = n
            .claim(
                "pay",
                "order-1",
                std::time::Duration::from_secs(86_400 * 365),
            )
            .await
            .unwrap();
        n.complete(
            "pay",
            "order-1",
            c.token().unwrap(),
            &json!({"status": 201}),
        )
        .await
        .unwrap();
        n.claim(
            "pay",
            "order-2",
            std::time::Duration::from_secs(86_400 * 365),
        )
        .await
        .unwrap();
        n.put("jobs", "1", &json!({"state": "queued"}), Expect::Absent)
            .await
            .unwrap();
        n.put("jobs", "1", &json!({"state": "done"}), Expect::Version(1))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_to_sqlite_to_postgres_is_byte_identical() {
    let memory = Handle::new(Arc::new(persistkit_memory::MemoryStore::new()));
    populate(&memory).await;
    let first = export_all(&memory).await;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("moved.db").display());
    let sqlite = Handle::new(Arc::new(
        persistkit_sqlite::SqliteStore::open(&url).await.unwrap(),
    ));
    sqlite
        .admin()
        .import(&mut first.as_slice(), None)
        .await
        .unwrap();
    let second = export_all(&sqlite).await;
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second),
        "memory → SQLite"
    );

    let fixture = match PostgresHarness::from_env().fresh().await {
        Ok(f) => f,
        Err(SetupError::Skip(why)) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED the Postgres leg of memory_to_sqlite_to_postgres: {why}"
            );
            return;
        }
        Err(SetupError::Fail(why)) => panic!("{why}"),
    };
    let postgres = Handle::new(fixture.store.clone());
    postgres
        .admin()
        .import(&mut second.as_slice(), None)
        .await
        .unwrap();
    let third = export_all(&postgres).await;
    assert_eq!(
        String::from_utf8_lossy(&second),
        String::from_utf8_lossy(&third),
        "SQLite → Postgres"
    );
    fixture.hooks.cleanup().await;
}
