//! The portable archive: versioned, line-delimited JSON, deterministic order.
//!
//! ```text
//! {"format":"persistkit-archive","type":"archive","version":2}
//! {"name":"default","type":"namespace"}
//! {"at":"…","component":"api","kind":"gauge","name":"rps","type":"metric","value":1.5}
//! {"data":{…},"id":1,"kind":"signup","occurred_at":"…","position":1,"type":"event"}
//! {"claimed_at":"…","expires_at":"…","key":"k","response":null,"scope":"s","token":"…","type":"idempotency_key"}
//! {"collection":"jobs","fields":["/status"],"name":"by_status","type":"index","unique":false}
//! {"collection":"jobs","created_at":"…","data":{…},"id":"42","type":"record","updated_at":"…","version":3}
//! {"items":5,"namespaces":1,"type":"end"}
//! ```
//!
//! Every line is canonical JSON (keys sorted). Namespaces come in byte-wise
//! order; within one: metrics in read order, events by position, keys by
//! `(scope, key)`, indexes by `(collection, name)`, records by
//! `(collection, id)` (with `expires_at` when they expire). The `end` line
//! lets import tell a whole archive from a truncated one.
//!
//! Version 2 added index lines and record expiry; version 1 archives (no
//! indexes, no expiry) are still read.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::admin::{ArchiveItem, ArchiveNamespace};
use crate::cx::Cx;
use crate::deadline::within;
use crate::error::{Error, Result};
use crate::metrics::{MetricKey, MetricQuery};
use crate::op::{ListIndexes, ListRecords, ReadLog, ScanKeys};
use crate::store::Store;
use crate::time::Timestamp;
use crate::validate;

/// The archive format version this code writes and reads.
pub const ARCHIVE_VERSION: u32 = 2;
/// The oldest archive version this code still reads.
pub const OLDEST_ARCHIVE_VERSION: u32 = 1;
const FORMAT: &str = "persistkit-archive";
const PAGE: usize = 5_000;

/// Which namespaces to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportScope {
    /// The handle's namespace only.
    Namespace,
    /// Every namespace with data. Only an [`AdminHandle`](crate::AdminHandle)
    /// may ask for this; a [`Handle`](crate::Handle) refuses it, because it
    /// never sees other namespaces.
    All,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// Namespaces written.
    pub namespaces: u64,
    /// Items written.
    pub items: u64,
}

/// What an import loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Namespaces loaded.
    pub namespaces: u64,
    /// Items loaded.
    pub items: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Control {
    Archive { format: String, version: u32 },
    Namespace { name: String },
    End { namespaces: u64, items: u64 },
}

fn write_line<T: Serialize>(out: &mut (dyn Write + Send), v: &T) -> Result<()> {
    let value =
        serde_json::to_value(v).map_err(|e| Error::internal("archive line").with_source(e))?;
    let mut line = validate::canonical_json(&value);
    line.push('\n');
    out.write_all(line.as_bytes())
        .map_err(|e| Error::internal("writing the archive failed").with_source(e))
}

/// Every page read is bounded by `limit` (the handle's timeout), so a
/// database that stops answering fails the export instead of hanging it.
pub(crate) async fn export(
    store: &dyn Store,
    limit: Option<std::time::Duration>,
    namespaces: &[String],
    out: &mut (dyn Write + Send),
    progress: Option<&(dyn Fn(u64) + Send + Sync)>,
) -> Result<ExportSummary> {
    let mut namespaces = namespaces.to_vec();
    namespaces.sort();
    namespaces.dedup();
    let mut items = 0u64;
    let mut emit = |out: &mut (dyn Write + Send), item: ArchiveItem| -> Result<()> {
        write_line(out, &item)?;
        items += 1;
        if let Some(p) = progress {
            if items.is_multiple_of(1_000) {
                p(items);
            }
        }
        Ok(())
    };
    write_line(
        out,
        &Control::Archive {
            format: FORMAT.into(),
            version: ARCHIVE_VERSION,
        },
    )?;
    for ns in &namespaces {
        write_line(out, &Control::Namespace { name: ns.clone() })?;
        // Records are read at the start of time: expired ones too (an
        // archive is a faithful copy; purge removes them after import).
        let cx = Cx::checked(Arc::from(ns.as_str()), Timestamp::MIN);
        // Metrics, in read order.
        let mut after: Option<MetricKey> = None;
        loop {
            let q = MetricQuery {
                component: None,
                name: None,
                from: None,
                to: None,
                limit: PAGE,
                after: after.clone(),
            };
            let page = within(
                limit,
                store.backend_name(),
                "export metrics",
                store.read_metrics(&cx, &q),
            )
            .await?;
            let done = page.len() < PAGE;
            for m in page {
                after = Some(MetricKey {
                    at: m.point.at,
                    component: m.point.component.clone(),
                    name: m.point.name.clone(),
                    seq: m.seq,
                });
                emit(out, ArchiveItem::Metric(m.point))?;
            }
            if done {
                break;
            }
        }
        // Events, by position.
        let mut pos = 0;
        loop {
            let page = within(
                limit,
                store.backend_name(),
                "export events",
                store.read_log(&cx, &ReadLog::new(pos, PAGE)),
            )
            .await?;
            let done = page.len() < PAGE;
            for e in page {
                pos = e.position;
                emit(out, ArchiveItem::Event(e))?;
            }
            if done {
                break;
            }
        }
        // Idempotency keys, by (scope, key).
        let mut after: Option<(String, String)> = None;
        loop {
            let a = after.as_ref().map(|(s, k)| (s.as_str(), k.as_str()));
            let page = within(
                limit,
                store.backend_name(),
                "export idempotency keys",
                store.scan_keys(&cx, &ScanKeys::new(a, PAGE)),
            )
            .await?;
            let done = page.len() < PAGE;
            for k in page {
                after = Some((k.scope.clone(), k.key.clone()));
                emit(out, ArchiveItem::IdempotencyKey(k))?;
            }
            if done {
                break;
            }
        }
        // Indexes, by (collection, name), before the records they index.
        for ix in within(
            limit,
            store.backend_name(),
            "export indexes",
            store.list_indexes(&cx, &ListIndexes::new(None)),
        )
        .await?
        {
            emit(out, ArchiveItem::Index(ix))?;
        }
        // Records, by (collection, id), expired ones too (an archive is a
        // faithful copy; purge removes them after import).
        for coll in within(
            limit,
            store.backend_name(),
            "export collections",
            store.list_collections(&cx),
        )
        .await?
        {
            let mut after: Option<String> = None;
            loop {
                let page = within(
                    limit,
                    store.backend_name(),
                    "export records",
                    store.list_records(&cx, &ListRecords::new(&coll, after.as_deref(), PAGE)),
                )
                .await?;
                let done = page.len() < PAGE;
                for r in page {
                    after = Some(r.id.clone());
                    emit(out, ArchiveItem::Record(r))?;
                }
                if done {
                    break;
                }
            }
        }
    }
    write_line(
        out,
        &Control::End {
            namespaces: namespaces.len() as u64,
            items,
        },
    )?;
    out.flush()
        .map_err(|e| Error::internal("writing the archive failed").with_source(e))?;
    if let Some(p) = progress {
        p(items);
    }
    Ok(ExportSummary {
        namespaces: namespaces.len() as u64,
        items,
    })
}

/// Parse and check a whole archive: namespaces in order, with their items.
///
/// # Errors
/// `InvalidInput` naming the line that breaks a rule.
pub fn parse(input: &mut (dyn BufRead + Send)) -> Result<Vec<ArchiveNamespace>> {
    let mut out: Vec<ArchiveNamespace> = Vec::new();
    let mut seen_header = false;
    let mut archive_version = ARCHIVE_VERSION;
    let mut ended = None;
    let mut items = 0u64;
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let at = |e: Error| Error::invalid(format!("archive line {n}: {}", e.message()));
        let line = line
            .map_err(|e| Error::invalid(format!("archive line {n}: unreadable")).with_source(e))?;
        if line.trim().is_empty() {
            continue;
        }
        if ended.is_some() {
            return Err(Error::invalid(format!(
                "archive line {n}: data after the end line"
            )));
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| Error::invalid(format!("archive line {n}: not JSON")).with_source(e))?;
        let ty = value
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_string();
        match ty.as_str() {
            "archive" | "namespace" | "end" => {
                let c: Control = serde_json::from_value(value).map_err(|e| {
                    Error::invalid(format!("archive line {n}: bad {ty} line")).with_source(e)
                })?;
                match c {
                    Control::Archive { format, version } => {
                        if seen_header || n != 1 {
                            return Err(Error::invalid(format!(
                                "archive line {n}: header must be the first line"
                            )));
                        }
                        if format != FORMAT
                            || !(OLDEST_ARCHIVE_VERSION..=ARCHIVE_VERSION).contains(&version)
                        {
                            return Err(Error::invalid(format!(
                                "archive line {n}: format {format:?} version {version} is not {FORMAT:?} \
                                 version {OLDEST_ARCHIVE_VERSION} to {ARCHIVE_VERSION}"
                            )));
                        }
                        archive_version = version;
                        seen_header = true;
                    }
                    Control::Namespace { name } => {
                        validate::name("namespace", &name).map_err(at)?;
                        if out.iter().any(|ns| ns.name == name) {
                            return Err(Error::invalid(format!(
                                "archive line {n}: namespace {name:?} appears twice"
                            )));
                        }
                        out.push(ArchiveNamespace {
                            name,
                            items: Vec::new(),
                        });
                    }
                    Control::End {
                        namespaces,
                        items: count,
                    } => ended = Some((n, namespaces, count)),
                }
            }
            _ => {
                if !seen_header {
                    return Err(Error::invalid(
                        "archive line 1: missing the persistkit-archive header",
                    ));
                }
                let item: ArchiveItem = serde_json::from_value(value).map_err(|e| {
                    Error::invalid(format!("archive line {n}: bad item")).with_source(e)
                })?;
                check_item(&item).map_err(at)?;
                let newer = match &item {
                    ArchiveItem::Index(_) => Some("index lines"),
                    ArchiveItem::Record(r) if r.expires_at.is_some() => Some("record expiry"),
                    _ => None,
                };
                if let Some(what) = newer.filter(|_| archive_version < 2) {
                    return Err(Error::invalid(format!(
                        "archive line {n}: {what} need archive version 2; the header says 1"
                    )));
                }
                let Some(ArchiveNamespace { items: bucket, .. }) = out.last_mut() else {
                    return Err(Error::invalid(format!(
                        "archive line {n}: item before any namespace line"
                    )));
                };
                bucket.push(item);
                items += 1;
            }
        }
    }
    let Some((n, namespaces, count)) = ended else {
        return Err(Error::invalid("archive has no end line: it is truncated"));
    };
    if namespaces != out.len() as u64 || count != items {
        return Err(Error::invalid(format!(
            "archive line {n}: end line says {namespaces} namespaces and {count} items, found {} and {items}",
            out.len()
        )));
    }
    for ns in &out {
        check_namespace_items(&ns.name, &ns.items)?;
    }
    Ok(out)
}

fn check_item(item: &ArchiveItem) -> Result<()> {
    match item {
        ArchiveItem::Metric(p) => {
            validate::name("component", &p.component)?;
            validate::name("metric name", &p.name)?;
            validate::finite("metric value", p.value)
        }
        ArchiveItem::Event(e) => {
            validate::name("event kind", &e.kind)?;
            validate::json("event data", &e.data)?;
            validate::sequence("event id", e.id)?;
            validate::sequence("event position", e.position)
        }
        ArchiveItem::IdempotencyKey(k) => {
            validate::name("idempotency scope", &k.scope)?;
            validate::name("idempotency key", &k.key)?;
            if let Some(r) = &k.response {
                validate::json("response", r)?;
            }
            if k.token.is_empty() {
                return Err(Error::invalid("idempotency token must not be empty"));
            }
            Ok(())
        }
        ArchiveItem::Record(r) => {
            validate::name("collection", &r.collection)?;
            validate::name("record id", &r.id)?;
            validate::json("record data", &r.data)?;
            validate::sequence("record version", r.version)
        }
        ArchiveItem::Index(ix) => validate::index(ix),
    }
}

fn check_namespace_items(ns: &str, items: &[ArchiveItem]) -> Result<()> {
    let mut last_pos = 0;
    let mut ids = std::collections::HashSet::new();
    let mut dedupe = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    let mut records = std::collections::HashSet::new();
    let mut indexes = std::collections::HashSet::new();
    for item in items {
        match item {
            ArchiveItem::Event(e) => {
                if e.position <= last_pos {
                    return Err(Error::invalid(format!(
                        "namespace {ns:?}: event positions must increase ({} after {last_pos})",
                        e.position
                    )));
                }
                last_pos = e.position;
                if !ids.insert(e.id) {
                    return Err(Error::invalid(format!(
                        "namespace {ns:?}: event id {} twice",
                        e.id
                    )));
                }
                let digest = validate::json("event data", &e.data)?.sha256_hex();
                if !dedupe.insert((e.kind.clone(), e.occurred_at, digest)) {
                    return Err(Error::invalid(format!(
                        "namespace {ns:?}: event {} duplicates an earlier one",
                        e.id
                    )));
                }
            }
            ArchiveItem::IdempotencyKey(k) => {
                if !keys.insert((k.scope.clone(), k.key.clone())) {
                    return Err(Error::invalid(format!(
                        "namespace {ns:?}: idempotency key {:?}/{:?} twice",
                        k.scope, k.key
                    )));
                }
            }
            ArchiveItem::Record(r) => {
                if !records.insert((r.collection.clone(), r.id.clone())) {
                    return Err(Error::invalid(format!(
                        "namespace {ns:?}: record {:?}/{:?} twice",
                        r.collection, r.id
                    )));
                }
            }
            ArchiveItem::Index(ix) => {
                if !indexes.insert((ix.collection.clone(), ix.name.clone())) {
                    return Err(Error::invalid(format!(
                        "namespace {ns:?}: index {:?}/{:?} twice",
                        ix.collection, ix.name
                    )));
                }
            }
            ArchiveItem::Metric(_) => {}
        }
    }
    // A unique index that the archive's own records break would fail the
    // import in the backend; say which index and records here instead.
    for item in items {
        let ArchiveItem::Index(ix) = item else {
            continue;
        };
        if !ix.unique {
            continue;
        }
        let mut seen = std::collections::HashMap::new();
        for item in items {
            let ArchiveItem::Record(r) = item else {
                continue;
            };
            if r.collection != ix.collection {
                continue;
            }
            if let Some(key) = ix.key_of(&r.data) {
                if let Some(first) = seen.insert(key, r.id.clone()) {
                    return Err(Error::invalid(format!(
                        "namespace {ns:?}: records {first:?} and {:?} of collection {:?} \
                         have one key in the unique index {:?}",
                        r.id, ix.collection, ix.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Load checked `namespaces` into `store`: refuse before writing when any
/// of them holds data, then hand the whole archive to the backend at once,
/// so it lands all-or-nothing. With a `limit`, the import must make
/// progress (the backend reports each batch) within it, or it is abandoned
/// as `Unavailable`; the backend's transaction is dropped and rolls back.
pub(crate) async fn import(
    store: &dyn Store,
    namespaces: &[ArchiveNamespace],
    limit: Option<Duration>,
    progress: Option<&(dyn Fn(u64) + Send + Sync)>,
) -> Result<ImportSummary> {
    let backend = store.backend_name();
    for ns in namespaces {
        let cx = Cx::new(&ns.name, Timestamp::MIN);
        let c = within(limit, backend, "import", store.counts(&cx)).await?;
        if c.total() > 0 {
            return Err(not_empty(&ns.name));
        }
    }
    let items: u64 = namespaces.iter().map(|ns| ns.items.len() as u64).sum();
    let started = Instant::now();
    // Milliseconds since `started` at the last progress report.
    let beat = AtomicU64::new(0);
    let report = |n: u64| {
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        beat.store(ms, Ordering::Relaxed);
        if let Some(p) = progress {
            p(n);
        }
    };
    let load = store.import(namespaces, &report);
    match limit {
        None => load.await?,
        Some(limit) => {
            tokio::pin!(load);
            loop {
                let seen = beat.load(Ordering::Relaxed);
                let deadline = started + Duration::from_millis(seen) + limit;
                tokio::select! {
                    r = &mut load => { r?; break; }
                    () = tokio::time::sleep_until(deadline.into()) => {
                        if beat.load(Ordering::Relaxed) == seen {
                            return Err(Error::unavailable(format!(
                                "import: {backend} made no progress within {limit:?}; \
                                 the import was abandoned and nothing of it was kept"
                            )));
                        }
                    }
                }
            }
        }
    }
    if let Some(p) = progress {
        p(items);
    }
    Ok(ImportSummary {
        namespaces: namespaces.len() as u64,
        items,
    })
}

/// The error for importing into a namespace that holds data. It names the
/// namespace and nothing of what is in it.
pub fn not_empty(ns: &str) -> Error {
    Error::conflict(
        None,
        format!("import needs empty namespaces; namespace {ns:?} already holds data; nothing was imported"),
    )
}
