//! The whole suite on Postgres, one named test per case: in Docker (image
//! from PERSISTKIT_POSTGRES_IMAGE) or on PERSISTKIT_TEST_POSTGRES_URL.

use persistkit_conformance::harnesses::PostgresHarness;

persistkit_conformance::suite!(postgres, PostgresHarness::from_env());

/// Postgres-only checks beside the suite, on the same container.
mod postgres_only {
    use persistkit_conformance::harnesses::PostgresHarness;
    use persistkit_conformance::SetupError;
    use persistkit_core::ErrorKind;
    use persistkit_postgres::PgStore;

    /// The test databases sort text by a real locale, not by code point:
    /// otherwise a schema without `COLLATE "C"` would pass the ordering
    /// cases here and fail in production.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_databases_do_not_sort_bytewise_by_default() {
        if std::env::var(persistkit_conformance::harnesses::COLLATION_ENV)
            .is_ok_and(|v| v.eq_ignore_ascii_case("c"))
        {
            return eprintln!("SKIPPED: the C collation was asked for");
        }
        let (fixture, store, _) = match PostgresHarness::from_env().fresh_pg_config().await {
            Ok(f) => f,
            Err(SetupError::Skip(why)) => return eprintln!("SKIPPED: {why}"),
            Err(SetupError::Fail(why)) => panic!("{why}"),
        };
        let sorted: Vec<String> = sqlx::query_scalar(
            "SELECT n FROM (VALUES ('b'), ('B'), ('a'), ('Z')) AS v(n) ORDER BY n",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_ne!(
            sorted,
            ["B", "Z", "a", "b"],
            "the test database sorts byte-wise; the collation cases prove nothing"
        );
        fixture.hooks.cleanup().await;
    }

    /// A schema the server refuses to migrate into is a `Schema` error,
    /// never `Internal`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrating_into_a_reserved_schema_is_a_schema_error() {
        let (fixture, _, config) = match PostgresHarness::from_env().fresh_pg_config().await {
            Ok(f) => f,
            Err(SetupError::Skip(why)) => return eprintln!("SKIPPED: {why}"),
            Err(SetupError::Fail(why)) => panic!("{why}"),
        };
        let e = PgStore::connect(config.schema("pg_catalog").unwrap())
            .await
            .expect_err("pg_catalog cannot hold persistkit's tables");
        assert_eq!(e.kind(), ErrorKind::Schema, "{e}");
        assert!(e.to_string().contains("pg_catalog"), "{e}");
        fixture.hooks.cleanup().await;
    }
}
