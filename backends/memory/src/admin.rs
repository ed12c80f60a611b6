//! Administration: capabilities, counts, purge, clear, import.

use async_trait::async_trait;
use persistkit_core::backend::not_empty;
use persistkit_core::backend::unique_conflict;
use persistkit_core::Cx;
use persistkit_core::{
    AdminStore, ArchiveItem, ArchiveNamespace, Capabilities, Counts, ImportProgress, PurgeCutoffs,
    PurgeReport, Result, SchemaVersions, StoredMetric, Timestamp,
};
use std::sync::atomic::Ordering;

use crate::metrics::order_of;
use crate::state::*;
use crate::store::*;

pub(crate) const SCHEMA_VERSION: u32 = 1;

#[async_trait]
impl AdminStore for MemoryStore {
    fn backend_name(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::in_memory()
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

    async fn counts(&self, cx: &Cx) -> Result<Counts> {
        let ns = cx.ns();
        let s = self.lock()?;
        Ok(counts(&s, ns))
    }

    async fn purge(&self, cx: &Cx, c: &PurgeCutoffs) -> Result<PurgeReport> {
        let ns = cx.ns();
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

    async fn clear(&self, cx: &Cx) -> Result<Counts> {
        let ns = cx.ns();
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
pub(crate) fn load_records(recs: &mut Records, items: &[ArchiveItem]) -> Result<()> {
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

pub(crate) fn counts(s: &State, ns: &str) -> Counts {
    Counts {
        metrics: s.metrics.get(ns).map_or(0, |m| m.len() as u64),
        events: s.events.get(ns).map_or(0, |l| l.by_position.len() as u64),
        idempotency_keys: s.keys.get(ns).map_or(0, |m| m.len() as u64),
        records: s.records.get(ns).map_or(0, |m| m.len() as u64),
    }
}
