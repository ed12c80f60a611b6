//! Configuration: a builder, and `postgres://` URLs with pool options.

use std::fmt;
use std::time::Duration;

use persistkit_core::backend::duration_option;
use persistkit_core::{redact, Error, Result};

/// How to open a Postgres store.
///
/// URL form: `postgres://user:pass@host:port/db?schema=persistkit&max_connections=10`.
/// persistkit's options (taken out before the URL reaches the driver):
/// `schema` (default `persistkit`; lower-case letters, digits, `_`),
/// `max_connections` (10), `acquire_timeout` (5s), `idle_timeout` (10m),
/// `max_lifetime` (30m), `statement_timeout` (30s; `0` for none), `migrate`
/// (true). Durations take `ms`, `s`, `m` or `h`. Every other query option
/// (`sslmode`, `application_name`, …) goes to the driver.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct PgConfig {
    /// The connection URL without persistkit's options.
    pub url: String,
    /// Schema that holds the tables.
    pub schema: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long a call waits for a connection before `Unavailable`.
    pub acquire_timeout: Duration,
    /// Close connections idle this long.
    pub idle_timeout: Option<Duration>,
    /// Replace connections this old.
    pub max_lifetime: Option<Duration>,
    /// Server-side limit per statement (`Unavailable` when hit).
    pub statement_timeout: Option<Duration>,
    /// Apply pending migrations on open. When false, the schema must
    /// already be at this code's version.
    pub migrate: bool,
    /// Use named prepared statements (default). `false` for a
    /// transaction-pooling pooler (PgBouncer `pool_mode = transaction`):
    /// unnamed statements, each call in its own transaction.
    pub prepared: bool,
    /// Ping every connection before handing it out (one more round trip
    /// per call). Off by default: a read that finds its connection broken
    /// is retried once on a fresh one instead.
    pub test_before_acquire: bool,
    /// Open without migrating or checking the schema, to look at it (the
    /// health report). Calls may then fail with `Schema`.
    pub inspect: bool,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("statement_timeout", &self.statement_timeout)
            .field("migrate", &self.migrate)
            .field("prepared", &self.prepared)
            .field("test_before_acquire", &self.test_before_acquire)
            .field("inspect", &self.inspect)
            .finish()
    }
}

impl PgConfig {
    /// Defaults for `url` (which must not carry persistkit's options).
    pub fn new(url: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            schema: "persistkit".into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            statement_timeout: Some(Duration::from_secs(30)),
            migrate: true,
            prepared: true,
            test_before_acquire: false,
            inspect: false,
        }
    }

    /// Parse a `postgres://` or `postgresql://` URL.
    ///
    /// # Errors
    /// `InvalidInput` naming the option that is wrong.
    pub fn from_url(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::invalid(format!(
                "{} is not a postgres:// URL",
                redact(url)
            )));
        }
        // The options are read decoded (`%5F`, `+`), and the driver's own
        // are passed on re-encoded; the rest of the URL (user, password,
        // host, database) goes to the driver as written, which decodes it.
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::invalid(format!("{} is not a valid URL: {e}", redact(url))))?;
        let base = url.split_once('?').map_or(url, |(b, _)| b);
        let mut cfg = PgConfig::new(base);
        let mut passthrough = url::form_urlencoded::Serializer::new(String::new());
        let mut passed = 0;
        for (k, v) in parsed.query_pairs() {
            let (k, v) = (k.as_ref(), v.as_ref());
            let bad = |why: &str| Error::invalid(format!("postgres URL option {k}={v:?}: {why}"));
            let flag = || match v {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            };
            let dur = || {
                duration_option(v).ok_or_else(|| bad("expected a duration like 5s, 250ms or 10m"))
            };
            match k {
                "schema" => cfg.schema = v.to_string(),
                "max_connections" => {
                    cfg.max_connections = v
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad("expected a whole number of 1 or more"))?
                }
                "acquire_timeout" => cfg.acquire_timeout = dur()?,
                "idle_timeout" => cfg.idle_timeout = Some(dur()?).filter(|d| !d.is_zero()),
                "max_lifetime" => cfg.max_lifetime = Some(dur()?).filter(|d| !d.is_zero()),
                "statement_timeout" => {
                    cfg.statement_timeout = Some(dur()?).filter(|d| !d.is_zero())
                }
                "migrate" => cfg.migrate = flag().ok_or_else(|| bad("expected true or false"))?,
                "prepared" => cfg.prepared = flag().ok_or_else(|| bad("expected true or false"))?,
                "test_before_acquire" => {
                    cfg.test_before_acquire = flag().ok_or_else(|| bad("expected true or false"))?
                }
                _ => {
                    passthrough.append_pair(k, v);
                    passed += 1;
                }
            }
        }
        check_schema(&cfg.schema)?;
        if passed > 0 {
            cfg.url = format!("{base}?{}", passthrough.finish());
        }
        Ok(cfg)
    }

    /// Use `schema` for the tables.
    ///
    /// # Errors
    /// `InvalidInput` unless it is lower-case letters, digits and `_`.
    pub fn schema(mut self, schema: &str) -> Result<Self> {
        check_schema(schema)?;
        self.schema = schema.to_string();
        Ok(self)
    }

    /// Another connection URL (which must not carry persistkit's
    /// options), with the same options.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// How long an idle pooled connection is kept (`None`: for ever).
    pub fn idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.idle_timeout = d;
        self
    }

    /// How long a pooled connection lives at most (`None`: for ever).
    pub fn max_lifetime(mut self, d: Option<Duration>) -> Self {
        self.max_lifetime = d;
        self
    }

    /// Ping every connection before handing it out.
    pub fn test_before_acquire(mut self, yes: bool) -> Self {
        self.test_before_acquire = yes;
        self
    }

    /// Set the pool size.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Set the acquire timeout.
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = d;
        self
    }

    /// Set the statement timeout (`None`: no limit).
    pub fn statement_timeout(mut self, d: Option<Duration>) -> Self {
        self.statement_timeout = d;
        self
    }

    /// Apply migrations on open (default) or not.
    pub fn migrate(mut self, yes: bool) -> Self {
        self.migrate = yes;
        self
    }

    /// Named prepared statements on (default) or off (for a
    /// transaction-pooling pooler).
    pub fn prepared(mut self, yes: bool) -> Self {
        self.prepared = yes;
        self
    }

    /// Open only to look: no migration and no schema check.
    pub fn inspect(mut self) -> Self {
        self.inspect = true;
        self.migrate = false;
        self
    }
}

fn check_schema(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "schema {s:?} must be 1..=63 lower-case letters, digits or _, not starting with a digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options_and_passes_the_rest_through() {
        let c = PgConfig::from_url("postgres://u:pw@h:5/db?schema=pk_1&max_connections=3&sslmode=disable&statement_timeout=0&acquire_timeout=250ms").unwrap();
        assert_eq!(c.url, "postgres://u:pw@h:5/db?sslmode=disable");
        assert_eq!((c.schema.as_str(), c.max_connections), ("pk_1", 3));
        assert_eq!(c.statement_timeout, None);
        assert_eq!(c.acquire_timeout, Duration::from_millis(250));
    }

    /// Options are read percent-decoded, and a password with `@`, `&`,
    /// `%` and `?` (encoded, as URLs require) reaches the driver whole.
    #[test]
    fn encoded_options_and_passwords() {
        let c = PgConfig::from_url(
            "postgres://u:p%40ss%26w%25rd%3F@h:5/db?schema=pk%5F1&application_name=a%26b&acquire_timeout=1m+30s",
        )
        .unwrap();
        assert_eq!(c.schema, "pk_1");
        assert_eq!(c.acquire_timeout, Duration::from_secs(90));
        assert_eq!(
            c.url,
            "postgres://u:p%40ss%26w%25rd%3F@h:5/db?application_name=a%26b"
        );
        let o = crate::PgStore::connect_options(&c).unwrap();
        assert_eq!(
            (o.get_username(), o.get_host(), o.get_port()),
            ("u", "h", 5)
        );
        assert_eq!(o.get_database(), Some("db"));
        let d = format!("{c:?}");
        assert!(!d.contains("p%40ss"), "the password stays hidden: {d}");
        assert!(PgConfig::from_url("postgres://u@h/db?statement_timeout=soon").is_err());
        assert_eq!(
            PgConfig::from_url("postgres://u@h/db?statement_timeout=5")
                .unwrap()
                .statement_timeout,
            Some(Duration::from_secs(5)),
            "a bare number is seconds"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let c = PgConfig::from_url("postgres://u:secret@h/db").unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("secret") && d.contains("u:***@h/db"), "{d}");
    }

    #[test]
    fn rejects_bad_options() {
        for (url, needle) in [
            ("mysql://x", "not a postgres"),
            ("postgres://h/db?schema=Bad-Name", "schema"),
            ("postgres://h/db?max_connections=none", "max_connections"),
            ("postgres://h/db?acquire_timeout=soon", "acquire_timeout"),
        ] {
            let e = PgConfig::from_url(url).unwrap_err();
            assert!(e.to_string().contains(needle), "{url}: {e}");
        }
    }
}
