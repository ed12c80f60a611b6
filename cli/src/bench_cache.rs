//! `persistkit bench cache` and `bench cache-postgres`: a cached `get`
//! (a hit, and a miss) beside the same `get` on the store alone, and the
//! hit rate of a skewed workload (Zipf over 10 000 ids) with a cache of
//! 1 000 entries. With `--redis` the cache is the shared one on Redis,
//! which Redis's own `maxmemory` bounds, so the skewed workload runs
//! unbounded there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use persistkit::{AdminStore, Expect, Handle, Store};
use persistkit_cache::{CacheConfig, Cached, RedisCache, RedisConfig};
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use serde_json::json;

use crate::bench::{latencies, table, Figure};

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Ids in the collection.
const IDS: u64 = 10_000;
/// Entries the cache may hold for the skewed workload.
const BOUND: u64 = 1_000;
/// Reads of the skewed workload.
const READS: usize = 100_000;

fn id(i: u64) -> String {
    format!("doc-{i:05}")
}

/// Where the cache keeps its entries.
pub enum Tier {
    /// In process.
    Local,
    /// On the Redis server at this URL.
    Redis(String),
}

impl Tier {
    /// A layer over `store`, with a key prefix no other run uses.
    fn layer(&self, store: &Arc<dyn Store>, config: CacheConfig) -> Result<Arc<Cached>, String> {
        match self {
            Tier::Local => Ok(Cached::wrap(store.clone(), config)),
            Tier::Redis(url) => {
                let prefix = format!("persistkit-bench:{:016x}:", rand::random::<u64>());
                let cache = RedisCache::connect(RedisConfig::new(url, prefix)).map_err(err)?;
                Ok(Cached::wrap_shared(store.clone(), config, cache))
            }
        }
    }
}

/// Run on `store` (an empty one), titled `title`.
pub async fn run(
    title: &str,
    store: Arc<dyn Store>,
    ops: usize,
    tier: &Tier,
) -> Result<String, String> {
    let plain = Handle::new(store.clone()).with_timeout(None);
    eprintln!("bench cache: writing {IDS} records …");
    for i in 0..IDS {
        plain
            .put(
                "docs",
                &id(i),
                &json!({"i": i, "body": "x".repeat(200)}),
                Expect::Any,
            )
            .await
            .map_err(err)?;
    }
    // Hits: one cache big enough for every id, warmed first.
    let warm = tier.layer(&store, CacheConfig::default())?;
    let cached = Handle::new(warm.clone()).with_timeout(None);
    // Misses: each id read for the first time, beside the same get on the
    // store alone.
    eprintln!("bench cache: {} first reads each side …", IDS);
    let (mut first, mut alone) = (Vec::new(), Vec::new());
    for i in 0..IDS {
        let t = Instant::now();
        cached.get("docs", &id(i)).await.map_err(err)?;
        first.push(t.elapsed());
        let t = Instant::now();
        plain.get("docs", &id(i)).await.map_err(err)?;
        alone.push(t.elapsed());
    }
    let (miss50, _) = latencies(first);
    let (alone50, _) = latencies(alone);
    let warmed = warm.telemetry().cache.unwrap_or_default();
    if warmed.misses != IDS || warmed.fallbacks > 0 {
        return Err(format!(
            "bench cache: the cache was not used as measured (misses {}, fallbacks {}): {:?}",
            warmed.misses,
            warmed.fallbacks,
            warm.telemetry().problems
        ));
    }
    eprintln!("bench cache: {ops} gets each side …");
    let (mut hit, mut miss) = (Vec::with_capacity(ops), Vec::with_capacity(ops));
    for n in 0..ops as u64 {
        let key = id((n * 7_919) % IDS);
        let t = Instant::now();
        cached.get("docs", &key).await.map_err(err)?;
        hit.push(t.elapsed());
        let t = Instant::now();
        plain.get("docs", &key).await.map_err(err)?;
        miss.push(t.elapsed());
    }
    let (hit50, hit99) = latencies(hit);
    let (get50, get99) = latencies(miss);
    // The skewed workload: Zipf (s = 1) over the ids, a bounded cache.
    eprintln!("bench cache: {READS} Zipf-distributed gets, a cache of {BOUND} entries …");
    let bounded = tier.layer(&store, CacheConfig::default().max_entries(BOUND))?;
    let bound = match tier {
        Tier::Local => format!("at most {BOUND} entries"),
        Tier::Redis(_) => "no bound but Redis's".to_string(),
    };
    let skewed = Handle::new(bounded.clone()).with_timeout(None);
    let zipf = Zipf::new(IDS as f64, 1.0).map_err(err)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let draws: Vec<u64> = (0..READS)
        .map(|_| zipf.sample(&mut rng) as u64 - 1)
        .collect();
    let t = Instant::now();
    for &i in &draws {
        skewed.get("docs", &id(i)).await.map_err(err)?;
    }
    let cached_time = t.elapsed();
    let t = Instant::now();
    for &i in &draws {
        plain.get("docs", &id(i)).await.map_err(err)?;
    }
    let plain_time = t.elapsed();
    let stats = bounded.telemetry().cache.unwrap_or_default();
    let rate = |d: Duration| READS as f64 / d.as_secs_f64();
    let figures = [
        Figure::latency("get p50 (cached: a hit)", hit50, get50),
        Figure::latency("get p99 (cached: a hit)", hit99, get99),
        Figure::latency("get p50 (cached: a miss, then filled)", miss50, alone50),
        Figure::rate(
            format!("Zipf gets over {IDS} ids, {bound}"),
            rate(cached_time),
            rate(plain_time),
            "gets/s",
        ),
    ];
    let mut out = table(
        title,
        "the same get on the store, without the cache layer",
        &figures,
    );

    out.push_str(&format!(
        "Zipf (s = 1) over {IDS} ids, {READS} gets, {bound}: hit rate {:.1} % \
         ({} hits, {} misses, {} evictions)\n",
        100.0 * stats.hits as f64 / (stats.hits + stats.misses).max(1) as f64,
        stats.hits,
        stats.misses,
        stats.evictions
    ));
    if let Tier::Redis(url) = tier {
        out.push_str(&plain_redis(url, &cached, ops).await?);
    }
    Ok(out)
}

/// The hit beside what a hand-written cache without versions pays: one
/// `GET` of the same entry on the same server, decoded, alternating.
async fn plain_redis(url: &str, cached: &Handle, ops: usize) -> Result<String, String> {
    let client = redis::Client::open(url).map_err(err)?;
    let mut conn = redis::aio::ConnectionManager::new(client)
        .await
        .map_err(err)?;
    let key = format!("persistkit-bench-plain:{:016x}", rand::random::<u64>());
    let record = cached.get("docs", &id(0)).await.map_err(err)?;
    let payload = serde_json::to_string(&record).map_err(err)?;
    redis::cmd("SET")
        .arg(&key)
        .arg(&payload)
        .arg("PX")
        .arg(600_000)
        .query_async::<()>(&mut conn)
        .await
        .map_err(err)?;
    eprintln!("bench cache: {ops} hits beside as many plain Redis gets …");
    let (mut hit, mut plain) = (Vec::with_capacity(ops), Vec::with_capacity(ops));
    for _ in 0..ops {
        let t = Instant::now();
        cached.get("docs", &id(0)).await.map_err(err)?;
        hit.push(t.elapsed());
        let t = Instant::now();
        let got: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        let decoded: Option<persistkit::Record> =
            serde_json::from_str(&got.unwrap_or_default()).map_err(err)?;
        std::hint::black_box(decoded);
        plain.push(t.elapsed());
    }
    let _ = redis::cmd("DEL")
        .arg(&key)
        .query_async::<()>(&mut conn)
        .await;
    let (hit50, hit99) = latencies(hit);
    let (plain50, plain99) = latencies(plain);
    Ok(table(
        "the cache's hit beside a hand-written one",
        "one GET of the same entry on the same Redis, decoded: a cache without versions",
        &[
            Figure::latency("get p50 (cached: a hit)", hit50, plain50),
            Figure::latency("get p99 (cached: a hit)", hit99, plain99),
        ],
    ))
}
