//! Harnesses for the reference backends: memory always, SQLite and
//! Postgres behind their cargo features (`sqlite`, `postgres`).

mod layered;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use layered::{Layered, ScopedWrap, Wrap};
pub use memory::MemoryHarness;
#[cfg(feature = "postgres")]
pub use postgres::{
    test_labels, PostgresHarness, COLLATION_ENV, DEFAULT_IMAGE, DEFAULT_PGBOUNCER_IMAGE,
    DOCKER_SUPPORT, IMAGE_ENV, NO_DOCKER_FEATURE, PGBOUNCER_IMAGE_ENV, REQUIRE_DOCKER_ENV, URL_ENV,
};
#[cfg(feature = "postgres")]
pub use redis::{
    redis_server, redis_server_or_skip, WithRedis, DEFAULT_REDIS_IMAGE, REDIS_IMAGE_ENV,
    REDIS_URL_ENV,
};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteHarness;
