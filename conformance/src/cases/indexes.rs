//! Records through declared indexes (REC-4 to REC-6): declaring them,
//! `find` in index order and pages, unique keys and their races. Listed
//! under `records`.

use std::ops::Bound;

use persistkit_core::{ErrorKind, Expect, Find, Handle, Index, Record};

use super::*;
use crate::outcome::{expect_err, CaseResult};
use crate::race;
use crate::{ensure, ensure_eq, Ctx};

/// Every page of `find`, followed to the end: the ids in order.
pub(super) async fn find_all(
    h: &Handle,
    collection: &str,
    query: Find,
) -> Result<Vec<String>, CaseError> {
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

pub(super) fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub(super) fn ids_of(v: Vec<Record>) -> Vec<String> {
    v.into_iter().map(|r| r.id).collect()
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
        (
            "an array position with a minus sign",
            Index::new("jobs", "i", ["/a/-1"]),
        ),
        (
            "an array position with a plus sign",
            Index::new("jobs", "i", ["/a/+1"]),
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
    for signed in ["/status/-1", "/status/+1"] {
        expect_err(
            h.find("jobs", &Find::new().eq(signed, "open")).await,
            ErrorKind::InvalidInput,
            &format!("find: a field {signed:?} with a signed array position"),
        )?;
    }
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
    // Two queries on one index: a cursor of one is refused by the other,
    // never read as "no more matches".
    let of_bob = h
        .find("drafts", &Find::new().eq("/user", "bob").limit(1))
        .await?
        .next_cursor
        .ok_or_else(|| CaseError::failed("find: a full page must carry a cursor"))?;
    expect_err(
        h.find("drafts", &Find::new().eq("/user", "ann").after(&of_bob))
            .await,
        ErrorKind::InvalidInput,
        "find: a cursor of another query on the same index",
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
