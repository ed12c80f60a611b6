//! The whole suite on Postgres, one named test per case: in Docker (image
//! from PERSISTKIT_POSTGRES_IMAGE) or on PERSISTKIT_TEST_POSTGRES_URL.

use persistkit_conformance::harnesses::PostgresHarness;

persistkit_conformance::suite!(postgres, PostgresHarness::from_env());

/// Postgres-only checks beside the suite, on the same container.
mod postgres_only {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use persistkit_conformance::harnesses::PostgresHarness;
    use persistkit_conformance::{Fixture, Harness, SetupError};
    use persistkit_core::{error_chain, ErrorKind, Expect, Handle, HealthStatus};
    use persistkit_postgres::{PgConfig, PgStore};
    use serde_json::json;

    /// A fresh database, or `None` (and a note) when there is no server.
    async fn fresh() -> Option<(Fixture, PgStore, PgConfig)> {
        match PostgresHarness::from_env().fresh_pg_config().await {
            Ok(f) => Some(f),
            Err(SetupError::Skip(why)) => {
                eprintln!("SKIPPED: {why}");
                None
            }
            Err(SetupError::Fail(why)) => panic!("{why}"),
        }
    }

    /// `config` logging in as `role` with password `pw`.
    fn as_role(config: &PgConfig, role: &str, pw: &str) -> PgConfig {
        let (scheme, rest) = config.url.split_once("://").unwrap();
        let host = rest.split_once('@').map_or(rest, |(_, h)| h);
        config.clone().url(format!("{scheme}://{role}:{pw}@{host}"))
    }

    /// The database `config` connects to.
    fn database_of(config: &PgConfig) -> String {
        let path = config.url.rsplit('/').next().unwrap_or_default();
        path.split('?').next().unwrap_or_default().to_string()
    }

    async fn sql(store: &PgStore, stmt: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(stmt.to_string()))
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }

    /// A role that may only use the tables: it opens an up-to-date store
    /// (no CREATE needed), works, and is refused, clearly, what it may not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_runtime_role_needs_no_create_privilege() {
        let Some((fixture, owner, config)) = fresh().await else {
            return;
        };
        let db = database_of(&config);
        let role = format!("rt_{db}");
        // The GRANTs the README gives for a runtime role.
        for stmt in [
            format!("CREATE ROLE {role} LOGIN PASSWORD 'rt'"),
            format!("GRANT CONNECT ON DATABASE {db} TO {role}"),
            format!("GRANT USAGE ON SCHEMA persistkit TO {role}"),
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA persistkit TO {role}"
            ),
            format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA persistkit TO {role}"),
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_string(),
        ] {
            sql(&owner, &stmt).await;
        }
        let runtime = as_role(&config, &role, "rt");
        // Opening migrates by default: with nothing pending it creates nothing.
        let store = PgStore::connect(runtime.clone())
            .await
            .expect("an up-to-date store opens");
        let h = Handle::new(Arc::new(store));
        h.put("jobs", "1", &json!({"ok": true}), Expect::Absent)
            .await
            .unwrap();
        assert_eq!(h.get("jobs", "1").await.unwrap().unwrap().version, 1);
        // Without migrating, an unmigrated schema is refused at open.
        let e = PgStore::connect(runtime.clone().schema("elsewhere").unwrap().migrate(false))
            .await
            .expect_err("an unmigrated schema");
        assert_eq!(e.kind(), ErrorKind::Schema, "{e}");
        assert!(e.to_string().contains("persistkit migrate"), "{e}");
        // Migrating needs CREATE, which this role has not: a Schema error.
        let e = PgStore::connect(runtime.clone().schema("elsewhere").unwrap())
            .await
            .expect_err("no CREATE privilege");
        assert_eq!(e.kind(), ErrorKind::Schema, "{}", error_chain(&e));
        // A missing privilege is Refused, not retryable, said once.
        sql(
            &owner,
            &format!("REVOKE INSERT ON persistkit.records FROM {role}"),
        )
        .await;
        let e = h
            .put("jobs", "2", &json!({}), Expect::Absent)
            .await
            .expect_err("no INSERT privilege");
        assert_eq!(e.kind(), ErrorKind::Refused, "{}", error_chain(&e));
        assert!(!e.is_retryable());
        let text = error_chain(&e);
        assert!(text.starts_with("refused: put: "), "{text}");
        assert_eq!(text.matches("permission denied").count(), 1, "{text}");
        assert!(!text.contains(" at line "), "{text}");
        h.store().close().await;
        sql(&owner, &format!("DROP OWNED BY {role}")).await;
        fixture.hooks.cleanup().await;
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE {role}")))
            .execute(owner.pool())
            .await;
    }

    /// `persistkit check postgres://…` with a role that may not create
    /// databases says so once, with what to grant.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checking_without_createdb_says_what_to_grant() {
        let Some((fixture, owner, config)) = fresh().await else {
            return;
        };
        let db = database_of(&config);
        let role = format!("nc_{db}");
        sql(&owner, &format!("CREATE ROLE {role} LOGIN PASSWORD 'nc'")).await;
        let url = as_role(&config, &role, "nc").url;
        let e = PostgresHarness::external(&url)
            .preflight()
            .await
            .expect_err("no CREATEDB");
        let SetupError::Fail(why) = e else {
            panic!("a role without CREATEDB cannot be checked: {e:?}")
        };
        assert!(
            why.contains("CREATEDB") && why.contains(&role) && why.contains("--docker"),
            "{why}"
        );
        fixture.hooks.cleanup().await;
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE {role}")))
            .execute(owner.pool())
            .await;
    }

    /// A refused connection fails at once, not after the acquire timeout.
    /// No ping before each call: a read that finds its connection broken
    /// runs once more on a fresh one; a write is never retried (the server
    /// may have applied it), it fails `Unavailable` and the next one works.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_on_a_broken_connection_is_retried_once() {
        let Some((fixture, _owner, config)) = fresh().await else {
            return;
        };
        assert!(
            !config.test_before_acquire,
            "no ping before acquire by default"
        );
        let store = PgStore::connect(config.clone().max_connections(1).migrate(false))
            .await
            .unwrap();
        let h = Handle::new(Arc::new(store));
        h.put("c", "x", &json!({"v": 1}), Expect::Absent)
            .await
            .unwrap();
        // Ends every other session on the database, and waits until they
        // are gone (termination is asynchronous).
        let kill = || async {
            use sqlx::Connection;
            let db = database_of(&config);
            let mut c = sqlx::PgConnection::connect(&config.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{db}' AND pid <> pg_backend_pid()"
            )))
            .execute(&mut c)
            .await
            .unwrap();
            for _ in 0..250 {
                let left: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&db)
                .fetch_one(&mut c)
                .await
                .unwrap();
                if left == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            c.close().await.unwrap();
        };
        kill().await;
        let got = h
            .get("c", "x")
            .await
            .expect("the read is retried on a fresh connection");
        assert_eq!(got.unwrap().data, json!({"v": 1}));
        kill().await;
        let e = h
            .put("c", "x", &json!({"v": 2}), Expect::Version(1))
            .await
            .expect_err("a write on a broken connection is not retried");
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{}", error_chain(&e));
        h.put("c", "x", &json!({"v": 2}), Expect::Version(1))
            .await
            .expect("the next write gets a fresh connection");
        fixture.hooks.cleanup().await;
    }

    /// A batch of 1 000 points or more goes in by binary COPY: every point
    /// comes back exactly, in the order written, at the ends of the time
    /// range, with awkward names and values; a bad batch writes nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_batches_go_in_by_copy_exactly() {
        use persistkit_core::{MetricFilter, MetricPoint, Timestamp};
        let Some((fixture, _owner, _config)) = fresh().await else {
            return;
        };
        let h = Handle::new(fixture.store.clone());
        let times = [
            Timestamp::MIN,
            Timestamp::from_micros(-1).unwrap(),
            Timestamp::from_micros(946_684_800_000_000 - 1).unwrap(),
            Timestamp::from_micros(946_684_800_000_000).unwrap(),
            Timestamp::MAX,
        ];
        let names = ["a", "ünï ✓", "x y\\z'\"", &"n".repeat(255)];
        let values = [0.0, -1.5e300, f64::MIN_POSITIVE, 42.0, f64::MAX];
        let points: Vec<MetricPoint> = (0..1_500)
            .map(|i| {
                let p = MetricPoint::gauge(
                    times[i % times.len()],
                    names[i % names.len()],
                    names[(i / 3) % names.len()],
                    values[i % values.len()],
                );
                if i % 2 == 0 {
                    p
                } else {
                    MetricPoint {
                        kind: persistkit_core::MetricKind::Counter,
                        ..p
                    }
                }
            })
            .collect();
        h.write_metrics(&points).await.unwrap();
        let mut got = Vec::new();
        let mut f = MetricFilter {
            limit: Some(10_000),
            ..Default::default()
        };
        loop {
            let page = h.read_metrics(&f).await.unwrap();
            got.extend(page.items);
            match page.next_cursor {
                Some(c) => f.cursor = Some(c),
                None => break,
            }
        }
        got.sort_by_key(|m| m.seq);
        assert_eq!(got.into_iter().map(|m| m.point).collect::<Vec<_>>(), points);
        let mut bad = points.clone();
        bad[1_200].component = "no\u{0}nul".into();
        assert_eq!(
            h.write_metrics(&bad).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            h.counts().await.unwrap().metrics,
            1_500,
            "the bad batch wrote nothing"
        );
        fixture.hooks.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_connection_fails_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(); // nothing listens there once the listener is dropped
        let started = Instant::now();
        let e = PgStore::open(&format!(
            "postgres://u:p@127.0.0.1:{port}/db?acquire_timeout=20s"
        ))
        .await
        .expect_err("nothing listens");
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited {:?}: the acquire timeout, not the refusal",
            started.elapsed()
        );
    }

    /// Health on a schema never migrated: degraded, the pending versions
    /// named, and nothing created.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_of_an_unmigrated_schema_is_degraded() {
        let Some((fixture, owner, config)) = fresh().await else {
            return;
        };
        let store = PgStore::connect(config.schema("never_migrated").unwrap().inspect())
            .await
            .expect("inspecting opens anything");
        let report = Handle::new(Arc::new(store)).health().await;
        assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
        let why = report.error.unwrap_or_default();
        assert!(
            why.contains("migrations pending") && why.contains("persistkit migrate"),
            "{why}"
        );
        assert_eq!(
            report.schema.map(|s| (s.current, s.expected)),
            Some((0, persistkit_postgres::SCHEMA_VERSION))
        );
        let made: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'never_migrated')",
        )
        .fetch_one(owner.pool())
        .await
        .unwrap();
        assert!(!made, "health created the schema");
        fixture.hooks.cleanup().await;
    }

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

    /// A backend of another author's on Postgres gets empty databases from
    /// the suite's server, each its own, and drops them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outside_backend_gets_empty_databases_of_its_own() {
        use sqlx::Connection;
        let h = PostgresHarness::from_env();
        let (a, b) = match (h.empty_database().await, h.empty_database().await) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(SetupError::Skip(why)), _) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
            (a, b) => panic!("{a:?} {b:?}"),
        };
        assert_ne!(a, b);
        let mut conn = sqlx::PgConnection::connect(&a).await.unwrap();
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(tables, 0, "empty: no persistkit tables in it");
        sqlx::query("CREATE TABLE mine (id int)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        h.drop_database(&a).await.unwrap();
        h.drop_database(&a).await.unwrap();
        assert!(sqlx::PgConnection::connect(&a).await.is_err(), "dropped");
        let e = h.drop_database("postgres://u@h/app").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        h.drop_database(&b).await.unwrap();
    }
}
