//! The whole persistkit conformance suite on the minimal backend: what a
//! backend author writes to check a store of their own.
use std::sync::Arc;

use async_trait::async_trait;
use minimal_backend_example::BTreeStore;
use persistkit_conformance::{Fixture, Harness, SetupError};

/// Gives every case a fresh, empty store.
struct BTreeHarness;

#[async_trait]
impl Harness for BTreeHarness {
    fn name(&self) -> String {
        "btree".into()
    }

    async fn fresh(&self) -> Result<Fixture, SetupError> {
        // A real backend opens a fresh database, schema or file here, and
        // returns SetupError::Skip("why") when it cannot be reached.
        // `shared`: the race cases' second handle is this same store.
        Ok(Fixture::shared(Arc::new(BTreeStore::new())))
    }
}

// One test per case: btree::metrics::…, btree::records::…; the cases of the
// parts this store does not declare report UNSUPPORTED, with the part named.
persistkit_conformance::suite!(btree, BTreeHarness);

#[test]
fn the_readme_shows_this_file() {
    let readme = include_str!("../../../README.md");
    let this = include_str!("conformance.rs");
    let body = this.split("\n#[test]").next().unwrap().trim();
    assert!(
        readme.contains(body),
        "README.md must quote examples/minimal-backend/tests/conformance.rs"
    );
}
