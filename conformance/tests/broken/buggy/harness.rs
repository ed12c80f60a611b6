//! The harnesses that hand out the buggy store, on memory and on SQLite.

use super::*;

pub(crate) struct BuggyHarness(pub(crate) Bug);

/// Hooks whose "other schema" is this one.
pub(crate) struct MergedSchemaHooks(Arc<dyn Store>);

#[async_trait]
impl persistkit_conformance::FixtureHooks for MergedSchemaHooks {
    async fn connect(&self) -> Result<Arc<dyn Store>> {
        Ok(self.0.clone())
    }
    async fn sibling(&self) -> Option<Result<Arc<dyn Store>>> {
        Some(Ok(self.0.clone()))
    }
}

/// Hooks whose newer-schema refusal says "schema 10 is too new": a number,
/// but neither the code's version nor the database's.
pub(crate) struct VagueSchemaHooks(Arc<dyn Store>);

#[async_trait]
impl persistkit_conformance::FixtureHooks for VagueSchemaHooks {
    async fn connect(&self) -> Result<Arc<dyn Store>> {
        Ok(self.0.clone())
    }
    async fn open_with_newer_schema(&self) -> Option<Result<Arc<dyn Store>>> {
        Some(Err(Error::schema(
            "database schema 10 is too new for this code (see issue 21)",
        )))
    }
}

impl Buggy {
    pub(crate) fn new(inner: Arc<dyn Store>, bug: Bug) -> Self {
        Buggy {
            inner,
            bug,
            seen: Mutex::default(),
            claims: Mutex::default(),
            reserved: Default::default(),
            log: Mutex::default(),
            cache: Mutex::default(),
        }
    }

    /// Whether this bug is a read cache (one that forgets an invalidation).
    pub(crate) fn caches(&self) -> bool {
        matches!(
            self.bug,
            Bug::CacheForgetsClear | Bug::CacheForgetsDelete | Bug::CacheStoresStaleReads
        )
    }

    /// Drop cached reads: one record, or (`None`) all of them.
    pub(crate) fn forget(&self, key: Option<(&str, &str, &str)>) {
        let mut c = self.cache.lock().unwrap();
        match key {
            Some((ns, coll, id)) => {
                c.remove(&(ns.to_string(), coll.to_string(), id.to_string()));
            }
            None => c.clear(),
        }
    }
}

/// The bug over SQLite, whose data a second process can open: for the
/// cross-process and crash cases. The child entry below opens the same.
pub(crate) struct BuggySqlite(pub(crate) Bug);

#[async_trait]
impl Harness for BuggySqlite {
    fn name(&self) -> String {
        format!("buggy sqlite ({:?})", self.0)
    }
    async fn fresh(&self) -> std::result::Result<Fixture, SetupError> {
        let inner = persistkit_conformance::harnesses::SqliteHarness::new()
            .fresh()
            .await?;
        Ok(Fixture {
            store: Arc::new(Buggy::new(inner.store, self.0)),
            hooks: inner.hooks,
        })
    }
    async fn open_location(&self, location: &str) -> Result<Arc<dyn Store>> {
        let inner = persistkit_conformance::harnesses::SqliteHarness::new()
            .open_location(location)
            .await?;
        Ok(Arc::new(Buggy::new(inner, self.0)))
    }
}

#[async_trait]
impl Harness for BuggyHarness {
    fn name(&self) -> String {
        format!("buggy memory ({:?})", self.0)
    }
    async fn fresh(&self) -> std::result::Result<Fixture, SetupError> {
        let inner = MemoryHarness.fresh().await?.store;
        let store: Arc<dyn Store> = Arc::new(Buggy::new(inner, self.0));
        if self.0 == Bug::MergedSchemas {
            return Ok(Fixture {
                store: store.clone(),
                hooks: Box::new(MergedSchemaHooks(store)),
            });
        }
        if self.0 == Bug::VaguelyNewerSchema {
            return Ok(Fixture {
                store: store.clone(),
                hooks: Box::new(VagueSchemaHooks(store)),
            });
        }
        Ok(Fixture::shared(store))
    }
}

pub(crate) async fn outcome(bug: Bug, domain: &str, name: &str) -> (Status, String) {
    let case = all_cases()
        .into_iter()
        .find(|c| c.domain == domain && c.name == name)
        .expect("case exists");
    let r = run_case(Arc::new(BuggyHarness(bug)), &case).await;
    (r.status, r.message.unwrap_or_default())
}
