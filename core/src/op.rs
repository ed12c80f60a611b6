//! Every operation a store receives, one struct per call that takes
//! arguments, gathered from the domains' `op` modules.
//!
//! A store method takes the call's context ([`Cx`](crate::Cx): namespace,
//! clock reading) and one operation. Operations are `#[non_exhaustive]`:
//! a parameter added later is a new field, which only the backends that
//! need it read. The handle builds every operation after validating it
//! (ADR 1); outside core, a layer builds one only to pass on a changed
//! operation, with the constructors.
//!
//! Calls whose operation already was one struct take it as it is:
//! [`PutRecord`](crate::PutRecord), [`Index`](crate::Index),
//! [`MetricQuery`](crate::MetricQuery),
//! [`AggregateQuery`](crate::AggregateQuery),
//! [`EventQuery`](crate::EventQuery) and
//! [`PurgeCutoffs`](crate::PurgeCutoffs).

pub use crate::batch::op::Apply;
pub use crate::events::op::{Append, ReadLog};
pub use crate::idempotency::op::{ClaimKey, CompleteKey, ExtendKey, GetKey, ReleaseKey, ScanKeys};
pub use crate::metrics::op::{ListMetricNames, WriteMetrics};
pub use crate::records::op::{
    CountRecords, DeleteRecord, FindRecords, GetRecord, IncrField, ListIndexes, ListRecords,
};
