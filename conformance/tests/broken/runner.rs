//! What the runner promises: skips reported (or failed on request), and
//! no backend able to hang a run.

use super::*;

/// A harness that cannot run anything here.
struct Unreachable;

#[async_trait]
impl Harness for Unreachable {
    fn name(&self) -> String {
        "unreachable".into()
    }
    async fn fresh(&self) -> std::result::Result<Fixture, SetupError> {
        Err(SetupError::Skip("no server here".into()))
    }
}

/// What a test task that panicked said.
pub(crate) fn panic_text(e: tokio::task::JoinError) -> String {
    e.into_panic()
        .downcast::<String>()
        .map(|s| *s)
        .unwrap_or_default()
}

/// With PERSISTKIT_FAIL_ON_SKIP=1 a skipped case fails its `#[test]`;
/// without it, the test passes and says SKIPPED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_skip_turns_skips_into_failures() {
    let strict = tokio::spawn(persistkit_conformance::run_case_as_test_with(
        Unreachable,
        "records",
        "get_missing_is_none",
        true,
    ))
    .await;
    let text = panic_text(strict.expect_err("a skip must fail under PERSISTKIT_FAIL_ON_SKIP=1"));
    assert!(
        text.contains("skipped") && text.contains("no server here"),
        "{text}"
    );
    tokio::spawn(persistkit_conformance::run_case_as_test_with(
        Unreachable,
        "records",
        "get_missing_is_none",
        false,
    ))
    .await
    .expect("without the switch a skip is reported, not failed");
}

/// A gate lets through exactly the cases it expects not to run: a listed
/// case (or a listed domain) passes, any other skip still fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_lets_through_only_the_expected_skips() {
    for expected in [
        "records::get_missing_is_none",
        "# what this backend lacks\nevents::*, records::*",
    ] {
        tokio::spawn(persistkit_conformance::run_case_as_test_expecting(
            Unreachable,
            "records",
            "get_missing_is_none",
            true,
            expected,
        ))
        .await
        .unwrap_or_else(|_| panic!("{expected:?} expects this skip"));
    }
    for unexpected in ["", "records::get_missing", "metrics::*", "records::put*"] {
        let r = tokio::spawn(persistkit_conformance::run_case_as_test_expecting(
            Unreachable,
            "records",
            "get_missing_is_none",
            true,
            unexpected,
        ))
        .await;
        let text = panic_text(r.expect_err("a skip the gate does not list must fail"));
        assert!(
            text.contains("PERSISTKIT_EXPECT_UNSUPPORTED"),
            "{unexpected:?}: {text}"
        );
    }
}

/// A backend call that never yields cannot hang the run: the case fails at
/// its time limit and the caller goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_yields_fails_within_the_timeout() {
    let _alone = HEAVY.lock().await;
    let case = all_cases()
        .into_iter()
        .find(|c| c.domain == "records" && c.name == "get_missing_is_none")
        .unwrap();
    let limit = std::time::Duration::from_secs(1);
    let started = std::time::Instant::now();
    let r = persistkit_conformance::run_case_within(
        Arc::new(BuggyHarness(Bug::NeverYields)),
        &case,
        limit,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(r.status, Status::Failed, "{:?}", r.message);
    assert!(
        r.message.as_deref().unwrap_or("").contains("never hang"),
        "{:?}",
        r.message
    );
    assert!(
        took < limit + std::time::Duration::from_secs(1),
        "reported after {took:?}, not at the {limit:?} limit"
    );
    // The abandoned call spins on for a moment; let it end before the
    // race measurements get the cores.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
}
