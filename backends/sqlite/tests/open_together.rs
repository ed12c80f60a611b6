//! Processes opening one fresh file at the same instant all open (ADM-1):
//! creating the file, switching it to WAL and migrating it are each
//! covered by the busy timeout, never an instant "database is locked".
//!
//! The children are this test binary again, running the ignored test
//! `child_opens` at an agreed instant.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use persistkit_sqlite::SqliteStore;

const URL: &str = "PERSISTKIT_OPEN_TOGETHER_URL";
const AT: &str = "PERSISTKIT_OPEN_TOGETHER_AT";

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[test]
fn processes_opening_one_fresh_file_together_all_open() {
    let exe = std::env::current_exe().unwrap();
    let mut failures = Vec::new();
    for trial in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/fresh.db", dir.path().display());
        let at = unix_ms() + 400;
        let children: Vec<_> = (0..4)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args(["--exact", "child_opens", "--ignored", "--nocapture"])
                    .env(URL, &url)
                    .env(AT, at.to_string())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            if !out.status.success() {
                failures.push(format!(
                    "trial {trial}: {}",
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .chain(String::from_utf8_lossy(&out.stderr).lines())
                        .filter(|l| l.contains("open failed"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "a process opening beside others failed:\n{}",
        failures.join("\n")
    );
}

/// One process's side: wait for the agreed instant, then open.
#[test]
#[ignore = "a child of processes_opening_one_fresh_file_together_all_open"]
fn child_opens() {
    let (Ok(url), Ok(at)) = (std::env::var(URL), std::env::var(AT)) else {
        return;
    };
    let at: u128 = at.parse().unwrap();
    let now = unix_ms();
    if at > now {
        std::thread::sleep(Duration::from_millis((at - now) as u64));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Err(e) = rt.block_on(SqliteStore::open(&url)) {
        println!("open failed: {e}");
        std::process::exit(1);
    }
}
