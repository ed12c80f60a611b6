//! Opaque page cursors: URL-safe base64 of the last item's sort key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Encode a sort key with a tag naming what it pages.
pub(crate) fn encode<K: Serialize>(tag: &str, key: &K) -> String {
    let body = serde_json::to_vec(&(tag, key)).expect("cursor keys serialize");
    URL_SAFE_NO_PAD.encode(body)
}

/// Decode a cursor made by [`encode`] with the same tag.
pub(crate) fn decode<K: DeserializeOwned>(tag: &str, cursor: &str) -> Result<K> {
    let bad = || Error::invalid(format!("cursor {cursor:?} is not a {tag} cursor"));
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|e| bad().with_source(e))?;
    let (t, key): (String, K) = serde_json::from_slice(&bytes).map_err(|e| bad().with_source(e))?;
    if t != tag {
        return Err(bad());
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
