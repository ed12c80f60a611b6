//! A read cache in front of any [`Store`]: a layer that is itself a store,
//! so it composes (`Cached<Observed<Sqlite>>`) and is held to the whole
//! conformance suite.
//!
//! It caches record `get`s per (namespace, collection, id), with a TTL per
//! collection, in one of two places:
//! - in process, on [`moka`], bounded by a number of entries
//!   ([`Cached::wrap`]);
//! - on Redis, shared by every process that uses the same server and key
//!   prefix ([`Cached::wrap_shared`], the [`RedisCache`] docs say how).
//!
//! Every write that goes through it invalidates what it could change: a
//! put, delete or batch the records it names; purge, clear, import and
//! declaring an index everything (they change records they do not name).
//! A read racing a write never leaves the older value behind: a read keeps
//! what it fetched only if no write to the same key (and no invalidation of
//! everything) returned meanwhile. So after a write returns, no call
//! through this layer sees what it replaced; with Redis, no call through
//! any process's layer on the same server and prefix.
//!
//! The in-process cache is one process's: writes made by other processes
//! are seen when the entry's TTL ends, so that layer drops the store's
//! `shared_across_processes` capability. Writes that bypass the layer
//! (another program on the database) are seen when the TTL ends, with
//! either tier.
//!
//! When Redis cannot be reached, reads go to the store and writes still
//! succeed; `health` says `degraded` until it answers again. Hits, misses,
//! evictions and reads sent to the store for want of a cache appear in
//! `health` under `layers.cache`.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use persistkit_core::layer::{ForwardEvents, ForwardIdempotency, ForwardMetrics};
use persistkit_core::op::*;
use persistkit_core::*;

mod local;
mod redis;

pub use crate::redis::{RedisCache, RedisConfig};

/// How a [`Cached`] layer caches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// How long an entry may be served (default 60 s).
    pub ttl: Duration,
    /// A TTL of its own per collection; `Duration::ZERO` leaves a
    /// collection uncached.
    pub collection_ttl: BTreeMap<String, Duration>,
    /// Most entries held in process (default 100 000); the least useful go
    /// first. Redis keeps to its own `maxmemory`.
    pub max_entries: u64,
}

/// Setters for every option, so adding one never breaks a caller
/// (the struct is `#[non_exhaustive]`): `CacheConfig::default().ttl(d)`.
impl CacheConfig {
    /// How long an entry may be served.
    pub fn ttl(mut self, v: Duration) -> Self {
        self.ttl = v;
        self
    }

    /// Entry lifetimes per collection, in place of `ttl` there.
    pub fn collection_ttl(mut self, v: BTreeMap<String, Duration>) -> Self {
        self.collection_ttl = v;
        self
    }

    /// The most entries the in-process tier keeps.
    pub fn max_entries(mut self, v: u64) -> Self {
        self.max_entries = v;
        self
    }
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

    /// The longest any entry lives.
    pub fn longest_ttl(&self) -> Duration {
        self.collection_ttl
            .values()
            .copied()
            .fold(self.ttl, Duration::max)
    }
}

/// A record as the store has it, expired or not (expiry is checked against
/// each caller's clock when served), or `None` when absent.
type Entry = Arc<Option<Record>>;

/// (namespace, collection, id).
type RecordKey<'a> = (&'a str, &'a str, &'a str);

/// Where entries live.
enum Tier {
    Local(local::Local),
    Redis(RedisCache),
}

/// What a miss saw, for the fill to compare.
enum Ticket {
    Local(local::Ticket),
    Redis(crate::redis::Ticket),
}

/// What looking a record up found.
enum Lookup {
    Hit(Entry),
    Miss(Ticket),
    /// The cache cannot be asked now: go to the store, keep nothing.
    Unavailable,
}

impl Tier {
    async fn lookup(&self, k: RecordKey<'_>) -> Lookup {
        match self {
            Tier::Local(l) => match l.lookup(k) {
                Ok(hit) => Lookup::Hit(hit),
                Err(t) => Lookup::Miss(Ticket::Local(t)),
            },
            Tier::Redis(r) => match r.lookup(k).await {
                Ok(hit) => Lookup::Hit(hit),
                Err(Some(t)) => Lookup::Miss(Ticket::Redis(t)),
                Err(None) => Lookup::Unavailable,
            },
        }
    }

    async fn fill(&self, k: RecordKey<'_>, ticket: Ticket, entry: Entry, ttl: Duration) {
        match (self, ticket) {
            // moka applies the collection's TTL itself.
            (Tier::Local(l), Ticket::Local(t)) => l.fill(k, t, entry),
            (Tier::Redis(r), Ticket::Redis(t)) => r.fill(k, t, &entry, ttl),
            // A ticket is always its own tier's.
            _ => {}
        }
    }

    async fn invalidate(&self, keys: &[RecordKey<'_>]) {
        match self {
            Tier::Local(l) => keys.iter().for_each(|&k| l.invalidate(k)),
            Tier::Redis(r) => r.invalidate(keys).await,
        }
    }

    async fn invalidate_all(&self) {
        match self {
            Tier::Local(l) => l.invalidate_all(),
            Tier::Redis(r) => r.invalidate_all().await,
        }
    }
}

/// The read cache layer. See the [crate docs](crate).
pub struct Cached {
    inner: Arc<dyn Store>,
    config: CacheConfig,
    tier: Tier,
    hits: AtomicU64,
    misses: AtomicU64,
    fallbacks: AtomicU64,
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tier = match &self.tier {
            Tier::Local(_) => "in process",
            Tier::Redis(_) => "redis",
        };
        f.debug_struct("Cached")
            .field("inner", &self.inner)
            .field("tier", &tier)
            .field("config", &self.config)
            .finish()
    }
}

impl Cached {
    /// `inner` behind an in-process read cache configured by `config`.
    pub fn wrap(inner: Arc<dyn Store>, config: CacheConfig) -> Arc<Cached> {
        let tier = Tier::Local(local::Local::new(&config));
        Self::with_tier(inner, config, tier)
    }

    /// `inner` behind a read cache on Redis, shared with every process
    /// that uses the same server and prefix. Make `cache` with
    /// [`RedisCache::connect`].
    pub fn wrap_shared(
        inner: Arc<dyn Store>,
        config: CacheConfig,
        cache: RedisCache,
    ) -> Arc<Cached> {
        cache.set_longest_ttl(config.longest_ttl());
        Self::with_tier(inner, config, Tier::Redis(cache))
    }

    fn with_tier(inner: Arc<dyn Store>, config: CacheConfig, tier: Tier) -> Arc<Cached> {
        Arc::new(Cached {
            inner,
            config,
            tier,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        })
    }

    fn add_stats(&self, mut t: Telemetry) -> Telemetry {
        let (evictions, entries) = match &self.tier {
            Tier::Local(l) => (l.evictions(), l.entries()),
            // Redis counts its own (INFO stats, DBSIZE), for all its users.
            Tier::Redis(_) => (0, 0),
        };
        t.cache = Some(CacheStats {
            hits: self.hits.load(SeqCst),
            misses: self.misses.load(SeqCst),
            evictions,
            entries,
            fallbacks: self.fallbacks.load(SeqCst),
        });
        if let Tier::Redis(r) = &self.tier {
            t.problems.extend(r.problem());
        }
        t
    }

    fn capabilities_of(&self, c: Capabilities) -> Capabilities {
        match self.tier {
            Tier::Local(_) => {
                let mut c = c;
                c.shared_across_processes = false;
                c
            }
            Tier::Redis(_) => c,
        }
    }
}

impl Layer for Cached {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}

impl ForwardMetrics for Cached {}
impl ForwardEvents for Cached {}
impl ForwardIdempotency for Cached {}

/// By hand, not [`ForwardAdmin`](persistkit_core::layer::ForwardAdmin): the cache must see every call that
/// changes records, so an administrative write added to the contract does
/// not compile here until the cache decides what it drops.
#[async_trait]
impl AdminStore for Cached {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
    fn capabilities(&self) -> Capabilities {
        self.capabilities_of(self.inner.capabilities())
    }
    async fn migrate(&self) -> Result<SchemaVersions> {
        self.inner.migrate().await
    }
    async fn schema_versions(&self) -> Result<SchemaVersions> {
        self.inner.schema_versions().await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn counts(&self, cx: &Cx) -> Result<Counts> {
        self.inner.counts(cx).await
    }
    async fn storage_bytes(&self) -> Result<Option<u64>> {
        self.inner.storage_bytes().await
    }
    fn pool_stats(&self) -> Option<PoolStats> {
        self.inner.pool_stats()
    }
    fn telemetry(&self) -> Telemetry {
        self.add_stats(self.inner.telemetry())
    }
    // Purge, clear and import change records without naming them: they
    // drop everything once done, whether they succeeded or not (a failed
    // call may still have changed the store).
    async fn purge(&self, cx: &Cx, cutoffs: &PurgeCutoffs) -> Result<PurgeReport> {
        let r = self.inner.purge(cx, cutoffs).await;
        self.tier.invalidate_all().await;
        r
    }
    async fn clear(&self, cx: &Cx) -> Result<Counts> {
        let r = self.inner.clear(cx).await;
        self.tier.invalidate_all().await;
        r
    }
    async fn namespaces(&self) -> Result<Vec<String>> {
        self.inner.namespaces().await
    }
    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        let r = self.inner.import(archive, progress).await;
        self.tier.invalidate_all().await;
        r
    }
    async fn backup(&self, dest: &std::path::Path) -> Result<()> {
        self.inner.backup(dest).await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}

#[async_trait]
impl RecordStore for Cached {
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        let ns = cx.ns();
        let r = self.inner.put(cx, put).await;
        self.tier.invalidate(&[(ns, put.collection, put.id)]).await;
        r
    }

    async fn incr(&self, cx: &Cx, op: &IncrField<'_>) -> Result<Record> {
        let ns = cx.ns();
        let r = self.inner.incr(cx, op).await;
        self.tier.invalidate(&[(ns, op.collection, op.id)]).await;
        r
    }

    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>> {
        let ns = cx.ns();
        let now = cx.now();
        let GetRecord { collection, id, .. } = *op;
        if self.config.ttl_of(collection).is_zero() {
            return self.inner.get(cx, op).await;
        }
        let k = (ns, collection, id);
        let ticket = match self.tier.lookup(k).await {
            Lookup::Hit(hit) => {
                self.hits.fetch_add(1, SeqCst);
                return Ok(hit.as_ref().clone().filter(|r| r.is_live(now)));
            }
            Lookup::Miss(ticket) => ticket,
            Lookup::Unavailable => {
                self.fallbacks.fetch_add(1, SeqCst);
                return self.inner.get(cx, op).await;
            }
        };
        self.misses.fetch_add(1, SeqCst);
        // The record whatever its expiry: each caller's clock decides.
        let stored = self.inner.get(&cx.at(Timestamp::MIN), op).await?;
        let entry = Arc::new(stored);
        self.tier
            .fill(k, ticket, entry.clone(), self.config.ttl_of(collection))
            .await;
        Ok(entry.as_ref().clone().filter(|r| r.is_live(now)))
    }

    async fn delete(&self, cx: &Cx, op: &DeleteRecord<'_>) -> Result<()> {
        let ns = cx.ns();
        let DeleteRecord { collection, id, .. } = *op;
        let r = self.inner.delete(cx, op).await;
        self.tier.invalidate(&[(ns, collection, id)]).await;
        r
    }

    async fn list_records(&self, cx: &Cx, op: &ListRecords<'_>) -> Result<Vec<Record>> {
        self.inner.list_records(cx, op).await
    }

    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>> {
        self.inner.list_collections(cx).await
    }

    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64> {
        self.inner.count(cx, op).await
    }

    async fn create_index(&self, cx: &Cx, index: &Index) -> Result<bool> {
        // Declaring an index removes the collection's expired records.
        let r = self.inner.create_index(cx, index).await;
        self.tier.invalidate_all().await;
        r
    }

    async fn list_indexes(&self, cx: &Cx, op: &ListIndexes<'_>) -> Result<Vec<Index>> {
        self.inner.list_indexes(cx, op).await
    }

    async fn find(&self, cx: &Cx, op: &FindRecords<'_>) -> Result<Vec<Found>> {
        self.inner.find(cx, op).await
    }
}

#[async_trait]
impl BatchStore for Cached {
    async fn apply(&self, cx: &Cx, op: &Apply<'_>) -> Result<Vec<Applied>> {
        let ns = cx.ns();
        let items = op.items;
        let r = self.inner.apply(cx, op).await;
        let keys: Vec<RecordKey<'_>> = items
            .iter()
            .filter_map(|item| match item {
                BatchItem::Put { collection, id, .. }
                | BatchItem::Delete { collection, id, .. } => {
                    Some((ns, collection.as_str(), id.as_str()))
                }
                BatchItem::Append(_) | BatchItem::Complete { .. } => None,
            })
            .collect();
        self.tier.invalidate(&keys).await;
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

    fn redis_config(url: &str) -> RedisConfig {
        RedisConfig {
            timeout: Duration::from_millis(300),
            retry_after: Duration::from_millis(200),
            ..RedisConfig::new(url, "persistkit-unit:")
        }
    }

    #[tokio::test]
    async fn a_bad_redis_config_is_refused_clearly() {
        let e = RedisCache::connect(redis_config("http://127.0.0.1:6379")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.message().contains("not a Redis URL"), "{e}");
        let e = RedisCache::connect(RedisConfig::new("redis://127.0.0.1:6379", "")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.message().contains("prefix"), "{e}");
        let e = RedisCache::connect(RedisConfig {
            timeout: Duration::ZERO,
            ..redis_config("redis://127.0.0.1:6379")
        })
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }

    #[test]
    fn a_redis_cache_needs_a_runtime() {
        let e = RedisCache::connect(redis_config("redis://127.0.0.1:6379")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    }

    /// Nothing listens on port 1: every call goes to the store and
    /// succeeds, and health says why it is degraded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_no_redis_every_call_goes_to_the_store() {
        let cache =
            RedisCache::connect(redis_config("redis://127.0.0.1:1")).expect("connecting is lazy");
        let cached =
            Cached::wrap_shared(Arc::new(MemoryStore::new()), CacheConfig::default(), cache);
        assert_eq!(
            cached.capabilities(),
            MemoryStore::new().capabilities(),
            "a shared cache keeps the store's capabilities"
        );
        let h = Handle::new(cached.clone());
        h.put("c", "1", &json!({"v": 1}), Expect::Absent)
            .await
            .unwrap();
        assert_eq!(
            h.get("c", "1").await.unwrap().unwrap().data,
            json!({"v": 1})
        );
        h.put("c", "1", &json!({"v": 2}), Expect::Version(1))
            .await
            .unwrap();
        assert_eq!(
            h.get("c", "1").await.unwrap().unwrap().data,
            json!({"v": 2})
        );
        h.delete("c", "1", Expect::Any).await.unwrap();
        assert_eq!(h.get("c", "1").await.unwrap(), None);
        h.clear().await.unwrap();
        let stats = cached.telemetry().cache.unwrap();
        assert_eq!((stats.hits, stats.misses), (0, 0), "{stats:?}");
        assert_eq!(stats.fallbacks, 3, "{stats:?}");
        let report = h.health().await;
        assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
        assert!(
            report
                .error
                .as_deref()
                .unwrap_or("")
                .contains("Redis unreachable"),
            "{report:?}"
        );
    }
}
