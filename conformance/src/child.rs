//! A second OS process on the same data, for the cases that need one
//! (`shared_across_processes`, a writer killed mid-write).
//!
//! The suite starts its own program again as the child: a test binary runs
//! only the ignored test that [`suite!`](crate::suite) emits for the purpose,
//! and the `persistkit` command runs a hidden subcommand. The child opens the
//! fixture's data with [`Harness::open_location`], says `ready`, waits for
//! `go` on its standard input, runs its task, and reports on standard output,
//! every line prefixed so it stands out from the test harness's own output.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use persistkit_core::{Handle, ManualClock, MetricPoint, NewEvent, Record, Timestamp};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::harness::Harness;
use crate::outcome::CaseError;

/// Environment variable carrying the fixture's location to the child.
pub const LOCATION_ENV: &str = "PERSISTKIT_CHILD_LOCATION";
/// Environment variable naming the child's task.
pub const TASK_ENV: &str = "PERSISTKIT_CHILD_TASK";
/// Environment variable carrying the parent's clock (microseconds since
/// the epoch), so both processes agree on what has expired.
pub const NOW_ENV: &str = "PERSISTKIT_CHILD_NOW";
/// Variables set for every child this process starts (see [`forward_env`]).
static FORWARDED: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Set `name` to `value` in the environment of every second process this
/// process starts from now on: how a server this process started (a Redis
/// container) reaches the child, without changing this process's own
/// environment under its running threads.
pub fn forward_env(name: &str, value: &str) {
    let mut vars = FORWARDED.lock().unwrap_or_else(|e| e.into_inner());
    vars.retain(|(n, _)| n != name);
    vars.push((name.to_string(), value.to_string()));
}

fn forwarded() -> Vec<(String, String)> {
    FORWARDED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Every line the child reports starts with this.
const PREFIX: &str = "persistkit-child: ";
/// The name of the test [`suite!`](crate::suite) emits as the child's entry.
pub const ENTRY: &str = "__persistkit_child";

/// How to start this program again as the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildCommand {
    program: PathBuf,
    args: Vec<String>,
}

impl ChildCommand {
    /// Run `program` with `args` (the child's task comes by environment).
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        ChildCommand {
            program: program.into(),
            args,
        }
    }

    /// This test binary again, running only the ignored test at
    /// `test_path` (e.g. `sqlite::__persistkit_child`).
    pub fn test_entry(test_path: &str) -> Option<Self> {
        let program = std::env::current_exe().ok()?;
        Some(ChildCommand::new(
            program,
            [
                test_path,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ]
            .map(String::from)
            .to_vec(),
        ))
    }

    /// The test path of the child entry next to the test at `module`, as
    /// `module_path!()` gives it inside a `suite!` domain module.
    #[doc(hidden)]
    pub fn for_suite_module(module: &str) -> Option<Self> {
        // "crate::path::to::suite::domain" → "path::to::suite::__persistkit_child"
        let mut parts: Vec<&str> = module.split("::").skip(1).collect();
        parts.pop();
        parts.push(ENTRY);
        Self::test_entry(&parts.join("::"))
    }
}

/// The child side: when this process was started as the suite's child,
/// open the data through `harness`, run the task and report; otherwise do
/// nothing. Returns whether it served.
pub fn serve(harness: impl Harness) -> bool {
    let (Ok(location), Ok(task)) = (std::env::var(LOCATION_ENV), std::env::var(TASK_ENV)) else {
        eprintln!("not started by the conformance suite as its second process: nothing to do");
        return false;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the child");
    rt.block_on(async move {
        let store = match harness.open_location(&location).await {
            Ok(s) => s,
            Err(e) => {
                say(&format!(
                    "error opening the store: {}",
                    persistkit_core::error_chain(&e)
                ));
                return;
            }
        };
        let now = std::env::var(NOW_ENV)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|us| Timestamp::from_micros(us).ok());
        let h = match now {
            Some(t) => Handle::new(store).with_clock(Arc::new(ManualClock::new(t))),
            None => Handle::new(store),
        };
        say("ready");
        let mut line = String::new();
        let _ = BufReader::new(tokio::io::stdin())
            .read_line(&mut line)
            .await;
        match task.as_str() {
            "contend" => contend(&h).await,
            "write" => write_forever(&h).await,
            "records" => read_write_read(&h).await,
            other => say(&format!("error: unknown task {other:?}")),
        }
        say("done");
    });
    true
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{PREFIX}{line}");
    let _ = out.flush();
}

/// Keys and events both processes race for in [`contend`].
pub(crate) const CONTENDED: usize = 60;

/// The same work the parent does at the same time: claim every key and
/// append every event, reporting each outcome.
async fn contend(h: &Handle) {
    for i in 0..CONTENDED {
        match h
            .claim("procs", &format!("key-{i}"), Duration::from_secs(3600))
            .await
        {
            Ok(c) => say(&format!("claim {i} {}", c.is_acquired())),
            Err(e) => say(&format!("error: claim {i}: {e}")),
        }
        match h.append(&[contended_event(i)]).await {
            Ok(a) => say(&format!("append {i} {}", !a[0].duplicate)),
            Err(e) => say(&format!("error: append {i}: {e}")),
        }
    }
}

/// The collection and id both processes read and write in
/// [`read_write_read`].
pub(crate) const SHARED_RECORD: (&str, &str) = ("xproc", "doc");

/// The second process's side of `records::reads_follow_writes_across_processes`:
/// read the record, write version 2 over it, then, once told, read it
/// again, reporting each version.
async fn read_write_read(h: &Handle) {
    let (collection, id) = SHARED_RECORD;
    let read = |h: Handle| async move {
        match h.get(collection, id).await {
            Ok(Some(r)) => say(&format!("saw {}", r.version)),
            Ok(None) => say("saw none"),
            Err(e) => say(&format!("error: get: {e}")),
        }
    };
    read(h.clone()).await;
    match h
        .put(
            collection,
            id,
            &json!({"by": "second process"}),
            persistkit_core::Expect::Version(1),
        )
        .await
    {
        Ok(r) => say(&format!("wrote {}", r.version)),
        Err(e) => say(&format!("error: put: {e}")),
    }
    let mut line = String::new();
    let _ = BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
    read(h.clone()).await;
}

pub(crate) fn contended_event(i: usize) -> NewEvent {
    let at = Timestamp::from_secs(crate::clock::START).expect("in range");
    NewEvent::new("procs", at, json!({"i": i}))
}

/// Points and events per batch of [`write_forever`].
pub(crate) const CRASH_POINTS: usize = 500;
pub(crate) const CRASH_EVENTS: usize = 50;

/// Write batch after batch until killed, saying `ack N` once batch N's
/// metrics, events and record are all acknowledged.
async fn write_forever(h: &Handle) {
    let at = Timestamp::from_secs(crate::clock::START).expect("in range");
    for b in 0u64.. {
        let points: Vec<MetricPoint> = (0..CRASH_POINTS)
            .map(|i| MetricPoint::gauge(at, "crash", &format!("b{b}"), i as f64))
            .collect();
        let events: Vec<NewEvent> = (0..CRASH_EVENTS)
            .map(|i| NewEvent::new("crash", at, json!({"b": b, "i": i})))
            .collect();
        let written = async {
            h.write_metrics(&points).await?;
            h.append(&events).await?;
            h.put(
                "crash",
                &format!("b{b}"),
                &json!({"b": b}),
                persistkit_core::Expect::Absent,
            )
            .await
            .map(|_: Record| ())
        };
        match written.await {
            Ok(()) => say(&format!("ack {b}")),
            Err(e) => {
                say(&format!("error: batch {b}: {e}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// The parent's side of a running child.
pub(crate) struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Running {
    /// Start `command` as the child running `task` on `location`, and wait
    /// until it has opened the store.
    pub(crate) async fn start(
        command: &ChildCommand,
        location: &str,
        task: &str,
        now: Timestamp,
    ) -> Result<Self, CaseError> {
        let mut child = tokio::process::Command::new(&command.program)
            .args(&command.args)
            .env(LOCATION_ENV, location)
            .env(TASK_ENV, task)
            .env(NOW_ENV, now.as_micros().to_string())
            .envs(forwarded())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                CaseError::Skipped(format!(
                    "cannot start a second process ({}): {e}",
                    command.program.display()
                ))
            })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped");
        let mut running = Running {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        let first = running.next_line(Duration::from_secs(60)).await?;
        if first != Some("ready".into()) {
            return Err(CaseError::failed(format!(
                "the second process did not open the store: {}",
                first.unwrap_or_else(|| "it exited".into())
            )));
        }
        Ok(running)
    }

    /// Let the child start its task.
    pub(crate) async fn go(&mut self) -> Result<(), CaseError> {
        self.send("go").await
    }

    /// Send the child a line: its task's signal to go on.
    pub(crate) async fn send(&mut self, line: &str) -> Result<(), CaseError> {
        if let Some(stdin) = self.stdin.as_mut() {
            stdin
                .write_all(format!("{line}\n").as_bytes())
                .await
                .map_err(|e| CaseError::failed(format!("signalling the second process: {e}")))?;
            stdin
                .flush()
                .await
                .map_err(|e| CaseError::failed(format!("signalling the second process: {e}")))?;
        }
        Ok(())
    }

    /// The child's next report, `None` once it has exited.
    pub(crate) async fn next_line(
        &mut self,
        within: Duration,
    ) -> Result<Option<String>, CaseError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .map_err(|_| {
                    CaseError::failed(format!(
                        "the second process said nothing for {} s",
                        within.as_secs()
                    ))
                })?
                .map_err(|e| CaseError::failed(format!("reading the second process: {e}")))?;
            match line {
                None => return Ok(None),
                Some(l) => {
                    // libtest may have started the line with "test … ".
                    if let Some(at) = l.find(PREFIX) {
                        return Ok(Some(l[at + PREFIX.len()..].to_string()));
                    }
                }
            }
        }
    }

    /// Every report until `done`.
    pub(crate) async fn until_done(&mut self, within: Duration) -> Result<Vec<String>, CaseError> {
        let mut out = Vec::new();
        while let Some(line) = self.next_line(within).await? {
            if line == "done" {
                return Ok(out);
            }
            out.push(line);
        }
        Err(CaseError::failed(format!(
            "the second process exited before it finished: {out:?}"
        )))
    }

    /// SIGKILL: the child dies wherever it is, mid-write included.
    pub(crate) async fn kill(&mut self) -> Result<(), CaseError> {
        self.child
            .kill()
            .await
            .map_err(|e| CaseError::failed(format!("killing the second process: {e}")))
    }
}

/// The child command for a case, if the runner has one.
pub(crate) type MaybeChild = Option<Arc<ChildCommand>>;
