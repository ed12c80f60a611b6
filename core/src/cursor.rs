//! Opaque page cursors: URL-safe base64 of the last item's sort key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// What a cursor is bound to: the namespace and the query it pages (its
/// filters, not its limit), as a short digest. A cursor continues only
/// the listing that returned it.
pub(crate) fn scope<Q: Serialize>(ns: &str, query: &Q) -> String {
    use sha2::{Digest, Sha256};
    let body = serde_json::to_vec(&(ns, query)).unwrap_or_default();
    hex::encode(&Sha256::digest(&body)[..8])
}

/// Encode a sort key with a tag naming what it pages and the [`scope`] of
/// the query that returned it.
pub(crate) fn encode<K: Serialize>(tag: &str, scope: &str, key: &K) -> String {
    let body = serde_json::to_vec(&(tag, scope, key)).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(body)
}

/// Decode a cursor made by [`encode`] with the same tag and scope.
///
/// # Errors
/// `InvalidInput` for anything else: not a cursor, a cursor of another
/// listing, or one of the same listing with other filters or in another
/// namespace.
pub(crate) fn decode<K: DeserializeOwned>(tag: &str, scope: &str, cursor: &str) -> Result<K> {
    let bad = || Error::invalid(format!("cursor {cursor:?} is not a {tag} cursor"));
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|e| bad().with_source(e))?;
    let (t, s, key): (String, String, K) =
        serde_json::from_slice(&bytes).map_err(|e| bad().with_source(e))?;
    if t != tag {
        return Err(bad());
    }
    if s != scope {
        return Err(Error::invalid(format!(
            "cursor {cursor:?} belongs to another {tag} query (other filters or another \
             namespace); a cursor continues only the listing that returned it"
        )));
    }
    Ok(key)
}

/// Refuse a cursor whose sequence number no store could have handed out.
pub(crate) fn check_sequence(tag: &str, cursor: &str, seq: u64) -> Result<()> {
    if seq > crate::validate::MAX_SEQUENCE {
        return Err(Error::invalid(format!(
            "cursor {cursor:?} is not a {tag} cursor"
        )));
    }
    Ok(())
}

/// One page of results and the cursor for the next, if there may be more.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page<T> {
    /// The items, in order.
    pub items: Vec<T>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}
