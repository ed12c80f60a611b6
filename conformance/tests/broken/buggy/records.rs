//! Planted bugs in records: ignored versions, expiry, unique keys, find order and range, counts, caches.

use super::*;

#[async_trait]
impl RecordStore for Buggy {
    async fn put(&self, cx: &Cx, put: &PutRecord<'_>) -> Result<Record> {
        let ns = cx.ns();
        let now = cx.now();
        let mut put = *put;
        if self.bug == Bug::VersionIgnored && matches!(put.expect, Expect::Version(_)) {
            // An UPDATE that forgot `AND version = $n`.
            put.expect = Expect::Any;
        }
        if self.bug == Bug::ExpirySurvivesPut && put.expires_at.is_none() {
            // An upsert that sets data and version but not expires_at: an
            // expiry set by an earlier write carries over.
            if let Some(old) = self
                .inner
                .get(cx, &GetRecord::new(put.collection, put.id))
                .await?
            {
                put.expires_at = old.expires_at;
            }
        }
        self.forget(Some((ns, put.collection, put.id)));
        match self.inner.put(cx, &put).await {
            Err(err)
                if self.bug == Bug::SilentOverflow && err.kind() == ErrorKind::InvalidInput =>
            {
                // The version wraps, as an INTEGER column turned REAL would.
                Ok(Record {
                    collection: put.collection.into(),
                    id: put.id.into(),
                    data: put.data.clone(),
                    version: 0,
                    created_at: now,
                    updated_at: now,
                    expires_at: put.expires_at,
                })
            }
            other => self.closed_as_unavailable(other),
        }
    }
    async fn incr(&self, cx: &Cx, op: &IncrField<'_>) -> Result<Record> {
        self.forget(Some((cx.ns(), op.collection, op.id)));
        match self.bug {
            // Read, add, and write whatever is there by then: the lost
            // update of a store with no transaction and no version check.
            Bug::IncrReadThenWrite => {
                let current = self
                    .inner
                    .get(cx, &GetRecord::new(op.collection, op.id))
                    .await?;
                let data =
                    backend::incremented(current.as_ref().map(|r| &r.data), op.field, op.by)?;
                tokio::task::yield_now().await;
                let put = PutRecord {
                    collection: op.collection,
                    id: op.id,
                    data: &data,
                    expect: Expect::Any,
                    expires_at: current.and_then(|r| r.expires_at),
                };
                self.inner.put(cx, &put).await
            }
            // Compare-and-set through this store's own put, which ignores
            // the version.
            Bug::VersionIgnored => backend::incr_by_compare_and_set(self, cx, op).await,
            _ => self.closed_as_unavailable(self.inner.incr(cx, op).await),
        }
    }

    async fn get(&self, cx: &Cx, op: &GetRecord<'_>) -> Result<Option<Record>> {
        let ns = cx.ns();
        let c = op.collection;
        let id = op.id;
        if self.bug == Bug::NeverYields {
            // Holds its thread far past any case timeout, never awaiting.
            let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        let cx = &if self.bug == Bug::ExpiredStillVisible {
            // A read that forgot `AND expires_at > now`.
            cx.at(Timestamp::MIN)
        } else {
            cx.clone()
        };
        if self.caches() {
            let key = (ns.to_string(), c.to_string(), id.to_string());
            if let Some(hit) = self.cache.lock().unwrap().get(&key) {
                return Ok(hit.clone());
            }
            let r = self.inner.get(cx, op).await?;
            if self.bug == Bug::CacheStoresStaleReads {
                // The time a remote cache takes to answer: writes land here.
                tokio::task::yield_now().await;
            }
            self.cache.lock().unwrap().insert(key, r.clone());
            return Ok(r);
        }
        let r = self.inner.get(cx, op).await;
        self.closed_as_unavailable(r)
    }
    async fn delete(&self, cx: &Cx, op: &DeleteRecord<'_>) -> Result<()> {
        let ns = cx.ns();
        let c = op.collection;
        let id = op.id;
        if self.bug != Bug::CacheForgetsDelete {
            self.forget(Some((ns, c, id)));
        }
        self.inner.delete(cx, op).await
    }
    async fn list_records(&self, cx: &Cx, op: &ListRecords<'_>) -> Result<Vec<Record>> {
        let ListRecords {
            collection,
            after,
            limit,
            ..
        } = *op;
        let after = if self.bug == Bug::EndlessPages {
            None
        } else {
            after
        };
        let limit = if self.bug == Bug::PageOneTooLong {
            limit + 1
        } else {
            limit
        };
        let mut page = self
            .inner
            .list_records(cx, &ListRecords::new(collection, after, limit))
            .await?;
        if self.bug == Bug::IdLocaleOrder {
            page.sort_by_key(|r| r.id.to_lowercase());
        }
        Ok(page)
    }
    async fn count(&self, cx: &Cx, op: &CountRecords<'_>) -> Result<u64> {
        if self.bug == Bug::CountIncludesExpired {
            // A count that forgot `AND expires_at > now`.
            return self.inner.count(&cx.at(Timestamp::MIN), op).await;
        }
        self.inner.count(cx, op).await
    }
    async fn list_collections(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut v = self.inner.list_collections(cx).await?;
        if self.bug == Bug::CollectionLocaleSort {
            v.sort_by_key(|s| s.to_lowercase());
        }
        Ok(v)
    }
    async fn create_index(&self, cx: &Cx, index: &Index) -> Result<bool> {
        if self.bug == Bug::IndexNameOnly {
            let taken = self
                .inner
                .list_indexes(cx, &ListIndexes::new(Some(&index.collection)))
                .await?;
            if taken.iter().any(|i| i.name == index.name) {
                return Ok(false);
            }
        }
        if self.bug == Bug::UniqueNotEnforced {
            // A CREATE INDEX that forgot UNIQUE.
            let plain = Index {
                unique: false,
                ..index.clone()
            };
            return self.inner.create_index(cx, &plain).await;
        }
        self.inner.create_index(cx, index).await
    }
    async fn list_indexes(&self, cx: &Cx, op: &ListIndexes<'_>) -> Result<Vec<Index>> {
        self.inner.list_indexes(cx, op).await
    }
    async fn find(&self, cx: &Cx, op: &FindRecords<'_>) -> Result<Vec<Found>> {
        let c = op.collection;
        let FindRecords { query, limit, .. } = *op;
        match self.bug {
            Bug::FindByIdOrder => {
                // Reads the whole range, then orders by id, not by key.
                let all = FindQuery {
                    after: None,
                    ..query.clone()
                };
                let mut v = self
                    .inner
                    .find(cx, &FindRecords::new(c, &all, usize::MAX))
                    .await?;
                v.sort_by(|a, b| a.record.id.cmp(&b.record.id));
                if let Some((_, after)) = &query.after {
                    v.retain(|f| f.record.id > *after);
                }
                v.truncate(limit);
                Ok(v)
            }
            Bug::FindIgnoresRange => {
                // A WHERE that kept only the index name.
                let everything = FindQuery {
                    from: Vec::new(),
                    to: vec![0xFF],
                    ..query.clone()
                };
                self.inner
                    .find(cx, &FindRecords::new(c, &everything, limit))
                    .await
            }
            _ => self.inner.find(cx, op).await,
        }
    }
}
