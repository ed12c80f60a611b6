//! The shared cache when Redis stops answering (`docker pause`): every call
//! still succeeds through the store, with what the store holds; `health`
//! says `degraded` and why; once Redis answers again, a process that wrote
//! while it could not invalidate drops every entry before anyone can read
//! what its writes replaced, and `health` is healthy again.
//!
//! A test binary of its own, so pausing its Redis server stops no other
//! test's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use persistkit_cache::{CacheConfig, Cached, RedisCache, RedisConfig};
use persistkit_conformance::harnesses::redis_server_or_skip;
use persistkit_core::{AdminStore, Expect, Handle, HealthStatus, Store};
use persistkit_sqlite::{SqliteConfig, SqliteStore};
use serde_json::{json, Value};

/// Unpauses the container however the test ends.
struct Paused(String);

impl Paused {
    fn pause(id: &str) -> Paused {
        docker("pause", id);
        Paused(id.to_string())
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        docker("unpause", &self.0);
    }
}

fn docker(verb: &str, id: &str) {
    let out = std::process::Command::new("docker")
        .args([verb, id])
        .output()
        .expect("docker runs");
    assert!(
        out.status.success() || verb == "unpause",
        "docker {verb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A layer over `store` on the shared cache: one per simulated process.
fn process(store: &Arc<dyn Store>, url: &str) -> (Handle, Arc<Cached>) {
    let config = CacheConfig::default();
    let redis = RedisConfig::new(url, "persistkit-outage:")
        .timeout(Duration::from_secs(1))
        .retry_after(Duration::from_secs(2));
    let cache = RedisCache::connect(redis).expect("a Redis cache");
    let cached = Cached::wrap_shared(store.clone(), config, cache);
    (Handle::new(cached.clone()), cached)
}

async fn data(h: &Handle, id: &str) -> Option<Value> {
    h.get("docs", id)
        .await
        .expect("a read succeeds whatever Redis does")
        .map(|r| r.data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_to_the_store_while_redis_is_paused_and_health_says_degraded() {
    let Some((url, container)) = redis_server_or_skip("redis outage").await else {
        return;
    };
    if container.is_empty() {
        eprintln!(
            "SKIPPED redis outage: the server comes from PERSISTKIT_REDIS_URL, not ours to pause"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::connect(SqliteConfig::new(dir.path().join("outage.db")))
            .await
            .unwrap(),
    );
    let (writer, writer_layer) = process(&store, &url);
    let (reader, reader_layer) = process(&store, &url);
    // A third process, the only one besides the writer to call during the
    // outage: the reader sees none of it.
    let (bystander, _) = process(&store, &url);

    // Before: one process fills the shared cache, the other hits it.
    writer
        .put("docs", "1", &json!({"v": 1}), Expect::Absent)
        .await
        .unwrap();
    assert_eq!(data(&writer, "1").await, Some(json!({"v": 1})));
    // The writer's read fills the cache without waiting for the fill; the
    // reader hits it once it lands.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert_eq!(data(&reader, "1").await, Some(json!({"v": 1})));
        if reader_layer.telemetry().cache.unwrap().hits > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reader never hit the writer's entry"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(writer.health().await.status, HealthStatus::Healthy);

    {
        let _paused = Paused::pause(&container);
        // The first call waits out the deadline, then reads the store; the
        // calls after it leave Redis alone for `retry_after`, so the next
        // write's invalidation is never sent: the writer owes one.
        assert_eq!(data(&writer, "1").await, Some(json!({"v": 1})));
        // Writes and reads succeed through the store, each seeing the last.
        let rec = writer
            .put("docs", "1", &json!({"v": 2}), Expect::Version(1))
            .await
            .expect("a write succeeds while Redis is paused");
        assert_eq!(rec.version, 2);
        assert_eq!(data(&writer, "1").await, Some(json!({"v": 2})));
        writer
            .put("docs", "2", &json!({"v": 1}), Expect::Absent)
            .await
            .unwrap();
        writer
            .delete("docs", "2", Expect::Version(1))
            .await
            .unwrap();
        assert_eq!(data(&writer, "2").await, None);
        assert_eq!(
            data(&bystander, "1").await,
            Some(json!({"v": 2})),
            "another process reads the store, not the entry the write could not invalidate"
        );
        let report = writer.health().await;
        assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
        let why = report.error.unwrap_or_default();
        assert!(why.contains("Redis unreachable"), "{why}");
        assert!(why.contains("reads go to the store"), "{why}");
        let stats = writer_layer.telemetry().cache.unwrap();
        assert!(stats.fallbacks >= 1, "{stats:?}");
    }

    // After: the writer owed an invalidation; it pays it (bumps the
    // generation) as soon as Redis answers, without waiting for a call.
    let deadline = Instant::now() + Duration::from_secs(30);
    while writer.health().await.status != HealthStatus::Healthy {
        assert!(
            Instant::now() < deadline,
            "health never came back: {:?}",
            writer.health().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The reader made no call during the outage, so it never knew of it,
    // and Redis still holds the entry for version 1: it must not serve it.
    assert_eq!(
        data(&reader, "1").await,
        Some(json!({"v": 2})),
        "after the outage a process read what a write during it replaced"
    );
    // The read filled the cache (without waiting for the fill): reads hit
    // again.
    let hits = reader_layer.telemetry().cache.unwrap().hits;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert_eq!(data(&reader, "1").await, Some(json!({"v": 2})));
        let stats = reader_layer.telemetry().cache.unwrap();
        if stats.hits > hits {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache never served again after the outage: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reader.health().await.status, HealthStatus::Healthy);
}
