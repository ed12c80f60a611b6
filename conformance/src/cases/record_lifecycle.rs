//! What happens to records over time and in groups (REC-7 to REC-9):
//! expiry, the `update` / `incr` helpers, archives that carry indexes and
//! expiry, and atomic batches. Listed under `records`.

use persistkit_core::{ErrorKind, Expect, Find, Index};

use super::indexes::{ids, ids_of};
use super::*;
use crate::outcome::{expect_err, CaseResult};
use crate::race;
use crate::{ensure, ensure_eq, Ctx};

/// A record put with a TTL is absent once the handle's clock reaches its
/// expiry: for get, list, find, delete, expectations and unique keys; purge
/// removes it.
pub async fn expired_records_are_absent(ctx: &Ctx) -> CaseResult {
    ctx.needs(&["indexes", "record_ttl"])?;
    let h = ctx.handle();
    h.create_index(&Index::new("sessions", "by_user", ["/user"]).unique())
        .await?;
    let r = h
        .put_with_ttl(
            "sessions",
            "s1",
            &json!({"user": "ann"}),
            Expect::Absent,
            secs(60),
        )
        .await?;
    ensure_eq!(
        r.expires_at,
        Some(t(60)),
        "expiry: the record expires its TTL after the clock's now"
    );
    h.put("sessions", "keep", &json!({"user": "bob"}), Expect::Absent)
        .await?;
    ctx.advance(secs(59));
    ensure_eq!(
        h.get("sessions", "s1").await?.map(|r| r.version),
        Some(1),
        "expiry: a record is there until its expiry"
    );
    ctx.advance(secs(1));
    ensure_eq!(
        h.get("sessions", "s1").await?,
        None,
        "expiry: at its expiry a record reads as absent"
    );
    ensure_eq!(
        ids_of(h.list_records("sessions", None, 100).await?.items),
        ids(&["keep"]),
        "expiry: listing skips expired records"
    );
    ensure_eq!(
        ids_of(
            h.find("sessions", &Find::new().eq("/user", "ann"))
                .await?
                .items
        ),
        Vec::<String>::new(),
        "expiry: find skips expired records"
    );
    expect_err(
        h.delete("sessions", "s1", Expect::Any).await,
        ErrorKind::NotFound,
        "expiry: deleting an expired record",
    )?;
    let again = h
        .put("sessions", "s2", &json!({"user": "ann"}), Expect::Absent)
        .await?;
    ensure_eq!(
        (again.version, again.expires_at),
        (1, None),
        "expiry: an expired record holds no unique key; a put without TTL never expires"
    );
    let reborn = h
        .put_with_ttl(
            "sessions",
            "s1",
            &json!({"user": "cy"}),
            Expect::Absent,
            secs(5),
        )
        .await?;
    ensure_eq!(
        (reborn.version, reborn.created_at),
        (1, t(60)),
        "expiry: a put over an expired record creates it anew"
    );
    ctx.advance(secs(10));
    let purged = h
        .purge(&persistkit_core::RetentionPolicy::default())
        .await?;
    ensure_eq!(
        purged.records,
        1,
        "expiry: purge removes the expired record and nothing else"
    );
    ensure_eq!(
        h.counts().await?.records,
        2,
        "expiry: the live records stay"
    );
    for bad in [std::time::Duration::ZERO, persistkit_core::MAX_TTL * 2] {
        expect_err(
            h.put_with_ttl("sessions", "bad", &json!({}), Expect::Any, bad)
                .await,
            ErrorKind::InvalidInput,
            &format!("expiry: a TTL of {bad:?}"),
        )?;
    }
    ensure_eq!(
        h.get("sessions", "bad").await?,
        None,
        "expiry: a refused TTL writes nothing"
    );
    Ok(())
}

/// `update` and `incr` from 32 concurrent writers on two handles lose
/// nothing; `incr` refuses a field that is not an integer.
pub async fn update_and_incr_lose_nothing(ctx: &Ctx) -> CaseResult {
    let handles = [ctx.handle(), ctx.second().await?];
    let mut tasks = Vec::new();
    for i in 0..32usize {
        let h = handles[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            h.incr("stats", "insight-1", "/count", 1).await?;
            h.update("stats", "seen", |current| {
                let mut list = current
                    .and_then(|d| d["ids"].as_array().cloned())
                    .unwrap_or_default();
                list.push(json!(i));
                Ok(json!({ "ids": list }))
            })
            .await
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| CaseError::failed(format!("task: {e}")))??;
    }
    // Then rounds of contenders released at the same instant, so that a
    // lost update would show every time, not by luck.
    let n = race::contenders();
    race::rounds(|round| {
        let handles = handles.clone();
        async move {
            let id = format!("round-{round}");
            let results = race::together(n, {
                let (id, handles) = (id.clone(), handles.clone());
                move |i| {
                    let (h, id) = (handles[i % 2].clone(), id.clone());
                    async move { h.incr("rounds", &id, "/n", 1).await }
                }
            })
            .await?;
            for r in results {
                r?;
            }
            ensure_eq!(
                handles[0].get("rounds", &id).await?.map(|r| r.data),
                Some(json!({"n": n})),
                "helpers: {n} incr calls released together add {n}"
            );
            Ok(())
        }
    })
    .await?;
    let h = &handles[0];
    let stats = h.get("stats", "insight-1").await?;
    ensure_eq!(
        stats.map(|r| (r.data, r.version)),
        Some((json!({"count": 32}), 32)),
        "helpers: 32 concurrent incr calls add 32, one version each"
    );
    let seen = h.get("stats", "seen").await?.expect("written");
    let mut got: Vec<u64> = seen.data["ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default();
    got.sort_unstable();
    ensure_eq!(
        got,
        (0..32).collect::<Vec<u64>>(),
        "helpers: 32 concurrent updates each land exactly once"
    );
    h.put("stats", "text", &json!({"count": "7"}), Expect::Absent)
        .await?;
    expect_err(
        h.incr("stats", "text", "/count", 1).await,
        ErrorKind::InvalidInput,
        "helpers: incr of a string",
    )?;
    for signed in ["/count/-1", "/count/+1"] {
        expect_err(
            h.incr("stats", "text", signed, 1).await,
            ErrorKind::InvalidInput,
            &format!("helpers: incr of a field {signed:?} with a signed array position"),
        )?;
    }
    ensure_eq!(
        h.get("stats", "text").await?.map(|r| r.version),
        Some(1),
        "helpers: a refused incr writes nothing"
    );
    let r = h.incr("stats", "nested", "/a/b", -5).await?;
    ensure_eq!(
        r.data,
        json!({"a": {"b": -5}}),
        "helpers: incr of a missing record creates it, with its parents"
    );
    let e = h
        .update("stats", "seen", |_| {
            Err(persistkit_core::Error::invalid("no"))
        })
        .await;
    expect_err(
        e,
        ErrorKind::InvalidInput,
        "helpers: an update whose change fails",
    )?;
    ensure_eq!(
        h.get("stats", "seen").await?.map(|r| r.version),
        Some(seen.version),
        "helpers: an update whose change fails writes nothing"
    );
    Ok(())
}

/// An archive carries index declarations and expiry: after export and
/// import, the indexes answer and the expiry holds.
pub async fn archive_carries_indexes_and_expiry(ctx: &Ctx) -> CaseResult {
    ctx.needs(&["indexes", "record_ttl"])?;
    let src = ctx.ns("src");
    src.create_index(&Index::new("jobs", "by_status", ["/status"]).unique())
        .await?;
    src.put("jobs", "1", &json!({"status": "open"}), Expect::Absent)
        .await?;
    src.put_with_ttl(
        "jobs",
        "2",
        &json!({"status": "done"}),
        Expect::Absent,
        secs(30),
    )
    .await?;
    let mut buf = Vec::new();
    src.export(persistkit_core::ExportScope::Namespace, &mut buf, None)
        .await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    ensure!(
        text.contains(r#""type":"index""#) && text.contains(r#""expires_at""#),
        "archive: the export has the index line and the record's expiry:\n{text}"
    );
    let dst = ctx.ns("dst");
    let mut input = std::io::Cursor::new(text.replace(
        r#"{"name":"src","type":"namespace"}"#,
        r#"{"name":"dst","type":"namespace"}"#,
    ));
    dst.import(&mut input, None).await?;
    ensure_eq!(
        dst.indexes(None).await?,
        src.indexes(None).await?,
        "archive: import declares the archive's indexes"
    );
    ensure_eq!(
        ids_of(
            dst.find("jobs", &Find::new().eq("/status", "done"))
                .await?
                .items
        ),
        ids(&["2"]),
        "archive: the imported records are in the imported index"
    );
    expect_err(
        dst.put("jobs", "3", &json!({"status": "open"}), Expect::Absent)
            .await,
        ErrorKind::Conflict,
        "archive: an imported unique index is enforced",
    )?;
    ctx.advance(secs(30));
    ensure_eq!(
        dst.get("jobs", "2").await?,
        None,
        "archive: an imported record expires when the original would"
    );
    Ok(())
}

/// A batch of puts, a delete, an append and a completion commits whole,
/// each item seeing the ones before; a batch with a failing item writes
/// nothing and names the item.
pub async fn batch_commits_all_or_nothing(ctx: &Ctx) -> CaseResult {
    ctx.needs(&["batches", "indexes", "unique_indexes"])?;
    use persistkit_core::{Applied, Batch, NewEvent};
    let h = ctx.handle();
    h.create_index(&Index::new("feedback", "one_per_insight", ["/user", "/insight"]).unique())
        .await?;
    h.put("drafts", "old", &json!({"user": "ann"}), Expect::Absent)
        .await?;
    let claim = h.claim("api", "req-1", secs(60)).await?;
    let applied = h
        .apply(
            &Batch::new()
                .put(
                    "feedback",
                    "f1",
                    json!({"user": "ann", "insight": 7}),
                    Expect::Absent,
                )
                .put("stats", "insight-7", json!({"count": 1}), Expect::Absent)
                .put(
                    "stats",
                    "insight-7",
                    json!({"count": 2}),
                    Expect::Version(1),
                )
                .delete("drafts", "old", Expect::Version(1))
                .append(vec![NewEvent::new(
                    "feedback.created",
                    t(0),
                    json!({"id": "f1"}),
                )])
                .complete(
                    "api",
                    "req-1",
                    claim.token().unwrap_or_default(),
                    json!({"id": "f1"}),
                ),
        )
        .await?;
    ensure_eq!(applied.len(), 6, "batch: one outcome per write, in order");
    ensure!(
        matches!(&applied[2], Applied::Put(r) if r.version == 2)
            && matches!(applied[3], Applied::Deleted)
            && matches!(&applied[4], Applied::Appended(a) if a.len() == 1 && !a[0].duplicate)
            && matches!(applied[5], Applied::Completed),
        "batch: each write sees the ones before it and reports what it did, got {applied:?}"
    );
    ensure_eq!(
        (
            h.get("stats", "insight-7").await?.map(|r| r.data),
            h.get("drafts", "old").await?,
            h.read_log(0, 10).await?.len(),
            h.key_state("api", "req-1")
                .await?
                .map(|k| matches!(k.state, persistkit_core::KeyState::Completed { .. })),
        ),
        (Some(json!({"count": 2})), None, 1, Some(true)),
        "batch: every write of a committed batch is there"
    );
    let before = h.counts().await?;
    let claim2 = h.claim("api", "req-2", secs(60)).await?;
    // The third item expects a version the record does not have.
    let failing = Batch::new()
        .put(
            "feedback",
            "f2",
            json!({"user": "bob", "insight": 7}),
            Expect::Absent,
        )
        .append(vec![NewEvent::new(
            "feedback.created",
            t(1),
            json!({"id": "f2"}),
        )])
        .put(
            "stats",
            "insight-7",
            json!({"count": 3}),
            Expect::Version(1),
        )
        .complete(
            "api",
            "req-2",
            claim2.token().unwrap_or_default(),
            json!({"id": "f2"}),
        );
    let e = expect_err(
        h.apply(&failing).await,
        ErrorKind::Conflict,
        "batch: a write whose expectation fails",
    )?;
    ensure_eq!(
        (e.index(), e.current_version()),
        (Some(2), Some(2)),
        "batch: the error names the failing write and carries its version"
    );
    ensure_eq!(
        (
            h.counts().await?.records,
            h.counts().await?.events,
            h.get("feedback", "f2").await?
        ),
        (before.records, before.events, None),
        "batch: a failed batch writes nothing, not even the writes before the failing one"
    );
    ensure!(
        matches!(
            h.key_state("api", "req-2").await?.map(|k| k.state),
            Some(persistkit_core::KeyState::InProgress)
        ),
        "batch: a failed batch completes no key"
    );
    let e = expect_err(
        h.apply(
            &Batch::new()
                .put("stats", "other", json!({}), Expect::Absent)
                .put(
                    "feedback",
                    "f3",
                    json!({"user": "ann", "insight": 7}),
                    Expect::Absent,
                ),
        )
        .await,
        ErrorKind::Conflict,
        "batch: a write that a unique index refuses",
    )?;
    ensure_eq!(
        (e.index(), e.unique_conflict()),
        (Some(1), Some(("one_per_insight", "f1"))),
        "batch: the unique conflict names the write, the index and the holder"
    );
    ensure_eq!(
        h.get("stats", "other").await?,
        None,
        "batch: the write before the refused one is not there"
    );
    let e = expect_err(
        h.apply(
            &Batch::new()
                .put(
                    "feedback",
                    "f8",
                    json!({"user": "bob", "insight": 8}),
                    Expect::Absent,
                )
                .put(
                    "feedback",
                    "f9",
                    json!({"user": "bob", "insight": 8}),
                    Expect::Absent,
                ),
        )
        .await,
        ErrorKind::Conflict,
        "batch: two writes of one batch that give a unique index the same key",
    )?;
    ensure_eq!(
        (e.index(), e.unique_conflict()),
        (Some(1), Some(("one_per_insight", "f8"))),
        "batch: a unique conflict with an earlier write of the same batch names the index \
         and that write's record"
    );
    ensure_eq!(
        h.get("feedback", "f8").await?,
        None,
        "batch: the earlier write of a refused batch is not there"
    );
    let e = expect_err(
        h.apply(
            &Batch::new().put("stats", "ok", json!({}), Expect::Any).put(
                "stats",
                "bad\nid",
                json!({}),
                Expect::Any,
            ),
        )
        .await,
        ErrorKind::InvalidInput,
        "batch: bad input in a write",
    )?;
    ensure_eq!(e.index(), Some(1), "batch: the error names the bad write");
    ensure_eq!(
        h.get("stats", "ok").await?,
        None,
        "batch: bad input anywhere writes nothing"
    );
    ensure_eq!(
        h.apply(&Batch::new()).await?.len(),
        0,
        "batch: an empty batch does nothing"
    );
    Ok(())
}
