//! A Redis server for tests of caches shared across processes:
//! `PERSISTKIT_REDIS_URL` when set, else one container per test process,
//! with the same skip and require rules as Postgres (no Docker: skipped, or
//! a failure with `PERSISTKIT_REQUIRE_DOCKER=1`).

use std::sync::Arc;

use async_trait::async_trait;
use persistkit_core::{Error, Result as StoreResult, Store};
use tokio::sync::OnceCell;

use super::postgres::on_own_thread;
use super::postgres::REQUIRE_DOCKER_ENV;
#[cfg(feature = "docker")]
use super::postgres::{free_port, image_from, remove_at_exit, why_no_container};
use crate::harness::{Fixture, Harness};
use crate::SetupError;

/// Environment variable: a Redis server to use instead of a container.
pub const REDIS_URL_ENV: &str = "PERSISTKIT_REDIS_URL";
/// Environment variable: the Redis image (default [`DEFAULT_REDIS_IMAGE`]).
pub const REDIS_IMAGE_ENV: &str = "PERSISTKIT_REDIS_IMAGE";
/// The image `ci/images/redis/build` makes; `redis:7` does as well.
pub const DEFAULT_REDIS_IMAGE: &str = "persistkit/redis:7-local";

static REDIS: OnceCell<Result<(String, String), String>> = OnceCell::const_new();

/// The URL of this process's Redis server (`redis://127.0.0.1:PORT`), and
/// its container id when it runs in one (empty for `PERSISTKIT_REDIS_URL`):
/// what an outage test pauses.
///
/// # Errors
/// `Skip` when Docker or the image is missing, `Fail` instead with
/// `PERSISTKIT_REQUIRE_DOCKER=1`.
pub async fn redis_server() -> Result<(String, String), SetupError> {
    if let Some(url) = std::env::var(REDIS_URL_ENV).ok().filter(|s| !s.is_empty()) {
        return Ok((url, String::new()));
    }
    let started = REDIS.get_or_init(start).await;
    started.clone().map_err(|reason| {
        if std::env::var(REQUIRE_DOCKER_ENV).as_deref() == Ok("1") {
            SetupError::Fail(format!("{reason} (and {REQUIRE_DOCKER_ENV}=1)"))
        } else {
            SetupError::Skip(reason)
        }
    })
}

/// For a test of its own rather than a suite: the server, or `None` after
/// printing why the test is skipped.
///
/// # Panics
/// When setting up fails (`PERSISTKIT_REQUIRE_DOCKER=1` without Docker).
pub async fn redis_server_or_skip(test: &str) -> Option<(String, String)> {
    match redis_server().await {
        Ok(server) => Some(server),
        Err(SetupError::Skip(why)) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
        Err(e) => panic!("{test}: no Redis server: {e:?}"),
    }
}

/// Start the container on a thread of its own, so it outlives every
/// test's runtime; it is removed when the process exits.
async fn start() -> Result<(String, String), String> {
    on_own_thread("persistkit-redis-container", container).await
}

#[cfg(not(feature = "docker"))]
async fn container() -> Result<((String, String), Box<dyn std::any::Any + Send>), String> {
    Err(super::postgres::NO_DOCKER_FEATURE.to_string())
}

#[cfg(feature = "docker")]
async fn container() -> Result<((String, String), Box<dyn std::any::Any + Send>), String> {
    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{GenericImage, ImageExt};
    let (name, tag) = image_from(REDIS_IMAGE_ENV, DEFAULT_REDIS_IMAGE);
    // A fixed host port survives `docker pause`/`unpause` and a restart.
    let port = free_port()?;
    let redis = GenericImage::new(name.clone(), tag.clone())
        .with_exposed_port(6379.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
        .with_mapped_port(port, 6379.tcp())
        .with_labels(super::postgres::test_labels())
        .with_startup_timeout(std::time::Duration::from_secs(60))
        .start()
        .await
        .map_err(|e| why_no_container(&name, &tag, REDIS_IMAGE_ENV, "ci/images/redis/build", &e))?;
    remove_at_exit(redis.id());
    let id = redis.id().to_string();
    let url = format!("redis://127.0.0.1:{port}");
    // The second process uses this server, not one of its own.
    crate::child::forward_env(REDIS_URL_ENV, &url);
    Ok(((url, id), Box::new(redis)))
}

/// A harness that needs a Redis server: `make` builds it from the server's
/// URL once the server is up ([`redis_server`]), and every call goes to
/// what it built. Without a server the cases are skipped, with the reason
/// (or fail, with `PERSISTKIT_REQUIRE_DOCKER=1`).
///
/// ```no_run
/// use persistkit_conformance::harnesses::{Layered, MemoryHarness, WithRedis};
/// let h = WithRedis::new("cached on redis over memory", |url: &str| {
///     let url = url.to_string();
///     Layered::scoped(MemoryHarness, "cached on redis", std::sync::Arc::new(move |s, scope| {
///         let _ = (&url, scope); // make the layer on `url`, keyed by `scope`
///         s
///     }))
/// });
/// ```
pub struct WithRedis<H> {
    name: String,
    make: Box<dyn Fn(&str) -> H + Send + Sync>,
    built: OnceCell<H>,
}

impl<H: Harness> WithRedis<H> {
    /// `make` builds the harness on a server's URL; `name` names it in
    /// reports.
    pub fn new(name: impl Into<String>, make: impl Fn(&str) -> H + Send + Sync + 'static) -> Self {
        WithRedis {
            name: name.into(),
            make: Box::new(make),
            built: OnceCell::new(),
        }
    }

    async fn harness(&self) -> Result<&H, SetupError> {
        let (url, _) = redis_server().await?;
        Ok(self.built.get_or_init(|| async { (self.make)(&url) }).await)
    }
}

#[async_trait]
impl<H: Harness> Harness for WithRedis<H> {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn preflight(&self) -> Result<(), SetupError> {
        self.harness().await?.preflight().await
    }

    async fn fresh(&self) -> Result<Fixture, SetupError> {
        self.harness().await?.fresh().await
    }

    async fn open_location(&self, location: &str) -> StoreResult<Arc<dyn Store>> {
        let h = self.harness().await.map_err(|e| {
            Error::unavailable(format!("no Redis server for the second process: {e:?}"))
        })?;
        h.open_location(location).await
    }
}
