//! The cases, one behaviour each, grouped by domain. Every failure message
//! names the rule of docs/contract.md that broke (the runner adds its id).

pub mod admin;
pub mod common;
pub mod events;
pub mod idempotency;
mod indexes;
pub mod metrics;
mod read_your_writes;
mod record_lifecycle;
pub mod records;

use std::time::Duration;

use persistkit_core::{
    Event, EventFilter, Handle, MetricFilter, MetricPoint, Record, StoredMetric, Timestamp,
};
use serde_json::{json, Value};

use crate::ctx::START;
use crate::outcome::CaseError;

/// `START + secs` seconds.
pub(crate) fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(START + secs).expect("in range")
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(crate) fn gauge(at: Timestamp, component: &str, name: &str, v: f64) -> MetricPoint {
    MetricPoint::gauge(at, component, name, v)
}

/// Names that sort differently byte-wise than by any locale.
pub(crate) fn tricky_names() -> Vec<String> {
    [
        "b", "B", "a", "é", "e", "😀", "Z", "a1", "a10", "a2", "É", "z", "ä", "_", "~",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Sorted byte-wise and distinct.
pub(crate) fn bytewise(mut v: Vec<String>) -> Vec<String> {
    v.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    v.dedup();
    v
}

/// Payloads that must come back semantically equal.
pub(crate) fn payloads() -> Vec<Value> {
    vec![
        json!({}),
        json!([]),
        json!({"a": 1, "b": [true, false, null], "c": {"d": "é😀\"\\\n\t"}}),
        json!({"big": u64::MAX, "neg": i64::MIN, "f": 0.1, "e": 1e300, "small": -2.5e-300}),
        json!([1, "two", 3.5, [], {}, {"nested": [[[]]]}]),
        json!({"😀": "key", "": "empty key", "Z": 1, "a": 2}),
    ]
}

/// No listing in a case holds more than this: a backend whose paging never
/// ends fails the case instead of filling memory.
pub(crate) const MAX_ITEMS: usize = 1_000_000;

/// Fail unless every key of `items` comes strictly after the one before
/// (`last` is the key the previous page ended on): a page that repeats or
/// goes back would make a reader loop for ever.
fn strictly_after<T, K: PartialOrd + std::fmt::Debug>(
    rule: &str,
    last: &mut Option<K>,
    items: &[T],
    key: impl Fn(&T) -> K,
) -> Result<(), CaseError> {
    for item in items {
        let k = key(item);
        if let Some(prev) = last.as_ref() {
            if k <= *prev {
                return Err(CaseError::failed(format!(
                    "{rule}: paging returned {k:?} after {prev:?}: every item must come once, in order, or a reader never ends"
                )));
            }
        }
        *last = Some(k);
    }
    Ok(())
}

/// Read every point matching `filter`, `page` at a time.
pub(crate) async fn read_all(
    h: &Handle,
    mut filter: MetricFilter,
    page: usize,
) -> Result<Vec<StoredMetric>, CaseError> {
    filter.limit = Some(page);
    filter.cursor = None;
    let mut out = Vec::new();
    let mut last = None;
    while out.len() <= MAX_ITEMS {
        let p = h.read_metrics(&filter).await?;
        crate::ensure!(
            p.items.len() <= page,
            "metrics paging: a page of limit {page} returned {} points",
            p.items.len()
        );
        strictly_after(
            "metrics: read orders by (at, component, name, sequence) and paging returns every point once",
            &mut last, &p.items, |m| {
            (
                m.point.at,
                m.point.component.clone(),
                m.point.name.clone(),
                m.seq,
            )
        })?;
        out.extend(p.items);
        match p.next_cursor {
            Some(c) => filter.cursor = Some(c),
            None => return Ok(out),
        }
    }
    Err(CaseError::failed(format!(
        "metrics paging never ended: more than {MAX_ITEMS} points"
    )))
}

/// Every point in the namespace.
pub(crate) async fn all_points(h: &Handle) -> Result<Vec<StoredMetric>, CaseError> {
    read_all(h, MetricFilter::default(), 10_000).await
}

/// List every event matching `filter`, `page` at a time.
pub(crate) async fn list_all(
    h: &Handle,
    mut filter: EventFilter,
    page: usize,
) -> Result<Vec<Event>, CaseError> {
    filter.limit = Some(page);
    filter.cursor = None;
    let mut out = Vec::new();
    let mut last = None;
    while out.len() <= MAX_ITEMS {
        let p = h.list_events(&filter).await?;
        crate::ensure!(
            p.items.len() <= page,
            "event paging: a page of limit {page} returned {} events",
            p.items.len()
        );
        strictly_after(
            "events: list orders by (occurred_at, id), equal occurred_at ordered by id, and paging returns every event once",
            &mut last, &p.items, |e| {
            (e.occurred_at, e.id)
        })?;
        out.extend(p.items);
        match p.next_cursor {
            Some(c) => filter.cursor = Some(c),
            None => return Ok(out),
        }
    }
    Err(CaseError::failed(format!(
        "event paging never ended: more than {MAX_ITEMS} events"
    )))
}

/// The whole log of the namespace.
pub(crate) async fn whole_log(h: &Handle) -> Result<Vec<Event>, CaseError> {
    let mut out: Vec<Event> = Vec::new();
    let mut last = None;
    while out.len() <= MAX_ITEMS {
        let after = out.last().map_or(0, |e| e.position);
        let page = h.read_log(after, 10_000).await?;
        if page.is_empty() {
            return Ok(out);
        }
        crate::ensure!(
            page.len() <= 10_000,
            "gap-free log: read_log(limit 10000) returned {} events",
            page.len()
        );
        crate::ensure!(
            page[0].position > after,
            "gap-free log: read_log(after {after}) returned position {}, which is not after it",
            page[0].position
        );
        strictly_after("gap-free log", &mut last, &page, |e| e.position)?;
        out.extend(page);
    }
    Err(CaseError::failed(format!(
        "gap-free log: reading the log never ended: more than {MAX_ITEMS} events"
    )))
}

/// Every record of a collection.
pub(crate) async fn all_records(
    h: &Handle,
    collection: &str,
    page: usize,
) -> Result<Vec<Record>, CaseError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut last = None;
    while out.len() <= MAX_ITEMS {
        let p = h.list_records(collection, cursor.as_deref(), page).await?;
        crate::ensure!(
            p.items.len() <= page,
            "record paging: a page of limit {page} returned {} records",
            p.items.len()
        );
        strictly_after(
            "records: list orders by id byte-wise and paging returns every record once",
            &mut last,
            &p.items,
            |r| r.id.as_bytes().to_vec(),
        )?;
        out.extend(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
    Err(CaseError::failed(format!(
        "record paging never ended: more than {MAX_ITEMS} records"
    )))
}

/// Fail unless the namespace of `h` holds nothing at all.
pub(crate) async fn ensure_empty(h: &Handle, rule: &str) -> Result<(), CaseError> {
    let c = h.counts().await?;
    crate::ensure!(
        c.total() == 0,
        "{rule}: a rejected call must write nothing, but the store now holds {c:?}"
    );
    Ok(())
}

/// A whole archive holding `namespaces` with their items, every line in the
/// canonical form export writes, so a store that keeps everything exports
/// exactly this text again.
pub(crate) fn archive_text(namespaces: &[(&str, Vec<persistkit_core::ArchiveItem>)]) -> String {
    let mut lines = vec![
        json!({"format": "persistkit-archive", "type": "archive", "version": persistkit_core::ARCHIVE_VERSION}),
    ];
    let mut items = 0;
    for (ns, list) in namespaces {
        lines.push(json!({"type": "namespace", "name": ns}));
        for item in list {
            lines.push(serde_json::to_value(item).expect("archive items serialize"));
            items += 1;
        }
    }
    lines.push(json!({"type": "end", "namespaces": namespaces.len(), "items": items}));
    let mut text = String::new();
    for l in &lines {
        text.push_str(&persistkit_core::validate::canonical_json(l));
        text.push('\n');
    }
    text
}

/// An archived event.
pub(crate) fn archived_event(
    id: u64,
    position: u64,
    kind: &str,
    at: Timestamp,
) -> persistkit_core::ArchiveItem {
    persistkit_core::ArchiveItem::Event(Event {
        id,
        position,
        kind: kind.into(),
        occurred_at: at,
        data: json!({"id": id}),
    })
}

/// An archived record.
pub(crate) fn archived_record(
    collection: &str,
    id: &str,
    version: u64,
) -> persistkit_core::ArchiveItem {
    persistkit_core::ArchiveItem::Record(Record {
        collection: collection.into(),
        id: id.into(),
        data: json!({"v": version}),
        version,
        created_at: t(0),
        updated_at: t(1),
        expires_at: None,
    })
}

/// The largest id, position or version a store must keep.
pub(crate) const LAST: u64 = persistkit_core::validate::MAX_SEQUENCE;
