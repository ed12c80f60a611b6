//! The one place Postgres errors become persistkit errors, by SQLSTATE.
//!
//! | SQLSTATE | kind |
//! | --- | --- |
//! | 23505 unique violation | `Conflict` |
//! | 40001, 40P01, 55P03, 57014 (serialization, deadlock, lock, timeout) | `Unavailable` |
//! | 08000, 08001, 08003, 08006, 57P01–57P05, 53xxx (connection lost, shutdown, out of resources) | `Unavailable` |
//! | 08004, 08P01 (connection refused by configuration, protocol a pooler refuses) | `Refused` |
//! | 28xxx (credentials), 42501 (privilege), 3D000 (no such database) | `Refused` |
//! | 3F000 (no such schema), 42P01 (no such table) | `Schema` |
//! | anything else | `Internal` |
//!
//! The message says each thing once: the server's message, detail and hint,
//! never the server's source line.

use std::fmt;

use persistkit_core::Error;
use sqlx::postgres::PgDatabaseError;

/// What the server said, without the driver's decoration. Kept as the
/// source of the persistkit error; the driver's own error stays reachable
/// through [`ServerError::driver`].
#[derive(Debug)]
pub struct ServerError {
    code: String,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
    driver: sqlx::Error,
}

impl ServerError {
    /// The SQLSTATE code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The driver's error, whole.
    pub fn driver(&self) -> &sqlx::Error {
        &self.driver
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)?;
        if let Some(d) = &self.detail {
            write!(f, "; {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "; hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerError {}

/// Map a sqlx error, keeping it as the source.
/// Whether `e` says the connection itself broke (I/O or protocol, or the
/// server ended the session: SQLSTATE 57P01..57P03), so the same call may
/// run again on a fresh one if it only read.
pub(crate) fn connection_lost(e: &Error) -> bool {
    use std::error::Error as _;
    if e.kind() != persistkit_core::ErrorKind::Unavailable {
        return false;
    }
    let Some(source) = e.source() else {
        return false;
    };
    if let Some(server) = source.downcast_ref::<ServerError>() {
        return matches!(server.code(), "57P01" | "57P02" | "57P03");
    }
    matches!(
        source.downcast_ref::<sqlx::Error>(),
        Some(sqlx::Error::Io(_) | sqlx::Error::Protocol(_))
    )
}

pub(crate) fn map(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let pg = db.try_downcast_ref::<PgDatabaseError>();
            let server = ServerError {
                message: db.message().to_string(),
                detail: pg.and_then(|p| p.detail()).map(str::to_string),
                hint: pg.and_then(|p| p.hint()).map(str::to_string),
                code: code.clone(),
                driver: e,
            };
            by_code(&code).with_source(server)
        }
        sqlx::Error::PoolTimedOut => {
            Error::unavailable("timed out waiting for a Postgres connection").with_source(e)
        }
        sqlx::Error::PoolClosed => Error::closed("the Postgres store is closed").with_source(e),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => {
            Error::unavailable("the connection to Postgres failed").with_source(e)
        }
        sqlx::Error::Configuration(_) => {
            Error::invalid("the Postgres connection settings are wrong").with_source(e)
        }
        sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. } => {
            Error::internal("a row from Postgres has the wrong shape").with_source(e)
        }
        _ => Error::internal("the Postgres driver failed").with_source(e),
    }
}

/// The persistkit error for a SQLSTATE, before the server's words are
/// attached as its source.
fn by_code(code: &str) -> Error {
    match code {
        "23505" => Error::conflict(None, "a row with that key already exists"),
        "40001" | "40P01" => Error::unavailable("Postgres aborted the transaction; retry"),
        "55P03" => Error::unavailable("a lock was not available; retry"),
        "57014" => Error::unavailable("the statement timed out or was cancelled"),
        "08004" | "08P01" => {
            Error::refused("the server (or a pooler in front of it) refused the connection")
        }
        "42501" => Error::refused("the role lacks a privilege"),
        "3D000" => Error::refused("the database does not exist"),
        "3F000" | "42P01" => {
            Error::schema("the schema or its tables do not exist: run `persistkit migrate`")
        }
        c if c.starts_with("28") => Error::refused("the server refused the credentials"),
        c if c.starts_with("08") || c.starts_with("57P") || c.starts_with("53") => {
            Error::unavailable("Postgres is unavailable")
        }
        _ => Error::internal("Postgres reported an error"),
    }
}

#[cfg(test)]
mod tests {
    use super::by_code;
    use persistkit_core::ErrorKind;

    #[test]
    fn retry_only_what_may_pass_by_itself() {
        for (code, kind) in [
            ("23505", ErrorKind::Conflict),
            ("40001", ErrorKind::Unavailable),
            ("57014", ErrorKind::Unavailable),
            ("57P01", ErrorKind::Unavailable),
            ("08006", ErrorKind::Unavailable),
            ("53300", ErrorKind::Unavailable),
            ("08P01", ErrorKind::Refused),
            ("28P01", ErrorKind::Refused),
            ("42501", ErrorKind::Refused),
            ("3D000", ErrorKind::Refused),
            ("42P01", ErrorKind::Schema),
            ("22003", ErrorKind::Internal),
        ] {
            assert_eq!(by_code(code).kind(), kind, "{code}");
        }
    }
}
