//! What `cargo test` cannot say by itself: libtest has no "skipped", so a
//! skipped or unsupported case of [`suite!`](crate::suite) shows as `ok`.
//! Each case run as a test is tallied here; when the test binary exits, one
//! line on stdout gives the real counts. With `PERSISTKIT_REPORT=path`
//! every case also appends a JSON line to that file, and with
//! `PERSISTKIT_JUNIT=path` the binary writes a JUnit report of its cases
//! there when it exits, for a CI to read. A path that cannot be written
//! fails the case that found out, naming the path.

use std::io::Write;
use std::sync::{Mutex, Once};

use crate::report::{failure_groups, groups_text, CaseReport, Status, Totals};

/// Environment variable: a file each case run under `cargo test` appends
/// one JSON line to: `{"target", "case", "status", "message"}`.
pub const REPORT_ENV: &str = "PERSISTKIT_REPORT";

static TOTALS: Mutex<Totals> = Mutex::new(Totals {
    passed: 0,
    failed: 0,
    skipped: 0,
    unsupported: 0,
});
/// Environment variable: a file the test binary writes a JUnit report of
/// its cases to when it exits (skipped and unsupported cases as
/// `<skipped>`, with the reason).
pub const JUNIT_ENV: &str = "PERSISTKIT_JUNIT";

/// Every case so far, by target, for the JUnit report and for the groups
/// of failures the exit line adds.
static CASES: Mutex<Vec<(String, CaseReport)>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();

/// Count one case's outcome, and append it to the report file if asked.
///
/// # Errors
/// A report path (`PERSISTKIT_REPORT`, `PERSISTKIT_JUNIT`) that cannot be
/// written, named with the reason.
pub(crate) fn record(target: &str, case: &CaseReport) -> Result<(), String> {
    TOTALS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .add(case.status);
    CASES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((target.to_string(), case.clone()));
    AT_EXIT.call_once(|| {
        // SAFETY: registering a plain extern "C" fn with atexit has no
        // preconditions.
        unsafe {
            libc::atexit(print_totals);
        }
    });
    if let Some(path) = std::env::var_os(REPORT_ENV).filter(|p| !p.is_empty()) {
        let path = std::path::Path::new(&path);
        append(path, target, case).map_err(|e| cannot_write(REPORT_ENV, path, &e))?;
    }
    if let Some(path) = junit_path() {
        // Found out now, while a case can still fail for it; the report
        // itself is written at exit.
        std::fs::write(&path, junit()).map_err(|e| cannot_write(JUNIT_ENV, &path, &e))?;
    }
    Ok(())
}

fn junit_path() -> Option<std::path::PathBuf> {
    std::env::var_os(JUNIT_ENV)
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
}

/// Why `path`, named by `var`, cannot be written, in words.
fn cannot_write(var: &str, path: &std::path::Path, e: &std::io::Error) -> String {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let hint = match dir {
        Some(d) if !d.is_dir() => format!(" (its directory {} does not exist)", d.display()),
        _ if path.is_dir() => " (it is a directory; name a file)".to_string(),
        _ => String::new(),
    };
    format!("{var}={}: cannot write it: {e}{hint}", path.display())
}

/// The JUnit report of every case so far, one test suite per target.
fn junit() -> String {
    let cases = CASES.lock().unwrap_or_else(|p| p.into_inner());
    let mut targets: Vec<String> = Vec::new();
    for (t, _) in cases.iter() {
        if !targets.contains(t) {
            targets.push(t.clone());
        }
    }
    let reports: Vec<crate::SuiteReport> = targets
        .into_iter()
        .map(|t| {
            let of_t = cases
                .iter()
                .filter(|(target, _)| *target == t)
                .map(|(_, c)| c.clone())
                .collect();
            crate::SuiteReport::new(t, of_t, std::time::Duration::ZERO)
        })
        .collect();
    crate::report::to_junit(&reports)
}

/// Append one case's JSON line to `path`.
fn append(path: &std::path::Path, target: &str, case: &CaseReport) -> std::io::Result<()> {
    let mut line = serde_json::json!({
        "target": target,
        "case": case.id(),
        "status": case.status.as_str(),
        "message": case.message.as_deref().unwrap_or_default(),
        "rules": case.rules,
    });
    if case.status == Status::Failed {
        line["calls"] = serde_json::json!(case.calls);
        line["last_call"] = serde_json::json!(case.last_call);
        line["rerun"] = serde_json::json!(case.rerun);
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{line}")
}

/// The counts so far, as the exit line gives them.
pub(crate) fn summary(t: &Totals) -> String {
    format!(
        "persistkit conformance: {} passed, {} failed, {} skipped, {} unsupported \
         (cargo test shows skipped and unsupported cases as ok)",
        t.passed, t.failed, t.skipped, t.unsupported
    )
}

extern "C" fn print_totals() {
    let t = *TOTALS.lock().unwrap_or_else(|p| p.into_inner());
    let groups = {
        let cases = CASES.lock().unwrap_or_else(|p| p.into_inner());
        groups_text(&failure_groups(cases.iter().map(|(_, c)| c)))
    };
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{groups}");
    let _ = writeln!(out, "{}", summary(&t));
    if let Some(path) = junit_path() {
        if let Err(e) = std::fs::write(&path, junit()) {
            let _ = writeln!(std::io::stderr(), "{}", cannot_write(JUNIT_ENV, &path, &e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(domain: &str, name: &str, status: Status, message: &str) -> CaseReport {
        CaseReport {
            domain: domain.into(),
            name: name.into(),
            status,
            duration_ms: 1.0,
            message: Some(message.into()).filter(|m: &String| !m.is_empty()),
            rules: Vec::new(),
            calls: Vec::new(),
            last_call: None,
            rerun: None,
        }
    }

    #[test]
    fn the_exit_line_counts_every_status() {
        let mut t = Totals::default();
        for s in [
            Status::Passed,
            Status::Passed,
            Status::Skipped,
            Status::Unsupported,
        ] {
            t.add(s);
        }
        assert_eq!(
            summary(&t),
            "persistkit conformance: 2 passed, 0 failed, 1 skipped, 1 unsupported \
             (cargo test shows skipped and unsupported cases as ok)"
        );
    }

    #[test]
    fn each_case_appends_one_json_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.jsonl");
        append(&path, "btree", &case("records", "a", Status::Passed, "")).unwrap();
        append(
            &path,
            "btree",
            &case("admin", "b", Status::Unsupported, "durable is not declared"),
        )
        .unwrap();
        let mut failed = case("records", "c", Status::Failed, "[REC-1] wrong version");
        failed.calls = vec!["   1. [store 1] get".into()];
        failed.last_call = Some("get".into());
        failed.rerun = Some("cargo test -- records::c --exact".into());
        append(&path, "btree", &failed).unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1]["case"], "admin::b");
        assert_eq!(lines[1]["status"], "unsupported");
        assert_eq!(lines[1]["message"], "durable is not declared");
        assert!(lines[1].get("rerun").is_none());
        assert_eq!(lines[2]["last_call"], "get");
        assert_eq!(lines[2]["rerun"], "cargo test -- records::c --exact");
        assert_eq!(lines[2]["calls"][0], "   1. [store 1] get");
        let e = append(dir.path(), "t", &case("d", "n", Status::Passed, "")).unwrap_err();
        let said = cannot_write(REPORT_ENV, dir.path(), &e);
        assert!(said.contains(&dir.path().display().to_string()), "{said}");
        assert!(said.contains("it is a directory"), "{said}");
        let missing = dir.path().join("no/such/dir/r.xml");
        let e = std::fs::write(&missing, "").unwrap_err();
        let said = cannot_write(JUNIT_ENV, &missing, &e);
        assert!(
            said.starts_with(&format!(
                "PERSISTKIT_JUNIT={}: cannot write it",
                missing.display()
            )),
            "{said}"
        );
        assert!(said.contains("does not exist"), "{said}");
    }
}
