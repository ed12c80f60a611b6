//! Administration: capabilities, migrations, counts, purge, clear,
//! import and native backup.

use async_trait::async_trait;
use persistkit_core::backend::*;
use persistkit_core::validate::canonical_json;
use persistkit_core::*;
use rusqlite::{params, Connection};
use std::path::Path;

use crate::error::map;
use crate::metrics::*;
use crate::records::*;
use crate::schema;
use crate::sql::*;
use crate::store::*;

/// Items an import writes between progress reports.
pub(crate) const IMPORT_PROGRESS_EVERY: u64 = 1_000;

pub(crate) fn counts_in(c: &Connection, ns: &str) -> Result<Counts> {
    let row = first(c, COUNTS, [ns], |r| {
        Ok(Counts {
            metrics: u64_of(col(r, 0, "metrics")?),
            events: u64_of(col(r, 1, "events")?),
            idempotency_keys: u64_of(col(r, 2, "idempotency_keys")?),
            records: u64_of(col(r, 3, "records")?),
        })
    })?;
    row.ok_or_else(|| Error::internal("the counts query returned no row"))
}

pub(crate) fn purge_in(c: &mut Connection, ns: &str, cut: &PurgeCutoffs) -> Result<PurgeReport> {
    let tx = immediate(c)?;
    let mut report = PurgeReport::default();
    let purge = |sql: &str, before: Timestamp| -> Result<u64> {
        Ok(exec(&tx, sql, params![ns, before.as_micros()])? as u64)
    };
    // One class of data (metrics, records): the domain's cut-off for all
    // but the names with one of their own, then each of those.
    let by_class =
        |all: &str, one: &str, before: Option<Timestamp>, own: &[(String, Timestamp)]| {
            let mut n = 0;
            if let Some(before) = before {
                let except: Vec<&str> = own.iter().map(|(name, _)| name.as_str()).collect();
                let except = serde_json::to_string(&except).expect("names serialize");
                n += exec(&tx, all, params![ns, before.as_micros(), except])? as u64;
            }
            for (name, before) in own {
                n += exec(&tx, one, params![ns, name, before.as_micros()])? as u64;
            }
            Ok::<u64, Error>(n)
        };
    report.metrics = by_class(
        PURGE_METRICS,
        PURGE_COMPONENT,
        cut.metrics_before,
        &cut.metrics_by_component,
    )?;
    if let Some(before) = cut.events_before {
        report.events = purge(PURGE_EVENTS, before)?;
    }
    report.idempotency_keys = purge(PURGE_KEYS, cut.now)?;
    report.records = by_class(
        PURGE_RECORDS,
        PURGE_COLLECTION,
        cut.records_before,
        &cut.records_by_collection,
    )?;
    report.records += purge(PURGE_EXPIRED_RECORDS, cut.now)?;
    tx.commit().map_err(map)?;
    Ok(report)
}

/// Delete everything of `ns`, the log's head included, in one IMMEDIATE
/// transaction.
pub(crate) fn clear_in(c: &mut Connection, ns: &str) -> Result<Counts> {
    let tx = immediate(c)?;
    let n = Counts {
        metrics: exec(&tx, CLEAR_METRICS, [ns])? as u64,
        events: exec(&tx, CLEAR_EVENTS, [ns])? as u64,
        idempotency_keys: exec(&tx, CLEAR_KEYS, [ns])? as u64,
        // Index declarations stay, like a table's indexes through
        // TRUNCATE; their entries go first, so the triggers find none.
        records: {
            exec(&tx, CLEAR_INDEX_ENTRIES, [ns])?;
            exec(&tx, CLEAR_RECORDS, [ns])? as u64
        },
    };
    exec(&tx, CLEAR_LOG_HEAD, [ns])?;
    tx.commit().map_err(map)?;
    Ok(n)
}

/// Write a whole archive in one IMMEDIATE transaction: all of it or
/// nothing, into namespaces that must be empty.
/// The error for an archive record that a unique index refused: named by
/// the index and the record that has the key, when that is what happened.
pub(crate) fn import_refused(
    c: &Connection,
    ns: &str,
    rec: &Record,
    text: &str,
    e: Error,
) -> Result<Error> {
    if e.kind() != ErrorKind::Conflict {
        return Ok(e);
    }
    let holder = first(
        c,
        UNIQUE_HOLDER,
        params![ns, rec.collection, rec.id, text],
        |r| {
            Ok((
                col::<String>(r, 0, "record_indexes.name")?,
                col::<String>(r, 1, "record_index_entries.id")?,
            ))
        },
    )?;
    Ok(match holder {
        Some((index, other)) => unique_conflict(&rec.collection, &index, &other),
        None => e,
    })
}

pub(crate) fn import_in(
    c: &mut Connection,
    archive: &[ArchiveNamespace],
    progress: ImportProgress<'_>,
) -> Result<u64> {
    let tx = immediate(c)?;
    for a in archive {
        let n = counts_in(&tx, &a.name)?;
        if n.metrics + n.events + n.idempotency_keys + n.records > 0 {
            return Err(not_empty(&a.name));
        }
    }
    let mut done = 0u64;
    for a in archive {
        let ns = a.name.as_str();
        // Indexes first, so the records are indexed as they arrive.
        for item in &a.items {
            if let ArchiveItem::Index(ix) = item {
                create_index_in(&tx, ns, ix, Timestamp::MIN)?;
            }
        }
        let mut head = 0i64;
        for item in &a.items {
            match item {
                ArchiveItem::Index(_) => {}
                ArchiveItem::Metric(p) => insert_metrics(&tx, ns, std::slice::from_ref(p))?,
                ArchiveItem::Event(ev) => {
                    let checked = validate::json("event data", &ev.data)?;
                    let position = ev.position as i64;
                    head = head.max(position);
                    exec(
                        &tx,
                        INSERT_EVENT,
                        params![
                            ns,
                            position,
                            ev.id as i64,
                            ev.kind,
                            ev.occurred_at.as_micros(),
                            checked.sha256_hex(),
                            checked.canonical
                        ],
                    )?;
                }
                ArchiveItem::IdempotencyKey(key) => {
                    exec(
                        &tx,
                        INSERT_KEY_FULL,
                        params![
                            ns,
                            key.scope,
                            key.key,
                            key.token,
                            key.claimed_at.as_micros(),
                            key.expires_at.as_micros(),
                            key.response.as_ref().map(canonical_json),
                            key.fingerprint
                        ],
                    )?;
                }
                ArchiveItem::Record(rec) => {
                    let text = canonical_json(&rec.data);
                    let inserted = exec(
                        &tx,
                        INSERT_RECORD_FULL,
                        params![
                            ns,
                            rec.collection,
                            rec.id,
                            text,
                            rec.version as i64,
                            rec.created_at.as_micros(),
                            rec.updated_at.as_micros(),
                            rec.expires_at.map(|t| t.as_micros())
                        ],
                    );
                    if let Err(e) = inserted {
                        return Err(import_refused(&tx, ns, rec, &text, e)?);
                    }
                }
            }
            done += 1;
            if done.is_multiple_of(IMPORT_PROGRESS_EVERY) {
                progress(done);
            }
        }
        if head > 0 {
            exec(&tx, SET_LOG_HEAD, params![ns, head])?;
        }
    }
    tx.commit().map_err(map)?;
    Ok(done)
}

#[async_trait]
impl AdminStore for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn migrate(&self) -> Result<SchemaVersions> {
        self.pool.run(schema::migrate).await
    }

    async fn schema_versions(&self) -> Result<SchemaVersions> {
        Ok(SchemaVersions {
            current: self.pool.run(|c| schema::current(c)).await?,
            expected: schema::SCHEMA_VERSION,
        })
    }

    async fn ping(&self) -> Result<()> {
        self.pool
            .run(|c| first(c, PING, [], |_| Ok(())).map(|_| ()))
            .await
    }

    async fn counts(&self, cx: &Cx) -> Result<Counts> {
        let ns = cx.ns();
        self.pool.run_by(cx.deadline(), |c| counts_in(c, ns)).await
    }

    async fn storage_bytes(&self) -> Result<Option<u64>> {
        self.pool
            .run(|c| first(c, STORAGE_BYTES, [], |r| col::<i64>(r, 0, "bytes")))
            .await
            .map(|b| b.map(u64_of))
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        let (size, idle, max) = self.pool.stats();
        Some(PoolStats { size, idle, max })
    }

    async fn purge(&self, cx: &Cx, c: &PurgeCutoffs) -> Result<PurgeReport> {
        let ns = cx.ns();
        self.pool
            .run_by(cx.deadline(), |conn| purge_in(conn, ns, c))
            .await
    }

    async fn clear(&self, cx: &Cx) -> Result<Counts> {
        let ns = cx.ns();
        self.pool.run_by(cx.deadline(), |c| clear_in(c, ns)).await
    }

    async fn namespaces(&self) -> Result<Vec<String>> {
        self.pool
            .run(|c| all(c, NAMESPACES, [], |r| col(r, 0, "ns")))
            .await
    }

    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        let done = self.pool.run(|c| import_in(c, archive, progress)).await?;
        progress(done);
        Ok(())
    }

    async fn backup(&self, dest: &Path) -> Result<()> {
        let path = dest
            .to_str()
            .ok_or_else(|| Error::invalid("backup path must be UTF-8"))?;
        self.pool
            .run(|c| exec(c, VACUUM_INTO, [path]).map(|_| ()))
            .await
    }

    async fn close(&self) {
        self.pool.close();
    }
}
