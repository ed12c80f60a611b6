//! Declared indexes on record fields, and the queries that use them.
//!
//! An index names one or more fields of a collection's documents by JSON
//! pointer (`/status`, `/owner/id`). Each record gets one index key: the
//! values at those paths, encoded so that comparing keys byte-wise orders
//! them by the type order and then the value:
//!
//! `null` < `false` < `true` < numbers (by value, as 64-bit floats) <
//! strings (byte-wise, UTF-8).
//!
//! A record whose value at any of the paths is missing, an array or an
//! object has no key and is not in the index. Every backend stores the same
//! bytes (the SQL backends compute them in the database, with the same
//! rules), so `find` returns the same records in the same order everywhere.

use std::ops::Bound;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record::Record;
use crate::error::{Error, Result};

/// A declared index on a collection's records.
///
/// Only scalar values are indexed: a record whose value at one of the
/// fields is missing, an array or an object is not in the index, so
/// [`Handle::find`](crate::Handle::find) never returns it through this
/// index (REC-5). To find records by the members of an array, keep each
/// member in a record of its own, or index a scalar field derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// The collection it indexes.
    pub collection: String,
    /// Its name, unique within the collection; errors name it.
    pub name: String,
    /// JSON pointers to the indexed fields, in key order.
    pub fields: Vec<String>,
    /// Whether two records may share a key.
    #[serde(default)]
    pub unique: bool,
}

impl Index {
    /// A non-unique index `name` on `fields` of `collection`.
    pub fn new(
        collection: impl Into<String>,
        name: impl Into<String>,
        fields: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Index {
            collection: collection.into(),
            name: name.into(),
            fields: fields.into_iter().map(Into::into).collect(),
            unique: false,
        }
    }

    /// The same index, refusing a second record with the same key.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// The fields as lists of path tokens (`/a~1b/c` is `["a/b", "c"]`),
    /// the form the SQL backends store.
    pub fn field_tokens(&self) -> Vec<Vec<String>> {
        self.fields.iter().map(|f| pointer_tokens(f)).collect()
    }

    /// This index's key for `data`, or `None` when the record is not in it.
    pub fn key_of(&self, data: &Value) -> Option<Vec<u8>> {
        let mut key = Vec::new();
        for field in &self.fields {
            encode_value(data.pointer(field)?, &mut key)?;
        }
        Some(key)
    }
}

/// The unescaped tokens of a JSON pointer (which starts with `/`).
pub fn pointer_tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

const TAG_NULL: u8 = 0x01;
const TAG_FALSE: u8 = 0x02;
const TAG_TRUE: u8 = 0x03;
const TAG_NUMBER: u8 = 0x04;
const TAG_STRING: u8 = 0x05;
/// Greater than every tag: a key prefix followed by this is above every key
/// that extends the prefix.
const AFTER_ALL: u8 = 0xFF;

/// Append the order-preserving encoding of a scalar to `out`; `None` (and
/// nothing appended that matters) for an array or an object.
fn encode_value(v: &Value, out: &mut Vec<u8>) -> Option<()> {
    match v {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Number(n) => {
            // Adding 0.0 turns -0.0 into 0.0, so both compare equal.
            let f = n.as_f64()? + 0.0;
            let bits = f.to_bits();
            let ordered = if f < 0.0 { !bits } else { bits ^ (1 << 63) };
            out.push(TAG_NUMBER);
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        Value::String(s) => {
            // Strings hold no U+0000 (the JSON rules refuse it), so a 0
            // byte ends the string and a shorter string sorts first.
            out.push(TAG_STRING);
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        Value::Array(_) | Value::Object(_) => return None,
    }
    Some(())
}

/// What [`find`](crate::Handle::find) asks for: equality on some fields and
/// at most one range, on the field an index names right after them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Find {
    pub(crate) eq: Vec<(String, Value)>,
    pub(crate) range: Option<(String, Bound<Value>, Bound<Value>)>,
    pub(crate) limit: Option<usize>,
    pub(crate) cursor: Option<String>,
}

impl Find {
    /// An empty query; name at least one field.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records whose `field` equals `value` (a scalar: string, number,
    /// boolean or null).
    pub fn eq(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.eq.push((field.into(), value.into()));
        self
    }

    /// Records whose `field` is within `from`..`to`, by the index order.
    pub fn range(mut self, field: impl Into<String>, from: Bound<Value>, to: Bound<Value>) -> Self {
        self.range = Some((field.into(), from, to));
        self
    }

    /// Records whose `field` is at least `from` and below `to`.
    pub fn between(
        self,
        field: impl Into<String>,
        from: impl Into<Value>,
        to: impl Into<Value>,
    ) -> Self {
        self.range(
            field,
            Bound::Included(from.into()),
            Bound::Excluded(to.into()),
        )
    }

    /// Page size (default 1 000, at most 10 000).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continue after a page's `next_cursor`.
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }
}

/// A query resolved to one index and a byte range of its keys: what a
/// backend's `find` receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindQuery {
    /// The index to read.
    pub index: String,
    /// Keys at or above this.
    pub from: Vec<u8>,
    /// Keys below this.
    pub to: Vec<u8>,
    /// Resume after this (key, id), exclusive.
    pub after: Option<(Vec<u8>, String)>,
}

/// A record found through an index, with its key there.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The record's key in the index.
    pub key: Vec<u8>,
    /// The record.
    pub record: Record,
}

/// Pick the index for `find` among `indexes` (one collection's) and turn
/// the query into a key range: the index with the fewest fields whose first
/// fields are the equality fields (in any order), followed by the range
/// field if there is one. Ties go to the first name.
///
/// # Errors
/// `InvalidInput` when no index serves the query, naming the field that no
/// index has (or the order the query needs).
pub fn plan(collection: &str, indexes: &[Index], find: &Find) -> Result<(Index, Vec<u8>, Vec<u8>)> {
    let eq_fields: Vec<&str> = find.eq.iter().map(|(f, _)| f.as_str()).collect();
    let range_field = find.range.as_ref().map(|(f, _, _)| f.as_str());
    let serves = |ix: &Index| {
        let n = eq_fields.len();
        let needed = n + usize::from(range_field.is_some());
        ix.fields.len() >= needed
            && eq_fields
                .iter()
                .all(|f| ix.fields[..n].iter().any(|g| g == f))
            && range_field.is_none_or(|r| ix.fields[n] == r)
    };
    let Some(ix) = indexes
        .iter()
        .filter(|ix| serves(ix))
        .min_by(|a, b| (a.fields.len(), &a.name).cmp(&(b.fields.len(), &b.name)))
    else {
        let all = eq_fields.iter().copied().chain(range_field);
        let missing = all
            .clone()
            .find(|f| !indexes.iter().any(|ix| ix.fields.iter().any(|g| g == f)));
        return Err(Error::invalid(match missing {
            Some(f) => format!(
                "no index of collection {collection:?} has the field {f:?}; \
                 create one with create_index (find never scans a collection)"
            ),
            None => format!(
                "no index of collection {collection:?} has the equality fields {eq_fields:?} \
                 first{}; create one with create_index",
                match range_field {
                    Some(r) => format!(", then the range field {r:?}"),
                    None => String::new(),
                }
            ),
        }));
    };
    let mut prefix = Vec::new();
    for field in &ix.fields[..eq_fields.len()] {
        let (_, v) = find.eq.iter().find(|(f, _)| f == field).expect("served");
        encode_value(v, &mut prefix).ok_or_else(|| not_scalar(field))?;
    }
    let bound = |v: &Value, past: bool| -> Result<Vec<u8>> {
        let mut k = prefix.clone();
        encode_value(v, &mut k).ok_or_else(|| not_scalar(range_field.unwrap_or_default()))?;
        if past {
            k.push(AFTER_ALL);
        }
        Ok(k)
    };
    let mut past_prefix = prefix.clone();
    past_prefix.push(AFTER_ALL);
    let (from, to) = match &find.range {
        None => (prefix.clone(), past_prefix),
        Some((_, lo, hi)) => (
            match lo {
                Bound::Unbounded => prefix.clone(),
                Bound::Included(v) => bound(v, false)?,
                Bound::Excluded(v) => bound(v, true)?,
            },
            match hi {
                Bound::Unbounded => past_prefix,
                Bound::Included(v) => bound(v, true)?,
                Bound::Excluded(v) => bound(v, false)?,
            },
        ),
    };
    Ok((ix.clone(), from, to))
}

fn not_scalar(field: &str) -> Error {
    Error::invalid(format!(
        "the value for field {field:?} is an array or an object; \
         indexes hold strings, numbers, booleans and null only"
    ))
}

/// The error for declaring an index under a name that another index of
/// the collection has.
pub fn index_differs(existing: &Index, wanted: &Index) -> Error {
    Error::conflict(
        None,
        format!(
            "collection {:?} already has an index {:?} on {:?}{}; \
             not the one asked for, on {:?}{}",
            existing.collection,
            existing.name,
            existing.fields,
            if existing.unique { " (unique)" } else { "" },
            wanted.fields,
            if wanted.unique { " (unique)" } else { "" },
        ),
    )
}

/// The error for reading an index that does not exist (it may have been
/// declared by a query planned against another store).
pub fn no_such_index(collection: &str, index: &str) -> Error {
    Error::invalid(format!("collection {collection:?} has no index {index:?}"))
}

/// The error for a write that would give a unique index a second record
/// with the same key.
pub fn unique_conflict(collection: &str, index: &str, existing_id: &str) -> Error {
    Error::conflict(
        None,
        format!(
            "unique index {index:?} of collection {collection:?} already has this key, \
             on record {existing_id:?}; nothing was written"
        ),
    )
    .with_unique(index, existing_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(v: Value) -> Vec<u8> {
        let mut k = Vec::new();
        encode_value(&v, &mut k).unwrap();
        k
    }

    #[test]
    fn keys_sort_by_type_then_value() {
        let ordered = [
            json!(null),
            json!(false),
            json!(true),
            json!(-1e300),
            json!(-2),
            json!(-1.5),
            json!(0),
            json!(0.5),
            json!(1),
            json!(2.0),
            json!(10),
            json!(u64::MAX),
            json!(""),
            json!("A"),
            json!("a"),
            json!("ab"),
            json!("b"),
            json!("é"),
        ];
        for w in ordered.windows(2) {
            assert!(key(w[0].clone()) < key(w[1].clone()), "{} < {}", w[0], w[1]);
        }
        assert_eq!(key(json!(1)), key(json!(1.0)));
        assert_eq!(key(json!(-0.0)), key(json!(0)));
    }

    #[test]
    fn composite_keys_order_field_by_field() {
        let ix = Index::new("c", "i", ["/a", "/b"]);
        let k = |a: Value, b: Value| ix.key_of(&json!({"a": a, "b": b})).unwrap();
        assert!(k(json!("a"), json!(9)) < k(json!("ab"), json!(1)));
        assert!(k(json!("a"), json!(1)) < k(json!("a"), json!(2)));
        assert_eq!(ix.key_of(&json!({"a": 1})), None);
        assert_eq!(ix.key_of(&json!({"a": 1, "b": [1]})), None);
        assert!(ix.key_of(&json!({"a": 1, "b": null})).is_some());
    }

    #[test]
    fn plans_pick_the_narrowest_index_and_name_missing_fields() {
        let ixs = [
            Index::new("jobs", "by_status_at", ["/status", "/at"]),
            Index::new("jobs", "by_status", ["/status"]),
        ];
        let (ix, from, to) = plan("jobs", &ixs, &Find::new().eq("/status", "open")).unwrap();
        assert_eq!(ix.name, "by_status");
        assert!(from < to);
        let (ix, ..) = plan(
            "jobs",
            &ixs,
            &Find::new().eq("/status", "open").between("/at", 1, 5),
        )
        .unwrap();
        assert_eq!(ix.name, "by_status_at");
        let e = plan("jobs", &ixs, &Find::new().eq("/owner", "x")).unwrap_err();
        assert!(e.to_string().contains("\"/owner\""), "{e}");
        let e = plan("jobs", &ixs, &Find::new().eq("/at", 1)).unwrap_err();
        assert!(e.to_string().contains("first"), "{e}");
        let e = plan("jobs", &ixs, &Find::new().eq("/status", json!([1]))).unwrap_err();
        assert!(e.to_string().contains("array"), "{e}");
    }

    #[test]
    fn pointer_tokens_unescape() {
        assert_eq!(pointer_tokens("/a~1b/c~0d"), vec!["a/b", "c~d"]);
    }
}
