//! Embedded, versioned migrations.

use persistkit_core::{Error, Result, SchemaVersions};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::map;

/// The schema version this code expects.
pub const SCHEMA_VERSION: u32 = 4;

const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_events_by_kind.sql")),
    (
        3,
        include_str!("../migrations/0003_record_indexes_and_expiry.sql"),
    ),
    (
        4,
        include_str!("../migrations/0004_idempotency_fingerprints.sql"),
    ),
];

const HAS_SCHEMA_TABLE: &str =
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'persistkit_schema'";
const CREATE_SCHEMA_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS persistkit_schema (version INTEGER NOT NULL)";
const READ_VERSION: &str = "SELECT version FROM persistkit_schema";
const INSERT_VERSION: &str = "INSERT INTO persistkit_schema (version) VALUES (0)";
const WRITE_VERSION: &str = "UPDATE persistkit_schema SET version = ?";

fn too_new(current: u32) -> Error {
    Error::schema(format!(
        "database schema version {current} is newer than this code's version {SCHEMA_VERSION}; \
         upgrade persistkit before opening it"
    ))
}

/// The version the database is at (0 when never migrated).
pub(crate) fn current(c: &Connection) -> Result<u32> {
    let has: i64 = c
        .query_row(HAS_SCHEMA_TABLE, [], |r| r.get(0))
        .map_err(map)?;
    if has == 0 {
        return Ok(0);
    }
    let v: Option<i64> = c
        .query_row(READ_VERSION, [], |r| r.get(0))
        .optional()
        .map_err(map)?;
    Ok(v.unwrap_or(0) as u32)
}

/// For a store opened without migrating: the file must be at exactly this
/// code's version.
///
/// # Errors
/// `Schema` when it is newer, older, or not migrated at all.
pub(crate) fn require_current(c: &mut Connection) -> Result<SchemaVersions> {
    let current = current(c)?;
    if current > SCHEMA_VERSION {
        return Err(too_new(current));
    }
    if current < SCHEMA_VERSION {
        return Err(Error::schema(format!(
            "the SQLite file is at schema version {current} and this code needs version \
             {SCHEMA_VERSION}: run `persistkit migrate` (or open with migrate=true), then open it again"
        )));
    }
    Ok(SchemaVersions {
        current,
        expected: SCHEMA_VERSION,
    })
}

/// Apply pending migrations in one IMMEDIATE transaction, so two processes
/// migrating at once serialize on SQLite's write lock and the second finds
/// nothing to do. A file already at this code's version is only read: no
/// write lock, so migrating an up-to-date store never waits on a writer.
pub(crate) fn migrate(c: &mut Connection) -> Result<SchemaVersions> {
    if let Ok(SCHEMA_VERSION) = current(c) {
        return Ok(SchemaVersions {
            current: SCHEMA_VERSION,
            expected: SCHEMA_VERSION,
        });
    }
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map)?;
    tx.execute(CREATE_SCHEMA_TABLE, []).map_err(map)?;
    let v: Option<i64> = tx
        .query_row(READ_VERSION, [], |r| r.get(0))
        .optional()
        .map_err(map)?;
    let mut current = match v {
        Some(v) => v as u32,
        None => {
            tx.execute(INSERT_VERSION, []).map_err(map)?;
            0
        }
    };
    if current > SCHEMA_VERSION {
        return Err(too_new(current));
    }
    let from = current;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        tx.execute_batch(sql)
            .map_err(|e| Error::schema(format!("migration {version} failed")).with_source(e))?;
        tx.execute(WRITE_VERSION, [*version as i64]).map_err(map)?;
        tracing::info!(version, "applied SQLite migration");
        current = *version;
    }
    tx.commit().map_err(map)?;
    Ok(SchemaVersions {
        current,
        expected: SCHEMA_VERSION,
    })
}
