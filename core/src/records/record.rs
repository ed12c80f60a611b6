//! A record, what a write expects, and the helpers every backend uses to
//! judge expectations and versions.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::limits::MAX_SEQUENCE;
use crate::time::Timestamp;

/// What a write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// Anything (or nothing).
    Any,
    /// No record.
    Absent,
    /// Exactly this version (1 or more).
    Version(u64),
}

/// Why [`Handle::try_update`](crate::Handle::try_update) wrote nothing:
/// the caller's `change` refused, or the store did.
#[derive(Debug)]
pub enum UpdateError<E> {
    /// `change` returned this error of the caller's own.
    Aborted(E),
    /// The store refused or failed (a `Conflict` after losing every race
    /// until the timeout, a unique index, `Unavailable`, ...).
    Store(Error),
}

impl<E> From<Error> for UpdateError<E> {
    fn from(e: Error) -> Self {
        UpdateError::Store(e)
    }
}

impl UpdateError<Error> {
    /// One `persistkit::Error`, whichever side refused.
    pub fn flatten(self) -> Error {
        match self {
            UpdateError::Aborted(e) | UpdateError::Store(e) => e,
        }
    }
}

impl<E: std::fmt::Display> std::fmt::Display for UpdateError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpdateError::Aborted(e) => write!(f, "update aborted by its change: {e}"),
            UpdateError::Store(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for UpdateError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpdateError::Aborted(e) => Some(e),
            UpdateError::Store(e) => Some(e),
        }
    }
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Collection.
    pub collection: String,
    /// Id within the collection.
    pub id: String,
    /// The document.
    pub data: Value,
    /// 1 on creation, +1 per write.
    pub version: u64,
    /// When created.
    pub created_at: Timestamp,
    /// When last written.
    pub updated_at: Timestamp,
    /// When it expires, if it does: from then on every call treats it as
    /// absent, and purge removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl Record {
    /// Whether the record is still visible at `now` (not expired).
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
}

/// One record write, as a backend receives it (validated).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PutRecord<'a> {
    /// Collection.
    pub collection: &'a str,
    /// Id within the collection.
    pub id: &'a str,
    /// The new document.
    pub data: &'a Value,
    /// What the write expects to find.
    pub expect: Expect,
    /// When the record expires (`None`: never). Replaces any earlier expiry.
    pub expires_at: Option<Timestamp>,
}

/// Whether `expect` holds for a record at version `current` (`None`: absent).
///
/// # Errors
/// `Conflict` carrying `current`, as [`expectation_error`] builds it.
pub fn check_expect(current: Option<u64>, expect: Expect) -> Result<()> {
    match (expect, current) {
        (Expect::Any, _) | (Expect::Absent, None) => Ok(()),
        (Expect::Version(v), Some(c)) if v == c => Ok(()),
        _ => Err(expectation_error(expect, current)),
    }
}

/// The error for a write whose expectation failed, given the version read
/// afterwards. Every backend reports failed expectations through this, so
/// the messages and the carried version agree everywhere.
pub fn expectation_error(expect: Expect, current: Option<u64>) -> Error {
    match (expect, current) {
        (Expect::Version(v), Some(c)) => {
            Error::conflict(Some(c), format!("expected version {v}, found version {c}"))
        }
        (Expect::Version(v), None) => {
            Error::conflict(None, format!("expected version {v}, found no record"))
        }
        (_, Some(c)) => Error::conflict(Some(c), format!("expected no record, found version {c}")),
        // The expectation held when re-read: the record changed in between.
        (_, None) => Error::conflict(None, "the record changed concurrently; retry"),
    }
}

/// The version a write of a record at `current` gets.
///
/// # Errors
/// `InvalidInput` when `current` is the last version ([`MAX_SEQUENCE`]):
/// the record cannot be written again, only deleted.
pub fn next_version(collection: &str, id: &str, current: u64) -> Result<u64> {
    if current >= MAX_SEQUENCE {
        return Err(version_exhausted(collection, id));
    }
    Ok(current + 1)
}

/// The error for writing a record that has reached the last version.
pub fn version_exhausted(collection: &str, id: &str) -> Error {
    Error::invalid(format!(
        "record {collection:?}/{id:?} is at version {MAX_SEQUENCE}, the last one; \
         it cannot be written again (delete it to start over); nothing was written"
    ))
}

/// The error for a conditional write that matched no row, given the version
/// read afterwards: the record's last version when `expect` would have held
/// (see [`version_exhausted`]), else the failed expectation.
pub fn put_refused(collection: &str, id: &str, expect: Expect, current: Option<u64>) -> Error {
    if current == Some(MAX_SEQUENCE) && check_expect(current, expect).is_ok() {
        return version_exhausted(collection, id);
    }
    expectation_error(expect, current)
}
