//! Planted bugs in administration: clear, purge, import, schema and capability declarations.

use super::*;

#[async_trait]
impl AdminStore for Buggy {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        if self.bug == Bug::DurableWithoutReopen {
            c.durable = true;
        }
        c
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
    async fn purge(&self, cx: &Cx, c: &PurgeCutoffs) -> Result<PurgeReport> {
        self.forget(None);
        if self.bug == Bug::OneRetentionPeriod {
            let mut flat = c.clone();
            flat.metrics_by_component.clear();
            flat.records_by_collection.clear();
            return self.inner.purge(cx, &flat).await;
        }
        if self.bug == Bug::PurgeKeepsExpired {
            // Purges by age only: nothing has expired as of the beginning
            // of time (expired idempotency keys stay too).
            let mut by_age = c.clone();
            by_age.now = Timestamp::MIN;
            return self.inner.purge(cx, &by_age).await;
        }
        self.inner.purge(cx, c).await
    }
    async fn clear(&self, cx: &Cx) -> Result<Counts> {
        if self.bug != Bug::CacheForgetsClear {
            self.forget(None);
        }
        if self.bug == Bug::ClearAllNamespaces {
            // A DELETE that forgot its `WHERE ns = …`.
            let mut n = self.inner.clear(cx).await?;
            for other in self.inner.namespaces().await? {
                let more = self.inner.clear(&cx.in_namespace(&other)).await?;
                n.metrics += more.metrics;
                n.events += more.events;
                n.idempotency_keys += more.idempotency_keys;
                n.records += more.records;
            }
            return Ok(n);
        }
        self.inner.clear(cx).await
    }
    async fn namespaces(&self) -> Result<Vec<String>> {
        let all = self.inner.namespaces().await?;
        if self.bug != Bug::NamespacesMissKeys {
            return Ok(all);
        }
        // A UNION of the tables that forgets idempotency_keys.
        let mut out = Vec::new();
        for ns in all {
            let c = self.inner.counts(&Cx::new(&ns, Timestamp::now())).await?;
            if c.metrics + c.events + c.records > 0 {
                out.push(ns);
            }
        }
        Ok(out)
    }
    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        self.forget(None);
        match self.bug {
            Bug::ImportSkipsIndexes => {
                let archive: Vec<ArchiveNamespace> = archive
                    .iter()
                    .map(|a| ArchiveNamespace {
                        name: a.name.clone(),
                        items: a
                            .items
                            .iter()
                            .filter(|i| !matches!(i, ArchiveItem::Index(_)))
                            .cloned()
                            .collect(),
                    })
                    .collect();
                self.inner.import(&archive, progress).await
            }
            Bug::ImportPerNamespace => {
                for a in archive {
                    self.inner.import(std::slice::from_ref(a), progress).await?;
                }
                Ok(())
            }
            Bug::LossyPositions => {
                let lossy = |v: u64| (v as f64) as u64;
                let archive: Vec<ArchiveNamespace> = archive
                    .iter()
                    .map(|a| ArchiveNamespace {
                        name: a.name.clone(),
                        items: a
                            .items
                            .iter()
                            .map(|i| match i {
                                ArchiveItem::Event(e) => ArchiveItem::Event(Event {
                                    id: lossy(e.id),
                                    position: lossy(e.position),
                                    ..e.clone()
                                }),
                                other => other.clone(),
                            })
                            .collect(),
                    })
                    .collect();
                self.inner.import(&archive, progress).await
            }
            Bug::ImportIntoDefault => {
                let archive: Vec<ArchiveNamespace> = archive
                    .iter()
                    .map(|a| ArchiveNamespace {
                        name: DEFAULT_NAMESPACE.into(),
                        items: a.items.clone(),
                    })
                    .collect();
                self.inner.import(&archive, progress).await
            }
            Bug::ImportItemByItem => {
                for a in archive {
                    for (i, item) in a.items.iter().enumerate() {
                        match item {
                            ArchiveItem::Metric(p) => {
                                self.inner
                                    .write_metrics(
                                        &Cx::new(&a.name, Timestamp::MIN),
                                        &WriteMetrics::new(std::slice::from_ref(p)),
                                    )
                                    .await?
                            }
                            ArchiveItem::Record(r) => {
                                self.inner
                                    .put(
                                        &Cx::new(&a.name, r.updated_at),
                                        &PutRecord {
                                            collection: &r.collection,
                                            id: &r.id,
                                            data: &r.data,
                                            expect: Expect::Any,
                                            expires_at: r.expires_at,
                                        },
                                    )
                                    .await?;
                            }
                            _ => {}
                        }
                        if i % 100 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                }
                Ok(())
            }
            _ => self.inner.import(archive, progress).await,
        }
    }
    async fn close(&self) {
        self.inner.close().await
    }
    async fn backup(&self, dest: &Path) -> Result<()> {
        self.inner.backup(dest).await
    }
}
