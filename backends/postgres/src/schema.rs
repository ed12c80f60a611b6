//! Embedded, versioned migrations, safe when processes migrate at once.

use persistkit_core::{Error, ErrorKind, Result, SchemaVersions};
use sqlx::{AssertSqlSafe, PgPool};

use crate::error::map;

/// The schema version this code expects.
pub const SCHEMA_VERSION: u32 = 1;

const MIGRATIONS: &[(u32, &str)] = &[(1, include_str!("../migrations/0001_init.sql"))];

const HAS_SCHEMA_TABLE: &str = "SELECT to_regclass('persistkit_schema') IS NOT NULL";
const CREATE_SCHEMA_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS persistkit_schema (version integer NOT NULL)";
const READ_VERSION: &str = "SELECT version FROM persistkit_schema";
const INSERT_VERSION: &str = "INSERT INTO persistkit_schema (version) VALUES (0)";
const WRITE_VERSION: &str = "UPDATE persistkit_schema SET version = $1";

fn too_new(current: u32) -> Error {
    Error::schema(format!(
        "database schema version {current} is newer than this code's version {SCHEMA_VERSION}; \
         upgrade persistkit before opening it"
    ))
}

/// The version the database is at (0 when never migrated).
pub(crate) async fn current(pool: &PgPool) -> Result<u32> {
    let has: bool = sqlx::query_scalar(HAS_SCHEMA_TABLE)
        .fetch_one(pool)
        .await
        .map_err(map)?;
    if !has {
        return Ok(0);
    }
    let v: Option<i32> = sqlx::query_scalar(READ_VERSION)
        .fetch_optional(pool)
        .await
        .map_err(map)?;
    Ok(v.unwrap_or(0) as u32)
}

/// Refuse a database newer than the code.
pub(crate) async fn check(pool: &PgPool) -> Result<SchemaVersions> {
    let current = current(pool).await?;
    if current > SCHEMA_VERSION {
        return Err(too_new(current));
    }
    Ok(SchemaVersions {
        current,
        expected: SCHEMA_VERSION,
    })
}

/// Apply pending migrations in one transaction under an advisory lock keyed
/// on the schema: a second process waits, then finds nothing to do.
///
/// A migration the server refuses (a reserved schema name, missing
/// privileges, …) is a `Schema` error; a server that does not answer stays
/// `Unavailable`.
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> Result<SchemaVersions> {
    migrate_in_tx(pool, schema)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::Unavailable | ErrorKind::Closed | ErrorKind::Schema => e,
            _ => Error::schema(format!(
                "migrating schema {schema:?} failed: {}",
                e.message()
            ))
            .with_source(e),
        })
}

async fn migrate_in_tx(pool: &PgPool, schema: &str) -> Result<SchemaVersions> {
    let mut tx = pool.begin().await.map_err(map)?;
    // The schema name was checked to be [a-z0-9_]+ when the config was made.
    let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
    // Take the lock before creating the schema, keyed on the name we will use.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('persistkit-migrate:' || $1))")
        .bind(schema)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    sqlx::query(AssertSqlSafe(create))
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    sqlx::query(CREATE_SCHEMA_TABLE)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    let v: Option<i32> = sqlx::query_scalar(READ_VERSION)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map)?;
    let mut current = match v {
        Some(v) => v as u32,
        None => {
            sqlx::query(INSERT_VERSION)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            0
        }
    };
    if current > SCHEMA_VERSION {
        return Err(too_new(current));
    }
    let from = current;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::schema(format!("migration {version} failed")).with_source(e))?;
        sqlx::query(WRITE_VERSION)
            .bind(*version as i32)
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
