//! Planted bugs in batches: item by item.

use super::*;

#[async_trait]
impl BatchStore for Buggy {
    async fn apply(&self, cx: &Cx, op: &Apply<'_>) -> Result<Vec<Applied>> {
        let ns = cx.ns();
        let items = op.items;
        for item in items {
            if let BatchItem::Put { collection, id, .. }
            | BatchItem::Delete { collection, id, .. } = item
            {
                self.forget(Some((ns, collection, id)));
            }
        }
        if self.bug == Bug::BatchForgetsUniqueHolder {
            return self.inner.apply(cx, op).await.map_err(|e| {
                let in_batch = e.unique_conflict().is_some_and(|(_, holder)| {
                    items
                        .iter()
                        .any(|item| matches!(item, BatchItem::Put { id, .. } if *id == holder))
                });
                match (in_batch, e.index()) {
                    (true, Some(i)) => {
                        Error::conflict(None, "a unique index refused the key").at_index(i)
                    }
                    _ => e,
                }
            });
        }
        if self.bug != Bug::BatchItemByItem {
            return self.inner.apply(cx, op).await;
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let one = self
                .inner
                .apply(cx, &Apply::new(std::slice::from_ref(item)))
                .await
                .map_err(|e| Error::new(e.kind(), e.message().to_string()).at_index(i))?;
            out.extend(one);
            tokio::task::yield_now().await;
        }
        Ok(out)
    }
}
