//! What a failure tells a backend author: the calls made before it, a diff
//! of expected against actual, the command that reruns it, and the
//! failures of one bug grouped under their likely root cause.

use super::*;
use persistkit_conformance::{report, run_suite, RunOptions};
use runner::panic_text;

/// One planted `list_records` bug fails cases in two domains; the report
/// puts them in one group under `list_records`, first, and every failure
/// shows the calls made before it and the line that reruns it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bug_shows_as_one_group_with_calls_and_a_rerun_line() {
    let opts = RunOptions {
        rerun: Some("persistkit check buggy:// --filter {case} --exact".into()),
        ..RunOptions::default()
    };
    let r = run_suite(Arc::new(BuggyHarness(Bug::IdLocaleOrder)), &opts).await;
    let failed: Vec<_> = r
        .cases
        .iter()
        .filter(|c| c.status == Status::Failed)
        .collect();
    assert!(
        failed.len() >= 2,
        "the bug fails several cases: {failed:#?}"
    );
    let domains: std::collections::BTreeSet<_> = failed.iter().map(|c| &c.domain).collect();
    assert!(domains.len() >= 2, "{domains:?}");
    for c in &failed {
        assert_eq!(c.last_call.as_deref(), Some("list_records"), "{}", c.id());
        assert!(
            c.calls.last().is_some_and(|l| l.contains("list_records")
                && l.contains("ListRecords {")
                && l.contains("-> ok:")),
            "the last call shows its input and its answer: {:?}",
            c.calls
        );
        assert!(c.calls.len() <= 12, "{}", c.calls.len());
        assert_eq!(
            c.rerun.as_deref(),
            Some(format!("persistkit check buggy:// --filter {} --exact", c.id()).as_str())
        );
    }
    let first = &r.failure_groups[0];
    assert_eq!((first.by, first.key.as_str()), ("call", "list_records"));
    assert_eq!(first.cases.len(), failed.len(), "{:?}", r.failure_groups);
    let table = report::to_table(std::slice::from_ref(&r));
    assert!(table.contains("failed cases in detail"), "{table}");
    assert!(table.contains("calls made (the last 12):"), "{table}");
    assert!(
        table.contains("rerun it alone: persistkit check buggy://"),
        "{table}"
    );
    assert!(
        table.contains("call list_records"),
        "the groups are in the table: {table}"
    );
    let json: serde_json::Value = serde_json::from_str(&report::to_json(&[r])).unwrap();
    assert_eq!(
        json["reports"][0]["failure_groups"][0]["key"],
        "list_records"
    );
}

/// Under `cargo test` a failure says the same, with the `cargo test` line
/// that reruns it, and its text is the case's alone: no panic location in
/// the runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_test_shows_calls_and_how_to_rerun_it() {
    let r = tokio::spawn(persistkit_conformance::run_suite_case(
        BuggyHarness(Bug::IdLocaleOrder),
        "broken::planted::records",
        "my-backend",
        "--test conformance",
        "records",
        "list_orders_ids_bytewise",
    ))
    .await;
    let text = panic_text(r.expect_err("the case fails"));
    assert!(text.contains("[COM-4]"), "{text}");
    assert!(text.contains("expected: [\"B\", \"Z\""), "{text}");
    assert!(text.contains("calls made"), "{text}");
    assert!(
        text.contains(
            "rerun it alone: cargo test -p my-backend --test conformance -- \
             planted::records::list_orders_ids_bytewise --exact"
        ),
        "{text}"
    );
    assert!(!text.contains("runner.rs"), "{text}");
}

/// An answer beneath the handle that breaks the contract fails the case,
/// even where the handle hides it: a listing one item too long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_beneath_the_handle_are_checked() {
    let (status, msg) = outcome(Bug::PageOneTooLong, "records", "list_orders_ids_bytewise").await;
    assert_eq!(status, Status::Failed, "{msg}");
    assert!(
        msg.starts_with("COM-11: list_records answered 3 items when asked for at most 2"),
        "{msg}"
    );
    assert_eq!(msg.matches("COM-11").count(), msg.lines().count(), "{msg}");
    let (status, msg) = outcome(Bug::PageOneTooLong, "records", "get_missing_is_none").await;
    assert_eq!(status, Status::Passed, "a case that lists nothing: {msg}");
}
