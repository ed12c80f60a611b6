//! Configuration: a builder, and `sqlite://path?option=value` URLs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use persistkit_core::backend::duration_option;
use persistkit_core::{Error, Result};

/// How to open a SQLite store.
///
/// URL form: `sqlite://path/to/file.db?max_connections=8&busy_timeout=5s`.
/// Options: `max_connections` (default 8), `busy_timeout` and
/// `acquire_timeout` (default 5 s; `250ms`, `5s`, `1m`), `create`
/// (default true), `migrate` (default true).
///
/// A call through a [`Handle`](persistkit_core::Handle) also ends at the
/// handle's deadline: the wait for a connection, the busy waits and the
/// statement share what is left of it, so a call answers within the
/// handle's timeout even when both timeouts here are longer. Calls that
/// carry no call context (migrate, import, listing namespaces, backup)
/// wait up to these timeouts.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The database file.
    pub path: PathBuf,
    /// Pool size.
    pub max_connections: u32,
    /// How long SQLite waits on a locked database before `Unavailable`.
    pub busy_timeout: Duration,
    /// How long a call waits for a pooled connection before `Unavailable`.
    pub acquire_timeout: Duration,
    /// Create the file if it is missing.
    pub create: bool,
    /// Apply pending migrations on open. When false, the file must already
    /// be at this code's schema version.
    pub migrate: bool,
    /// Open only to look (the health report): read-only, never creating or
    /// migrating anything, and no schema check.
    pub inspect: bool,
}

impl SqliteConfig {
    /// Defaults for the file at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        SqliteConfig {
            path: path.as_ref().to_path_buf(),
            max_connections: 8,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            create: true,
            migrate: true,
            inspect: false,
        }
    }

    /// Parse `sqlite://path?options`.
    ///
    /// # Errors
    /// `InvalidInput` naming the part of the URL that is wrong.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| Error::invalid(format!("{url:?} is not a sqlite:// URL")))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(Error::invalid(format!("{url:?} names no database file")));
        }
        // A URL's path and options are percent-encoded (`my%20data/x.db`).
        let path = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|e| {
                Error::invalid(format!("{url:?}: the file name is not UTF-8 once decoded"))
                    .with_source(e)
            })?;
        let mut cfg = SqliteConfig::new(path.as_ref());
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let (k, v) = (k.as_ref(), v.as_ref());
            let bad = |why: &str| Error::invalid(format!("sqlite URL option {k}={v:?}: {why}"));
            match k {
                "max_connections" => {
                    cfg.max_connections = v
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad("expected a whole number of 1 or more"))?
                }
                "busy_timeout" => {
                    cfg.busy_timeout = duration_option(v)
                        .ok_or_else(|| bad("expected a duration like 5s or 250ms"))?
                }
                "acquire_timeout" => {
                    cfg.acquire_timeout = duration_option(v)
                        .ok_or_else(|| bad("expected a duration like 5s or 250ms"))?
                }
                "create" => {
                    cfg.create = parse_bool(v).ok_or_else(|| bad("expected true or false"))?
                }
                "migrate" => {
                    cfg.migrate = parse_bool(v).ok_or_else(|| bad("expected true or false"))?
                }
                "mode" if v == "rwc" => cfg.create = true,
                _ => return Err(bad("unknown option")),
            }
        }
        Ok(cfg)
    }

    /// Another database file, with the same options.
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = path.as_ref().to_path_buf();
        self
    }

    /// Set the pool size.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Set the busy timeout.
    pub fn busy_timeout(mut self, d: Duration) -> Self {
        self.busy_timeout = d;
        self
    }

    /// Set the pool acquire timeout.
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = d;
        self
    }

    /// Apply migrations on open (default) or not.
    pub fn migrate(mut self, yes: bool) -> Self {
        self.migrate = yes;
        self
    }

    /// Create a missing file (default) or refuse.
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// Open only to look: read-only, nothing created or migrated.
    pub fn inspect(mut self) -> Self {
        self.inspect = true;
        self.create = false;
        self.migrate = false;
        self
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let c = SqliteConfig::from_url(
            "sqlite://data/x.db?max_connections=3&busy_timeout=250ms&migrate=false",
        )
        .unwrap();
        assert_eq!(c.path, PathBuf::from("data/x.db"));
        assert_eq!(c.max_connections, 3);
        assert_eq!(c.busy_timeout, Duration::from_millis(250));
        assert!(!c.migrate);
        assert_eq!(
            SqliteConfig::from_url("sqlite:///abs/x.db").unwrap().path,
            PathBuf::from("/abs/x.db")
        );
        let c =
            SqliteConfig::from_url("sqlite://my%20data/a%26b.db?busy_timeout=1s+500ms").unwrap();
        assert_eq!(c.path, PathBuf::from("my data/a&b.db"), "decoded");
        assert_eq!(c.busy_timeout, Duration::from_millis(1_500));
    }

    #[test]
    fn rejects_bad_urls_clearly() {
        for (url, needle) in [
            ("postgres://x", "not a sqlite"),
            ("sqlite://", "names no database"),
            ("sqlite://x.db?max_connections=0", "max_connections"),
            ("sqlite://x.db?busy_timeout=soon", "busy_timeout"),
            ("sqlite://x.db?colour=blue", "unknown option"),
        ] {
            let e = SqliteConfig::from_url(url).unwrap_err();
            assert_eq!(e.kind(), persistkit_core::ErrorKind::InvalidInput);
            assert!(e.to_string().contains(needle), "{url}: {e}");
        }
    }
}
