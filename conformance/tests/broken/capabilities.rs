//! Undeclared parts of the contract are refused and reported unsupported.

use super::*;

/// Memory that declares none of the optional record parts (indexes, unique
/// indexes, record TTL, batches): what a minimal fourth backend declares.
#[derive(Debug)]
struct DeclaresNoRecordParts {
    inner: Arc<dyn Store>,
}

impl Layer for DeclaresNoRecordParts {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}
impl ForwardMetrics for DeclaresNoRecordParts {}
impl ForwardEvents for DeclaresNoRecordParts {}
impl ForwardIdempotency for DeclaresNoRecordParts {}
impl ForwardRecords for DeclaresNoRecordParts {}
impl ForwardBatches for DeclaresNoRecordParts {}

impl ForwardAdmin for DeclaresNoRecordParts {
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        c.indexes = false;
        c.unique_indexes = false;
        c.record_ttl = false;
        c.batches = false;
        c
    }
}

struct NoRecordPartsHarness;

#[async_trait]
impl Harness for NoRecordPartsHarness {
    fn name(&self) -> String {
        "memory declaring no optional record parts".into()
    }
    async fn fresh(&self) -> std::result::Result<Fixture, SetupError> {
        let inner = MemoryHarness.fresh().await?.store;
        Ok(Fixture::shared(Arc::new(DeclaresNoRecordParts { inner })))
    }
}

/// ADM-7: a part a store does not declare is refused with `Unsupported` by
/// the handle, and its cases report unsupported, never passed; every case
/// that needs none of those parts still runs and passes.
#[tokio::test]
async fn undeclared_parts_are_refused_and_reported_unsupported() {
    let needs_a_part = [
        "records::indexes_are_declared_once",
        "records::find_orders_by_index_then_id",
        "records::find_pages_and_follows_writes",
        "records::unique_index_refuses_a_second_record",
        "records::unique_key_race_has_one_winner",
        "records::expired_records_are_absent",
        "records::archive_carries_indexes_and_expiry",
        "records::batch_commits_all_or_nothing",
        "common::record_batches_are_visible_whole",
    ];
    let harness = Arc::new(NoRecordPartsHarness);
    for case in all_cases() {
        let id = format!("{}::{}", case.domain, case.name);
        let r = run_case(harness.clone(), &case).await;
        let full = run_case(Arc::new(MemoryHarness), &case).await;
        if needs_a_part.contains(&id.as_str()) {
            assert_eq!(full.status, Status::Passed, "{id} on plain memory");
            assert_eq!(r.status, Status::Unsupported, "{id}: {:?}", r.message);
            assert!(
                r.message
                    .as_deref()
                    .unwrap_or("")
                    .contains("does not declare"),
                "{id}: the report says which part is missing: {:?}",
                r.message
            );
        } else {
            assert_eq!(
                r.status, full.status,
                "{id}: a case that needs none of the parts runs as on plain memory: {:?}",
                r.message
            );
        }
    }

    let h = Handle::new(Arc::new(DeclaresNoRecordParts {
        inner: Arc::new(persistkit_memory::MemoryStore::new()),
    }));
    let refused = [
        h.create_index(&Index::new("c", "i", ["/a"])).await.err(),
        h.find("c", &Find::new().eq("/a", 1)).await.err(),
        h.put_with_ttl(
            "c",
            "1",
            &serde_json::json!({}),
            Expect::Any,
            std::time::Duration::from_secs(1),
        )
        .await
        .err(),
        h.apply(&Batch::new().delete("c", "1", Expect::Any))
            .await
            .err(),
    ];
    for e in refused {
        let e = e.expect("an undeclared part is refused");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    }
    assert_eq!(
        h.get("c", "1").await.unwrap(),
        None,
        "nothing of a refused call was written"
    );
}
