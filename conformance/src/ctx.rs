//! What a case gets: a fresh store, a manual clock, and ways to get more.

use std::sync::Arc;
use std::time::Duration;

use persistkit_core::{Capabilities, Clock, Handle, ManualClock, Store, Timestamp};

use crate::child::{MaybeChild, Running};
use crate::harness::{Fixture, Harness, SetupError};
use crate::outcome::CaseError;
use crate::trace::{CallLog, Traced};

pub use crate::clock::START;

/// The context of one case.
pub struct Ctx {
    harness: Arc<dyn Harness>,
    child: MaybeChild,
    fixture: Fixture,
    /// The fixture's store, its calls noted in `log`.
    store: Arc<dyn Store>,
    log: Arc<CallLog>,
    others: std::sync::Mutex<Vec<Fixture>>,
    clock: ManualClock,
}

impl Ctx {
    /// A context on a fresh fixture from `harness`.
    ///
    /// # Errors
    /// Whatever the harness says.
    pub async fn new(harness: Arc<dyn Harness>) -> Result<Self, SetupError> {
        Self::with_child(harness, None).await
    }

    /// A context that can start `child` as a second OS process.
    ///
    /// # Errors
    /// Whatever the harness says.
    pub async fn with_child(
        harness: Arc<dyn Harness>,
        child: MaybeChild,
    ) -> Result<Self, SetupError> {
        Self::noting(harness, child, Arc::default()).await
    }

    /// A context noting every store call its cases make in `log`.
    pub(crate) async fn noting(
        harness: Arc<dyn Harness>,
        child: MaybeChild,
        log: Arc<CallLog>,
    ) -> Result<Self, SetupError> {
        let fixture = harness.fresh().await?;
        let store = Traced::wrap(fixture.store.clone(), &log);
        Ok(Ctx {
            harness,
            child,
            fixture,
            store,
            log,
            others: std::sync::Mutex::new(Vec::new()),
            clock: ManualClock::new(Timestamp::from_secs(START).expect("in range")),
        })
    }

    /// The fixture.
    pub fn fixture(&self) -> &Fixture {
        &self.fixture
    }

    /// The store under test (its calls noted for a failure message).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// What a passing case reports of itself, such as how much it
    /// checked: the report shows it as the case's message.
    pub fn note(&self, note: impl Into<String>) {
        self.log.set_note(note.into());
    }

    /// A handle in the default namespace, on the case's manual clock.
    pub fn handle(&self) -> Handle {
        self.on_clock(self.store.clone())
    }

    /// A handle in namespace `ns`.
    pub fn ns(&self, ns: &str) -> Handle {
        self.handle()
            .namespace(ns)
            .expect("valid namespace in a case")
    }

    /// A handle on a second connection to the same data.
    ///
    /// # Errors
    /// `Failed` when the harness cannot connect.
    pub async fn second(&self) -> Result<Handle, CaseError> {
        let s = self.fixture.hooks.connect().await?;
        Ok(self.wrap(s))
    }

    /// A handle on another fresh, empty store of the same backend, cleaned
    /// up with this context.
    ///
    /// # Errors
    /// `Skipped` or `Failed` as the harness says.
    pub async fn other_store(&self) -> Result<Handle, CaseError> {
        let f = self.harness.fresh().await.map_err(|e| match e {
            SetupError::Skip(m) => CaseError::Skipped(m),
            SetupError::Fail(m) => CaseError::Failed(format!("setting up a second store: {m}")),
        })?;
        let h = self.wrap(f.store.clone());
        self.others
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(f);
        Ok(h)
    }

    /// Release every fixture of this context.
    pub async fn cleanup(self) {
        let others = std::mem::take(&mut *self.others.lock().unwrap_or_else(|p| p.into_inner()));
        for f in others {
            f.hooks.cleanup().await;
        }
        self.fixture.hooks.cleanup().await;
    }

    /// Wrap any store in a handle on this case's clock. Its calls are
    /// noted, as the fixture's are, for a failure message.
    pub fn wrap(&self, store: Arc<dyn Store>) -> Handle {
        self.on_clock(Traced::wrap(store, &self.log))
    }

    fn on_clock(&self, store: Arc<dyn Store>) -> Handle {
        Handle::new(store).with_clock(Arc::new(self.clock.clone()))
    }

    /// The case's clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// Move the clock forward.
    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// Set the clock.
    pub fn set_now(&self, t: Timestamp) {
        self.clock.set(t);
    }

    /// Start the second OS process on this fixture's data, running `task`.
    ///
    /// # Errors
    /// `Failed` when the harness gives no location for a backend that
    /// declares `shared_across_processes`; `Skipped` when this run cannot
    /// start a second process at all.
    pub(crate) async fn start_child(&self, task: &str) -> Result<Running, CaseError> {
        let Some(location) = self.fixture.hooks.location() else {
            return Err(CaseError::failed(
                "capabilities: the backend declares shared_across_processes, but its harness \
                 gives no location (FixtureHooks::location) a second process could open",
            ));
        };
        let Some(command) = &self.child else {
            return Err(CaseError::Skipped(
                "this run has no way to start a second process (run the suite through \
                 suite! or `persistkit check`)"
                    .into(),
            ));
        };
        Running::start(command, &location, task, self.clock.now()).await
    }

    /// What the backend declares.
    pub fn capabilities(&self) -> Capabilities {
        self.fixture.store.capabilities()
    }

    /// `Unsupported` unless the store declares every optional part named
    /// (`indexes`, `unique_indexes`, `record_ttl`, `batches`): a case of an
    /// optional part runs only where that part is declared, and is reported
    /// unsupported, never passed, elsewhere.
    pub fn needs(&self, parts: &[&str]) -> Result<(), CaseError> {
        let c = self.capabilities();
        let missing: Vec<&str> = parts.iter().copied().filter(|p| !declares(&c, p)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(CaseError::Unsupported(format!(
            "needs `{}`, which the store does not declare",
            missing.join("`, `")
        )))
    }

    /// Whether the store declares the optional part `part`.
    pub fn declares(&self, part: &str) -> bool {
        declares(&self.capabilities(), part)
    }
}

fn declares(c: &Capabilities, part: &str) -> bool {
    match part {
        "indexes" => c.indexes,
        "unique_indexes" => c.unique_indexes,
        "record_ttl" => c.record_ttl,
        "batches" => c.batches,
        "durable" => c.durable,
        "shared_across_processes" => c.shared_across_processes,
        "native_backup" => c.native_backup,
        other => panic!("no capability is called {other:?}"),
    }
}
