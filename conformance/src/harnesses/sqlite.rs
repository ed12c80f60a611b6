use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use persistkit_core::{Error, Result, Store};
use persistkit_sqlite::{SqliteConfig, SqliteStore};

use crate::harness::{Fixture, FixtureHooks, Harness, SetupError};

/// Each fixture is a new SQLite file in its own temporary directory, removed
/// when the case ends. The second handle is a second pool on the same file.
#[derive(Debug, Clone)]
pub struct SqliteHarness {
    template: SqliteConfig,
}

impl SqliteHarness {
    /// Default pool options.
    pub fn new() -> Self {
        SqliteHarness {
            template: SqliteConfig::new("unused.db"),
        }
    }

    /// Pool options from a `sqlite://` URL; its path is ignored, because every
    /// case gets a fresh file.
    ///
    /// # Errors
    /// `InvalidInput` for a bad URL.
    pub fn from_url(url: &str) -> Result<Self> {
        Ok(SqliteHarness {
            template: SqliteConfig::from_url(url)?,
        })
    }
}

impl Default for SqliteHarness {
    fn default() -> Self {
        Self::new()
    }
}

struct SqliteHooks {
    _dir: tempfile::TempDir,
    config: SqliteConfig,
    first: SqliteStore,
}

impl SqliteHooks {
    fn at(&self, path: &Path) -> SqliteConfig {
        self.config.clone().path(path)
    }
}

#[async_trait]
impl FixtureHooks for SqliteHooks {
    async fn connect(&self) -> Result<Arc<dyn Store>> {
        Ok(Arc::new(
            SqliteStore::connect(self.config.clone().migrate(false)).await?,
        ))
    }

    async fn reopen(&self) -> Option<Result<Arc<dyn Store>>> {
        use persistkit_core::AdminStore;
        self.first.close().await;
        Some(
            SqliteStore::connect(self.config.clone())
                .await
                .map(|s| Arc::new(s) as Arc<dyn Store>),
        )
    }

    fn location(&self) -> Option<String> {
        self.config.path.to_str().map(str::to_string)
    }

    async fn open_backup(&self, path: &Path) -> Option<Result<Arc<dyn Store>>> {
        Some(
            SqliteStore::connect(self.at(path).create(false))
                .await
                .map(|s| Arc::new(s) as Arc<dyn Store>),
        )
    }

    async fn open_with_newer_schema(&self) -> Option<Result<Arc<dyn Store>, Error>> {
        let bump = self
            .first
            .with_connection(|c| {
                c.execute("UPDATE persistkit_schema SET version = version + 1", [])
            })
            .await;
        if let Err(e) = bump {
            return Some(Err(
                Error::internal("could not bump the schema version").with_source(e)
            ));
        }
        Some(
            SqliteStore::connect(self.config.clone())
                .await
                .map(|s| Arc::new(s) as Arc<dyn Store>),
        )
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    fn name(&self) -> String {
        "sqlite".into()
    }

    async fn open_location(&self, location: &str) -> Result<Arc<dyn Store>> {
        let config = self
            .template
            .clone()
            .path(location)
            .migrate(false)
            .create(false);
        Ok(Arc::new(SqliteStore::connect(config).await?))
    }

    async fn fresh(&self) -> std::result::Result<Fixture, SetupError> {
        let dir = tempfile::Builder::new()
            .prefix("persistkit-check-")
            .tempdir()
            .map_err(|e| SetupError::Fail(format!("temporary directory: {e}")))?;
        let path: PathBuf = dir.path().join("store.db");
        let config = self.template.clone().path(path).migrate(true).create(true);
        let first = SqliteStore::connect(config.clone())
            .await
            .map_err(|e| SetupError::Fail(persistkit_core::error_chain(&e)))?;
        Ok(Fixture {
            store: Arc::new(first.clone()),
            hooks: Box::new(SqliteHooks {
                _dir: dir,
                config,
                first,
            }),
        })
    }
}
