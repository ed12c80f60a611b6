//! Running cases: as a report (for `persistkit check`) or as `#[test]`s.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::child::ChildCommand;
use crate::ctx::Ctx;
use crate::harness::{Harness, SetupError};
use crate::outcome::CaseError;
use crate::report::{CaseReport, Status, SuiteReport};
use crate::trace::{describe, CallLog};
use crate::{all_cases, Case};

/// How long one case may take before it counts as failed (hung), unless
/// `PERSISTKIT_CASE_TIMEOUT` (seconds) or [`RunOptions::case_timeout`] says
/// otherwise.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Environment variable overriding [`CASE_TIMEOUT`], in seconds.
pub const CASE_TIMEOUT_ENV: &str = "PERSISTKIT_CASE_TIMEOUT";

/// Cases that may stop the database underneath (the crash case kills and
/// restarts a test server): no other case of the process runs meanwhile.
const EXCLUSIVE_CASES: &[(&str, &str)] =
    &[("admin", "acknowledged_writes_survive_a_killed_writer")];

/// Held shared by every running case, and alone by the exclusive ones.
static ALONE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Worker threads of the runtime each case runs on: the race cases need
/// contenders on several threads at once.
const CASE_WORKERS: usize = 4;

/// Options for [`run_suite`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run only cases whose `domain::name` contains this.
    pub filter: Option<String>,
    /// Run only the case whose `domain::name` is the filter.
    pub exact: bool,
    /// Print one line per case to stderr as it finishes.
    pub progress: bool,
    /// Per-case time limit; `None`: `PERSISTKIT_CASE_TIMEOUT`, else
    /// [`CASE_TIMEOUT`].
    pub case_timeout: Option<Duration>,
    /// How to start this program as the second process of the
    /// cross-process cases; without it they are skipped.
    pub child: Option<ChildCommand>,
    /// The command that runs one case again, with `{case}` where the case's
    /// `domain::name` goes (`persistkit check URL --filter {case}`): a
    /// failed case's report gives it filled in.
    pub rerun: Option<String>,
}

/// How many of its last store calls a failed case shows.
const CALLS_SHOWN: usize = 12;

/// The per-case time limit from `PERSISTKIT_CASE_TIMEOUT`, else the default.
pub fn case_timeout_from_env() -> Duration {
    std::env::var(CASE_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(CASE_TIMEOUT, Duration::from_secs_f64)
}

/// Run one case on a fresh fixture and classify the outcome, within the
/// time limit from the environment (see [`case_timeout_from_env`]).
pub async fn run_case(harness: Arc<dyn Harness>, case: &Case) -> CaseReport {
    run_case_within(harness, case, case_timeout_from_env()).await
}

/// Run one case, failing it when it has not ended within `limit`.
///
/// The case runs on a thread and runtime of its own, so even a backend that
/// never yields (a busy loop inside a call) cannot stall the caller: at the
/// limit the case is reported failed and abandoned, and the run goes on.
pub async fn run_case_within(
    harness: Arc<dyn Harness>,
    case: &Case,
    limit: Duration,
) -> CaseReport {
    run_case_with_child(harness, case, limit, None).await
}

/// [`run_case_within`], able to start `child` as a second OS process.
pub async fn run_case_with_child(
    harness: Arc<dyn Harness>,
    case: &Case,
    limit: Duration,
    child: Option<ChildCommand>,
) -> CaseReport {
    let child = child.map(Arc::new);
    // A case that stops the database underneath runs alone in this process.
    let exclusive = EXCLUSIVE_CASES.contains(&(case.domain, case.name));
    let _shared;
    let _alone;
    if exclusive {
        _alone = Some(ALONE.write().await);
    } else {
        _shared = Some(ALONE.read().await);
    }
    let started = Instant::now();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let run = case.run;
    let log = Arc::new(CallLog::default());
    let noted = log.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("case {}::{}", case.domain, case.name))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(CASE_WORKERS)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(CaseError::Failed(format!(
                        "no runtime for the case: {e}"
                    ))));
                    return;
                }
            };
            let outcome = rt.block_on(async move {
                let ctx = Ctx::noting(harness, child, noted)
                    .await
                    .map_err(|e| match e {
                        SetupError::Skip(m) => CaseError::Skipped(m),
                        SetupError::Fail(m) => CaseError::Failed(format!("setup failed: {m}")),
                    })?;
                // On a task of its own, so a panic becomes a failure.
                let task = tokio::spawn(async move {
                    let r = run(&ctx).await;
                    ctx.cleanup().await;
                    r
                });
                match task.await {
                    Ok(r) => r,
                    Err(join) => Err(CaseError::Failed(format!(
                        "the case panicked: {}",
                        panic_text(join)
                    ))),
                }
            });
            let _ = tx.send(outcome);
            // Pools and connections close with the runtime, here.
            rt.shutdown_timeout(Duration::from_secs(5));
        });
    let outcome = match spawned {
        Err(e) => Err(CaseError::Failed(format!("cannot start the case's thread: {e}"))),
        Ok(_) => match tokio::time::timeout(limit, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(CaseError::Failed(
                "the case's thread ended without a result".into(),
            )),
            Err(_) => Err(CaseError::Failed(format!(
                "no answer within {:.1} s: calls must fail promptly, never hang; the case was abandoned",
                limit.as_secs_f64()
            ))),
        },
    };
    // An answer beneath the handle that broke the contract fails the case,
    // even when the handle hid it from the case's own checks.
    let broken = log.broken();
    let beneath = outcome.is_ok() && !broken.is_empty();
    let outcome = if beneath {
        Err(CaseError::Failed(broken.join("\n")))
    } else {
        outcome
    };
    let rules: Vec<String> = crate::rules::rules_of(case.domain, case.name)
        .into_iter()
        .map(str::to_string)
        .collect();
    let (status, message) = match outcome {
        Ok(()) => (Status::Passed, log.note()),
        // The answers beneath the handle name their own rule.
        Err(CaseError::Failed(m)) if rules.is_empty() || beneath => (Status::Failed, Some(m)),
        Err(CaseError::Failed(m)) => (Status::Failed, Some(format!("[{}] {m}", rules.join(", ")))),
        Err(CaseError::Skipped(m)) => (Status::Skipped, Some(m)),
        Err(CaseError::Unsupported(m)) => (Status::Unsupported, Some(m)),
    };
    let (calls, last_call) = if status == Status::Failed {
        describe(&log, CALLS_SHOWN)
    } else {
        (Vec::new(), None)
    };
    CaseReport {
        domain: case.domain.to_string(),
        name: case.name.to_string(),
        status,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        message,
        rules,
        calls,
        last_call: last_call.map(str::to_string),
        rerun: None,
    }
}

/// Fail the running `#[test]` with `text`, printed through the test
/// harness's capture so it shows under the failed test. Not `panic!`: the
/// panic hook would add the runner's own source line (and, with
/// RUST_BACKTRACE, a backtrace of the runner's internals) to what is the
/// case's failure.
fn fail_test(text: String) -> ! {
    eprintln!("{text}");
    std::panic::resume_unwind(Box::new(text));
}

/// `template` with the case's id where `{case}` is.
fn rerun_of(template: &str, domain: &str, name: &str) -> String {
    template.replace("{case}", &format!("{domain}::{name}"))
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
            let id = format!("{}::{}", c.domain, c.name);
            opts.filter.as_ref().is_none_or(|f| {
                if opts.exact {
                    id == *f
                } else {
                    id.contains(f.as_str())
                }
            })
        })
        .collect();
    let total = cases.len();
    let mut reports = Vec::with_capacity(total);
    let limit = opts.case_timeout.unwrap_or_else(case_timeout_from_env);
    for (i, case) in cases.iter().enumerate() {
        let mut r = run_case_with_child(harness.clone(), case, limit, opts.child.clone()).await;
        if r.status == Status::Failed {
            r.rerun = opts
                .rerun
                .as_deref()
                .map(|t| rerun_of(t, case.domain, case.name));
        }
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

/// Environment variable: `1` makes [`run_case_as_test`] fail a skipped or
/// unsupported case, so a CI that gates on `cargo test` cannot go green with
/// cases that did not run.
pub const FAIL_ON_SKIP_ENV: &str = "PERSISTKIT_FAIL_ON_SKIP";

/// Environment variable: the cases a gate expects not to run on this
/// backend (it declares their part unsupported, or it cannot run them
/// here), which [`FAIL_ON_SKIP_ENV`] then lets through: case ids
/// (`records::find_pages_and_follows_writes`) or a domain's cases
/// (`records::*`), separated by commas or white space, or `@path` to a
/// file of them, one per line, `#` starting a comment. Every other skipped
/// or unsupported case still fails.
pub const EXPECT_UNSUPPORTED_ENV: &str = "PERSISTKIT_EXPECT_UNSUPPORTED";

fn fail_on_skip() -> bool {
    matches!(
        std::env::var(FAIL_ON_SKIP_ENV).as_deref().map(str::trim),
        Ok("1" | "true" | "yes")
    )
}

/// The expected list of [`EXPECT_UNSUPPORTED_ENV`], read from the
/// variable or the file it names.
///
/// # Panics
/// When the variable names a file that cannot be read: a gate must not
/// pass because its list went missing.
fn expected_unsupported() -> Vec<String> {
    let Ok(v) = std::env::var(EXPECT_UNSUPPORTED_ENV) else {
        return Vec::new();
    };
    let text = match v.trim().strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("{EXPECT_UNSUPPORTED_ENV}=@{path}: cannot read {path}: {e}")
        }),
        None => v,
    };
    parse_expected(&text)
}

/// Case ids and `domain::*` patterns from `text`.
pub(crate) fn parse_expected(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .flat_map(|l| l.split([',', ' ', '\t']))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `domain::name` is in `expected`.
pub(crate) fn is_expected(expected: &[String], domain: &str, name: &str) -> bool {
    expected.iter().any(|e| match e.strip_suffix("::*") {
        Some(d) => d == domain,
        None => e.split_once("::") == Some((domain, name)),
    })
}

/// Run one case as a `#[test]`: panic on failure; say "skipped" or
/// "unsupported" on stderr (past the test harness's capture) otherwise, or
/// panic for those too when `PERSISTKIT_FAIL_ON_SKIP=1`.
/// Used by [`suite!`](crate::suite).
pub async fn run_case_as_test<H: Harness>(harness: H, domain: &str, name: &str) {
    run_case_as_test_with(harness, domain, name, fail_on_skip()).await;
}

/// [`run_case_as_test`] from a [`suite!`](crate::suite) module, able to start
/// the suite's second process through the module's child entry. `target`
/// says how `cargo test` selects the calling test binary (`--test NAME` or
/// `--lib`), `package` its package: a failure's rerun line uses them.
#[doc(hidden)]
pub async fn run_suite_case<H: Harness>(
    harness: H,
    module: &str,
    package: &str,
    target: &str,
    domain: &str,
    name: &str,
) {
    // "crate::path::to::suite::domain" → "path::to::suite::domain::name", as
    // libtest names the test.
    let path: Vec<&str> = module.split("::").skip(1).collect();
    let rerun = format!(
        "cargo test -p {package} {target} -- {}::{name} --exact",
        path.join("::")
    );
    run_case_as_test_in(
        harness,
        domain,
        name,
        fail_on_skip(),
        ChildCommand::for_suite_module(module),
        None,
        Some(rerun),
    )
    .await;
}

/// [`run_case_as_test`] with the skip rule given instead of read from the
/// environment.
#[doc(hidden)]
pub async fn run_case_as_test_with<H: Harness>(
    harness: H,
    domain: &str,
    name: &str,
    fail_on_skip: bool,
) {
    run_case_as_test_in(harness, domain, name, fail_on_skip, None, None, None).await;
}

/// [`run_case_as_test_with`], with the expected unsupported cases given
/// instead of read from [`EXPECT_UNSUPPORTED_ENV`].
#[doc(hidden)]
pub async fn run_case_as_test_expecting<H: Harness>(
    harness: H,
    domain: &str,
    name: &str,
    fail_on_skip: bool,
    expected: &str,
) {
    let expected = parse_expected(expected);
    run_case_as_test_in(
        harness,
        domain,
        name,
        fail_on_skip,
        None,
        Some(expected),
        None,
    )
    .await;
}

async fn run_case_as_test_in<H: Harness>(
    harness: H,
    domain: &str,
    name: &str,
    fail_on_skip: bool,
    child: Option<ChildCommand>,
    expected: Option<Vec<String>>,
    rerun: Option<String>,
) {
    let case = all_cases()
        .into_iter()
        .find(|c| c.domain == domain && c.name == name)
        .unwrap_or_else(|| panic!("no conformance case {domain}::{name}"));
    let harness: Arc<dyn Harness> = Arc::new(harness);
    let label = harness.name();
    let mut r = run_case_with_child(harness, &case, case_timeout_from_env(), child).await;
    let skipped = matches!(r.status, Status::Skipped | Status::Unsupported);
    if skipped && fail_on_skip {
        let list = expected.unwrap_or_else(expected_unsupported);
        if !is_expected(&list, domain, name) {
            // The gate fails it: so say the tally, the JSON lines and JUnit.
            r.message = Some(format!(
                "{} ({FAIL_ON_SKIP_ENV}=1 makes that a failure, unless \
                 {EXPECT_UNSUPPORTED_ENV} lists it): {}",
                r.status.as_str(),
                r.message.as_deref().unwrap_or_default()
            ));
            r.status = Status::Failed;
        }
    }
    if r.status == Status::Failed {
        r.rerun = rerun;
    }
    if let Err(e) = crate::tally::record(&label, &r) {
        // A gate must not pass with its report missing.
        fail_test(e);
    }
    let msg = r.message.clone().unwrap_or_default();
    match r.status {
        Status::Passed => {}
        Status::Failed if skipped => fail_test(format!("[{label}] {domain}::{name} was {msg}")),
        Status::Failed => fail_test(format!(
            "[{label}] {domain}::{name} broke the contract: {}",
            r.details()
        )),
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
