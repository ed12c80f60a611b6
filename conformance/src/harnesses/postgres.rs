//! Postgres fixtures: a fresh database per case, on a server that is either
//! given (`PERSISTKIT_TEST_POSTGRES_URL`, or `persistkit check postgres://…`)
//! or started once per process in Docker with testcontainers.

use std::error::Error as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use persistkit_core::{error_chain, AdminStore, Error, Result, Store};
use persistkit_postgres::{PgConfig, PgStore};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::OnceCell;

use crate::harness::{Fixture, FixtureHooks, Harness, SetupError};

/// Image for the Docker mode; users with a registry keep the default.
pub const IMAGE_ENV: &str = "PERSISTKIT_POSTGRES_IMAGE";
/// The official image, used when `PERSISTKIT_POSTGRES_IMAGE` is unset.
pub const DEFAULT_IMAGE: &str = "postgres:16-alpine";
/// An existing server to test against instead of Docker.
pub const URL_ENV: &str = "PERSISTKIT_TEST_POSTGRES_URL";
/// When `1`, a missing Docker fails the Postgres cases instead of skipping them.
pub const REQUIRE_DOCKER_ENV: &str = "PERSISTKIT_REQUIRE_DOCKER";
/// PgBouncer image for the pooler target.
pub const PGBOUNCER_IMAGE_ENV: &str = "PERSISTKIT_PGBOUNCER_IMAGE";
/// The image `ci/images/pgbouncer/build` makes, used when
/// `PERSISTKIT_PGBOUNCER_IMAGE` is unset (it takes DB_HOST, DB_PORT, DB_USER,
/// DB_PASSWORD, POOL_MODE, LISTEN_PORT).
pub const DEFAULT_PGBOUNCER_IMAGE: &str = "persistkit/pgbouncer:1.18-local";

/// Where the server comes from.
#[derive(Debug, Clone)]
enum Source {
    /// The test default: `PERSISTKIT_TEST_POSTGRES_URL`, else Docker.
    TestDefault,
    /// Always a Docker container.
    Docker,
    /// Docker: Postgres with PgBouncer (transaction pooling) in front.
    PgBouncer,
    /// This server (a `postgres://` URL naming any database on it).
    External(String),
}

/// Fresh Postgres databases for the suite. Each case gets its own database
/// (copied from a migrated template in Docker mode; created, migrated and
/// dropped afterwards on a given server), and its own pool.
#[derive(Debug, Clone)]
pub struct PostgresHarness {
    source: Source,
}

impl PostgresHarness {
    /// `PERSISTKIT_TEST_POSTGRES_URL` if set, else one Docker container per
    /// test process (image from `PERSISTKIT_POSTGRES_IMAGE`). Without either,
    /// cases are skipped ("no Docker"), or fail if `PERSISTKIT_REQUIRE_DOCKER=1`.
    pub fn from_env() -> Self {
        PostgresHarness {
            source: Source::TestDefault,
        }
    }

    /// Always start a container.
    pub fn docker() -> Self {
        PostgresHarness {
            source: Source::Docker,
        }
    }

    /// Postgres in Docker behind PgBouncer in transaction mode: every store
    /// connects through the pooler with `prepared=false`.
    pub fn pgbouncer() -> Self {
        PostgresHarness {
            source: Source::PgBouncer,
        }
    }

    /// Use this server. Every case creates its own database on it and drops
    /// it afterwards (the user needs CREATEDB); existing data is never touched.
    pub fn external(url: &str) -> Self {
        PostgresHarness {
            source: Source::External(url.to_string()),
        }
    }
}

/// A server the fixtures can create databases on.
#[derive(Debug, Clone)]
struct Server {
    /// Admin URL (any database on the server), with persistkit's options.
    config: PgConfig,
    /// Databases are made from a migrated template (throw-away servers only).
    template: bool,
    /// The container this process started, which the crash case may kill
    /// and start again (its host port is fixed, so the URL stays right).
    container: Option<String>,
    /// `host:port` of a transaction-pooling PgBouncer that stores connect
    /// through (with `prepared=false`); administration goes direct.
    pooler: Option<String>,
}

static DOCKER: OnceCell<std::result::Result<Server, String>> = OnceCell::const_new();
static BOUNCER: OnceCell<std::result::Result<Server, String>> = OnceCell::const_new();
#[cfg(feature = "docker")]
static CONTAINERS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static NEXT_DB: AtomicU64 = AtomicU64::new(0);
/// The migrated template database, one per server: the direct one and the
/// one behind the pooler are different servers.
static TEMPLATE: OnceCell<std::result::Result<String, String>> = OnceCell::const_new();
static BOUNCER_TEMPLATE: OnceCell<std::result::Result<String, String>> = OnceCell::const_new();

#[cfg(feature = "docker")]
extern "C" fn remove_containers() {
    let ids = std::mem::take(&mut *CONTAINERS.lock().unwrap_or_else(|p| p.into_inner()));
    for id in ids {
        let _ = std::process::Command::new("docker")
            .args(["rm", "--force", "--volumes", &id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// `(name, tag)` of the image named by `env`, else `default`.
pub(super) fn image_from(env: &str, default: &str) -> (String, String) {
    let image = std::env::var(env)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.into());
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image, "latest".to_string()),
    }
}

/// The labels of a container this process starts: a test container, and,
/// when `ci/test` set them, its run and its checkout. A run then sweeps
/// only its own containers and those a killed run of the same checkout
/// left, never another run's.
pub fn test_labels() -> Vec<(&'static str, String)> {
    let mut labels = vec![("persistkit.test", "1".to_string())];
    for (env, label) in [
        ("PERSISTKIT_RUN_ID", "persistkit.run"),
        ("PERSISTKIT_CHECKOUT", "persistkit.checkout"),
    ] {
        if let Some(v) = std::env::var(env).ok().filter(|v| !v.is_empty()) {
            labels.push((label, v));
        }
    }
    labels
}

fn image() -> (String, String) {
    image_from(IMAGE_ENV, DEFAULT_IMAGE)
}

/// Why a container could not start, in words that say what to do: the
/// Docker engine is unreachable, or the image is neither here nor pullable.
#[cfg(feature = "docker")]
pub(super) fn why_no_container(
    name: &str,
    tag: &str,
    env: &str,
    build: &str,
    e: &dyn std::fmt::Display,
) -> String {
    let engine = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match engine {
        Ok(out) if out.status.success() => {
            let present = std::process::Command::new("docker")
                .args(["image", "inspect", &format!("{name}:{tag}")])
                .output()
                .is_ok_and(|o| o.status.success());
            if present {
                return format!("Docker could not start {name}:{tag}: {e}");
            }
            match local_builds(build).first() {
                Some(local) => format!(
                    "image missing: {name}:{tag} is not on this machine and could not be pulled; \
                     this machine has {local}, built by {build}: set {env}={local} ({e})"
                ),
                None => format!(
                    "image missing: {name}:{tag} is not on this machine and could not be pulled; \
                     build it with {build}, or set {env} to an image you have ({e})"
                ),
            }
        }
        _ => format!("no Docker: the Docker engine cannot be reached ({e})"),
    }
}

/// Images on this machine that `build` (`ci/images/<kind>/build`) made:
/// they carry its recipe label and are named `persistkit/<kind>:…`.
#[cfg(feature = "docker")]
pub(super) fn local_builds(build: &str) -> Vec<String> {
    let Some(kind) = build.split('/').nth(2) else {
        return Vec::new();
    };
    let out = std::process::Command::new("docker")
        .args([
            "images",
            "--filter",
            "label=persistkit.recipe",
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ])
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&format!("persistkit/{kind}:")))
        .map(str::to_string)
        .collect()
}

/// A free port on 127.0.0.1, for a container mapping that must survive a
/// restart.
#[cfg(feature = "docker")]
pub(super) fn free_port() -> std::result::Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free local port: {e}"))
}

/// Remember a started container, so it is removed when the process exits.
#[cfg(feature = "docker")]
pub(super) fn remove_at_exit(id: &str) {
    CONTAINERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(id.to_string());
    // SAFETY: registering a plain extern "C" fn with atexit has no preconditions.
    unsafe {
        libc::atexit(remove_containers);
    }
}

/// Start this process's server on a thread of its own, so it outlives
/// every test's runtime; its containers are removed when the process exits.
/// With `pooler`, PgBouncer in transaction mode stands in front of it.
async fn start_server(pooler: bool) -> std::result::Result<Server, String> {
    on_own_thread("persistkit-postgres-container", move || containers(pooler)).await
}

/// Run `start` on a thread of its own, in a runtime of its own, and keep
/// what it returns to keep (containers) alive, with that runtime, until the
/// process exits: so a server outlives every test's runtime.
pub(crate) async fn on_own_thread<T, K, F, Fut>(
    name: &str,
    start: F,
) -> std::result::Result<T, String>
where
    T: Send + 'static,
    K: 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::result::Result<(T, K), String>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                match start().await {
                    Ok((started, keep)) => {
                        let _ = tx.send(Ok(started));
                        std::future::pending::<()>().await;
                        drop(keep);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| e.to_string())?;
    rx.await.map_err(|_| format!("the thread {name} died"))?
}

type Kept = Vec<Box<dyn std::any::Any + Send>>;

/// Whether this build can start servers in Docker itself.
pub const DOCKER_SUPPORT: bool = cfg!(feature = "docker");

/// Why a build without the `docker` feature starts no container.
pub const NO_DOCKER_FEATURE: &str = "this build cannot start containers: it was built without \
     the `docker` feature (build the CLI with `--features docker`, or depend on \
     persistkit-conformance with features = [\"docker\"]); give a server's URL instead";

/// Without the `docker` feature: say how to get it.
#[cfg(not(feature = "docker"))]
async fn containers(_pooler: bool) -> std::result::Result<(Server, Kept), String> {
    Err(NO_DOCKER_FEATURE.to_string())
}

#[cfg(feature = "docker")]
async fn containers(pooler: bool) -> std::result::Result<(Server, Kept), String> {
    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{GenericImage, ImageExt};
    let (name, tag) = image();
    // A fixed host port survives `docker kill` + `docker start`.
    let port = free_port()?;
    let postgres = testcontainers_modules::postgres::Postgres::default()
        .with_name(name.clone())
        .with_tag(tag.clone())
        .with_mapped_port(port, 5432.tcp())
        .with_labels(test_labels())
        .with_startup_timeout(std::time::Duration::from_secs(120));
    // Behind a pooler the data lives on tmpfs (nothing crashes that
    // server), with room for the pooler's connections to many databases.
    let postgres = if pooler {
        postgres
            .with_mount(testcontainers::core::Mount::tmpfs_mount(
                "/var/lib/postgresql/data",
            ))
            .with_cmd(["-c", "max_connections=300"])
    } else {
        postgres
    };
    let pg = postgres
        .start()
        .await
        .map_err(|e| why_no_container(&name, &tag, IMAGE_ENV, "ci/images/postgres/build", &e))?;
    remove_at_exit(pg.id());
    let direct = format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres");
    if !pooler {
        let server = Server {
            config: PgConfig::new(direct),
            template: true,
            container: Some(pg.id().to_string()),
            pooler: None,
        };
        return Ok((server, vec![Box::new(pg)]));
    }
    // The address PgBouncer's container reaches Postgres's container at.
    let ip = std::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            pg.id(),
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .ok_or("the Postgres container has no network address")?;
    let (bname, btag) = image_from(PGBOUNCER_IMAGE_ENV, DEFAULT_PGBOUNCER_IMAGE);
    let bouncer = GenericImage::new(bname.clone(), btag.clone())
        .with_exposed_port(6432.tcp())
        .with_wait_for(WaitFor::message_on_stderr("process up"))
        .with_env_var("DB_HOST", ip)
        .with_env_var("DB_PORT", "5432")
        .with_env_var("DB_USER", "postgres")
        .with_env_var("DB_PASSWORD", "postgres")
        .with_env_var("POOL_MODE", "transaction")
        .with_env_var("LISTEN_PORT", "6432")
        .with_env_var("MAX_CLIENT_CONN", "1000")
        .with_env_var("DEFAULT_POOL_SIZE", "20")
        // Every case has a database of its own: let idle server
        // connections go quickly, or they use up the server's.
        .with_env_var("MAX_DB_CONNECTIONS", "20")
        .with_env_var("SERVER_IDLE_TIMEOUT", "2")
        .with_labels(test_labels())
        .with_startup_timeout(std::time::Duration::from_secs(60))
        .start()
        .await
        .map_err(|e| {
            why_no_container(
                &bname,
                &btag,
                PGBOUNCER_IMAGE_ENV,
                "ci/images/pgbouncer/build",
                &e,
            )
        })?;
    remove_at_exit(bouncer.id());
    let bport = bouncer
        .get_host_port_ipv4(6432)
        .await
        .map_err(|e| format!("the PgBouncer port: {e}"))?;
    let server = Server {
        config: PgConfig::new(direct),
        template: true,
        container: None,
        pooler: Some(format!("127.0.0.1:{bport}")),
    };
    Ok((server, vec![Box::new(pg), Box::new(bouncer)]))
}

impl PostgresHarness {
    async fn server(&self) -> std::result::Result<Server, String> {
        let external = match &self.source {
            Source::External(url) => Some(url.clone()),
            Source::TestDefault => std::env::var(URL_ENV).ok().filter(|s| !s.is_empty()),
            Source::Docker | Source::PgBouncer => None,
        };
        if let Some(url) = external {
            let config = PgConfig::from_url(&url).map_err(|e| e.to_string())?;
            return Ok(Server {
                config,
                template: false,
                container: None,
                pooler: None,
            });
        }
        if matches!(self.source, Source::PgBouncer) {
            return BOUNCER.get_or_init(|| start_server(true)).await.clone();
        }
        DOCKER.get_or_init(|| start_server(false)).await.clone()
    }
}

/// What to say when the role of a given server may not create databases.
fn no_createdb(role: &str) -> String {
    format!(
        "the role {role:?} may not create databases, and the check creates one per case (and \
         drops it afterwards, so existing data is never touched). Grant it as a superuser with \
         `ALTER ROLE \"{role}\" CREATEDB;`, or check a disposable server instead \
         (`persistkit check --docker`)"
    )
}

/// How a fixture's store connects to database `db`: straight to the
/// server, or through the pooler with named prepared statements off.
fn store_config(server: &Server, db: &str) -> PgConfig {
    let direct = with_database(&server.config, db);
    match &server.pooler {
        None => direct,
        Some(pooler) => {
            let (scheme, rest) = direct.url.split_once("://").unwrap_or(("postgres", ""));
            let (userinfo, tail) = rest.split_once('@').unwrap_or(("", rest));
            let path = tail.find(['/', '?']).map_or("", |i| &tail[i..]);
            direct
                .clone()
                .url(format!("{scheme}://{userinfo}@{pooler}{path}"))
                .prepared(false)
        }
    }
}

fn with_database(config: &PgConfig, db: &str) -> PgConfig {
    let (base, query) = config
        .url
        .split_once('?')
        .map_or((config.url.as_str(), None), |(b, q)| (b, Some(q)));
    let (prefix, _) = base.rsplit_once('/').unwrap_or((base, ""));
    let url = match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    };
    config.clone().url(url)
}

async fn admin(server: &Server) -> Result<PgConnection> {
    let opts = PgStore::connect_options(&server.config)?;
    PgConnection::connect_with(&opts)
        .await
        .map_err(|e| Error::unavailable("cannot connect to the Postgres server").with_source(e))
}

async fn exec(conn: &mut PgConnection, sql: String) -> Result<()> {
    sqlx::query(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| Error::internal("database administration failed").with_source(e))
}

/// Environment variable naming the collation of the test databases: `icu`
/// (the default: ICU `en-US`, what most servers sort by), or `c`.
pub const COLLATION_ENV: &str = "PERSISTKIT_TEST_COLLATION";

/// Kill the container abruptly (SIGKILL: no checkpoint, no clean shutdown),
/// start it again, and wait until the server answers.
async fn crash_container(id: &str, config: &PgConfig) -> Result<()> {
    for verb in ["kill", "start"] {
        let out = tokio::process::Command::new("docker")
            .args([verb, id])
            .output()
            .await
            .map_err(|e| Error::internal(format!("docker {verb}")).with_source(e))?;
        if !out.status.success() {
            return Err(Error::internal(format!(
                "docker {verb} {id}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match admin(&Server {
            config: config.clone(),
            template: true,
            container: None,
            pooler: None,
        })
        .await
        {
            Ok(conn) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

/// A migrated template database on a throw-away server.
///
/// Its default collation is ICU `en-US`, not `C`: a backend must get
/// byte-wise order from its own `COLLATE "C"` columns, and a schema that
/// forgets one fails the ordering cases here as it would in production.
async fn template(server: &Server) -> std::result::Result<String, String> {
    let name = "persistkit_template".to_string();
    let mut conn = admin(server).await.map_err(|e| error_chain(&e))?;
    let c_locale = std::env::var(COLLATION_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("c"));
    let create = if c_locale {
        format!("CREATE DATABASE {name} TEMPLATE template0 LOCALE 'C.UTF-8'")
    } else {
        format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8' \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        )
    };
    exec(&mut conn, create).await.map_err(|e| {
        format!(
            "creating the test template database failed (a server before Postgres 15 has no \
             ICU default collation; set {COLLATION_ENV}=c): {}",
            error_chain(&e)
        )
    })?;
    let store = PgStore::connect(with_database(&server.config, &name))
        .await
        .map_err(|e| error_chain(&e))?;
    store.close().await;
    Ok(name)
}

struct PgHooks {
    server: Server,
    db: String,
    config: PgConfig,
    first: PgStore,
    opened: Mutex<Vec<PgStore>>,
}

impl PgHooks {
    async fn open(&self, config: PgConfig) -> Result<Arc<dyn Store>> {
        let s = PgStore::connect(config).await?;
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(s.clone());
        Ok(Arc::new(s))
    }
}

#[async_trait]
impl FixtureHooks for PgHooks {
    async fn connect(&self) -> Result<Arc<dyn Store>> {
        self.open(self.config.clone().migrate(false)).await
    }

    async fn sibling(&self) -> Option<Result<Arc<dyn Store>>> {
        let config = match self.config.clone().schema("persistkit_sibling") {
            Ok(c) => c.migrate(true),
            Err(e) => return Some(Err(e)),
        };
        Some(self.open(config).await)
    }

    async fn crash(&self) -> Option<Result<()>> {
        let id = self.server.container.as_ref()?;
        Some(crash_container(id, &self.server.config).await)
    }

    fn location(&self) -> Option<String> {
        let sep = if self.config.url.contains('?') {
            '&'
        } else {
            '?'
        };
        Some(format!(
            "{}{sep}schema={}&migrate=false&prepared={}",
            self.config.url, self.config.schema, self.config.prepared
        ))
    }

    async fn reopen(&self) -> Option<Result<Arc<dyn Store>>> {
        self.first.close().await;
        Some(self.open(self.config.clone()).await)
    }

    async fn open_with_newer_schema(&self) -> Option<Result<Arc<dyn Store>, Error>> {
        // The simple query protocol, one message: behind a transaction-
        // pooling PgBouncer even an unnamed statement may be parsed on one
        // server connection and bound on another (two round trips, each
        // its own transaction to the pooler).
        let bump = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "UPDATE \"{}\".persistkit_schema SET version = version + 1",
            self.config.schema
        )))
        .execute(self.first.pool())
        .await;
        if let Err(e) = bump {
            return Some(Err(
                Error::internal("could not bump the schema version").with_source(e)
            ));
        }
        Some(self.open(self.config.clone()).await)
    }

    async fn cleanup(&self) {
        self.first.close().await;
        let opened = std::mem::take(&mut *self.opened.lock().unwrap_or_else(|p| p.into_inner()));
        for s in opened {
            s.close().await;
        }
        if !self.server.template {
            // A user's server: leave nothing behind.
            if let Ok(mut conn) = admin(&self.server).await {
                let _ = exec(
                    &mut conn,
                    format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
                )
                .await;
            }
        }
    }
}

#[async_trait]
impl Harness for PostgresHarness {
    fn name(&self) -> String {
        match &self.source {
            Source::External(url) => format!("postgres ({})", persistkit_core::redact(url)),
            Source::PgBouncer => {
                let (name, tag) = image();
                let (bname, btag) = image_from(PGBOUNCER_IMAGE_ENV, DEFAULT_PGBOUNCER_IMAGE);
                format!("postgres via pgbouncer, transaction pooling ({name}:{tag} + {bname}:{btag} in Docker)")
            }
            _ => match std::env::var(URL_ENV)
                .ok()
                .filter(|_| matches!(self.source, Source::TestDefault))
            {
                Some(url) => format!("postgres ({})", persistkit_core::redact(&url)),
                None => {
                    let (name, tag) = image();
                    format!("postgres ({name}:{tag} in Docker)")
                }
            },
        }
    }

    async fn open_location(&self, location: &str) -> Result<Arc<dyn Store>> {
        Ok(Arc::new(PgStore::open(location).await?))
    }

    async fn preflight(&self) -> std::result::Result<(), SetupError> {
        let server = self.server().await.map_err(|reason| {
            if std::env::var(REQUIRE_DOCKER_ENV).as_deref() == Ok("1") {
                SetupError::Fail(format!("{reason} (and {REQUIRE_DOCKER_ENV}=1)"))
            } else {
                SetupError::Skip(reason)
            }
        })?;
        if server.template {
            return Ok(());
        }
        // A given server: every case creates a database and drops it.
        let mut conn = admin(&server)
            .await
            .map_err(|e| SetupError::Fail(error_chain(&e)))?;
        let may: std::result::Result<(String, bool), sqlx::Error> = sqlx::query_as(
            "SELECT current_user::text, rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut conn)
        .await;
        let _ = conn.close().await;
        match may {
            Ok((_, true)) => Ok(()),
            Ok((role, false)) => Err(SetupError::Fail(no_createdb(&role))),
            Err(e) => Err(SetupError::Fail(format!(
                "cannot ask the server about the role: {e}"
            ))),
        }
    }

    async fn fresh(&self) -> std::result::Result<Fixture, SetupError> {
        self.fresh_pg().await.map(|(f, _)| f)
    }
}

impl PostgresHarness {
    /// Like [`Harness::fresh`], with the concrete store too (benchmarks use
    /// its pool for their hand-written baseline).
    ///
    /// # Errors
    /// As [`Harness::fresh`].
    pub async fn fresh_pg(&self) -> std::result::Result<(Fixture, PgStore), SetupError> {
        self.fresh_pg_config().await.map(|(f, s, _)| (f, s))
    }

    /// A new database on this harness's server: from persistkit's migrated
    /// template where the server is a throw-away one and `migrated`, else
    /// empty.
    async fn new_database(
        &self,
        migrated: bool,
    ) -> std::result::Result<(Server, String), SetupError> {
        let server = match self.server().await {
            Ok(s) => s,
            Err(reason) => {
                return Err(if std::env::var(REQUIRE_DOCKER_ENV).as_deref() == Ok("1") {
                    SetupError::Fail(format!("{reason} (and {REQUIRE_DOCKER_ENV}=1)"))
                } else {
                    SetupError::Skip(reason)
                })
            }
        };
        let fail = |e: Error| SetupError::Fail(error_chain(&e));
        let db = format!(
            "persistkit_t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        let mut conn = admin(&server).await.map_err(fail)?;
        if server.template && migrated {
            let cell = if server.pooler.is_some() {
                &BOUNCER_TEMPLATE
            } else {
                &TEMPLATE
            };
            let tpl = cell
                .get_or_init(|| template(&server))
                .await
                .clone()
                .map_err(SetupError::Fail)?;
            exec(&mut conn, format!("CREATE DATABASE {db} TEMPLATE {tpl}"))
                .await
                .map_err(fail)?;
        } else {
            if let Err(e) = exec(&mut conn, format!("CREATE DATABASE {db}")).await {
                let denied = e
                    .source()
                    .and_then(|s| s.downcast_ref::<sqlx::Error>())
                    .and_then(|s| s.as_database_error())
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "42501");
                return Err(if denied {
                    let role = with_database(&server.config, "")
                        .url
                        .split("://")
                        .nth(1)
                        .and_then(|r| r.split(['@', ':']).next())
                        .unwrap_or("the role")
                        .to_string();
                    SetupError::Fail(no_createdb(&role))
                } else {
                    fail(e)
                });
            }
        }
        let _ = conn.close().await;
        Ok((server, db))
    }

    /// A fresh, empty database on this harness's server, as a URL: for the
    /// harness of a backend of your own on Postgres. The server is the
    /// suite's: `PERSISTKIT_TEST_POSTGRES_URL` if set (the role needs
    /// CREATEDB), else one container per test process, started in Docker
    /// from `PERSISTKIT_POSTGRES_IMAGE` and removed at exit. Without Docker
    /// it is `Skip`, or `Fail` under `PERSISTKIT_REQUIRE_DOCKER=1`.
    /// Drop it with [`drop_database`](Self::drop_database) in the
    /// fixture's cleanup.
    ///
    /// # Errors
    /// As [`Harness::fresh`].
    pub async fn empty_database(&self) -> std::result::Result<String, SetupError> {
        let (server, db) = self.new_database(false).await?;
        Ok(with_database(&server.config, &db).url)
    }

    /// Drop a database [`empty_database`](Self::empty_database) made,
    /// closing its connections; a no-op when it is gone.
    ///
    /// # Errors
    /// `Unavailable` and the like when the server cannot be reached.
    pub async fn drop_database(&self, url: &str) -> Result<()> {
        let server = self.server().await.map_err(Error::unavailable)?;
        let db = url
            .split('?')
            .next()
            .and_then(|base| base.rsplit_once('/'))
            .map(|(_, db)| db.to_string())
            .filter(|db| db.starts_with("persistkit_t"))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{} is not a database empty_database made",
                    persistkit_core::redact(url)
                ))
            })?;
        let mut conn = admin(&server).await?;
        exec(
            &mut conn,
            format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        )
        .await?;
        let _ = conn.close().await;
        Ok(())
    }

    /// Like [`fresh_pg`](Self::fresh_pg), with the configuration that opens
    /// the fresh database too (tests open it again with other options).
    ///
    /// # Errors
    /// As [`Harness::fresh`].
    pub async fn fresh_pg_config(
        &self,
    ) -> std::result::Result<(Fixture, PgStore, PgConfig), SetupError> {
        let (server, db) = self.new_database(true).await?;
        let fail = |e: Error| SetupError::Fail(error_chain(&e));
        let config = store_config(&server, &db);
        let first = PgStore::connect(config.clone()).await.map_err(fail)?;
        let fixture = Fixture {
            store: Arc::new(first.clone()),
            hooks: Box::new(PgHooks {
                server,
                db,
                config: config.clone(),
                first: first.clone(),
                opened: Mutex::new(Vec::new()),
            }),
        };
        Ok((fixture, first, config))
    }
}

#[cfg(all(test, feature = "docker"))]
mod tests {
    use super::*;

    /// With no registry, a missing image names the locally built one to
    /// use instead, when there is one.
    #[test]
    fn a_missing_image_names_the_local_build() {
        let locals = local_builds("ci/images/postgres/build");
        let why = why_no_container(
            "persistkit-no-such-image",
            "0",
            IMAGE_ENV,
            "ci/images/postgres/build",
            &"pull access denied",
        );
        if why.starts_with("no Docker") {
            eprintln!("SKIPPED: {why}");
            return;
        }
        assert!(why.starts_with("image missing"), "{why}");
        match locals.first() {
            Some(local) => assert!(
                why.contains(&format!("{IMAGE_ENV}={local}")),
                "names the local build {local}: {why}"
            ),
            None => assert!(
                why.contains("build it with ci/images/postgres/build"),
                "{why}"
            ),
        }
        assert!(local_builds("nonsense").is_empty());
    }
}
