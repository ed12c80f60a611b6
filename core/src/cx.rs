//! The call context: what every store call carries besides its operation.

use std::sync::Arc;

use crate::time::Timestamp;

/// The context of one store call: the namespace it is scoped to and the
/// clock reading it runs at. The [`Handle`](crate::Handle) builds one per
/// call; what a call needs later (a deadline, a trace id) becomes a field
/// here, read only by the backends that need it, with no signature changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cx {
    ns: Arc<str>,
    now: Timestamp,
}

impl Cx {
    /// A context for namespace `ns` at clock reading `now`. The handle
    /// builds one per call for its own, checked namespace; a layer or a
    /// test double builds one for a namespace it was given.
    pub fn new(ns: &str, now: Timestamp) -> Cx {
        Cx::checked(Arc::from(ns), now)
    }

    /// A context for a namespace already held as an `Arc`.
    pub(crate) fn checked(ns: Arc<str>, now: Timestamp) -> Cx {
        Cx { ns, now }
    }

    /// The namespace every read and write of the call is confined to.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The clock reading of the call: what "now" is for expiry, claims and
    /// record times.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The same call at another clock reading (a layer that must look at
    /// the data as of another time).
    pub fn at(&self, now: Timestamp) -> Cx {
        Cx {
            ns: self.ns.clone(),
            now,
        }
    }

    /// The same call in another namespace.
    pub fn in_namespace(&self, ns: &str) -> Cx {
        Cx {
            ns: Arc::from(ns),
            now: self.now,
        }
    }
}
