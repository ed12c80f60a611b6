//! Running cases: as a report (for `persistkit check`) or as `#[test]`s.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ctx::Ctx;
use crate::harness::{Harness, SetupError};
use crate::outcome::CaseError;
use crate::report::{CaseReport, Status, SuiteReport};
use crate::{all_cases, Case};

/// How long one case may take before it counts as failed (hung).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Options for [`run_suite`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run only cases whose `domain::name` contains this.
    pub filter: Option<String>,
    /// Print one line per case to stderr as it finishes.
    pub progress: bool,
}

/// Run one case on a fresh fixture and classify the outcome.
pub async fn run_case(harness: Arc<dyn Harness>, case: &Case) -> CaseReport {
    let started = Instant::now();
    let outcome = async {
        let ctx = Ctx::new(harness).await.map_err(|e| match e {
            SetupError::Skip(m) => CaseError::Skipped(m),
            SetupError::Fail(m) => CaseError::Failed(format!("setup failed: {m}")),
        })?;
        // Run on its own task so a panic becomes a failure, not an abort.
        let run = case.run;
        let task = tokio::spawn(async move {
            let r = run(&ctx).await;
            ctx.cleanup().await;
            r
        });
        match tokio::time::timeout(CASE_TIMEOUT, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(CaseError::Failed(format!(
                "the case panicked: {}",
                panic_text(join)
            ))),
            Err(_) => Err(CaseError::Failed(format!(
                "no answer within {} s: calls must fail promptly, never hang",
                CASE_TIMEOUT.as_secs()
            ))),
        }
    }
    .await;
    let (status, message) = match outcome {
        Ok(()) => (Status::Passed, None),
        Err(CaseError::Failed(m)) => (Status::Failed, Some(m)),
        Err(CaseError::Skipped(m)) => (Status::Skipped, Some(m)),
        Err(CaseError::Unsupported(m)) => (Status::Unsupported, Some(m)),
    };
    CaseReport {
        domain: case.domain.to_string(),
        name: case.name.to_string(),
        status,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        message,
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "non-string panic".into()),
        Err(e) => e.to_string(),
    }
}

/// Run every case (or those matching the filter) against `harness`, one at a
/// time, each on a fresh fixture.
pub async fn run_suite(harness: Arc<dyn Harness>, opts: &RunOptions) -> SuiteReport {
    let started = Instant::now();
    let cases: Vec<Case> = all_cases()
        .into_iter()
        .filter(|c| {
            opts.filter
                .as_ref()
                .is_none_or(|f| format!("{}::{}", c.domain, c.name).contains(f.as_str()))
        })
        .collect();
    let total = cases.len();
    let mut reports = Vec::with_capacity(total);
    for (i, case) in cases.iter().enumerate() {
        let r = run_case(harness.clone(), case).await;
        if opts.progress {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "[{:>3}/{total}] {:<9} {}::{} ({:.0} ms){}",
                i + 1,
                r.status.as_str(),
                r.domain,
                r.name,
                r.duration_ms,
                r.message
                    .as_ref()
                    .filter(|_| r.status != Status::Passed)
                    .map(|m| format!(": {}", m.lines().next().unwrap_or("")))
                    .unwrap_or_default()
            );
        }
        reports.push(r);
    }
    SuiteReport::new(harness.name(), reports, started.elapsed())
}

/// Run one case as a `#[test]`: panic on failure; say "skipped" or
/// "unsupported" on stderr (past the test harness's capture) otherwise.
/// Used by [`suite!`](crate::suite).
pub async fn run_case_as_test<H: Harness>(harness: H, domain: &str, name: &str) {
    let case = all_cases()
        .into_iter()
        .find(|c| c.domain == domain && c.name == name)
        .unwrap_or_else(|| panic!("no conformance case {domain}::{name}"));
    let harness: Arc<dyn Harness> = Arc::new(harness);
    let label = harness.name();
    let r = run_case(harness, &case).await;
    let msg = r.message.unwrap_or_default();
    match r.status {
        Status::Passed => {}
        Status::Failed => panic!("[{label}] {domain}::{name} broke the contract: {msg}"),
        Status::Skipped | Status::Unsupported => {
            // Written straight to the stream so `cargo test` shows it even
            // though the test itself is reported as ok.
            let _ = writeln!(
                std::io::stderr().lock(),
                "{} [{label}] {domain}::{name}: {msg}",
                r.status.as_str().to_uppercase()
            );
        }
    }
}
