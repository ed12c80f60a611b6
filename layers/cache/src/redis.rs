//! The shared cache tier, on Redis: several processes read and invalidate
//! one cache.
//!
//! # Keys
//! Under the configured prefix:
//! - `g`: the generation, set to a new token by every write that changes
//!   records it does not name (purge, clear, import, declaring an index).
//! - `v:<key>`: the record's version token, set to a new token by every
//!   write to the record.
//! - `e:<key>`: the entry, the record as the store had it (or its absence),
//!   tagged with the generation and the version token it was read under.
//!
//! `<key>` is the JSON array `[namespace, collection, id]`, so no two
//! records share one. Every key has a TTL: the generation and a version
//! live at least as long as any entry filled under them, so a prefix leaves
//! nothing behind once its entries have expired. A token is a random per-process base and a counter:
//! no two writes (or reads that find a token missing) ever use the same,
//! so an entry never matches a token set after it was written, even when
//! Redis has dropped a generation or version (expiry, eviction, restart).
//!
//! # Why a reader never takes a replaced value
//! A read runs one script: it returns the entry only if its tag is the
//! current generation and version token, and otherwise the tag a fill
//! must match (setting a missing generation or version to a new token). On
//! a miss the record is read from the store and stored by a second script,
//! only if the tag is still current. A writer changes the token after its
//! store write and before it returns. So an entry read before a write is
//! either refused at fill (the token moved) or filled under the old token
//! and never served again; a write is therefore visible to every process as
//! soon as it has returned.
//!
//! # When Redis cannot be reached
//! Every call has a deadline ([`RedisConfig::timeout`]). A failed call
//! sends reads to the store, and for [`RedisConfig::retry_after`] no call
//! tries Redis (so an outage does not cost every call the deadline); a
//! task probes it meanwhile. A write whose invalidation could not be sent
//! leaves this process owing one: before it uses Redis again it bumps the
//! generation, which drops every entry. Until then, *other* processes may
//! read what that write replaced: at most until this process reaches
//! Redis again (within `retry_after` of Redis answering) or the entry's
//! TTL ends, whichever is first. While Redis cannot be reached the layer
//! reports a problem, and `health` says `degraded`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use persistkit_core::{Error, Record, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

use crate::{Entry, RecordKey};

/// Where the shared cache lives and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Put before every key. Stores that share a Redis server need
    /// prefixes of their own, and every process on one store the same.
    pub prefix: String,
    /// The deadline of one call to Redis, connecting included (default
    /// 500 ms). A call past it goes to the store instead.
    pub timeout: Duration,
    /// After a failure, how long calls leave Redis alone before trying it
    /// again (default 1 s); a task probes it at that pace meanwhile.
    pub retry_after: Duration,
}

/// Setters for every option, so adding one never breaks a caller
/// (the struct is `#[non_exhaustive]`): `RedisConfig::new(url, prefix).timeout(d)`.
impl RedisConfig {
    /// The deadline of every Redis call.
    pub fn timeout(mut self, v: Duration) -> Self {
        self.timeout = v;
        self
    }

    /// How long no call tries Redis after a failure.
    pub fn retry_after(mut self, v: Duration) -> Self {
        self.retry_after = v;
        self
    }
}

impl RedisConfig {
    /// The defaults for a server at `url`, keys under `prefix`.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: prefix.into(),
            timeout: Duration::from_millis(500),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// What a miss saw: the tag a fill must still find current.
pub(crate) struct Ticket(String);

/// Returns `{1, entry}` when the entry's tag is the current generation
/// and version token, else `{0, tag}`: the tag a fill must match. A
/// missing generation or version (never set, expired, evicted) is set to
/// ARGV[1], a token never used before, so no entry written earlier can
/// match it.
const READ: &str = r"
local g = redis.call('GET', KEYS[1])
if not g then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  g = ARGV[1]
end
local v = redis.call('GET', KEYS[2])
if not v then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  v = ARGV[1]
end
local tag = g .. '|' .. v .. '|'
local e = redis.call('GET', KEYS[3])
if e and string.sub(e, 1, #tag) == tag then
  return {1, string.sub(e, #tag + 1)}
end
return {0, tag}
";

/// Stores ARGV[2] tagged ARGV[1] for ARGV[3] ms, only if the tag is still
/// current; the generation and version then live at least as long (ARGV[4]
/// ms), so neither expires under a live entry.
const FILL: &str = r"
local g = redis.call('GET', KEYS[1])
local v = redis.call('GET', KEYS[2])
if not g or not v or g .. '|' .. v .. '|' ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[3], ARGV[1] .. ARGV[2], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
";

/// Why Redis is not used now.
#[derive(Debug, Clone)]
struct Down {
    since: Instant,
    error: String,
    retry_at: Instant,
}

/// The shared cache tier: one connection (multiplexed) to the server, for
/// one [`Cached`](crate::Cached) layer.
pub struct RedisCache {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.inner.config.prefix)
            .finish()
    }
}

struct Shared {
    config: RedisConfig,
    conn: ConnectionManager,
    read: Script,
    fill: Script,
    generation_key: String,
    /// Tokens are this process's random base and a counter.
    token_base: u64,
    tokens: AtomicU64,
    /// The longest an entry lives, and so a version or a generation (ms):
    /// the layer's longest TTL, set when it wraps a store.
    version_ttl_ms: AtomicU64,
    down: Mutex<Option<Down>>,
    probing: AtomicBool,
    /// Invalidations that could not be sent, and how many of them a
    /// generation bump has since covered: this process owes a bump while
    /// `owed > paid`.
    owed: AtomicU64,
    paid: AtomicU64,
}

impl RedisCache {
    /// A cache on the server `config.url` names. It connects on first use,
    /// so a server that is down now does not stop the store from opening;
    /// it must be called inside a Tokio runtime, whose tasks carry the
    /// connection.
    ///
    /// # Errors
    /// `InvalidInput` for a URL that is not a Redis URL, an empty prefix or
    /// a zero timeout; `Unsupported` outside a Tokio runtime.
    pub fn connect(config: RedisConfig) -> Result<RedisCache> {
        if config.prefix.is_empty() {
            return Err(Error::invalid(
                "cache: the Redis key prefix is empty; give each store sharing a Redis server a prefix of its own",
            ));
        }
        if config.timeout.is_zero() {
            return Err(Error::invalid(
                "cache: the Redis timeout must be above zero",
            ));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::unsupported(
                "cache: a Redis cache is made inside a Tokio runtime",
            ));
        }
        let client = redis::Client::open(config.url.as_str()).map_err(|e| {
            Error::invalid(format!("cache: {:?} is not a Redis URL", config.url)).with_source(e)
        })?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(config.retry_after);
        let conn = ConnectionManager::new_lazy_with_config(client, manager)
            .map_err(|e| Error::invalid("cache: cannot use the Redis server").with_source(e))?;
        let token_base = rand::random::<u64>();
        Ok(RedisCache {
            inner: Arc::new(Shared {
                generation_key: format!("{}g", config.prefix),
                config,
                conn,
                read: Script::new(READ),
                fill: Script::new(FILL),
                token_base,
                tokens: AtomicU64::new(0),
                version_ttl_ms: AtomicU64::new(millis(Duration::from_secs(60))),
                down: Mutex::new(None),
                probing: AtomicBool::new(false),
                owed: AtomicU64::new(0),
                paid: AtomicU64::new(0),
            }),
        })
    }

    /// Entries live at most `ttl`: versions and generations live as long.
    pub(crate) fn set_longest_ttl(&self, ttl: Duration) {
        self.inner.version_ttl_ms.store(millis(ttl), SeqCst);
    }

    /// The entry, `Err(Some(ticket))` on a miss, `Err(None)` when Redis
    /// cannot be asked now.
    pub(crate) async fn lookup(
        &self,
        k: RecordKey<'_>,
    ) -> std::result::Result<Entry, Option<Ticket>> {
        let s = &self.inner;
        let (v, e) = s.keys(k);
        let mut conn = s.conn.clone();
        let reply = s
            .run(|| async move {
                s.read
                    .key(&s.generation_key)
                    .key(v)
                    .key(e)
                    .arg(s.token())
                    .arg(s.version_ttl())
                    .invoke_async::<(i64, String)>(&mut conn)
                    .await
            })
            .await
            .ok_or(None)?;
        match reply {
            (1, payload) => match serde_json::from_str::<Option<Record>>(&payload) {
                Ok(record) => Ok(Arc::new(record)),
                // Not ours to read (another version's format): a miss that
                // does not fill.
                Err(_) => Err(None),
            },
            (_, tag) => Err(Some(Ticket(tag))),
        }
    }

    /// Keep what a miss read, if no write (and no bump) came since. The
    /// read does not wait for it: the script checks the tag when it runs,
    /// so a fill that lands late (even after a timeout here) stores
    /// nothing stale.
    pub(crate) fn fill(&self, k: RecordKey<'_>, ticket: Ticket, entry: &Entry, ttl: Duration) {
        let Ok(payload) = serde_json::to_string(entry.as_ref()) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let s = self.inner.clone();
        let (v, e) = s.keys(k);
        rt.spawn(async move {
            let mut conn = s.conn.clone();
            // A failed fill stores nothing or a tagged entry: nothing owed.
            s.run(|| async {
                s.fill
                    .key(&s.generation_key)
                    .key(v)
                    .key(e)
                    .arg(ticket.0)
                    .arg(payload)
                    .arg(millis(ttl))
                    .arg(s.version_ttl().max(millis(ttl)))
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await;
        });
    }

    /// After writes to these records: a new version token for each, and
    /// their entries dropped, in one round trip.
    pub(crate) async fn invalidate(&self, keys: &[RecordKey<'_>]) {
        if keys.is_empty() {
            return;
        }
        let s = &self.inner;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for &k in keys {
            let (v, e) = s.keys(k);
            let token = format!("{:016x}.{}", s.token_base, s.tokens.fetch_add(1, SeqCst));
            pipe.cmd("SET")
                .arg(v)
                .arg(token)
                .arg("PX")
                .arg(s.version_ttl())
                .ignore()
                .cmd("DEL")
                .arg(e)
                .ignore();
        }
        let mut conn = s.conn.clone();
        let sent = s
            .run(|| async move { pipe.query_async::<()>(&mut conn).await })
            .await;
        if sent.is_none() {
            s.owe();
        }
    }

    /// After a write that may change records it does not name.
    pub(crate) async fn invalidate_all(&self) {
        let s = &self.inner;
        let mut conn = s.conn.clone();
        let sent = s
            .run(|| async move {
                redis::cmd("SET")
                    .arg(&s.generation_key)
                    .arg(s.token())
                    .arg("PX")
                    .arg(s.version_ttl())
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
        if sent.is_none() {
            s.owe();
        }
    }

    /// Why Redis is not used now, for `health`.
    pub(crate) fn problem(&self) -> Option<String> {
        let down = self.inner.down.lock().unwrap_or_else(|e| e.into_inner());
        down.as_ref().map(|d| {
            format!(
                "cache: Redis unreachable for {} s ({}); reads go to the store",
                d.since.elapsed().as_secs(),
                d.error
            )
        })
    }
}

impl Shared {
    /// A token no write or read, in any process, used before: this
    /// process's random base and a counter.
    fn token(&self) -> String {
        format!(
            "{:016x}.{}",
            self.token_base,
            self.tokens.fetch_add(1, SeqCst)
        )
    }

    fn version_ttl(&self) -> u64 {
        self.version_ttl_ms.load(SeqCst)
    }

    fn keys(&self, (ns, collection, id): RecordKey<'_>) -> (String, String) {
        let body = serde_json::json!([ns, collection, id]).to_string();
        (
            format!("{}v:{body}", self.config.prefix),
            format!("{}e:{body}", self.config.prefix),
        )
    }

    /// Run `call` on Redis within the deadline, first paying any owed
    /// generation bump. `None` when Redis is left alone for now or the call
    /// failed (which leaves it alone for `retry_after`).
    async fn run<T, F, Fut>(self: &Arc<Self>, call: F) -> Option<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        if let Some(d) = self.current_down() {
            if Instant::now() < d.retry_at {
                return None;
            }
        }
        if let Err(e) = self.settle().await {
            self.mark_down(e);
            return None;
        }
        match tokio::time::timeout(self.config.timeout, call()).await {
            Ok(Ok(v)) => {
                self.mark_up();
                Some(v)
            }
            Ok(Err(e)) => {
                self.mark_down(e.to_string());
                None
            }
            Err(_) => {
                self.mark_down(timed_out(self.config.timeout));
                None
            }
        }
    }

    /// Pay an owed generation bump, if any.
    async fn settle(&self) -> std::result::Result<(), String> {
        let owed = self.owed.load(SeqCst);
        if owed <= self.paid.load(SeqCst) {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut set = redis::cmd("SET");
        set.arg(&self.generation_key)
            .arg(self.token())
            .arg("PX")
            .arg(self.version_ttl());
        let bump = set.query_async::<()>(&mut conn);
        match tokio::time::timeout(self.config.timeout, bump).await {
            Ok(Ok(_)) => {
                self.paid.fetch_max(owed, SeqCst);
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(timed_out(self.config.timeout)),
        }
    }

    fn owe(self: &Arc<Self>) {
        self.owed.fetch_add(1, SeqCst);
        // Pay it as soon as Redis answers, not at the next call.
        self.start_probe();
    }

    fn current_down(&self) -> Option<Down> {
        self.down.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn mark_down(self: &Arc<Self>, error: String) {
        let now = Instant::now();
        {
            let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
            let since = down.as_ref().map_or(now, |d| d.since);
            if down.is_none() {
                tracing::warn!(error = %error, "cache: Redis unreachable; reads go to the store");
            }
            *down = Some(Down {
                since,
                error,
                retry_at: now + self.config.retry_after,
            });
        }
        self.start_probe();
    }

    fn mark_up(&self) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if down.take().is_some() {
            tracing::info!("cache: Redis answers again");
        }
    }

    /// While Redis is down or a bump is owed, try it every `retry_after`
    /// on a task of its own, so `health` and the other processes learn of
    /// its return without waiting for a call. One probe at a time; it ends
    /// with the cache.
    fn start_probe(self: &Arc<Self>) {
        if self.probing.swap(true, SeqCst) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.probing.store(false, SeqCst);
            return;
        };
        let weak: Weak<Shared> = Arc::downgrade(self);
        let pause = self.config.retry_after;
        rt.spawn(async move {
            loop {
                tokio::time::sleep(pause).await;
                let Some(s) = weak.upgrade() else { return };
                let mut conn = s.conn.clone();
                let ping = s
                    .run(
                        || async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
                    )
                    .await;
                let settled = s.owed.load(SeqCst) <= s.paid.load(SeqCst);
                if ping.is_some() && settled {
                    s.probing.store(false, SeqCst);
                    // A failure between the check and the flag starts
                    // another probe.
                    if s.current_down().is_none() && s.owed.load(SeqCst) <= s.paid.load(SeqCst) {
                        return;
                    }
                    if s.probing.swap(true, SeqCst) {
                        return;
                    }
                }
            }
        });
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn timed_out(after: Duration) -> String {
    format!("no answer within {} ms", after.as_millis())
}
