//! `persistkit check --cache SPEC`: every store checked through the read
//! cache, in process (`memory`) or shared on Redis (a `redis://` URL), as
//! an application that caches would use it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use persistkit::Store;
use persistkit_cache::{CacheConfig, Cached, RedisCache, RedisConfig};
use persistkit_conformance::harnesses::Layered;
use persistkit_conformance::Harness;

/// What `--cache` takes.
pub const HELP: &str = "`memory` (in process) or a Redis URL (redis://host:port[/db])";

/// `h` with the cache `spec` names over every store it makes.
pub fn layered(h: Arc<dyn Harness>, spec: &str) -> Result<Arc<dyn Harness>, String> {
    if spec == "memory" {
        // One process's cache: the second handle shares it, as handles in
        // one process do.
        let wrap =
            |s: Arc<dyn Store>| -> Arc<dyn Store> { Cached::wrap(s, CacheConfig::default()) };
        return Ok(Arc::new(
            Layered::new(h, "cached in process", wrap).one_layer_per_process(),
        ));
    }
    if !spec.starts_with("redis://") && !spec.starts_with("rediss://") {
        return Err(format!("--cache {spec:?}: expected {HELP}"));
    }
    redis::Client::open(spec).map_err(|e| format!("--cache {spec:?}: not a Redis URL: {e}"))?;
    let url = spec.to_string();
    Ok(Arc::new(Layered::scoped(
        h,
        "cached on redis",
        Arc::new(move |store, scope| {
            // Every layer on one store's data (the second process's too)
            // shares the prefix; no two stores do.
            let mut hash = DefaultHasher::new();
            scope.hash(&mut hash);
            let config = CacheConfig::default();
            let redis = RedisConfig::new(&url, format!("persistkit-check:{:016x}:", hash.finish()));
            match RedisCache::connect(redis) {
                Ok(cache) => Cached::wrap_shared(store, config, cache) as Arc<dyn Store>,
                // The URL was checked and the runtime is there: not reached.
                Err(e) => panic!("cannot make the Redis cache: {e}"),
            }
        }),
    )))
}

/// Before any case: a Redis cache must answer, or every case would pass
/// through the store without ever using it.
pub async fn preflight(spec: &str) -> Result<(), String> {
    if spec == "memory" {
        return Ok(());
    }
    let ping = async {
        let client = redis::Client::open(spec).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(5), ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "the Redis cache at {} does not answer: {e}",
            persistkit::redact(spec)
        )),
        Err(_) => Err(format!(
            "the Redis cache at {} does not answer within 5 s",
            persistkit::redact(spec)
        )),
    }
}
