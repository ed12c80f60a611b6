//! Records an application lives on: declared indexes and `find`, unique
//! keys, expiry, and the `update` / `incr` helpers. Listed under `records`.

use std::ops::Bound;

use persistkit_core::{ErrorKind, Expect, Find, Handle, Index, Record};

use super::*;
use crate::outcome::{expect_err, CaseResult};
use crate::race;
use crate::{ensure, ensure_eq, Ctx};

/// Every page of `find`, followed to the end: the ids in order.
async fn find_all(h: &Handle, collection: &str, query: Find) -> Result<Vec<String>, CaseError> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => query.clone().after(c.clone()),
            None => query.clone(),
        };
        let page = h.find(collection, &q).await?;
        ids.extend(page.items.iter().map(|r| r.id.clone()));
        ensure!(
            ids.len() <= MAX_ITEMS,
            "find: paging never ends (over {MAX_ITEMS} items)"
        );
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(ids),
        }
    }
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Declaring an index is idempotent, persisted, and checked.
pub async fn indexes_are_declared_once(ctx: &Ctx) -> CaseResult {
    ctx.needs(&["indexes", "unique_indexes"])?;
    let h = ctx.handle();
    h.put("jobs", "1", &json!({"status": "open"}), Expect::Absent)
        .await?;
    let ix = Index::new("jobs", "by_status", ["/status"]);
    ensure!(
        h.create_index(&ix).await?,
        "indexes: the first declaration creates the index"
    );
    ensure!(
        !h.create_index(&ix).await?,
        "indexes: declaring the same index again is a no-op that says so"
    );
    expect_err(
        h.create_index(&Index::new("jobs", "by_status", ["/owner"]))
            .await,
        ErrorKind::Conflict,
        "indexes: declaring another index under a taken name",
    )?;
    expect_err(
        h.create_index(&ix.clone().unique()).await,
        ErrorKind::Conflict,
        "indexes: the same name and fields but unique is another index",
    )?;
    for (what, bad) in [
        ("no fields", Index::new("jobs", "i", Vec::<String>::new())),
        (
            "a field without a leading /",
            Index::new("jobs", "i", ["status"]),
        ),
        ("a field twice", Index::new("jobs", "i", ["/a", "/a"])),
        ("an empty name", Index::new("jobs", "", ["/a"])),
        (
            "an array position with a leading zero",
            Index::new("jobs", "i", ["/a/01"]),
        ),
    ] {
        expect_err(
            h.create_index(&bad).await,
            ErrorKind::InvalidInput,
            &format!("indexes: declaring an index with {what}"),
        )?;
    }
    let second = ctx.second().await?;
    ensure_eq!(
        second.indexes(Some("jobs")).await?,
        vec![ix.clone()],
        "indexes: a declaration is stored, seen by every handle, and bad ones left nothing"
    );
    ensure_eq!(
        ids_of(
            second
                .find("jobs", &Find::new().eq("/status", "open"))
                .await?
                .items
        ),
        ids(&["1"]),
        "indexes: records written before the declaration are indexed"
    );
    ensure_eq!(
        ctx.ns("other").indexes(None).await?,
        Vec::<Index>::new(),
        "indexes: a declaration belongs to its namespace"
    );
    Ok(())
}

fn ids_of(v: Vec<Record>) -> Vec<String> {
    v.into_iter().map(|r| r.id).collect()
}

/// `find` reads through an index: equality, then a range on the next
/// field, ordered by the index and then id, by the type order.
pub async fn find_orders_by_index_then_id(ctx: &Ctx) -> CaseResult {
    ctx.needs(&["indexes"])?;
    let h = ctx.handle();
    h.create_index(&Index::new("jobs", "by_status_at", ["/status", "/at"]))
        .await?;
    h.create_index(&Index::new("jobs", "by_rank", ["/rank"]))
        .await?;
    let docs = [
        ("a", json!({"status": "open", "at": 3, "rank": "b"})),
        ("b", json!({"status": "open", "at": 1, "rank": 10})),
        ("c", json!({"status": "done", "at": 2, "rank": null})),
        ("d", json!({"status": "open", "at": 2.5, "rank": true})),
        ("e", json!({"status": "open", "at": 1.0, "rank": -1.5})),
        ("f", json!({"status": "Open", "at": 1, "rank": "B"})),
        ("g", json!({"status": "open", "rank": 2})),
        ("h", json!({"status": "open", "at": [1], "rank": {"x": 1}})),
        ("i", json!({"status": "open", "at": "2", "rank": false})),
        ("j", json!({"status": "open", "at": null, "rank": 1e300})),
        ("k", json!({"status": "open", "at": -7, "rank": "é"})),
    ];
    for (id, d) in &docs {
        h.put("jobs", id, d, Expect::Absent).await?;
    }
    ensure_eq!(
        find_all(&h, "jobs", Find::new().eq("/status", "open")).await?,
        ids(&["j", "k", "b", "e", "d", "a", "i"]),
        "find: equality on the first field, ordered by the next (null < numbers < strings, \
         numbers by value, 1 and 1.0 equal and then by id); records missing a field or holding \
         an array there are not in the index; strings compare exactly (\"Open\" is not \"open\")"
    );
    ensure_eq!(
        find_all(
            &h,
            "jobs",
            Find::new().eq("/status", "open").between("/at", 1, 3)
        )
        .await?,
        ids(&["b", "e", "d"]),
        "find: a range on the field after the equality fields, from included, to excluded, \
         of the bounds' type only"
    );
    ensure_eq!(
        find_all(
            &h,
            "jobs",
            Find::new().eq("/status", "open").range(
                "/at",
                Bound::Excluded(json!(1)),
                Bound::Included(json!(3))
            )
        )
        .await?,
        ids(&["d", "a"]),
        "find: exclusive lower and inclusive upper bounds"
    );
    ensure_eq!(
        find_all(
            &h,
            "jobs",
            Find::new().range("/rank", Bound::Unbounded, Bound::Unbounded)
        )
        .await?,
        ids(&["c", "i", "d", "e", "g", "b", "j", "f", "a", "k"]),
        "find: the whole index in type order null < false < true < numbers < strings, \
         strings byte-wise (\"B\" < \"b\" < \"é\"), objects left out"
    );
    ensure_eq!(
        find_all(
            &h,
            "jobs",
            Find::new().eq("/status", "open").eq("/at", 1).limit(1)
        )
        .await?,
        ids(&["b", "e"]),
        "find: equality on every field, one record per page, ties by id"
    );
    let e = expect_err(
        h.find("jobs", &Find::new().eq("/owner", "ann")).await,
        ErrorKind::InvalidInput,
        "find: on a field no index has",
    )?;
    ensure!(
        e.message().contains("/owner"),
        "find: the error names the unindexed field, got {:?}",
        e.message()
    );
    expect_err(
        h.find("jobs", &Find::new().eq("/at", 1)).await,
        ErrorKind::InvalidInput,
        "find: equality on an index's second field alone (it would need a scan)",
    )?;
    expect_err(
        h.find("jobs", &Find::new().eq("/status", json!(["open"])))
            .await,
        ErrorKind::InvalidInput,
        "find: an array as a value",
    )?;
    expect_err(
        h.find("jobs", &Find::new()).await,
        ErrorKind::InvalidInput,
        "find: no field at all",
    )?;
    expect_err(
        h.find("jobs", &Find::new().eq("/status", "open").limit(0))
            .await,
        ErrorKind::InvalidInput,
        "find: a limit of 0",
    )?;
    Ok(())
}

/// Paging through `find` sees every record once, and the index follows
/// every write: update, delete, clear, and a second handle.
pub async fn find_pages_and_follows_writes(ctx: &Ctx) -> CaseResult {
    ctx.needs(&["indexes"])?;
    let h = ctx.handle();
    h.create_index(&Index::new("drafts", "by_user", ["/user", "/n"]))
        .await?;
    for i in 0..57u32 {
        let user = if i % 3 == 0 { "ann" } else { "bob" };
        h.put(
            "drafts",
            &format!("d{i:02}"),
            &json!({"user": user, "n": 100 - i}),
            Expect::Absent,
        )
        .await?;
    }
    let mut want: Vec<(u32, String)> = (0..57u32)
        .filter(|i| i % 3 == 0)
        .map(|i| (100 - i, format!("d{i:02}")))
        .collect();
    want.sort();
    let want: Vec<String> = want.into_iter().map(|(_, id)| id).collect();
    ensure_eq!(
        find_all(&h, "drafts", Find::new().eq("/user", "ann").limit(4)).await?,
        want,
        "find: pages of 4 follow the index order, each record once"
    );
    // Move one record to another user, delete another.
    h.put(
        "drafts",
        "d00",
        &json!({"user": "bob", "n": 1}),
        Expect::Any,
    )
    .await?;
    h.delete("drafts", "d03", Expect::Any).await?;
    let second = ctx.second().await?;
    let ann = find_all(&second, "drafts", Find::new().eq("/user", "ann")).await?;
    ensure!(
        !ann.contains(&"d00".to_string()) && !ann.contains(&"d03".to_string()),
        "find: a record rewritten or deleted leaves its old key, got {ann:?}"
    );
    ensure_eq!(ann.len(), 17, "find: the other records stay in the index");
    ensure_eq!(
        find_all(
            &second,
            "drafts",
            Find::new().eq("/user", "bob").limit(1000)
        )
        .await?
        .first(),
        Some(&"d00".to_string()),
        "find: a rewritten record is found under its new key, at its place"
    );
    expect_err(
        h.find(
            "drafts",
            &Find::new().eq("/user", "bob").after("not-a-cursor"),
        )
        .await,
        ErrorKind::InvalidInput,
        "find: a cursor that no find handed out",
    )?;
    h.clear().await?;
    ensure_eq!(
        find_all(&h, "drafts", Find::new().eq("/user", "bob")).await?,
        Vec::<String>::new(),
        "find: clear empties the index and keeps its declaration"
    );
    Ok(())
}

/// A unique index refuses a second record with the same key, naming the
/// index and the record that has it, and writes nothing; declaring one
/// over duplicates fails and declares nothing.
pub async fn unique_index_refuses_a_second_record(ctx: &Ctx) -> CaseResult {
    ctx.needs(&["indexes", "unique_indexes"])?;
    let h = ctx.handle();
    h.put(
        "feedback",
        "x",
        &json!({"user": "u1", "insight": 1}),
        Expect::Absent,
    )
    .await?;
    h.put(
        "feedback",
        "y",
        &json!({"user": "u1", "insight": 1.0}),
        Expect::Absent,
    )
    .await?;
    expect_err(
        h.create_index(&Index::new("feedback", "one_per_insight", ["/user", "/insight"]).unique())
            .await,
        ErrorKind::Conflict,
        "unique: declaring a unique index over two records with one key",
    )?;
    ensure_eq!(
        h.indexes(Some("feedback")).await?,
        Vec::<Index>::new(),
        "unique: a refused declaration leaves nothing"
    );
    h.delete("feedback", "y", Expect::Any).await?;
    let ix = Index::new("feedback", "one_per_insight", ["/user", "/insight"]).unique();
    h.create_index(&ix).await?;
    let e = expect_err(
        h.put(
            "feedback",
            "z",
            &json!({"user": "u1", "insight": 1, "text": "dup"}),
            Expect::Absent,
        )
        .await,
        ErrorKind::Conflict,
        "unique: a second record with a taken key",
    )?;
    ensure_eq!(
        e.unique_conflict(),
        Some(("one_per_insight", "x")),
        "unique: the conflict names the index and the record holding the key"
    );
    ensure!(
        e.message().contains("one_per_insight") && e.message().contains("\"x\""),
        "unique: the message names the index and the record, got {:?}",
        e.message()
    );
    ensure_eq!(
        h.get("feedback", "z").await?,
        None,
        "unique: a refused write writes nothing"
    );
    // The holder may rewrite itself; another key is free; freeing the key
    // lets another record take it.
    h.put(
        "feedback",
        "x",
        &json!({"user": "u1", "insight": 1, "v": 2}),
        Expect::Version(1),
    )
    .await?;
    h.put(
        "feedback",
        "z",
        &json!({"user": "u1", "insight": 2}),
        Expect::Absent,
    )
    .await?;
    expect_err(
        h.put(
            "feedback",
            "z",
            &json!({"user": "u1", "insight": 1}),
            Expect::Any,
        )
        .await,
        ErrorKind::Conflict,
        "unique: rewriting a record onto a taken key",
    )?;
    ensure_eq!(
        h.get("feedback", "z").await?.map(|r| r.data),
        Some(json!({"user": "u1", "insight": 2})),
        "unique: the refused rewrite left the record as it was"
    );
    h.delete("feedback", "x", Expect::Any).await?;
    h.put(
        "feedback",
        "w",
        &json!({"user": "u1", "insight": 1}),
        Expect::Absent,
    )
    .await?;
    ensure_eq!(
        ids_of(
            h.find("feedback", &Find::new().eq("/user", "u1"))
                .await?
                .items
        ),
        ids(&["w", "z"]),
        "unique: a deleted record frees its key"
    );
    // Records without the field are not in the index, so never collide.
    h.put("feedback", "n1", &json!({"user": "u2"}), Expect::Absent)
        .await?;
    h.put("feedback", "n2", &json!({"user": "u2"}), Expect::Absent)
        .await?;
    Ok(())
}

/// Contenders on two handles put different records with one unique key at
/// the same instant: exactly one wins, the others are told who did.
pub async fn unique_key_race_has_one_winner(ctx: &Ctx) -> CaseResult {
    ctx.needs(&["indexes", "unique_indexes"])?;
    let h = ctx.handle();
    let second = ctx.second().await?;
    h.create_index(&Index::new("keys", "by_owner", ["/owner"]).unique())
        .await?;
    let n = race::contenders();
    race::rounds(|round| {
        let handles = [h.clone(), second.clone()];
        async move {
            let owner = format!("owner-{round}");
            let results = race::together(n, {
                let (owner, handles) = (owner.clone(), handles.clone());
                move |i| {
                    let (h, owner) = (handles[i % 2].clone(), owner.clone());
                    async move {
                        h.put(
                            "keys",
                            &format!("k{round}-{i}"),
                            &json!({"owner": owner}),
                            Expect::Absent,
                        )
                        .await
                    }
                }
            })
            .await?;
            let mut winners = Vec::new();
            for (i, r) in results.into_iter().enumerate() {
                match r {
                    Ok(rec) => winners.push(rec.id),
                    Err(e) if e.kind() == ErrorKind::Conflict => {}
                    Err(e) => {
                        return Err(CaseError::failed(format!(
                            "unique: contender {i} failed with {e}"
                        )))
                    }
                }
            }
            ensure_eq!(
                winners.len(),
                1,
                "unique: exactly one of {n} racing writers of one key wins, got {winners:?}"
            );
            ensure_eq!(
                ids_of(
                    handles[0]
                        .find("keys", &Find::new().eq("/owner", owner.as_str()))
                        .await?
                        .items
                ),
                winners,
                "unique: the index holds the winner only"
            );
            Ok(())
        }
    })
    .await?;
    Ok(())
}

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

/// A read through one handle sees every write acknowledged through another
/// (put, delete, batch, clear, import, purge), even right after reading the
/// same record: what a cache in front of the store must never get wrong.
pub async fn reads_follow_every_write(ctx: &Ctx) -> CaseResult {
    use persistkit_core::{Batch, ExportScope};
    let reader = ctx.handle();
    let writer = ctx.second().await?;
    let data = |h: &Handle, id: &'static str| {
        let h = h.clone();
        async move { Ok::<_, CaseError>(h.get("docs", id).await?.map(|r| r.data)) }
    };
    writer
        .put("docs", "a", &json!({"v": 1}), Expect::Absent)
        .await?;
    ensure_eq!(
        data(&reader, "a").await?,
        Some(json!({"v": 1})),
        "reads: a read sees the record"
    );
    ensure_eq!(
        data(&reader, "b").await?,
        None,
        "reads: an absent record reads as none"
    );
    writer
        .put("docs", "a", &json!({"v": 2}), Expect::Version(1))
        .await?;
    ensure_eq!(
        data(&reader, "a").await?,
        Some(json!({"v": 2})),
        "reads: a read right after a put through another handle sees the put"
    );
    writer
        .put("docs", "b", &json!({"v": 1}), Expect::Absent)
        .await?;
    ensure_eq!(
        data(&reader, "b").await?,
        Some(json!({"v": 1})),
        "reads: a record read as absent, then created, is seen"
    );
    writer.delete("docs", "a", Expect::Any).await?;
    ensure_eq!(
        data(&reader, "a").await?,
        None,
        "reads: a deleted record is gone at once"
    );
    if ctx.declares("batches") {
        writer
            .apply(
                &Batch::new()
                    .put("docs", "a", json!({"v": 3}), Expect::Absent)
                    .delete("docs", "b", Expect::Any),
            )
            .await?;
    } else {
        writer
            .put("docs", "a", &json!({"v": 3}), Expect::Absent)
            .await?;
        writer.delete("docs", "b", Expect::Any).await?;
    }
    ensure_eq!(
        (data(&reader, "a").await?, data(&reader, "b").await?),
        (Some(json!({"v": 3})), None),
        "reads: both writes (of a batch, where batches are declared) are seen at once"
    );
    let mut archive = Vec::new();
    writer
        .export(ExportScope::Namespace, &mut archive, None)
        .await?;
    writer.clear().await?;
    ensure_eq!(
        data(&reader, "a").await?,
        None,
        "reads: clear removes what was read before"
    );
    writer.import(&mut archive.as_slice(), None).await?;
    ensure_eq!(
        data(&reader, "a").await?,
        Some(json!({"v": 3})),
        "reads: an imported record is seen at once"
    );
    ctx.advance(secs(100));
    writer
        .put("docs", "c", &json!({"v": 1}), Expect::Absent)
        .await?;
    ensure_eq!(
        data(&reader, "c").await?,
        Some(json!({"v": 1})),
        "reads: a new record is seen"
    );
    let purged = writer
        .purge(&persistkit_core::RetentionPolicy {
            records_not_updated_for: Some(secs(50)),
            ..Default::default()
        })
        .await?;
    ensure_eq!(
        purged.records,
        1,
        "reads: the purge removes the old record only"
    );
    ensure_eq!(
        (data(&reader, "a").await?, data(&reader, "c").await?),
        (None, Some(json!({"v": 1}))),
        "reads: a purged record is gone at once, the others stay"
    );
    Ok(())
}

/// Two OS processes on the same data, each reading a record right before
/// the other writes it: each read after the other's write has returned
/// sees that write. A cache that is one process's (while the store says it
/// is shared across processes) fails this.
pub async fn reads_follow_writes_across_processes(ctx: &Ctx) -> CaseResult {
    if !ctx.capabilities().shared_across_processes {
        return Err(CaseError::Unsupported(
            "shared_across_processes is not declared".into(),
        ));
    }
    let (collection, id) = crate::child::SHARED_RECORD;
    let h = ctx.handle();
    let version = |h: Handle| async move {
        Ok::<_, CaseError>(h.get(collection, id).await?.map(|r| r.version))
    };
    h.put(
        collection,
        id,
        &json!({"by": "first process"}),
        Expect::Absent,
    )
    .await?;
    ensure_eq!(
        version(h.clone()).await?,
        Some(1),
        "reads: a read sees the record"
    );
    let mut child = ctx.start_child("records").await?;
    child.go().await?;
    let within = std::time::Duration::from_secs(60);
    let mut said = Vec::new();
    while said.len() < 2 {
        match child.next_line(within).await? {
            Some(line) if line.starts_with("error") => {
                return Err(CaseError::failed(format!(
                    "reads: the second process failed: {line}"
                )))
            }
            Some(line) => said.push(line),
            None => return Err(CaseError::failed("reads: the second process exited early")),
        }
    }
    ensure_eq!(
        said,
        ["saw 1", "wrote 2"],
        "reads: the second process reads version 1, then writes version 2"
    );
    ensure_eq!(
        version(h.clone()).await?,
        Some(2),
        "reads: a write that returned in another process is seen here, right after this process read the record"
    );
    h.put(
        collection,
        id,
        &json!({"by": "first process"}),
        Expect::Version(2),
    )
    .await?;
    child.send("again").await?;
    let rest = child.until_done(within).await?;
    ensure_eq!(
        rest,
        ["saw 3"],
        "reads: a write that returned here is seen in the other process, right after it read the record"
    );
    Ok(())
}

/// One writer moves a record on, version after version, while readers on
/// another handle, released at the same instant, read it again and again:
/// no read returns a version older than one whose write had already
/// returned when the read began. A cache that stores what it read after a
/// racing write has invalidated the key fails this.
pub async fn reads_never_go_back(ctx: &Ctx) -> CaseResult {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use std::sync::Arc;
    const WRITES: u64 = 30;
    let writer = ctx.handle();
    let reader = ctx.second().await?;
    let n = race::contenders();
    race::rounds(|round| {
        let (writer, reader) = (writer.clone(), reader.clone());
        async move {
            let id = format!("r-{round}");
            writer
                .put("race", &id, &json!({"n": 0}), Expect::Absent)
                .await?;
            let acked = Arc::new(AtomicU64::new(1));
            let done = Arc::new(AtomicBool::new(false));
            let results = race::together(n, {
                let id = id.clone();
                move |i| {
                    let (w, r, id) = (writer.clone(), reader.clone(), id.clone());
                    let (acked, done) = (acked.clone(), done.clone());
                    async move {
                        if i == 0 {
                            for v in 1..=WRITES {
                                let rec = w
                                    .put("race", &id, &json!({"n": v}), Expect::Version(v))
                                    .await;
                                match rec {
                                    Ok(rec) => acked.store(rec.version, SeqCst),
                                    Err(e) => {
                                        done.store(true, SeqCst);
                                        return Err(e);
                                    }
                                }
                                tokio::task::yield_now().await;
                            }
                            done.store(true, SeqCst);
                            return Ok(None);
                        }
                        while !done.load(SeqCst) {
                            let before = acked.load(SeqCst);
                            let got = r.get("race", &id).await?.map_or(0, |rec| rec.version);
                            if got < before {
                                return Ok(Some((got, before)));
                            }
                        }
                        Ok(None)
                    }
                }
            })
            .await?;
            for r in results {
                if let Some((got, before)) = r? {
                    return Err(CaseError::failed(format!(
                        "reads: a read returned version {got} after the write of version \
                         {before} had returned"
                    )));
                }
            }
            Ok(())
        }
    })
    .await?;
    Ok(())
}
