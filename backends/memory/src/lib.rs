//! The memory backend: the whole contract in process memory.
//!
//! It is the executable specification the SQL backends are compared against,
//! so it is written for obviousness: one mutex around plain ordered maps,
//! which makes every call atomic and linearizable.
#![deny(missing_docs)]

mod admin;
mod batch;
mod events;
mod idempotency;
mod metrics;
mod records;
mod state;
mod store;

pub use store::MemoryStore;
