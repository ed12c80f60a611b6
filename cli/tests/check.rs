use assert_cmd::Command;
use serde_json::Value;

fn persistkit() -> Command {
    Command::cargo_bin("persistkit").expect("binary built")
}

#[test]
fn check_memory_prints_a_json_report_and_exits_0() {
    let out = persistkit()
        .args(["check", "memory://", "--format", "json", "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let report = &doc["reports"][0];
    let cases = report["cases"].as_array().unwrap();
    assert!(cases.len() >= 60, "at least 60 cases, got {}", cases.len());
    for c in cases {
        for key in ["name", "domain", "status", "duration_ms"] {
            assert!(c.get(key).is_some(), "case lacks {key}: {c}");
        }
    }
    let domains: std::collections::BTreeSet<&str> = cases
        .iter()
        .map(|c| c["domain"].as_str().unwrap())
        .collect();
    assert_eq!(
        domains.into_iter().collect::<Vec<_>>(),
        [
            "admin",
            "common",
            "events",
            "idempotency",
            "metrics",
            "records"
        ]
    );
    assert_eq!(doc["totals"]["failed"], 0);
    let passed = doc["totals"]["passed"].as_u64().unwrap();
    let skipped =
        doc["totals"]["skipped"].as_u64().unwrap() + doc["totals"]["unsupported"].as_u64().unwrap();
    assert_eq!(
        passed + skipped,
        cases.len() as u64,
        "every case is passed, skipped or unsupported"
    );
    // Undeclared capabilities are reported as unsupported, never passed.
    let backup = cases
        .iter()
        .find(|c| c["name"] == "native_backup_matches_capability")
        .unwrap();
    assert_eq!(backup["status"], "unsupported");
}

#[test]
fn check_rejects_an_unknown_url_with_a_clear_error() {
    let out = persistkit().args(["check", "nosuch://x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nosuch://x") && err.contains("memory://"),
        "{err}"
    );
}

#[test]
fn junit_and_markdown_render() {
    let out = persistkit()
        .args(["check", "--format", "junit", "-q", "--filter", "records::"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let xml = String::from_utf8(out.stdout).unwrap();
    assert!(
        xml.contains("<testsuites") && xml.contains("records::no_lost_updates"),
        "{xml}"
    );
    let out = persistkit()
        .args([
            "check", "--format", "markdown", "-q", "--filter", "events::",
        ])
        .output()
        .unwrap();
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.contains("| events | payload_rules | passed |"), "{md}");
}

/// A requested target that ran no case is not a pass: exit 3 with the
/// reason and how to fix it, unless --allow-skip.
#[test]
fn a_skipped_target_fails_the_check_unless_allowed() {
    let docker_here = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    let run = |extra: &[&str]| {
        let mut c = persistkit();
        c.args([
            "check",
            "--docker",
            "--quiet",
            "--filter",
            "records::get_missing",
        ])
        .args(extra)
        .env("PERSISTKIT_POSTGRES_IMAGE", "persistkit/no-such-image:0")
        .env_remove("PERSISTKIT_REQUIRE_DOCKER")
        .env_remove("PERSISTKIT_TEST_POSTGRES_URL");
        c.output().unwrap()
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    if docker_here {
        assert!(
            err.contains("image missing") && err.contains("ci/images/postgres/build"),
            "{err}"
        );
    } else {
        assert!(err.contains("no Docker"), "{err}");
    }
    assert_eq!(run(&["--allow-skip"]).status.code(), Some(0));
}

#[test]
fn check_through_an_in_process_cache_names_it_and_passes() {
    let out = persistkit()
        .args([
            "check",
            "memory://",
            "--cache",
            "memory",
            "--format",
            "json",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let target = doc["reports"][0]["target"].as_str().unwrap_or_default();
    assert!(target.contains("cached in process"), "{doc}");
    assert_eq!(doc["totals"]["failed"], 0);
}

#[test]
fn check_refuses_a_cache_it_cannot_use() {
    let out = persistkit()
        .args(["check", "memory://", "--cache", "memcached://x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected `memory`"), "{err}");
    // Nothing listens on port 1: the check says so before any case runs,
    // rather than pass every case on the store alone.
    let out = persistkit()
        .args(["check", "memory://", "--cache", "redis://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not answer"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "no report: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The whole suite on SQLite through the shared cache, the second process
/// included (it gets `--cache` too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_through_a_redis_cache_runs_every_case() {
    let Some((url, _)) =
        persistkit_conformance::harnesses::redis_server_or_skip("check --cache redis").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("check.db").display());
    let out = tokio::task::spawn_blocking(move || {
        persistkit()
            .args(["check", &db, "--cache", &url, "--format", "json", "--quiet"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert!(
        doc["reports"][0]["target"]
            .as_str()
            .unwrap_or_default()
            .contains("cached on redis"),
        "{doc}"
    );
    assert_eq!(doc["totals"]["failed"], 0);
    // The cross-process cases ran in a second process through the cache.
    let cases = doc["reports"][0]["cases"].as_array().unwrap();
    let across = cases
        .iter()
        .find(|c| c["name"] == "shared_across_processes_holds")
        .expect("the cross-process case");
    assert_eq!(across["status"], "passed", "{across}");
}

#[test]
fn exact_runs_the_one_case_a_rerun_line_names() {
    let count = |exact: bool| {
        let mut args = vec![
            "check",
            "memory://",
            "--format",
            "json",
            "-q",
            "--filter",
            "records::no_lost_updates",
        ];
        if exact {
            args.push("--exact");
        }
        let out = persistkit().args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["reports"][0]["cases"].as_array().unwrap().len()
    };
    assert_eq!(
        count(false),
        2,
        "no_lost_updates and no_lost_updates_across_handles"
    );
    assert_eq!(count(true), 1);
    let out = persistkit()
        .args(["check", "memory://", "--exact"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--exact needs --filter");
}
