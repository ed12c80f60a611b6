//! The persistkit conformance suite, as a library.
//!
//! Every case is a plain `pub async fn(&Ctx) -> CaseResult` checking one
//! behaviour of the contract (see [`cases`]). Run them:
//!
//! - as `#[tokio::test]`s, one per case, with [`suite!`]:
//!
//!   ```
//!   // In a test file: one #[tokio::test] per case, e.g. memory::records::no_lost_updates.
//!   persistkit_conformance::suite!(memory, persistkit_conformance::harnesses::MemoryHarness);
//!   # fn main() {}
//!   ```
//!
//! - as a report, with [`run_suite`] (what `persistkit check` does).
//!
//! The rules the cases check are in [`CONTRACT`] (the project's
//! `docs/contract.md`), each with a stable id; [`rules_of`] says which
//! rules a case guards, and a failure message starts with their ids.
//!
//! A [`Harness`] gives each case a fresh, isolated store. Cases that need a
//! capability the backend does not declare report *unsupported*; cases that
//! cannot run here report *skipped* with the reason. Neither counts as passed.
#![deny(missing_docs)]

pub mod cases;
pub mod child;
mod clock;
mod ctx;
pub mod differential;
mod harness;
pub mod harnesses;
#[doc(hidden)]
pub mod outcome;
mod race;
pub mod report;
pub mod rules;
mod runner;
mod tally;
mod trace;

use futures::future::BoxFuture;

pub use ctx::{Ctx, START};
pub use harness::{Fixture, FixtureHooks, Harness, SetupError};
pub use outcome::{expect_err, CaseError, CaseResult};
pub use race::{RACE_ROUNDS_ENV, RACE_SECONDS_ENV};
pub use report::{failure_groups, CaseReport, FailureGroup, Status, SuiteReport, Totals};
pub use rules::{rules, rules_of, Rule, CONTRACT};
pub use runner::{
    case_timeout_from_env, run_case, run_case_as_test, run_case_as_test_expecting,
    run_case_as_test_with, run_case_with_child, run_case_within, run_suite, run_suite_case,
    RunOptions, CASE_TIMEOUT, CASE_TIMEOUT_ENV, EXPECT_UNSUPPORTED_ENV, FAIL_ON_SKIP_ENV,
};
pub use tally::{JUNIT_ENV, REPORT_ENV};

/// One conformance case.
#[derive(Clone, Copy)]
pub struct Case {
    /// Its domain.
    pub domain: &'static str,
    /// Its name, unique within the domain.
    pub name: &'static str,
    /// The case itself.
    pub run: for<'a> fn(&'a Ctx) -> BoxFuture<'a, CaseResult>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{}", self.domain, self.name)
    }
}

/// The list of cases, written once: it feeds both [`all_cases`] and
/// [`suite!`]. Calls `$callback! { { args } domain { case, … } … }`.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ($callback:path { $($args:tt)* }) => {
        $callback! {
            { $($args)* }
            common {
                every_name_round_trips_at_1_and_255_bytes,
                names_over_255_bytes_are_rejected_everywhere,
                timestamps_round_trip_across_the_range,
                every_listing_sorts_bytewise,
                metric_batches_are_visible_whole,
                event_batches_are_visible_whole,
                record_batches_are_visible_whole,
                imports_are_visible_whole,
                agrees_with_the_memory_oracle,
            }
            metrics {
                write_keeps_identical_points,
                read_orders_by_time_component_name_sequence,
                read_filters_by_component_and_name,
                read_range_is_half_open,
                paging_returns_every_point_once,
                limit_must_be_1_to_10000,
                foreign_cursor_is_invalid,
                cursor_of_another_query_is_invalid,
                inverted_range_is_invalid,
                components_sorted_bytewise,
                metric_names_sorted_bytewise,
                aggregate_buckets_align_to_epoch,
                aggregate_rows_have_exact_stats,
                aggregate_last_breaks_ties_by_insertion,
                aggregate_honours_filters,
                aggregate_rejects_bad_buckets,
                aggregate_quantiles_by_nearest_rank,
                aggregate_over_the_whole_range,
                aggregate_rejects_bad_quantiles,
                non_finite_values_rejected,
                bad_batch_writes_nothing,
                timestamps_keep_microseconds,
                out_of_range_timestamps_rejected,
                names_at_the_limits_round_trip,
                kind_is_kept,
                namespaces_isolate_metrics,
                empty_batch_is_a_no_op,
            }
            events {
                append_assigns_increasing_positions,
                duplicate_returns_existing_id,
                dedupe_uses_canonical_json,
                dedupe_key_is_kind_time_and_data,
                duplicates_within_one_batch,
                concurrent_duplicates_write_once,
                list_orders_by_time_then_id,
                equal_times_list_in_stable_order,
                paging_returns_every_event_once,
                list_filters_kinds_and_window,
                newest_first_reverses_the_listing,
                read_log_resumes_after_position,
                gap_free_log_under_concurrent_appends,
                payloads_round_trip,
                payload_rules,
                bad_event_batch_writes_nothing,
                namespaces_isolate_events,
                purged_event_can_be_appended_again,
                full_log_refuses_appends,
            }
            idempotency {
                first_claim_acquires,
                live_key_reports_in_progress,
                completed_key_replays_response,
                release_lets_a_retry_acquire,
                wrong_token_conflicts,
                completed_key_is_final,
                unknown_key_is_not_found,
                exactly_one_of_64_claimers_acquires,
                exactly_one_acquires_across_handles,
                expired_key_can_be_acquired_again,
                completed_key_expires,
                key_state_is_read_only,
                fingerprint_mismatch_conflicts,
                takeover_takes_the_new_fingerprint,
                fingerprint_rules,
                extend_keeps_a_claim_live,
                extend_needs_the_live_claim,
                purge_removes_only_expired_keys,
                ttl_must_be_positive_and_bounded,
                key_names_follow_the_rules,
                complete_rejects_bad_response,
                namespaces_isolate_keys,
            }
            records {
                put_absent_creates_version_1,
                each_write_adds_one_to_version,
                absent_on_existing_conflicts,
                stale_version_conflicts,
                version_on_missing_conflicts,
                any_creates_or_replaces,
                get_missing_is_none,
                delete_checks_expectations,
                recreated_record_starts_at_version_1,
                list_orders_ids_bytewise,
                no_lost_updates,
                no_lost_updates_across_handles,
                payloads_round_trip,
                bad_input_leaves_record_untouched,
                namespaces_isolate_records,
                last_version_refuses_writes,
                indexes_are_declared_once,
                find_orders_by_index_then_id,
                find_pages_and_follows_writes,
                unique_index_refuses_a_second_record,
                unique_key_race_has_one_winner,
                expired_records_are_absent,
                update_and_incr_lose_nothing,
                archive_carries_indexes_and_expiry,
                batch_commits_all_or_nothing,
                reads_follow_every_write,
                reads_follow_writes_across_processes,
                reads_never_go_back,
                count_is_the_live_records_of_a_collection,
            }
            admin {
                migrate_twice_is_a_no_op,
                concurrent_migrations_are_safe,
                health_report_is_complete,
                health_counts_only_its_namespace,
                admin_counts_cover_every_namespace,
                purge_deletes_before_cutoffs,
                purge_records_when_asked,
                purge_by_component_and_collection,
                clear_empties_one_namespace,
                export_import_export_is_identical,
                export_is_deterministic,
                export_of_one_namespace,
                import_refuses_non_empty_namespace,
                import_rejects_malformed_archive,
                imported_store_keeps_working,
                native_backup_matches_capability,
                durable_across_reopen,
                newer_schema_is_refused,
                import_is_all_or_nothing_across_namespaces,
                import_checks_sequence_bounds,
                handle_export_and_import_stay_in_namespace,
                out_of_range_clock_writes_nothing,
                closed_store_is_not_retryable,
                import_refuses_hostile_archives,
                shared_across_processes_holds,
                acknowledged_writes_survive_a_killed_writer,
                stores_in_other_schemas_are_separate,
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __registry {
    ({} $($domain:ident { $($case:ident),* $(,)? })*) => {
        /// Every case, in a stable order: by domain, then as listed.
        pub fn all_cases() -> Vec<Case> {
            vec![$($(
                Case {
                    domain: stringify!($domain),
                    name: stringify!($case),
                    run: {
                        fn run(ctx: &Ctx) -> BoxFuture<'_, CaseResult> {
                            Box::pin($crate::cases::$domain::$case(ctx))
                        }
                        run
                    },
                },
            )*)*]
        }
    };
}

__with_cases!(__registry {});

/// Expand to one `#[tokio::test]` per conformance case, in a module named
/// `$name` with one submodule per domain, each running on a fresh fixture
/// from `$harness` (an expression evaluated once per test).
///
/// Skipped and unsupported cases print `SKIPPED`/`UNSUPPORTED` with the
/// reason on stderr; failures panic with the broken rule. The calling crate
/// needs `tokio` (with the `macros` and `rt-multi-thread` features).
///
/// ```
/// persistkit_conformance::suite!(memory, persistkit_conformance::harnesses::MemoryHarness);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! suite {
    ($name:ident, $harness:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::__with_cases!($crate::__emit_tests { $harness });

            /// Not a test: the second OS process of the cross-process and
            /// crash cases, which start this binary again to run it.
            #[test]
            #[ignore = "the conformance suite's second process; the suite starts it itself"]
            fn __persistkit_child() {
                $crate::child::serve($harness);
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __emit_tests {
    ({ $harness:expr } $($domain:ident { $($case:ident),* $(,)? })*) => {
        $(
            mod $domain {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $case() {
                        $crate::run_suite_case(
                            $harness,
                            module_path!(),
                            env!("CARGO_PKG_NAME"),
                            // Set for integration tests only: how cargo selects this binary.
                            match option_env!("CARGO_TARGET_TMPDIR") {
                                Some(_) => concat!("--test ", env!("CARGO_CRATE_NAME")),
                                None => "--lib",
                            },
                            stringify!($domain),
                            stringify!($case),
                        )
                        .await;
                    }
                )*
            }
        )*
    };
}
