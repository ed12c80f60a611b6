//! Unavailability is prompt and recoverable: when the database stops
//! answering, calls fail with `Unavailable` within the handle's timeout
//! (never hang), health says unhealthy, and the same handle recovers by
//! itself once the database is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use persistkit_core::{ErrorKind, Expect, Handle, HealthStatus};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(2);
/// Generous slack over LIMIT: this checks "never hangs", not speed.
const HANG: Duration = Duration::from_secs(15);

async fn expect_unavailable(h: &Handle, what: &str) {
    let started = Instant::now();
    let r = h.get("c", "id").await;
    let took = started.elapsed();
    let e = r.expect_err(&format!(
        "{what}: a call must fail while the database is down"
    ));
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{what}: {e}");
    assert!(e.is_retryable());
    assert!(took < HANG, "{what}: the call hung for {took:?}");
    let started = Instant::now();
    let mut sink = Vec::new();
    let e = h
        .export(persistkit_core::ExportScope::Namespace, &mut sink, None)
        .await
        .expect_err(&format!(
            "{what}: export must fail while the database is down"
        ));
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{what}: export: {e}");
    assert!(
        started.elapsed() < HANG,
        "{what}: export hung for {:?}",
        started.elapsed()
    );
    let report = h.health().await;
    assert_eq!(
        report.status,
        HealthStatus::Unhealthy,
        "{what}: health while down: {report:?}"
    );
    assert!(report.error.is_some());
}

async fn recovers(h: &Handle) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match h.get("c", "id").await {
            Ok(r) => {
                assert_eq!(r.map(|r| r.data), Some(json!({"v": 1})));
                assert_eq!(h.health().await.status, HealthStatus::Healthy);
                return;
            }
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("the handle did not recover: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pause_is_unavailable_then_recovers() {
    use testcontainers::runners::AsyncRunner;
    use testcontainers::ImageExt;
    let image =
        std::env::var("PERSISTKIT_POSTGRES_IMAGE").unwrap_or_else(|_| "postgres:16-alpine".into());
    let (name, tag) = image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
    let container = match testcontainers_modules::postgres::Postgres::default()
        .with_name(name)
        .with_tag(tag)
        .with_labels(persistkit_conformance::harnesses::test_labels())
        .start()
        .await
    {
        Ok(c) => c,
        Err(e) if std::env::var("PERSISTKIT_REQUIRE_DOCKER").as_deref() != Ok("1") => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED postgres_pause_is_unavailable_then_recovers: no Docker: {e}"
            );
            return;
        }
        Err(e) => panic!("no Docker (PERSISTKIT_REQUIRE_DOCKER=1): {e}"),
    };
    let port = container.get_host_port_ipv4(5432).await.unwrap();
    let url = format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres?acquire_timeout=2s&statement_timeout=2s");
    let store = persistkit_postgres::PgStore::open(&url).await.unwrap();
    let h = Handle::new(Arc::new(store)).with_timeout(Some(LIMIT));
    h.put("c", "id", &json!({"v": 1}), Expect::Absent)
        .await
        .unwrap();

    let docker = |verb: &str| {
        let ok = std::process::Command::new("docker")
            .args([verb, container.id()])
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "docker {verb}");
    };
    docker("pause");
    expect_unavailable(&h, "paused server").await;
    docker("unpause");
    recovers(&h).await;

    // An import must make progress within the handle's timeout: a server
    // paused after the first batch fails it promptly, and nothing is kept.
    let bulk = h.namespace("bulk").unwrap();
    let archive = metrics_archive("bulk", 60_000);
    let id = container.id().to_string();
    let paused = AtomicBool::new(false);
    let pause_once = |_: u64| {
        if !paused.swap(true, Ordering::SeqCst) {
            let ok = std::process::Command::new("docker")
                .args(["pause", &id])
                .status()
                .map(|s| s.success());
            assert_eq!(ok.ok(), Some(true), "docker pause");
        }
    };
    let started = Instant::now();
    let e = bulk
        .import(&mut archive.as_bytes(), Some(&pause_once))
        .await
        .expect_err("an import against a paused server must fail");
    let took = started.elapsed();
    assert!(
        paused.load(Ordering::SeqCst),
        "the import reported progress"
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(took < HANG, "the import hung for {took:?}");
    docker("unpause");
    recovers(&h).await;
    assert_eq!(
        bulk.counts().await.unwrap().total(),
        0,
        "an abandoned import leaves nothing behind"
    );
    container.rm().await.unwrap();
}

/// An archive of `n` metric points in namespace `ns`.
fn metrics_archive(ns: &str, n: usize) -> String {
    let mut text =
        String::from("{\"format\":\"persistkit-archive\",\"type\":\"archive\",\"version\":1}\n");
    text.push_str(&format!("{{\"name\":\"{ns}\",\"type\":\"namespace\"}}\n"));
    for i in 0..n {
        text.push_str(&format!(
            "{{\"at\":\"2024-01-01T00:00:{:02}.{:06}Z\",\"component\":\"c\",\"kind\":\"gauge\",\"name\":\"n\",\"type\":\"metric\",\"value\":{i}}}\n",
            i / 1_000_000 % 60,
            i % 1_000_000
        ));
    }
    text.push_str(&format!(
        "{{\"items\":{n},\"namespaces\":1,\"type\":\"end\"}}\n"
    ));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lock_is_unavailable_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let url = format!("sqlite://{}?busy_timeout=200ms", path.display());
    let store = persistkit_sqlite::SqliteStore::open(&url).await.unwrap();
    let h = Handle::new(Arc::new(store)).with_timeout(Some(LIMIT));
    h.put("c", "id", &json!({"v": 1}), Expect::Absent)
        .await
        .unwrap();

    // Another connection takes SQLite's write lock and holds it.
    let blocker = persistkit_sqlite::rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let e = h
        .put("c", "id", &json!({"v": 2}), Expect::Any)
        .await
        .expect_err("the file is locked");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(started.elapsed() < HANG);
    blocker.execute_batch("SELECT 1; ROLLBACK").unwrap();
    recovers(&h).await;
}
