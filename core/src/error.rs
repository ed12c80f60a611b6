//! One error type with kinds a caller can match.

use std::fmt;

/// A boxed source error, kept whole so callers can walk the chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every persistkit call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input breaks a rule of the contract; nothing was written.
    InvalidInput,
    /// The thing asked for does not exist.
    NotFound,
    /// An expectation failed (version, token, uniqueness); nothing was written.
    Conflict,
    /// The database is unreachable, busy or timed out. Retryable.
    Unavailable,
    /// The database schema is newer than this code, or a migration failed.
    Schema,
    /// The backend does not declare this capability.
    Unsupported,
    /// A bug or an unexpected state.
    Internal,
    /// The store was closed; open it again. Not retryable: the same store
    /// will never answer again.
    Closed,
    /// The database refused the call because of how it or the client is
    /// set up: credentials, privileges, a missing database, a setting a
    /// pooler will not accept. Not retryable: change the setup.
    Refused,
}

impl ErrorKind {
    /// The stable, snake_case name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Schema => "schema",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
            ErrorKind::Closed => "closed",
            ErrorKind::Refused => "refused",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The persistkit error: a [`kind`](Error::kind), a message, optional
/// details (batch index, current version) and the source error, unflattened.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    index: Option<usize>,
    current_version: Option<u64>,
    unique: Option<Box<(String, String)>>,
    #[source]
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            index: None,
            current_version: None,
            unique: None,
            source: None,
        }
    }

    /// `InvalidInput` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// `NotFound` with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// `Conflict` carrying the current version (`None` when the item is absent).
    pub fn conflict(current_version: Option<u64>, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::Conflict, message);
        e.current_version = current_version;
        e
    }

    /// `Unsupported` for a capability the backend does not declare.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// `Internal` with a message.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// `Unavailable` with a message.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// `Closed`: the store was closed by its owner.
    pub fn closed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Closed, message)
    }

    /// `Refused`: the database will not do this as things are set up.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Refused, message)
    }

    /// Prefix the message with the operation that failed (`put: …`),
    /// unless it already names it.
    pub fn in_operation(mut self, op: &str) -> Self {
        if !self.message.starts_with(op) {
            self.message = format!("{op}: {}", self.message);
        }
        self
    }

    /// `Schema` with a message.
    pub fn schema(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Schema, message)
    }

    /// Attach the underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Mark the error as caused by item `index` of a batch.
    pub fn at_index(mut self, index: usize) -> Self {
        self.index = Some(index);
        self.message = format!("item {index}: {}", self.message);
        self
    }

    /// Mark a `Conflict` as a unique index refusing a second record with
    /// the same key: the index and the record that has it.
    pub fn with_unique(mut self, index: &str, existing_id: &str) -> Self {
        self.unique = Some(Box::new((index.to_owned(), existing_id.to_owned())));
        self
    }

    /// For a unique index conflict: the index and the id of the record that
    /// already has the key.
    pub fn unique_conflict(&self) -> Option<(&str, &str)> {
        self.unique
            .as_deref()
            .map(|(i, id)| (i.as_str(), id.as_str()))
    }

    /// The kind to match on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For a rejected batch: the index of the offending item.
    pub fn index(&self) -> Option<usize> {
        self.index
    }

    /// For a `Conflict`: the version the item has now, if it exists.
    pub fn current_version(&self) -> Option<u64> {
        self.current_version
    }

    /// True exactly for [`ErrorKind::Unavailable`].
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }
}

/// `e` and its sources, joined with ": ", each thing said once: a source
/// whose text the chain already holds (drivers often wrap an error and
/// print it again) is left out.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let text = src.to_string();
        if !text.is_empty() && !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = src.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn retryable_only_for_unavailable() {
        for kind in [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Schema,
            ErrorKind::Unsupported,
            ErrorKind::Internal,
            ErrorKind::Closed,
            ErrorKind::Refused,
        ] {
            assert!(!Error::new(kind, "x").is_retryable(), "{kind}");
        }
        assert!(Error::unavailable("down").is_retryable());
    }

    #[test]
    fn source_is_kept_not_flattened() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::unavailable("connect").with_source(io);
        let src = e.source().expect("source kept");
        assert!(src.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(e.to_string(), "unavailable: connect");
    }

    #[test]
    fn index_and_version_are_carried() {
        let e = Error::invalid("bad name").at_index(3);
        assert_eq!(e.index(), Some(3));
        assert_eq!(e.to_string(), "invalid_input: item 3: bad name");
        assert_eq!(Error::conflict(Some(7), "v").current_version(), Some(7));
    }
}
