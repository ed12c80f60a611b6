//! Events: idempotent append, deterministic order, the gap-free log.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use persistkit_core::{Appended, ErrorKind, NewEvent};

use super::*;
use crate::outcome::{expect_err, CaseResult};
use crate::race;
use crate::{ensure, ensure_eq, Ctx};

fn ev(kind: &str, at: Timestamp, data: Value) -> NewEvent {
    NewEvent::new(kind, at, data)
}

fn ids(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.id).collect()
}

/// Appends get ids and strictly increasing positions; the log reads them back.
pub async fn append_assigns_increasing_positions(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let batch: Vec<NewEvent> = (0..10).map(|i| ev("tick", t(i), json!({"i": i}))).collect();
    let a = h.append(&batch[..4]).await?;
    let b = h.append(&batch[4..]).await?;
    let all: Vec<Appended> = a.into_iter().chain(b).collect();
    ensure_eq!(all.len(), 10, "events: append returns one result per event");
    ensure!(
        all.iter().all(|x| !x.duplicate),
        "events: distinct events are not duplicates"
    );
    ensure!(
        all.windows(2).all(|w| w[0].position < w[1].position),
        "events: positions strictly increase in commit order: {all:?}"
    );
    let ids_set: HashSet<u64> = all.iter().map(|x| x.id).collect();
    ensure_eq!(ids_set.len(), 10, "events: every event gets its own id");
    let log = whole_log(&h).await?;
    ensure_eq!(
        log.iter().map(|e| e.position).collect::<Vec<_>>(),
        all.iter().map(|x| x.position).collect::<Vec<_>>(),
        "events: read_log returns every event in commit order"
    );
    ensure_eq!(
        log.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
        batch.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
        "events: data reads back as written"
    );
    Ok(())
}

/// A duplicate returns the existing id, flagged, and writes nothing.
pub async fn duplicate_returns_existing_id(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let e = ev("signup", t(0), json!({"user": 7}));
    let first = h.append(std::slice::from_ref(&e)).await?[0];
    let second = h.append(std::slice::from_ref(&e)).await?[0];
    ensure!(
        !first.duplicate,
        "events: the first append is not a duplicate"
    );
    ensure!(
        second.duplicate,
        "events: appending an identical event must be flagged duplicate"
    );
    ensure_eq!(
        (second.id, second.position),
        (first.id, first.position),
        "events: a duplicate returns the existing id"
    );
    ensure_eq!(
        whole_log(&h).await?.len(),
        1,
        "events: a duplicate writes nothing"
    );
    Ok(())
}

/// Dedupe hashes canonical JSON: key order and whitespace do not matter.
pub async fn dedupe_uses_canonical_json(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let a: Value = serde_json::from_str(r#"{"a":1,"b":[1,2],"c":{"y":1,"x":2}}"#).expect("json");
    let b: Value =
        serde_json::from_str("{ \"c\" : {\"x\":2, \"y\":1},\n \"b\": [1, 2], \"a\": 1 }")
            .expect("json");
    h.append(&[ev("k", t(0), a)]).await?;
    let r = h.append(&[ev("k", t(0), b)]).await?[0];
    ensure!(
        r.duplicate,
        "events: dedupe uses canonical JSON (keys sorted, no whitespace)"
    );
    Ok(())
}

/// Kind, time (to the microsecond) and data each make an event distinct.
pub async fn dedupe_key_is_kind_time_and_data(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let t1 = Timestamp::from_micros(t(0).as_micros() + 1)?;
    let batch = [
        ev("k", t(0), json!({"a": 1})),
        ev("K", t(0), json!({"a": 1})),
        ev("k", t1, json!({"a": 1})),
        ev("k", t(0), json!({"a": 2})),
        ev("k", t(0), json!([{"a": 1}])),
        ev("k", t(0), json!({"a": 1.5})),
    ];
    let r = h.append(&batch).await?;
    ensure!(r.iter().all(|x| !x.duplicate), "events: dedupe key is (kind, occurred_at, sha256 of data); differing in any is distinct: {r:?}");
    ensure_eq!(
        whole_log(&h).await?.len(),
        6,
        "events: every distinct event is stored"
    );
    Ok(())
}

/// A duplicate inside one batch is flagged against the earlier item.
pub async fn duplicates_within_one_batch(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let e = ev("k", t(0), json!({"x": 1}));
    let f = ev("k", t(1), json!({"x": 1}));
    let r = h.append(&[e.clone(), f, e]).await?;
    ensure!(
        !r[0].duplicate && !r[1].duplicate && r[2].duplicate,
        "events: the repeat inside a batch is flagged duplicate: {r:?}"
    );
    ensure_eq!(
        r[2].id,
        r[0].id,
        "events: the repeat returns the first item's id"
    );
    ensure_eq!(
        whole_log(&h).await?.len(),
        2,
        "events: the repeat writes nothing"
    );
    Ok(())
}

/// Concurrent appends of one event, over two handles, store it once:
/// a burst of 32, then rounds of appenders released at the same instant.
pub async fn concurrent_duplicates_write_once(ctx: &Ctx) -> CaseResult {
    let handles = [ctx.handle(), ctx.second().await?];
    let e = ev("pay", t(0), json!({"order": 42}));
    let mut tasks = Vec::new();
    for i in 0..32 {
        let h = handles[i % 2].clone();
        let e = e.clone();
        tasks.push(tokio::spawn(async move { h.append(&[e]).await }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(
            t.await
                .map_err(|e| CaseError::failed(format!("task: {e}")))??[0],
        );
    }
    check_one_stored(&results)?;
    let n = race::contenders();
    race::rounds(|round| {
        let handles = handles.clone();
        async move {
            let e = ev("pay", t(1), json!({"round": round}));
            let results = race::together(n, move |i| {
                let (h, e) = (handles[i % 2].clone(), e.clone());
                async move { h.append(&[e]).await }
            })
            .await?;
            let results: Vec<Appended> = results
                .into_iter()
                .map(|r| r.map(|v| v[0]))
                .collect::<Result<_, _>>()?;
            check_one_stored(&results)
        }
    })
    .await?;
    let log = whole_log(&handles[0]).await?;
    let unique: HashSet<u64> = log.iter().map(|e| e.id).collect();
    ensure_eq!(
        unique.len(),
        log.len(),
        "events: concurrent duplicates are stored once"
    );
    ensure!(
        log.iter()
            .filter(|e| e.data == json!({"order": 42}))
            .count()
            == 1,
        "events: concurrent duplicates are stored once"
    );
    Ok(())
}

/// Exactly one of concurrent appends of one event is new; all share its id.
fn check_one_stored(results: &[Appended]) -> CaseResult {
    let fresh = results.iter().filter(|r| !r.duplicate).count();
    ensure_eq!(
        fresh,
        1,
        "events: under concurrency exactly one of {} appends of an event is not a duplicate",
        results.len()
    );
    ensure!(
        results.iter().all(|r| r.id == results[0].id),
        "events: every concurrent duplicate returns the same id: {results:?}"
    );
    Ok(())
}

/// `list` orders by `(occurred_at, id)`.
pub async fn list_orders_by_time_then_id(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let times = [5, 1, 3, 1, 0, 5, 2];
    for (i, s) in times.iter().enumerate() {
        h.append(&[ev("k", t(*s), json!({"i": i}))]).await?;
    }
    let got = list_all(&h, EventFilter::default(), 1000).await?;
    let mut expected = got.clone();
    expected.sort_by_key(|e| (e.occurred_at, e.id));
    ensure_eq!(
        ids(&got),
        ids(&expected),
        "events: list orders by (occurred_at, id) ascending"
    );
    ensure_eq!(got.len(), times.len(), "events: list returns every event");
    Ok(())
}

/// Equal times always come back in the same order, listing after listing.
pub async fn equal_times_list_in_stable_order(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let kinds = ["b", "a", "c"];
    for chunk in 0..6 {
        let batch: Vec<NewEvent> = (0..10)
            .map(|i| ev(kinds[i % 3], t(0), json!({"chunk": chunk, "i": i})))
            .collect();
        h.append(&batch).await?;
    }
    let first = list_all(&h, EventFilter::default(), 1000).await?;
    ensure_eq!(first.len(), 60, "events: every event is listed");
    ensure!(
        first.windows(2).all(|w| w[0].id < w[1].id),
        "events: equal occurred_at are ordered by id"
    );
    for round in 0..5 {
        let again = list_all(&h, EventFilter::default(), 1000).await?;
        ensure_eq!(
            ids(&again),
            ids(&first),
            "events: equal occurred_at always come back in the same order (round {round})"
        );
        let paged = list_all(&h, EventFilter::default(), 7).await?;
        ensure_eq!(
            ids(&paged),
            ids(&first),
            "events: paging through ties keeps the same order (round {round})"
        );
    }
    Ok(())
}

/// Paging returns every event exactly once, ties included.
pub async fn paging_returns_every_event_once(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let batch: Vec<NewEvent> = (0..103)
        .map(|i| ev("k", t(i % 4), json!({"i": i})))
        .collect();
    h.append(&batch).await?;
    let whole = list_all(&h, EventFilter::default(), 10_000).await?;
    for page in [1, 7, 102, 103, 104] {
        let paged = list_all(&h, EventFilter::default(), page).await?;
        ensure_eq!(
            ids(&paged),
            ids(&whole),
            "events: paging with limit {page} returns every event exactly once, in order"
        );
    }
    let set: HashSet<u64> = ids(&whole).into_iter().collect();
    ensure_eq!(set.len(), 103, "events: no event listed twice");
    Ok(())
}

/// Kind set and `[from, to)` window filter the listing.
pub async fn list_filters_kinds_and_window(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.append(&[
        ev("a", t(0), json!({})),
        ev("b", t(1), json!({})),
        ev("c", t(2), json!({})),
        ev("a", t(3), json!({})),
        ev("A", t(1), json!({})),
    ])
    .await?;
    let kinds = |es: Vec<Event>| es.into_iter().map(|e| e.kind).collect::<Vec<_>>();
    let f = EventFilter {
        kinds: vec!["a".into(), "c".into()],
        ..Default::default()
    };
    ensure_eq!(
        kinds(list_all(&h, f, 100).await?),
        vec!["a", "c", "a"],
        "events: kind set filter (exact, case-sensitive)"
    );
    let f = EventFilter {
        from: Some(t(1)),
        to: Some(t(3)),
        ..Default::default()
    };
    ensure_eq!(
        kinds(list_all(&h, f, 100).await?),
        vec!["b", "A", "c"],
        "events: window [from, to)"
    );
    let f = EventFilter {
        from: Some(t(1)),
        to: Some(t(3)),
        kinds: vec!["b".into()],
        ..Default::default()
    };
    ensure_eq!(
        kinds(list_all(&h, f, 100).await?),
        vec!["b"],
        "events: kinds and window together"
    );
    Ok(())
}

/// `read_log(after, limit)` resumes right after a position.
pub async fn read_log_resumes_after_position(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let batch: Vec<NewEvent> = (0..10)
        .map(|i| ev("k", t(10 - i), json!({"i": i})))
        .collect();
    let r = h.append(&batch).await?;
    let page = h.read_log(r[3].position, 3).await?;
    ensure_eq!(page.iter().map(|e| e.position).collect::<Vec<_>>(), vec![r[4].position, r[5].position, r[6].position], "events: read_log(after, limit) returns the next `limit` events after that position, in commit order (not time order)");
    ensure_eq!(
        h.read_log(r[9].position, 100).await?.len(),
        0,
        "events: read_log after the last position is empty"
    );
    expect_err(
        h.read_log(0, 0).await,
        ErrorKind::InvalidInput,
        "events: read_log limit 0",
    )?;
    Ok(())
}

/// A poller racing concurrent appenders sees every event exactly once, with
/// strictly increasing positions: round after round, appenders on two
/// handles released at the same instant while the poller reads from its
/// last position.
pub async fn gap_free_log_under_concurrent_appends(ctx: &Ctx) -> CaseResult {
    const PER_WRITER: usize = 12;
    let second = ctx.second().await?;
    let handles = [ctx.handle(), second];
    let writers = race::contenders();
    // Where the poller of the next round starts: the last position seen.
    let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
    race::rounds(|round| {
        let handles = handles.clone();
        let last = last.clone();
        async move {
            let from = last.load(Ordering::SeqCst);
            let done = Arc::new(AtomicBool::new(false));
            let poller = tokio::spawn(poll_log(handles[1].clone(), from, done.clone()));
            let appended = race::together(writers, move |w| {
                let h = handles[w % 2].clone();
                async move {
                    let mut i = 0;
                    while i < PER_WRITER {
                        // Batches of 1 to 3 events.
                        let n = 1 + (i % 3).min(PER_WRITER - i - 1);
                        let batch: Vec<NewEvent> = (i..i + n)
                            .map(|j| ev("w", t(0), json!({"round": round, "w": w, "i": j})))
                            .collect();
                        h.append(&batch).await?;
                        i += n;
                    }
                    Ok::<_, persistkit_core::Error>(())
                }
            })
            .await;
            done.store(true, Ordering::SeqCst);
            let seen = poller
                .await
                .map_err(|e| CaseError::failed(format!("poller task: {e}")))??;
            for r in appended? {
                r?;
            }
            let unique: HashSet<String> = seen.iter().map(|e| e.data.to_string()).collect();
            ensure_eq!(
                unique.len(),
                seen.len(),
                "gap-free log: a poller sees every event exactly once (no repeats)"
            );
            ensure_eq!(
                seen.len(),
                writers * PER_WRITER,
                "gap-free log: a poller polling from its last position never skips an event that commits late (positions must follow commit order)"
            );
            last.store(seen.last().map_or(from, |e| e.position), Ordering::SeqCst);
            Ok(())
        }
    })
    .await?;
    Ok(())
}

/// Read the log from `after` until `done` is set and a read comes back
/// empty; every position must be after the one before.
async fn poll_log(
    h: persistkit_core::Handle,
    mut after: u64,
    done: Arc<AtomicBool>,
) -> Result<Vec<Event>, CaseError> {
    let mut seen: Vec<Event> = Vec::new();
    loop {
        let finished = done.load(Ordering::SeqCst);
        let page = h.read_log(after, 7).await?;
        for e in &page {
            ensure!(
                e.position > after,
                "gap-free log: read_log(after {after}) returned position {}, which is not after it",
                e.position
            );
            after = e.position;
        }
        ensure!(
            seen.len() + page.len() <= MAX_ITEMS,
            "gap-free log: polling never ended"
        );
        let empty = page.is_empty();
        seen.extend(page);
        if finished && empty {
            return Ok(seen);
        }
        if empty {
            tokio::task::yield_now().await;
        }
    }
}

/// JSON payloads come back semantically equal.
pub async fn payloads_round_trip(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let ps = payloads();
    let batch: Vec<NewEvent> = ps
        .iter()
        .enumerate()
        .map(|(i, p)| ev("p", t(i as i64), p.clone()))
        .collect();
    h.append(&batch).await?;
    let got: Vec<Value> = whole_log(&h).await?.into_iter().map(|e| e.data).collect();
    ensure_eq!(got, ps, "json: payloads come back semantically equal");
    Ok(())
}

/// Payloads must be an object or array, at most 1 MiB, without U+0000.
pub async fn payload_rules(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let limit = persistkit_core::validate::MAX_JSON_BYTES;
    let at_limit = json!({"x": "a".repeat(limit - 8)});
    let over = json!({"x": "a".repeat(limit - 7)});
    let bad = [
        (json!(1), "a number"),
        (json!("s"), "a string"),
        (json!(null), "null"),
        (json!(true), "a boolean"),
        (over, "over 1 MiB"),
        (json!({"a": "nul\u{0}inside"}), "U+0000 in a string"),
        (json!({"k\u{0}": 1}), "U+0000 in a key"),
        (json!([[{"deep": ["\u{0}"]}]]), "U+0000 nested"),
    ];
    for (data, why) in bad {
        let e = expect_err(
            h.append(&[ev("ok", t(0), json!({})), ev("k", t(0), data)])
                .await,
            ErrorKind::InvalidInput,
            &format!("json: payload that is {why}"),
        )?;
        ensure_eq!(
            e.index(),
            Some(1),
            "batches: the error names the offending index"
        );
    }
    ensure_empty(&h, "json: rejected payloads").await?;
    let r = h.append(&[ev("k", t(0), at_limit.clone())]).await?;
    ensure!(
        !r[0].duplicate,
        "json: a payload of exactly 1 MiB is accepted"
    );
    ensure_eq!(
        whole_log(&h).await?[0].data,
        at_limit,
        "json: a 1 MiB payload reads back equal"
    );
    Ok(())
}

/// A batch with one bad event in the middle writes nothing.
pub async fn bad_event_batch_writes_nothing(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    for bad_kind in ["", "tab\there", "nul\0", &"k".repeat(256)] {
        let batch = [
            ev("a", t(0), json!({})),
            ev("b", t(1), json!({})),
            ev(bad_kind, t(2), json!({})),
            ev("d", t(3), json!({})),
        ];
        let e = expect_err(
            h.append(&batch).await,
            ErrorKind::InvalidInput,
            &format!("events: kind {bad_kind:?}"),
        )?;
        ensure_eq!(
            e.index(),
            Some(2),
            "batches: the error names the offending index"
        );
    }
    ensure_empty(&h, "batches are atomic").await
}

/// Namespaces have separate logs and separate dedupe.
pub async fn namespaces_isolate_events(ctx: &Ctx) -> CaseResult {
    let a = ctx.ns("tenant-a");
    let b = ctx.ns("tenant-b");
    let e = ev("k", t(0), json!({"same": true}));
    a.append(&[e.clone(), ev("only-a", t(1), json!({}))])
        .await?;
    let r = b.append(std::slice::from_ref(&e)).await?;
    ensure!(!r[0].duplicate, "namespaces: dedupe is per namespace");
    ensure_eq!(
        whole_log(&b).await?.len(),
        1,
        "namespaces: B's log holds only B's events"
    );
    ensure_eq!(
        list_all(&b, EventFilter::default(), 100).await?.len(),
        1,
        "namespaces: B lists only B's events"
    );
    ensure_eq!(
        b.counts().await?.events,
        1,
        "namespaces: B counts only its events"
    );
    ctx.advance(secs(86_400));
    let p = b
        .purge(&persistkit_core::RetentionPolicy {
            events_older_than: Some(secs(1)),
            ..Default::default()
        })
        .await?;
    ensure_eq!(p.events, 1, "namespaces: B's purge deletes only B's events");
    ensure_eq!(
        whole_log(&a).await?.len(),
        2,
        "namespaces: A's events survive B's purge"
    );
    Ok(())
}

/// An event purged by retention leaves no dedupe key behind: appending it
/// again stores it as new.
pub async fn purged_event_can_be_appended_again(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let old = ev("login", t(-7_200), json!({"user": "ann"}));
    let first = h.append(std::slice::from_ref(&old)).await?[0];
    let report = h
        .purge(&persistkit_core::RetentionPolicy {
            events_older_than: Some(secs(3_600)),
            ..Default::default()
        })
        .await?;
    ensure_eq!(report.events, 1, "retention: the old event is purged");
    let again = h.append(std::slice::from_ref(&old)).await?[0];
    ensure!(
        !again.duplicate,
        "dedupe after purge: an event purged by retention is appended again as new, not flagged duplicate (got {again:?})"
    );
    ensure!(
        again.position > first.position,
        "dedupe after purge: the re-appended event gets a new, later position ({} after {})",
        again.position,
        first.position
    );
    let log = whole_log(&h).await?;
    ensure_eq!(
        ids(&log),
        vec![again.id],
        "dedupe after purge: the log holds the re-appended event once"
    );
    Ok(())
}

/// A log whose last position is the largest there is refuses new events
/// with `InvalidInput` and writes nothing; duplicates still resolve.
pub async fn full_log_refuses_appends(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let archive = archive_text(&[("default", vec![archived_event(LAST, LAST, "k", t(0))])]);
    h.import(&mut archive.as_bytes(), None).await?;
    let dup = h.append(&[ev("k", t(0), json!({"id": LAST}))]).await?;
    ensure_eq!(
        dup,
        vec![Appended {
            id: LAST,
            position: LAST,
            duplicate: true
        }],
        "end of range: a duplicate of the last event still resolves to it"
    );
    for batch in [
        vec![ev("k", t(1), json!({}))],
        vec![ev("k", t(0), json!({"id": LAST})), ev("k", t(2), json!({}))],
    ] {
        let e = expect_err(
            h.append(&batch).await,
            ErrorKind::InvalidInput,
            "end of range: appending to a log at its last position",
        )?;
        ensure!(
            !e.is_retryable(),
            "end of range: a full log is not retryable"
        );
    }
    let log = whole_log(&h).await?;
    ensure_eq!(
        log.iter().map(|e| (e.id, e.position)).collect::<Vec<_>>(),
        vec![(LAST, LAST)],
        "end of range: a refused append writes nothing (no wrapped or zero position)"
    );
    ensure_eq!(
        h.counts().await?.events,
        1,
        "end of range: a refused append writes nothing"
    );
    Ok(())
}

/// `newest_first` lists by `(occurred_at, id)` descending, with the same
/// filters, and its cursors page backwards through every event once.
pub async fn newest_first_reverses_the_listing(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let batch: Vec<NewEvent> = (0..103)
        .map(|i| ev(["a", "b"][i % 2], t((i % 5) as i64), json!({"i": i})))
        .collect();
    h.append(&batch).await?;
    let rule = "events: newest_first lists by (occurred_at, id) descending and pages backwards through every event once";
    for (filter, what) in [
        (EventFilter::default(), "no filter"),
        (
            EventFilter {
                kinds: vec!["a".into()],
                from: Some(t(1)),
                to: Some(t(4)),
                ..Default::default()
            },
            "kind a in [t1, t4)",
        ),
    ] {
        let mut expected = list_all(&h, filter.clone(), 10_000).await?;
        expected.reverse();
        for page in [1, 7, 51, 103, 104] {
            let mut f = EventFilter {
                newest_first: true,
                limit: Some(page),
                ..filter.clone()
            };
            let mut got = Vec::new();
            for _ in 0..=expected.len() + 1 {
                let p = h.list_events(&f).await?;
                ensure!(
                    p.items.len() <= page,
                    "{rule}: a page of limit {page} returned {} events",
                    p.items.len()
                );
                got.extend(p.items);
                match p.next_cursor {
                    Some(c) => f.cursor = Some(c),
                    None => break,
                }
            }
            ensure_eq!(ids(&got), ids(&expected), "{rule} ({what}, limit {page})");
        }
    }
    // The latest of one kind, as a dashboard asks for it.
    let latest = h
        .list_events(&EventFilter {
            kinds: vec!["b".into()],
            newest_first: true,
            limit: Some(3),
            ..Default::default()
        })
        .await?;
    let mut all_b = list_all(
        &h,
        EventFilter {
            kinds: vec!["b".into()],
            ..Default::default()
        },
        10_000,
    )
    .await?;
    all_b.reverse();
    all_b.truncate(3);
    ensure_eq!(
        ids(&latest.items),
        ids(&all_b),
        "{rule}: the first page is the latest events"
    );
    Ok(())
}
