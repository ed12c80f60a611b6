//! The one place Postgres errors become persistkit errors, by SQLSTATE.
//!
//! | SQLSTATE | kind |
//! | --- | --- |
//! | 23505 unique violation | `Conflict` |
//! | 40001, 40P01, 55P03, 57014 (serialization, deadlock, lock, timeout) | `Unavailable` |
//! | 08000, 08001, 08003, 08006, 57P01–57P03, 57P05, 53xxx (connection lost, shutdown, out of resources) | `Unavailable` |
//! | 25006 (read-only transaction: a standby, or a primary demoted by a failover), 25P03 (idle in transaction too long) | `Unavailable` |
//! | 08004 (connection refused by configuration), 08P01 saying "unsupported", "no such", "not allowed" (a setting, database or user a pooler refuses), 57P04 (database dropped) | `Refused` |
//! | 08P01 otherwise (a pooler lost its server connection: "server conn crashed?", "invalid server parameter") | `Unavailable` |
//! | 42P05, 26000, 22021 on a 0x00 byte, 22P03 on a bind parameter, or any message about persistkit's own prepared statements (a pooler in transaction mode mixing them up) | `Refused`, naming `?prepared=false` |
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
            let e = by_code_and_message(&code, &server.message);
            e.with_source(server)
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

/// What a pooler in transaction mode does to named prepared statements:
/// a statement prepared on one server connection is missing, or already
/// there, on the next, or its parameters reach another statement (a 0x00
/// byte never comes from persistkit: names and JSON with NUL are refused
/// before they reach the server).
fn pooled_statements(code: &str, message: &str) -> bool {
    match code {
        "42P05" | "26000" => true,
        "22021" => message.contains("0x00"),
        "22P03" => message.contains("bind parameter"),
        _ => message.contains("prepared statement \"sqlx_s_"),
    }
}

const POOLER_HINT: &str = "the server lost or mixed up this connection's prepared statements, \
     as a pooler in transaction mode (PgBouncer before 1.21, for one) does: \
     open the store with `?prepared=false` in the URL";

/// The persistkit error for what the server (or a pooler) said. Most
/// codes decide alone; two need the message too: prepared statements
/// mixed up by a pooler, and 08P01, which PgBouncer sends both for a
/// setting it refuses for good and for a server connection it just lost.
fn by_code_and_message(code: &str, message: &str) -> Error {
    if pooled_statements(code, message) {
        return Error::refused(POOLER_HINT);
    }
    if code == "08P01" && !refused_for_good(message) {
        return Error::unavailable(
            "the connection broke (a pooler in front lost its server connection); retry",
        );
    }
    by_code(code)
}

/// A protocol error that will be the same on the next try: a start-up
/// setting, a message type, a database or a user that the server or the
/// pooler does not accept.
fn refused_for_good(message: &str) -> bool {
    ["unsupported", "no such", "not allowed", "invalid startup"]
        .iter()
        .any(|m| message.contains(m))
}

/// The persistkit error for a SQLSTATE, before the server's words are
/// attached as its source.
fn by_code(code: &str) -> Error {
    match code {
        "23505" => Error::conflict(None, "a row with that key already exists"),
        "40001" | "40P01" => Error::unavailable("Postgres aborted the transaction; retry"),
        "55P03" => Error::unavailable("a lock was not available; retry"),
        "57014" => Error::unavailable("the statement timed out or was cancelled"),
        "25006" => Error::unavailable(
            "the server is read-only (a standby, or a primary demoted by a failover); \
             retry once the route reaches the primary",
        ),
        "25P03" => Error::unavailable("the server ended a transaction left idle too long"),
        "57P04" => Error::refused("the database was dropped"),
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
    use super::{by_code, by_code_and_message, pooled_statements};
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
            ("25006", ErrorKind::Unavailable),
            ("25P03", ErrorKind::Unavailable),
            ("40P01", ErrorKind::Unavailable),
            ("55P03", ErrorKind::Unavailable),
            ("57P02", ErrorKind::Unavailable),
            ("57P03", ErrorKind::Unavailable),
            ("57P05", ErrorKind::Unavailable),
            ("57P04", ErrorKind::Refused),
            ("08000", ErrorKind::Unavailable),
            ("08001", ErrorKind::Unavailable),
            ("08003", ErrorKind::Unavailable),
            ("08004", ErrorKind::Refused),
            ("53100", ErrorKind::Unavailable),
            ("53200", ErrorKind::Unavailable),
        ] {
            assert_eq!(by_code(code).kind(), kind, "{code}");
        }
    }

    #[test]
    fn a_pooler_losing_its_server_is_retryable_and_a_refused_setting_is_not() {
        for (message, kind) in [
            ("server conn crashed?", ErrorKind::Unavailable),
            ("invalid server parameter", ErrorKind::Unavailable),
            ("pgbouncer cannot connect to server", ErrorKind::Unavailable),
            ("unsupported startup parameter: options", ErrorKind::Refused),
            ("no such database: nope", ErrorKind::Refused),
        ] {
            assert_eq!(
                by_code_and_message("08P01", message).kind(),
                kind,
                "{message}"
            );
        }
    }

    #[test]
    fn prepared_statements_lost_to_a_pooler_are_named() {
        assert!(pooled_statements(
            "42P05",
            "prepared statement \"sqlx_s_1\" already exists"
        ));
        assert!(pooled_statements(
            "26000",
            "prepared statement \"sqlx_s_3\" does not exist"
        ));
        assert!(pooled_statements(
            "22021",
            "invalid byte sequence for encoding \"UTF8\": 0x00"
        ));
        assert!(!pooled_statements(
            "22021",
            "invalid byte sequence for encoding \"UTF8\": 0xe9 0x20"
        ));
        assert!(pooled_statements(
            "08P01",
            "bind message supplies 2 parameters, but prepared statement \"sqlx_s_4\" requires 6"
        ));
        assert!(!pooled_statements("08P01", "server conn crashed?"));
        assert!(!pooled_statements("23505", "duplicate key"));
        assert!(super::POOLER_HINT.contains("?prepared=false"));
    }
}
