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

/// `current` (or `{}` when absent) with `by` added to the integer at the
/// JSON pointer `field`: a missing field counts as 0, missing parents are
/// created as objects.
///
/// # Errors
/// `InvalidInput` when the field holds something other than an integer, a
/// parent is not an object, or the sum leaves the 64-bit signed range.
pub fn add_to_field(current: Option<&Value>, field: &str, by: i64) -> Result<Value> {
    let mut doc = current
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let tokens = crate::records::index::pointer_tokens(field);
    let (last, parents) = tokens.split_last().expect("a field has a token");
    let mut at = &mut doc;
    for t in parents {
        let Value::Object(map) = at else {
            return Err(Error::invalid(format!(
                "incr: a parent of {field:?} is not an object; nothing was written"
            )));
        };
        at = map
            .entry(t.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    let Value::Object(map) = at else {
        return Err(Error::invalid(format!(
            "incr: the parent of {field:?} is not an object; nothing was written"
        )));
    };
    let old = match map.get(last) {
        None => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            Error::invalid(format!(
                "incr: {field:?} holds {v}, not a 64-bit integer; nothing was written"
            ))
        })?,
    };
    let new = old.checked_add(by).ok_or_else(|| {
        Error::invalid(format!(
            "incr: {old} + {by} at {field:?} leaves the 64-bit range; nothing was written"
        ))
    })?;
    map.insert(last.clone(), Value::from(new));
    Ok(doc)
}

/// The data `current` becomes when `by` is added at `field`: what
/// [`add_to_field`] gives, checked as any record data (size, depth).
///
/// # Errors
/// As [`add_to_field`]; `InvalidInput` when the result is no valid record.
pub fn incremented(current: Option<&Value>, field: &str, by: i64) -> Result<Value> {
    let data = add_to_field(current, field, by)?;
    crate::validate::json("record data", &data)?;
    Ok(data)
}

/// [`RecordStore::incr`](super::RecordStore::incr) for a store with no
/// transaction to do it in: read, add, and write at the version read;
/// again on a lost race, after a short jittered pause, until the call's
/// deadline (5 s when it has none).
///
/// # Errors
/// As `get` and `put`; `Conflict` when other writers won every race
/// until the deadline.
pub async fn incr_by_compare_and_set<S>(
    store: &S,
    cx: &crate::cx::Cx,
    op: &super::op::IncrField<'_>,
) -> Result<Record>
where
    S: super::RecordStore + ?Sized,
{
    let give_up = cx
        .deadline()
        .unwrap_or_else(|| std::time::Instant::now() + crate::limits::DEFAULT_TIMEOUT);
    let mut pauses = crate::retry::backoff(
        std::time::Duration::from_micros(200),
        std::time::Duration::from_millis(20),
        u32::MAX,
    );
    let mut lost = 0u32;
    loop {
        let current = store
            .get(cx, &super::op::GetRecord::new(op.collection, op.id))
            .await?;
        let data = incremented(current.as_ref().map(|r| &r.data), op.field, op.by)?;
        let put = PutRecord {
            collection: op.collection,
            id: op.id,
            data: &data,
            expect: current
                .as_ref()
                .map_or(Expect::Absent, |r| Expect::Version(r.version)),
            expires_at: current.as_ref().and_then(|r| r.expires_at),
        };
        match store.put(cx, &put).await {
            Err(e) if e.kind() == crate::ErrorKind::Conflict && e.unique_conflict().is_none() => {
                lost += 1;
                let pause = pauses
                    .next()
                    .unwrap_or(std::time::Duration::from_millis(20));
                if std::time::Instant::now() + pause >= give_up {
                    return Err(Error::conflict(
                        e.current_version(),
                        format!(
                            "incr of {:?}/{:?} lost the race to other writers {lost} times \
                             before its deadline; nothing was written",
                            op.collection, op.id
                        ),
                    ));
                }
                tokio::time::sleep(pause).await;
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn add_to_field_rules() {
        assert_eq!(add_to_field(None, "/n", 2).unwrap(), json!({"n": 2}));
        assert_eq!(
            add_to_field(Some(&json!({"a": {"n": 1}, "x": 1})), "/a/n", -3).unwrap(),
            json!({"a": {"n": -2}, "x": 1})
        );
        assert_eq!(
            add_to_field(Some(&json!({})), "/a/b", 1).unwrap(),
            json!({"a": {"b": 1}})
        );
        assert!(add_to_field(Some(&json!({"n": "1"})), "/n", 1).is_err());
        assert!(add_to_field(Some(&json!({"n": 1.5})), "/n", 1).is_err());
        assert!(add_to_field(Some(&json!({"a": 1})), "/a/b", 1).is_err());
        assert!(add_to_field(Some(&json!({"n": i64::MAX})), "/n", 1).is_err());
        assert!(add_to_field(Some(&json!([1])), "/0", 1).is_err());
    }
}
