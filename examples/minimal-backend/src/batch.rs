//! Batches are not declared: the handle refuses `apply` before it reaches
//! this store. A backend that can commit several writes in one transaction
//! declares `batches` and runs each item through the same body its single
//! call uses.

use async_trait::async_trait;
use persistkit_core::op::Apply;
use persistkit_core::{Applied, BatchStore, Cx, Error, Result};

use crate::store::BTreeStore;

#[async_trait]
impl BatchStore for BTreeStore {
    async fn apply(&self, _cx: &Cx, _op: &Apply<'_>) -> Result<Vec<Applied>> {
        Err(Error::unsupported("this store declares no batches"))
    }
}
