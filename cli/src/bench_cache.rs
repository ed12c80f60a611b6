//! `persistkit bench cache` and `bench cache-postgres`: a cached `get`
//! (a hit) beside the same `get` on the store alone, and the hit rate of a
//! skewed workload (Zipf over 10 000 ids) with a cache of 1 000 entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use persistkit::{AdminStore, Expect, Handle, Store};
use persistkit_cache::{CacheConfig, Cached};
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

/// Run on `store` (an empty one), titled `title`.
pub async fn run(title: &str, store: Arc<dyn Store>, ops: usize) -> Result<String, String> {
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
    let warm = Cached::wrap(store.clone(), CacheConfig::default());
    let cached = Handle::new(warm.clone()).with_timeout(None);
    for i in 0..IDS {
        cached.get("docs", &id(i)).await.map_err(err)?;
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
    let bounded = Cached::wrap(
        store.clone(),
        CacheConfig {
            max_entries: BOUND,
            ..CacheConfig::default()
        },
    );
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
        Figure::rate(
            format!("Zipf gets, cache of {BOUND} of {IDS} ids"),
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
        "Zipf (s = 1) over {IDS} ids, {READS} gets, at most {BOUND} entries: hit rate {:.1} % \
         ({} hits, {} misses, {} evictions)\n",
        100.0 * stats.hits as f64 / (stats.hits + stats.misses).max(1) as f64,
        stats.hits,
        stats.misses,
        stats.evictions
    ));
    Ok(out)
}
