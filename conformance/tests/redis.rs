//! The shared cache on Redis, held to the whole suite over SQLite and
//! Postgres, and the Redis server its tests use: built from Debian packages
//! (`ci/images/redis/build`), started by testcontainers, with the same skip
//! and require rules as Postgres.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::sync::Arc;

use persistkit_cache::{CacheConfig, Cached, RedisCache, RedisConfig};
use persistkit_conformance::harnesses::{
    redis_server_or_skip, Layered, PostgresHarness, ScopedWrap, SqliteHarness, WithRedis,
};

/// One RESP command over a plain TCP connection, and the first reply line.
fn command(addr: &str, parts: &[&str]) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("redis answers");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut req = format!("*{}\r\n", parts.len());
    for p in parts {
        req.push_str(&format!("${}\r\n{p}\r\n", p.len()));
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
}

#[tokio::test]
async fn a_redis_server_answers_and_keeps_what_it_is_given() {
    let Some((url, _container)) = redis_server_or_skip("redis").await else {
        return;
    };
    let addr = url.trim_start_matches("redis://").to_string();
    assert_eq!(command(&addr, &["PING"]), "+PONG");
    assert_eq!(command(&addr, &["SET", "persistkit:probe", "v1"]), "+OK");
    assert_eq!(command(&addr, &["GET", "persistkit:probe"]), "$2\r\nv1");
    assert_eq!(command(&addr, &["INCR", "persistkit:version"]), ":1");
}

/// The cache layer on the Redis server at `url`, keyed by a prefix of the
/// store's scope: every handle on one store's data (and the second
/// process) shares its entries, and no two stores do.
fn cached_on(url: &str) -> ScopedWrap {
    let url = url.to_string();
    Arc::new(move |store, scope| {
        let mut h = DefaultHasher::new();
        scope.hash(&mut h);
        let config = CacheConfig::default();
        let redis = RedisConfig::new(&url, format!("persistkit-test:{:016x}:", h.finish()));
        let cache = RedisCache::connect(redis).expect("a Redis cache");
        Cached::wrap_shared(store, config, cache)
    })
}

// The whole suite through a cache on Redis: each handle has a layer of its
// own (as separate processes do), sharing one cache, so the reads through
// one handle after writes through another are the cache's invalidation at
// work, across layers and across processes.
persistkit_conformance::suite!(
    cached_redis_sqlite,
    WithRedis::new("cached on redis over sqlite", |url| {
        Layered::scoped(SqliteHarness::new(), "cached on redis", cached_on(url))
    })
);
persistkit_conformance::suite!(
    cached_redis_postgres,
    WithRedis::new("cached on redis over postgres", |url| {
        Layered::scoped(
            PostgresHarness::from_env(),
            "cached on redis",
            cached_on(url),
        )
    })
);

/// Redis may drop the generation (eviction, a restart without its data,
/// `FLUSHDB` of some keys): entries written under an older generation
/// must stay dead, never match a generation that starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_generation_never_revives_old_entries() {
    use persistkit_core::{AdminStore, Expect, Handle, Store};
    use serde_json::json;
    let Some((url, _container)) = redis_server_or_skip("redis").await else {
        return;
    };
    let addr = url.trim_start_matches("redis://").to_string();
    let store: Arc<dyn Store> = Arc::new(persistkit_memory::MemoryStore::new());
    let prefix = "persistkit-dropped-generation:";
    let config = CacheConfig::default();
    let cache = RedisCache::connect(RedisConfig::new(&url, prefix)).unwrap();
    let cached = Cached::wrap_shared(store, config, cache);
    let h = Handle::new(cached.clone());
    h.put("docs", "1", &json!({"v": 1}), Expect::Absent)
        .await
        .unwrap();
    // Read until the entry is served from Redis (fills do not block reads).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while cached.telemetry().cache.unwrap().hits == 0 {
        assert!(std::time::Instant::now() < deadline, "never a hit");
        h.get("docs", "1").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    h.clear().await.unwrap();
    // Redis loses the generation; the entry for version 1 is still there.
    assert_eq!(command(&addr, &["DEL", &format!("{prefix}g")]), ":1");
    for _ in 0..3 {
        assert_eq!(
            h.get("docs", "1").await.unwrap(),
            None,
            "an entry from before the clear came back when the generation was lost"
        );
    }
}

/// Every key the cache writes expires, within the layer's longest TTL: a
/// prefix leaves nothing behind once its entries have expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_the_cache_writes_expires() {
    use persistkit_core::{AdminStore, Expect, Handle, Store};
    use serde_json::json;
    use std::time::Duration;
    let Some((url, _container)) = redis_server_or_skip("redis key expiry").await else {
        return;
    };
    let prefix = "persistkit-expiry:";
    let config = CacheConfig::default()
        .ttl(Duration::from_secs(5))
        .collection_ttl([("long".to_string(), Duration::from_secs(90))].into());
    let cache = RedisCache::connect(RedisConfig::new(&url, prefix)).unwrap();
    let store: Arc<dyn Store> = Arc::new(persistkit_memory::MemoryStore::new());
    let cached = Cached::wrap_shared(store, config, cache);
    let h = Handle::new(cached.clone());
    for collection in ["docs", "long"] {
        h.put(collection, "1", &json!({"v": 1}), Expect::Absent)
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cached.telemetry().cache.unwrap().hits < 2 {
        assert!(std::time::Instant::now() < deadline, "never two hits");
        for collection in ["docs", "long"] {
            h.get(collection, "1").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.clear().await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    // The generation, two versions, two entries.
    assert_eq!(keys.len(), 5, "{keys:?}");
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            ttl > 0 && ttl <= 90_000,
            "{key} expires in {ttl} ms, not within the longest TTL"
        );
    }
}
