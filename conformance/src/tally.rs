//! What `cargo test` cannot say by itself: libtest has no "skipped", so a
//! skipped or unsupported case of [`suite!`](crate::suite) shows as `ok`.
//! Each case run as a test is tallied here; when the test binary exits, one
//! line on stdout gives the real counts, and with `PERSISTKIT_REPORT=path`
//! every case also appends a JSON line to that file, for a CI to read.

use std::io::Write;
use std::sync::{Mutex, Once};

use crate::report::{Status, Totals};

/// Environment variable: a file each case run under `cargo test` appends
/// one JSON line to: `{"target", "case", "status", "message"}`.
pub const REPORT_ENV: &str = "PERSISTKIT_REPORT";

static TOTALS: Mutex<Totals> = Mutex::new(Totals {
    passed: 0,
    failed: 0,
    skipped: 0,
    unsupported: 0,
});
static AT_EXIT: Once = Once::new();

/// Count one case's outcome, and append it to the report file if asked.
pub(crate) fn record(target: &str, domain: &str, name: &str, status: Status, message: &str) {
    TOTALS.lock().unwrap_or_else(|p| p.into_inner()).add(status);
    AT_EXIT.call_once(|| {
        // SAFETY: registering a plain extern "C" fn with atexit has no
        // preconditions.
        unsafe {
            libc::atexit(print_totals);
        }
    });
    if let Some(path) = std::env::var_os(REPORT_ENV).filter(|p| !p.is_empty()) {
        let path = std::path::Path::new(&path);
        if let Err(e) = append(path, target, domain, name, status, message) {
            let _ = writeln!(
                std::io::stderr(),
                "{REPORT_ENV}={}: cannot append to it: {e}",
                path.display()
            );
        }
    }
}

/// Append one case's JSON line to `path`.
fn append(
    path: &std::path::Path,
    target: &str,
    domain: &str,
    name: &str,
    status: Status,
    message: &str,
) -> std::io::Result<()> {
    let line = serde_json::json!({
        "target": target,
        "case": format!("{domain}::{name}"),
        "status": status.as_str(),
        "message": message,
    });
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
    let _ = writeln!(std::io::stdout(), "{}", summary(&t));
}

#[cfg(test)]
mod tests {
    use super::*;

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
        append(&path, "btree", "records", "a", Status::Passed, "").unwrap();
        append(
            &path,
            "btree",
            "admin",
            "b",
            Status::Unsupported,
            "durable is not declared",
        )
        .unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["case"], "admin::b");
        assert_eq!(lines[1]["status"], "unsupported");
        assert_eq!(lines[1]["message"], "durable is not declared");
        assert!(append(dir.path(), "t", "d", "n", Status::Passed, "").is_err());
    }
}
