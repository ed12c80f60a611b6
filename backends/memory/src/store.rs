use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::Value;

use persistkit_core::archive::not_empty;
use persistkit_core::index::{index_differs, no_such_index};
use persistkit_core::metrics::aggregate_sorted;
use persistkit_core::{
    check_expect, check_live_claim, expectation_error, next_position, next_version, unique_conflict,
};
use persistkit_core::{
    AdminStore, AggregateQuery, AggregateRow, Appended, Applied, ArchiveItem, ArchiveNamespace,
    BatchItem, BatchStore, Capabilities, Claim, Counts, Error, Event, EventQuery, EventStore,
    Expect, FindQuery, Found, IdempotencyEntry, IdempotencyStore, ImportProgress, Index,
    MetricPoint, MetricQuery, MetricStore, PreparedEvent, PurgeCutoffs, PurgeReport, PutRecord,
    Record, RecordStore, Result, SchemaVersions, StoredMetric, Timestamp,
};

const SCHEMA_VERSION: u32 = 1;

/// An in-memory store. Clones share the same data, which is how the
/// conformance suite gets a "second handle". Closing one closes them all.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    closed: Arc<AtomicBool>,
}

type MetricOrder = (Timestamp, String, String, u64);

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    metrics: HashMap<String, BTreeMap<MetricOrder, StoredMetric>>,
    events: HashMap<String, Log>,
    keys: HashMap<String, Keys>,
    records: HashMap<String, Records>,
}

#[derive(Debug, Default, Clone)]
struct Log {
    last_position: u64,
    by_position: BTreeMap<u64, Event>,
    by_time: BTreeMap<(Timestamp, u64), u64>,
    /// (kind, occurred_at, digest) → (id, position).
    dedupe: HashMap<(String, Timestamp, String), (u64, u64)>,
}

impl Log {
    /// Append `events`, all of them or (on a full log) none.
    fn append(&mut self, ns: &str, events: &[PreparedEvent]) -> Result<Vec<Appended>> {
        let log = self;
        // Plan the whole batch first, so a full log rejects all of it.
        let mut head = log.last_position;
        let mut planned: HashMap<(String, Timestamp, String), (u64, u64)> = HashMap::new();
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let key = (e.kind.clone(), e.occurred_at, e.digest.clone());
            if let Some(&(id, position)) = log.dedupe.get(&key).or_else(|| planned.get(&key)) {
                out.push(Appended {
                    id,
                    position,
                    duplicate: true,
                });
                continue;
            }
            head = next_position(ns, head)?;
            planned.insert(key, (head, head));
            out.push(Appended {
                id: head,
                position: head,
                duplicate: false,
            });
        }
        for (e, a) in events.iter().zip(&out).filter(|(_, a)| !a.duplicate) {
            log.dedupe.insert(
                (e.kind.clone(), e.occurred_at, e.digest.clone()),
                (a.id, a.position),
            );
            log.by_time.insert((e.occurred_at, a.id), a.position);
            log.by_position.insert(
                a.position,
                Event {
                    id: a.id,
                    position: a.position,
                    kind: e.kind.clone(),
                    occurred_at: e.occurred_at,
                    data: e.data.clone(),
                },
            );
        }
        log.last_position = head;
        Ok(out)
    }
}

fn order_of(m: &StoredMetric) -> MetricOrder {
    (
        m.point.at,
        m.point.component.clone(),
        m.point.name.clone(),
        m.seq,
    )
}

fn matches_metric(
    q_component: &Option<String>,
    q_name: &Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    p: &MetricPoint,
) -> bool {
    q_component.as_ref().is_none_or(|c| *c == p.component)
        && q_name.as_ref().is_none_or(|n| *n == p.name)
        && from.is_none_or(|f| p.at >= f)
        && to.is_none_or(|t| p.at < t)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state, or `Closed` once [`AdminStore::close`] was called.
    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::closed("the memory store is closed"));
        }
        // A panic while holding the lock leaves plain data behind; keep going.
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait]
impl MetricStore for MemoryStore {
    async fn write_metrics(&self, ns: &str, points: &[MetricPoint]) -> Result<()> {
        let mut s = self.lock()?;
        let mut seq = s.next_seq;
        let series = s.metrics.entry(ns.to_string()).or_default();
        for p in points {
            seq += 1;
            let m = StoredMetric {
                seq,
                point: p.clone(),
            };
            series.insert(order_of(&m), m);
        }
        s.next_seq = seq;
        Ok(())
    }

    async fn read_metrics(&self, ns: &str, q: &MetricQuery) -> Result<Vec<StoredMetric>> {
        let s = self.lock()?;
        let Some(series) = s.metrics.get(ns) else {
            return Ok(Vec::new());
        };
        let lower = match &q.after {
            Some(k) => Bound::Excluded((k.at, k.component.clone(), k.name.clone(), k.seq)),
            None => Bound::Unbounded,
        };
        Ok(series
            .range((lower, Bound::Unbounded))
            .map(|(_, m)| m)
            .filter(|m| matches_metric(&q.component, &q.name, q.from, q.to, &m.point))
            .take(q.limit)
            .cloned()
            .collect())
    }

    async fn list_components(&self, ns: &str) -> Result<Vec<String>> {
        let s = self.lock()?;
        let mut v: Vec<String> = s
            .metrics
            .get(ns)
            .map(|m| m.values().map(|m| m.point.component.clone()).collect())
            .unwrap_or_default();
        v.sort();
        v.dedup();
        Ok(v)
    }

    async fn list_metric_names(&self, ns: &str, component: &str) -> Result<Vec<String>> {
        let s = self.lock()?;
        let mut v: Vec<String> = s
            .metrics
            .get(ns)
            .map(|m| {
                m.values()
                    .filter(|m| m.point.component == component)
                    .map(|m| m.point.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.dedup();
        Ok(v)
    }

    async fn aggregate(&self, ns: &str, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let s = self.lock()?;
        let Some(series) = s.metrics.get(ns) else {
            return Ok(Vec::new());
        };
        let points = series
            .values()
            .filter(|m| matches_metric(&q.component, &q.name, q.from, q.to, &m.point));
        Ok(aggregate_sorted(points, q.bucket, &q.quantiles))
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, ns: &str, events: &[PreparedEvent]) -> Result<Vec<Appended>> {
        let mut s = self.lock()?;
        s.events
            .entry(ns.to_string())
            .or_default()
            .append(ns, events)
    }

    async fn list_events(&self, ns: &str, q: &EventQuery) -> Result<Vec<Event>> {
        let s = self.lock()?;
        let Some(log) = s.events.get(ns) else {
            return Ok(Vec::new());
        };
        let after = match q.after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let keep = |e: &&Event| {
            (q.kinds.is_empty() || q.kinds.contains(&e.kind))
                && q.from.is_none_or(|f| e.occurred_at >= f)
                && q.to.is_none_or(|t| e.occurred_at < t)
        };
        let event = |(_, pos): (&(Timestamp, u64), &u64)| &log.by_position[pos];
        let page = if q.newest_first {
            log.by_time
                .range((Bound::Unbounded, after))
                .rev()
                .map(event)
                .filter(keep)
                .take(q.limit)
                .cloned()
                .collect()
        } else {
            log.by_time
                .range((after, Bound::Unbounded))
                .map(event)
                .filter(keep)
                .take(q.limit)
                .cloned()
                .collect()
        };
        Ok(page)
    }

    async fn read_log(&self, ns: &str, after: u64, limit: usize) -> Result<Vec<Event>> {
        let s = self.lock()?;
        let Some(log) = s.events.get(ns) else {
            return Ok(Vec::new());
        };
        Ok(log
            .by_position
            .range((Bound::Excluded(after), Bound::Unbounded))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Claim> {
        let mut s = self.lock()?;
        let keys = s.keys.entry(ns.to_string()).or_default();
        let k = (scope.to_string(), key.to_string());
        if let Some(live) = keys.get(&k).and_then(|e| e.live_claim(now)) {
            return Ok(live);
        }
        keys.insert(
            k,
            IdempotencyEntry {
                scope: scope.into(),
                key: key.into(),
                token: token.into(),
                claimed_at: now,
                expires_at,
                response: None,
            },
        );
        Ok(Claim::Acquired {
            token: token.into(),
            expires_at,
        })
    }

    async fn complete(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        response: &Value,
        now: Timestamp,
    ) -> Result<()> {
        let mut s = self.lock()?;
        complete_in(
            s.keys.entry(ns.to_string()).or_default(),
            scope,
            key,
            token,
            response,
            now,
        )
    }

    async fn release(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
    ) -> Result<()> {
        let mut s = self.lock()?;
        claimed(&mut s, ns, scope, key, token, now, "released")?;
        s.keys
            .get_mut(ns)
            .expect("found above")
            .remove(&(scope.to_string(), key.to_string()));
        Ok(())
    }

    async fn get_key(&self, ns: &str, scope: &str, key: &str) -> Result<Option<IdempotencyEntry>> {
        let s = self.lock()?;
        Ok(s.keys
            .get(ns)
            .and_then(|keys| keys.get(&(scope.to_string(), key.to_string())))
            .cloned())
    }

    async fn scan_keys(
        &self,
        ns: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<IdempotencyEntry>> {
        let s = self.lock()?;
        let Some(keys) = s.keys.get(ns) else {
            return Ok(Vec::new());
        };
        let lower = match after {
            Some((sc, k)) => Bound::Excluded((sc.to_string(), k.to_string())),
            None => Bound::Unbounded,
        };
        Ok(keys
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

type Keys = BTreeMap<(String, String), IdempotencyEntry>;

/// Complete the live claim `token` holds on `(scope, key)` in `keys`.
fn complete_in(
    keys: &mut Keys,
    scope: &str,
    key: &str,
    token: &str,
    response: &Value,
    now: Timestamp,
) -> Result<()> {
    let entry = keys.get_mut(&(scope.to_string(), key.to_string()));
    check_live_claim(entry.as_deref(), scope, key, token, now, "completed again")?;
    entry.expect("checked above").response = Some(response.clone());
    Ok(())
}

/// The live claim `token` holds on `(scope, key)`, or why there is none.
fn claimed<'a>(
    s: &'a mut State,
    ns: &str,
    scope: &str,
    key: &str,
    token: &str,
    now: Timestamp,
    action: &str,
) -> Result<&'a mut IdempotencyEntry> {
    let entry = s
        .keys
        .get_mut(ns)
        .and_then(|m| m.get_mut(&(scope.to_string(), key.to_string())));
    check_live_claim(entry.as_deref(), scope, key, token, now, action)?;
    Ok(entry.expect("checked above"))
}

/// One namespace's records and the indexes over them.
#[derive(Debug, Default, Clone)]
struct Records {
    by_id: BTreeMap<(String, String), Record>,
    /// (collection, index name) → the index.
    indexes: BTreeMap<(String, String), MemIndex>,
}

#[derive(Debug, Clone)]
struct MemIndex {
    def: Index,
    /// (key, id) of every record of the collection that has a key.
    entries: BTreeSet<(Vec<u8>, String)>,
}

impl Records {
    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn live(&self, collection: &str, id: &str, now: Timestamp) -> Option<&Record> {
        self.by_id
            .get(&(collection.to_string(), id.to_string()))
            .filter(|r| r.is_live(now))
    }

    fn indexes_of<'a>(&'a self, collection: &'a str) -> impl Iterator<Item = &'a MemIndex> {
        self.indexes
            .range((collection.to_string(), String::new())..)
            .take_while(move |((c, _), _)| c == collection)
            .map(|(_, ix)| ix)
    }

    /// The first unique index of `collection` where a live record other
    /// than `id` has `data`'s key: (index name, that record's id).
    fn unique_holder(
        &self,
        collection: &str,
        id: &str,
        data: &Value,
        now: Timestamp,
    ) -> Option<(String, String)> {
        self.indexes_of(collection)
            .filter(|ix| ix.def.unique)
            .find_map(|ix| {
                let key = ix.def.key_of(data)?;
                ix.entries
                    .range((key.clone(), String::new())..)
                    .take_while(|(k, _)| *k == key)
                    .find(|(_, other)| other != id && self.live(collection, other, now).is_some())
                    .map(|(_, other)| (ix.def.name.clone(), other.clone()))
            })
    }

    /// Records other than `id`, expired at `now`, that hold one of the
    /// unique keys `data` would take.
    fn expired_holders(
        &self,
        collection: &str,
        id: &str,
        data: &Value,
        now: Timestamp,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for ix in self.indexes_of(collection).filter(|ix| ix.def.unique) {
            let Some(key) = ix.def.key_of(data) else {
                continue;
            };
            out.extend(
                ix.entries
                    .range((key.clone(), String::new())..)
                    .take_while(|(k, _)| *k == key)
                    .filter(|(_, other)| other != id && self.live(collection, other, now).is_none())
                    .map(|(_, other)| other.clone()),
            );
        }
        out
    }

    fn remove(&mut self, collection: &str, id: &str) -> Option<Record> {
        let old = self
            .by_id
            .remove(&(collection.to_string(), id.to_string()))?;
        for ix in self
            .indexes
            .values_mut()
            .filter(|ix| ix.def.collection == collection)
        {
            if let Some(key) = ix.def.key_of(&old.data) {
                ix.entries.remove(&(key, id.to_string()));
            }
        }
        Some(old)
    }

    fn insert(&mut self, rec: Record) {
        self.remove(&rec.collection, &rec.id);
        for ix in self
            .indexes
            .values_mut()
            .filter(|ix| ix.def.collection == rec.collection)
        {
            if let Some(key) = ix.def.key_of(&rec.data) {
                ix.entries.insert((key, rec.id.clone()));
            }
        }
        self.by_id
            .insert((rec.collection.clone(), rec.id.clone()), rec);
    }

    /// Remove the records that `keep` rejects, keeping indexes in step;
    /// how many went.
    fn retain(&mut self, keep: impl Fn(&Record) -> bool) -> u64 {
        let gone: Vec<(String, String)> = self
            .by_id
            .iter()
            .filter(|(_, r)| !keep(r))
            .map(|(k, _)| k.clone())
            .collect();
        for (c, id) in &gone {
            self.remove(c, id);
        }
        gone.len() as u64
    }

    fn put(&mut self, put: &PutRecord<'_>, now: Timestamp) -> Result<Record> {
        let (collection, id) = (put.collection, put.id);
        let current = self.live(collection, id, now);
        check_expect(current.map(|r| r.version), put.expect)?;
        if let Some((index, holder)) = self.unique_holder(collection, id, put.data, now) {
            return Err(unique_conflict(collection, &index, &holder));
        }
        // Expired records holding one of the keys go, as they do in the
        // SQL backends, whose unique indexes would refuse the write.
        for other in self.expired_holders(collection, id, put.data, now) {
            self.remove(collection, &other);
        }
        let current = self.live(collection, id, now);
        let rec = match current {
            Some(r) => Record {
                data: put.data.clone(),
                version: next_version(collection, id, r.version)?,
                updated_at: now,
                expires_at: put.expires_at,
                ..r.clone()
            },
            None => Record {
                collection: collection.into(),
                id: id.into(),
                data: put.data.clone(),
                version: 1,
                created_at: now,
                updated_at: now,
                expires_at: put.expires_at,
            },
        };
        self.insert(rec.clone());
        Ok(rec)
    }

    fn delete(&mut self, collection: &str, id: &str, expect: Expect, now: Timestamp) -> Result<()> {
        let current = self.live(collection, id, now).map(|r| r.version);
        match (current, expect) {
            (None, Expect::Version(_)) => Err(expectation_error(expect, None)),
            (None, _) => Err(Error::not_found(format!(
                "record {collection:?}/{id:?} does not exist"
            ))),
            (Some(_), _) => {
                check_expect(current, expect)?;
                self.remove(collection, id);
                Ok(())
            }
        }
    }

    fn create_index(&mut self, index: &Index, now: Timestamp) -> Result<bool> {
        let name = (index.collection.clone(), index.name.clone());
        if let Some(existing) = self.indexes.get(&name) {
            return if existing.def == *index {
                Ok(false)
            } else {
                Err(index_differs(&existing.def, index))
            };
        }
        let coll = index.collection.as_str();
        self.retain(|r| r.collection != coll || r.is_live(now));
        let mut entries = BTreeSet::new();
        for r in self.by_id.values().filter(|r| r.collection == coll) {
            if let Some(key) = index.key_of(&r.data) {
                if index.unique {
                    if let Some((_, other)) = entries
                        .range((key.clone(), String::new())..)
                        .find(|(k, _)| *k == key)
                    {
                        return Err(unique_conflict(coll, &index.name, other));
                    }
                }
                entries.insert((key, r.id.clone()));
            }
        }
        self.indexes.insert(
            name,
            MemIndex {
                def: index.clone(),
                entries,
            },
        );
        Ok(true)
    }
}

#[async_trait]
impl RecordStore for MemoryStore {
    async fn put(&self, ns: &str, put: &PutRecord<'_>, now: Timestamp) -> Result<Record> {
        let mut s = self.lock()?;
        s.records.entry(ns.to_string()).or_default().put(put, now)
    }

    async fn get(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Record>> {
        let s = self.lock()?;
        Ok(s.records
            .get(ns)
            .and_then(|m| m.live(collection, id, now))
            .cloned())
    }

    async fn delete(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        expect: Expect,
        now: Timestamp,
    ) -> Result<()> {
        let mut s = self.lock()?;
        s.records
            .entry(ns.to_string())
            .or_default()
            .delete(collection, id, expect, now)
    }

    async fn list_records(
        &self,
        ns: &str,
        collection: &str,
        after: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Record>> {
        let s = self.lock()?;
        let Some(recs) = s.records.get(ns) else {
            return Ok(Vec::new());
        };
        let lower = match after {
            Some(a) => Bound::Excluded((collection.to_string(), a.to_string())),
            None => Bound::Included((collection.to_string(), String::new())),
        };
        Ok(recs
            .by_id
            .range((lower, Bound::Unbounded))
            .take_while(|((c, _), _)| c == collection)
            .filter(|(_, r)| r.is_live(now))
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn list_collections(&self, ns: &str) -> Result<Vec<String>> {
        let s = self.lock()?;
        let mut v: Vec<String> = s
            .records
            .get(ns)
            .map(|m| m.by_id.keys().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default();
        v.dedup();
        Ok(v)
    }

    async fn create_index(&self, ns: &str, index: &Index, now: Timestamp) -> Result<bool> {
        let mut s = self.lock()?;
        s.records
            .entry(ns.to_string())
            .or_default()
            .create_index(index, now)
    }

    async fn list_indexes(&self, ns: &str, collection: Option<&str>) -> Result<Vec<Index>> {
        let s = self.lock()?;
        Ok(s.records
            .get(ns)
            .map(|m| {
                m.indexes
                    .values()
                    .filter(|ix| collection.is_none_or(|c| ix.def.collection == c))
                    .map(|ix| ix.def.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn find(
        &self,
        ns: &str,
        collection: &str,
        query: &FindQuery,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Found>> {
        let s = self.lock()?;
        let Some(recs) = s.records.get(ns) else {
            return Ok(Vec::new());
        };
        let Some(ix) = recs
            .indexes
            .get(&(collection.to_string(), query.index.clone()))
        else {
            return Err(no_such_index(collection, &query.index));
        };
        let lower = match &query.after {
            Some((k, id)) if (k, id) >= (&query.from, &String::new()) => {
                Bound::Excluded((k.clone(), id.clone()))
            }
            _ => Bound::Included((query.from.clone(), String::new())),
        };
        Ok(ix
            .entries
            .range((lower, Bound::Unbounded))
            .take_while(|(k, _)| *k < query.to)
            .filter_map(|(k, id)| {
                let record = recs.live(collection, id, now)?.clone();
                Some(Found {
                    key: k.clone(),
                    record,
                })
            })
            .take(limit)
            .collect())
    }
}

#[async_trait]
impl BatchStore for MemoryStore {
    async fn apply(&self, ns: &str, items: &[BatchItem], now: Timestamp) -> Result<Vec<Applied>> {
        let mut s = self.lock()?;
        // The batch runs on copies of what it touches; they replace the
        // originals only when every item succeeded.
        let mut recs = None;
        let mut log = None;
        let mut keys = None;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let done = match item {
                BatchItem::Put { .. } => {
                    let put = item.as_put().expect("a put");
                    recs.get_or_insert_with(|| s.records.get(ns).cloned().unwrap_or_default())
                        .put(&put, now)
                        .map(Applied::Put)
                }
                BatchItem::Delete {
                    collection,
                    id,
                    expect,
                } => recs
                    .get_or_insert_with(|| s.records.get(ns).cloned().unwrap_or_default())
                    .delete(collection, id, *expect, now)
                    .map(|()| Applied::Deleted),
                BatchItem::Append(events) => log
                    .get_or_insert_with(|| s.events.get(ns).cloned().unwrap_or_default())
                    .append(ns, events)
                    .map(Applied::Appended),
                BatchItem::Complete {
                    scope,
                    key,
                    token,
                    response,
                } => complete_in(
                    keys.get_or_insert_with(|| s.keys.get(ns).cloned().unwrap_or_default()),
                    scope,
                    key,
                    token,
                    response,
                    now,
                )
                .map(|()| Applied::Completed),
            };
            out.push(done.map_err(|e| e.at_index(i))?);
        }
        if let Some(r) = recs {
            s.records.insert(ns.to_string(), r);
        }
        if let Some(l) = log {
            s.events.insert(ns.to_string(), l);
        }
        if let Some(k) = keys {
            s.keys.insert(ns.to_string(), k);
        }
        Ok(out)
    }
}

#[async_trait]
impl AdminStore for MemoryStore {
    fn backend_name(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    async fn migrate(&self) -> Result<SchemaVersions> {
        self.schema_versions().await
    }

    async fn schema_versions(&self) -> Result<SchemaVersions> {
        Ok(SchemaVersions {
            current: SCHEMA_VERSION,
            expected: SCHEMA_VERSION,
        })
    }

    async fn ping(&self) -> Result<()> {
        drop(self.lock()?);
        Ok(())
    }

    async fn counts(&self, ns: &str) -> Result<Counts> {
        let s = self.lock()?;
        Ok(counts(&s, ns))
    }

    async fn purge(&self, ns: &str, c: &PurgeCutoffs) -> Result<PurgeReport> {
        let mut s = self.lock()?;
        let mut report = PurgeReport::default();
        if let Some(series) = s.metrics.get_mut(ns) {
            let n = series.len();
            series.retain(|_, m| {
                c.metric_cutoff(&m.point.component)
                    .is_none_or(|before| m.point.at >= before)
            });
            report.metrics = (n - series.len()) as u64;
        }
        if let (Some(before), Some(log)) = (c.events_before, s.events.get_mut(ns)) {
            let old: Vec<((Timestamp, u64), u64)> = log
                .by_time
                .range(..(before, 0))
                .map(|(k, pos)| (*k, *pos))
                .collect();
            for (k, pos) in &old {
                log.by_time.remove(k);
                log.by_position.remove(pos);
            }
            if !old.is_empty() {
                // A purged event leaves no dedupe key behind: appending it
                // again stores it as new.
                let live = &log.by_position;
                log.dedupe.retain(|_, (_, pos)| live.contains_key(pos));
            }
            report.events = old.len() as u64;
        }
        if let Some(keys) = s.keys.get_mut(ns) {
            let n = keys.len();
            keys.retain(|_, e| e.expires_at > c.now);
            report.idempotency_keys = (n - keys.len()) as u64;
        }
        if let Some(recs) = s.records.get_mut(ns) {
            report.records = recs.retain(|r| {
                r.is_live(c.now)
                    && c.record_cutoff(&r.collection)
                        .is_none_or(|before| r.updated_at >= before)
            });
        }
        Ok(report)
    }

    async fn clear(&self, ns: &str) -> Result<Counts> {
        let mut s = self.lock()?;
        Ok(Counts {
            metrics: s.metrics.remove(ns).map_or(0, |m| m.len() as u64),
            events: s
                .events
                .remove(ns)
                .map_or(0, |l| l.by_position.len() as u64),
            idempotency_keys: s.keys.remove(ns).map_or(0, |k| k.len() as u64),
            // Index declarations stay, like a table's indexes through
            // TRUNCATE; their entries go with the records.
            records: s.records.get_mut(ns).map_or(0, |r| r.retain(|_| false)),
        })
    }

    async fn namespaces(&self) -> Result<Vec<String>> {
        let s = self.lock()?;
        let mut v: Vec<String> = s
            .metrics
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(k, _)| k)
            .chain(
                s.events
                    .iter()
                    .filter(|(_, l)| !l.by_position.is_empty())
                    .map(|(k, _)| k),
            )
            .chain(s.keys.iter().filter(|(_, m)| !m.is_empty()).map(|(k, _)| k))
            .chain(
                s.records
                    .iter()
                    .filter(|(_, m)| m.len() > 0)
                    .map(|(k, _)| k),
            )
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        let mut s = self.lock()?;
        // Everything is checked before anything changes: all or nothing.
        if let Some(busy) = archive.iter().find(|a| counts(&s, &a.name).total() > 0) {
            return Err(not_empty(&busy.name));
        }
        let mut digests = Vec::new();
        for a in archive {
            for item in &a.items {
                if let ArchiveItem::Event(e) = item {
                    digests
                        .push(persistkit_core::validate::json("event data", &e.data)?.sha256_hex());
                }
            }
        }
        // Records and indexes are built aside first: a unique index that the
        // archive's records break fails the import before anything changes.
        let mut loaded: Vec<(String, Records)> = Vec::new();
        for a in archive {
            let mut recs = s.records.get(&a.name).cloned().unwrap_or_default();
            load_records(&mut recs, &a.items)?;
            loaded.push((a.name.clone(), recs));
        }
        for (ns, recs) in loaded {
            s.records.insert(ns, recs);
        }
        let mut digests = digests.into_iter();
        let mut seq = s.next_seq;
        let mut done = 0;
        for a in archive {
            let ns = a.name.as_str();
            for item in &a.items {
                match item {
                    ArchiveItem::Metric(p) => {
                        seq += 1;
                        let m = StoredMetric {
                            seq,
                            point: p.clone(),
                        };
                        s.metrics
                            .entry(ns.to_string())
                            .or_default()
                            .insert(order_of(&m), m);
                    }
                    ArchiveItem::Event(e) => {
                        let log = s.events.entry(ns.to_string()).or_default();
                        let digest = digests.next().expect("one digest per event");
                        log.dedupe
                            .insert((e.kind.clone(), e.occurred_at, digest), (e.id, e.position));
                        log.by_time.insert((e.occurred_at, e.id), e.position);
                        log.last_position = log.last_position.max(e.position);
                        log.by_position.insert(e.position, e.clone());
                    }
                    ArchiveItem::IdempotencyKey(k) => {
                        s.keys
                            .entry(ns.to_string())
                            .or_default()
                            .insert((k.scope.clone(), k.key.clone()), k.clone());
                    }
                    ArchiveItem::Record(_) | ArchiveItem::Index(_) => {}
                }
            }
            done += a.items.len() as u64;
            progress(done);
        }
        s.next_seq = seq;
        Ok(())
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// Load an archive namespace's indexes, then its records, into `recs`
/// (which holds no records).
fn load_records(recs: &mut Records, items: &[ArchiveItem]) -> Result<()> {
    for item in items {
        if let ArchiveItem::Index(ix) = item {
            recs.create_index(ix, Timestamp::MIN)?;
        }
    }
    for item in items {
        if let ArchiveItem::Record(r) = item {
            if let Some((index, holder)) =
                recs.unique_holder(&r.collection, &r.id, &r.data, Timestamp::MIN)
            {
                return Err(unique_conflict(&r.collection, &index, &holder));
            }
            recs.insert(r.clone());
        }
    }
    Ok(())
}

fn counts(s: &State, ns: &str) -> Counts {
    Counts {
        metrics: s.metrics.get(ns).map_or(0, |m| m.len() as u64),
        events: s.events.get(ns).map_or(0, |l| l.by_position.len() as u64),
        idempotency_keys: s.keys.get(ns).map_or(0, |m| m.len() as u64),
        records: s.records.get(ns).map_or(0, |m| m.len() as u64),
    }
}
