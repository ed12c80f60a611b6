//! The administration commands, end to end on SQLite files.

use assert_cmd::Command;
use persistkit::{Expect, MetricPoint, NewEvent, Timestamp};
use serde_json::{json, Value};

fn persistkit(dir: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("persistkit").expect("binary built");
    c.current_dir(dir)
        .env_remove("PERSISTKIT_DATABASE_URL")
        .env_remove("DATABASE_URL");
    c
}

async fn populate(url: &str) {
    let h = persistkit::open(url).await.unwrap();
    let old = Timestamp::from_secs(1_000_000_000).unwrap();
    let now = Timestamp::now();
    h.write_metrics(&[
        MetricPoint::gauge(old, "api", "rps", 1.0),
        MetricPoint::gauge(now, "api", "rps", 2.0),
    ])
    .await
    .unwrap();
    h.append(&[
        NewEvent::new("signup", old, json!({"u": 1})),
        NewEvent::new("signup", now, json!({"u": 2})),
    ])
    .await
    .unwrap();
    h.put("jobs", "1", &json!({"n": 1}), Expect::Absent)
        .await
        .unwrap();
    h.namespace("other")
        .unwrap()
        .put("jobs", "2", &json!({}), Expect::Absent)
        .await
        .unwrap();
    h.store().close().await;
}

#[tokio::test]
async fn clear_asks_for_yes_then_empties_one_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    populate(&url).await;
    let refused = persistkit(dir.path())
        .args(["clear", "--url", &url])
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(
        err.contains("--yes") && err.contains("nothing was deleted"),
        "{err}"
    );
    let h = persistkit::open(&url).await.unwrap();
    assert_eq!(
        h.counts().await.unwrap().records,
        1,
        "untouched without --yes"
    );
    h.store().close().await;
    let done = persistkit(dir.path())
        .args(["clear", "--yes", "--url", &url])
        .assert()
        .success();
    let n: Value = serde_json::from_slice(&done.get_output().stdout).unwrap();
    assert_eq!(
        n,
        json!({"metrics": 2, "events": 2, "idempotency_keys": 0, "records": 1})
    );
    let h = persistkit::open(&url).await.unwrap();
    let c = h.counts().await.unwrap();
    assert_eq!((c.metrics, c.events, c.records), (0, 0, 0));
    let other = h.namespace("other").unwrap();
    assert_eq!(
        other.counts().await.unwrap().records,
        1,
        "other namespaces stay"
    );
}

#[tokio::test]
async fn export_import_export_round_trips_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let a = format!("sqlite://{}", dir.path().join("a.db").display());
    populate(&a).await;
    let b = format!("sqlite://{}", dir.path().join("b.db").display());
    persistkit(dir.path())
        .args(["export", "one.jsonl", "--all", "--url", &a])
        .assert()
        .success();
    persistkit(dir.path())
        .args(["import", "one.jsonl", "--url", &b])
        .assert()
        .success();
    persistkit(dir.path())
        .args(["export", "two.jsonl", "--all", "--url", &b])
        .assert()
        .success();
    let one = std::fs::read(dir.path().join("one.jsonl")).unwrap();
    let two = std::fs::read(dir.path().join("two.jsonl")).unwrap();
    assert_eq!(String::from_utf8_lossy(&one), String::from_utf8_lossy(&two));
    assert_eq!(
        String::from_utf8_lossy(&one).lines().count(),
        2 + 2 + 2 + 2 + 1 + 1,
        "header, 2 namespaces, items, end"
    );
    // Importing again is refused and changes nothing.
    let out = persistkit(dir.path())
        .args(["import", "one.jsonl", "--url", &b])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("conflict"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn purge_reports_counts_and_touches_one_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    populate(&url).await;
    let out = persistkit(dir.path())
        .args([
            "purge",
            "--url",
            &url,
            "--metrics-older-than",
            "90d",
            "--events-older-than",
            "30d",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            r["metrics"].as_u64(),
            r["events"].as_u64(),
            r["records"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    let h = persistkit::open(&url).await.unwrap();
    assert_eq!(
        h.namespace("other")
            .unwrap()
            .counts()
            .await
            .unwrap()
            .records,
        1
    );
    let bad = persistkit(dir.path())
        .args([
            "purge",
            "--url",
            &url,
            "--metrics-older-than",
            "ninety days",
        ])
        .output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a bad duration is a usage error"
    );
    for bad in ["api", "api=soon"] {
        let out = persistkit(dir.path())
            .args(["purge", "--url", &url, "--component", bad])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("NAME=PERIOD") || err.contains("not a period"),
            "{err}"
        );
    }
    // The api component keeps its points 100 years; the old one stays.
    let out = persistkit(dir.path())
        .args([
            "purge",
            "--url",
            &url,
            "--metrics-older-than",
            "1d",
            "--component",
            "api=100y",
            "--collection",
            "jobs=0s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["metrics"].as_u64(), r["records"].as_u64()),
        (Some(0), Some(1)),
        "a period of its own for the component and the collection: {r}"
    );
}

#[tokio::test]
async fn health_is_json_and_unhealthy_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    populate(&url).await;
    let out = persistkit(dir.path())
        .args(["health", "--url", &url])
        .output()
        .unwrap();
    assert!(out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "healthy");
    assert_eq!(r["counts"]["records"], 1);
    let out = persistkit(dir.path())
        .args(["health", "--url", "sqlite:///no/such/dir/x.db?create=false"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "unhealthy");
    assert!(r["error"].as_str().unwrap().contains("unavailable"), "{r}");
}

#[tokio::test]
async fn health_all_counts_every_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("all.db").display());
    populate(&url).await;
    let out = persistkit(dir.path())
        .args(["health", "--url", &url, "--all"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["namespace"], "", "{r}");
    let namespaces = r["namespaces"].as_object().unwrap();
    assert_eq!(
        namespaces.keys().collect::<Vec<_>>(),
        ["default", "other"],
        "{r}"
    );
    for domain in ["metrics", "events", "idempotency_keys", "records"] {
        let sum: u64 = namespaces
            .values()
            .map(|c| c[domain].as_u64().unwrap())
            .sum();
        assert_eq!(r["counts"][domain].as_u64(), Some(sum), "{domain}: {r}");
    }
    assert_eq!(namespaces["default"]["records"], 1, "{r}");
}

#[tokio::test]
async fn health_probe_reports_latency_per_operation() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    populate(&url).await;
    let out = persistkit(dir.path())
        .args(["health", "--url", &url, "--probe", "7"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let latency = &r["layers"]["latency"];
    for op in ["counts", "list_components", "read_log", "list_records"] {
        let l = &latency[op];
        assert!(l["count"].as_u64().unwrap() >= 7, "{op}: {r}");
        let p = |k: &str| l[k].as_u64().unwrap();
        assert!(
            p("p50_us") <= p("p95_us") && p("p95_us") <= p("p99_us") && p("p99_us") <= p("max_us"),
            "{op}: {r}"
        );
    }
    // Without --probe there is no observer, so no latency section.
    let out = persistkit(dir.path())
        .args(["health", "--url", &url])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r.get("layers").is_none(), "{r}");
}

#[tokio::test]
async fn backup_writes_a_snapshot_that_opens_with_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    populate(&url).await;
    persistkit(dir.path())
        .args(["backup", "snap.db", "--url", &url])
        .assert()
        .success();
    let snap = persistkit::open(&format!(
        "sqlite://{}",
        dir.path().join("snap.db").display()
    ))
    .await
    .unwrap();
    assert_eq!(snap.counts().await.unwrap().metrics, 2);
    let again = persistkit(dir.path())
        .args(["backup", "snap.db", "--url", &url])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "never overwrites");
    let mem = persistkit(dir.path())
        .args(["backup", "m.db", "--url", "memory://"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&mem.stderr).contains("unsupported"));
}

#[test]
fn the_embedded_default_is_a_sqlite_file_under_data() {
    let dir = tempfile::tempdir().unwrap();
    persistkit(dir.path()).args(["migrate"]).assert().success();
    assert!(dir.path().join("data/persistkit.db").exists());
}

#[test]
fn health_never_creates_or_migrates_anything() {
    let dir = tempfile::tempdir().unwrap();
    // A missing file stays missing.
    let missing = dir.path().join("missing.db");
    let out = persistkit(dir.path())
        .args([
            "health",
            "--url",
            &format!("sqlite://{}", missing.display()),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "unhealthy");
    assert!(
        r["error"].as_str().unwrap().contains("does not exist"),
        "{r}"
    );
    assert!(!missing.exists(), "health created the file");
    // An empty SQLite file (never migrated) is degraded, and stays unmigrated.
    let empty = dir.path().join("empty.db");
    std::process::Command::new("sqlite3")
        .arg(&empty)
        .arg("CREATE TABLE unrelated (x INTEGER);")
        .status()
        .expect("sqlite3 (ci/setup installs it)");
    let before = std::fs::read(&empty).unwrap();
    let out = persistkit(dir.path())
        .args(["health", "--url", &format!("sqlite://{}", empty.display())])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "degraded", "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("migrations pending"),
        "{r}"
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read(&empty).unwrap(),
        before,
        "health changed the file"
    );
}

#[test]
fn opening_an_unmigrated_file_without_migrating_says_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    std::process::Command::new("sqlite3")
        .arg(&empty)
        .arg("CREATE TABLE unrelated (x INTEGER);")
        .status()
        .expect("sqlite3 (ci/setup installs it)");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt
        .block_on(persistkit::open(&format!(
            "sqlite://{}?migrate=false",
            empty.display()
        )))
        .expect_err("not migrated");
    assert_eq!(e.kind(), persistkit::ErrorKind::Schema, "{e}");
    assert!(e.to_string().contains("persistkit migrate"), "{e}");
}
