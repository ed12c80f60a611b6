//! A read cache in front of any [`Store`]: a layer that is itself a store,
//! so it composes (`Cached<Observed<Sqlite>>`) and is held to the whole
//! conformance suite.
//!
//! It caches record `get`s per (namespace, collection, id), in process, on
//! [`moka`], with a TTL per collection and a bound on entries. Every write
//! that goes through it invalidates what it could change: a put, delete or
//! batch the records it names; purge, clear and import everything (they
//! change records they do not name). A read racing a write never leaves
//! the older value behind: a read keeps what it fetched only if no write to
//! the same key (and no invalidation of everything) returned meanwhile,
//! checked under the lock a writer invalidates under. So after a write
//! returns, no call through this layer sees what it replaced.
//!
//! The cache is one process's: writes made by other processes are seen
//! when the entry's TTL ends. The layer therefore drops the store's
//! `shared_across_processes` capability. Hits, misses and evictions appear
//! in `health` under `layers.cache`.
#![deny(missing_docs)]

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::notification::RemovalCause;
use moka::sync::Cache;
use persistkit_core::*;

/// How a [`Cached`] layer caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long an entry may be served (default 60 s).
    pub ttl: Duration,
    /// A TTL of its own per collection; `Duration::ZERO` leaves a
    /// collection uncached.
    pub collection_ttl: BTreeMap<String, Duration>,
    /// Most entries held (default 100 000); the least useful go first.
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(60),
            collection_ttl: BTreeMap::new(),
            max_entries: 100_000,
        }
    }
}

impl CacheConfig {
    fn ttl_of(&self, collection: &str) -> Duration {
        self.collection_ttl
            .get(collection)
            .copied()
            .unwrap_or(self.ttl)
    }
}

/// What a cached entry is known by. `generation` changes when everything
/// is invalidated at once, which leaves older entries unreachable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    generation: u64,
    ns: String,
    collection: String,
    id: String,
}

/// A record as the store has it, expired or not (expiry is checked against
/// each caller's clock when served), or `None` when absent.
type Entry = Arc<Option<Record>>;

/// Write counters that reads compare before storing what they fetched,
/// each behind a lock that also covers that store and a writer's
/// invalidation.
const STRIPES: usize = 1024;

/// The read cache layer. See the [crate docs](crate).
pub struct Cached {
    inner: Arc<dyn Store>,
    config: CacheConfig,
    cache: Cache<Key, Entry>,
    generation: AtomicU64,
    stripes: Box<[Mutex<u64>]>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Arc<AtomicU64>,
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

struct PerCollectionTtl(CacheConfig);

impl moka::Expiry<Key, Entry> for PerCollectionTtl {
    fn expire_after_create(&self, key: &Key, _: &Entry, _: Instant) -> Option<Duration> {
        Some(self.0.ttl_of(&key.collection))
    }
}

impl Cached {
    /// `inner` behind a read cache configured by `config`.
    pub fn wrap(inner: Arc<dyn Store>, config: CacheConfig) -> Arc<Cached> {
        let evictions = Arc::new(AtomicU64::new(0));
        let counted = evictions.clone();
        let cache = Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(PerCollectionTtl(config.clone()))
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    counted.fetch_add(1, SeqCst);
                }
            })
            .build();
        Arc::new(Cached {
            inner,
            config,
            cache,
            generation: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions,
        })
    }

    fn stripe(&self, ns: &str, collection: &str, id: &str) -> &Mutex<u64> {
        let mut h = DefaultHasher::new();
        (ns, collection, id).hash(&mut h);
        &self.stripes[(h.finish() as usize) % STRIPES]
    }

    fn key(&self, ns: &str, collection: &str, id: &str) -> Key {
        Key {
            generation: self.generation.load(SeqCst),
            ns: ns.to_owned(),
            collection: collection.to_owned(),
            id: id.to_owned(),
        }
    }

    /// After a write to one record (whether it succeeded or not: a failed
    /// write may still have reached the store): count the write and drop
    /// the entry, under the stripe's lock.
    fn invalidate(&self, ns: &str, collection: &str, id: &str) {
        let mut writes = lock(self.stripe(ns, collection, id));
        *writes += 1;
        self.cache.invalidate(&self.key(ns, collection, id));
    }

    /// After a write that may change records it does not name.
    fn invalidate_all(&self) {
        self.generation.fetch_add(1, SeqCst);
        self.cache.invalidate_all();
    }

    /// The admin calls that change records without naming them drop
    /// everything once they are done.
    async fn admin_around<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let r = call.await;
        if matches!(op, "purge" | "clear" | "import") {
            self.invalidate_all();
        }
        r
    }

    fn add_stats(&self, mut t: Telemetry) -> Telemetry {
        t.cache = Some(CacheStats {
            hits: self.hits.load(SeqCst),
            misses: self.misses.load(SeqCst),
            evictions: self.evictions.load(SeqCst),
            entries: self.cache.entry_count(),
        });
        t
    }

    fn one_process(&self, c: Capabilities) -> Capabilities {
        Capabilities {
            shared_across_processes: false,
            ..c
        }
    }
}

/// A stripe's counter; a panic elsewhere cannot leave a counter half
/// written, so a poisoned lock is still good.
fn lock(m: &Mutex<u64>) -> MutexGuard<'_, u64> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Layer for Cached {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}

persistkit_core::forward_metric_store!(Cached, inner);
persistkit_core::forward_event_store!(Cached, inner);
persistkit_core::forward_idempotency_store!(Cached, inner);
persistkit_core::forward_admin_store!(Cached, inner, admin_around; telemetry = add_stats; capabilities = one_process);

#[async_trait]
impl RecordStore for Cached {
    async fn put(&self, ns: &str, put: &PutRecord<'_>, now: Timestamp) -> Result<Record> {
        let r = self.inner.put(ns, put, now).await;
        self.invalidate(ns, put.collection, put.id);
        r
    }

    async fn get(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Record>> {
        if self.config.ttl_of(collection).is_zero() {
            return self.inner.get(ns, collection, id, now).await;
        }
        let key = self.key(ns, collection, id);
        if let Some(hit) = self.cache.get(&key) {
            self.hits.fetch_add(1, SeqCst);
            return Ok(hit.as_ref().clone().filter(|r| r.is_live(now)));
        }
        self.misses.fetch_add(1, SeqCst);
        let stripe = self.stripe(ns, collection, id);
        let before = *lock(stripe);
        // The record whatever its expiry: each caller's clock decides.
        let stored = self.inner.get(ns, collection, id, Timestamp::MIN).await?;
        {
            // Keep it only if no write to the key returned meanwhile: a
            // writer counts and invalidates under this same lock, so what
            // we keep is never older than an acknowledged write, not even
            // for a moment.
            let writes = lock(stripe);
            if *writes == before && self.generation.load(SeqCst) == key.generation {
                self.cache.insert(key, Arc::new(stored.clone()));
            }
        }
        Ok(stored.filter(|r| r.is_live(now)))
    }

    async fn delete(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        expect: Expect,
        now: Timestamp,
    ) -> Result<()> {
        let r = self.inner.delete(ns, collection, id, expect, now).await;
        self.invalidate(ns, collection, id);
        r
    }

    async fn list_records(
        &self,
        ns: &str,
        collection: &str,
        after: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Record>> {
        self.inner
            .list_records(ns, collection, after, limit, now)
            .await
    }

    async fn list_collections(&self, ns: &str) -> Result<Vec<String>> {
        self.inner.list_collections(ns).await
    }

    async fn create_index(&self, ns: &str, index: &Index, now: Timestamp) -> Result<bool> {
        // Declaring an index removes the collection's expired records.
        let r = self.inner.create_index(ns, index, now).await;
        self.invalidate_all();
        r
    }

    async fn list_indexes(&self, ns: &str, collection: Option<&str>) -> Result<Vec<Index>> {
        self.inner.list_indexes(ns, collection).await
    }

    async fn find(
        &self,
        ns: &str,
        collection: &str,
        query: &FindQuery,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Found>> {
        self.inner.find(ns, collection, query, limit, now).await
    }
}

#[async_trait]
impl BatchStore for Cached {
    async fn apply(&self, ns: &str, items: &[BatchItem], now: Timestamp) -> Result<Vec<Applied>> {
        let r = self.inner.apply(ns, items, now).await;
        for item in items {
            match item {
                BatchItem::Put { collection, id, .. }
                | BatchItem::Delete { collection, id, .. } => self.invalidate(ns, collection, id),
                BatchItem::Append(_) | BatchItem::Complete { .. } => {}
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use persistkit_memory::MemoryStore;
    use serde_json::json;

    #[tokio::test]
    async fn hits_after_a_miss_and_counts_them() {
        let cached = Cached::wrap(Arc::new(MemoryStore::new()), CacheConfig::default());
        let h = Handle::new(cached.clone());
        h.put("c", "1", &json!({"v": 1}), Expect::Absent)
            .await
            .unwrap();
        for _ in 0..3 {
            assert_eq!(
                h.get("c", "1").await.unwrap().unwrap().data,
                json!({"v": 1})
            );
        }
        let stats = cached.telemetry().cache.unwrap();
        assert_eq!((stats.hits, stats.misses), (2, 1));
        h.put("c", "1", &json!({"v": 2}), Expect::Any)
            .await
            .unwrap();
        assert_eq!(
            h.get("c", "1").await.unwrap().unwrap().data,
            json!({"v": 2})
        );
        assert!(!cached.capabilities().shared_across_processes);
    }

    #[tokio::test]
    async fn a_zero_ttl_leaves_a_collection_uncached() {
        let config = CacheConfig {
            collection_ttl: [("live".to_string(), Duration::ZERO)].into(),
            ..CacheConfig::default()
        };
        let cached = Cached::wrap(Arc::new(MemoryStore::new()), config);
        let h = Handle::new(cached.clone());
        h.get("live", "1").await.unwrap();
        h.get("live", "1").await.unwrap();
        let stats = cached.telemetry().cache.unwrap();
        assert_eq!((stats.hits, stats.misses), (0, 0));
    }
}
