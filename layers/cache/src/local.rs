//! The in-process cache tier, on [`moka`].

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::sync::Cache;

use crate::{CacheConfig, Entry, RecordKey};

/// What a cached entry is known by. `generation` changes when everything
/// is invalidated at once, which leaves older entries unreachable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    generation: u64,
    ns: String,
    collection: String,
    id: String,
}

/// What a miss saw, for [`Local::fill`] to compare: the key's write count
/// and the generation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    writes: u64,
    generation: u64,
}

/// Write counters that reads compare before storing what they fetched,
/// each behind a lock that also covers that store and a writer's
/// invalidation.
const STRIPES: usize = 1024;

pub(crate) struct Local {
    cache: Cache<Key, Entry>,
    generation: AtomicU64,
    stripes: Box<[Mutex<u64>]>,
    evictions: Arc<AtomicU64>,
}

struct PerCollectionTtl(CacheConfig);

impl moka::Expiry<Key, Entry> for PerCollectionTtl {
    fn expire_after_create(&self, key: &Key, _: &Entry, _: Instant) -> Option<Duration> {
        Some(self.0.ttl_of(&key.collection))
    }
}

impl Local {
    pub(crate) fn new(config: &CacheConfig) -> Self {
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
        Local {
            cache,
            generation: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            evictions,
        }
    }

    fn stripe(&self, k: RecordKey<'_>) -> &Mutex<u64> {
        let mut h = DefaultHasher::new();
        k.hash(&mut h);
        &self.stripes[(h.finish() as usize) % STRIPES]
    }

    fn key(&self, k: RecordKey<'_>, generation: u64) -> Key {
        Key {
            generation,
            ns: k.0.to_owned(),
            collection: k.1.to_owned(),
            id: k.2.to_owned(),
        }
    }

    /// The entry, or what the miss saw. On a hit no lock is taken.
    pub(crate) fn lookup(&self, k: RecordKey<'_>) -> Result<Entry, Ticket> {
        let generation = self.generation.load(SeqCst);
        if let Some(hit) = self.cache.get(&self.key(k, generation)) {
            return Ok(hit);
        }
        Err(Ticket {
            writes: *lock(self.stripe(k)),
            generation,
        })
    }

    /// Keep what a miss fetched, only if no write to the key (and no
    /// invalidation of everything) returned since the miss: a writer counts
    /// and invalidates under this same lock, so what is kept is never older
    /// than an acknowledged write, not even for a moment.
    pub(crate) fn fill(&self, k: RecordKey<'_>, ticket: Ticket, entry: Entry) {
        let writes = lock(self.stripe(k));
        if *writes == ticket.writes && self.generation.load(SeqCst) == ticket.generation {
            self.cache.insert(self.key(k, ticket.generation), entry);
        }
    }

    /// After a write to one record: count the write and drop the entry,
    /// under the stripe's lock.
    pub(crate) fn invalidate(&self, k: RecordKey<'_>) {
        let mut writes = lock(self.stripe(k));
        *writes += 1;
        self.cache
            .invalidate(&self.key(k, self.generation.load(SeqCst)));
    }

    /// After a write that may change records it does not name.
    pub(crate) fn invalidate_all(&self) {
        self.generation.fetch_add(1, SeqCst);
        self.cache.invalidate_all();
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(SeqCst)
    }

    pub(crate) fn entries(&self) -> u64 {
        self.cache.entry_count()
    }
}

/// A stripe's counter; a panic elsewhere cannot leave a counter half
/// written, so a poisoned lock is still good.
fn lock(m: &Mutex<u64>) -> MutexGuard<'_, u64> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
