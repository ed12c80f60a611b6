//! The Postgres backend: production, many processes, horizontal scale.
//!
//! ```no_run
//! # async fn f() -> persistkit_core::Result<()> {
//! use persistkit_postgres::PgStore;
//! let store = PgStore::open("postgres://app:secret@127.0.0.1:5432/app?max_connections=16").await?;
//! # Ok(()) }
//! ```
//!
//! Tables live in their own schema (default `persistkit`, `?schema=` to
//! change), names use `COLLATE "C"`, times are `timestamptz`, JSON is `jsonb`.
//! Event log positions are handed out under a per-namespace row lock, so they
//! follow commit order and `read_log` never skips a late commit. Migrations
//! run under an advisory lock, so concurrent processes migrate safely.
#![deny(missing_docs)]

mod admin;
mod batch;
mod config;
mod error;
mod events;
mod idempotency;
mod metrics;
mod records;
mod schema;
mod sql;
mod store;

pub use config::PgConfig;
pub use error::ServerError;
pub use schema::SCHEMA_VERSION;
pub use store::PgStore;
