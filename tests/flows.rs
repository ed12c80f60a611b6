//! The source systems' record flows, as the README shows them, on the
//! embedded default (SQLite through `persistkit::open`) and on memory.

use std::time::Duration;

use persistkit::{Applied, Batch, ErrorKind, Expect, Find, Handle, Index, NewEvent, RetryPolicy};
use serde_json::json;

async fn sqlite() -> (tempfile::TempDir, Handle) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/flows.db", dir.path().display());
    let h = persistkit::open(&url).await.unwrap();
    (dir, h)
}

async fn declare(h: &Handle) {
    for ix in [
        Index::new("jobs", "by_status", ["/status", "/created"]),
        Index::new("feedback", "one_per_insight", ["/user", "/insight"]).unique(),
        Index::new("drafts", "by_user", ["/user"]),
        Index::new("api_keys", "by_owner", ["/owner"]),
    ] {
        h.create_index(&ix).await.unwrap();
        assert!(
            !h.create_index(&ix).await.unwrap(),
            "idempotent at start-up"
        );
    }
}

async fn jobs_by_status(h: &Handle) {
    for i in 0..250 {
        let status = ["queued", "running", "done"][i % 3];
        h.put(
            "jobs",
            &format!("job-{i:03}"),
            &json!({"status": status, "created": 1_000 - i}),
            Expect::Absent,
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut q = Find::new().eq("/status", "queued").limit(30);
    loop {
        let page = h.find("jobs", &q).await.unwrap();
        seen.extend(
            page.items
                .iter()
                .map(|r| r.data["created"].as_i64().unwrap()),
        );
        match page.next_cursor {
            Some(c) => q = Find::new().eq("/status", "queued").limit(30).after(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 84, "every queued job, once");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "oldest first");
    let recent = h
        .find(
            "jobs",
            &Find::new()
                .eq("/status", "done")
                .between("/created", 900, 950),
        )
        .await
        .unwrap();
    assert!(recent
        .items
        .iter()
        .all(|r| r.data["status"] == "done"
            && (900..950).contains(&r.data["created"].as_i64().unwrap())));
    let want = (0..250)
        .filter(|i| i % 3 == 2 && (900..950).contains(&(1_000 - i)))
        .count();
    assert_eq!(recent.items.len(), want);
}

async fn unique_feedback_with_stats(h: &Handle) {
    let give = |id: &'static str, user: &'static str| async move {
        let stats = h.get("stats", "insight-7").await?;
        let (count, expect) = match &stats {
            Some(r) => (
                r.data["count"].as_i64().unwrap(),
                Expect::Version(r.version),
            ),
            None => (0, Expect::Absent),
        };
        h.apply(
            &Batch::new()
                .put(
                    "feedback",
                    id,
                    json!({"user": user, "insight": 7}),
                    Expect::Absent,
                )
                .put("stats", "insight-7", json!({"count": count + 1}), expect)
                .append(vec![NewEvent::new(
                    "feedback.created",
                    h.now(),
                    json!({"id": id}),
                )]),
        )
        .await
    };
    let done = give("f-1", "ann").await.unwrap();
    assert!(matches!(&done[1], Applied::Put(r) if r.data["count"] == 1));
    give("f-2", "bob").await.unwrap();
    let e = give("f-3", "ann").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(e.index(), Some(0));
    assert_eq!(e.unique_conflict(), Some(("one_per_insight", "f-1")));
    assert_eq!(
        h.get("stats", "insight-7").await.unwrap().unwrap().data["count"],
        2,
        "the refused feedback did not count"
    );
    assert_eq!(h.read_log(0, 10).await.unwrap().len(), 2);
}

async fn drafts_and_keys(h: &Handle) {
    for (id, user) in [("d1", "ann"), ("d2", "bob"), ("d3", "ann")] {
        h.put("drafts", id, &json!({"user": user}), Expect::Absent)
            .await
            .unwrap();
    }
    for (id, owner) in [("k1", "team-3"), ("k2", "team-4"), ("k3", "team-3")] {
        h.put("api_keys", id, &json!({"owner": owner}), Expect::Absent)
            .await
            .unwrap();
    }
    let ids = |p: persistkit::Page<persistkit::Record>| {
        p.items.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(h
            .find("drafts", &Find::new().eq("/user", "ann"))
            .await
            .unwrap()),
        ["d1", "d3"]
    );
    assert_eq!(
        ids(h
            .find("api_keys", &Find::new().eq("/owner", "team-3"))
            .await
            .unwrap()),
        ["k1", "k3"]
    );
    let e = h
        .find("api_keys", &Find::new().eq("/created_by", "x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("/created_by"), "{e}");
}

async fn helpers(h: &Handle) {
    h.put_with_ttl(
        "decisions",
        "ann:read:doc-4",
        &json!({"allow": true}),
        Expect::Any,
        Duration::from_secs(300),
    )
    .await
    .unwrap();
    assert!(h
        .get("decisions", "ann:read:doc-4")
        .await
        .unwrap()
        .is_some());
    h.put(
        "jobs",
        "42",
        &json!({"status": "queued", "created": 1}),
        Expect::Any,
    )
    .await
    .unwrap();
    let r = h
        .update("jobs", "42", |cur| {
            let mut j = cur.cloned().unwrap_or(json!({}));
            j["status"] = json!("done");
            Ok(j)
        })
        .await
        .unwrap();
    assert_eq!(r.data["status"], "done");
    let r = h.incr("stats", "insight-7", "/views", 1).await.unwrap();
    assert_eq!(r.data["views"], 1);
    let h = h.clone().with_read_retry(RetryPolicy::default());
    let doc = json!({"status": "queued", "created": 2});
    h.retrying(|| h.put("jobs", "43", &doc, Expect::Any))
        .await
        .unwrap();
}

async fn all_flows(h: &Handle) {
    declare(h).await;
    jobs_by_status(h).await;
    unique_feedback_with_stats(h).await;
    drafts_and_keys(h).await;
    helpers(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_flows_run_on_the_embedded_default() {
    let (_dir, h) = sqlite().await;
    all_flows(&h).await;
}

#[tokio::test]
async fn the_source_flows_run_on_memory() {
    let h = persistkit::open("memory://").await.unwrap();
    all_flows(&h).await;
}
