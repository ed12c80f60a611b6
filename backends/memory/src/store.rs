use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::Value;

use persistkit_core::archive::not_empty;
use persistkit_core::metrics::aggregate_sorted;
use persistkit_core::{
    check_expect, check_live_claim, expectation_error, next_position, next_version,
};
use persistkit_core::{
    AdminStore, AggregateQuery, AggregateRow, Appended, ArchiveItem, ArchiveNamespace,
    Capabilities, Claim, Counts, Error, Event, EventQuery, EventStore, Expect, IdempotencyEntry,
    IdempotencyStore, ImportProgress, MetricPoint, MetricQuery, MetricStore, PreparedEvent,
    PurgeCutoffs, PurgeReport, Record, RecordStore, Result, SchemaVersions, StoredMetric,
    Timestamp,
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
    keys: HashMap<String, BTreeMap<(String, String), IdempotencyEntry>>,
    records: HashMap<String, BTreeMap<(String, String), Record>>,
}

#[derive(Debug, Default)]
struct Log {
    last_position: u64,
    by_position: BTreeMap<u64, Event>,
    by_time: BTreeMap<(Timestamp, u64), u64>,
    /// (kind, occurred_at, digest) → (id, position).
    dedupe: HashMap<(String, Timestamp, String), (u64, u64)>,
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
        let log = s.events.entry(ns.to_string()).or_default();
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
        claimed(&mut s, ns, scope, key, token, now, "completed again")?.response =
            Some(response.clone());
        Ok(())
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

#[async_trait]
impl RecordStore for MemoryStore {
    async fn put(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        data: &Value,
        expect: Expect,
        now: Timestamp,
    ) -> Result<Record> {
        let mut s = self.lock()?;
        let recs = s.records.entry(ns.to_string()).or_default();
        let k = (collection.to_string(), id.to_string());
        let current = recs.get(&k);
        check_expect(current.map(|r| r.version), expect)?;
        let rec = match current {
            Some(r) => Record {
                data: data.clone(),
                version: next_version(collection, id, r.version)?,
                updated_at: now,
                ..r.clone()
            },
            None => Record {
                collection: collection.into(),
                id: id.into(),
                data: data.clone(),
                version: 1,
                created_at: now,
                updated_at: now,
            },
        };
        recs.insert(k, rec.clone());
        Ok(rec)
    }

    async fn get(&self, ns: &str, collection: &str, id: &str) -> Result<Option<Record>> {
        let s = self.lock()?;
        Ok(s.records
            .get(ns)
            .and_then(|m| m.get(&(collection.to_string(), id.to_string())))
            .cloned())
    }

    async fn delete(&self, ns: &str, collection: &str, id: &str, expect: Expect) -> Result<()> {
        let mut s = self.lock()?;
        let k = (collection.to_string(), id.to_string());
        let current = s.records.get(ns).and_then(|m| m.get(&k)).map(|r| r.version);
        match (current, expect) {
            (None, Expect::Version(_)) => Err(expectation_error(expect, None)),
            (None, _) => Err(Error::not_found(format!(
                "record {collection:?}/{id:?} does not exist"
            ))),
            (Some(_), _) => {
                check_expect(current, expect)?;
                s.records.get_mut(ns).expect("found above").remove(&k);
                Ok(())
            }
        }
    }

    async fn list_records(
        &self,
        ns: &str,
        collection: &str,
        after: Option<&str>,
        limit: usize,
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
            .range((lower, Bound::Unbounded))
            .take_while(|((c, _), _)| c == collection)
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn list_collections(&self, ns: &str) -> Result<Vec<String>> {
        let s = self.lock()?;
        let mut v: Vec<String> = s
            .records
            .get(ns)
            .map(|m| m.keys().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default();
        v.dedup();
        Ok(v)
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
        if let (Some(before), Some(series)) = (c.metrics_before, s.metrics.get_mut(ns)) {
            let n = series.len();
            series.retain(|_, m| m.point.at >= before);
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
        if let (Some(before), Some(recs)) = (c.records_before, s.records.get_mut(ns)) {
            let n = recs.len();
            recs.retain(|_, r| r.updated_at >= before);
            report.records = (n - recs.len()) as u64;
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
            records: s.records.remove(ns).map_or(0, |r| r.len() as u64),
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
                    .filter(|(_, m)| !m.is_empty())
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
                    ArchiveItem::Record(r) => {
                        s.records
                            .entry(ns.to_string())
                            .or_default()
                            .insert((r.collection.clone(), r.id.clone()), r.clone());
                    }
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

fn counts(s: &State, ns: &str) -> Counts {
    Counts {
        metrics: s.metrics.get(ns).map_or(0, |m| m.len() as u64),
        events: s.events.get(ns).map_or(0, |l| l.by_position.len() as u64),
        idempotency_keys: s.keys.get(ns).map_or(0, |m| m.len() as u64),
        records: s.records.get(ns).map_or(0, |m| m.len() as u64),
    }
}
