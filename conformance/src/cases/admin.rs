//! Administration: migrations, health, retention, export/import, capabilities.

use std::sync::Arc;

use persistkit_core::{
    ArchiveNamespace, ErrorKind, Expect, ExportScope, HealthStatus, ManualClock, MetricPoint,
    NewEvent, RetentionPolicy,
};

use super::*;
use crate::outcome::{expect_err, CaseResult};
use crate::{ensure, ensure_eq, Ctx};

/// Fill a namespace with some of everything, including a purge so event
/// positions no longer start at 1.
async fn populate(ctx: &Ctx, h: &Handle) -> CaseResult {
    h.write_metrics(&[
        gauge(t(0), "api", "rps", 1.5),
        MetricPoint::counter(t(0), "api", "rps", 2.0),
        gauge(t(-100_000), "old", "x", 0.1),
        gauge(t(1), "é", "😀", -3.25e10),
        gauge(t(1), "api", "rps", 1.5),
    ])
    .await?;
    h.append(&[
        NewEvent::new("old", t(-100_000), json!({"gone": true})),
        NewEvent::new("signup", t(2), json!({"user": "ann", "tags": ["a", "b"]})),
        NewEvent::new("signup", t(2), json!({"user": "bob"})),
        NewEvent::new("pay", t(1), json!([1, 2.5, {"x": null}])),
    ])
    .await?;
    h.purge(&RetentionPolicy {
        events_older_than: Some(secs(3_600)),
        ..Default::default()
    })
    .await?;
    let c = h.claim("pay", "done", secs(3_600)).await?;
    h.complete(
        "pay",
        "done",
        c.token().expect("fresh key"),
        &json!({"status": 200}),
    )
    .await?;
    h.claim("pay", "pending", secs(60)).await?;
    h.claim_with_fingerprint("pay", "fingerprinted", "sha256:9f86d0", secs(60))
        .await?;
    h.put("jobs", "1", &json!({"n": 1}), Expect::Absent).await?;
    ctx.advance(secs(3));
    h.put("jobs", "1", &json!({"n": 2}), Expect::Version(1))
        .await?;
    h.put("jobs", "1", &json!({"n": 3}), Expect::Version(2))
        .await?;
    h.put("drafts", "Z", &json!({"text": "héllo"}), Expect::Absent)
        .await?;
    Ok(())
}

/// The archive of `h`'s namespace, or (through the admin scope) of all.
async fn export_bytes(h: &Handle, scope: ExportScope) -> Result<Vec<u8>, CaseError> {
    let mut buf = Vec::new();
    match scope {
        ExportScope::Namespace => h.export(scope, &mut buf, None).await?,
        ExportScope::All => h.admin().export(&mut buf, None).await?,
    };
    Ok(buf)
}

/// Migrating twice is a no-op.
pub async fn migrate_twice_is_a_no_op(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.put("c", "id", &json!({}), Expect::Absent).await?;
    let a = h.migrate().await?;
    let b = h.migrate().await?;
    ensure_eq!(a, b, "migrations: migrating twice is a no-op");
    ensure_eq!(
        a.current,
        a.expected,
        "migrations: an opened store is migrated to the expected version"
    );
    ensure_eq!(
        h.counts().await?.records,
        1,
        "migrations: migrating keeps the data"
    );
    Ok(())
}

/// Two migrations at once are safe.
pub async fn concurrent_migrations_are_safe(ctx: &Ctx) -> CaseResult {
    let a = ctx.handle();
    let b = ctx.second().await?;
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let (ra, rb) = (ra?, rb?);
    ensure_eq!(ra, rb, "migrations: two migrations at once agree");
    ensure_eq!(
        ra.current,
        ra.expected,
        "migrations: the store is at the expected version"
    );
    Ok(())
}

/// The health report is complete and serializes with every field.
pub async fn health_report_is_complete(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    populate(ctx, &h).await?;
    let r = h.health().await;
    ensure_eq!(
        r.status,
        HealthStatus::Healthy,
        "health: a working store is healthy (error: {:?})",
        r.error
    );
    ensure_eq!(
        r.backend,
        h.store().backend_name(),
        "health: names the backend"
    );
    let schema = r
        .schema
        .ok_or_else(|| CaseError::failed("health: reports schema versions"))?;
    ensure_eq!(
        schema.current,
        schema.expected,
        "health: schema current equals expected after open"
    );
    let counts = r
        .counts
        .ok_or_else(|| CaseError::failed("health: reports row counts"))?;
    ensure_eq!(
        (
            counts.metrics,
            counts.events,
            counts.idempotency_keys,
            counts.records
        ),
        (5, 3, 3, 2),
        "health: row counts per domain"
    );
    ensure!(
        r.latency_us.is_some(),
        "health: reports the round-trip latency"
    );
    let v = serde_json::to_value(&r).expect("serializes");
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    // What layers report appears when, and only when, there is something.
    ensure_eq!(
        keys.contains(&"layers"),
        !r.layers.is_empty(),
        "health: `layers` is present exactly when a layer reports something"
    );
    keys.retain(|k| *k != "layers");
    keys.sort();
    ensure_eq!(
        keys,
        vec![
            "backend",
            "counts",
            "error",
            "latency_us",
            "namespace",
            "pool",
            "schema",
            "status",
            "storage_bytes"
        ],
        "health: stable JSON with every field present"
    );
    ensure_eq!(
        v["status"],
        json!("healthy"),
        "health: status serializes lower-case"
    );
    Ok(())
}

/// Health counts only its namespace.
pub async fn health_counts_only_its_namespace(ctx: &Ctx) -> CaseResult {
    populate(ctx, &ctx.ns("tenant-a")).await?;
    let r = ctx.ns("tenant-b").health().await;
    ensure_eq!(
        r.counts.map(|c| c.total()),
        Some(0),
        "namespaces: health of B counts nothing of A"
    );
    ensure_eq!(r.namespace, "tenant-b", "health: names its namespace");
    Ok(())
}

/// The admin scope counts every namespace holding anything, whatever it
/// holds, each as its own handle counts it, and their sum; health through
/// the admin scope carries the same figures.
pub async fn admin_counts_cover_every_namespace(ctx: &Ctx) -> CaseResult {
    let rule = "admin counts: every namespace holding anything, each as its handle counts it";
    let h = ctx.handle();
    populate(ctx, &ctx.ns("tenant-a")).await?;
    ctx.ns("only-metrics")
        .write_metrics(&[gauge(t(0), "c", "n", 1.0), gauge(t(0), "c", "n", 1.0)])
        .await?;
    ctx.ns("only-events")
        .append(&[NewEvent::new("k", t(0), json!({}))])
        .await?;
    ctx.ns("only-keys").claim("s", "k", secs(60)).await?;
    ctx.ns("only-records")
        .put("c", "1", &json!({}), Expect::Absent)
        .await?;
    let emptied = ctx.ns("emptied");
    emptied.put("c", "1", &json!({}), Expect::Absent).await?;
    emptied.clear().await?;
    let all = h.admin().counts().await?;
    let names: Vec<&str> = all.namespaces.keys().map(String::as_str).collect();
    ensure_eq!(
        names,
        vec![
            "only-events",
            "only-keys",
            "only-metrics",
            "only-records",
            "tenant-a"
        ],
        "{rule}: the namespaces, sorted byte-wise (an emptied one is not named)"
    );
    let mut sum = persistkit_core::Counts::default();
    for (ns, counts) in &all.namespaces {
        ensure_eq!(
            *counts,
            ctx.ns(ns).counts().await?,
            "{rule}: the counts of {ns:?}"
        );
        sum.add(counts);
    }
    ensure_eq!(all.total, sum, "{rule}: the total is the sum");
    ensure_eq!(
        all.total.total(),
        5 + 3 + 3 + 2 + 2 + 1 + 1 + 1,
        "{rule}: every row of every namespace"
    );
    let report = h.admin().health().await;
    ensure_eq!(
        (
            report.status,
            report.namespace.as_str(),
            report.counts,
            report.namespaces.as_ref()
        ),
        (
            HealthStatus::Healthy,
            "",
            Some(all.total),
            Some(&all.namespaces)
        ),
        "{rule}: admin health reports the same figures"
    );
    Ok(())
}

/// Purge deletes metrics and events strictly before their cut-offs, and
/// records only when asked.
pub async fn purge_deletes_before_cutoffs(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.write_metrics(&[
        gauge(t(0), "c", "n", 1.0),
        gauge(t(100), "c", "n", 2.0),
        gauge(t(200), "c", "n", 3.0),
    ])
    .await?;
    h.append(&[
        NewEvent::new("k", t(0), json!({})),
        NewEvent::new("k", t(150), json!({})),
        NewEvent::new("k", t(200), json!({})),
    ])
    .await?;
    h.put("c", "old", &json!({}), Expect::Absent).await?;
    ctx.set_now(t(300));
    let r = h
        .purge(&RetentionPolicy {
            metrics_older_than: Some(secs(200)),
            events_older_than: Some(secs(100)),
            records_not_updated_for: None,
        })
        .await?;
    ensure_eq!(
        (r.metrics, r.events, r.records),
        (1, 2, 0),
        "retention: purge deletes strictly older than each cut-off and returns counts per domain"
    );
    let left: Vec<f64> = all_points(&h)
        .await?
        .iter()
        .map(|m| m.point.value)
        .collect();
    ensure_eq!(
        left,
        vec![2.0, 3.0],
        "retention: a point exactly at the cut-off stays"
    );
    ensure_eq!(
        whole_log(&h)
            .await?
            .iter()
            .map(|e| e.occurred_at)
            .collect::<Vec<_>>(),
        vec![t(200)],
        "retention: an event exactly at the cut-off stays"
    );
    ensure_eq!(
        h.counts().await?.records,
        1,
        "retention: records are purged only when asked"
    );
    let again = h
        .purge(&RetentionPolicy {
            metrics_older_than: Some(secs(200)),
            events_older_than: Some(secs(100)),
            records_not_updated_for: None,
        })
        .await?;
    ensure_eq!(
        (again.metrics, again.events),
        (0, 0),
        "retention: purging twice deletes nothing more"
    );
    Ok(())
}

/// `clear` empties its namespace at once (metrics, events, keys, records,
/// and the log starts again at 1), says how much it deleted, and leaves
/// every other namespace as it was.
pub async fn clear_empties_one_namespace(ctx: &Ctx) -> CaseResult {
    let rule = "clear: empties exactly its own namespace";
    let (a, b) = (ctx.ns("tenant-a"), ctx.ns("tenant-b"));
    for h in [&a, &b] {
        h.write_metrics(&[
            gauge(t(0), "api", "rps", 1.0),
            gauge(t(1), "api", "rps", 2.0),
        ])
        .await?;
        h.append(&[
            NewEvent::new("paid", t(0), json!({"n": 1})),
            NewEvent::new("paid", t(1), json!({"n": 2})),
        ])
        .await?;
        h.claim("s", "k", secs(60)).await?;
        h.put("jobs", "1", &json!({"v": 1}), Expect::Absent).await?;
    }
    let before_b = b.counts().await?;
    let cleared = a.clear().await?;
    ensure_eq!(
        (
            cleared.metrics,
            cleared.events,
            cleared.idempotency_keys,
            cleared.records
        ),
        (2, 2, 1, 1),
        "{rule}: it reports how many of each it deleted"
    );
    let after = a.counts().await?;
    ensure_eq!(
        (
            after.metrics,
            after.events,
            after.idempotency_keys,
            after.records
        ),
        (0, 0, 0, 0),
        "{rule}: nothing is left in it"
    );
    ensure_eq!(a.get("jobs", "1").await?, None, "{rule}: records are gone");
    ensure!(
        a.claim("s", "k", secs(60)).await?.is_acquired(),
        "{rule}: its idempotency keys are gone (the key can be claimed again)"
    );
    let again = a
        .append(&[NewEvent::new("paid", t(0), json!({"n": 1}))])
        .await?;
    ensure_eq!(
        (again[0].position, again[0].duplicate),
        (1, false),
        "{rule}: the log starts again at position 1 and dedupe forgot the deleted events"
    );
    let after_b = b.counts().await?;
    ensure_eq!(
        (
            after_b.metrics,
            after_b.events,
            after_b.idempotency_keys,
            after_b.records
        ),
        (
            before_b.metrics,
            before_b.events,
            before_b.idempotency_keys,
            before_b.records
        ),
        "{rule}: other namespaces are untouched"
    );
    let next_b = b
        .append(&[NewEvent::new("paid", t(2), json!({"n": 3}))])
        .await?;
    ensure_eq!(
        next_b[0].position,
        3,
        "{rule}: another namespace's log goes on where it was"
    );
    Ok(())
}

/// Records not updated since the cut-off go when asked.
pub async fn purge_records_when_asked(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.put("c", "stale", &json!({}), Expect::Absent).await?;
    h.put("c", "touched", &json!({}), Expect::Absent).await?;
    ctx.advance(secs(100));
    h.put("c", "touched", &json!({"again": 1}), Expect::Version(1))
        .await?;
    ctx.advance(secs(10));
    let r = h
        .purge(&RetentionPolicy {
            records_not_updated_for: Some(secs(50)),
            ..Default::default()
        })
        .await?;
    ensure_eq!(
        r.records,
        1,
        "retention: records not updated since the cut-off are purged when asked"
    );
    ensure!(
        h.get("c", "touched").await?.is_some() && h.get("c", "stale").await?.is_none(),
        "retention: the purge keys on updated_at"
    );
    Ok(())
}

/// A component or collection with a period of its own keeps its data that
/// long, longer or shorter than its domain's period; the others follow the
/// domain's period.
pub async fn purge_by_component_and_collection(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let mut points = Vec::new();
    for (i, component) in ["api", "web", "db"].iter().enumerate() {
        for age in [10i64, 100, 1_000] {
            points.push(gauge(t(2_000 - age), component, "n", i as f64));
        }
    }
    h.write_metrics(&points).await?;
    for collection in ["jobs", "drafts", "cache"] {
        h.put(collection, "old", &json!({}), Expect::Absent).await?;
    }
    ctx.set_now(t(1_900));
    for collection in ["jobs", "drafts", "cache"] {
        h.put(collection, "new", &json!({}), Expect::Absent).await?;
    }
    ctx.set_now(t(2_000));
    let policy = RetentionPolicy {
        metrics_older_than: Some(secs(50)),
        records_not_updated_for: Some(secs(500)),
        ..Default::default()
    };
    let overrides = persistkit_core::RetentionOverrides {
        metrics_by_component: [
            ("api".to_string(), secs(5_000)),
            ("db".to_string(), secs(500)),
        ]
        .into(),
        records_by_collection: [
            ("jobs".to_string(), secs(5_000)),
            ("cache".to_string(), secs(50)),
        ]
        .into(),
    };
    let r = h.purge_with(&policy, &overrides).await?;
    let mut left: Vec<(String, i64)> = all_points(&h)
        .await?
        .iter()
        .map(|m| {
            (
                m.point.component.clone(),
                (t(2_000).as_micros() - m.point.at.as_micros()) / 1_000_000,
            )
        })
        .collect();
    left.sort();
    ensure_eq!(
        left,
        vec![
            ("api".to_string(), 10),
            ("api".to_string(), 100),
            ("api".to_string(), 1_000),
            ("db".to_string(), 10),
            ("db".to_string(), 100),
            ("web".to_string(), 10),
        ],
        "retention: api keeps 5 000 s, db 500 s, the rest the metrics' 50 s"
    );
    let mut records = Vec::new();
    for collection in ["cache", "drafts", "jobs"] {
        for r in h.list_records(collection, None, 10).await?.items {
            records.push(format!("{collection}/{}", r.id));
        }
    }
    ensure_eq!(
        records,
        vec!["drafts/new", "jobs/new", "jobs/old"],
        "retention: jobs keep 5 000 s, cache 50 s, the rest the records' 500 s"
    );
    ensure_eq!(
        (r.metrics, r.records),
        (3, 3),
        "retention: the report counts what each period purged"
    );
    let mut bad = persistkit_core::RetentionOverrides::default();
    bad.records_by_collection
        .insert("bad\nname".into(), secs(1));
    expect_err(
        h.purge_with(&policy, &bad).await,
        ErrorKind::InvalidInput,
        "retention: a period for a collection with a bad name",
    )?;
    Ok(())
}

/// Export, import elsewhere, export again: byte-identical.
pub async fn export_import_export_is_identical(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    populate(ctx, &h).await?;
    populate(ctx, &ctx.ns("tenant-b")).await?;
    let first = export_bytes(&h, ExportScope::All).await?;
    let other = ctx.other_store().await?;
    let s = other.admin().import(&mut first.as_slice(), None).await?;
    ensure_eq!(
        s.namespaces,
        2,
        "export: import loads every namespace of the archive"
    );
    let second = export_bytes(&other, ExportScope::All).await?;
    ensure!(first == second, "export: export -> import -> export must give byte-identical archives\n--- first\n{}\n--- second\n{}", String::from_utf8_lossy(&first), String::from_utf8_lossy(&second));
    ensure_eq!(
        other.counts().await?,
        h.counts().await?,
        "export: import restores every row"
    );
    Ok(())
}

/// Export is deterministic, versioned, line-delimited JSON.
pub async fn export_is_deterministic(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    populate(ctx, &h).await?;
    let a = export_bytes(&h, ExportScope::Namespace).await?;
    let b = export_bytes(&h, ExportScope::Namespace).await?;
    ensure!(
        a == b,
        "export: two exports of unchanged data are identical"
    );
    let text = String::from_utf8(a).map_err(|_| CaseError::failed("export: archive is UTF-8"))?;
    let lines: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| CaseError::failed(format!("export: every line is JSON: {e}")))
        })
        .collect::<Result<_, _>>()?;
    ensure_eq!(
        lines[0]["version"],
        json!(persistkit_core::ARCHIVE_VERSION),
        "export: the first line names the archive version"
    );
    ensure_eq!(
        lines.last().map(|l| l["type"].clone()),
        Some(json!("end")),
        "export: the last line marks the end"
    );
    ensure_eq!(
        lines.len(),
        2 + 1 + 5 + 3 + 3 + 2,
        "export: header, namespace, every item, end"
    );
    Ok(())
}

/// Exporting one namespace leaves the others out.
pub async fn export_of_one_namespace(ctx: &Ctx) -> CaseResult {
    populate(ctx, &ctx.ns("tenant-a")).await?;
    ctx.ns("tenant-b")
        .put("c", "id", &json!({}), Expect::Absent)
        .await?;
    let a = export_bytes(&ctx.ns("tenant-b"), ExportScope::Namespace).await?;
    let text = String::from_utf8_lossy(&a);
    ensure!(
        !text.contains("tenant-a"),
        "namespaces: exporting B holds nothing of A"
    );
    ensure_eq!(
        text.lines().count(),
        4,
        "export: header, namespace, one record, end"
    );
    Ok(())
}

/// Import refuses a namespace that holds data, and writes nothing.
pub async fn import_refuses_non_empty_namespace(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    populate(ctx, &h).await?;
    let archive = export_bytes(&h, ExportScope::Namespace).await?;
    let before = h.counts().await?;
    expect_err(
        h.import(&mut archive.as_slice(), None).await,
        ErrorKind::Conflict,
        "export: import into a namespace that holds data",
    )?;
    ensure_eq!(
        h.counts().await?,
        before,
        "export: a refused import writes nothing"
    );
    Ok(())
}

/// A malformed archive is `InvalidInput` and writes nothing.
pub async fn import_rejects_malformed_archive(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    populate(ctx, &h).await?;
    let good = String::from_utf8(export_bytes(&h, ExportScope::Namespace).await?).expect("utf8");
    let lines: Vec<&str> = good.lines().collect();
    let other = ctx.other_store().await?;
    let truncated = lines[..lines.len() - 1].join("\n");
    let mut bad_item = lines.clone();
    bad_item[4] = r#"{"type":"record","collection":"c","id":"x","data":5,"version":1,"created_at":"2024-01-01T00:00:00.000000Z","updated_at":"2024-01-01T00:00:00.000000Z"}"#;
    let bad_item = bad_item.join("\n");
    let mut wrong_version = lines.clone();
    wrong_version[0] = r#"{"format":"persistkit-archive","type":"archive","version":99}"#;
    let wrong_version = wrong_version.join("\n");
    for (archive, why) in [
        (truncated.as_str(), "a truncated archive"),
        (bad_item.as_str(), "an archive with a bad item"),
        (wrong_version.as_str(), "an archive of an unknown version"),
        ("not json", "garbage"),
    ] {
        expect_err(
            other.import(&mut archive.as_bytes(), None).await,
            ErrorKind::InvalidInput,
            &format!("export: importing {why}"),
        )?;
        ensure_eq!(
            other.store().namespaces().await?,
            Vec::<String>::new(),
            "export: importing {why} writes nothing"
        );
    }
    Ok(())
}

/// An imported store keeps working: new ids follow, dedupe and versions hold.
pub async fn imported_store_keeps_working(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    populate(ctx, &h).await?;
    let archive = export_bytes(&h, ExportScope::Namespace).await?;
    let other = ctx.other_store().await?;
    other.import(&mut archive.as_slice(), None).await?;
    let before = whole_log(&other).await?;
    let max = before.iter().map(|e| e.position).max().unwrap_or(0);
    let dup = other
        .append(&[NewEvent::new("signup", t(2), json!({"user": "bob"}))])
        .await?[0];
    ensure!(dup.duplicate, "export: imported events still deduplicate");
    let fresh = other
        .append(&[NewEvent::new("new", t(9), json!({}))])
        .await?[0];
    ensure!(
        fresh.position > max && !before.iter().any(|e| e.id == fresh.id),
        "export: new events after an import get fresh ids and later positions"
    );
    let e = expect_err(
        other.put("jobs", "1", &json!({}), Expect::Version(1)).await,
        ErrorKind::Conflict,
        "export: imported records keep their versions",
    )?;
    ensure_eq!(
        e.current_version(),
        Some(3),
        "export: imported records keep their versions"
    );
    ensure!(
        !other.claim("pay", "pending", secs(60)).await?.is_acquired(),
        "export: imported live keys stay claimed"
    );
    expect_err(
        other
            .claim_with_fingerprint("pay", "fingerprinted", "sha256:other", secs(60))
            .await,
        ErrorKind::Conflict,
        "export: imported keys keep their fingerprints (IDM-7)",
    )?;
    ensure!(
        !other
            .claim_with_fingerprint("pay", "fingerprinted", "sha256:9f86d0", secs(60))
            .await?
            .is_acquired(),
        "export: an imported key still answers its own request as live"
    );
    Ok(())
}

/// Native backup works where declared and is `Unsupported` elsewhere.
pub async fn native_backup_matches_capability(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    populate(ctx, &h).await?;
    let dir = tempfile::tempdir().map_err(|e| CaseError::failed(format!("tempdir: {e}")))?;
    let path = dir.path().join("backup.snapshot");
    if !ctx.capabilities().native_backup {
        expect_err(
            h.backup(&path).await,
            ErrorKind::Unsupported,
            "capabilities: backup without native_backup declared",
        )?;
        return Err(CaseError::Unsupported(
            "native_backup is not declared (and backup correctly says Unsupported)".into(),
        ));
    }
    h.backup(&path).await?;
    expect_err(
        h.backup(&path).await,
        ErrorKind::InvalidInput,
        "backup: refuses to overwrite an existing file",
    )?;
    let Some(opened) = ctx.fixture().hooks.open_backup(&path).await else {
        return Err(CaseError::Skipped(
            "the harness cannot open a backup".into(),
        ));
    };
    let restored = ctx.wrap(opened?);
    ensure!(
        export_bytes(&restored, ExportScope::All).await?
            == export_bytes(&h, ExportScope::All).await?,
        "backup: a native snapshot holds the same data (same export)"
    );
    Ok(())
}

/// Durable stores keep acknowledged writes across close and reopen.
pub async fn durable_across_reopen(ctx: &Ctx) -> CaseResult {
    if !ctx.capabilities().durable {
        return Err(CaseError::Unsupported("durable is not declared".into()));
    }
    let h = ctx.handle();
    populate(ctx, &h).await?;
    let before = export_bytes(&h, ExportScope::All).await?;
    let Some(reopened) = ctx.fixture().hooks.reopen().await else {
        return Err(CaseError::failed(
            "capabilities: the backend declares durable, but its harness has no reopen hook \
             (FixtureHooks::reopen), so durability cannot be checked",
        ));
    };
    let again = ctx.wrap(reopened?);
    ensure!(
        export_bytes(&again, ExportScope::All).await? == before,
        "durability: after close and reopen every acknowledged write is there"
    );
    Ok(())
}

/// A database whose schema is newer than the code is refused with `Schema`.
pub async fn newer_schema_is_refused(ctx: &Ctx) -> CaseResult {
    let expected = ctx.handle().migrate().await?.expected;
    let Some(result) = ctx.fixture().hooks.open_with_newer_schema().await else {
        return Err(CaseError::Skipped(
            "the backend keeps no schema version on disk".into(),
        ));
    };
    let e = expect_err(
        result,
        ErrorKind::Schema,
        "migrations: opening a database newer than the code",
    )?;
    let msg = e.to_string();
    // Whole numbers only: "1" inside "10" or a date does not count.
    let numbers: Vec<u64> = msg
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    for v in [u64::from(expected), u64::from(expected) + 1] {
        ensure!(
            numbers.contains(&v),
            "migrations: the Schema error names both versions (the code's {expected} and the database's {}) as numbers; got {msg:?}",
            expected + 1
        );
    }
    Ok(())
}

/// An archive lands whole or not at all, across namespaces: when one target
/// namespace holds data, none of the others is written. Checked through the
/// admin scope and against the backend's own import, which must check every
/// namespace inside its transaction.
pub async fn import_is_all_or_nothing_across_namespaces(ctx: &Ctx) -> CaseResult {
    let busy = ctx.ns("b");
    busy.put("c", "there", &json!({}), Expect::Absent).await?;
    let items_a = vec![
        archived_event(1, 1, "k", t(0)),
        archived_record("c", "x", 3),
    ];
    let archive = archive_text(&[
        ("a", items_a.clone()),
        ("b", vec![archived_record("c", "y", 1)]),
    ]);
    let e = expect_err(
        ctx.handle()
            .admin()
            .import(&mut archive.as_bytes(), None)
            .await,
        ErrorKind::Conflict,
        "import atomicity: an archive whose namespace b holds data",
    )?;
    ensure!(
        e.message().contains("\"b\""),
        "import atomicity: the conflict names the namespace that holds data; got {e}"
    );
    ensure_empty(&ctx.ns("a"), "import atomicity: through the admin scope").await?;
    // The backend's own import, past the handle's early check.
    let raw = ctx
        .store()
        .import(
            &[
                ArchiveNamespace {
                    name: "a".into(),
                    items: items_a,
                },
                ArchiveNamespace {
                    name: "b".into(),
                    items: vec![archived_record("c", "y", 1)],
                },
            ],
            &|_| {},
        )
        .await;
    expect_err(
        raw,
        ErrorKind::Conflict,
        "import atomicity: the backend's import into a namespace that holds data",
    )?;
    ensure_empty(
        &ctx.ns("a"),
        "import atomicity: a backend import refused for namespace b must write nothing of namespace a",
    )
    .await?;
    ensure_eq!(
        ctx.ns("b").counts().await?.records,
        1,
        "import atomicity: the busy namespace is untouched"
    );
    Ok(())
}

/// Ids, positions and versions are 1..=i64::MAX through import: outside is
/// `InvalidInput` with nothing written; the ends of the range round-trip
/// exactly.
pub async fn import_checks_sequence_bounds(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    for (item, what) in [
        (
            archived_event(LAST + 1, 1, "k", t(0)),
            "an event id of 2^63",
        ),
        (
            archived_event(1, LAST + 1, "k", t(0)),
            "an event position of 2^63",
        ),
        (
            archived_event(u64::MAX, u64::MAX, "k", t(0)),
            "an event id and position of 2^64-1",
        ),
        (archived_event(0, 1, "k", t(0)), "an event id of 0"),
        (
            archived_record("c", "x", LAST + 1),
            "a record version of 2^63",
        ),
        (archived_record("c", "x", 0), "a record version of 0"),
    ] {
        let archive = archive_text(&[("default", vec![item])]);
        expect_err(
            h.import(&mut archive.as_bytes(), None).await,
            ErrorKind::InvalidInput,
            &format!("bounds: importing {what}"),
        )?;
        ensure_empty(&h, &format!("bounds: importing {what}")).await?;
    }
    let archive = archive_text(&[(
        "default",
        vec![
            archived_event(1, 1, "k", t(0)),
            archived_event(LAST, LAST, "k", t(1)),
            archived_record("c", "first", 1),
            archived_record("c", "last", LAST),
        ],
    )]);
    h.import(&mut archive.as_bytes(), None).await?;
    let back = export_bytes(&h, ExportScope::Namespace).await?;
    ensure!(
        back == archive.as_bytes(),
        "bounds: ids, positions and versions 1 and i64::MAX round-trip exactly through import and export\n--- imported\n{archive}--- exported\n{}",
        String::from_utf8_lossy(&back)
    );
    Ok(())
}

/// A handle touches only its own namespace: it refuses to export all
/// namespaces or to import another one, and its errors say nothing of
/// another namespace's contents.
pub async fn handle_export_and_import_stay_in_namespace(ctx: &Ctx) -> CaseResult {
    let a = ctx.ns("tenant-a");
    let points: Vec<MetricPoint> = (0..37).map(|i| gauge(t(i), "api", "rps", 1.0)).collect();
    a.write_metrics(&points).await?;
    let b = ctx.ns("tenant-b");
    expect_err(
        b.export(ExportScope::All, &mut Vec::new(), None).await,
        ErrorKind::InvalidInput,
        "tenant scope: a namespaced handle exporting every namespace",
    )?;
    let own =
        String::from_utf8_lossy(&export_bytes(&b, ExportScope::Namespace).await?).into_owned();
    ensure!(
        !own.contains("tenant-a") && own.lines().count() == 3,
        "tenant scope: B's export holds nothing of A\n{own}"
    );
    let to_c = archive_text(&[("tenant-c", vec![archived_record("c", "x", 1)])]);
    expect_err(
        b.import(&mut to_c.as_bytes(), None).await,
        ErrorKind::InvalidInput,
        "tenant scope: B's handle importing an archive of namespace C",
    )?;
    ensure_empty(&ctx.ns("tenant-c"), "tenant scope: B's handle wrote into C").await?;
    let a_archive = export_bytes(&a, ExportScope::Namespace).await?;
    let e = expect_err(
        a.import(&mut a_archive.as_slice(), None).await,
        ErrorKind::Conflict,
        "import: into a namespace that holds data",
    )?;
    ensure!(
        !e.to_string().contains("37"),
        "tenant scope: an import conflict reveals no row counts; got {e}"
    );
    let mine = archive_text(&[("tenant-b", vec![archived_record("c", "x", 2)])]);
    b.import(&mut mine.as_bytes(), None).await?;
    ensure_eq!(
        b.counts().await?.records,
        1,
        "tenant scope: B's import lands in B"
    );
    for other in ["default", "tenant-c"] {
        ensure_empty(
            &ctx.ns(other),
            &format!("tenant scope: B's import wrote into {other}"),
        )
        .await?;
    }
    ensure_eq!(
        a.counts().await?.metrics,
        37,
        "tenant scope: B's import leaves A alone"
    );
    Ok(())
}

/// A clock outside years 1..=9999 is input like any other: writes that take
/// the time are `InvalidInput` and write nothing.
pub async fn out_of_range_clock_writes_nothing(ctx: &Ctx) -> CaseResult {
    let clock = ManualClock::new(Timestamp::MAX);
    let h = Handle::new(ctx.store().clone()).with_clock(Arc::new(clock.clone()));
    // At the last instant a record can still be written; a claim cannot end.
    let r = h.put("c", "edge", &json!({}), Expect::Absent).await?;
    ensure_eq!(
        r.updated_at,
        Timestamp::MAX,
        "timestamps: the last instant is valid"
    );
    expect_err(
        h.claim("s", "k", secs(1)).await,
        ErrorKind::InvalidInput,
        "clock bounds: a claim that would expire after year 9999",
    )?;
    clock.advance(secs(1));
    let before = export_bytes(&h, ExportScope::Namespace).await?;
    let rule = "clock bounds: a clock past 9999-12-31";
    expect_err(
        h.put("c", "x", &json!({}), Expect::Absent).await,
        ErrorKind::InvalidInput,
        &format!("{rule}: put"),
    )?;
    expect_err(
        h.put("c", "edge", &json!({"n": 1}), Expect::Any).await,
        ErrorKind::InvalidInput,
        &format!("{rule}: put"),
    )?;
    expect_err(
        h.claim("s", "k", secs(60)).await,
        ErrorKind::InvalidInput,
        &format!("{rule}: claim"),
    )?;
    expect_err(
        h.complete("s", "k", "token", &json!({})).await,
        ErrorKind::InvalidInput,
        &format!("{rule}: complete"),
    )?;
    expect_err(
        h.release("s", "k", "token").await,
        ErrorKind::InvalidInput,
        &format!("{rule}: release"),
    )?;
    expect_err(
        h.purge(&RetentionPolicy {
            records_not_updated_for: Some(secs(1)),
            ..Default::default()
        })
        .await,
        ErrorKind::InvalidInput,
        &format!("{rule}: purge"),
    )?;
    ensure!(
        export_bytes(&h, ExportScope::Namespace).await? == before,
        "{rule}: refused calls write nothing"
    );
    Ok(())
}

/// After `close()`, calls fail with an error that is not retryable, so a
/// retry loop stops.
pub async fn closed_store_is_not_retryable(ctx: &Ctx) -> CaseResult {
    let h = ctx.other_store().await?;
    h.put("c", "x", &json!({}), Expect::Absent).await?;
    h.store().close().await;
    let rule = "closed store: a call after close() must fail and not be retryable";
    let errors = [
        h.get("c", "x").await.err(),
        h.put("c", "y", &json!({}), Expect::Any).await.err(),
        h.append(&[NewEvent::new("k", t(0), json!({}))]).await.err(),
        h.claim("s", "k", secs(60)).await.err(),
        h.write_metrics(&[gauge(t(0), "a", "b", 1.0)]).await.err(),
        h.counts().await.err(),
    ];
    for (i, e) in errors.into_iter().enumerate() {
        let Some(e) = e else {
            return Err(CaseError::failed(format!("{rule}: call {i} succeeded")));
        };
        ensure!(
            !e.is_retryable(),
            "{rule}: call {i} failed as {e}, which says retry"
        );
    }
    Ok(())
}

/// Archives of every hostile shape (numbers past i64, bad times, bad names,
/// bad JSON, broken structure) are `InvalidInput`, and the store is
/// byte-for-byte what it was.
pub async fn import_refuses_hostile_archives(ctx: &Ctx) -> CaseResult {
    let keep = ctx.ns("keep");
    populate(ctx, &keep).await?;
    let admin = keep.admin();
    let before = export_bytes(&keep, ExportScope::All).await?;
    const HEAD: &str = r#"{"format":"persistkit-archive","type":"archive","version":1}"#;
    let ns = |n: &str| format!(r#"{{"name":"{n}","type":"namespace"}}"#);
    let end = |n: usize, i: usize| format!(r#"{{"items":{i},"namespaces":{n},"type":"end"}}"#);
    let at = "2024-01-01T00:00:00.000000Z";
    let event = |id: &str, pos: &str| {
        format!(
            r#"{{"data":{{}},"id":{id},"kind":"k","occurred_at":"{at}","position":{pos},"type":"event"}}"#
        )
    };
    let record = |c: &str, id: &str, version: &str, data: &str, time: &str| {
        format!(
            r#"{{"collection":"{c}","created_at":"{time}","data":{data},"id":"{id}","type":"record","updated_at":"{time}","version":{version}}}"#
        )
    };
    let rec = |version: &str| record("c", "x", version, "{}", at);
    let metric = |at: &str, c: &str, value: &str, kind: &str| {
        format!(
            r#"{{"at":"{at}","component":"{c}","kind":"{kind}","name":"n","type":"metric","value":{value}}}"#
        )
    };
    let key = |token: &str| {
        format!(
            r#"{{"claimed_at":"{at}","expires_at":"{at}","key":"k","response":null,"scope":"s","token":"{token}","type":"idempotency_key"}}"#
        )
    };
    let one = |item: String| vec![HEAD.to_string(), ns("a"), item, end(1, 1)];
    let long = "é".repeat(128);
    let huge = format!(r#"{{"x":"{}"}}"#, "y".repeat(1024 * 1024));
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "a second namespace holding version 2^63",
            vec![
                HEAD.into(),
                ns("a"),
                rec("1"),
                ns("b"),
                rec("9223372036854775808"),
                end(2, 2),
            ],
        ),
        (
            "an event id and position of 2^63",
            one(event("9223372036854775808", "9223372036854775808")),
        ),
        ("an event position of 0", one(event("1", "0"))),
        ("a negative event id", one(event("-1", "1"))),
        ("a record version of 2^64", one(rec("18446744073709551616"))),
        ("a record version of -1", one(rec("-1"))),
        ("a fractional record version", one(rec("1.5"))),
        ("a record version as a string", one(rec("\"1\""))),
        (
            "a time in year 10000",
            one(record("c", "x", "1", "{}", "10000-01-01T00:00:00Z")),
        ),
        (
            "a time in year 0",
            one(record("c", "x", "1", "{}", "0000-12-31T23:59:59Z")),
        ),
        (
            "a time that is not RFC 3339",
            one(record("c", "x", "1", "{}", "yesterday")),
        ),
        (
            "a metric value of 1e400",
            one(metric(at, "c", "1e400", "gauge")),
        ),
        (
            "a metric value of NaN",
            one(metric(at, "c", "\"NaN\"", "gauge")),
        ),
        (
            "a metric value of null",
            one(metric(at, "c", "null", "gauge")),
        ),
        (
            "an unknown metric kind",
            one(metric(at, "c", "1", "histogram")),
        ),
        (
            "a 256-byte multi-byte name",
            one(metric(at, &long, "1", "gauge")),
        ),
        (
            "a name with a control character",
            one(metric(at, "a\\u0007b", "1", "gauge")),
        ),
        ("an empty name", one(metric(at, "", "1", "gauge"))),
        (
            "a namespace of 256 bytes",
            vec![HEAD.into(), ns(&long), end(1, 0)],
        ),
        (
            "record data holding U+0000",
            one(record("c", "x", "1", r#"{"s":"a\u0000b"}"#, at)),
        ),
        (
            "record data that is a number",
            one(record("c", "x", "1", "5", at)),
        ),
        (
            "record data over 1 MiB",
            one(record("c", "x", "1", &huge, at)),
        ),
        ("an empty token", one(key(""))),
        (
            "an index line in a version 1 archive",
            one(
                r#"{"collection":"c","fields":["/a"],"name":"i","type":"index","unique":false}"#
                    .into(),
            ),
        ),
        (
            "an index on a field that is not a JSON pointer",
            vec![
                HEAD.replace(":1}", ":2}"),
                ns("a"),
                r#"{"collection":"c","fields":["a"],"name":"i","type":"index","unique":false}"#
                    .into(),
                end(1, 1),
            ],
        ),
        (
            "two records with one key in a unique index",
            vec![
                HEAD.replace(":1}", ":2}"),
                ns("a"),
                r#"{"collection":"c","fields":["/a"],"name":"i","type":"index","unique":true}"#
                    .into(),
                record("c", "x", "1", r#"{"a":1}"#, at),
                record("c", "y", "1", r#"{"a":1.0}"#, at),
                end(1, 3),
            ],
        ),
        (
            "an unknown item type",
            one(r#"{"type":"histogram"}"#.into()),
        ),
        ("a line that is not an object", one("[]".into())),
        ("a line that is not JSON", one("{".into())),
        (
            "an item before any namespace",
            vec![HEAD.into(), rec("1"), end(0, 1)],
        ),
        (
            "a namespace twice",
            vec![HEAD.into(), ns("a"), ns("a"), end(2, 0)],
        ),
        ("no header", vec![ns("a"), rec("1"), end(1, 1)]),
        (
            "a header of another version",
            vec![HEAD.replace(":1}", ":3}"), ns("a"), end(1, 0)],
        ),
        (
            "an end line with the wrong count",
            vec![HEAD.into(), ns("a"), rec("1"), end(1, 2)],
        ),
        (
            "data after the end line",
            vec![HEAD.into(), ns("a"), end(1, 0), rec("1")],
        ),
        ("no end line", vec![HEAD.into(), ns("a"), rec("1")]),
        (
            "an event id twice",
            vec![
                HEAD.into(),
                ns("a"),
                event("1", "1"),
                event("1", "2"),
                end(1, 2),
            ],
        ),
        (
            "positions that go down",
            vec![
                HEAD.into(),
                ns("a"),
                event("1", "2"),
                event("2", "1"),
                end(1, 2),
            ],
        ),
        (
            "a record twice",
            vec![HEAD.into(), ns("a"), rec("1"), rec("2"), end(1, 2)],
        ),
    ];
    for (what, lines) in cases {
        let text = lines.join("\n") + "\n";
        expect_err(
            admin.import(&mut text.as_bytes(), None).await,
            ErrorKind::InvalidInput,
            &format!("archive checks: importing an archive with {what}"),
        )?;
        let after = export_bytes(&keep, ExportScope::All).await?;
        ensure!(
            after == before,
            "archive checks: importing an archive with {what} must leave the store byte-for-byte as it was"
        );
    }
    Ok(())
}

/// Two OS processes on the same data at once: exactly one of them acquires
/// each contended key, and each contended event is stored once.
pub async fn shared_across_processes_holds(ctx: &Ctx) -> CaseResult {
    if !ctx.capabilities().shared_across_processes {
        return Err(CaseError::Unsupported(
            "shared_across_processes is not declared".into(),
        ));
    }
    use crate::child::{contended_event, CONTENDED};
    let mut child = ctx.start_child("contend").await?;
    let h = ctx.handle();
    child.go().await?;
    let mut mine = Vec::new();
    for i in 0..CONTENDED {
        let c = h.claim("procs", &format!("key-{i}"), secs(3_600)).await?;
        let a = h.append(&[contended_event(i)]).await?[0];
        mine.push((c.is_acquired(), !a.duplicate));
    }
    let theirs = child.until_done(std::time::Duration::from_secs(60)).await?;
    let rule = "capabilities: shared_across_processes";
    let mut claims = [None; CONTENDED];
    let mut appends = [None; CONTENDED];
    for line in &theirs {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["claim", i, won] => claims[i.parse::<usize>().unwrap_or(0)] = Some(*won == "true"),
            ["append", i, new] => appends[i.parse::<usize>().unwrap_or(0)] = Some(*new == "true"),
            _ => {
                return Err(CaseError::failed(format!(
                    "{rule}: the second process said {line:?}"
                )))
            }
        }
    }
    let mut split = (0, 0);
    for (i, (won, new)) in mine.iter().enumerate() {
        let (Some(their_win), Some(their_new)) = (claims[i], appends[i]) else {
            return Err(CaseError::failed(format!(
                "{rule}: the second process skipped item {i}"
            )));
        };
        ensure!(
            *won != their_win,
            "{rule}: exactly one process acquires key-{i} (this one: {won}, the other: {their_win})"
        );
        ensure!(
            *new != their_new,
            "{rule}: exactly one process stores event {i} (this one new: {new}, the other new: {their_new})"
        );
        if *won {
            split.0 += 1;
        } else {
            split.1 += 1;
        }
    }
    let log = whole_log(&h).await?;
    ensure_eq!(
        log.len(),
        CONTENDED,
        "{rule}: each contended event is stored once"
    );
    tracing::debug!(this = split.0, other = split.1, "claims won per process");
    Ok(())
}

/// A writer killed in the middle of its writes loses nothing it had been
/// told was written, and leaves no batch half-written.
pub async fn acknowledged_writes_survive_a_killed_writer(ctx: &Ctx) -> CaseResult {
    if !ctx.capabilities().durable {
        return Err(CaseError::Unsupported("durable is not declared".into()));
    }
    if !ctx.capabilities().shared_across_processes {
        return Err(CaseError::Unsupported(
            "the writer runs in a second process, and shared_across_processes is not declared"
                .into(),
        ));
    }
    use crate::child::{CRASH_EVENTS, CRASH_POINTS};
    let mut child = ctx.start_child("write").await?;
    child.go().await?;
    let mut acked: Vec<u64> = Vec::new();
    while acked.len() < 8 {
        match child.next_line(std::time::Duration::from_secs(60)).await? {
            Some(line) => match line.strip_prefix("ack ") {
                Some(b) => acked.push(b.parse().unwrap_or(u64::MAX)),
                None if line.starts_with("error") => {
                    return Err(CaseError::failed(format!("the writer failed: {line}")))
                }
                None => {}
            },
            None => return Err(CaseError::failed("the writer exited early")),
        }
    }
    // Writes are in flight: the writer goes straight on to its next batch.
    child.kill().await?;
    if let Some(crashed) = ctx.fixture().hooks.crash().await {
        crashed?;
    }
    let Some(reopened) = ctx.fixture().hooks.reopen().await else {
        return Err(CaseError::failed(
            "capabilities: the backend declares durable, but its harness has no reopen hook",
        ));
    };
    let h = ctx.wrap(reopened?);
    let rule = "durability: after a writer is killed mid-write";
    let mut points = std::collections::BTreeMap::<String, usize>::new();
    for m in all_points(&h).await? {
        *points.entry(m.point.name).or_default() += 1;
    }
    let mut events = std::collections::BTreeMap::<u64, usize>::new();
    for e in whole_log(&h).await? {
        *events
            .entry(e.data["b"].as_u64().unwrap_or(u64::MAX))
            .or_default() += 1;
    }
    for (name, n) in &points {
        ensure!(
            n % CRASH_POINTS == 0 && *n > 0,
            "{rule}: metric batch {name} holds {n} of {CRASH_POINTS} points"
        );
    }
    for (b, n) in &events {
        ensure!(
            *n == CRASH_EVENTS,
            "{rule}: event batch {b} holds {n} of {CRASH_EVENTS} events"
        );
    }
    for b in &acked {
        let name = format!("b{b}");
        ensure_eq!(
            points.get(&name).copied(),
            Some(CRASH_POINTS),
            "{rule}: acknowledged metric batch {b} is all there"
        );
        ensure_eq!(
            events.get(b).copied(),
            Some(CRASH_EVENTS),
            "{rule}: acknowledged event batch {b} is all there"
        );
        ensure!(
            h.get("crash", &name).await?.is_some(),
            "{rule}: acknowledged record {name} is there"
        );
    }
    Ok(())
}

/// Two stores on one database, in different schemas, see nothing of each
/// other, however the connection reaches the server (a pooler that drops
/// connection settings included).
pub async fn stores_in_other_schemas_are_separate(ctx: &Ctx) -> CaseResult {
    let Some(sibling) = ctx.fixture().hooks.sibling().await else {
        return Err(CaseError::Skipped(
            "the backend keeps no second store on one database".into(),
        ));
    };
    let other = ctx.wrap(sibling?);
    let mine = ctx.handle();
    populate(ctx, &mine).await?;
    let rule = "schemas: a store in another schema of the same database";
    ensure_empty(&other, &format!("{rule} sees nothing of this one")).await?;
    ensure_eq!(
        other.admin().namespaces().await?,
        Vec::<String>::new(),
        "{rule} lists none of this store's namespaces"
    );
    let before = mine.get("jobs", "1").await?;
    other
        .put("jobs", "1", &json!({"theirs": true}), Expect::Absent)
        .await
        .map_err(|e| CaseError::failed(format!("{rule}: its own record 1 must be new: {e}")))?;
    ensure_eq!(
        mine.get("jobs", "1").await?,
        before,
        "{rule} does not change this one's records"
    );
    Ok(())
}
