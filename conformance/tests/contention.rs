//! Many writers on one record: `incr` never loses a race and never says
//! `Conflict`, on SQLite, on Postgres and through PgBouncer in transaction
//! mode (where 32 writers once saw `Conflict` after 64 lost races).

use std::sync::Arc;

use persistkit_conformance::harnesses::PostgresHarness;
use persistkit_conformance::{Harness, SetupError};
use persistkit_core::{Handle, Store};
use serde_json::json;

const WRITERS: i64 = 32;
const EACH: i64 = 25;

async fn many_writers(h: &Handle) {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                h.incr("stats", "hot", "/n", 1)
                    .await
                    .unwrap_or_else(|e| panic!("writer {w}: incr failed: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = h.get("stats", "hot").await.unwrap().unwrap();
    assert_eq!(r.data, json!({"n": WRITERS * EACH}), "no increment lost");
    assert_eq!(
        r.version as i64,
        WRITERS * EACH,
        "one version per increment"
    );
}

async fn postgres(harness: PostgresHarness) -> Option<Arc<dyn Store>> {
    match harness.fresh().await {
        Ok(f) => Some(f.store),
        Err(SetupError::Skip(why)) => {
            eprintln!("SKIPPED: {why}");
            None
        }
        Err(SetupError::Fail(why)) => panic!("{why}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incr_never_loses_a_race_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hot.db", dir.path().display());
    let store = persistkit_sqlite::SqliteStore::open(&url).await.unwrap();
    many_writers(&Handle::new(Arc::new(store))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incr_never_loses_a_race_on_postgres() {
    if let Some(store) = postgres(PostgresHarness::docker()).await {
        many_writers(&Handle::new(store)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incr_never_loses_a_race_through_pgbouncer() {
    if let Some(store) = postgres(PostgresHarness::pgbouncer()).await {
        many_writers(&Handle::new(store)).await;
    }
}
