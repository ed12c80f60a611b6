//! Bugs only a second OS process shows: process-local claims, writes
//! acknowledged before commit, a process-local cache claiming sharing.

use super::*;

/// Not tests: the second processes of the cross-process self-tests, one
/// per planted bug.
#[test]
#[ignore = "second process of the self-tests; they start it themselves"]
fn buggy_child_check_then_insert() {
    persistkit_conformance::child::serve(BuggySqlite(Bug::CheckThenInsert));
}

#[test]
#[ignore = "second process of the self-tests; they start it themselves"]
fn buggy_child_ack_before_commit() {
    persistkit_conformance::child::serve(BuggySqlite(Bug::AckBeforeCommit));
}

/// A cross-process case on the buggy SQLite store, with `entry` (which
/// plants the same bug) as the second process.
async fn outcome_across_processes(
    bug: Bug,
    entry: &str,
    domain: &str,
    name: &str,
) -> (Status, String) {
    let case = all_cases()
        .into_iter()
        .find(|c| c.domain == domain && c.name == name)
        .expect("case exists");
    let child = persistkit_conformance::child::ChildCommand::test_entry(entry);
    let r = persistkit_conformance::run_case_with_child(
        Arc::new(BuggySqlite(bug)),
        &case,
        std::time::Duration::from_secs(120),
        child,
    )
    .await;
    (r.status, r.message.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_local_claims_fail_the_cross_process_case() {
    let (status, message) = outcome_across_processes(
        Bug::CheckThenInsert,
        "processes::buggy_child_check_then_insert",
        "admin",
        "shared_across_processes_holds",
    )
    .await;
    assert_eq!(status, Status::Failed, "{message}");
    assert!(
        message.contains("exactly one process acquires"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_before_commit_fails_the_crash_case() {
    let (status, message) = outcome_across_processes(
        Bug::AckBeforeCommit,
        "processes::buggy_child_ack_before_commit",
        "admin",
        "acknowledged_writes_survive_a_killed_writer",
    )
    .await;
    assert_eq!(status, Status::Failed, "{message}");
    assert!(message.contains("acknowledged metric batch"), "{message}");
}

/// The same cross-process cases pass on the unbroken SQLite store with the
/// same machinery, so the failures above come from the bugs.
#[test]
#[ignore = "second process of the self-tests; they start it themselves"]
fn sqlite_child() {
    persistkit_conformance::child::serve(persistkit_conformance::harnesses::SqliteHarness::new());
}

#[rstest]
#[case("shared_across_processes_holds")]
#[case("acknowledged_writes_survive_a_killed_writer")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_process_cases_pass_without_the_bug(#[case] name: &str) {
    let case = all_cases()
        .into_iter()
        .find(|c| c.domain == "admin" && c.name == name)
        .unwrap();
    let r = persistkit_conformance::run_case_with_child(
        Arc::new(persistkit_conformance::harnesses::SqliteHarness::new()),
        &case,
        std::time::Duration::from_secs(120),
        persistkit_conformance::child::ChildCommand::test_entry("processes::sqlite_child"),
    )
    .await;
    assert_eq!(r.status, Status::Passed, "{:?}", r.message);
}

/// A cache that is one process's, over a store that says it is shared
/// across processes, and keeps saying so: what a cache layer that forgot
/// to drop the capability would be.
#[derive(Debug)]
struct ClaimsShared {
    inner: Arc<dyn Store>,
}

impl Layer for ClaimsShared {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}

impl ForwardMetrics for ClaimsShared {}
impl ForwardEvents for ClaimsShared {}
impl ForwardIdempotency for ClaimsShared {}
impl ForwardRecords for ClaimsShared {}
impl ForwardBatches for ClaimsShared {}

impl ForwardAdmin for ClaimsShared {
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        c.shared_across_processes = true;
        c
    }
}

/// SQLite behind an in-process cache that claims to be shared; the second
/// handle shares the cache, as a second handle in one process would.
fn process_local_cache(
) -> persistkit_conformance::harnesses::Layered<persistkit_conformance::harnesses::SqliteHarness> {
    persistkit_conformance::harnesses::Layered::new(
        persistkit_conformance::harnesses::SqliteHarness::new(),
        "process-local cache claiming sharing",
        |s| {
            Arc::new(ClaimsShared {
                inner: persistkit_cache::Cached::wrap(s, persistkit_cache::CacheConfig::default()),
            })
        },
    )
    .one_layer_per_process()
}

#[test]
#[ignore = "second process of the self-tests; they start it themselves"]
fn buggy_child_process_local_cache() {
    persistkit_conformance::child::serve(process_local_cache());
}

/// Only the cross-process case sees it: every single-process case passes
/// through the cache, and the other process's write never reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_local_cache_claiming_sharing_fails_the_cross_process_read_case() {
    let run = |name: &'static str| async move {
        let case = all_cases()
            .into_iter()
            .find(|c| c.domain == "records" && c.name == name)
            .expect("case exists");
        persistkit_conformance::run_case_with_child(
            Arc::new(process_local_cache()),
            &case,
            std::time::Duration::from_secs(120),
            persistkit_conformance::child::ChildCommand::test_entry(
                "processes::buggy_child_process_local_cache",
            ),
        )
        .await
    };
    let r = run("reads_follow_writes_across_processes").await;
    let message = r.message.unwrap_or_default();
    assert_eq!(r.status, Status::Failed, "{message}");
    assert!(message.contains("another process"), "{message}");
    assert!(message.contains("REC-10"), "{message}");
    for name in ["reads_follow_every_write", "reads_never_go_back"] {
        let r = run(name).await;
        assert_eq!(r.status, Status::Passed, "{name}: {:?}", r.message);
    }
}
