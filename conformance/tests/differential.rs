//! Random operation sequences on the memory oracle and SQLite must agree on
//! every observable result. 500 sequences per run; `PERSISTKIT_DIFF_CASES`
//! for more, `PERSISTKIT_DIFF_SEED` to replay.

use std::sync::Arc;

use persistkit_conformance::differential;
use persistkit_core::Store;
use persistkit_memory::MemoryStore;
use persistkit_sqlite::SqliteStore;

#[test]
fn memory_and_sqlite_agree() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("diff.db").display());
    let sqlite: Arc<dyn Store> = Arc::new(rt.block_on(SqliteStore::open(&url)).unwrap());
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    differential::run(rt.handle(), memory, sqlite, 500);
}

#[test]
fn memory_and_postgres_agree() {
    use persistkit_conformance::harnesses::PostgresHarness;
    use persistkit_conformance::{Harness, SetupError};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fixture = match rt.block_on(PostgresHarness::from_env().fresh()) {
        Ok(f) => f,
        Err(SetupError::Skip(why)) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED memory_and_postgres_agree: {why}"
            );
            return;
        }
        Err(SetupError::Fail(why)) => panic!("{why}"),
    };
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    differential::run(rt.handle(), memory, fixture.store.clone(), 500);
    rt.block_on(fixture.hooks.cleanup());
}
