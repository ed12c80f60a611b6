//! The one place Postgres errors become persistkit errors, by SQLSTATE.

use persistkit_core::Error;

/// Map a sqlx error, keeping it whole as the source.
pub(crate) fn map(e: sqlx::Error) -> Error {
    let base = match &e {
        sqlx::Error::PoolTimedOut => {
            Error::unavailable("timed out waiting for a Postgres connection")
        }
        sqlx::Error::PoolClosed => Error::closed("the Postgres store is closed"),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Error::unavailable("the connection to Postgres failed"),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                "23505" => Error::conflict(None, "a row with that key already exists"),
                // serialization failure, deadlock, lock not available, query canceled (statement timeout)
                "40001" | "40P01" | "55P03" | "57014" => {
                    Error::unavailable("Postgres aborted the statement; retry")
                }
                // connection exceptions, operator intervention, insufficient resources
                c if c.starts_with("08") || c.starts_with("57P") || c.starts_with("53") => {
                    Error::unavailable("Postgres is unavailable")
                }
                c if c.starts_with("28") => Error::internal("Postgres refused the credentials"),
                "3D000" => Error::internal("the Postgres database does not exist"),
                _ => Error::internal(format!("Postgres reported an error (SQLSTATE {code})")),
            }
        }
        _ => Error::internal("Postgres driver error"),
    };
    base.with_source(e)
}
