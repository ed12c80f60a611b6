//! persistkit: the persistence layer for a service's operational data —
//! metrics, an append-only event log, idempotency keys and versioned JSON
//! records — behind one contract, with one conformance suite.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> persistkit::Result<()> {
//! use persistkit::{Expect, Timestamp};
//! use serde_json::json;
//!
//! let store = persistkit::open("memory://").await?;
//! let jobs = store.namespace("acme")?;
//! let rec = jobs.put("jobs", "42", &json!({"state": "queued"}), Expect::Absent).await?;
//! assert_eq!(rec.version, 1);
//! # Ok(()) }
//! ```
//!
//! See [`Handle`] for the calls and `persistkit_core` for the contract.
#![deny(missing_docs)]

use std::sync::Arc;

pub use persistkit_core::*;

#[cfg(feature = "memory")]
pub use persistkit_memory as memory;

/// Open a store from a URL and return a handle in the `default` namespace.
///
/// | URL | backend | cargo feature |
/// | --- | --- | --- |
/// | `memory://` | in process memory | `memory` (default) |
///
/// # Errors
/// `InvalidInput` for a URL no enabled backend understands; whatever the
/// backend says when opening fails.
pub async fn open(url: &str) -> Result<Handle> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    let store: Arc<dyn Store> = match scheme {
        #[cfg(feature = "memory")]
        "memory" => Arc::new(persistkit_memory::MemoryStore::new()),
        _ => {
            return Err(Error::invalid(format!(
                "unsupported store URL {:?}: expected one of {}",
                redact(url),
                supported_schemes().join(", ")
            )))
        }
    };
    Ok(Handle::new(store))
}

/// The URL schemes this build understands.
#[allow(clippy::vec_init_then_push)] // one push per enabled feature
pub fn supported_schemes() -> Vec<&'static str> {
    let mut v = Vec::new();
    #[cfg(feature = "memory")]
    v.push("memory://");
    v
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
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

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db?x=1"),
            "postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[tokio::test]
    async fn unknown_scheme_is_invalid_input() {
        let e = open("nope://x").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("memory://"), "{e}");
    }
}
