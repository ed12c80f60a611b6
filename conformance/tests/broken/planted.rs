//! Each planted bug fails the case that guards it, naming the rule; the
//! same cases pass without the bug.

use super::*;

#[rstest]
#[case(
    Bug::TieOrder,
    "events",
    "equal_times_list_in_stable_order",
    "ordered by id"
)]
#[case(
    Bug::TieOrder,
    "events",
    "list_orders_by_time_then_id",
    "(occurred_at, id)"
)]
#[case(
    Bug::NoDedupe,
    "events",
    "duplicate_returns_existing_id",
    "flagged duplicate"
)]
#[case(
    Bug::NoDedupe,
    "events",
    "concurrent_duplicates_write_once",
    "exactly one"
)]
#[case(
    Bug::NoDedupe,
    "events",
    "dedupe_uses_canonical_json",
    "canonical JSON"
)]
#[case(
    Bug::PartialBatch,
    "metrics",
    "write_keeps_identical_points",
    "identical points are all kept"
)]
#[case(
    Bug::PartialBatch,
    "metrics",
    "paging_returns_every_point_once",
    "every written point"
)]
#[case(
    Bug::EveryoneWins,
    "idempotency",
    "exactly_one_of_64_claimers_acquires",
    "exactly one acquires"
)]
#[case(
    Bug::EveryoneWins,
    "idempotency",
    "live_key_reports_in_progress",
    "in progress"
)]
#[case(Bug::LocaleSort, "metrics", "components_sorted_bytewise", "byte-wise")]
#[case(
    Bug::ImportPerNamespace,
    "admin",
    "import_is_all_or_nothing_across_namespaces",
    "must write nothing of namespace a"
)]
#[case(
    Bug::LossyPositions,
    "admin",
    "import_checks_sequence_bounds",
    "round-trip exactly"
)]
#[case(
    Bug::ImportIntoDefault,
    "admin",
    "handle_export_and_import_stay_in_namespace",
    "B's import lands in B"
)]
#[case(
    Bug::SilentOverflow,
    "events",
    "full_log_refuses_appends",
    "end of range: appending to a log at its last position"
)]
#[case(
    Bug::SilentOverflow,
    "records",
    "last_version_refuses_writes",
    "end of range: put"
)]
#[case(
    Bug::ClosedIsRetryable,
    "admin",
    "closed_store_is_not_retryable",
    "not be retryable"
)]
#[case(
    Bug::EndlessPages,
    "events",
    "read_log_resumes_after_position",
    "read_log(after, limit) returns the next"
)]
#[case(
    Bug::EndlessPages,
    "records",
    "list_orders_ids_bytewise",
    "paging returns every record once"
)]
#[case(
    Bug::PointByPoint,
    "common",
    "metric_batches_are_visible_whole",
    "part of a batch"
)]
#[case(
    Bug::AppendOneByOne,
    "common",
    "event_batches_are_visible_whole",
    "part of a batch"
)]
#[case(
    Bug::ImportItemByItem,
    "common",
    "imports_are_visible_whole",
    "part of a batch"
)]
#[case(
    Bug::FloatSeconds,
    "common",
    "timestamps_round_trip_across_the_range",
    "microseconds read back equal"
)]
#[case(
    Bug::TruncatedNames,
    "common",
    "every_name_round_trips_at_1_and_255_bytes",
    "255 bytes"
)]
#[case(
    Bug::LocaleSort,
    "common",
    "every_listing_sorts_bytewise",
    "components"
)]
#[case(
    Bug::CollectionLocaleSort,
    "common",
    "every_listing_sorts_bytewise",
    "collections"
)]
#[case(
    Bug::DurableWithoutReopen,
    "admin",
    "durable_across_reopen",
    "no reopen hook"
)]
#[case(
    Bug::VaguelyNewerSchema,
    "admin",
    "newer_schema_is_refused",
    "names both versions"
)]
#[case(
    Bug::MergedSchemas,
    "admin",
    "stores_in_other_schemas_are_separate",
    "another schema of the same database sees nothing"
)]
#[case(
    Bug::NewestFirstPagesForward,
    "events",
    "newest_first_reverses_the_listing",
    "EVT-5"
)]
#[case(
    Bug::InterpolatedQuantiles,
    "metrics",
    "aggregate_quantiles_by_nearest_rank",
    "MET-6"
)]
#[case(
    Bug::WholeRangeFromEpoch,
    "metrics",
    "aggregate_over_the_whole_range",
    "MET-7"
)]
#[case(
    Bug::NamespacesMissKeys,
    "admin",
    "admin_counts_cover_every_namespace",
    "ADM-9"
)]
#[case(
    Bug::ExpirySurvivesPut,
    "common",
    "agrees_with_the_memory_oracle",
    "PERSISTKIT_DIFF_SEED="
)]
#[case(Bug::LookupClaims, "idempotency", "key_state_is_read_only", "IDM-6")]
#[case(
    Bug::FingerprintIgnored,
    "idempotency",
    "fingerprint_mismatch_conflicts",
    "IDM-7"
)]
#[case(
    Bug::CompletedServesAnyRequest,
    "idempotency",
    "fingerprint_mismatch_conflicts",
    "another fingerprint, completed"
)]
#[case(
    Bug::TakeoverKeepsFingerprint,
    "idempotency",
    "takeover_takes_the_new_fingerprint",
    "the old fingerprint"
)]
#[case(
    Bug::ExtendDoesNothing,
    "idempotency",
    "extend_keeps_a_claim_live",
    "IDM-8"
)]
#[case(
    Bug::ExtendsCompletedKeys,
    "idempotency",
    "extend_needs_the_live_claim",
    "completed key"
)]
#[case(
    Bug::ClearAllNamespaces,
    "admin",
    "clear_empties_one_namespace",
    "ADM-8"
)]
#[case(
    Bug::DedupeSurvivesPurge,
    "events",
    "purged_event_can_be_appended_again",
    "dedupe after purge"
)]
#[case(Bug::IndexNameOnly, "records", "indexes_are_declared_once", "REC-4")]
#[case(Bug::FindByIdOrder, "records", "find_orders_by_index_then_id", "REC-5")]
#[case(
    Bug::FindIgnoresRange,
    "records",
    "find_orders_by_index_then_id",
    "REC-5"
)]
#[case(
    Bug::FindIgnoresRange,
    "records",
    "find_pages_and_follows_writes",
    "REC-5"
)]
#[case(
    Bug::UniqueNotEnforced,
    "records",
    "unique_index_refuses_a_second_record",
    "REC-6"
)]
#[case(
    Bug::UniqueNotEnforced,
    "records",
    "unique_key_race_has_one_winner",
    "REC-6"
)]
#[case(
    Bug::IncrReadThenWrite,
    "records",
    "update_and_incr_lose_nothing",
    "REC-8"
)]
#[case(
    Bug::ExpiredStillVisible,
    "records",
    "expired_records_are_absent",
    "REC-7"
)]
#[case(
    Bug::CountIncludesExpired,
    "records",
    "count_is_the_live_records_of_a_collection",
    "REC-11"
)]
#[case(
    Bug::PurgeKeepsExpired,
    "records",
    "expired_records_are_absent",
    "REC-7"
)]
#[case(
    Bug::VersionIgnored,
    "records",
    "update_and_incr_lose_nothing",
    "REC-8"
)]
#[case(
    Bug::ImportSkipsIndexes,
    "records",
    "archive_carries_indexes_and_expiry",
    "ADM-4"
)]
#[case(
    Bug::BatchItemByItem,
    "records",
    "batch_commits_all_or_nothing",
    "REC-9"
)]
#[case(
    Bug::BatchForgetsUniqueHolder,
    "records",
    "batch_commits_all_or_nothing",
    "REC-6"
)]
#[case(
    Bug::BatchItemByItem,
    "common",
    "record_batches_are_visible_whole",
    "REC-9"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_planted_bug_fails_the_case_that_guards_it(
    #[case] bug: Bug,
    #[case] domain: &str,
    #[case] name: &str,
    #[case] rule: &str,
) {
    let (status, message) = outcome(bug, domain, name).await;
    assert_eq!(
        status,
        Status::Failed,
        "{bug:?} must fail {domain}::{name}; message: {message}"
    );
    assert!(
        message.contains(rule),
        "the failure must name the rule ({rule:?}); got: {message}"
    );
}

/// The same cases pass on the unbroken store, so the failures above come
/// from the planted bugs.
#[rstest]
#[case("events", "equal_times_list_in_stable_order")]
#[case("events", "duplicate_returns_existing_id")]
#[case("metrics", "write_keeps_identical_points")]
#[case("idempotency", "exactly_one_of_64_claimers_acquires")]
#[case("metrics", "components_sorted_bytewise")]
#[case("admin", "import_is_all_or_nothing_across_namespaces")]
#[case("admin", "import_checks_sequence_bounds")]
#[case("admin", "handle_export_and_import_stay_in_namespace")]
#[case("events", "full_log_refuses_appends")]
#[case("records", "last_version_refuses_writes")]
#[case("admin", "closed_store_is_not_retryable")]
#[case("events", "purged_event_can_be_appended_again")]
#[case("idempotency", "exactly_one_acquires_across_handles")]
#[case("events", "gap_free_log_under_concurrent_appends")]
#[case("events", "concurrent_duplicates_write_once")]
#[case("records", "no_lost_updates_across_handles")]
#[case("common", "metric_batches_are_visible_whole")]
#[case("common", "event_batches_are_visible_whole")]
#[case("common", "imports_are_visible_whole")]
#[case("common", "timestamps_round_trip_across_the_range")]
#[case("common", "every_name_round_trips_at_1_and_255_bytes")]
#[case("common", "every_listing_sorts_bytewise")]
#[case("metrics", "aggregate_quantiles_by_nearest_rank")]
#[case("events", "newest_first_reverses_the_listing")]
#[case("metrics", "aggregate_over_the_whole_range")]
#[case("admin", "admin_counts_cover_every_namespace")]
#[case("common", "agrees_with_the_memory_oracle")]
#[case("idempotency", "key_state_is_read_only")]
#[case("idempotency", "fingerprint_mismatch_conflicts")]
#[case("idempotency", "takeover_takes_the_new_fingerprint")]
#[case("idempotency", "extend_keeps_a_claim_live")]
#[case("idempotency", "extend_needs_the_live_claim")]
#[case("admin", "clear_empties_one_namespace")]
#[case("records", "indexes_are_declared_once")]
#[case("records", "find_orders_by_index_then_id")]
#[case("records", "find_pages_and_follows_writes")]
#[case("records", "unique_index_refuses_a_second_record")]
#[case("records", "unique_key_race_has_one_winner")]
#[case("records", "expired_records_are_absent")]
#[case("records", "update_and_incr_lose_nothing")]
#[case("records", "archive_carries_indexes_and_expiry")]
#[case("records", "batch_commits_all_or_nothing")]
#[case("admin", "purge_by_component_and_collection")]
#[case("records", "reads_follow_every_write")]
#[case("records", "reads_never_go_back")]
#[case("common", "record_batches_are_visible_whole")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_cases_pass_without_the_bug(#[case] domain: &str, #[case] name: &str) {
    let case = all_cases()
        .into_iter()
        .find(|c| c.domain == domain && c.name == name)
        .unwrap();
    let r = run_case(Arc::new(MemoryHarness), &case).await;
    assert_eq!(r.status, Status::Passed, "{:?}", r.message);
}
