//! The whole conformance suite through the counting layer: a layer is held
//! to the contract as a backend is.
use std::sync::Arc;

use async_trait::async_trait;
use counting_layer_example::Counting;
use persistkit_conformance::{Fixture, Harness, SetupError};
use persistkit_core::{Expect, Handle};
use persistkit_memory::MemoryStore;

struct CountingHarness;

#[async_trait]
impl Harness for CountingHarness {
    fn name(&self) -> String {
        "counting".into()
    }

    async fn fresh(&self) -> Result<Fixture, SetupError> {
        Ok(Fixture::shared(Counting::wrap(
            Arc::new(MemoryStore::new()),
        )))
    }
}

persistkit_conformance::suite!(counting, CountingHarness);

#[tokio::test]
async fn counts_writes_and_not_reads() {
    let layer = Counting::wrap(Arc::new(MemoryStore::new()));
    let h = Handle::new(layer.clone());
    h.put("c", "1", &serde_json::json!({}), Expect::Absent)
        .await
        .unwrap();
    h.get("c", "1").await.unwrap();
    h.delete("c", "1", Expect::Any).await.unwrap();
    assert_eq!(layer.writes(), 2);
}
