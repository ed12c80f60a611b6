//! Records: versioned JSON with compare-and-set, byte-wise listing, no lost updates.

use persistkit_core::{ErrorKind, Expect};

pub use super::indexes::{
    find_orders_by_index_then_id, find_pages_and_follows_writes, indexes_are_declared_once,
    unique_index_refuses_a_second_record, unique_key_race_has_one_winner,
};
pub use super::read_your_writes::{
    reads_follow_every_write, reads_follow_writes_across_processes, reads_never_go_back,
};
pub use super::record_lifecycle::{
    archive_carries_indexes_and_expiry, batch_commits_all_or_nothing, expired_records_are_absent,
    update_and_incr_lose_nothing,
};
use super::*;
use crate::outcome::{expect_err, CaseResult};
use crate::race;
use crate::{ensure, ensure_eq, Ctx};

/// `put(Absent)` creates version 1 with `created_at = updated_at = now`.
pub async fn put_absent_creates_version_1(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let r = h
        .put("jobs", "42", &json!({"state": "queued"}), Expect::Absent)
        .await?;
    ensure_eq!(
        (r.version, r.created_at, r.updated_at),
        (1, t(0), t(0)),
        "records: a new record has version 1 and both times from the clock"
    );
    let got = h.get("jobs", "42").await?;
    ensure_eq!(got, Some(r), "records: get returns what put stored");
    Ok(())
}

/// Each write adds one to the version and moves `updated_at` only.
pub async fn each_write_adds_one_to_version(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.put("c", "id", &json!({"n": 1}), Expect::Absent).await?;
    ctx.advance(secs(10));
    let r2 = h
        .put("c", "id", &json!({"n": 2}), Expect::Version(1))
        .await?;
    ctx.advance(secs(10));
    let r3 = h.put("c", "id", &json!({"n": 3}), Expect::Any).await?;
    ensure_eq!(
        (r2.version, r3.version),
        (2, 3),
        "records: version +1 per write"
    );
    ensure_eq!(
        (r3.created_at, r3.updated_at),
        (t(0), t(20)),
        "records: created_at stays, updated_at moves"
    );
    ensure_eq!(
        h.get("c", "id").await?.map(|r| r.data),
        Some(json!({"n": 3})),
        "records: the last write wins"
    );
    Ok(())
}

/// `put(Absent)` on an existing record is `Conflict` with its version.
pub async fn absent_on_existing_conflicts(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let r = h
        .put("c", "id", &json!({"v": "orig"}), Expect::Absent)
        .await?;
    let e = expect_err(
        h.put("c", "id", &json!({"v": "new"}), Expect::Absent).await,
        ErrorKind::Conflict,
        "records: put(absent) on an existing record",
    )?;
    ensure_eq!(
        e.current_version(),
        Some(1),
        "records: Conflict carries the current version"
    );
    ensure_eq!(
        h.get("c", "id").await?,
        Some(r),
        "records: a failed expectation writes nothing"
    );
    Ok(())
}

/// A stale version is `Conflict` with the current version.
pub async fn stale_version_conflicts(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.put("c", "id", &json!({"n": 1}), Expect::Absent).await?;
    let r2 = h
        .put("c", "id", &json!({"n": 2}), Expect::Version(1))
        .await?;
    let e = expect_err(
        h.put("c", "id", &json!({"n": 3}), Expect::Version(1)).await,
        ErrorKind::Conflict,
        "records: put with a stale version",
    )?;
    ensure_eq!(
        e.current_version(),
        Some(2),
        "records: Conflict carries the current version"
    );
    ensure_eq!(
        h.get("c", "id").await?,
        Some(r2),
        "records: a failed expectation writes nothing"
    );
    Ok(())
}

/// Expecting a version of a missing record is `Conflict` with no version.
pub async fn version_on_missing_conflicts(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let e = expect_err(
        h.put("c", "id", &json!({}), Expect::Version(3)).await,
        ErrorKind::Conflict,
        "records: put(version) on a missing record",
    )?;
    ensure_eq!(
        e.current_version(),
        None,
        "records: Conflict on an absent record carries no version"
    );
    ensure_eq!(
        h.get("c", "id").await?,
        None,
        "records: a failed expectation writes nothing"
    );
    Ok(())
}

/// `Any` creates or replaces.
pub async fn any_creates_or_replaces(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    ensure_eq!(
        h.put("c", "id", &json!([1]), Expect::Any).await?.version,
        1,
        "records: put(any) on a missing record creates version 1"
    );
    ensure_eq!(
        h.put("c", "id", &json!([2]), Expect::Any).await?.version,
        2,
        "records: put(any) on an existing record replaces it"
    );
    Ok(())
}

/// `get` of a missing record is `None`.
pub async fn get_missing_is_none(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.put("c", "other", &json!({}), Expect::Any).await?;
    ensure_eq!(
        h.get("c", "id").await?,
        None,
        "records: get of a missing record"
    );
    ensure_eq!(
        h.get("other-collection", "other").await?,
        None,
        "records: ids are per collection"
    );
    Ok(())
}

/// `delete` checks its expectation, and a missing record is `NotFound`.
pub async fn delete_checks_expectations(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.put("c", "id", &json!({}), Expect::Absent).await?;
    h.put("c", "id", &json!({}), Expect::Version(1)).await?;
    let e = expect_err(
        h.delete("c", "id", Expect::Version(1)).await,
        ErrorKind::Conflict,
        "records: delete with a stale version",
    )?;
    ensure_eq!(
        e.current_version(),
        Some(2),
        "records: Conflict carries the current version"
    );
    let e = expect_err(
        h.delete("c", "id", Expect::Absent).await,
        ErrorKind::Conflict,
        "records: delete expecting absent on an existing record",
    )?;
    ensure_eq!(
        e.current_version(),
        Some(2),
        "records: Conflict carries the current version"
    );
    ensure!(
        h.get("c", "id").await?.is_some(),
        "records: a failed delete deletes nothing"
    );
    h.delete("c", "id", Expect::Version(2)).await?;
    ensure_eq!(
        h.get("c", "id").await?,
        None,
        "records: delete removes the record"
    );
    expect_err(
        h.delete("c", "id", Expect::Any).await,
        ErrorKind::NotFound,
        "records: delete of a missing record",
    )?;
    let e = expect_err(
        h.delete("c", "id", Expect::Version(2)).await,
        ErrorKind::Conflict,
        "records: delete(version) of a missing record",
    )?;
    ensure_eq!(
        e.current_version(),
        None,
        "records: Conflict on an absent record carries no version"
    );
    Ok(())
}

/// A record deleted and put again starts over at version 1.
pub async fn recreated_record_starts_at_version_1(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.put("c", "id", &json!({}), Expect::Absent).await?;
    h.put("c", "id", &json!({}), Expect::Any).await?;
    h.delete("c", "id", Expect::Any).await?;
    ctx.advance(secs(5));
    let r = h
        .put("c", "id", &json!({"again": true}), Expect::Absent)
        .await?;
    ensure_eq!(
        (r.version, r.created_at),
        (1, t(5)),
        "records: a re-created record is new: version 1, new created_at"
    );
    Ok(())
}

/// `list` orders ids byte-wise and pages through all of them once.
pub async fn list_orders_ids_bytewise(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let ids = tricky_names();
    for id in &ids {
        h.put("c", id, &json!({"id": id}), Expect::Any).await?;
    }
    h.put("c2", "zzz", &json!({}), Expect::Any).await?;
    h.put("b", "aaa", &json!({}), Expect::Any).await?;
    let expected = bytewise(ids);
    for page in [1, 3, 100] {
        let got: Vec<String> = all_records(&h, "c", page)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        ensure_eq!(got, expected, "records: list orders by id byte-wise and pages once through the collection only (page {page})");
    }
    expect_err(
        h.list_records("c", None, 0).await,
        ErrorKind::InvalidInput,
        "records: list limit 0",
    )?;
    expect_err(
        h.list_records("c", Some("bogus cursor"), 10).await,
        ErrorKind::InvalidInput,
        "records: a malformed cursor",
    )?;
    Ok(())
}

async fn cas_increments(ctx: &Ctx, handles: Vec<persistkit_core::Handle>, n: usize) -> CaseResult {
    handles[0]
        .put("counters", "c", &json!({"n": 0}), Expect::Absent)
        .await?;
    let mut tasks = Vec::new();
    for i in 0..n {
        let h = handles[i % handles.len()].clone();
        tasks.push(tokio::spawn(async move {
            for attempt in 0..10_000 {
                let r = h.get("counters", "c").await?.expect("created above");
                let n = r.data["n"].as_u64().expect("n");
                match h
                    .put(
                        "counters",
                        "c",
                        &json!({"n": n + 1}),
                        Expect::Version(r.version),
                    )
                    .await
                {
                    Ok(_) => return Ok(attempt),
                    Err(e) if e.kind() == ErrorKind::Conflict || e.is_retryable() => {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(persistkit_core::Error::internal(
                "gave up after 10 000 conflicts",
            ))
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| CaseError::failed(format!("task: {e}")))??;
    }
    let _ = ctx;
    let r = handles[0].get("counters", "c").await?.expect("exists");
    ensure_eq!(r.data["n"].as_u64(), Some(n as u64), "records: {n} concurrent read-modify-write loops retrying on Conflict apply all {n} updates (no lost updates)");
    ensure_eq!(
        r.version,
        n as u64 + 1,
        "records: version counts every write"
    );
    Ok(())
}

/// Rounds of compare-and-set loops released at the same instant, each
/// round on a counter of its own: no update is lost.
async fn cas_rounds(handles: Vec<persistkit_core::Handle>) -> CaseResult {
    let n = race::contenders();
    race::rounds(|round| {
        let handles = handles.clone();
        async move {
            let id = format!("round-{round}");
            handles[0]
                .put("counters", &id, &json!({"n": 0}), Expect::Absent)
                .await?;
            let results = race::together(n, {
                let (id, handles) = (id.clone(), handles.clone());
                move |i| {
                    let (h, id) = (handles[i % handles.len()].clone(), id.clone());
                    async move { increment(&h, &id).await }
                }
            })
            .await?;
            for r in results {
                r?;
            }
            let r = handles[0].get("counters", &id).await?.expect("created above");
            ensure_eq!(
                r.data["n"].as_u64(),
                Some(n as u64),
                "records: {n} concurrent read-modify-write loops retrying on Conflict apply all {n} updates (no lost updates)"
            );
            Ok(())
        }
    })
    .await?;
    Ok(())
}

/// One compare-and-set increment of `counters/id`, retried on `Conflict`.
async fn increment(h: &persistkit_core::Handle, id: &str) -> Result<(), persistkit_core::Error> {
    for _ in 0..10_000 {
        let r = h.get("counters", id).await?.expect("created before");
        let n = r.data["n"].as_u64().expect("n");
        match h
            .put(
                "counters",
                id,
                &json!({"n": n + 1}),
                Expect::Version(r.version),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Conflict || e.is_retryable() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(persistkit_core::Error::internal(
        "gave up after 10 000 conflicts",
    ))
}

/// 32 concurrent compare-and-set loops lose no update, then rounds of
/// loops released together.
pub async fn no_lost_updates(ctx: &Ctx) -> CaseResult {
    cas_increments(ctx, vec![ctx.handle()], 32).await?;
    cas_rounds(vec![ctx.handle()]).await
}

/// The same over two handles.
pub async fn no_lost_updates_across_handles(ctx: &Ctx) -> CaseResult {
    let second = ctx.second().await?;
    cas_increments(ctx, vec![ctx.handle(), second.clone()], 32).await?;
    cas_rounds(vec![ctx.handle(), second]).await
}

/// Payloads round-trip through records.
pub async fn payloads_round_trip(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    for (i, p) in payloads().into_iter().enumerate() {
        h.put("p", &i.to_string(), &p, Expect::Absent).await?;
        ensure_eq!(
            h.get("p", &i.to_string()).await?.map(|r| r.data),
            Some(p),
            "json: record data comes back semantically equal"
        );
    }
    Ok(())
}

/// Bad input is `InvalidInput` and leaves the record untouched.
pub async fn bad_input_leaves_record_untouched(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let r = h
        .put("c", "id", &json!({"keep": 1}), Expect::Absent)
        .await?;
    expect_err(
        h.put("c", "id", &json!({}), Expect::Version(0)).await,
        ErrorKind::InvalidInput,
        "records: version 0 is never valid",
    )?;
    expect_err(
        h.put("c", "id", &json!("scalar"), Expect::Any).await,
        ErrorKind::InvalidInput,
        "records: scalar data",
    )?;
    expect_err(
        h.put("c", "id", &json!({"x": "\u{0}"}), Expect::Any).await,
        ErrorKind::InvalidInput,
        "records: U+0000 in data",
    )?;
    expect_err(
        h.put("", "id", &json!({}), Expect::Any).await,
        ErrorKind::InvalidInput,
        "records: empty collection",
    )?;
    expect_err(
        h.put("c", "i\u{7}d", &json!({}), Expect::Any).await,
        ErrorKind::InvalidInput,
        "records: control character in id",
    )?;
    expect_err(
        h.get("c", &"i".repeat(256)).await,
        ErrorKind::InvalidInput,
        "records: 256-byte id",
    )?;
    expect_err(
        h.delete("c", "id", Expect::Version(0)).await,
        ErrorKind::InvalidInput,
        "records: delete expecting version 0",
    )?;
    ensure_eq!(
        h.get("c", "id").await?,
        Some(r),
        "records: rejected input leaves the record untouched"
    );
    ensure_eq!(
        h.counts().await?.records,
        1,
        "records: rejected input writes nothing"
    );
    Ok(())
}

/// Namespaces hold separate records.
pub async fn namespaces_isolate_records(ctx: &Ctx) -> CaseResult {
    let a = ctx.ns("tenant-a");
    let b = ctx.ns("tenant-b");
    a.put("c", "id", &json!({"owner": "a"}), Expect::Absent)
        .await?;
    ensure_eq!(
        b.get("c", "id").await?,
        None,
        "namespaces: B cannot read A's record"
    );
    ensure_eq!(
        b.put("c", "id", &json!({"owner": "b"}), Expect::Absent)
            .await?
            .version,
        1,
        "namespaces: B's record of the same id is its own"
    );
    expect_err(
        b.delete("c", "other", Expect::Any).await,
        ErrorKind::NotFound,
        "namespaces: B cannot delete what it does not have",
    )?;
    b.delete("c", "id", Expect::Any).await?;
    ensure_eq!(
        a.get("c", "id").await?.map(|r| r.data),
        Some(json!({"owner": "a"})),
        "namespaces: B's delete leaves A's record"
    );
    ensure_eq!(
        all_records(&b, "c", 10).await?.len(),
        0,
        "namespaces: B lists only its records"
    );
    ctx.advance(secs(86_400));
    let p = b
        .purge(&persistkit_core::RetentionPolicy {
            records_not_updated_for: Some(secs(1)),
            ..Default::default()
        })
        .await?;
    ensure_eq!(
        p.records,
        0,
        "namespaces: B's purge finds none of A's records"
    );
    ensure_eq!(
        a.counts().await?.records,
        1,
        "namespaces: A's record survives B's purge"
    );
    Ok(())
}

/// A record at the largest version refuses further writes with
/// `InvalidInput` and stays as it was; it can still be deleted.
pub async fn last_version_refuses_writes(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let archive = archive_text(&[("default", vec![archived_record("c", "x", LAST)])]);
    h.import(&mut archive.as_bytes(), None).await?;
    let before = h.get("c", "x").await?;
    ensure_eq!(
        before.as_ref().map(|r| r.version),
        Some(LAST),
        "end of range: a record imported at the last version reads back at it"
    );
    for expect in [Expect::Version(LAST), Expect::Any] {
        expect_err(
            h.put("c", "x", &json!({"new": true}), expect).await,
            ErrorKind::InvalidInput,
            &format!("end of range: put({expect:?}) on a record at the last version"),
        )?;
    }
    let e = expect_err(
        h.put("c", "x", &json!({}), Expect::Absent).await,
        ErrorKind::Conflict,
        "records: put(Absent) on an existing record",
    )?;
    ensure_eq!(
        e.current_version(),
        Some(LAST),
        "records: the conflict carries the version"
    );
    expect_err(
        h.put("c", "x", &json!({}), Expect::Version(LAST + 1)).await,
        ErrorKind::InvalidInput,
        "bounds: an expected version past i64::MAX",
    )?;
    ensure_eq!(
        h.get("c", "x").await?,
        before,
        "end of range: refused writes leave the record untouched"
    );
    h.delete("c", "x", Expect::Version(LAST)).await?;
    let fresh = h.put("c", "x", &json!({}), Expect::Absent).await?;
    ensure_eq!(
        fresh.version,
        1,
        "records: a deleted record starts over at version 1"
    );
    Ok(())
}

/// `count` is the number of live records of one collection: what paging
/// through `list_records` finds, no more (expired, deleted, other
/// collections and other namespaces are not counted).
pub async fn count_is_the_live_records_of_a_collection(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    ensure_eq!(
        h.count("jobs").await?,
        0,
        "count: a collection with no records counts 0"
    );
    // Neighbours on both sides of "jobs" in byte order, and a namespace of
    // its own, none of which may be counted.
    for c in ["job", "jobs", "jobs!", "jobt"] {
        for i in 0..3 {
            h.put(c, &format!("r{i}"), &json!({"i": i}), Expect::Absent)
                .await?;
        }
    }
    ctx.ns("other")
        .put("jobs", "x", &json!({}), Expect::Absent)
        .await?;
    h.delete("jobs", "r1", Expect::Any).await?;
    if ctx.declares("record_ttl") {
        h.put_with_ttl("jobs", "short", &json!({}), Expect::Absent, secs(60))
            .await?;
        ensure_eq!(
            h.count("jobs").await?,
            3,
            "count: r0, r2 and the record that has not expired yet; not the deleted one, \
             not other collections, not other namespaces"
        );
        ctx.advance(secs(60));
    }
    let listed = h.list_records("jobs", None, 100).await?.items.len() as u64;
    ensure_eq!(
        (h.count("jobs").await?, listed),
        (2, 2),
        "count: r0 and r2: not an expired or deleted record, not other collections or \
         namespaces; as many as list_records lists"
    );
    h.put("jobs", "short", &json!({}), Expect::Absent).await?;
    ensure_eq!(
        h.count("jobs").await?,
        3,
        "count: a record put over an expired one counts once"
    );
    expect_err(
        h.count("").await,
        ErrorKind::InvalidInput,
        "count: an empty collection name",
    )?;
    Ok(())
}
