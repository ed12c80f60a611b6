//! The one place SQLite errors become persistkit errors.

use persistkit_core::Error;
use rusqlite::ffi;

/// Map a rusqlite error, keeping it whole as the source.
pub(crate) fn map(e: rusqlite::Error) -> Error {
    let base = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.extended_code & 0xff {
            // SQLITE_BUSY, SQLITE_LOCKED: another writer held the lock past the busy timeout.
            ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => {
                Error::unavailable("the SQLite database is busy")
            }
            // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL
            ffi::SQLITE_IOERR | ffi::SQLITE_FULL | ffi::SQLITE_CANTOPEN | ffi::SQLITE_PROTOCOL => {
                Error::unavailable("SQLite cannot read or write the database file")
            }
            // SQLITE_CONSTRAINT on a unique or primary key
            ffi::SQLITE_CONSTRAINT
                if matches!(
                    f.extended_code,
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                Error::conflict(None, "a row with that key already exists")
            }
            _ => Error::internal("SQLite reported an error"),
        },
        _ => Error::internal("SQLite driver error"),
    };
    base.with_source(e)
}

/// Map an error from opening the file at `path`.
pub(crate) fn map_open(e: rusqlite::Error, path: &std::path::Path) -> Error {
    let kind = map_kind(&e);
    Error::new(
        kind,
        format!("cannot open the SQLite file {}", path.display()),
    )
    .with_source(e)
}

fn map_kind(e: &rusqlite::Error) -> persistkit_core::ErrorKind {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.extended_code & 0xff,
                ffi::SQLITE_BUSY
                    | ffi::SQLITE_LOCKED
                    | ffi::SQLITE_IOERR
                    | ffi::SQLITE_FULL
                    | ffi::SQLITE_CANTOPEN
                    | ffi::SQLITE_PROTOCOL
                    | ffi::SQLITE_PERM
                    | ffi::SQLITE_READONLY
                    | ffi::SQLITE_NOTADB
            ) =>
        {
            persistkit_core::ErrorKind::Unavailable
        }
        _ => persistkit_core::ErrorKind::Internal,
    }
}
