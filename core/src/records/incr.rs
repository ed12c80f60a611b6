//! Adding to an integer field of a record: the rule every backend applies
//! (`add_to_field`, `incremented`), and the compare-and-set loop a store
//! without transactions gets by default (`incr_by_compare_and_set`).

use serde_json::Value;

use super::record::{Expect, PutRecord, Record};
use crate::error::{Error, Result};

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

/// The write of an incr: `data` over `current` (as read in the same step),
/// at its version or expecting no record, keeping its expiry.
pub fn incr_put<'a>(
    op: &super::op::IncrField<'a>,
    current: Option<&Record>,
    data: &'a Value,
) -> PutRecord<'a> {
    PutRecord {
        collection: op.collection,
        id: op.id,
        data,
        expect: current.map_or(Expect::Absent, |r| Expect::Version(r.version)),
        expires_at: current.and_then(|r| r.expires_at),
    }
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
        let put = incr_put(op, current.as_ref(), &data);
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
