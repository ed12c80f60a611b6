//! The call context: what every store call carries besides its operation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::time::Timestamp;

/// The context of one store call: the namespace it is scoped to, the
/// clock reading it runs at, and the deadline it must answer by. The
/// [`Handle`](crate::Handle) builds one per call; what a call needs later
/// (a trace id) becomes a field here, read only by the backends that need
/// it, with no signature changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cx {
    ns: Arc<str>,
    now: Timestamp,
    deadline: Option<Instant>,
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
        Cx {
            ns,
            now,
            deadline: None,
        }
    }

    /// The same call, to be answered by `deadline`. The handle sets it from
    /// its timeout; a backend that may wait (for a lock, a connection, a
    /// busy file) waits no longer than [`remaining`](Self::remaining).
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> Cx {
        self.deadline = deadline;
        self
    }

    /// When the caller stops waiting for this call, if it does.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The time left before the deadline (zero once it has passed); `None`
    /// when the call has no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
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
            deadline: self.deadline,
        }
    }

    /// The same call in another namespace.
    pub fn in_namespace(&self, ns: &str) -> Cx {
        Cx {
            ns: Arc::from(ns),
            now: self.now,
            deadline: self.deadline,
        }
    }
}
