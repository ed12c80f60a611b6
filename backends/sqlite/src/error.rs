//! The one place SQLite and pool errors become persistkit errors.

use persistkit_core::Error;

/// Map a sqlx error, keeping it whole as the source.
pub(crate) fn map(e: sqlx::Error) -> Error {
    let base = match &e {
        sqlx::Error::PoolTimedOut => {
            Error::unavailable("timed out waiting for a SQLite connection")
        }
        sqlx::Error::PoolClosed => Error::closed("the SQLite store is closed"),
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => Error::unavailable("SQLite I/O failed"),
        sqlx::Error::Database(db) => {
            let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(-1);
            match code & 0xff {
                // SQLITE_BUSY, SQLITE_LOCKED: another writer held the lock past the busy timeout.
                5 | 6 => Error::unavailable("the SQLite database is busy"),
                // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL
                10 | 13 | 14 | 15 => {
                    Error::unavailable("SQLite cannot read or write the database file")
                }
                // SQLITE_CONSTRAINT on a unique or primary key
                19 if db.is_unique_violation() => {
                    Error::conflict(None, "a row with that key already exists")
                }
                _ => Error::internal("SQLite reported an error"),
            }
        }
        _ => Error::internal("SQLite driver error"),
    };
    base.with_source(e)
}
