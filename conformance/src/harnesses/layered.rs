use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use persistkit_core::{Error, Result, Store};

use crate::harness::{Fixture, FixtureHooks, Harness, SetupError};

/// Wraps a store in a layer.
pub type Wrap = fn(Arc<dyn Store>) -> Arc<dyn Store>;

/// Any harness with a layer over every store it makes: the fixture's, the
/// second handle's, a reopened or sibling store's. The whole suite runs
/// through the layer, so a layer is held to the contract like a backend.
///
/// ```
/// use persistkit_conformance::harnesses::{Layered, MemoryHarness};
/// use persistkit_core::{Observed, ObserverConfig};
/// let h = Layered::new(MemoryHarness, "observed", |s| Observed::wrap(s, ObserverConfig::default()));
/// ```
#[derive(Clone)]
pub struct Layered<H> {
    inner: H,
    label: &'static str,
    wrap: Wrap,
    one_layer: bool,
}

impl<H: Harness> Layered<H> {
    /// `inner`'s stores, each wrapped by `wrap`; `label` names the layer in
    /// reports.
    pub fn new(inner: H, label: &'static str, wrap: Wrap) -> Self {
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
        let store = (self.wrap)(f.store);
        Ok(Fixture {
            hooks: Box::new(LayeredHooks {
                inner: f.hooks,
                wrap: self.wrap,
                shared: self.one_layer.then(|| store.clone()),
            }),
            store,
        })
    }

    async fn preflight(&self) -> std::result::Result<(), SetupError> {
        self.inner.preflight().await
    }

    async fn open_location(&self, location: &str) -> Result<Arc<dyn Store>> {
        Ok((self.wrap)(self.inner.open_location(location).await?))
    }
}

struct LayeredHooks {
    inner: Box<dyn FixtureHooks>,
    wrap: Wrap,
    /// The fixture's layered store, when `connect` shares it.
    shared: Option<Arc<dyn Store>>,
}

impl LayeredHooks {
    fn wrapped(&self, s: Option<Result<Arc<dyn Store>>>) -> Option<Result<Arc<dyn Store>>> {
        s.map(|r| r.map(self.wrap))
    }
}

#[async_trait]
impl FixtureHooks for LayeredHooks {
    async fn connect(&self) -> Result<Arc<dyn Store>> {
        if let Some(s) = &self.shared {
            return Ok(s.clone());
        }
        Ok((self.wrap)(self.inner.connect().await?))
    }
    async fn reopen(&self) -> Option<Result<Arc<dyn Store>>> {
        let s = self.inner.reopen().await;
        self.wrapped(s)
    }
    fn location(&self) -> Option<String> {
        self.inner.location()
    }
    async fn sibling(&self) -> Option<Result<Arc<dyn Store>>> {
        let s = self.inner.sibling().await;
        self.wrapped(s)
    }
    async fn crash(&self) -> Option<Result<()>> {
        self.inner.crash().await
    }
    async fn open_backup(&self, path: &Path) -> Option<Result<Arc<dyn Store>>> {
        let s = self.inner.open_backup(path).await;
        self.wrapped(s)
    }
    async fn open_with_newer_schema(&self) -> Option<std::result::Result<Arc<dyn Store>, Error>> {
        let s = self.inner.open_with_newer_schema().await;
        self.wrapped(s)
    }
    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}
