//! Every SQL statement of the backend, by name, one module per domain.

mod admin;
mod events;
mod idempotency;
mod metrics;
mod records;

pub(crate) use admin::*;
pub(crate) use events::*;
pub(crate) use idempotency::*;
pub(crate) use metrics::*;
pub(crate) use records::*;
