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
    /// Which rule broke (with a diff of expected against actual where the
    /// case compared values), or why it was skipped.
    pub message: Option<String>,
    /// The ids of the rules the case guards (`docs/contract.md`).
    pub rules: Vec<String>,
    /// For a failure: the last store calls the case made, oldest first,
    /// each with its input and answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// For a failure: the operation of the last store call before it,
    /// most often the one whose answer the failed check looked at. The
    /// report groups failures by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_call: Option<String>,
    /// For a failure: the command that runs this case alone again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun: Option<String>,
}

impl CaseReport {
    /// `domain::name`.
    pub fn id(&self) -> String {
        format!("{}::{}", self.domain, self.name)
    }

    /// Everything a failure says, for a person: the broken rule and the
    /// diff, the calls made before it, and the command that reruns it.
    pub fn details(&self) -> String {
        let mut s = self.message.clone().unwrap_or_default();
        if !self.calls.is_empty() {
            let _ = write!(
                s,
                "\n{}",
                crate::trace::calls_heading(
                    self.calls.len(),
                    self.calls.first().map(String::as_str)
                )
            );
            for c in &self.calls {
                let _ = write!(s, "\n{c}");
            }
        }
        if let Some(r) = &self.rerun {
            let _ = write!(s, "\nrerun it alone: {r}");
        }
        s
    }
}

/// Failed cases that share a cause: the same last store call before the
/// failed check, or the same broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureGroup {
    /// `call` or `rule`.
    pub by: &'static str,
    /// The operation (`list_records`) or the rule id (`REC-4`).
    pub key: String,
    /// The failed cases, `domain::name`.
    pub cases: Vec<String>,
}

/// The failures of `cases` grouped by their last store call, then by rule,
/// largest group first: one bug that fails many cases shows as one group,
/// so its likely root cause comes first. A rule group is given only when
/// more than one case broke it.
pub fn failure_groups<'a>(cases: impl IntoIterator<Item = &'a CaseReport>) -> Vec<FailureGroup> {
    let mut by_call: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut by_rule: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in cases.into_iter().filter(|c| c.status == Status::Failed) {
        let call = c
            .last_call
            .clone()
            .unwrap_or_else(|| "(no store call)".to_string());
        by_call.entry(call).or_default().push(c.id());
        for r in &c.rules {
            by_rule.entry(r.clone()).or_default().push(c.id());
        }
    }
    let mut groups: Vec<FailureGroup> = by_call
        .into_iter()
        .map(|(key, cases)| FailureGroup {
            by: "call",
            key,
            cases,
        })
        .collect();
    groups.sort_by(|a, b| b.cases.len().cmp(&a.cases.len()).then(a.key.cmp(&b.key)));
    let mut rules: Vec<FailureGroup> = by_rule
        .into_iter()
        .filter(|(_, cases)| cases.len() > 1)
        .map(|(key, cases)| FailureGroup {
            by: "rule",
            key,
            cases,
        })
        .collect();
    rules.sort_by(|a, b| b.cases.len().cmp(&a.cases.len()).then(a.key.cmp(&b.key)));
    groups.extend(rules);
    groups
}

/// The groups as lines of text, under a heading; empty without failures.
pub fn groups_text(groups: &[FailureGroup]) -> String {
    let mut s = String::new();
    if groups.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "failures by their last store call (the likely root cause first), then by rule:"
    );
    for g in groups {
        let n = g.cases.len();
        let _ = writeln!(
            s,
            "  {} {:<18} {n} case{}: {}",
            g.by,
            g.key,
            if n == 1 { "" } else { "s" },
            g.cases.join(", ")
        );
    }
    s
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
    /// The failures grouped by last store call and by rule, largest first
    /// (see [`failure_groups`]).
    pub failure_groups: Vec<FailureGroup>,
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
        let failure_groups = failure_groups(&cases);
        SuiteReport {
            target,
            cases,
            domains,
            totals,
            failure_groups,
            duration_ms: elapsed.as_secs_f64() * 1e3,
        }
    }

    /// True when no case failed.
    pub fn ok(&self) -> bool {
        self.totals.failed == 0
    }
}

/// Render reports as a human-readable table (comfy-table, which measures
/// names like `é` and `😀` by their display width).
pub fn to_table(reports: &[SuiteReport]) -> String {
    use comfy_table::{presets, CellAlignment, Table};
    let mut s = String::new();
    for r in reports {
        let _ = writeln!(s, "== {} ==", r.target);
        let mut cases = Table::new();
        cases
            .load_preset(presets::ASCII_HORIZONTAL_ONLY)
            .set_header(["case", "status", "ms", "note"]);
        for c in &r.cases {
            let note = c
                .message
                .as_deref()
                .map(|m| m.lines().next().unwrap_or(""))
                .unwrap_or("");
            cases.add_row([
                c.id(),
                c.status.as_str().to_string(),
                format!("{:.1}", c.duration_ms),
                note.to_string(),
            ]);
        }
        if let Some(ms) = cases.column_mut(2) {
            ms.set_cell_alignment(CellAlignment::Right);
        }
        let _ = writeln!(s, "{cases}\n");
        let mut domains = Table::new();
        domains
            .load_preset(presets::ASCII_HORIZONTAL_ONLY)
            .set_header(["domain", "passed", "failed", "skipped", "unsupported"]);
        for (d, t) in &r.domains {
            domains.add_row([
                d.clone(),
                t.passed.to_string(),
                t.failed.to_string(),
                t.skipped.to_string(),
                t.unsupported.to_string(),
            ]);
        }
        for i in 1..5 {
            if let Some(col) = domains.column_mut(i) {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
        let _ = writeln!(s, "{domains}");
        let failed: Vec<&CaseReport> = r
            .cases
            .iter()
            .filter(|c| c.status == Status::Failed)
            .collect();
        if !failed.is_empty() {
            let _ = writeln!(s, "\nfailed cases in detail:");
            for c in &failed {
                let _ = writeln!(s, "\n-- {} --\n{}", c.id(), c.details());
            }
            let _ = writeln!(s);
            s.push_str(&groups_text(&failure_groups(failed)));
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
                    m.lines().next().unwrap_or_default().to_string()
                };
                status.set_message(text);
            }
            if c.status == Status::Failed {
                status.set_description(c.details());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, status: Status, message: Option<&str>) -> CaseReport {
        CaseReport {
            domain: "records".into(),
            name: name.into(),
            status,
            duration_ms: 1.5,
            message: message.map(str::to_string),
            rules: vec!["REC-2".into()],
            calls: Vec::new(),
            last_call: None,
            rerun: None,
        }
    }

    #[test]
    fn the_table_lines_up_and_details_failures() {
        let mut failed = case(
            "b",
            Status::Failed,
            Some("[REC-2] ids é😀 differ\n  expected: 1"),
        );
        failed.calls = vec!["   1. [store 1] get".into()];
        failed.last_call = Some("get".into());
        failed.rerun = Some("persistkit check memory:// --filter records::b --exact".into());
        let r = SuiteReport::new(
            "memory".into(),
            vec![case("a_longer_name", Status::Passed, None), failed],
            Duration::from_millis(3),
        );
        let t = to_table(std::slice::from_ref(&r));
        let rows: Vec<&str> = t.lines().filter(|l| l.starts_with(" records::")).collect();
        assert_eq!(rows.len(), 2, "{t}");
        // The status column starts at the same display column in each row.
        let at = |row: &str, word: &str| row[..row.find(word).unwrap()].chars().count();
        assert_eq!(at(rows[0], "passed"), at(rows[1], "failed"), "{t}");
        assert!(
            t.contains("-- records::b --\n[REC-2] ids é😀 differ\n  expected: 1"),
            "{t}"
        );
        assert!(
            t.contains("rerun it alone: persistkit check memory://"),
            "{t}"
        );
        assert!(t.contains("call get"), "{t}");
        assert!(
            t.contains("memory: 1 passed, 1 failed, 0 skipped, 0 unsupported"),
            "{t}"
        );
    }

    #[test]
    fn groups_put_the_largest_first_and_rules_only_when_shared() {
        let mut a = case("a", Status::Failed, Some("x"));
        a.last_call = Some("list_records".into());
        let mut b = a.clone();
        b.name = "b".into();
        let mut c = a.clone();
        c.name = "c".into();
        c.last_call = Some("put".into());
        c.rules = vec!["REC-9".into()];
        let passed = case("d", Status::Passed, None);
        let g = failure_groups([&c, &a, &passed, &b]);
        let keys: Vec<(&str, &str, usize)> = g
            .iter()
            .map(|g| (g.by, g.key.as_str(), g.cases.len()))
            .collect();
        assert_eq!(
            keys,
            [
                ("call", "list_records", 2),
                ("call", "put", 1),
                ("rule", "REC-2", 2)
            ]
        );
    }
}
