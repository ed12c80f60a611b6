//! The kit for backend authors: the helpers a backend should use rather
//! than write again, so that its errors, versions, keys and digests agree
//! with every other backend's. Callers never need these.

pub use crate::admin::archive::not_empty;
pub use crate::events::next_position;
pub use crate::idempotency::{check_live_claim, lost_claim};
pub use crate::metrics::{aggregate_sorted, quantile_rank, quantiles_of, AggregateFold};
pub use crate::records::index::{index_differs, no_such_index, unique_conflict};
pub use crate::records::{
    add_to_field, check_expect, expectation_error, incr_by_compare_and_set, incr_put, incremented,
    next_version, put_refused, version_exhausted,
};
pub use crate::validate::{canonical_json, duration_option, json, MAX_SEQUENCE};
