//! Postgres fixtures: a fresh database per case, on a server that is either
//! given (`PERSISTKIT_TEST_POSTGRES_URL`, or `persistkit check postgres://…`)
//! or started once per process in Docker with testcontainers.

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

/// Where the server comes from.
#[derive(Debug, Clone)]
enum Source {
    /// The test default: `PERSISTKIT_TEST_POSTGRES_URL`, else Docker.
    TestDefault,
    /// Always a Docker container.
    Docker,
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
}

static DOCKER: OnceCell<std::result::Result<Server, String>> = OnceCell::const_new();
static CONTAINERS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static NEXT_DB: AtomicU64 = AtomicU64::new(0);
static TEMPLATE: OnceCell<std::result::Result<String, String>> = OnceCell::const_new();

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

fn image() -> (String, String) {
    let image = std::env::var(IMAGE_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.into());
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image, "latest".to_string()),
    }
}

/// Start the process's container on a thread of its own, so it outlives
/// every test's runtime; it is removed when the process exits.
async fn start_container() -> std::result::Result<Server, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("persistkit-postgres-container".into())
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
                use testcontainers::runners::AsyncRunner;
                use testcontainers::ImageExt;
                let (name, tag) = image();
                // A fixed host port survives `docker kill` + `docker start`.
                let port =
                    match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
                        Ok(a) => a.port(),
                        Err(e) => {
                            let _ = tx.send(Err(format!("no free local port: {e}")));
                            return;
                        }
                    };
                let started = testcontainers_modules::postgres::Postgres::default()
                    .with_name(name.clone())
                    .with_tag(tag.clone())
                    .with_mapped_port(port, testcontainers::core::IntoContainerPort::tcp(5432))
                    .with_label("persistkit.test", "1")
                    .with_startup_timeout(std::time::Duration::from_secs(120))
                    .start()
                    .await;
                let container = match started {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(format!("no Docker: cannot start {name}:{tag}: {e}")));
                        return;
                    }
                };
                CONTAINERS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(container.id().to_string());
                // SAFETY: registering a plain extern "C" fn with atexit has no preconditions.
                unsafe {
                    libc::atexit(remove_containers);
                }
                let url = format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres");
                let server = Server {
                    config: PgConfig::new(url),
                    template: true,
                    container: Some(container.id().to_string()),
                };
                let _ = tx.send(Ok(server));
                // Keep the container (and this runtime) alive until exit.
                std::future::pending::<()>().await;
            });
        })
        .map_err(|e| e.to_string())?;
    rx.await
        .map_err(|_| "the container thread died".to_string())?
}

impl PostgresHarness {
    async fn server(&self) -> std::result::Result<Server, String> {
        let external = match &self.source {
            Source::External(url) => Some(url.clone()),
            Source::TestDefault => std::env::var(URL_ENV).ok().filter(|s| !s.is_empty()),
            Source::Docker => None,
        };
        if let Some(url) = external {
            let config = PgConfig::from_url(&url).map_err(|e| e.to_string())?;
            return Ok(Server {
                config,
                template: false,
                container: None,
            });
        }
        DOCKER.get_or_init(start_container).await.clone()
    }
}

fn persistkit_postgres_redact(url: &str) -> String {
    // Same rule as the backend's Debug: never show a password.
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
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
    PgConfig {
        url,
        ..config.clone()
    }
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
            "{}{sep}schema={}&migrate=false",
            self.config.url, self.config.schema
        ))
    }

    async fn reopen(&self) -> Option<Result<Arc<dyn Store>>> {
        self.first.close().await;
        Some(self.open(self.config.clone()).await)
    }

    async fn open_with_newer_schema(&self) -> Option<Result<Arc<dyn Store>, Error>> {
        let bump = sqlx::query(sqlx::AssertSqlSafe(format!(
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
            Source::External(url) => format!("postgres ({})", persistkit_postgres_redact(url)),
            _ => match std::env::var(URL_ENV)
                .ok()
                .filter(|_| matches!(self.source, Source::TestDefault))
            {
                Some(url) => format!("postgres ({})", persistkit_postgres_redact(&url)),
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

    /// Like [`fresh_pg`](Self::fresh_pg), with the configuration that opens
    /// the fresh database too (tests open it again with other options).
    ///
    /// # Errors
    /// As [`Harness::fresh`].
    pub async fn fresh_pg_config(
        &self,
    ) -> std::result::Result<(Fixture, PgStore, PgConfig), SetupError> {
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
        if server.template {
            let tpl = TEMPLATE
                .get_or_init(|| template(&server))
                .await
                .clone()
                .map_err(SetupError::Fail)?;
            exec(&mut conn, format!("CREATE DATABASE {db} TEMPLATE {tpl}"))
                .await
                .map_err(fail)?;
        } else {
            exec(&mut conn, format!("CREATE DATABASE {db}"))
                .await
                .map_err(fail)?;
        }
        let _ = conn.close().await;
        let config = with_database(&server.config, &db);
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
