//! Embedded, versioned migrations, safe when processes migrate at once.
//!
//! Opening a store whose schema is up to date only reads the version, so a
//! runtime role needs no CREATE privilege. Every statement names the schema
//! in full and runs inside a transaction with unnamed statements, so it
//! works behind any pooler.

use persistkit_core::{Error, ErrorKind, Result, SchemaVersions};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};

use crate::error::map;

/// The schema version this code expects.
pub const SCHEMA_VERSION: u32 = 6;

const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (
        2,
        include_str!("../migrations/0002_events_by_kind_and_append.sql"),
    ),
    (
        3,
        include_str!("../migrations/0003_append_unless_duplicate.sql"),
    ),
    (
        4,
        include_str!("../migrations/0004_record_indexes_and_expiry.sql"),
    ),
    (
        5,
        include_str!("../migrations/0005_append_without_search_path.sql"),
    ),
    (
        6,
        include_str!("../migrations/0006_idempotency_fingerprints.sql"),
    ),
];

fn too_new(schema: &str, current: u32) -> Error {
    Error::schema(format!(
        "database schema {schema:?} is at version {current}, newer than this code's version \
         {SCHEMA_VERSION}; upgrade persistkit before opening it"
    ))
}

fn quoted(schema: &str) -> String {
    // The name was checked to be [a-z_][a-z0-9_]* when the config was made.
    format!("\"{schema}\"")
}

/// The version in `tx` (0 when never migrated).
async fn read_version(tx: &mut Transaction<'static, Postgres>, schema: &str) -> Result<u32> {
    let has: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{}.persistkit_schema", quoted(schema)))
        .persistent(false)
        .fetch_one(&mut **tx)
        .await
        .map_err(map)?;
    if !has {
        return Ok(0);
    }
    let sql = format!("SELECT version FROM {}.persistkit_schema", quoted(schema));
    let v: Option<i32> = sqlx::query_scalar(AssertSqlSafe(sql))
        .persistent(false)
        .fetch_optional(&mut **tx)
        .await
        .map_err(map)?;
    Ok(v.map_or(0, |v| u32::try_from(v).unwrap_or(0)))
}

/// The version the database is at (0 when never migrated).
pub(crate) async fn current(pool: &PgPool, schema: &str) -> Result<u32> {
    let mut tx = pool.begin().await.map_err(map)?;
    let v = read_version(&mut tx, schema).await?;
    tx.commit().await.map_err(map)?;
    Ok(v)
}

/// For a store opened without migrating: the schema must be exactly what
/// this code expects.
///
/// # Errors
/// `Schema` when the database is newer, older or not migrated at all.
pub(crate) async fn require_current(pool: &PgPool, schema: &str) -> Result<SchemaVersions> {
    let current = current(pool, schema).await?;
    if current > SCHEMA_VERSION {
        return Err(too_new(schema, current));
    }
    if current < SCHEMA_VERSION {
        return Err(Error::schema(format!(
            "database schema {schema:?} is at version {current} and this code needs version \
             {SCHEMA_VERSION}: run `persistkit migrate` (or open with migrate=true) as a role \
             that may create tables, then open it again"
        )));
    }
    Ok(SchemaVersions {
        current,
        expected: SCHEMA_VERSION,
    })
}

/// Apply pending migrations in one transaction under an advisory lock keyed
/// on the schema: a second process waits, then finds nothing to do. With
/// nothing pending it changes nothing and needs no CREATE privilege.
///
/// A migration the server refuses (a reserved schema name, missing
/// privileges, …) is a `Schema` error; a server that does not answer stays
/// `Unavailable`.
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> Result<SchemaVersions> {
    let up_to_date = async {
        let current = current(pool, schema).await?;
        if current > SCHEMA_VERSION {
            return Err(too_new(schema, current));
        }
        Ok(current == SCHEMA_VERSION)
    };
    let outcome = match up_to_date.await {
        Ok(true) => Ok(SchemaVersions {
            current: SCHEMA_VERSION,
            expected: SCHEMA_VERSION,
        }),
        Ok(false) => migrate_in_tx(pool, schema).await,
        Err(e) => Err(e),
    };
    outcome.map_err(|e| match e.kind() {
        ErrorKind::Unavailable | ErrorKind::Closed | ErrorKind::Schema => e,
        _ => Error::schema(format!(
            "migrating schema {schema:?} failed: {}",
            e.message()
        ))
        .with_source(e),
    })
}

async fn migrate_in_tx(pool: &PgPool, schema: &str) -> Result<SchemaVersions> {
    let q = quoted(schema);
    let mut tx = pool.begin().await.map_err(map)?;
    // Take the lock before creating anything, keyed on the schema's name.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('persistkit-migrate:' || $1))")
        .bind(schema)
        .persistent(false)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    // The migration files name tables without a schema; SET LOCAL lasts
    // only as long as this transaction, so no session keeps it.
    for stmt in [
        format!("CREATE SCHEMA IF NOT EXISTS {q}"),
        format!("SET LOCAL search_path TO {q}"),
        format!("CREATE TABLE IF NOT EXISTS {q}.persistkit_schema (version integer NOT NULL)"),
    ] {
        sqlx::raw_sql(AssertSqlSafe(stmt))
            .execute(&mut *tx)
            .await
            .map_err(map)?;
    }
    let mut current = read_version(&mut tx, schema).await?;
    if current > SCHEMA_VERSION {
        return Err(too_new(schema, current));
    }
    let fresh: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {q}.persistkit_schema"
    )))
    .persistent(false)
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    if fresh == 0 {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "INSERT INTO {q}.persistkit_schema (version) VALUES (0)"
        )))
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    }
    let from = current;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(|e| {
            Error::schema(format!("migration {version} failed")).with_source(map(e))
        })?;
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {q}.persistkit_schema SET version = $1"
        )))
        .bind(*version as i32)
        .persistent(false)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        tracing::info!(version, schema, "applied Postgres migration");
        current = *version;
    }
    tx.commit().await.map_err(map)?;
    Ok(SchemaVersions {
        current,
        expected: SCHEMA_VERSION,
    })
}
