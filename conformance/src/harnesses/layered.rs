use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use persistkit_core::{Error, Result, Store};

use crate::harness::{Fixture, FixtureHooks, Harness, SetupError};

/// Wraps a store in a layer.
pub type Wrap = fn(Arc<dyn Store>) -> Arc<dyn Store>;

/// Wraps a store in a layer that keeps state of its own outside the
/// process (a shared cache): the second argument names the data the store
/// holds, the same for every store on the same data (the fixture's, the
/// second handle's, a reopened one, the second process's), and different
/// for different data. Key the layer's state by it.
pub type ScopedWrap = Arc<dyn Fn(Arc<dyn Store>, &str) -> Arc<dyn Store> + Send + Sync>;

/// Any harness with a layer over every store it makes: the fixture's, the
/// second handle's, a reopened or sibling store's. The whole suite runs
/// through the layer, so a layer is held to the contract like a backend.
///
/// ```
/// use persistkit_conformance::harnesses::{Layered, MemoryHarness};
/// use persistkit_observe::{Observed, ObserverConfig};
/// let h = Layered::new(MemoryHarness, "observed", |s| Observed::wrap(s, ObserverConfig::default()));
/// ```
#[derive(Clone)]
pub struct Layered<H> {
    inner: H,
    label: &'static str,
    wrap: ScopedWrap,
    one_layer: bool,
}

impl<H: Harness> Layered<H> {
    /// `inner`'s stores, each wrapped by `wrap`; `label` names the layer in
    /// reports.
    pub fn new(inner: H, label: &'static str, wrap: Wrap) -> Self {
        Self::scoped(inner, label, Arc::new(move |s, _| wrap(s)))
    }

    /// Like [`new`](Self::new), for a layer whose state outlives the
    /// process (see [`ScopedWrap`]). The scope is the fixture's location
    /// when it has one (so the second process finds the same scope), and a
    /// name of its own otherwise; a sibling or a backup gets a new one.
    pub fn scoped(inner: H, label: &'static str, wrap: ScopedWrap) -> Self {
        Layered {
            inner,
            label,
            wrap,
            one_layer: false,
        }
    }

    /// The second handle (`connect`) shares the fixture's layer instead of
    /// getting a layer of its own: one layer per process, as an
    /// application has. For layers whose state is the point, like the
    /// recorder's queue, which other layers see only once written.
    pub fn one_layer_per_process(mut self) -> Self {
        self.one_layer = true;
        self
    }
}

#[async_trait]
impl<H: Harness> Harness for Layered<H> {
    fn name(&self) -> String {
        format!("{} over {}", self.label, self.inner.name())
    }

    async fn fresh(&self) -> std::result::Result<Fixture, SetupError> {
        let f = self.inner.fresh().await?;
        let scope = f.hooks.location().unwrap_or_else(new_scope);
        let store = (self.wrap)(f.store, &scope);
        Ok(Fixture {
            hooks: Box::new(LayeredHooks {
                inner: f.hooks,
                wrap: self.wrap.clone(),
                scope,
                shared: self.one_layer.then(|| store.clone()),
            }),
            store,
        })
    }

    async fn preflight(&self) -> std::result::Result<(), SetupError> {
        self.inner.preflight().await
    }

    async fn open_location(&self, location: &str) -> Result<Arc<dyn Store>> {
        Ok((self.wrap)(
            self.inner.open_location(location).await?,
            location,
        ))
    }
}

/// A scope no other store has.
fn new_scope() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

struct LayeredHooks {
    inner: Box<dyn FixtureHooks>,
    wrap: ScopedWrap,
    /// What the fixture's data is known by.
    scope: String,
    /// The fixture's layered store, when `connect` shares it.
    shared: Option<Arc<dyn Store>>,
}

impl LayeredHooks {
    /// A store on the fixture's data, layered.
    fn same(&self, s: Option<Result<Arc<dyn Store>>>) -> Option<Result<Arc<dyn Store>>> {
        s.map(|r| r.map(|s| (self.wrap)(s, &self.scope)))
    }

    /// A store on other data, layered.
    fn other(&self, s: Option<Result<Arc<dyn Store>>>) -> Option<Result<Arc<dyn Store>>> {
        s.map(|r| r.map(|s| (self.wrap)(s, &new_scope())))
    }
}

#[async_trait]
impl FixtureHooks for LayeredHooks {
    async fn connect(&self) -> Result<Arc<dyn Store>> {
        if let Some(s) = &self.shared {
            return Ok(s.clone());
        }
        Ok((self.wrap)(self.inner.connect().await?, &self.scope))
    }
    async fn reopen(&self) -> Option<Result<Arc<dyn Store>>> {
        let s = self.inner.reopen().await;
        self.same(s)
    }
    fn location(&self) -> Option<String> {
        self.inner.location()
    }
    async fn sibling(&self) -> Option<Result<Arc<dyn Store>>> {
        let s = self.inner.sibling().await;
        self.other(s)
    }
    async fn crash(&self) -> Option<Result<()>> {
        self.inner.crash().await
    }
    async fn open_backup(&self, path: &Path) -> Option<Result<Arc<dyn Store>>> {
        let s = self.inner.open_backup(path).await;
        self.other(s)
    }
    async fn open_with_newer_schema(&self) -> Option<std::result::Result<Arc<dyn Store>, Error>> {
        let s = self.inner.open_with_newer_schema().await;
        s.map(|r| r.map(|s| (self.wrap)(s, &self.scope)))
    }
    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}
