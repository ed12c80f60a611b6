//! persistkit: the persistence layer for a service's operational data —
//! metrics, an append-only event log, idempotency keys and versioned JSON
//! records — behind one contract, with one conformance suite.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> persistkit::Result<()> {
//! use persistkit::{Expect, Timestamp};
//! use serde_json::json;
//!
//! let store = persistkit::open("memory://").await?;
//! let jobs = store.namespace("acme")?;
//! let rec = jobs.put("jobs", "42", &json!({"state": "queued"}), Expect::Absent).await?;
//! assert_eq!(rec.version, 1);
//! # Ok(()) }
//! ```
//!
//! See [`Handle`] for the calls and `persistkit_core` for the contract.
#![deny(missing_docs)]

use std::sync::Arc;

mod env;

pub use persistkit_core::*;
pub use persistkit_group_commit::GroupCommit;
pub use persistkit_observe::{Observed, ObserverConfig};
pub use persistkit_recorder::{
    Counter, Gauge, MetricsFacade, Overflow, Recorded, Recorder, RecorderConfig,
};

#[cfg(feature = "memory")]
pub use persistkit_memory as memory;
#[cfg(feature = "postgres")]
pub use persistkit_postgres as postgres;
#[cfg(feature = "sqlite")]
pub use persistkit_sqlite as sqlite;

/// The embedded default store: a SQLite file under `./data/`.
pub const DEFAULT_URL: &str = "sqlite://data/persistkit.db";

/// How to open a store. Non-exhaustive, so a new option never breaks a
/// caller: start from [`OpenOptions::new`] (or `default()`) and set what
/// you need, `OpenOptions::new().group_commit(false)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Apply pending migrations on open (default true). When false, a
    /// database newer than the code is still refused.
    pub migrate: bool,
    /// Commit concurrent appends to one namespace together through the
    /// [`GroupCommit`] layer (default true for SQLite and Postgres).
    pub group_commit: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            migrate: true,
            group_commit: true,
        }
    }
}

impl OpenOptions {
    /// The defaults: migrate, and commit appends in groups.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply pending migrations on open, or only check the schema.
    pub fn migrate(mut self, yes: bool) -> Self {
        self.migrate = yes;
        self
    }

    /// Put the [`GroupCommit`] layer in front of SQLite and Postgres.
    pub fn group_commit(mut self, yes: bool) -> Self {
        self.group_commit = yes;
        self
    }
}

/// Open a store from a URL and return a handle in the `default` namespace,
/// migrating it.
///
/// | URL | backend | cargo feature |
/// | --- | --- | --- |
/// | `memory://` | in process memory | `memory` (default) |
/// | `sqlite://path/to/file.db?max_connections=8` | one SQLite file | `sqlite` (default) |
/// | `postgres://user:pass@host/db?schema=persistkit` | a Postgres server | `postgres` |
///
/// # Errors
/// `InvalidInput` for a URL no enabled backend understands; whatever the
/// backend says when opening fails (`Unavailable`, `Schema`).
pub async fn open(url: &str) -> Result<Handle> {
    open_with(url, OpenOptions::default()).await
}

/// [`open`] with options.
///
/// # Errors
/// As [`open`].
pub async fn open_with(url: &str, options: OpenOptions) -> Result<Handle> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    let store: Arc<dyn Store> = match scheme {
        #[cfg(feature = "memory")]
        "memory" => Arc::new(persistkit_memory::MemoryStore::new()),
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let config = persistkit_sqlite::SqliteConfig::from_url(url)?;
            let config = if options.migrate {
                config
            } else {
                config.migrate(false)
            };
            grouped(
                Arc::new(persistkit_sqlite::SqliteStore::connect(config).await?),
                options,
            )
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            let config = persistkit_postgres::PgConfig::from_url(url)?;
            let config = if options.migrate {
                config
            } else {
                config.migrate(false)
            };
            grouped(
                Arc::new(persistkit_postgres::PgStore::connect(config).await?),
                options,
            )
        }
        _ => {
            return Err(Error::invalid(format!(
                "unsupported store URL {:?}: expected one of {}",
                redact(url),
                supported_schemes().join(", ")
            )))
        }
    };
    Ok(Handle::new(store))
}

/// `store` behind the group-commit layer, when `options` asks for it.
#[allow(dead_code)] // unused when only the memory backend is compiled in
fn grouped(store: Arc<dyn Store>, options: OpenOptions) -> Arc<dyn Store> {
    if options.group_commit {
        GroupCommit::wrap(store)
    } else {
        store
    }
}

/// Open a store only to look at it, for a health report: nothing is
/// migrated, created or changed (a missing SQLite file is an error, not a
/// new file), and an unmigrated or older schema opens so that `health`
/// can say `degraded` with the pending migrations.
///
/// # Errors
/// As [`open`], without the schema errors.
pub async fn inspect(url: &str) -> Result<Handle> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    let store: Arc<dyn Store> = match scheme {
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let config = persistkit_sqlite::SqliteConfig::from_url(url)?.inspect();
            Arc::new(persistkit_sqlite::SqliteStore::connect(config).await?)
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            let config = persistkit_postgres::PgConfig::from_url(url)?.inspect();
            Arc::new(persistkit_postgres::PgStore::connect(config).await?)
        }
        _ => return open_with(url, OpenOptions::new().migrate(false)).await,
    };
    Ok(Handle::new(store))
}

/// The URL [`from_env`] uses: `PERSISTKIT_DATABASE_URL`, else `DATABASE_URL`,
/// else [`DEFAULT_URL`].
pub fn url_from_env() -> String {
    ["PERSISTKIT_DATABASE_URL", "DATABASE_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

/// Open the store named by the environment (see [`url_from_env`]).
///
/// # Errors
/// As [`open`].
pub async fn from_env() -> Result<Handle> {
    open(&url_from_env()).await
}

/// The URL an application's own variables describe: `{prefix}TYPE`
/// (`memory`, `sqlite`, `postgres`), `{prefix}URI` (a whole store URL),
/// `{prefix}PATH` (the SQLite file) and `{prefix}POOL_SIZE` (the URL's
/// `max_connections`). Empty values count as unset; with none set, the
/// embedded default [`DEFAULT_URL`].
///
/// # Errors
/// `InvalidInput` naming the variable, for an unknown type, a pool size
/// that is not a whole number of 1 or more, or settings that disagree (a
/// type and a URI of another scheme, both a URI and a path, a type with
/// neither).
pub fn url_from_env_prefixed(prefix: &str) -> Result<String> {
    env::url_from_vars(prefix, |k| std::env::var(k).ok())
}

/// Open the store an application's own variables describe, for example
/// `from_env_prefixed("FL_")` with `FL_TYPE=sqlite FL_PATH=data/fl.db
/// FL_POOL_SIZE=4` (see [`url_from_env_prefixed`]).
///
/// # Errors
/// As [`url_from_env_prefixed`], then as [`open`].
pub async fn from_env_prefixed(prefix: &str) -> Result<Handle> {
    open(&url_from_env_prefixed(prefix)?).await
}

/// The URL schemes this build understands.
#[allow(clippy::vec_init_then_push)] // one push per enabled feature
pub fn supported_schemes() -> Vec<&'static str> {
    let mut v = Vec::new();
    #[cfg(feature = "memory")]
    v.push("memory://");
    #[cfg(feature = "sqlite")]
    v.push("sqlite://PATH");
    #[cfg(feature = "postgres")]
    v.push("postgres://USER:PASSWORD@HOST:PORT/DB");
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_scheme_is_invalid_input() {
        let e = open("nope://x").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("memory://"), "{e}");
    }

    #[tokio::test]
    async fn opens_sqlite_files_and_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/store.db", dir.path().display());
        let h = open(&url).await.unwrap();
        h.put("c", "id", &serde_json::json!({"a": 1}), Expect::Absent)
            .await
            .unwrap();
        h.store().close().await;
        let again = open(&url).await.unwrap();
        assert_eq!(again.get("c", "id").await.unwrap().unwrap().version, 1);
        assert_eq!(again.store().backend_name(), "sqlite");
    }

    #[test]
    fn env_url_precedence() {
        // One test touches the environment, so no other test races it.
        std::env::remove_var("PERSISTKIT_DATABASE_URL");
        std::env::remove_var("DATABASE_URL");
        assert_eq!(url_from_env(), DEFAULT_URL);
        std::env::set_var("DATABASE_URL", "memory://");
        assert_eq!(url_from_env(), "memory://");
        std::env::set_var("PERSISTKIT_DATABASE_URL", "sqlite://x.db");
        assert_eq!(url_from_env(), "sqlite://x.db");
        std::env::remove_var("PERSISTKIT_DATABASE_URL");
        std::env::remove_var("DATABASE_URL");
    }
}
