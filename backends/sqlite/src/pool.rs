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

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use persistkit_core::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::config::SqliteConfig;
use crate::error::{map, map_open};

/// Prepared statements kept per connection: every fixed statement and the
/// read shapes in use.
const STATEMENT_CACHE: usize = 256;

/// Connections to one database file.
pub(crate) struct Pool {
    config: SqliteConfig,
    idle: Mutex<Vec<Connection>>,
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

    /// Run `f` on a connection of the pool.
    ///
    /// # Errors
    /// `Closed` after [`close`](Self::close); `Unavailable` when no
    /// connection frees up within the acquire timeout or the database stays
    /// locked past the busy timeout; whatever `f` returns.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> Result<T>,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let _permit = match self.permits.try_acquire() {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(self.config.acquire_timeout, self.permits.acquire())
                .await
                .map_err(|_| Error::unavailable("timed out waiting for a SQLite connection"))?
                .map_err(|_| closed())?,
        };
        let mut conn = self.take()?;
        let out = blocking(|| f(&mut conn));
        self.give_back(conn);
        out
    }

    fn take(&self) -> Result<Connection> {
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

    fn give_back(&self, conn: Connection) {
        // A connection left inside a transaction (a rollback that failed)
        // is never handed to another call.
        if self.closed.load(Ordering::Acquire) || !conn.is_autocommit() {
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

/// One connection, set up as every connection of the store is: WAL,
/// `synchronous=NORMAL`, byte-wise text, a statement cache; read-only and
/// changing nothing when only inspecting.
fn connect(config: &SqliteConfig) -> Result<Connection> {
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
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(map)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(map)?;
    }
    Ok(conn)
}
