//! Administration: what the store declares, counts, retention, clear, and
//! the all-or-nothing import of an archive.

use async_trait::async_trait;
use persistkit_core::backend::{json, not_empty};
use persistkit_core::{
    AdminStore, ArchiveItem, ArchiveNamespace, Capabilities, Counts, Cx, Error, ImportProgress,
    PurgeCutoffs, PurgeReport, Result, SchemaVersions,
};

use crate::store::{BTreeStore, Space};

/// This store keeps no schema on disk; it reports one version throughout.
const SCHEMA_VERSION: u32 = 1;

fn counts(space: Option<&Space>) -> Counts {
    let mut c = Counts::default();
    if let Some(sp) = space {
        c.metrics = sp.metrics.len() as u64;
        c.events = sp.events.len() as u64;
        c.idempotency_keys = sp.keys.len() as u64;
        c.records = sp.records.len() as u64;
    }
    c
}

#[async_trait]
impl AdminStore for BTreeStore {
    fn backend_name(&self) -> &'static str {
        "btree"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
    }

    async fn migrate(&self) -> Result<SchemaVersions> {
        self.schema_versions().await
    }

    async fn schema_versions(&self) -> Result<SchemaVersions> {
        drop(self.lock()?);
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
        let s = self.lock()?;
        Ok(counts(s.spaces.get(cx.ns())))
    }

    async fn purge(&self, cx: &Cx, c: &PurgeCutoffs) -> Result<PurgeReport> {
        let mut s = self.lock()?;
        let mut report = PurgeReport::default();
        let Some(space) = s.spaces.get_mut(cx.ns()) else {
            return Ok(report);
        };
        let before = counts(Some(space));
        space.metrics.retain(|(at, component, _, _), _| {
            c.metric_cutoff(component).is_none_or(|cut| *at >= cut)
        });
        if let Some(cut) = c.events_before {
            space.events.retain(|_, e| e.occurred_at >= cut);
            // A purged event leaves no dedupe key behind.
            let events = &space.events;
            space.dedupe.retain(|_, pos| events.contains_key(pos));
        }
        space.keys.retain(|_, e| e.expires_at > c.now);
        space.records.retain(|_, r| {
            r.is_live(c.now)
                && c.record_cutoff(&r.collection)
                    .is_none_or(|cut| r.updated_at >= cut)
        });
        let after = counts(Some(space));
        report.metrics = before.metrics - after.metrics;
        report.events = before.events - after.events;
        report.idempotency_keys = before.idempotency_keys - after.idempotency_keys;
        report.records = before.records - after.records;
        Ok(report)
    }

    async fn clear(&self, cx: &Cx) -> Result<Counts> {
        let mut s = self.lock()?;
        Ok(counts(s.spaces.remove(cx.ns()).as_ref()))
    }

    async fn namespaces(&self) -> Result<Vec<String>> {
        let s = self.lock()?;
        Ok(s.spaces
            .iter()
            .filter(|(_, sp)| !sp.is_empty())
            .map(|(ns, _)| ns.clone())
            .collect())
    }

    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        let mut s = self.lock()?;
        // Check everything before changing anything: all or nothing.
        for a in archive {
            if s.spaces.get(&a.name).is_some_and(|sp| !sp.is_empty()) {
                return Err(not_empty(&a.name));
            }
            if a.items.iter().any(|i| matches!(i, ArchiveItem::Index(_))) {
                return Err(Error::unsupported(format!(
                    "the archive declares indexes in namespace {:?}, and this store has none",
                    a.name
                )));
            }
        }
        let mut loaded = Vec::with_capacity(archive.len());
        let mut seq = s.next_seq;
        for a in archive {
            let mut space = Space::default();
            for item in &a.items {
                match item {
                    ArchiveItem::Metric(p) => {
                        seq += 1;
                        let key = (p.at, p.component.clone(), p.name.clone(), seq);
                        space.metrics.insert(key, p.clone());
                    }
                    ArchiveItem::Event(e) => {
                        let digest = json("event data", &e.data)?.sha256_hex();
                        space
                            .dedupe
                            .insert((e.kind.clone(), e.occurred_at, digest), e.position);
                        space.last_position = space.last_position.max(e.position);
                        space.events.insert(e.position, e.clone());
                    }
                    ArchiveItem::IdempotencyKey(k) => {
                        space
                            .keys
                            .insert((k.scope.clone(), k.key.clone()), k.clone());
                    }
                    ArchiveItem::Record(r) => {
                        space
                            .records
                            .insert((r.collection.clone(), r.id.clone()), r.clone());
                    }
                    // Refused above.
                    ArchiveItem::Index(_) => {}
                }
            }
            loaded.push((a.name.clone(), space));
        }
        let mut done = 0;
        for (name, space) in loaded {
            done += counts(Some(&space)).total();
            s.spaces.insert(name, space);
            progress(done);
        }
        s.next_seq = seq;
        Ok(())
    }

    async fn close(&self) {
        self.close_now();
    }
}
