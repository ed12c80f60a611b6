//! `persistkit`: run the conformance suite against a store, and administer one.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod bench;
mod bench_cache;
mod bench_find;
mod bench_reads;
mod bench_recorder;
mod bench_sqlite;
mod check_cache;
mod round_trips;
use indicatif::{ProgressBar, ProgressStyle};
use persistkit::{ExportScope, Handle, HealthReport, HealthStatus, OpenOptions, RetentionPolicy};
use persistkit_conformance::{report, run_suite, Harness, RunOptions, SuiteReport};

#[derive(Parser)]
#[command(
    name = "persistkit",
    version,
    about = "Persistence for service operational data: conformance checks and administration.",
    after_help = "Commands that take --url use, when it is omitted, PERSISTKIT_DATABASE_URL, then \
                  DATABASE_URL, then the embedded default sqlite://data/persistkit.db."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Target {
    /// Store URL (memory://, sqlite://PATH, postgres://…). Default: from the environment.
    #[arg(long)]
    url: Option<String>,
    /// Namespace to act on.
    #[arg(long, default_value = "default")]
    namespace: String,
}

#[derive(Args)]
struct HealthArgs {
    #[command(flatten)]
    target: Target,
    /// Also time N rounds of read-only calls (counts, listings, a log read)
    /// through the observer layer and report p50/p95/p99/max per operation
    /// under `layers.latency`.
    #[arg(long, value_name = "N", default_value_t = 0)]
    probe: usize,
    /// Count every namespace (the admin scope): `counts` is their sum,
    /// `namespaces` each one's, and `namespace` is empty.
    #[arg(long)]
    all: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the conformance suite against stores and print a report.
    ///
    /// Every case runs on a fresh, isolated store of the URL's backend, so a
    /// check never touches existing data:
    ///   sqlite://PATH       a new temporary file per case (PATH's options apply);
    ///   postgres://...      a new database per case on that server, created and
    ///                       dropped by the check (the role needs CREATEDB); add
    ///                       prepared=false behind a transaction-pooling PgBouncer;
    ///   --docker            a Postgres container, as `cargo test` starts;
    ///   --docker-pgbouncer  Postgres behind PgBouncer (transaction pooling).
    /// With no URL it checks memory:// and a temporary SQLite file.
    ///
    /// Exit status: 0 when every case passed or was unsupported; 1 when a
    /// case failed; 2 for bad input or a target that cannot be checked as
    /// set up (e.g. a role without CREATEDB); 3 when a target ran no case
    /// because it was skipped (no Docker, image missing), unless --allow-skip.
    /// Skipped and unsupported cases are reported as such, never as passed.
    #[command(verbatim_doc_comment)]
    Check(CheckArgs),
    /// The second OS process of a check's cross-process cases (internal).
    #[command(name = "__child", hide = true)]
    Child {
        /// The checked target: a URL, `docker` or `docker-pgbouncer`.
        target: String,
        /// The check's --cache.
        #[arg(long)]
        cache: Option<String>,
    },
    /// Print the health report as JSON. Exits 1 when unhealthy.
    Health(HealthArgs),
    /// Apply pending migrations and print the schema versions.
    Migrate(Target),
    /// Write the portable archive (line-delimited JSON) to FILE.
    Export {
        /// Where to write; `-` for stdout.
        file: PathBuf,
        #[command(flatten)]
        target: Target,
        /// Every namespace, not just --namespace.
        #[arg(long)]
        all: bool,
    },
    /// Load a portable archive into a store whose target namespaces are empty.
    Import {
        /// The archive; `-` for stdin.
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Delete old metrics and events, expired idempotency keys, and (if asked)
    /// stale records, in one namespace. Prints counts per domain as JSON.
    Purge {
        #[command(flatten)]
        target: Target,
        /// e.g. 90d, 12h, 1y
        #[arg(long, value_parser = humantime::parse_duration)]
        metrics_older_than: Option<Duration>,
        /// e.g. 30d
        #[arg(long, value_parser = humantime::parse_duration)]
        events_older_than: Option<Duration>,
        /// e.g. 1y
        #[arg(long, value_parser = humantime::parse_duration)]
        records_not_updated_for: Option<Duration>,
        /// Keep one component's metric points this long instead, e.g.
        /// `--component api=2y` (repeatable).
        #[arg(long, value_name = "NAME=PERIOD", value_parser = named_period)]
        component: Vec<(String, Duration)>,
        /// Keep one collection's records this long after their last update
        /// instead, e.g. `--collection jobs=180d` (repeatable).
        #[arg(long, value_name = "NAME=PERIOD", value_parser = named_period)]
        collection: Vec<(String, Duration)>,
    },
    /// Delete everything in one namespace (metrics, events, idempotency keys,
    /// records) in one transaction, and print how many of each went. The
    /// namespace's event log starts again at 1. Asks for --yes.
    Clear {
        #[command(flatten)]
        target: Target,
        /// Really delete: without it nothing is touched.
        #[arg(long)]
        yes: bool,
    },
    /// Measure every hot path (ingest, append, claim, put, get, 16 concurrent
    /// appenders) beside the best hand-written equivalent for the database
    /// (rusqlite for SQLite; binary COPY and one-statement sqlx calls for
    /// Postgres), in the same run, and print the ratios.
    /// `recorder` measures the recorder's hot path beside the `metrics`
    /// crate, and sustained recording into SQLite beside direct batches;
    /// `recorder-postgres` the same sustained figure on Postgres.
    Bench {
        /// What to measure: sqlite (temporary files), postgres, reads
        /// (windowed reads at 10 k, 100 k and 1 M points, on SQLite),
        /// recorder or recorder-postgres, find or find-postgres (find on
        /// 100 000 records beside a full scan, with the query plans), cache
        /// or cache-postgres (cached gets beside uncached ones, and the hit
        /// rate of a Zipf workload).
        #[arg(default_value = "sqlite")]
        backend: String,
        /// Points for the sustained recorder figure.
        #[arg(long, default_value_t = 500_000)]
        points: usize,
        /// Batches of 10 000 points for the ingest figure.
        #[arg(long, default_value_t = 10)]
        batches: usize,
        /// Single operations for the latency figures.
        #[arg(long, default_value_t = 2000)]
        ops: usize,
        /// postgres only: a server to create two scratch databases on
        /// (dropped afterwards). Default: a container, as the tests start.
        #[arg(long)]
        url: Option<String>,
        /// find only: records in the collection.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        /// cache only: keep the cache on Redis, at URL, or, given alone,
        /// on a container started as the tests start it.
        #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
        redis: Option<String>,
    },
    /// Write the backend's native snapshot (SQLite: VACUUM INTO) to FILE.
    Backup {
        /// Where to write; must not exist.
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Junit,
    Markdown,
}

type CliResult = Result<bool, String>;

fn harness_for(url: &str) -> Result<Arc<dyn Harness>, String> {
    use persistkit_conformance::harnesses::{MemoryHarness, PostgresHarness, SqliteHarness};
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "memory" => Ok(Arc::new(MemoryHarness)),
        "sqlite" => Ok(Arc::new(
            SqliteHarness::from_url(url).map_err(|e| e.to_string())?,
        )),
        "postgres" | "postgresql" => {
            persistkit::postgres::PgConfig::from_url(url).map_err(|e| e.to_string())?;
            Ok(Arc::new(PostgresHarness::external(url)))
        }
        _ => Err(format!(
            "cannot check {:?}: supported URLs are {}",
            persistkit::redact(url),
            persistkit::supported_schemes().join(", ")
        )),
    }
}

/// What `check` was asked to check.
#[derive(Args)]
struct CheckArgs {
    /// Stores to check. Default: memory:// and a temporary SQLite file.
    urls: Vec<String>,
    /// Also check Postgres in a Docker container (image from
    /// PERSISTKIT_POSTGRES_IMAGE, default postgres:16-alpine).
    #[arg(long)]
    docker: bool,
    /// Also check Postgres behind PgBouncer in transaction pooling mode,
    /// in Docker (images from PERSISTKIT_POSTGRES_IMAGE and
    /// PERSISTKIT_PGBOUNCER_IMAGE).
    #[arg(long)]
    docker_pgbouncer: bool,
    /// Exit 0 even when a target ran no case because it was skipped.
    #[arg(long)]
    allow_skip: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Run only cases whose `domain::name` contains this.
    #[arg(long)]
    filter: Option<String>,
    /// With --filter: run only the case whose `domain::name` is exactly the
    /// filter (what a failed case's rerun line uses).
    #[arg(long, requires = "filter")]
    exact: bool,
    /// No per-case progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Check every store through the read cache: `memory` (in process) or
    /// a Redis URL (the shared cache, which must answer).
    #[arg(long, value_name = "SPEC")]
    cache: Option<String>,
}

/// Exit status of a check whose target ran no case because it was skipped.
const EXIT_SKIPPED: u8 = 3;

async fn check(args: CheckArgs) -> Result<ExitCode, String> {
    if (args.docker || args.docker_pgbouncer) && !persistkit_conformance::harnesses::DOCKER_SUPPORT
    {
        return Err(format!(
            "--docker / --docker-pgbouncer: {}",
            persistkit_conformance::harnesses::NO_DOCKER_FEATURE
        ));
    }
    let urls = if args.urls.is_empty() && !args.docker && !args.docker_pgbouncer {
        vec!["memory://".into(), "sqlite://persistkit-check.db".into()]
    } else {
        args.urls.clone()
    };
    let cache = args.cache.as_deref();
    let mut harnesses = urls
        .iter()
        .map(|u| Ok((child_harness(u, cache)?, u.clone())))
        .collect::<Result<Vec<_>, String>>()?;
    if args.docker {
        harnesses.push((
            child_harness(DOCKER_TARGET, cache)?,
            DOCKER_TARGET.to_string(),
        ));
    }
    if args.docker_pgbouncer {
        harnesses.push((
            child_harness(DOCKER_PGBOUNCER_TARGET, cache)?,
            DOCKER_PGBOUNCER_TARGET.to_string(),
        ));
    }
    if let Some(spec) = cache {
        check_cache::preflight(spec).await?;
    }
    let exe = std::env::current_exe().ok();
    let mut reports: Vec<SuiteReport> = Vec::new();
    let mut unchecked = Vec::new();
    for (h, target) in harnesses {
        if !args.quiet {
            eprintln!("checking {} …", h.name());
        }
        // Said once, before 100 cases would each say it.
        match h.preflight().await {
            Ok(()) => {}
            Err(persistkit_conformance::SetupError::Fail(why)) => {
                return Err(format!("cannot check {}: {why}", h.name()));
            }
            Err(persistkit_conformance::SetupError::Skip(why)) => {
                eprintln!("skipping {}: {why}", h.name());
            }
        }
        let opts = RunOptions {
            filter: args.filter.clone(),
            exact: args.exact,
            progress: !args.quiet,
            case_timeout: None,
            // This program again, as `persistkit __child TARGET`.
            child: exe.as_ref().map(|exe| {
                let mut child_args = vec!["__child".to_string(), target.clone()];
                if let Some(spec) = cache {
                    child_args.extend(["--cache".to_string(), spec.to_string()]);
                }
                persistkit_conformance::child::ChildCommand::new(exe, child_args)
            }),
            rerun: Some(rerun_command(&target, cache)),
        };
        let report = run_suite(h.clone(), &opts).await;
        let t = report.totals;
        if t.passed + t.failed == 0 && t.skipped > 0 {
            let why = report
                .cases
                .iter()
                .filter(|c| c.status == persistkit_conformance::Status::Skipped)
                .find_map(|c| c.message.clone())
                .unwrap_or_default();
            unchecked.push(format!("{}: every case was skipped: {why}", h.name()));
        }
        reports.push(report);
    }
    let out = match args.format {
        Format::Table => report::to_table(&reports),
        Format::Json => report::to_json(&reports),
        Format::Junit => report::to_junit(&reports),
        Format::Markdown => report::to_markdown(&reports),
    };
    print_out(out.trim_end());
    if !reports.iter().all(SuiteReport::ok) {
        return Ok(ExitCode::from(1));
    }
    if !unchecked.is_empty() {
        for u in &unchecked {
            eprintln!("not checked: {u}");
        }
        if !args.allow_skip {
            eprintln!("error: a requested target ran no case (pass --allow-skip to accept that)");
            return Ok(ExitCode::from(EXIT_SKIPPED));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn open(target: &Target, migrate: bool) -> Result<Handle, String> {
    let url = target.url.clone().unwrap_or_else(persistkit::url_from_env);
    let h = persistkit::open_with(&url, OpenOptions::new().migrate(migrate))
        .await
        .map_err(|e| {
            format!(
                "cannot open {}: {}",
                persistkit::redact(&url),
                persistkit::error_chain(&e)
            )
        })?;
    h.namespace(&target.namespace).map_err(|e| e.to_string())
}

/// `NAME=PERIOD` (`jobs=180d`), for per-component and per-collection
/// retention.
fn named_period(s: &str) -> Result<(String, Duration), String> {
    let (name, period) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=PERIOD (e.g. jobs=180d)"))?;
    let d = humantime::parse_duration(period)
        .map_err(|e| format!("{period:?} in {s:?} is not a period (e.g. 180d, 2y): {e}"))?;
    Ok((name.to_string(), d))
}

fn json_out<T: serde::Serialize>(v: &T) {
    print_out(&serde_json::to_string_pretty(v).expect("serializes"));
}

/// `rounds` rounds of read-only calls through `h`, for their latencies.
async fn probe(h: &Handle, rounds: usize) {
    for _ in 0..rounds {
        let _ = h.counts().await;
        let _ = h.list_components().await;
        let _ = h.read_log(0, 1).await;
        let _ = h.list_records("probe", None, 1).await;
    }
}

async fn health(args: HealthArgs) -> CliResult {
    let HealthArgs {
        target,
        probe: rounds,
        all,
    } = args;
    let report_of = |h: Handle| async move {
        if all {
            h.admin().health().await
        } else {
            h.health().await
        }
    };
    // Only look: a health check never creates, migrates or changes anything.
    let url = target.url.clone().unwrap_or_else(persistkit::url_from_env);
    let opened = persistkit::inspect(&url)
        .await
        .map_err(|e| {
            format!(
                "cannot open {}: {}",
                persistkit::redact(&url),
                persistkit::error_chain(&e)
            )
        })
        .and_then(|h| h.namespace(&target.namespace).map_err(|e| e.to_string()));
    let report = match opened {
        Ok(h) if rounds > 0 => {
            let observed = persistkit::Observed::wrap(h.store().clone(), Default::default());
            let h = Handle::new(observed)
                .namespace(h.namespace_name())
                .map_err(|e| e.to_string())?;
            probe(&h, rounds).await;
            report_of(h).await
        }
        Ok(h) => report_of(h).await,
        Err(e) => {
            let url = target.url.clone().unwrap_or_else(persistkit::url_from_env);
            HealthReport {
                status: HealthStatus::Unhealthy,
                backend: url
                    .split_once(':')
                    .map(|(s, _)| s.to_string())
                    .unwrap_or_default(),
                namespace: if all {
                    String::new()
                } else {
                    target.namespace.clone()
                },
                schema: None,
                counts: None,
                storage_bytes: None,
                pool: None,
                latency_us: None,
                error: Some(e),
                layers: Default::default(),
                namespaces: None,
            }
        }
    };
    json_out(&report);
    Ok(report.status != HealthStatus::Unhealthy)
}

fn spinner(what: &'static str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
    );
    pb.set_message(format!("{what}: 0 items"));
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

async fn export(file: PathBuf, target: Target, all: bool) -> CliResult {
    let h = open(&target, true).await?;
    let pb = spinner("exporting");
    let progress = |n: u64| pb.set_message(format!("exporting: {n} items"));
    let mut out: Box<dyn std::io::Write + Send> = if file.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        let f =
            File::create(&file).map_err(|e| format!("cannot create {}: {e}", file.display()))?;
        Box::new(BufWriter::new(f))
    };
    // --all reaches every namespace, which only the admin scope may.
    let summary = if all {
        h.admin().export(&mut out, Some(&progress)).await
    } else {
        h.export(ExportScope::Namespace, &mut out, Some(&progress))
            .await
    }
    .map_err(|e| persistkit::error_chain(&e))?;
    pb.finish_and_clear();
    eprintln!(
        "exported {} items from {} namespace(s)",
        summary.items, summary.namespaces
    );
    Ok(true)
}

/// Imports every namespace of the archive: an operator's tool, so it uses
/// the admin scope. All of the archive lands, or none of it.
async fn import(file: PathBuf, target: Target) -> CliResult {
    let h = open(&target, true).await?;
    let admin = h.admin();
    let pb = spinner("importing");
    let progress = |n: u64| pb.set_message(format!("importing: {n} items"));
    let summary = if file.as_os_str() == "-" {
        let mut input = BufReader::new(std::io::stdin());
        admin.import(&mut input, Some(&progress)).await
    } else {
        let f = File::open(&file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
        admin.import(&mut BufReader::new(f), Some(&progress)).await
    }
    .map_err(|e| persistkit::error_chain(&e))?;
    pb.finish_and_clear();
    eprintln!(
        "imported {} items into {} namespace(s)",
        summary.items, summary.namespaces
    );
    Ok(true)
}

async fn bench_cache_cmd(
    what: &str,
    url: Option<String>,
    redis: Option<String>,
    ops: usize,
) -> CliResult {
    use persistkit_conformance::harnesses::{redis_server, PostgresHarness};
    let tier = match redis {
        None => bench_cache::Tier::Local,
        Some(u) if !u.is_empty() => bench_cache::Tier::Redis(u),
        Some(_) => {
            let (u, _) = redis_server()
                .await
                .map_err(|e| format!("cannot start Redis: {e:?}"))?;
            bench_cache::Tier::Redis(u)
        }
    };
    let on = match &tier {
        bench_cache::Tier::Local => "in process".to_string(),
        bench_cache::Tier::Redis(u) => format!("on Redis ({u})"),
    };
    if what == "cache" {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let store = persistkit::sqlite::SqliteStore::connect(
            persistkit::sqlite::SqliteConfig::new(dir.path().join("cache.db")),
        )
        .await
        .map_err(|e| e.to_string())?;
        let title = format!("cache {on} over sqlite (temporary file)");
        print_out(&bench_cache::run(&title, Arc::new(store), ops, &tier).await?);
        return Ok(true);
    }
    let harness = match url {
        Some(u) => PostgresHarness::external(&u),
        None => PostgresHarness::docker(),
    };
    let setup = |e: persistkit_conformance::SetupError| format!("cannot set up Postgres: {e:?}");
    let (fixture, _) = harness.fresh_pg().await.map_err(setup)?;
    let title = format!("cache {on} over {}", harness.name());
    let result = bench_cache::run(&title, fixture.store.clone(), ops, &tier).await;
    fixture.hooks.cleanup().await;
    print_out(&result?);
    Ok(true)
}

async fn bench_find_cmd(what: &str, url: Option<String>, records: usize) -> CliResult {
    use persistkit_conformance::harnesses::PostgresHarness;
    let records = records.max(1);
    let plans = |lines: String| format!("```\n{lines}\n```");
    if what == "find" {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let store = Arc::new(
            persistkit::sqlite::SqliteStore::connect(persistkit::sqlite::SqliteConfig::new(
                dir.path().join("find.db"),
            ))
            .await
            .map_err(|e| e.to_string())?,
        );
        let h = Handle::new(store.clone());
        print_out(&bench_find::run("sqlite (temporary file)", &h, records).await?);
        let q = bench_find::planned(&h, &persistkit::Find::new().eq("/status", "s07")).await?;
        let plan = store
            .explain_find(h.namespace_name(), "jobs", &q)
            .await
            .map_err(|e| e.to_string())?;
        print_out(&format!(
            "SQLite plan of find (status = s07):\n{}",
            plans(plan)
        ));
        return Ok(true);
    }
    let harness = match url {
        Some(u) => PostgresHarness::external(&u),
        None => PostgresHarness::docker(),
    };
    let setup = |e: persistkit_conformance::SetupError| format!("cannot set up Postgres: {e:?}");
    let (fixture, store) = harness.fresh_pg().await.map_err(setup)?;
    let h = Handle::new(fixture.store.clone());
    let result = async {
        let table = bench_find::run(&harness.name(), &h, records).await?;
        sqlx_analyze(&store).await?;
        let q = bench_find::planned(&h, &persistkit::Find::new().eq("/status", "s07")).await?;
        let first = store
            .explain_find(h.namespace_name(), "jobs", &q)
            .await
            .map_err(|e| e.to_string())?;
        let next = persistkit::FindQuery {
            after: Some((q.from.clone(), "job-0000007".into())),
            ..q.clone()
        };
        let later = store
            .explain_find(h.namespace_name(), "jobs", &next)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(format!(
            "{table}\nPostgres generic plans of find (status = s07), after ANALYZE:\nfirst page\n{}\nnext page\n{}",
            plans(first),
            plans(later)
        ))
    }
    .await;
    fixture.hooks.cleanup().await;
    print_out(&result?);
    Ok(true)
}

/// Fresh statistics, as autovacuum would gather them after a bulk load.
async fn sqlx_analyze(store: &persistkit::postgres::PgStore) -> Result<(), String> {
    sqlx::raw_sql("ANALYZE")
        .execute(store.pool())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn bench_reads_cmd() -> CliResult {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = persistkit::sqlite::SqliteStore::connect(persistkit::sqlite::SqliteConfig::new(
        dir.path().join("reads.db"),
    ))
    .await
    .map_err(|e| e.to_string())?;
    print_out(&bench_reads::run(store).await?);
    Ok(true)
}

async fn bench_recorder_cmd(what: &str, url: Option<String>, points: usize) -> CliResult {
    use persistkit_conformance::harnesses::PostgresHarness;
    if what == "recorder" {
        print_out(&bench_recorder::hot_path(200_000).await?);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let open = |name: &str| {
            persistkit::sqlite::SqliteStore::connect(persistkit::sqlite::SqliteConfig::new(
                dir.path().join(name),
            ))
        };
        let mut pair = Vec::new();
        for name in ["warm-ours", "warm-base", "persistkit", "baseline"] {
            let s: Arc<dyn persistkit::Store> = Arc::new(
                open(&format!("{name}.db"))
                    .await
                    .map_err(|e| e.to_string())?,
            );
            pair.push(s);
        }
        let title = "sqlite (temporary files, WAL, synchronous=NORMAL)";
        let (warm, measured) = (
            (pair[0].clone(), pair[1].clone()),
            (pair[2].clone(), pair[3].clone()),
        );
        print_out(&bench_recorder::sustained(title, warm, measured, points).await?);
        return Ok(true);
    }
    let harness = match url {
        Some(u) => PostgresHarness::external(&u),
        None => PostgresHarness::docker(),
    };
    let setup = |e: persistkit_conformance::SetupError| format!("cannot set up Postgres: {e:?}");
    let mut fixtures = Vec::new();
    for _ in 0..4 {
        fixtures.push(harness.fresh_pg().await.map_err(setup)?.0);
    }
    let store = |i: usize| fixtures[i].store.clone();
    let result = bench_recorder::sustained(
        &harness.name(),
        (store(0), store(1)),
        (store(2), store(3)),
        points,
    )
    .await;
    for f in &fixtures {
        f.hooks.cleanup().await;
    }
    print_out(&result?);
    Ok(true)
}

async fn bench_cmd(backend: &str, url: Option<String>, opts: &bench::BenchOptions) -> CliResult {
    use persistkit_conformance::harnesses::PostgresHarness;
    match backend {
        "sqlite" => {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            bench_sqlite::run(dir.path(), opts).await?;
        }
        "postgres" => {
            let harness = match url {
                Some(u) => PostgresHarness::external(&u),
                None => PostgresHarness::docker(),
            };
            let setup =
                |e: persistkit_conformance::SetupError| format!("cannot set up Postgres: {e:?}");
            let (ours, _) = harness.fresh_pg().await.map_err(setup)?;
            let (base, base_store) = harness.fresh_pg().await.map_err(setup)?;
            let pool = base_store.pool().clone();
            // A hand-written application keeps no declared indexes: its
            // records table has no index trigger, so its cost shows in our
            // ratio.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP TRIGGER records_indexed ON \"{}\".records",
                base_store.schema()
            )))
            .execute(&pool)
            .await
            .map_err(|e| e.to_string())?;
            let result = bench::run(
                &harness.name(),
                ours.store.clone(),
                bench::Baseline::Postgres(pool),
                opts,
            )
            .await;
            ours.hooks.cleanup().await;
            base.hooks.cleanup().await;
            result?;
            eprintln!("bench: round trips per call …");
            let (counted, _, config) = harness.fresh_pg_config().await.map_err(setup)?;
            let trips = round_trips::measure(&config).await;
            counted.hooks.cleanup().await;
            print_out(&trips?);
        }
        other => {
            return Err(format!(
                "no benchmark for {other:?}; try sqlite, postgres, reads, recorder or recorder-postgres"
            ))
        }
    }
    Ok(true)
}

/// Print to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print_out(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}").and_then(|_| out.flush());
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("PERSISTKIT_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Command::Child { target, cache } = &cli.command {
        // The second process of a check: it runs its own runtime.
        return match child_harness(target, cache.as_deref()) {
            Ok(h) => {
                if persistkit_conformance::child::serve(h) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(2)
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(run(cli))
}

/// The harness a check (and its second process) makes stores with: the
/// target's, through the cache `--cache` names.
fn child_harness(target: &str, cache: Option<&str>) -> Result<Arc<dyn Harness>, String> {
    use persistkit_conformance::harnesses::PostgresHarness;
    let h: Arc<dyn Harness> = match target {
        DOCKER_TARGET => Arc::new(PostgresHarness::docker()),
        DOCKER_PGBOUNCER_TARGET => Arc::new(PostgresHarness::pgbouncer()),
        url => harness_for(url)?,
    };
    match cache {
        Some(spec) => check_cache::layered(h, spec),
        None => Ok(h),
    }
}

/// How `check` names the --docker target to its second process.
const DOCKER_TARGET: &str = "docker";

/// The command that checks one case of `target` again, `{case}` standing
/// for it; a password in the URL is hidden (give it again to rerun).
fn rerun_command(target: &str, cache: Option<&str>) -> String {
    let target = match target {
        DOCKER_TARGET => "--docker".to_string(),
        DOCKER_PGBOUNCER_TARGET => "--docker-pgbouncer".to_string(),
        url => shell_word(&persistkit::redact(url)),
    };
    let cache = cache.map_or(String::new(), |c| {
        format!(" --cache {}", shell_word(&persistkit::redact(c)))
    });
    format!("persistkit check {target}{cache} --filter {{case}} --exact")
}

/// `s` quoted for a POSIX shell when it holds anything but plain characters.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
/// How `check` names the --docker-pgbouncer target to its second process.
const DOCKER_PGBOUNCER_TARGET: &str = "docker-pgbouncer";

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Child { .. } => unreachable!("served before the runtime starts"),
        Command::Check(args) => {
            return match check(args).await {
                Ok(code) => code,
                Err(msg) => {
                    eprintln!("error: {msg}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Health(t) => health(t).await,
        Command::Migrate(t) => match open(&t, true).await {
            Ok(h) => h
                .migrate()
                .await
                .map(|v| json_out(&v))
                .map(|_| true)
                .map_err(|e| persistkit::error_chain(&e)),
            Err(e) => Err(e),
        },
        Command::Export { file, target, all } => export(file, target, all).await,
        Command::Import { file, target } => import(file, target).await,
        Command::Purge {
            target,
            metrics_older_than,
            events_older_than,
            records_not_updated_for,
            component,
            collection,
        } => match open(&target, true).await {
            Ok(h) => {
                let policy = RetentionPolicy {
                    metrics_older_than,
                    events_older_than,
                    records_not_updated_for,
                };
                let overrides = persistkit::RetentionOverrides {
                    metrics_by_component: component.into_iter().collect(),
                    records_by_collection: collection.into_iter().collect(),
                };
                h.purge_with(&policy, &overrides)
                    .await
                    .map(|r| json_out(&r))
                    .map(|_| true)
                    .map_err(|e| persistkit::error_chain(&e))
            }
            Err(e) => Err(e),
        },
        Command::Clear { target, yes } if !yes => Err(format!(
            "clear deletes everything in namespace {:?}; nothing was deleted. \
             Run it again with --yes to do it",
            target.namespace
        )),
        Command::Clear { target, .. } => match open(&target, true).await {
            Ok(h) => h
                .clear()
                .await
                .map(|n| json_out(&n))
                .map(|_| true)
                .map_err(|e| persistkit::error_chain(&e)),
            Err(e) => Err(e),
        },
        Command::Bench {
            backend,
            points,
            batches,
            ops,
            url,
            records,
            redis,
        } => {
            let opts = bench::BenchOptions {
                batches: batches.max(1),
                ops: ops.max(1),
            };
            match backend.as_str() {
                "reads" => bench_reads_cmd().await,
                "find" | "find-postgres" => bench_find_cmd(&backend, url, records).await,
                "cache" | "cache-postgres" => bench_cache_cmd(&backend, url, redis, opts.ops).await,
                "recorder" | "recorder-postgres" => {
                    bench_recorder_cmd(&backend, url, points.max(1)).await
                }
                _ => bench_cmd(&backend, url, &opts).await,
            }
        }
        Command::Backup { file, target } => match open(&target, true).await {
            Ok(h) => h
                .backup(&file)
                .await
                .map(|_| eprintln!("wrote {}", file.display()))
                .map(|_| true)
                .map_err(|e| persistkit::error_chain(&e)),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerun_line_hides_the_password_and_quotes_for_the_shell() {
        assert_eq!(
            rerun_command(
                "postgres://app:s3cret@db:5432/app?sslmode=disable&x=1",
                None
            ),
            "persistkit check 'postgres://app:***@db:5432/app?sslmode=disable&x=1' \
             --filter {case} --exact"
        );
        assert_eq!(
            rerun_command(DOCKER_TARGET, Some("memory")),
            "persistkit check --docker --cache memory --filter {case} --exact"
        );
        assert_eq!(
            rerun_command("sqlite://it's here.db", None),
            "persistkit check 'sqlite://it'\\''s here.db' --filter {case} --exact"
        );
    }
}
