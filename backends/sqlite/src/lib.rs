//! The SQLite backend: one database file in WAL mode, zero set-up.
//!
//! ```no_run
//! # async fn f() -> persistkit_core::Result<()> {
//! use persistkit_sqlite::SqliteStore;
//! let store = SqliteStore::open("sqlite://data/persistkit.db?max_connections=8").await?;
//! # Ok(()) }
//! ```
//!
//! Capabilities: durable, shared across processes (SQLite file locking), and
//! native backup (`VACUUM INTO`). The schema is in `migrations/` and described
//! in the project README.
#![deny(missing_docs)]

mod admin;
mod batch;
mod config;
mod error;
mod events;
mod idempotency;
mod metrics;
#[cfg(test)]
mod plans;
mod pool;
mod records;
mod schema;
mod sql;
mod store;

pub use config::SqliteConfig;
pub use pool::register_index_key;
pub use schema::SCHEMA_VERSION;
pub use store::SqliteStore;

/// The SQLite driver, for [`SqliteStore::with_connection`].
pub use rusqlite;
