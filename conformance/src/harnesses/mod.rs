//! Harnesses for the reference backends, each behind its cargo feature.

#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "memory")]
pub use memory::MemoryHarness;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteHarness;
