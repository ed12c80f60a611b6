//! How the suite gets stores: a [`Harness`] makes a fresh, isolated
//! [`Fixture`] for every case.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use persistkit_core::{Error, Result, Store};

/// Why a fixture could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupError {
    /// The backend cannot be reached here (e.g. no Docker); the case is
    /// reported as skipped with this reason, never as passed.
    Skip(String),
    /// Setting up failed; the case fails.
    Fail(String),
}

/// Makes fresh stores for the suite. Implement this to run the suite on your
/// backend.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// A label for reports, e.g. `sqlite` or `postgres (127.0.0.1:5432)`.
    fn name(&self) -> String;

    /// A fresh, empty, migrated store that no other case uses.
    async fn fresh(&self) -> Result<Fixture, SetupError>;

    /// Check once, before any case, that this harness can make fixtures
    /// at all, so a run can say why once instead of once per case: `Skip`
    /// when the backend cannot be reached here, `Fail` when it is set up so
    /// that no case could run (missing privileges). The default says yes.
    async fn preflight(&self) -> Result<(), SetupError> {
        Ok(())
    }

    /// Open the data a fixture's [`FixtureHooks::location`] names, in this
    /// process. The suite calls it in a second OS process (see
    /// [`child`](crate::child)) for the cross-process and crash cases; a
    /// backend that declares `shared_across_processes` must support it.
    /// The default says it cannot.
    ///
    /// # Contract
    /// - It opens the same data the fixture's store holds, without
    ///   migrating or emptying it.
    async fn open_location(&self, location: &str) -> Result<Arc<dyn Store>> {
        Err(Error::unsupported(format!(
            "the {} harness cannot open {location:?} from another process",
            self.name()
        )))
    }
}

#[async_trait]
impl Harness for Arc<dyn Harness> {
    fn name(&self) -> String {
        self.as_ref().name()
    }

    async fn fresh(&self) -> Result<Fixture, SetupError> {
        self.as_ref().fresh().await
    }

    async fn preflight(&self) -> Result<(), SetupError> {
        self.as_ref().preflight().await
    }

    async fn open_location(&self, location: &str) -> Result<Arc<dyn Store>> {
        self.as_ref().open_location(location).await
    }
}

/// One case's store, with hooks for the cases that need more than one handle.
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// What else this harness can do with the same data.
    pub hooks: Box<dyn FixtureHooks>,
}

impl Fixture {
    /// A fixture with no hooks beyond `connect`, which returns `store` again.
    pub fn shared(store: Arc<dyn Store>) -> Self {
        Fixture {
            hooks: Box::new(SameStore(store.clone())),
            store,
        }
    }
}

struct SameStore(Arc<dyn Store>);

#[async_trait]
impl FixtureHooks for SameStore {
    async fn connect(&self) -> Result<Arc<dyn Store>> {
        Ok(self.0.clone())
    }
}

/// Optional abilities of a fixture. Only `connect` is required.
#[async_trait]
pub trait FixtureHooks: Send + Sync {
    /// A second handle on the same data, as independent as the backend allows
    /// (its own pool for SQL backends). The race cases use it.
    async fn connect(&self) -> Result<Arc<dyn Store>>;

    /// Close the store and open the same data again, as a restarted
    /// process would. `None` when the harness cannot.
    ///
    /// # Contract
    /// Required when the backend declares `durable`: the durability and
    /// crash cases fail without it. The returned store holds exactly what
    /// was acknowledged before.
    async fn reopen(&self) -> Option<Result<Arc<dyn Store>>> {
        None
    }

    /// Where this fixture's data lives, as a string that
    /// [`Harness::open_location`] opens again in another OS process (a file
    /// path, a connection URL). `None` when the data cannot be reached from
    /// another process.
    ///
    /// # Contract
    /// Required when the backend declares `shared_across_processes`: the
    /// cross-process case fails without it.
    fn location(&self) -> Option<String> {
        None
    }

    /// A second store on the same database as this fixture's, kept apart by
    /// the backend's own means (Postgres: another schema), empty and
    /// migrated. `None` when the backend has no such means.
    ///
    /// # Contract
    /// It connects the way the fixture does (through the same pooler, with
    /// the same options), so the case sees what production would.
    async fn sibling(&self) -> Option<Result<Arc<dyn Store>>> {
        None
    }

    /// Crash the database underneath abruptly (kill the server, not a clean
    /// shutdown) and bring it back, for the crash case, which has just
    /// killed its writer process. `None` when the harness cannot, or when
    /// the data lives in the writer's process alone (an embedded file).
    async fn crash(&self) -> Option<Result<()>> {
        None
    }

    /// Open a native backup written to `path`. `None` when the harness cannot.
    async fn open_backup(&self, path: &Path) -> Option<Result<Arc<dyn Store>>> {
        let _ = path;
        None
    }

    /// Mark the database as migrated by newer code, open it again, and return
    /// what opening said. `None` when the backend has no stored schema.
    ///
    /// # Contract
    /// The stored schema version must become exactly the version this code
    /// expects plus one; the case checks that the `Schema` error names both
    /// numbers.
    async fn open_with_newer_schema(&self) -> Option<Result<Arc<dyn Store>, Error>> {
        None
    }

    /// Release what the fixture made (pools, databases on a shared server).
    /// Called once the case has ended, whatever its outcome.
    async fn cleanup(&self) {}
}
