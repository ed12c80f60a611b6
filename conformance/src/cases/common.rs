//! Rules common to every domain: names and times at their limits, byte-wise
//! order in every listing, and batches that are seen whole or not at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use persistkit_core::{
    AggregateFilter, ArchiveItem, Bucket, Claim, ErrorKind, Expect, ExportScope, KeyState,
    ManualClock, MetricPoint, NewEvent,
};

use super::*;
use crate::outcome::{expect_err, CaseResult};
use crate::{ensure, ensure_eq, Ctx};

/// Names of 1 and 255 bytes, ASCII and multi-byte.
fn names_at_the_limits() -> Vec<String> {
    vec![
        "a".into(),
        "x".repeat(255),
        format!("{}x", "é".repeat(127)),
        format!("{}abc", "😀".repeat(63)),
    ]
}

/// Names of 256 bytes: ASCII, and multi-byte with far fewer characters.
fn names_over_the_limit() -> Vec<String> {
    vec!["x".repeat(256), "é".repeat(128), "😀".repeat(64)]
}

/// The archive lines of `h`'s namespace, parsed.
async fn archive_items(h: &Handle) -> Result<Vec<Value>, CaseError> {
    let mut buf = Vec::new();
    h.export(ExportScope::Namespace, &mut buf, None).await?;
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect())
}

/// Every name field (namespace, component, metric name, event kind,
/// idempotency scope and key, collection, record id) keeps names of 1 and
/// 255 bytes, multi-byte UTF-8 included, exactly.
pub async fn every_name_round_trips_at_1_and_255_bytes(ctx: &Ctx) -> CaseResult {
    for name in names_at_the_limits() {
        let rule = format!(
            "names: a name of {} bytes ({} characters) round-trips exactly",
            name.len(),
            name.chars().count()
        );
        let h = ctx.ns(&name);
        h.write_metrics(&[gauge(t(0), &name, &name, 1.0)]).await?;
        let p = all_points(&h).await?;
        ensure!(
            p.len() == 1 && p[0].point.component == name && p[0].point.name == name,
            "{rule}: metric component and name"
        );
        ensure_eq!(
            h.list_metric_names(&name).await?,
            vec![name.clone()],
            "{rule}: metric names of a component"
        );
        h.append(&[NewEvent::new(&name, t(0), json!({}))]).await?;
        let log = whole_log(&h).await?;
        ensure!(log.len() == 1 && log[0].kind == name, "{rule}: event kind");
        let listed = list_all(
            &h,
            EventFilter {
                kinds: vec![name.clone()],
                ..Default::default()
            },
            10,
        )
        .await?;
        ensure_eq!(listed.len(), 1, "{rule}: listing events by that kind");
        let token = h
            .claim(&name, &name, secs(60))
            .await?
            .token()
            .map(str::to_string)
            .ok_or_else(|| CaseError::failed(format!("{rule}: a fresh key is acquired")))?;
        h.complete(&name, &name, &token, &json!({"ok": 1})).await?;
        match h.claim(&name, &name, secs(60)).await? {
            Claim::Exists {
                state: KeyState::Completed { response },
                ..
            } => {
                ensure_eq!(response, json!({"ok": 1}), "{rule}: idempotency key");
            }
            other => {
                return Err(CaseError::failed(format!(
                    "{rule}: idempotency key: {other:?}"
                )))
            }
        }
        let r = h.put(&name, &name, &json!({}), Expect::Absent).await?;
        ensure!(r.collection == name && r.id == name, "{rule}: record");
        let got = h.get(&name, &name).await?;
        ensure!(
            got.is_some_and(|g| g.collection == name && g.id == name),
            "{rule}: record read back"
        );
        ensure_eq!(
            all_records(&h, &name, 10).await?.len(),
            1,
            "{rule}: listing the collection"
        );
        let items = archive_items(&h).await?;
        let field = |ty: &str, key: &str| {
            items
                .iter()
                .filter(|v| v["type"] == ty)
                .map(|v| v[key].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        ensure_eq!(
            field("namespace", "name"),
            vec![name.clone()],
            "{rule}: namespace in the archive"
        );
        ensure_eq!(
            field("idempotency_key", "scope"),
            vec![name.clone()],
            "{rule}: idempotency scope as stored"
        );
        ensure_eq!(
            field("idempotency_key", "key"),
            vec![name.clone()],
            "{rule}: idempotency key as stored"
        );
        ensure_eq!(
            field("record", "collection"),
            vec![name.clone()],
            "{rule}: collection as stored"
        );
    }
    Ok(())
}

/// A name of 256 bytes is `InvalidInput` in every field, counted in bytes
/// (64 emoji are 256 bytes), and nothing is written.
pub async fn names_over_255_bytes_are_rejected_everywhere(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    for long in names_over_the_limit() {
        let rule = format!(
            "names: {} bytes in {} characters is over the limit",
            long.len(),
            long.chars().count()
        );
        let e = |what: &str| format!("{rule}: {what}");
        expect_err(
            ctx.handle().namespace(&long),
            ErrorKind::InvalidInput,
            &e("namespace"),
        )?;
        expect_err(
            h.write_metrics(&[gauge(t(0), &long, "n", 1.0)]).await,
            ErrorKind::InvalidInput,
            &e("component"),
        )?;
        expect_err(
            h.write_metrics(&[gauge(t(0), "c", &long, 1.0)]).await,
            ErrorKind::InvalidInput,
            &e("metric name"),
        )?;
        expect_err(
            h.append(&[NewEvent::new(&long, t(0), json!({}))]).await,
            ErrorKind::InvalidInput,
            &e("event kind"),
        )?;
        expect_err(
            h.claim(&long, "k", secs(1)).await,
            ErrorKind::InvalidInput,
            &e("idempotency scope"),
        )?;
        expect_err(
            h.claim("s", &long, secs(1)).await,
            ErrorKind::InvalidInput,
            &e("idempotency key"),
        )?;
        expect_err(
            h.put(&long, "id", &json!({}), Expect::Any).await,
            ErrorKind::InvalidInput,
            &e("collection"),
        )?;
        expect_err(
            h.put("c", &long, &json!({}), Expect::Any).await,
            ErrorKind::InvalidInput,
            &e("record id"),
        )?;
    }
    ensure_empty(&h, "names: rejected names write nothing").await
}

/// A spread of instants across years 1..=9999, with every microsecond
/// digit in use: a backend that keeps time as float seconds, or in
/// milliseconds, fails here.
fn spread_of_instants(n: usize) -> Vec<Timestamp> {
    // SplitMix64: fixed seed, so a failure reproduces.
    let mut state: u64 = 0x5EED_5EED_5EED_5EED;
    let span = (Timestamp::MAX.as_micros() - Timestamp::MIN.as_micros()) as u64;
    let mut out: Vec<Timestamp> = (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let micros = Timestamp::MIN.as_micros() + (z % span) as i64;
            Timestamp::from_micros(micros).expect("within the range")
        })
        .collect();
    out.extend([Timestamp::MIN, Timestamp::MAX, Timestamp::UNIX_EPOCH]);
    out
}

/// Times round-trip to the microsecond at instants spread over the whole
/// range, in every domain that stores them.
pub async fn timestamps_round_trip_across_the_range(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let instants = spread_of_instants(200);
    let rule = "timestamps: microseconds read back equal at any instant of years 1..=9999";
    let points: Vec<MetricPoint> = instants
        .iter()
        .enumerate()
        .map(|(i, &at)| gauge(at, "c", &format!("n{i:03}"), i as f64))
        .collect();
    h.write_metrics(&points).await?;
    for m in all_points(&h).await? {
        let i = m.point.value as usize;
        ensure_eq!(m.point.at, instants[i], "{rule}: metric point {i}");
    }
    let events: Vec<NewEvent> = instants
        .iter()
        .enumerate()
        .map(|(i, &at)| NewEvent::new("k", at, json!({"i": i})))
        .collect();
    h.append(&events).await?;
    let log = whole_log(&h).await?;
    ensure_eq!(log.len(), instants.len(), "events: every event is stored");
    for e in log {
        let i = e.data["i"].as_u64().unwrap_or(u64::MAX) as usize;
        ensure_eq!(
            Some(e.occurred_at),
            instants.get(i).copied(),
            "{rule}: event {i}"
        );
    }
    let clock = ManualClock::new(Timestamp::UNIX_EPOCH);
    let timed = h.clone().with_clock(Arc::new(clock.clone()));
    for (i, &at) in instants.iter().enumerate().step_by(4) {
        clock.set(at);
        let id = format!("r{i:03}");
        timed.put("times", &id, &json!({}), Expect::Absent).await?;
        let r = timed.get("times", &id).await?.expect("just written");
        ensure!(
            r.created_at == at && r.updated_at == at,
            "{rule}: record {id} written at {at}, read back created {} updated {}",
            r.created_at,
            r.updated_at
        );
        if at < Timestamp::MAX {
            timed
                .claim("times", &id, std::time::Duration::from_micros(1))
                .await?;
            match timed.claim("times", &id, secs(1)).await? {
                Claim::Exists {
                    claimed_at,
                    expires_at,
                    ..
                } => {
                    ensure!(
                    claimed_at == at && expires_at.as_micros() == at.as_micros() + 1,
                    "{rule}: idempotency key {id} claimed at {at} for 1 µs, read back claimed {claimed_at} expiring {expires_at}"
                );
                }
                other => return Err(CaseError::failed(format!("{rule}: key {id}: {other:?}"))),
            }
        }
    }
    Ok(())
}

/// Every listing orders names byte-wise: metric reads at one instant,
/// components, metric names, record ids, and the archive's namespaces,
/// idempotency keys and collections.
pub async fn every_listing_sorts_bytewise(ctx: &Ctx) -> CaseResult {
    let names = tricky_names();
    let sorted = bytewise(names.clone());
    let rule = "names sort byte-wise (as COLLATE \"C\"), never by a locale";
    for ns in &names {
        ctx.ns(ns).put("c", "x", &json!({}), Expect::Absent).await?;
    }
    let mut buf = Vec::new();
    ctx.handle().admin().export(&mut buf, None).await?;
    let namespaces: Vec<String> = String::from_utf8_lossy(&buf)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "namespace")
        .map(|v| v["name"].as_str().unwrap_or("").to_string())
        .collect();
    ensure_eq!(namespaces, sorted, "{rule}: namespaces in the archive");
    let h = ctx.ns("listing");
    let points: Vec<MetricPoint> = names.iter().map(|n| gauge(t(0), n, n, 1.0)).collect();
    h.write_metrics(&points).await?;
    let read: Vec<String> = all_points(&h)
        .await?
        .into_iter()
        .map(|m| m.point.component)
        .collect();
    ensure_eq!(
        read,
        sorted,
        "{rule}: metric points at one instant, by component"
    );
    ensure_eq!(h.list_components().await?, sorted, "{rule}: components");
    let same: Vec<MetricPoint> = names.iter().map(|n| gauge(t(1), "one", n, 1.0)).collect();
    h.write_metrics(&same).await?;
    ensure_eq!(
        h.list_metric_names("one").await?,
        sorted,
        "{rule}: metric names"
    );
    for n in &names {
        h.put(n, n, &json!({}), Expect::Absent).await?;
        h.put("ids", n, &json!({}), Expect::Absent).await?;
        h.claim(n, n, secs(60)).await?;
        h.claim("scope", n, secs(60)).await?;
    }
    let ids: Vec<String> = all_records(&h, "ids", 4)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    ensure_eq!(ids, sorted, "{rule}: record ids");
    let items = archive_items(&h).await?;
    let collections: Vec<String> = items
        .iter()
        .filter(|v| v["type"] == "record" && v["collection"] != "ids")
        .map(|v| v["collection"].as_str().unwrap_or("").to_string())
        .collect();
    ensure_eq!(collections, sorted, "{rule}: collections in the archive");
    let keys: Vec<(String, String)> = items
        .iter()
        .filter(|v| v["type"] == "idempotency_key")
        .map(|v| {
            (
                v["scope"].as_str().unwrap_or("").to_string(),
                v["key"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut expected: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), n.clone()))
        .chain(names.iter().map(|n| ("scope".to_string(), n.clone())))
        .collect();
    expected
        .sort_by(|a, b| (a.0.as_bytes(), a.1.as_bytes()).cmp(&(b.0.as_bytes(), b.1.as_bytes())));
    ensure_eq!(
        keys,
        expected,
        "{rule}: idempotency keys by (scope, key) in the archive"
    );
    Ok(())
}

/// Poll `count` until `done`, failing if it ever sees a count that is not
/// a whole number of batches of `batch`.
async fn whole_batches_only<F, Fut>(
    rule: String,
    batch: u64,
    done: Arc<AtomicBool>,
    count: F,
) -> Result<u64, CaseError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<u64, persistkit_core::Error>>,
{
    let mut polls = 0u64;
    loop {
        let finished = done.load(Ordering::SeqCst);
        let n = count().await?;
        polls += 1;
        ensure!(
            n % batch == 0,
            "{rule}: a reader saw {n} items, part of a batch of {batch}"
        );
        if finished {
            return Ok(polls);
        }
        tokio::task::yield_now().await;
    }
}

/// How a watcher counts what a reader sees.
type Count = fn(Handle) -> futures::future::BoxFuture<'static, Result<u64, persistkit_core::Error>>;

/// Watch `reader` with `count` on a task of its own until `done`, failing on
/// a count that is not a whole number of batches.
fn watch(
    rule: &str,
    batch: u64,
    done: &Arc<AtomicBool>,
    reader: &Handle,
    count: Count,
) -> tokio::task::JoinHandle<Result<u64, CaseError>> {
    let reader = reader.clone();
    tokio::spawn(whole_batches_only(
        rule.to_string(),
        batch,
        done.clone(),
        move || count(reader.clone()),
    ))
}

/// Wait for the watchers, then for the writer's outcome.
async fn settle(
    watchers: Vec<tokio::task::JoinHandle<Result<u64, CaseError>>>,
    written: Result<(), persistkit_core::Error>,
) -> CaseResult {
    for w in watchers {
        w.await
            .map_err(|e| CaseError::failed(format!("reader: {e}")))??;
    }
    written?;
    Ok(())
}

/// Batches of 10 000 points are visible whole or not at all to readers on
/// other handles, batch after batch.
pub async fn metric_batches_are_visible_whole(ctx: &Ctx) -> CaseResult {
    const BATCH: usize = 10_000;
    let writer = ctx.handle();
    let reader = ctx.second().await?;
    let done = Arc::new(AtomicBool::new(false));
    let rule = "batches are atomic: metric points";
    let watchers = vec![
        watch(rule, BATCH as u64, &done, &reader, |r| {
            Box::pin(async move { Ok(r.counts().await?.metrics) })
        }),
        watch(rule, BATCH as u64, &done, &reader, |r| {
            Box::pin(async move {
                let f = AggregateFilter {
                    component: Some("batch".into()),
                    ..Default::default()
                };
                let rows = r.aggregate(&f, Bucket::seconds(86_400 * 365)).await?;
                Ok(rows.iter().map(|row| row.count).sum())
            })
        }),
    ];
    let mut written = Ok(());
    for b in 0..4 {
        let points: Vec<MetricPoint> = (0..BATCH)
            .map(|i| gauge(t((i % 3_600) as i64), "batch", &format!("b{b}"), i as f64))
            .collect();
        if let Err(e) = writer.write_metrics(&points).await {
            written = Err(e);
            break;
        }
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::SeqCst);
    settle(watchers, written).await?;
    ensure_eq!(
        reader.counts().await?.metrics,
        4 * BATCH as u64,
        "{rule}: every batch lands"
    );
    Ok(())
}

/// Batches of 1 000 events are visible whole or not at all.
pub async fn event_batches_are_visible_whole(ctx: &Ctx) -> CaseResult {
    const BATCH: usize = 1_000;
    let writer = ctx.handle();
    let reader = ctx.second().await?;
    let done = Arc::new(AtomicBool::new(false));
    let rule = "batches are atomic: events";
    let watchers = vec![watch(rule, BATCH as u64, &done, &reader, |r| {
        Box::pin(async move { Ok(r.counts().await?.events) })
    })];
    let mut written = Ok(());
    for b in 0..6 {
        let events: Vec<NewEvent> = (0..BATCH)
            .map(|i| NewEvent::new("batch", t(b), json!({"b": b, "i": i})))
            .collect();
        if let Err(e) = writer.append(&events).await {
            written = Err(e);
            break;
        }
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::SeqCst);
    settle(watchers, written).await?;
    let log = whole_log(&reader).await?;
    ensure_eq!(log.len(), 6 * BATCH, "{rule}: every batch lands");
    Ok(())
}

/// Batches of record puts and an append, applied with `Handle::apply`,
/// are visible whole or not at all to a reader on another handle.
pub async fn record_batches_are_visible_whole(ctx: &Ctx) -> CaseResult {
    ctx.needs(&["batches"])?;
    const PUTS: usize = 25;
    let writer = ctx.handle();
    let reader = ctx.second().await?;
    let done = Arc::new(AtomicBool::new(false));
    let rule = "batches are atomic: a batch of puts and an append";
    let watchers = vec![watch(rule, 2 * PUTS as u64, &done, &reader, |r| {
        Box::pin(async move {
            let c = r.counts().await?;
            Ok(c.records + c.events)
        })
    })];
    let mut written = Ok(());
    for b in 0..40 {
        let mut batch = persistkit_core::Batch::new();
        for i in 0..PUTS {
            batch = batch.put(
                "pairs",
                format!("b{b:02}-{i:02}"),
                json!({"b": b}),
                persistkit_core::Expect::Absent,
            );
        }
        let events = (0..PUTS)
            .map(|i| NewEvent::new("moved", t(b), json!({"b": b, "i": i})))
            .collect();
        if let Err(e) = writer.apply(&batch.append(events)).await {
            written = Err(e);
            break;
        }
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::SeqCst);
    settle(watchers, written).await?;
    ensure_eq!(
        reader.counts().await?.records,
        40 * PUTS as u64,
        "{rule}: every batch lands"
    );
    Ok(())
}

/// An import is visible whole or not at all.
pub async fn imports_are_visible_whole(ctx: &Ctx) -> CaseResult {
    const ITEMS: usize = 3_000;
    let reader = ctx.second().await?;
    for round in 0..3 {
        let ns = format!("import-{round}");
        let items: Vec<ArchiveItem> = (0..ITEMS)
            .map(|i| {
                if i % 3 == 0 {
                    archived_record("c", &format!("r{i:05}"), 1)
                } else {
                    ArchiveItem::Metric(gauge(t(i as i64), "c", "n", 1.0))
                }
            })
            .collect();
        let mut items = items;
        items.sort_by_key(|i| matches!(i, ArchiveItem::Record(_)));
        let archive = archive_text(&[(&ns, items)]);
        let done = Arc::new(AtomicBool::new(false));
        let rule = "batches are atomic: an import";
        let watched = reader.namespace(&ns)?;
        let watchers = vec![watch(rule, ITEMS as u64, &done, &watched, |r| {
            Box::pin(async move { Ok(r.counts().await?.total()) })
        })];
        let imported = ctx.ns(&ns).import(&mut archive.as_bytes(), None).await;
        done.store(true, Ordering::SeqCst);
        settle(watchers, imported.map(|_| ())).await?;
        ensure_eq!(
            reader.namespace(&ns)?.counts().await?.total(),
            ITEMS as u64,
            "{rule}: the whole archive lands"
        );
    }
    Ok(())
}

/// Sequences each run draws, by default: a few seconds on SQLite.
pub const DIFFERENTIAL_SEQUENCES: u32 = 200;

/// Random sequences of every call and option agree with the memory oracle
/// on every result, error kind and read, and on the final export (COM-14).
/// The seed is printed on failure, with the shortest failing sequence.
pub async fn agrees_with_the_memory_oracle(ctx: &Ctx) -> CaseResult {
    let target = ctx.store().clone();
    let oracle = crate::differential::Declaring::wrap(
        Arc::new(persistkit_memory::MemoryStore::new()),
        target.capabilities(),
    );
    let seed = crate::differential::seed_from_env();
    let cases = crate::differential::cases_from_env(DIFFERENTIAL_SEQUENCES);
    match crate::differential::check(&oracle, &target, cases, seed).await {
        Ok(a) => {
            ctx.note(format!(
                "{} sequences, {} operations agree with the memory oracle (seed {})",
                a.sequences, a.operations, a.seed
            ));
            Ok(())
        }
        Err(d) => Err(CaseError::failed(format!(
            "differential: the store and the memory oracle disagree: {d}"
        ))),
    }
}
