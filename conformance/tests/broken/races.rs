//! Race detection does not depend on luck.

use super::*;

/// Tests that need the machine's cores to themselves take turns: the race
/// detection measurements, and the busy-looping backend.
pub(crate) static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Race detection does not depend on luck: a planted race is caught in at
/// least 99 of 100 runs of the case that guards it.
pub(crate) async fn detection_rate(bug: Bug, domain: &str, name: &str, rule: &str) {
    let _alone = HEAVY.lock().await;
    let mut caught = 0;
    let started = std::time::Instant::now();
    for _ in 0..100 {
        let (status, message) = outcome(bug, domain, name).await;
        if status == Status::Failed {
            assert!(message.contains(rule), "{message}");
            caught += 1;
        }
    }
    eprintln!(
        "race detection: {bug:?} caught by {domain}::{name} in {caught} of 100 runs ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(caught >= 99, "{bug:?} caught in only {caught} of 100 runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn check_then_insert_is_caught_99_of_100_times() {
    detection_rate(
        Bug::CheckThenInsert,
        "idempotency",
        "exactly_one_acquires_across_handles",
        "exactly one acquires",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn reserve_then_write_is_caught_99_of_100_times() {
    detection_rate(
        Bug::ReserveThenWrite,
        "events",
        "gap_free_log_under_concurrent_appends",
        "never skips an event that commits late",
    )
    .await;
}
