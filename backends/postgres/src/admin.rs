//! Administration: capabilities, migrations, counts, purge, clear,
//! import and native backup.

use async_trait::async_trait;
use persistkit_core::backend::*;
use persistkit_core::validate::canonical_json;
use persistkit_core::*;
use sqlx::postgres::PgConnection;

use crate::error::map;
use crate::schema;
use crate::sql::*;
use crate::store::*;

/// Items per statement when importing.
pub(crate) const IMPORT_CHUNK: usize = 5_000;

impl PgStore {
    /// Purge one class of data (metrics, records) inside `tx`: the domain's
    /// cut-off (`all`) for all but the names with one of their own, then
    /// each of those (`one`).
    pub(crate) async fn purge_class(
        &self,
        tx: &mut PgConnection,
        ns: &str,
        (all, one): (&'static str, &'static str),
        before: Option<Timestamp>,
        own: &[(String, Timestamp)],
    ) -> Result<u64> {
        let mut n = 0;
        if let Some(before) = before {
            let except: Vec<&str> = own.iter().map(|(name, _)| name.as_str()).collect();
            n += self
                .q(all)
                .bind(ns)
                .bind(dt(before))
                .bind(&except)
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
        }
        for (name, before) in own {
            n += self
                .q(one)
                .bind(ns)
                .bind(name)
                .bind(dt(*before))
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
        }
        Ok(n)
    }
}

/// Counts from the four numbers a counting statement returns.
pub(crate) fn counts_of(metrics: i64, events: i64, keys: i64, records: i64) -> Counts {
    Counts {
        metrics: u64_of(metrics),
        events: u64_of(events),
        idempotency_keys: u64_of(keys),
        records: u64_of(records),
    }
}

#[async_trait]
impl AdminStore for PgStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::all();
        c.native_backup = false;
        c
    }

    async fn migrate(&self) -> Result<SchemaVersions> {
        schema::migrate(&self.pool, &self.config.schema).await
    }

    async fn schema_versions(&self) -> Result<SchemaVersions> {
        Ok(SchemaVersions {
            current: schema::current(&self.pool, &self.config.schema).await?,
            expected: schema::SCHEMA_VERSION,
        })
    }

    async fn ping(&self) -> Result<()> {
        one!(self, |c| self.q(PING).execute(&mut *c).await.map_err(map)).map(|_| ())
    }

    async fn counts(&self, cx: &Cx) -> Result<Counts> {
        let ns = cx.ns();
        let (m, e, k, r): (i64, i64, i64, i64) = one!(read self, |c| self
            .qa(COUNTS)
            .bind(ns)
            .fetch_one(&mut *c)
            .await
            .map_err(map))?;
        Ok(counts_of(m, e, k, r))
    }

    async fn storage_bytes(&self) -> Result<Option<u64>> {
        let b: i64 = one!(read self, |c| self
            .qs(STORAGE_BYTES)
            .fetch_one(&mut *c)
            .await
            .map_err(map))?;
        Ok(Some(u64_of(b)))
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        Some(PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        })
    }

    async fn purge(&self, cx: &Cx, c: &PurgeCutoffs) -> Result<PurgeReport> {
        let ns = cx.ns();
        let mut tx = self.begin().await?;
        let mut report = PurgeReport {
            metrics: self
                .purge_class(
                    &mut tx,
                    ns,
                    (PURGE_METRICS, PURGE_COMPONENT),
                    c.metrics_before,
                    &c.metrics_by_component,
                )
                .await?,
            ..PurgeReport::default()
        };
        if let Some(before) = c.events_before {
            report.events = self
                .q(PURGE_EVENTS)
                .bind(ns)
                .bind(dt(before))
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
        }
        report.idempotency_keys = self
            .q(PURGE_KEYS)
            .bind(ns)
            .bind(dt(c.now))
            .execute(&mut *tx)
            .await
            .map_err(map)?
            .rows_affected();
        report.records = self
            .purge_class(
                &mut tx,
                ns,
                (PURGE_RECORDS, PURGE_COLLECTION),
                c.records_before,
                &c.records_by_collection,
            )
            .await?;
        report.records += self
            .q(PURGE_EXPIRED_RECORDS)
            .bind(ns)
            .bind(dt(c.now))
            .execute(&mut *tx)
            .await
            .map_err(map)?
            .rows_affected();
        tx.commit().await.map_err(map)?;
        Ok(report)
    }

    async fn clear(&self, cx: &Cx) -> Result<Counts> {
        let ns = cx.ns();
        let (m, e, k, r, _heads): (i64, i64, i64, i64, i64) = one!(self, |c| self
            .qa(CLEAR)
            .bind(ns)
            .fetch_one(&mut *c)
            .await
            .map_err(map))?;
        Ok(counts_of(m, e, k, r))
    }

    async fn namespaces(&self) -> Result<Vec<String>> {
        one!(read self, |c| self
            .qs(NAMESPACES)
            .fetch_all(&mut *c)
            .await
            .map_err(map))
    }

    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        // One transaction for the whole archive: all of it or nothing.
        let mut tx = self.begin().await?;
        for a in archive {
            // Hold the log head so no append slips in while we check and load.
            self.qs::<i64>(LOCK_LOG_HEAD)
                .bind(&a.name)
                .fetch_one(&mut *tx)
                .await
                .map_err(map)?;
            let (m, e, k, r): (i64, i64, i64, i64) = self
                .qa(COUNTS)
                .bind(&a.name)
                .fetch_one(&mut *tx)
                .await
                .map_err(map)?;
            if m + e + k + r > 0 {
                return Err(not_empty(&a.name));
            }
        }
        let mut done = 0u64;
        let mut step = |n: usize| {
            done += n as u64;
            progress(done);
        };
        for a in archive {
            let ns = a.name.as_str();
            let mut metrics: Vec<&MetricPoint> = Vec::new();
            let mut keys: Vec<&IdempotencyEntry> = Vec::new();
            let mut records: Vec<&Record> = Vec::new();
            let (mut pos, mut ids, mut kind, mut at, mut digest, mut data) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for item in &a.items {
                match item {
                    ArchiveItem::Metric(p) => metrics.push(p),
                    ArchiveItem::Event(ev) => {
                        let checked = validate::json("event data", &ev.data)?;
                        pos.push(ev.position as i64);
                        ids.push(ev.id as i64);
                        kind.push(ev.kind.as_str());
                        at.push(dt(ev.occurred_at));
                        digest.push(checked.sha256_hex());
                        data.push(checked.canonical);
                    }
                    ArchiveItem::IdempotencyKey(key) => keys.push(key),
                    ArchiveItem::Record(rec) => records.push(rec),
                    ArchiveItem::Index(ix) => {
                        self.create_index_in(&mut tx, ns, ix, Timestamp::MIN)
                            .await?;
                    }
                }
            }
            for chunk in metrics.chunks(IMPORT_CHUNK) {
                self.q(INSERT_METRICS)
                    .bind(ns)
                    .bind(chunk.iter().map(|p| dt(p.at)).collect::<Vec<_>>())
                    .bind(
                        chunk
                            .iter()
                            .map(|p| p.component.as_str())
                            .collect::<Vec<_>>(),
                    )
                    .bind(chunk.iter().map(|p| p.name.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|p| p.kind.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|p| p.value).collect::<Vec<_>>())
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
                step(chunk.len());
            }
            for start in (0..pos.len()).step_by(IMPORT_CHUNK) {
                let end = (start + IMPORT_CHUNK).min(pos.len());
                self.q(INSERT_EVENTS)
                    .bind(ns)
                    .bind(&pos[start..end])
                    .bind(&ids[start..end])
                    .bind(&kind[start..end])
                    .bind(&at[start..end])
                    .bind(&digest[start..end])
                    .bind(&data[start..end])
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
                step(end - start);
            }
            if let Some(head) = pos.iter().copied().max() {
                self.q(SET_LOG_HEAD)
                    .bind(ns)
                    .bind(head)
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
            }
            for chunk in keys.chunks(IMPORT_CHUNK) {
                self.q(INSERT_KEYS)
                    .bind(ns)
                    .bind(chunk.iter().map(|k| k.scope.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|k| k.key.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|k| k.token.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|k| dt(k.claimed_at)).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|k| dt(k.expires_at)).collect::<Vec<_>>())
                    .bind(
                        chunk
                            .iter()
                            .map(|k| k.response.as_ref().map(canonical_json))
                            .collect::<Vec<_>>(),
                    )
                    .bind(
                        chunk
                            .iter()
                            .map(|k| k.fingerprint.as_deref())
                            .collect::<Vec<_>>(),
                    )
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
                step(chunk.len());
            }
            for chunk in records.chunks(IMPORT_CHUNK) {
                self.q(INSERT_RECORDS)
                    .bind(ns)
                    .bind(
                        chunk
                            .iter()
                            .map(|r| r.collection.as_str())
                            .collect::<Vec<_>>(),
                    )
                    .bind(chunk.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
                    .bind(
                        chunk
                            .iter()
                            .map(|r| canonical_json(&r.data))
                            .collect::<Vec<_>>(),
                    )
                    .bind(chunk.iter().map(|r| r.version as i64).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|r| dt(r.created_at)).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|r| dt(r.updated_at)).collect::<Vec<_>>())
                    .bind(
                        chunk
                            .iter()
                            .map(|r| r.expires_at.map(dt))
                            .collect::<Vec<_>>(),
                    )
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match map(e) {
                        e if e.kind() == ErrorKind::Conflict => Error::conflict(
                            None,
                            format!(
                                "two records of namespace {ns:?} have one key in a unique index \
                                 declared there before the import; nothing was imported"
                            ),
                        )
                        .with_source(e),
                        e => e,
                    })?;
                step(chunk.len());
            }
        }
        tx.commit().await.map_err(map)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
