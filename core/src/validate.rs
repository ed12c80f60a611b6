//! Every input rule of the contract, in one place. The [`Handle`](crate::Handle)
//! runs these before any backend sees the input; backends never re-check.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::events::{NewEvent, PreparedEvent};
use crate::limits::MAX_TTL;
pub use crate::limits::{
    MAX_BUCKET_SECONDS, MAX_JSON_BYTES, MAX_LIMIT, MAX_NAME_BYTES, MAX_SEQUENCE,
};
use crate::records::Expect;
use crate::time::Timestamp;

/// Check an event id, log position or record version: 1..=[`MAX_SEQUENCE`].
///
/// # Errors
/// `InvalidInput` naming `what` outside that range.
pub fn sequence(what: &str, v: u64) -> Result<()> {
    if (1..=MAX_SEQUENCE).contains(&v) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} must be 1..={MAX_SEQUENCE}, got {v}"
        )))
    }
}

/// Check a name (namespace, component, metric name, event kind, idempotency
/// scope or key, collection, record id): UTF-8, 1..=255 bytes, no NUL, no
/// control characters.
///
/// # Errors
/// `InvalidInput` naming `what` and the rule broken.
pub fn name(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(format!(
            "{what} is {} bytes; at most {MAX_NAME_BYTES} are allowed",
            value.len()
        )));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "{what} contains control character U+{:04X}",
            c as u32
        )));
    }
    Ok(())
}

/// Check a metric value: finite.
///
/// # Errors
/// `InvalidInput` for NaN and ±infinity.
pub fn finite(what: &str, v: f64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(format!("{what} must be finite, got {v}")))
    }
}

/// Check a metric point: its component and name are names, its value is
/// finite.
///
/// # Errors
/// `InvalidInput` naming the rule broken.
pub fn point(p: &crate::MetricPoint) -> Result<()> {
    name("component", &p.component)?;
    name("metric name", &p.name)?;
    finite("metric value", p.value)
}

/// Most quantiles one aggregation may ask for.
pub const MAX_QUANTILES: usize = 16;

/// Check the quantiles of an aggregation: at most [`MAX_QUANTILES`], each a
/// number in `[0, 1]`. Returns them with `-0` as `0`.
///
/// # Errors
/// `InvalidInput` naming the index of the first bad one.
pub fn quantiles(qs: &[f64]) -> Result<Vec<f64>> {
    if qs.len() > MAX_QUANTILES {
        return Err(Error::invalid(format!(
            "at most {MAX_QUANTILES} quantiles per aggregation, got {}",
            qs.len()
        )));
    }
    qs.iter()
        .enumerate()
        .map(|(i, &q)| {
            if (0.0..=1.0).contains(&q) {
                Ok(q + 0.0)
            } else {
                Err(
                    Error::invalid(format!("quantile must be a number in [0, 1], got {q}"))
                        .at_index(i),
                )
            }
        })
        .collect()
}

/// Check a page size: 1..=10 000.
///
/// # Errors
/// `InvalidInput` outside that range.
pub fn limit(limit: usize) -> Result<()> {
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "limit must be 1..={MAX_LIMIT}, got {limit}"
        )))
    }
}

/// Check a JSON pointer naming a field of a record: starts with `/`, at
/// most 255 bytes, no empty token, `~` only as `~0` or `~1`, and no array
/// position with a leading zero (`/a/01`) or a sign (`/a/-1`, `/a/+1`),
/// which JSON pointer forbids.
///
/// # Errors
/// `InvalidInput` naming the field and the rule broken.
pub fn field(what: &str, pointer: &str) -> Result<()> {
    name(what, pointer)?;
    let bad = |rule: &str| {
        Err(Error::invalid(format!(
            "{what} {pointer:?} is not a JSON pointer to a field: {rule}"
        )))
    };
    if !pointer.starts_with('/') {
        return bad("it must start with \"/\"");
    }
    for token in pointer.split('/').skip(1) {
        if token.is_empty() {
            return bad("a token is empty");
        }
        let mut rest = token;
        while let Some(i) = rest.find('~') {
            if !matches!(rest.as_bytes().get(i + 1), Some(b'0' | b'1')) {
                return bad("\"~\" must be followed by 0 or 1");
            }
            rest = &rest[i + 2..];
        }
        if token.len() > 1 && token.starts_with('0') && token.bytes().all(|b| b.is_ascii_digit()) {
            return bad("an array position has a leading zero");
        }
        if let Some(digits) = token.strip_prefix(['-', '+']) {
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return bad("an array position has a sign");
            }
        }
    }
    Ok(())
}

/// Check an index declaration: names, 1..=8 distinct fields, each a JSON
/// pointer ([`field`]).
///
/// # Errors
/// `InvalidInput` naming the rule broken.
pub fn index(ix: &crate::records::Index) -> Result<()> {
    use crate::limits::MAX_INDEX_FIELDS;
    name("collection", &ix.collection)?;
    name("index name", &ix.name)?;
    if ix.fields.is_empty() || ix.fields.len() > MAX_INDEX_FIELDS {
        return Err(Error::invalid(format!(
            "index {:?} must name 1..={MAX_INDEX_FIELDS} fields, got {}",
            ix.name,
            ix.fields.len()
        )));
    }
    for (i, f) in ix.fields.iter().enumerate() {
        field("index field", f)?;
        if ix.fields[..i].contains(f) {
            return Err(Error::invalid(format!(
                "index {:?} names the field {f:?} twice",
                ix.name
            )));
        }
    }
    Ok(())
}

/// A JSON payload that passed validation, with its canonical form and digest.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedJson {
    /// The value as given.
    pub value: Value,
    /// Canonical serialization: keys sorted byte-wise, no insignificant whitespace.
    pub canonical: String,
}

impl CheckedJson {
    /// Lower-case hex SHA-256 of the canonical form.
    pub fn sha256_hex(&self) -> String {
        hex::encode(Sha256::digest(self.canonical.as_bytes()))
    }
}

/// Check a JSON payload: an object or an array, at most 1 MiB serialized, no
/// U+0000 in any string or key.
///
/// # Errors
/// `InvalidInput` naming `what` and the rule broken.
pub fn json(what: &str, value: &Value) -> Result<CheckedJson> {
    if !(value.is_object() || value.is_array()) {
        return Err(Error::invalid(format!(
            "{what} must be a JSON object or array"
        )));
    }
    if contains_nul(value) {
        return Err(Error::invalid(format!(
            "{what} contains U+0000, which Postgres jsonb cannot store"
        )));
    }
    let canonical = canonical_json(value);
    if canonical.len() > MAX_JSON_BYTES {
        return Err(Error::invalid(format!(
            "{what} is {} bytes serialized; at most {MAX_JSON_BYTES} are allowed",
            canonical.len()
        )));
    }
    Ok(CheckedJson {
        value: value.clone(),
        canonical,
    })
}

fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(contains_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// Serialize `v` canonically: object keys sorted byte-wise, no whitespace.
/// Independent of serde_json's `preserve_order` feature.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

pub(crate) fn prepare_event(e: &NewEvent) -> Result<PreparedEvent> {
    name("event kind", &e.kind)?;
    let checked = json("event data", &e.data)?;
    let digest = checked.sha256_hex();
    Ok(PreparedEvent {
        kind: e.kind.clone(),
        occurred_at: e.occurred_at,
        data: checked.value,
        canonical: checked.canonical,
        digest,
    })
}

/// `now + ttl`, for a TTL of more than zero and at most [`MAX_TTL`] that
/// ends by year 9999.
pub(crate) fn expiry(now: Timestamp, ttl: Duration) -> Result<Timestamp> {
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(Error::invalid(format!(
            "ttl must be more than zero and at most 100 years, got {ttl:?}"
        )));
    }
    now.checked_add(ttl).map_err(|_| {
        Error::invalid(format!(
            "ttl {ttl:?} from {now} ends after year 9999; nothing was written"
        ))
    })
}

pub(crate) fn check_key(scope: &str, key: &str) -> Result<()> {
    name("idempotency scope", scope)?;
    name("idempotency key", key)
}

pub(crate) fn check_record(collection: &str, id: &str, expect: Expect) -> Result<()> {
    name("collection", collection)?;
    name("record id", id)?;
    if let Expect::Version(v) = expect {
        sequence("expected version", v)?;
    }
    Ok(())
}

pub(crate) fn check_opt_name(what: &str, v: Option<&str>) -> Result<()> {
    v.map_or(Ok(()), |v| name(what, v))
}

pub(crate) fn check_range(from: Option<Timestamp>, to: Option<Timestamp>) -> Result<()> {
    match (from, to) {
        (Some(f), Some(t)) if f > t => Err(Error::invalid(format!(
            "time range is inverted: from {f} is after to {t}"
        ))),
        _ => Ok(()),
    }
}

/// A duration as URL options write it: `250ms`, `5s`, `10m`, `1h 30m`
/// (anything `humantime` reads), or a bare number of seconds.
pub fn duration_option(v: &str) -> Option<std::time::Duration> {
    match v.parse::<u64>() {
        Ok(secs) => Some(std::time::Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(v).ok(),
    }
}

/// `url` with any password replaced by `***`, for messages and logs: the
/// user part ends at the last `@` before the path, and the password is
/// everything after its first `:` (encoded or not, it is hidden whole).
/// Hand-written on purpose: the `url` crate would bring about 30 crates
/// (IDNA tables) into every build of the core.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest
        .find(['/', '?', '#'])
        .map_or((rest, ""), |i| rest.split_at(i));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(name("x", "ok").is_ok());
        assert!(name("x", &"é".repeat(127)).is_ok()); // 254 bytes
        assert!(name("x", &"a".repeat(255)).is_ok());
        assert!(name("x", &"a".repeat(256)).is_err());
        assert!(name("x", "").is_err());
        assert!(name("x", "a\0b").is_err());
        assert!(name("x", "a\nb").is_err());
        assert!(name("x", "a\u{7f}").is_err());
        assert!(name("x", "a\u{85}").is_err());
    }

    #[test]
    fn sequences() {
        assert!(sequence("v", 1).is_ok());
        assert!(sequence("v", MAX_SEQUENCE).is_ok());
        assert!(sequence("v", 0).is_err());
        assert!(sequence("v", MAX_SEQUENCE + 1).is_err());
        assert!(sequence("v", u64::MAX).is_err());
    }

    #[test]
    fn canonical_form_sorts_keys_and_drops_whitespace() {
        let a = json!({"b": [1, {"z": 1, "a": 2}], "a": "x"});
        assert_eq!(canonical_json(&a), r#"{"a":"x","b":[1,{"a":2,"z":1}]}"#);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db?x=1"),
            "postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(
            redact("postgres://u:p%40ss%26w@h/db"),
            "postgres://u:***@h/db",
            "an encoded password is hidden whole"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
        assert_eq!(redact("redis://:pw@cache:6379"), "redis://:***@cache:6379");
        let raw = redact("postgres://u:p@ss:w@h:99999/db");
        assert_eq!(raw, "postgres://u:***@h:99999/db", "an unencoded @ too");
    }

    #[test]
    fn field_pointers() {
        for ok in [
            "/a", "/a/b", "/a~1b", "/0", "/10", "/é", "/-", "/a-1", "/-a",
        ] {
            assert!(field("f", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "/", "/a//b", "/a~", "/a~2", "/01", "/a/-1", "/a/+1", "/+0",
        ] {
            assert!(field("f", bad).is_err(), "{bad}");
        }
        let ix = crate::records::Index::new("c", "i", ["/a", "/a"]);
        assert!(index(&ix).is_err());
        assert!(index(&crate::records::Index::new("c", "i", Vec::<String>::new())).is_err());
    }

    #[test]
    fn json_rules() {
        assert!(json("d", &json!({})).is_ok());
        assert!(json("d", &json!([])).is_ok());
        assert!(json("d", &json!(1)).is_err());
        assert!(json("d", &json!("s")).is_err());
        assert!(json("d", &json!(null)).is_err());
        assert!(json("d", &json!({"a": "x\u{0}"})).is_err());
        assert!(json("d", &json!({"a\u{0}": 1})).is_err());
        let big = "x".repeat(MAX_JSON_BYTES);
        assert!(json("d", &json!([big])).is_err());
    }
}
