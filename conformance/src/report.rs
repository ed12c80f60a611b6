//! The conformance report and its renderings: table, JSON, JUnit, Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The rule holds.
    Passed,
    /// The rule is broken.
    Failed,
    /// The case could not run here.
    Skipped,
    /// The backend does not declare the capability (and said so correctly).
    Unsupported,
}

impl Status {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Unsupported => "unsupported",
        }
    }
}

/// One case's line in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseReport {
    /// Domain (`metrics`, `events`, `idempotency`, `records`, `admin`).
    pub domain: String,
    /// Case name.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
    /// Which rule broke, or why it was skipped.
    pub message: Option<String>,
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
    /// Unsupported.
    pub unsupported: usize,
}

impl Totals {
    pub(crate) fn add(&mut self, s: Status) {
        match s {
            Status::Passed => self.passed += 1,
            Status::Failed => self.failed += 1,
            Status::Skipped => self.skipped += 1,
            Status::Unsupported => self.unsupported += 1,
        }
    }
}

/// The report of one suite run against one store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteReport {
    /// What was checked.
    pub target: String,
    /// Every case, in run order.
    pub cases: Vec<CaseReport>,
    /// Totals per domain.
    pub domains: BTreeMap<String, Totals>,
    /// Totals.
    pub totals: Totals,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
}

impl SuiteReport {
    /// Build a report and its totals.
    pub fn new(target: String, cases: Vec<CaseReport>, elapsed: Duration) -> Self {
        let mut totals = Totals::default();
        let mut domains: BTreeMap<String, Totals> = BTreeMap::new();
        for c in &cases {
            totals.add(c.status);
            domains.entry(c.domain.clone()).or_default().add(c.status);
        }
        SuiteReport {
            target,
            cases,
            domains,
            totals,
            duration_ms: elapsed.as_secs_f64() * 1e3,
        }
    }

    /// True when no case failed.
    pub fn ok(&self) -> bool {
        self.totals.failed == 0
    }
}

/// Render reports as a human-readable table.
pub fn to_table(reports: &[SuiteReport]) -> String {
    let mut s = String::new();
    for r in reports {
        let w = r
            .cases
            .iter()
            .map(|c| c.domain.len() + c.name.len() + 2)
            .max()
            .unwrap_or(10)
            .max(10);
        let _ = writeln!(s, "== {} ==", r.target);
        let _ = writeln!(s, "{:<w$}  {:<11}  {:>9}  note", "case", "status", "ms");
        for c in &r.cases {
            let note = c
                .message
                .as_deref()
                .map(|m| m.lines().next().unwrap_or(""))
                .unwrap_or("");
            let _ = writeln!(
                s,
                "{:<w$}  {:<11}  {:>9.1}  {}",
                format!("{}::{}", c.domain, c.name),
                c.status.as_str(),
                c.duration_ms,
                note
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<12} {:>6} {:>6} {:>7} {:>11}",
            "domain", "passed", "failed", "skipped", "unsupported"
        );
        for (d, t) in &r.domains {
            let _ = writeln!(
                s,
                "{:<12} {:>6} {:>6} {:>7} {:>11}",
                d, t.passed, t.failed, t.skipped, t.unsupported
            );
        }
        let t = r.totals;
        let _ = writeln!(
            s,
            "{}: {} passed, {} failed, {} skipped, {} unsupported in {:.1} s\n",
            r.target,
            t.passed,
            t.failed,
            t.skipped,
            t.unsupported,
            r.duration_ms / 1e3
        );
    }
    s
}

/// Render reports as one JSON document: `{"reports": [...], "totals": {...}}`.
pub fn to_json(reports: &[SuiteReport]) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        reports: &'a [SuiteReport],
        totals: Totals,
        ok: bool,
    }
    let mut totals = Totals::default();
    for r in reports {
        totals.passed += r.totals.passed;
        totals.failed += r.totals.failed;
        totals.skipped += r.totals.skipped;
        totals.unsupported += r.totals.unsupported;
    }
    serde_json::to_string_pretty(&Doc {
        reports,
        totals,
        ok: totals.failed == 0,
    })
    .expect("report serializes")
}

/// Render reports as JUnit XML: one test suite per target. Skipped and
/// unsupported cases are `<skipped>` with the reason.
pub fn to_junit(reports: &[SuiteReport]) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("persistkit-conformance");
    for r in reports {
        let mut suite = TestSuite::new(r.target.clone());
        for c in &r.cases {
            let mut status = match c.status {
                Status::Passed => TestCaseStatus::success(),
                Status::Failed => TestCaseStatus::non_success(NonSuccessKind::Failure),
                Status::Skipped | Status::Unsupported => TestCaseStatus::skipped(),
            };
            if let Some(m) = &c.message {
                let text = if c.status == Status::Unsupported {
                    format!("unsupported: {m}")
                } else {
                    m.clone()
                };
                status.set_message(text);
            }
            let mut tc = TestCase::new(format!("{}::{}", c.domain, c.name), status);
            tc.set_classname(format!("{}.{}", r.target, c.domain));
            tc.set_time(Duration::from_secs_f64(c.duration_ms / 1e3));
            suite.add_test_case(tc);
        }
        report.add_test_suite(suite);
    }
    report.to_string().expect("junit serializes")
}

/// Render reports as Markdown tables (for CI summaries).
pub fn to_markdown(reports: &[SuiteReport]) -> String {
    let mut s = String::new();
    for r in reports {
        let t = r.totals;
        let _ = writeln!(s, "### {}\n", r.target);
        let _ = writeln!(
            s,
            "{} passed, {} failed, {} skipped, {} unsupported\n",
            t.passed, t.failed, t.skipped, t.unsupported
        );
        let _ = writeln!(s, "| domain | case | status | ms | note |");
        let _ = writeln!(s, "| --- | --- | --- | ---: | --- |");
        for c in &r.cases {
            let note = c
                .message
                .as_deref()
                .map(|m| m.lines().next().unwrap_or("").replace('|', "\\|"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} | {} |",
                c.domain,
                c.name,
                c.status.as_str(),
                c.duration_ms,
                note
            );
        }
        let _ = writeln!(s);
    }
    s
}
