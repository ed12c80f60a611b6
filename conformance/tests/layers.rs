//! The whole suite through the layers: a layer wraps a store and is a
//! store, so it is held to the contract like a backend.

use persistkit_conformance::harnesses::{Layered, MemoryHarness, PostgresHarness, SqliteHarness};
use persistkit_observe::{Observed, ObserverConfig};
use persistkit_recorder::{Recorded, RecorderConfig};

fn observed(
    s: std::sync::Arc<dyn persistkit_core::Store>,
) -> std::sync::Arc<dyn persistkit_core::Store> {
    Observed::wrap(s, ObserverConfig::default())
}

fn recorded(
    s: std::sync::Arc<dyn persistkit_core::Store>,
) -> std::sync::Arc<dyn persistkit_core::Store> {
    Recorded::wrap(s, RecorderConfig::default())
}

persistkit_conformance::suite!(
    observed_memory,
    Layered::new(MemoryHarness, "observed", observed)
);
// A recorder's writes reach other layers once written (within its
// interval), so the second handle shares the layer, as in one process.
persistkit_conformance::suite!(
    recorded_memory,
    Layered::new(MemoryHarness, "recorded", recorded).one_layer_per_process()
);
persistkit_conformance::suite!(
    recorded_sqlite,
    Layered::new(SqliteHarness::new(), "recorded", recorded).one_layer_per_process()
);

fn grouped(
    s: std::sync::Arc<dyn persistkit_core::Store>,
) -> std::sync::Arc<dyn persistkit_core::Store> {
    persistkit_group_commit::GroupCommit::wrap(s)
}

// Group commit keeps the log gap-free and commit-ordered, and dedupe exact,
// across handles and processes: each handle (and the second process) has a
// writer of its own, as separate processes do.
persistkit_conformance::suite!(
    group_commit_sqlite,
    Layered::new(SqliteHarness::new(), "group commit", grouped)
);
persistkit_conformance::suite!(
    group_commit_postgres,
    Layered::new(PostgresHarness::from_env(), "group commit", grouped)
);

fn cached(
    s: std::sync::Arc<dyn persistkit_core::Store>,
) -> std::sync::Arc<dyn persistkit_core::Store> {
    persistkit_cache::Cached::wrap(s, persistkit_cache::CacheConfig::default())
}

// A read cache is one process's, so the second handle shares the layer, as
// handles in one process do; it drops `shared_across_processes`, so the
// cross-process cases report UNSUPPORTED on SQLite.
persistkit_conformance::suite!(
    cached_memory,
    Layered::new(MemoryHarness, "cached", cached).one_layer_per_process()
);
persistkit_conformance::suite!(
    cached_sqlite,
    Layered::new(SqliteHarness::new(), "cached", cached).one_layer_per_process()
);

fn breaker(
    s: std::sync::Arc<dyn persistkit_core::Store>,
) -> std::sync::Arc<dyn persistkit_core::Store> {
    persistkit_breaker::Breaker::wrap(s, persistkit_breaker::BreakerConfig::default())
}

// A circuit breaker changes nothing while the store answers: the whole
// suite passes through it, crash and outage cases included (the breaker
// may open during them and must close again).
persistkit_conformance::suite!(
    breaker_memory,
    Layered::new(MemoryHarness, "breaker", breaker)
);
persistkit_conformance::suite!(
    breaker_sqlite,
    Layered::new(SqliteHarness::new(), "breaker", breaker)
);
