//! Every limit and default of the contract, in one place: validation,
//! backends and the suite read them from here.

use std::time::Duration;

/// Longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Largest JSON payload, serialized.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;
/// Largest page a read may ask for.
pub const MAX_LIMIT: usize = 10_000;
/// Widest aggregation bucket: 10 000 years of seconds.
pub const MAX_BUCKET_SECONDS: u64 = 10_000 * 366 * 86_400;
/// Largest event id, log position or record version: what a signed 64-bit
/// database column holds.
pub const MAX_SEQUENCE: u64 = i64::MAX as u64;
/// Most fields one index may name.
pub const MAX_INDEX_FIELDS: usize = 8;
/// Most indexes one collection may have.
pub const MAX_INDEXES_PER_COLLECTION: usize = 16;
/// Most writes one batch may hold.
pub const MAX_BATCH_ITEMS: usize = 1_000;
/// The namespace a handle uses unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Page size when a filter names none.
pub const DEFAULT_LIMIT: usize = 1_000;
/// Longest idempotency TTL: about 100 years.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 366 * 86_400);
/// How long a call may wait for the backend before it is `Unavailable`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts [`Handle::update`](crate::Handle::update) made before giving
/// up with `Conflict`, until it gave up on time instead.
#[deprecated(
    note = "update gives up when the handle's timeout would pass, not after a number of attempts"
)]
pub const UPDATE_ATTEMPTS: u32 = 64;
