//! A small pool of blocking SQLite connections (rusqlite), and how a call
//! runs on one without stalling the async runtime.
//!
//! Each call is one closure on one connection: a single statement, or a
//! whole transaction that begins and ends inside the closure. No lock is
//! ever held across an `.await`, so a call never waits on another task of
//! the same process.
//!
//! On a multi-threaded runtime a call runs in `block_in_place`: the worker
//! hands its other tasks to another thread while SQLite works or waits on
//! a lock, at a cost of well under a microsecond, and no copy of the
//! call's arguments is made (unlike `spawn_blocking`, or a thread per
//! connection behind a channel, which cost 10–15 µs a call here). On a
//! current-thread runtime, which has no other thread to hand work to, it
//! runs in place.
//!
//! Because a call blocks its thread, the handle's timeout cannot cut it
//! short from outside. So a call with a deadline carries it down: waiting
//! for a connection, SQLite's busy waits and the statement itself (through
//! a progress handler that interrupts it) all stop at the deadline, and
//! the call fails with `Unavailable`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use persistkit_core::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::config::SqliteConfig;
use crate::error::{map, map_open};

/// Prepared statements kept per connection: every fixed statement and the
/// read shapes in use.
const STATEMENT_CACHE: usize = 256;

/// How far past the deadline SQLite's busy wait may end, at most, when it
/// is left at the store's busy timeout.
const BUSY_SLACK: Duration = Duration::from_millis(20);

/// SQLite virtual-machine steps between two looks at the deadline.
const DEADLINE_CHECK_STEPS: i32 = 1_000;

/// One connection, and the deadline its progress handler watches: in
/// nanoseconds after [`epoch`], 0 for none.
struct Conn {
    conn: Connection,
    deadline: Arc<AtomicU64>,
    /// The busy timeout set on the connection now.
    busy: Duration,
}

/// The instant deadlines are counted from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_after_epoch(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The error of a call whose deadline passed.
fn past_deadline() -> Error {
    Error::unavailable("the call's deadline passed before SQLite could answer")
}

/// Connections to one database file.
pub(crate) struct Pool {
    config: SqliteConfig,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    open: AtomicU32,
    closed: AtomicBool,
}

impl Pool {
    /// Open the pool and its first connection (so a bad path fails here).
    pub(crate) fn open(config: SqliteConfig) -> Result<Pool> {
        let first = connect(&config)?;
        let permits = Semaphore::new(config.max_connections as usize);
        Ok(Pool {
            config,
            idle: Mutex::new(vec![first]),
            permits,
            open: AtomicU32::new(1),
            closed: AtomicBool::new(false),
        })
    }

    /// Run `f` on a connection of the pool, with no deadline but the
    /// store's own timeouts (opening, migrating).
    ///
    /// # Errors
    /// As [`run_by`](Self::run_by).
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> Result<T>,
    {
        self.run_by(None, f).await
    }

    /// Run `f` on a connection of the pool, answering by `deadline` when
    /// there is one: the wait for a connection, SQLite's busy waits and
    /// the statements of `f` all end there.
    ///
    /// # Errors
    /// `Closed` after [`close`](Self::close); `Unavailable` when no
    /// connection frees up within the acquire timeout, the database stays
    /// locked past the busy timeout, or the deadline passes; whatever `f`
    /// returns.
    pub(crate) async fn run_by<T, F>(&self, deadline: Option<Instant>, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> Result<T>,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let _permit = match self.permits.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                let wait = match deadline {
                    Some(d) => self
                        .config
                        .acquire_timeout
                        .min(d.saturating_duration_since(Instant::now())),
                    None => self.config.acquire_timeout,
                };
                tokio::time::timeout(wait, self.permits.acquire())
                    .await
                    .map_err(|_| match deadline {
                        Some(d) if Instant::now() >= d => past_deadline(),
                        _ => Error::unavailable("timed out waiting for a SQLite connection"),
                    })?
                    .map_err(|_| closed())?
            }
        };
        let mut conn = self.take()?;
        let out = blocking(|| {
            let busy = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(past_deadline());
                    }
                    conn.deadline.store(nanos_after_epoch(d), Ordering::Relaxed);
                    // Shorten SQLite's busy wait only when the deadline
                    // comes clearly first: a few ms of slack saves
                    // resetting it on every call when both are the same.
                    if left + BUSY_SLACK < self.config.busy_timeout {
                        left
                    } else {
                        self.config.busy_timeout
                    }
                }
                None => self.config.busy_timeout,
            };
            if busy != conn.busy {
                conn.conn.busy_timeout(busy).map_err(map)?;
                conn.busy = busy;
            }
            let out = f(&mut conn.conn);
            conn.deadline.store(0, Ordering::Relaxed);
            match out {
                Err(e) if deadline.is_some_and(|d| Instant::now() >= d) && interrupted(&e) => {
                    Err(past_deadline().with_source(e))
                }
                out => out,
            }
        });
        self.give_back(conn);
        out
    }

    fn take(&self) -> Result<Conn> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => {
                let c = blocking(|| connect(&self.config))?;
                self.open.fetch_add(1, Ordering::Relaxed);
                Ok(c)
            }
        }
    }

    fn give_back(&self, conn: Conn) {
        // A connection left inside a transaction (a rollback that failed)
        // is never handed to another call.
        if self.closed.load(Ordering::Acquire) || !conn.conn.is_autocommit() {
            self.open.fetch_sub(1, Ordering::Relaxed);
            drop(conn);
            return;
        }
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }

    /// Refuse new calls and close every idle connection; a call under way
    /// closes its connection when it ends.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        self.open.fetch_sub(idle.len() as u32, Ordering::Relaxed);
        drop(idle);
    }

    /// Open connections, idle ones, and the most there may be.
    pub(crate) fn stats(&self) -> (u32, u32, u32) {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).len();
        (
            self.open.load(Ordering::Relaxed),
            u32::try_from(idle).unwrap_or(u32::MAX),
            self.config.max_connections,
        )
    }
}

fn closed() -> Error {
    Error::closed("the SQLite store is closed")
}

/// Whether `e` comes from SQLite stopping a statement (SQLITE_INTERRUPT),
/// which only the deadline's progress handler asks for.
fn interrupted(e: &Error) -> bool {
    use std::error::Error as _;
    e.source()
        .and_then(|s| s.downcast_ref::<rusqlite::Error>())
        .and_then(|s| s.sqlite_error_code())
        == Some(rusqlite::ErrorCode::OperationInterrupted)
}

/// Run `f` where it may block: in `block_in_place` on a multi-threaded
/// runtime, in place otherwise (a current-thread runtime or no runtime).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// `persistkit_index_key(data, fields)`: the index key of a record's JSON
/// text for a JSON array of field pointers (NULL when the record is not in
/// the index), computed by the same code the other backends use.
///
/// The schema's index triggers call it, so a connection of your own that
/// writes to the `records` table must register it first; without it, SQLite
/// refuses such writes ("no such function") rather than leave an index
/// behind.
///
/// # Errors
/// `Internal` when SQLite refuses the registration.
pub fn register_index_key(conn: &Connection) -> Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "persistkit_index_key",
        2,
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        |ctx| {
            let bad = |e: serde_json::Error| rusqlite::Error::UserFunctionError(Box::new(e));
            let data: serde_json::Value = serde_json::from_str(
                ctx.get_raw(0)
                    .as_str()
                    .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?,
            )
            .map_err(bad)?;
            let fields: Vec<String> = serde_json::from_str(
                ctx.get_raw(1)
                    .as_str()
                    .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?,
            )
            .map_err(bad)?;
            let index = persistkit_core::Index {
                collection: String::new(),
                name: String::new(),
                fields,
                unique: false,
            };
            Ok(index.key_of(&data))
        },
    )
    .map_err(map)
}

/// Switch the file to WAL. The switch needs the file to itself, and
/// SQLite answers "busy" at once, without its busy handler, while another
/// process opens or switches the same fresh file: so try again, with short
/// pauses, for up to the busy timeout.
fn wal(conn: &Connection, busy_timeout: Duration) -> Result<()> {
    let until = Instant::now() + busy_timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => return Ok(()),
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && Instant::now() + pause < until =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(map(e)),
        }
    }
}

/// One connection, set up as every connection of the store is: WAL,
/// `synchronous=NORMAL`, byte-wise text, a statement cache; read-only and
/// changing nothing when only inspecting.
fn connect(config: &SqliteConfig) -> Result<Conn> {
    let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    if config.inspect {
        flags |= OpenFlags::SQLITE_OPEN_READ_ONLY;
    } else {
        flags |= OpenFlags::SQLITE_OPEN_READ_WRITE;
        if config.create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
    }
    let conn =
        Connection::open_with_flags(&config.path, flags).map_err(|e| map_open(e, &config.path))?;
    conn.busy_timeout(config.busy_timeout).map_err(map)?;
    register_index_key(&conn)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if !config.inspect {
        // Looking changes nothing: not even the journal mode.
        wal(&conn, config.busy_timeout)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(map)?;
    }
    // Interrupt the statement under way once the call's deadline passes.
    let deadline = Arc::new(AtomicU64::new(0));
    let watched = deadline.clone();
    conn.progress_handler(
        DEADLINE_CHECK_STEPS,
        Some(move || {
            let d = watched.load(Ordering::Relaxed);
            d != 0 && nanos_after_epoch(Instant::now()) >= d
        }),
    )
    .map_err(map)?;
    Ok(Conn {
        conn,
        deadline,
        busy: config.busy_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A statement that would run for minutes stops at the deadline, with
    /// `Unavailable`, and the connection goes on serving calls.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_statement_stops_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pool =
            Pool::open(SqliteConfig::new(dir.path().join("x.db")).max_connections(1)).unwrap();
        let started = Instant::now();
        let e = pool
            .run_by(Some(Instant::now() + Duration::from_millis(200)), |c| {
                c.query_row(
                    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) \
                     SELECT count(*) FROM r",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(map)
            })
            .await
            .expect_err("the statement never ends by itself");
        let took = started.elapsed();
        assert_eq!(e.kind(), persistkit_core::ErrorKind::Unavailable, "{e}");
        assert!(e.to_string().contains("deadline"), "{e}");
        assert!(took < Duration::from_secs(5), "stopped after {took:?}");
        let one = pool
            .run_by(Some(Instant::now() + Duration::from_secs(5)), |c| {
                c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                    .map_err(map)
            })
            .await
            .unwrap();
        assert_eq!(one, 1);
        // A deadline already past fails at once, before any statement.
        let e = pool
            .run_by(Some(Instant::now()), |_| Ok(()))
            .await
            .expect_err("past");
        assert_eq!(e.kind(), persistkit_core::ErrorKind::Unavailable);
    }
}
