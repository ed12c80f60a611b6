//! Reads see every acknowledged write (REC-10), through a cache or any
//! other layer: on another handle, after a race, in another process.
//! Listed under `records`.

use persistkit_core::{Expect, Handle};

use super::*;
use crate::outcome::CaseResult;
use crate::race;
use crate::{ensure_eq, Ctx};

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
