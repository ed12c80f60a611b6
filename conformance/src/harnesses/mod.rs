//! Harnesses for the reference backends, each behind its cargo feature.

#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "memory")]
pub use memory::MemoryHarness;
#[cfg(feature = "postgres")]
pub use postgres::{
    PostgresHarness, COLLATION_ENV, DEFAULT_IMAGE, IMAGE_ENV, REQUIRE_DOCKER_ENV, URL_ENV,
};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteHarness;
