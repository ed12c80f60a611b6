//! The store: its struct, opening, connections (`one!`), statements for
//! this schema and row decoding. Each domain is a module of its own beside
//! this one.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use persistkit_core::*;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{AssertSqlSafe, Executor, FromRow, Postgres, QueryBuilder, Row, Transaction};

use crate::config::PgConfig;
use crate::error::map;
use crate::schema;
use crate::sql::*;
use persistkit_core::redact;

/// Run one statement on a connection of its own (see [`Conn`]) and finish
/// that connection's transaction, if it has one, when the statement
/// succeeded. Evaluates to the statement's `Result`.
macro_rules! one {
    // A read: when the connection turns out broken (the server restarted,
    // a pooler dropped it), run it once more on a fresh one. Writes are
    // never retried: the server may have applied them.
    (read $store:ident, |$c:ident| $body:expr) => {{
        let mut attempt = 0;
        loop {
            match one!($store, |$c| $body) {
                Err(e) if attempt == 0 && crate::error::connection_lost(&e) => {
                    tracing::debug!(error = %e, "connection lost; retrying the read once");
                    attempt += 1;
                }
                done => break done,
            }
        }
    }};
    ($store:ident, |$c:ident| $body:expr) => {{
        let mut conn = $store.conn().await?;
        let out = {
            let $c: &mut PgConnection = &mut conn;
            $body
        };
        match out {
            Ok(v) => conn.done().await.map(|()| v),
            Err(e) => {
                if crate::error::connection_lost(&e) {
                    conn.discard();
                }
                Err(e)
            }
        }
    }};
}
pub(crate) use one;

/// How long the fail-fast probe waits for a TCP answer.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A persistkit store in a Postgres schema.
///
/// Every statement names the schema in full, and no call relies on session
/// state, so the store works behind a pooler. With `prepared=false` it uses
/// no named prepared statements and runs each call inside a transaction,
/// which is what a transaction-pooling PgBouncer needs.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    pub(crate) config: PgConfig,
    pub(crate) sql: Arc<Statements>,
    /// `host:port` to probe when the pool has no connection, so a refused
    /// connection fails at once instead of after the acquire timeout.
    probe: Option<(String, u16)>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &redact(&self.config.url))
            .field("schema", &self.config.schema)
            .field("prepared", &self.config.prepared)
            .finish()
    }
}

/// Where one call runs: a pooled connection; or, with named prepared
/// statements off, a transaction, so that the call's protocol messages
/// (sqlx parses, then binds) stay on one server connection behind a
/// transaction-pooling pooler.
pub(crate) enum Conn {
    Plain(PoolConnection<Postgres>),
    Tx(Transaction<'static, Postgres>),
}

impl Deref for Conn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            Conn::Plain(c) => c,
            Conn::Tx(t) => t,
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Conn::Plain(c) => c,
            Conn::Tx(t) => t,
        }
    }
}

impl Conn {
    /// The connection broke: do not give it back to the pool. (A broken
    /// transaction's connection is closed by the pool when its rollback
    /// fails.)
    pub(crate) fn discard(self) {
        if let Conn::Plain(mut c) = self {
            c.close_on_drop();
        }
    }

    /// The call succeeded: commit its transaction, if it has one.
    pub(crate) async fn done(self) -> Result<()> {
        match self {
            Conn::Plain(_) => Ok(()),
            Conn::Tx(t) => t.commit().await.map_err(map),
        }
    }
}

impl PgStore {
    /// Open `postgres://…` (see [`PgConfig::from_url`]).
    ///
    /// # Errors
    /// `InvalidInput` for a bad URL; `Unavailable` when the server cannot be
    /// reached (at once when it refuses the connection, else within the
    /// acquire timeout); `Refused` for credentials, privileges or settings
    /// the server or a pooler will not accept; `Schema` when the database is
    /// newer than this code, or, with `migrate=false`, not at its version.
    pub async fn open(url: &str) -> Result<Self> {
        Self::connect(PgConfig::from_url(url)?).await
    }

    /// Open with a configuration.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn connect(config: PgConfig) -> Result<Self> {
        let options = Self::connect_options(&config)?;
        let probe = probe_target(&options);
        if let Some((host, port)) = &probe {
            refuse_fast(host, *port).await?;
        }
        let pool = Self::pool_options(&config)
            .connect_with(options)
            .await
            .map_err(map)?;
        let mut store = Self::from_pool_with(pool, config).await?;
        store.probe = probe;
        Ok(store)
    }

    /// Connection options for `config`. Nothing but the URL's own settings
    /// travels at connection start-up (poolers refuse or drop start-up
    /// options); with `prepared=false` the driver caches no statements.
    ///
    /// # Errors
    /// `InvalidInput` when the driver cannot parse the URL.
    pub fn connect_options(config: &PgConfig) -> Result<PgConnectOptions> {
        let opts = PgConnectOptions::from_str(&config.url)
            .map_err(|e| {
                Error::invalid(format!("bad postgres URL {}", redact(&config.url))).with_source(e)
            })?
            .extra_float_digits(None);
        Ok(if config.prepared {
            opts
        } else {
            opts.statement_cache_capacity(0)
        })
    }

    pub(crate) fn pool_options(config: &PgConfig) -> PgPoolOptions {
        let timeout = config.statement_timeout;
        let session_settings = config.prepared;
        PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .test_before_acquire(config.test_before_acquire)
            .idle_timeout(config.idle_timeout)
            .max_lifetime(config.max_lifetime)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // Direct (or session-pooled) connections keep a session
                    // limit; behind a transaction pooler, transactions set
                    // their own with SET LOCAL instead (see `begin`).
                    if let (true, Some(t)) = (session_settings, timeout) {
                        conn.execute(AssertSqlSafe(format!(
                            "SET statement_timeout = {}",
                            t.as_millis()
                        )))
                        .await?;
                    }
                    Ok(())
                })
            })
    }

    /// Use an existing pool. Migrates unless `migrate` is false, in which
    /// case the schema must already be at this code's version.
    ///
    /// # Errors
    /// `Schema` when the database is newer than this code, migrating fails,
    /// or (without migrating) it is not at this code's version.
    pub async fn from_pool(pool: PgPool, schema: &str, migrate: bool) -> Result<Self> {
        let config = PgConfig::new(String::new())
            .schema(schema)?
            .migrate(migrate);
        Self::from_pool_with(pool, config).await
    }

    pub(crate) async fn from_pool_with(pool: PgPool, config: PgConfig) -> Result<Self> {
        if config.inspect {
            // Health and similar read-only looks: no migration, no check.
        } else if config.migrate {
            schema::migrate(&pool, &config.schema).await?;
        } else {
            schema::require_current(&pool, &config.schema).await?;
        }
        Ok(PgStore {
            sql: Arc::new(Statements::new(&config.schema)),
            pool,
            config,
            probe: None,
        })
    }

    /// The pool, for callers that want to run their own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema the store's tables are in.
    pub fn schema(&self) -> &str {
        &self.config.schema
    }

    /// The plan Postgres uses for `find` with `query` (the first page, or
    /// the next when `query.after` is set): the generic plan, the one a
    /// prepared statement settles on, as `EXPLAIN` text. For looking: it
    /// prepares the statement by name inside a transaction of its own and
    /// drops it there.
    ///
    /// # Errors
    /// As any read.
    pub async fn explain_find(
        &self,
        ns: &str,
        collection: &str,
        query: &FindQuery,
    ) -> Result<String> {
        let t = if query.after.is_some() {
            FIND_AFTER
        } else {
            FIND_FIRST
        };
        let text = |v: &str| format!("'{}'", v.replace('\'', "''"));
        let bytes = |v: &[u8]| {
            let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
            format!("'\\x{hex}'::bytea")
        };
        let mut args = vec![
            text(ns),
            text(collection),
            text(&query.index),
            bytes(&query.from),
            bytes(&query.to),
            "'1970-01-01T00:00:00Z'::timestamptz".to_string(),
            "100".to_string(),
        ];
        if let Some((key, id)) = &query.after {
            args.push(bytes(key));
            args.push(text(id));
        }
        let mut tx = self.begin().await?;
        for stmt in [
            "SET LOCAL plan_cache_mode = force_generic_plan".to_string(),
            format!("PREPARE persistkit_explain_find AS {}", self.sql.render(t)),
        ] {
            sqlx::raw_sql(AssertSqlSafe(stmt))
                .execute(&mut *tx)
                .await
                .map_err(map)?;
        }
        let explain = format!(
            "EXPLAIN EXECUTE persistkit_explain_find({})",
            args.join(", ")
        );
        let lines: Vec<String> = sqlx::query_scalar(AssertSqlSafe(explain))
            .persistent(false)
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
        sqlx::raw_sql("DEALLOCATE persistkit_explain_find")
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        tx.rollback().await.map_err(map)?;
        Ok(lines.join("\n"))
    }

    /// Statement `t` for this store's schema.
    pub(crate) fn q(&self, t: &'static str) -> Query<'static, Postgres, PgArguments> {
        sqlx::query(self.sql.get(t)).persistent(self.config.prepared)
    }

    /// Scalar statement `t` for this store's schema.
    pub(crate) fn qs<O>(&self, t: &'static str) -> QueryScalar<'static, Postgres, O, PgArguments>
    where
        (O,): for<'r> FromRow<'r, PgRow>,
    {
        sqlx::query_scalar(self.sql.get(t)).persistent(self.config.prepared)
    }

    /// Statement `t` for this store's schema, rows as tuples.
    pub(crate) fn qa<O>(&self, t: &'static str) -> QueryAs<'static, Postgres, O, PgArguments>
    where
        O: for<'r> FromRow<'r, PgRow>,
    {
        sqlx::query_as(self.sql.get(t)).persistent(self.config.prepared)
    }

    /// Run a statement built for one filter shape. `make` builds it afresh
    /// for each attempt: a read that meets a broken connection runs again
    /// on a fresh one, and a builder's arguments go with its first `build`.
    pub(crate) async fn fetch_built(
        &self,
        make: impl Fn() -> QueryBuilder<Postgres>,
    ) -> Result<Vec<PgRow>> {
        let prepared = self.config.prepared;
        one!(read self, |c| {
            let mut b = make();
            b.build()
                .persistent(prepared)
                .fetch_all(&mut *c)
                .await
                .map_err(map)
        })
    }

    /// Fail at once when the server refuses connections and the pool has
    /// none open, instead of waiting the whole acquire timeout.
    pub(crate) async fn fail_fast(&self) -> Result<()> {
        match &self.probe {
            Some((host, port)) if self.pool.size() == 0 && !self.pool.is_closed() => {
                refuse_fast(host, *port).await
            }
            _ => Ok(()),
        }
    }

    /// A connection for one call (see [`Conn`]).
    pub(crate) async fn conn(&self) -> Result<Conn> {
        if self.config.prepared {
            self.fail_fast().await?;
            Ok(Conn::Plain(self.pool.acquire().await.map_err(map)?))
        } else {
            Ok(Conn::Tx(self.begin().await?))
        }
    }

    /// A transaction, with the statement timeout set for it alone.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.fail_fast().await?;
        let begin = match self.config.statement_timeout {
            Some(t) => format!("BEGIN; SET LOCAL statement_timeout = {}", t.as_millis()),
            None => "BEGIN".to_string(),
        };
        self.pool
            .begin_with(AssertSqlSafe(begin))
            .await
            .map_err(map)
    }
}

/// The TCP address of the server, when it is reached over TCP.
pub(crate) fn probe_target(options: &PgConnectOptions) -> Option<(String, u16)> {
    if options.get_socket().is_some() || options.get_host().starts_with('/') {
        return None;
    }
    Some((options.get_host().to_string(), options.get_port()))
}

/// `Unavailable` at once if `host:port` refuses a TCP connection; anything
/// else (an answer, a slow network) is left to the driver.
pub(crate) async fn refuse_fast(host: &str, port: u16) -> Result<()> {
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(Error::unavailable(
            format!("Postgres at {host}:{port} refused the connection"),
        )
        .with_source(e)),
        _ => Ok(()),
    }
}

pub(crate) fn dt(t: Timestamp) -> DateTime<Utc> {
    t.to_datetime()
}

pub(crate) fn ts(d: DateTime<Utc>) -> Result<Timestamp> {
    Timestamp::from_datetime(&d)
        .map_err(|e| Error::internal("a stored timestamp is out of range").with_source(e))
}

pub(crate) fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::internal("stored JSON does not parse").with_source(e))
}

/// Column `i` (called `name`) of a row, or `Internal` naming it: a row of
/// the wrong shape is an error, never a panic.
pub(crate) fn col<'r, T>(r: &'r PgRow, i: usize, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    r.try_get(i).map_err(|e| {
        Error::internal(format!("column {name} of a stored row cannot be read")).with_source(e)
    })
}

/// A stored id, position, version or sequence, which is never negative.
pub(crate) fn seq(r: &PgRow, i: usize, name: &str) -> Result<u64> {
    let v: i64 = col(r, i, name)?;
    u64::try_from(v).map_err(|_| Error::internal(format!("column {name} holds {v}, below zero")))
}

pub(crate) fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn metric_row(r: &PgRow) -> Result<StoredMetric> {
    Ok(StoredMetric {
        seq: seq(r, 0, "metrics.seq")?,
        point: MetricPoint {
            at: ts(col(r, 1, "metrics.at")?)?,
            component: col(r, 2, "metrics.component")?,
            name: col(r, 3, "metrics.name")?,
            kind: MetricKind::parse(col::<&str>(r, 4, "metrics.kind")?)?,
            value: col(r, 5, "metrics.value")?,
        },
    })
}

pub(crate) fn event_row(r: &PgRow) -> Result<Event> {
    Ok(Event {
        id: seq(r, 0, "events.id")?,
        position: seq(r, 1, "events.position")?,
        kind: col(r, 2, "events.kind")?,
        occurred_at: ts(col(r, 3, "events.occurred_at")?)?,
        data: json(col::<&str>(r, 4, "events.data")?)?,
    })
}

pub(crate) fn key_row(r: &PgRow) -> Result<IdempotencyEntry> {
    Ok(IdempotencyEntry {
        scope: col(r, 0, "idempotency_keys.scope")?,
        key: col(r, 1, "idempotency_keys.key")?,
        token: col(r, 2, "idempotency_keys.token")?,
        claimed_at: ts(col(r, 3, "idempotency_keys.claimed_at")?)?,
        expires_at: ts(col(r, 4, "idempotency_keys.expires_at")?)?,
        response: col::<Option<&str>>(r, 5, "idempotency_keys.response")?
            .map(json)
            .transpose()?,
        fingerprint: col(r, 6, "idempotency_keys.fingerprint")?,
    })
}

pub(crate) fn record_row(r: &PgRow) -> Result<Record> {
    record_row_from(r, 0)
}

/// A record from the seven columns starting at `at`.
pub(crate) fn record_row_from(r: &PgRow, at: usize) -> Result<Record> {
    Ok(Record {
        collection: col(r, at, "records.collection")?,
        id: col(r, at + 1, "records.id")?,
        data: json(col::<&str>(r, at + 2, "records.data")?)?,
        version: seq(r, at + 3, "records.version")?,
        created_at: ts(col(r, at + 4, "records.created_at")?)?,
        updated_at: ts(col(r, at + 5, "records.updated_at")?)?,
        expires_at: col::<Option<DateTime<Utc>>>(r, at + 6, "records.expires_at")?
            .map(ts)
            .transpose()?,
    })
}

pub(crate) fn index_row(r: &PgRow) -> Result<Index> {
    Ok(Index {
        collection: col(r, 0, "record_indexes.collection")?,
        name: col(r, 1, "record_indexes.name")?,
        fields: col(r, 2, "record_indexes.fields")?,
        unique: col(r, 3, "record_indexes.is_unique")?,
    })
}
