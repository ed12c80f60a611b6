use std::sync::Arc;

use async_trait::async_trait;
use persistkit_memory::MemoryStore;

use crate::harness::{Fixture, Harness, SetupError};

/// Fresh [`MemoryStore`]s. The second handle shares the same data.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryHarness;

#[async_trait]
impl Harness for MemoryHarness {
    fn name(&self) -> String {
        "memory".into()
    }

    async fn fresh(&self) -> Result<Fixture, SetupError> {
        Ok(Fixture::shared(Arc::new(MemoryStore::new())))
    }
}
