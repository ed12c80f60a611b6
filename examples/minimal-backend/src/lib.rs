//! A minimal persistkit backend: every domain on `BTreeMap`s behind one
//! lock, in the layout the reference backends use (`store.rs` for the
//! struct, one module per domain). Copy it to start a backend of your own.
//!
//! It declares none of the optional parts of the contract
//! ([`Capabilities::none`](persistkit_core::Capabilities::none)): no
//! indexes, no unique indexes, no record TTL, no batches, no durability.
//! The handle refuses those calls with `Unsupported` before they reach this
//! store, and the conformance suite reports their cases as unsupported;
//! every other case runs, and passes (`tests/conformance.rs`).
//!
//! Each method receives the call's context (`cx.ns()`, `cx.now()`) and one
//! operation whose fields are its arguments, already validated by the
//! handle. The helpers in [`persistkit_core::backend`] give the errors,
//! versions and digests every backend must agree on.
#![deny(missing_docs)]

mod admin;
mod batch;
mod events;
mod idempotency;
mod metrics;
mod records;
mod store;

pub use store::BTreeStore;
