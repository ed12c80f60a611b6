//! No call panics, and none waits past its deadline, when the connections
//! under it break: every public call of a warm handle, on Postgres direct
//! and through PgBouncer, while its server backends are terminated before
//! the call, while they are terminated again and again during calls, after
//! the server is killed and started again, and while it is stopped.
//!
//! A call may succeed (a read retries once on a fresh connection) or fail
//! with a retryable kind; a panic, another kind, or a call that outlives
//! its deadline fails the test. The slowest call of each phase is printed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use persistkit_conformance::harnesses::PostgresHarness;
use persistkit_conformance::SetupError;
use persistkit_core::{
    AggregateFilter, Batch, Bucket, ErrorKind, EventFilter, Expect, ExportScope, Find, Handle,
    Index, MetricFilter, MetricPoint, NewEvent, Result, RetentionPolicy, Timestamp,
};
use persistkit_postgres::{PgConfig, PgStore};
use serde_json::json;
use sqlx::{Connection, PgConnection};

/// The handle's deadline, and the pool's and the server's timeouts.
const DEADLINE: Duration = Duration::from_secs(2);
/// What a call may take past its deadline (scheduling on a busy machine).
const MARGIN: Duration = Duration::from_secs(2);

type Call = fn(Handle) -> Pin<Box<dyn Future<Output = Result<()>> + Send>>;

fn t(s: i64) -> Timestamp {
    Timestamp::from_micros(1_700_000_000_000_000 + s * 1_000_000).unwrap()
}

/// Every public call of a handle, each a little program that succeeds on a
/// healthy store.
fn calls() -> Vec<(&'static str, Call)> {
    vec![
        ("write_metrics", |h| {
            Box::pin(async move {
                h.write_metrics(&[MetricPoint::gauge(t(1), "c", "n", 1.0)])
                    .await
            })
        }),
        ("read_metrics", |h| {
            Box::pin(async move { h.read_metrics(&MetricFilter::default()).await.map(drop) })
        }),
        ("list_components", |h| {
            Box::pin(async move { h.list_components().await.map(drop) })
        }),
        ("list_metric_names", |h| {
            Box::pin(async move { h.list_metric_names("c").await.map(drop) })
        }),
        ("aggregate", |h| {
            Box::pin(async move {
                h.aggregate(&AggregateFilter::default(), Bucket::seconds(60))
                    .await
                    .map(drop)
            })
        }),
        ("append", |h| {
            Box::pin(async move {
                h.append(&[NewEvent::new("k", t(2), json!({"a": 1}))])
                    .await
                    .map(drop)
            })
        }),
        ("list_events", |h| {
            Box::pin(async move { h.list_events(&EventFilter::default()).await.map(drop) })
        }),
        ("list_events newest first", |h| {
            Box::pin(async move {
                h.list_events(&EventFilter {
                    newest_first: true,
                    ..Default::default()
                })
                .await
                .map(drop)
            })
        }),
        ("read_log", |h| {
            Box::pin(async move { h.read_log(0, 10).await.map(drop) })
        }),
        ("claim, key_state, complete", |h| {
            Box::pin(async move {
                let key = uuid();
                let claim = h.claim("s", &key, Duration::from_secs(60)).await?;
                h.key_state("s", &key).await?;
                match claim.token() {
                    Some(token) => h.complete("s", &key, token, &json!({"ok": true})).await,
                    None => Ok(()),
                }
            })
        }),
        ("claim, release", |h| {
            Box::pin(async move {
                let key = uuid();
                let claim = h.claim("s", &key, Duration::from_secs(60)).await?;
                match claim.token() {
                    Some(token) => h.release("s", &key, token).await,
                    None => Ok(()),
                }
            })
        }),
        ("put", |h| {
            Box::pin(async move {
                h.put("c", "r", &json!({"u": "x", "n": 1}), Expect::Any)
                    .await
                    .map(drop)
            })
        }),
        ("put_with_ttl", |h| {
            Box::pin(async move {
                h.put_with_ttl(
                    "c",
                    "ttl",
                    &json!({"u": "y"}),
                    Expect::Any,
                    Duration::from_secs(60),
                )
                .await
                .map(drop)
            })
        }),
        ("get", |h| {
            Box::pin(async move { h.get("c", "r").await.map(drop) })
        }),
        ("count", |h| {
            Box::pin(async move { h.count("c").await.map(drop) })
        }),
        ("list_records", |h| {
            Box::pin(async move { h.list_records("c", None, 10).await.map(drop) })
        }),
        ("delete", |h| {
            Box::pin(async move {
                let id = uuid();
                h.put("c", &id, &json!({}), Expect::Absent).await?;
                h.delete("c", &id, Expect::Any).await
            })
        }),
        ("update", |h| {
            Box::pin(async move {
                h.update("c", "r", |cur| {
                    let mut v = cur.cloned().unwrap_or_else(|| json!({}));
                    v["touched"] = json!(true);
                    Ok(v)
                })
                .await
                .map(drop)
            })
        }),
        ("incr", |h| {
            Box::pin(async move { h.incr("c", "n", "/n", 1).await.map(drop) })
        }),
        ("create_index", |h| {
            Box::pin(async move {
                h.create_index(&Index::new("c", "by_u", ["/u"]))
                    .await
                    .map(drop)
            })
        }),
        ("indexes", |h| {
            Box::pin(async move { h.indexes(Some("c")).await.map(drop) })
        }),
        ("find", |h| {
            Box::pin(async move {
                h.find("c", &Find::new().eq("/u", "x").limit(5))
                    .await
                    .map(drop)
            })
        }),
        ("apply", |h| {
            Box::pin(async move {
                let id = uuid();
                h.apply(
                    &Batch::new()
                        .put("c", &id, json!({"u": "b"}), Expect::Any)
                        .delete("c", &id, Expect::Any),
                )
                .await
                .map(drop)
            })
        }),
        ("counts", |h| {
            Box::pin(async move { h.counts().await.map(drop) })
        }),
        ("purge", |h| {
            Box::pin(async move { h.purge(&RetentionPolicy::default()).await.map(drop) })
        }),
        ("export", |h| {
            Box::pin(async move {
                let mut out = Vec::new();
                h.export(ExportScope::Namespace, &mut out, None)
                    .await
                    .map(drop)
            })
        }),
        ("import", |h| {
            Box::pin(async move {
                // Into a namespace of its own, emptied first.
                let other = h.namespace("imported")?;
                other.clear().await?;
                let archive = concat!(
                    "{\"format\":\"persistkit-archive\",\"type\":\"archive\",\"version\":1}\n",
                    "{\"name\":\"imported\",\"type\":\"namespace\"}\n",
                    "{\"at\":\"2024-01-01T00:00:00Z\",\"component\":\"c\",\"kind\":\"gauge\",",
                    "\"name\":\"n\",\"type\":\"metric\",\"value\":1}\n",
                    "{\"items\":1,\"namespaces\":1,\"type\":\"end\"}\n",
                );
                other.import(&mut archive.as_bytes(), None).await.map(drop)
            })
        }),
        ("namespaces", |h| {
            Box::pin(async move { h.admin().namespaces().await.map(drop) })
        }),
        ("migrate", |h| {
            Box::pin(async move { h.migrate().await.map(drop) })
        }),
        ("health", |h| {
            Box::pin(async move {
                h.health().await;
                Ok(())
            })
        }),
        ("clear", |h| {
            Box::pin(async move { h.namespace("scratch")?.clear().await.map(drop) })
        }),
    ]
}

fn uuid() -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "k{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// What one call did under a fault.
#[derive(Debug)]
struct Outcome {
    name: &'static str,
    took: Duration,
    result: std::result::Result<(), String>,
}

/// Run `call` in a task of its own: a panic becomes a failed outcome.
async fn run(name: &'static str, call: Call, h: &Handle) -> Outcome {
    let started = Instant::now();
    let joined = tokio::spawn(call(h.clone())).await;
    let took = started.elapsed();
    let result = match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.kind() == ErrorKind::Unavailable && e.is_retryable() => Ok(()),
        Ok(Err(e)) => Err(format!(
            "{name}: {:?} is not the kind for a broken connection: {}",
            e.kind(),
            persistkit_core::error_chain(&e)
        )),
        Err(j) if j.is_panic() => Err(format!("{name}: PANICKED: {j}")),
        Err(j) => Err(format!("{name}: the task failed: {j}")),
    };
    Outcome { name, took, result }
}

/// Fail on any panic, wrong kind or late call; print the slowest.
fn judge(phase: &str, outcomes: &[Outcome]) {
    let mut bad = Vec::new();
    for o in outcomes {
        if let Err(e) = &o.result {
            bad.push(e.clone());
        }
        if o.took > DEADLINE + MARGIN {
            bad.push(format!(
                "{}: took {:?}, past the deadline {DEADLINE:?}",
                o.name, o.took
            ));
        }
    }
    if let Some(slowest) = outcomes.iter().max_by_key(|o| o.took) {
        eprintln!(
            "{phase}: {} calls, slowest {} in {:?}",
            outcomes.len(),
            slowest.name,
            slowest.took
        );
    }
    assert!(bad.is_empty(), "{phase}:\n{}", bad.join("\n"));
}

/// A fresh database on `harness`'s server, and a handle on it with short
/// timeouts; `None` when there is no server and Docker is not required.
async fn warm(harness: PostgresHarness) -> Option<(Handle, PgConfig)> {
    let (_fixture, _store, config) = match harness.fresh_pg_config().await {
        Ok(f) => f,
        Err(SetupError::Skip(why)) => {
            eprintln!("SKIPPED: {why}");
            return None;
        }
        Err(SetupError::Fail(why)) => panic!("{why}"),
    };
    let config = config
        .acquire_timeout(DEADLINE)
        .statement_timeout(Some(DEADLINE))
        .max_connections(4);
    let store = PgStore::connect(config.clone()).await.unwrap();
    let h = Handle::new(Arc::new(store)).with_timeout(Some(DEADLINE));
    // Warm: every call once on a healthy store, which must succeed, so
    // the pool holds open connections with statements prepared on them.
    for (name, call) in calls() {
        call(h.clone())
            .await
            .unwrap_or_else(|e| panic!("healthy {name}: {e}"));
    }
    Some((h, config))
}

/// An administrative connection to the database `config` opens, straight
/// to the server (not through a pooler).
async fn admin(config: &PgConfig, direct_port: Option<u16>) -> PgConnection {
    let mut opts = PgStore::connect_options(config).unwrap();
    if let Some(port) = direct_port {
        opts = opts.port(port);
    }
    PgConnection::connect_with(&opts).await.unwrap()
}

/// Terminate every other session of the current database.
async fn terminate(admin: &mut PgConnection) -> u64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(admin)
    .await
    .map_or(0, |n| n as u64)
}

/// Every call, each right after the server's sessions were terminated.
async fn terminated_before_each(h: &Handle, admin: &mut PgConnection) -> Vec<Outcome> {
    let mut out = Vec::new();
    for (name, call) in calls() {
        terminate(admin).await;
        out.push(run(name, call, h).await);
    }
    out
}

/// Every call, in rounds, while another task terminates the server's
/// sessions every few milliseconds: some die mid-statement.
async fn terminated_during(h: &Handle, mut admin: PgConnection) -> Vec<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let killer = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += terminate(&mut admin).await;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            n
        }
    });
    let mut out = Vec::new();
    for _ in 0..3 {
        for (name, call) in calls() {
            out.push(run(name, call, h).await);
        }
    }
    stop.store(true, Ordering::SeqCst);
    let killed = killer.await.unwrap();
    assert!(killed > 0, "the killer terminated no session");
    out
}

/// Calls until one succeeds, so the next phase starts on a server that
/// answers.
async fn recovered(h: &Handle) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = h.get("c", "r").await {
        assert!(
            e.is_retryable() && Instant::now() < deadline,
            "no recovery: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait until the server accepts a new session again.
async fn accepting(config: &PgConfig) {
    let opts = PgStore::connect_options(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match PgConnection::connect_with(&opts).await {
            Ok(c) => {
                let _ = c.close().await;
                return;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the server did not come back: {e}"),
        }
    }
}

/// The container that publishes `port` on this machine.
fn container_on(port: u16) -> Option<String> {
    let ids = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", "label=persistkit.test=1"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&ids.stdout)
        .split_whitespace()
        .find(|id| {
            std::process::Command::new("docker")
                .args(["port", id, "5432/tcp"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(":{port}")))
        })
        .map(str::to_string)
}

fn docker(args: &[&str]) {
    let ok = std::process::Command::new("docker")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "docker {args:?}");
}

fn port_of(config: &PgConfig) -> u16 {
    PgStore::connect_options(config).unwrap().get_port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_calls_survive_broken_connections() {
    let Some((h, config)) = warm(PostgresHarness::docker()).await else {
        return;
    };
    let mut a = admin(&config, None).await;
    judge(
        "terminated before each call",
        &terminated_before_each(&h, &mut a).await,
    );
    recovered(&h).await;
    judge("terminated during calls", &terminated_during(&h, a).await);
    recovered(&h).await;

    // Killed and started again (same port): every pooled connection is
    // stale, the reproduction of the read retry that built a query twice.
    let id = container_on(port_of(&config)).expect("the test's container");
    docker(&["kill", &id]);
    docker(&["start", &id]);
    accepting(&config).await;
    let mut after = Vec::new();
    for (name, call) in calls() {
        after.push(run(name, call, &h).await);
    }
    judge("after a restart", &after);
    recovered(&h).await;

    // Stopped: every call fails, promptly, with a retryable kind.
    docker(&["stop", "-t", "1", &id]);
    let mut down = Vec::new();
    for (name, call) in calls() {
        let o = run(name, call, &h).await;
        down.push(o);
    }
    judge("while stopped", &down);
    docker(&["start", &id]);
    recovered(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbouncer_calls_survive_broken_connections() {
    let Some((h, config)) = warm(PostgresHarness::pgbouncer()).await else {
        return;
    };
    // Through the pooler, the admin session may itself be pooled away:
    // it terminates the server's sessions, not the pooler's.
    let mut a = admin(&config, None).await;
    judge(
        "pgbouncer: terminated before each call",
        &terminated_before_each(&h, &mut a).await,
    );
    recovered(&h).await;
    let a = admin(&config, None).await;
    judge(
        "pgbouncer: terminated during calls",
        &terminated_during(&h, a).await,
    );
    recovered(&h).await;
}

/// Through a transaction-pooling PgBouncer without `?prepared=false`, the
/// server connections under one client connection change between
/// transactions, and with them its prepared statements. Whatever the
/// driver then meets, the caller is told what to change: `Refused`,
/// naming `?prepared=false`, never a changing `Internal`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbouncer_with_prepared_statements_is_refused_by_name() {
    let (_fixture, _store, config) = match PostgresHarness::pgbouncer().fresh_pg_config().await {
        Ok(f) => f,
        Err(SetupError::Skip(why)) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
        Err(SetupError::Fail(why)) => panic!("{why}"),
    };
    let store = match PgStore::connect(config.prepared(true).max_connections(4)).await {
        Ok(s) => s,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
            assert!(e.to_string().contains("prepared=false"), "{e}");
            return;
        }
    };
    let h = Handle::new(Arc::new(store)).with_timeout(Some(DEADLINE));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for i in 0..40 {
                let r = match i % 4 {
                    0 => h
                        .put("c", &format!("w{w}"), &json!({"i": i}), Expect::Any)
                        .await
                        .map(drop),
                    1 => h.get("c", &format!("w{w}")).await.map(drop),
                    2 => h
                        .append(&[NewEvent::new("k", t(i), json!({"w": w}))])
                        .await
                        .map(drop),
                    _ => h.list_events(&EventFilter::default()).await.map(drop),
                };
                if let Err(e) = r {
                    errors.push(e);
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(t.await.expect("no call panics"));
    }
    eprintln!("{} calls failed of 320", errors.len());
    assert!(
        !errors.is_empty(),
        "prepared statements through a transaction pooler never failed: the test no longer \
         reproduces the misconfiguration"
    );
    let wrong: Vec<String> = errors
        .iter()
        .filter(|e| e.kind() != ErrorKind::Refused || !e.to_string().contains("prepared=false"))
        .map(|e| persistkit_core::error_chain(e))
        .collect();
    assert!(
        wrong.is_empty(),
        "not refused by name:\n{}",
        wrong.join("\n")
    );
}

/// While another process holds SQLite's write lock (`BEGIN EXCLUSIVE`),
/// every call answers by the handle's deadline: reads go on (WAL), writes
/// fail with `Unavailable`. (Migrating an up-to-date file takes no lock;
/// the import here clears its namespace first, which answers by the
/// deadline. An import's own wait for the lock is bounded by the store's
/// busy timeout: it carries no call context.) The store's busy and acquire timeouts are 5 s
/// each, the handle's deadline 2 s: before the deadline was passed down, a
/// call could wait for both, one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_calls_answer_by_the_deadline_while_the_file_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let url = format!(
        "sqlite://{}?busy_timeout=5s&acquire_timeout=5s&max_connections=4",
        path.display()
    );
    let store = persistkit_sqlite::SqliteStore::open(&url).await.unwrap();
    let h = Handle::new(Arc::new(store)).with_timeout(Some(DEADLINE));
    for (name, call) in calls() {
        call(h.clone())
            .await
            .unwrap_or_else(|e| panic!("healthy {name}: {e}"));
    }

    let blocker = persistkit_sqlite::rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let mut one_by_one = Vec::new();
    for (name, call) in calls() {
        one_by_one.push(run(name, call, &h).await);
    }
    judge("sqlite locked: each call", &one_by_one);

    // 16 writers at once, more than the pool has connections: the wait
    // for a connection counts against the same deadline.
    let writers: Vec<_> = calls()
        .into_iter()
        .filter(|(name, _)| ["put", "incr", "claim, release", "apply"].contains(name))
        .collect();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (name, call) = writers[i % writers.len()];
        let h = h.clone();
        tasks.push(tokio::spawn(async move { run(name, call, &h).await }));
    }
    let mut together = Vec::new();
    for t in tasks {
        together.push(t.await.unwrap());
    }
    judge("sqlite locked: 16 writers at once", &together);

    blocker.execute_batch("ROLLBACK").unwrap();
    recovered(&h).await;
}
