// Run the whole persistkit conformance suite on your own store.
use std::sync::Arc;

use async_trait::async_trait;
use own_backend_example::CountingStore;
use persistkit_conformance::{Fixture, Harness, SetupError};
use persistkit_memory::MemoryStore;

/// Gives every case a fresh, isolated store.
struct CountingHarness;

#[async_trait]
impl Harness for CountingHarness {
    fn name(&self) -> String {
        "counting".into()
    }

    async fn fresh(&self) -> Result<Fixture, SetupError> {
        // A real backend opens a fresh database, schema or file here, and
        // returns SetupError::Skip("why") when it cannot be reached.
        let store = CountingStore::new(Arc::new(MemoryStore::new()));
        // `shared`: the race cases' "second handle" is this same store. Give
        // FixtureHooks of your own to hand out a separate connection instead.
        Ok(Fixture::shared(Arc::new(store)))
    }
}

// One #[tokio::test] per conformance case: counting::metrics::…, counting::events::…
persistkit_conformance::suite!(counting, CountingHarness);

#[test]
fn the_readme_shows_this_file() {
    let readme = include_str!("../../../README.md");
    let this = include_str!("conformance.rs");
    let body = this.split("\n#[test]").next().unwrap().trim();
    assert!(
        readme.contains(body),
        "README.md must quote examples/own-backend/tests/conformance.rs"
    );
}
