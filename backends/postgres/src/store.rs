use std::fmt;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use persistkit_core::validate::canonical_json;
use persistkit_core::*;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{AssertSqlSafe, Executor, FromRow, Postgres, QueryBuilder, Row, Transaction};

use crate::config::{redact, PgConfig};
use crate::error::map;
use crate::schema;
use crate::sql::*;

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

/// Batches at least this large go in with binary COPY; smaller ones with
/// one UNNEST statement, which costs fewer round trips.
const COPY_FROM: usize = 1_000;

/// Microseconds from the Unix epoch to Postgres's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// `points` in Postgres's binary COPY format, for the columns of
/// [`COPY_METRICS`].
fn binary_copy(ns: &str, points: &[MetricPoint]) -> Result<Vec<u8>> {
    fn text(out: &mut Vec<u8>, s: &str) -> Result<()> {
        let len = i32::try_from(s.len()).map_err(|_| Error::invalid("text too long for COPY"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(s.as_bytes());
        Ok(())
    }
    let mut out = Vec::with_capacity(19 + points.len() * 80);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension
    for p in points {
        out.extend_from_slice(&6i16.to_be_bytes());
        text(&mut out, ns)?;
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&(p.at.as_micros() - PG_EPOCH_US).to_be_bytes());
        text(&mut out, &p.component)?;
        text(&mut out, &p.name)?;
        text(&mut out, p.kind.as_str())?;
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&p.value.to_bits().to_be_bytes());
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(out)
}

/// Items per statement when importing.
const IMPORT_CHUNK: usize = 5_000;

/// How long the fail-fast probe waits for a TCP answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A persistkit store in a Postgres schema.
///
/// Every statement names the schema in full, and no call relies on session
/// state, so the store works behind a pooler. With `prepared=false` it uses
/// no named prepared statements and runs each call inside a transaction,
/// which is what a transaction-pooling PgBouncer needs.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    config: PgConfig,
    sql: Arc<Statements>,
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
enum Conn {
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
    fn discard(self) {
        if let Conn::Plain(mut c) = self {
            c.close_on_drop();
        }
    }

    /// The call succeeded: commit its transaction, if it has one.
    async fn done(self) -> Result<()> {
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

    fn pool_options(config: &PgConfig) -> PgPoolOptions {
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

    async fn from_pool_with(pool: PgPool, config: PgConfig) -> Result<Self> {
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
    fn q(&self, t: &'static str) -> Query<'static, Postgres, PgArguments> {
        sqlx::query(self.sql.get(t)).persistent(self.config.prepared)
    }

    /// Scalar statement `t` for this store's schema.
    fn qs<O>(&self, t: &'static str) -> QueryScalar<'static, Postgres, O, PgArguments>
    where
        (O,): for<'r> FromRow<'r, PgRow>,
    {
        sqlx::query_scalar(self.sql.get(t)).persistent(self.config.prepared)
    }

    /// Statement `t` for this store's schema, rows as tuples.
    fn qa<O>(&self, t: &'static str) -> QueryAs<'static, Postgres, O, PgArguments>
    where
        O: for<'r> FromRow<'r, PgRow>,
    {
        sqlx::query_as(self.sql.get(t)).persistent(self.config.prepared)
    }

    /// Run a statement built for one filter shape.
    async fn fetch_built(&self, b: &mut QueryBuilder<Postgres>) -> Result<Vec<PgRow>> {
        let prepared = self.config.prepared;
        one!(read self, |c| b
            .build()
            .persistent(prepared)
            .fetch_all(&mut *c)
            .await
            .map_err(map))
    }

    /// Fail at once when the server refuses connections and the pool has
    /// none open, instead of waiting the whole acquire timeout.
    async fn fail_fast(&self) -> Result<()> {
        match &self.probe {
            Some((host, port)) if self.pool.size() == 0 && !self.pool.is_closed() => {
                refuse_fast(host, *port).await
            }
            _ => Ok(()),
        }
    }

    /// A connection for one call (see [`Conn`]).
    async fn conn(&self) -> Result<Conn> {
        if self.config.prepared {
            self.fail_fast().await?;
            Ok(Conn::Plain(self.pool.acquire().await.map_err(map)?))
        } else {
            Ok(Conn::Tx(self.begin().await?))
        }
    }

    /// A transaction, with the statement timeout set for it alone.
    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
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

/// The metric filters a call uses, and only those.
fn metric_filters(
    b: &mut QueryBuilder<Postgres>,
    component: &Option<String>,
    name: &Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) {
    if let Some(c) = component {
        b.push(" AND component = ").push_bind(c.clone());
    }
    if let Some(n) = name {
        b.push(" AND name = ").push_bind(n.clone());
    }
    if let Some(f) = from {
        b.push(" AND at >= ").push_bind(dt(f));
    }
    if let Some(t) = to {
        b.push(" AND at < ").push_bind(dt(t));
    }
}

/// The TCP address of the server, when it is reached over TCP.
fn probe_target(options: &PgConnectOptions) -> Option<(String, u16)> {
    if options.get_socket().is_some() || options.get_host().starts_with('/') {
        return None;
    }
    Some((options.get_host().to_string(), options.get_port()))
}

/// `Unavailable` at once if `host:port` refuses a TCP connection; anything
/// else (an answer, a slow network) is left to the driver.
async fn refuse_fast(host: &str, port: u16) -> Result<()> {
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(Error::unavailable(
            format!("Postgres at {host}:{port} refused the connection"),
        )
        .with_source(e)),
        _ => Ok(()),
    }
}

fn dt(t: Timestamp) -> DateTime<Utc> {
    t.to_datetime()
}

fn ts(d: DateTime<Utc>) -> Result<Timestamp> {
    Timestamp::from_datetime(&d)
        .map_err(|e| Error::internal("a stored timestamp is out of range").with_source(e))
}

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::internal("stored JSON does not parse").with_source(e))
}

/// Column `i` (called `name`) of a row, or `Internal` naming it: a row of
/// the wrong shape is an error, never a panic.
fn col<'r, T>(r: &'r PgRow, i: usize, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    r.try_get(i).map_err(|e| {
        Error::internal(format!("column {name} of a stored row cannot be read")).with_source(e)
    })
}

/// A stored id, position, version or sequence, which is never negative.
fn seq(r: &PgRow, i: usize, name: &str) -> Result<u64> {
    let v: i64 = col(r, i, name)?;
    u64::try_from(v).map_err(|_| Error::internal(format!("column {name} holds {v}, below zero")))
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn metric_row(r: &PgRow) -> Result<StoredMetric> {
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

fn event_row(r: &PgRow) -> Result<Event> {
    Ok(Event {
        id: seq(r, 0, "events.id")?,
        position: seq(r, 1, "events.position")?,
        kind: col(r, 2, "events.kind")?,
        occurred_at: ts(col(r, 3, "events.occurred_at")?)?,
        data: json(col::<&str>(r, 4, "events.data")?)?,
    })
}

fn key_row(r: &PgRow) -> Result<IdempotencyEntry> {
    Ok(IdempotencyEntry {
        scope: col(r, 0, "idempotency_keys.scope")?,
        key: col(r, 1, "idempotency_keys.key")?,
        token: col(r, 2, "idempotency_keys.token")?,
        claimed_at: ts(col(r, 3, "idempotency_keys.claimed_at")?)?,
        expires_at: ts(col(r, 4, "idempotency_keys.expires_at")?)?,
        response: col::<Option<&str>>(r, 5, "idempotency_keys.response")?
            .map(json)
            .transpose()?,
    })
}

/// An append's error; the function's own code for a full log is said as
/// every backend says it.
fn append_error(ns: &str, e: sqlx::Error) -> Error {
    match e.as_database_error().and_then(|d| d.code()) {
        Some(code) if code == LOG_FULL_SQLSTATE => {
            next_position(ns, validate::MAX_SEQUENCE).expect_err("the last position")
        }
        _ => map(e),
    }
}

fn appended_row(r: &PgRow) -> Result<Appended> {
    Ok(Appended {
        id: seq(r, 0, "events.id")?,
        position: seq(r, 1, "events.position")?,
        duplicate: col(r, 2, "duplicate")?,
    })
}

/// Why a batch stopped at an item.
enum Stop {
    /// The item's own error, read inside the transaction.
    Failed(Error),
    /// A unique index refused a put; the transaction is aborted, so the
    /// holder is looked up after it.
    Unique,
}

fn record_row(r: &PgRow) -> Result<Record> {
    record_row_from(r, 0)
}

/// A record from the seven columns starting at `at`.
fn record_row_from(r: &PgRow, at: usize) -> Result<Record> {
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

fn index_row(r: &PgRow) -> Result<Index> {
    Ok(Index {
        collection: col(r, 0, "record_indexes.collection")?,
        name: col(r, 1, "record_indexes.name")?,
        fields: col(r, 2, "record_indexes.fields")?,
        unique: col(r, 3, "record_indexes.is_unique")?,
    })
}

/// Attempts a put makes when unique keys keep moving under it.
const PUT_ATTEMPTS: usize = 8;

#[async_trait]
impl MetricStore for PgStore {
    async fn write_metrics(&self, ns: &str, points: &[MetricPoint]) -> Result<()> {
        if points.len() >= COPY_FROM {
            let rows = binary_copy(ns, points)?;
            let sql = self.sql.render(COPY_METRICS);
            one!(self, |c| async {
                let mut copy = c.copy_in_raw(&sql).await.map_err(map)?;
                copy.send(rows).await.map_err(map)?;
                copy.finish().await.map_err(map)
            }
            .await)?;
            return Ok(());
        }
        // One statement per call: UNNEST keeps the batch atomic and fast.
        let at: Vec<DateTime<Utc>> = points.iter().map(|p| dt(p.at)).collect();
        let component: Vec<&str> = points.iter().map(|p| p.component.as_str()).collect();
        let name: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
        let kind: Vec<&str> = points.iter().map(|p| p.kind.as_str()).collect();
        let value: Vec<f64> = points.iter().map(|p| p.value).collect();
        one!(self, |c| self
            .q(INSERT_METRICS)
            .bind(ns)
            .bind(at)
            .bind(component)
            .bind(name)
            .bind(kind)
            .bind(value)
            .execute(&mut *c)
            .await
            .map_err(map))?;
        Ok(())
    }

    async fn read_metrics(&self, ns: &str, q: &MetricQuery) -> Result<Vec<StoredMetric>> {
        let mut b = QueryBuilder::<Postgres>::new(self.sql.render(READ_METRICS_FROM));
        b.push_bind(ns.to_string());
        metric_filters(&mut b, &q.component, &q.name, q.from, q.to);
        if let Some(k) = &q.after {
            b.push(" AND (at, component, name, seq) > (")
                .push_bind(dt(k.at))
                .push(", ")
                .push_bind(k.component.clone())
                .push(", ")
                .push_bind(k.name.clone())
                .push(", ")
                .push_bind(k.seq as i64)
                .push(")");
        }
        b.push(READ_METRICS_ORDER).push_bind(q.limit as i64);
        let rows = self.fetch_built(&mut b).await?;
        rows.iter().map(metric_row).collect()
    }

    async fn list_components(&self, ns: &str) -> Result<Vec<String>> {
        one!(read self, |c| self
            .qs(LIST_COMPONENTS)
            .bind(ns)
            .fetch_all(&mut *c)
            .await
            .map_err(map))
    }

    async fn list_metric_names(&self, ns: &str, component: &str) -> Result<Vec<String>> {
        one!(read self, |c| self
            .qs(LIST_METRIC_NAMES)
            .bind(ns)
            .bind(component)
            .fetch_all(&mut *c)
            .await
            .map_err(map))
    }

    async fn aggregate(&self, ns: &str, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let mut b = QueryBuilder::<Postgres>::new(self.sql.render(AGGREGATE_HEAD));
        b.push_bind(ns.to_string());
        metric_filters(&mut b, &q.component, &q.name, q.from, q.to);
        let mut parts = AGGREGATE_BUCKETS.split("{w}");
        b.push(parts.next().unwrap_or_default());
        for part in parts {
            b.push_bind(q.bucket.as_micros()).push(part);
        }
        if !q.quantiles.is_empty() {
            let mut parts = AGGREGATE_QUANTILES.split("{q}");
            b.push(parts.next().unwrap_or_default());
            for part in parts {
                b.push_bind(q.quantiles.clone()).push(part);
            }
        }
        b.push(AGGREGATE_GROUP);
        let rows = self.fetch_built(&mut b).await?;
        rows.iter()
            .map(|r| {
                let count = seq(r, 3, "count")?;
                let sum: f64 = col(r, 4, "sum")?;
                Ok(AggregateRow {
                    bucket_start: Timestamp::from_micros(
                        col::<i64>(r, 0, "bucket")?.max(Timestamp::MIN.as_micros()),
                    )?,
                    component: col(r, 1, "metrics.component")?,
                    name: col(r, 2, "metrics.name")?,
                    count,
                    sum,
                    min: col(r, 5, "min")?,
                    max: col(r, 6, "max")?,
                    avg: sum / count as f64,
                    last: col(r, 7, "last")?,
                    quantiles: if q.quantiles.is_empty() {
                        Vec::new()
                    } else {
                        col(r, 8, "quantiles")?
                    },
                })
            })
            .collect()
    }
}

#[async_trait]
impl EventStore for PgStore {
    async fn append(&self, ns: &str, events: &[PreparedEvent]) -> Result<Vec<Appended>> {
        // One round trip: the migrations' `append_events` takes the log head
        // (locked until commit, so positions follow commit order), dedupes,
        // inserts and moves the head, in the call's own transaction.
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let times: Vec<DateTime<Utc>> = events.iter().map(|e| dt(e.occurred_at)).collect();
        let digests: Vec<&str> = events.iter().map(|e| e.digest.as_str()).collect();
        let datas: Vec<&str> = events.iter().map(|e| e.canonical.as_str()).collect();
        let rows = one!(self, |c| self
            .q(APPEND_EVENTS)
            .bind(ns)
            .bind(&kinds)
            .bind(&times)
            .bind(&digests)
            .bind(&datas)
            .fetch_all(&mut *c)
            .await
            .map_err(|e| append_error(ns, e)))?;
        rows.iter().map(appended_row).collect()
    }

    async fn list_events(&self, ns: &str, q: &EventQuery) -> Result<Vec<Event>> {
        let mut b = QueryBuilder::<Postgres>::new(self.sql.render(LIST_EVENTS_FROM));
        b.push_bind(ns.to_string());
        if let Some(f) = q.from {
            b.push(" AND occurred_at >= ").push_bind(dt(f));
        }
        if let Some(t) = q.to {
            b.push(" AND occurred_at < ").push_bind(dt(t));
        }
        if !q.kinds.is_empty() {
            b.push(" AND kind = ANY(")
                .push_bind(q.kinds.clone())
                .push(")");
        }
        if let Some((t, id)) = q.after {
            b.push(if q.newest_first {
                " AND (occurred_at, id) < ("
            } else {
                " AND (occurred_at, id) > ("
            })
            .push_bind(dt(t))
            .push(", ")
            .push_bind(id as i64)
            .push(")");
        }
        b.push(if q.newest_first {
            LIST_EVENTS_NEWEST_FIRST
        } else {
            LIST_EVENTS_ORDER
        })
        .push_bind(q.limit as i64);
        let rows = self.fetch_built(&mut b).await?;
        rows.iter().map(event_row).collect()
    }

    async fn read_log(&self, ns: &str, after: u64, limit: usize) -> Result<Vec<Event>> {
        let rows = one!(read self, |c| self
            .q(READ_LOG)
            .bind(ns)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(limit as i64)
            .fetch_all(&mut *c)
            .await
            .map_err(map))?;
        rows.iter().map(event_row).collect()
    }
}

impl PgStore {
    async fn read_key(&self, ns: &str, scope: &str, key: &str) -> Result<Option<IdempotencyEntry>> {
        let row = one!(read self, |c| self
            .q(GET_KEY)
            .bind(ns)
            .bind(scope)
            .bind(key)
            .fetch_optional(&mut *c)
            .await
            .map_err(map))?;
        row.as_ref().map(key_row).transpose()
    }

    async fn explain_key_miss(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
        action: &str,
    ) -> Error {
        match self.read_key(ns, scope, key).await {
            Err(e) => e,
            Ok(entry) => match check_live_claim(entry.as_ref(), scope, key, token, now, action) {
                Err(e) => e,
                Ok(()) => Error::conflict(None, "the idempotency key changed concurrently; retry"),
            },
        }
    }

    async fn record_version(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<u64>> {
        let v: Option<i64> = one!(read self, |c| self
            .qs(RECORD_VERSION)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .bind(dt(now))
            .fetch_optional(&mut *c)
            .await
            .map_err(map))?;
        Ok(v.map(u64_of))
    }

    /// After a unique index refused `text` as the data of record `id`:
    /// the index and the record holding the key, and whether that record
    /// has expired at `now`.
    async fn unique_holder(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<Option<(String, String, bool)>> {
        one!(read self, |c| self
            .qa(UNIQUE_HOLDER)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .bind(text)
            .bind(dt(now))
            .fetch_optional(&mut *c)
            .await
            .map_err(map))
    }
}

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Claim> {
        // INSERT … ON CONFLICT DO UPDATE … WHERE expired is atomic: concurrent
        // claimers queue on the row, and only an expired row is taken over.
        for _ in 0..16 {
            let won: Option<String> = one!(self, |c| self
                .qs(CLAIM)
                .bind(ns)
                .bind(scope)
                .bind(key)
                .bind(token)
                .bind(dt(now))
                .bind(dt(expires_at))
                .fetch_optional(&mut *c)
                .await
                .map_err(map))?;
            if won.as_deref() == Some(token) {
                return Ok(Claim::Acquired {
                    token: token.into(),
                    expires_at,
                });
            }
            if let Some(live) = self
                .read_key(ns, scope, key)
                .await?
                .and_then(|e| e.live_claim(now))
            {
                return Ok(live);
            }
        }
        Err(Error::unavailable(
            "idempotency claim kept racing with releases; retry",
        ))
    }

    async fn complete(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        response: &Value,
        now: Timestamp,
    ) -> Result<()> {
        let done = one!(self, |c| self
            .q(COMPLETE_KEY)
            .bind(ns)
            .bind(scope)
            .bind(key)
            .bind(token)
            .bind(canonical_json(response))
            .bind(dt(now))
            .execute(&mut *c)
            .await
            .map_err(map))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        Err(self
            .explain_key_miss(ns, scope, key, token, now, "completed again")
            .await)
    }

    async fn release(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
    ) -> Result<()> {
        let done = one!(self, |c| self
            .q(RELEASE_KEY)
            .bind(ns)
            .bind(scope)
            .bind(key)
            .bind(token)
            .bind(dt(now))
            .execute(&mut *c)
            .await
            .map_err(map))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        Err(self
            .explain_key_miss(ns, scope, key, token, now, "released")
            .await)
    }

    async fn get_key(&self, ns: &str, scope: &str, key: &str) -> Result<Option<IdempotencyEntry>> {
        self.read_key(ns, scope, key).await
    }

    async fn scan_keys(
        &self,
        ns: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<IdempotencyEntry>> {
        let rows = one!(read self, |c| self
            .q(SCAN_KEYS)
            .bind(ns)
            .bind(after.map(|a| a.0))
            .bind(after.map(|a| a.1))
            .bind(limit as i64)
            .fetch_all(&mut *c)
            .await
            .map_err(map))?;
        rows.iter().map(key_row).collect()
    }
}

#[async_trait]
impl RecordStore for PgStore {
    async fn put(&self, ns: &str, put: &PutRecord<'_>, now: Timestamp) -> Result<Record> {
        let PutRecord {
            collection,
            id,
            data,
            expect,
            expires_at,
        } = *put;
        let text = canonical_json(data);
        let exp = expires_at.map(dt);
        for _ in 0..PUT_ATTEMPTS {
            let row = match expect {
                // No row when the record is at its last version.
                Expect::Any => one!(self, |c| self
                    .q(UPSERT_RECORD)
                    .bind(ns)
                    .bind(collection)
                    .bind(id)
                    .bind(&text)
                    .bind(dt(now))
                    .bind(exp)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(map)),
                Expect::Absent => one!(self, |c| self
                    .q(INSERT_RECORD_IF_ABSENT)
                    .bind(ns)
                    .bind(collection)
                    .bind(id)
                    .bind(&text)
                    .bind(dt(now))
                    .bind(exp)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(map)),
                Expect::Version(v) => one!(self, |c| self
                    .q(UPDATE_RECORD_AT_VERSION)
                    .bind(ns)
                    .bind(collection)
                    .bind(id)
                    .bind(&text)
                    .bind(dt(now))
                    .bind(v as i64)
                    .bind(exp)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(map)),
            };
            match row {
                Ok(Some(r)) => return record_row(&r),
                Ok(None) => {
                    return Err(put_refused(
                        collection,
                        id,
                        expect,
                        self.record_version(ns, collection, id, now).await?,
                    ))
                }
                // The records' own key is handled by each statement, so
                // this is a unique index refusing the key.
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    match self.unique_holder(ns, collection, id, &text, now).await? {
                        Some((_, other, true)) => {
                            one!(self, |c| self
                                .q(DELETE_EXPIRED_RECORD)
                                .bind(ns)
                                .bind(collection)
                                .bind(&other)
                                .bind(dt(now))
                                .execute(&mut *c)
                                .await
                                .map_err(map))?;
                        }
                        Some((index, other, false)) => {
                            return Err(unique_conflict(collection, &index, &other))
                        }
                        None => {} // it moved on: try again
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(
            None,
            "a unique key of this record kept changing concurrently; retry",
        ))
    }

    async fn get(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Record>> {
        let row = one!(read self, |c| self
            .q(GET_RECORD)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .bind(dt(now))
            .fetch_optional(&mut *c)
            .await
            .map_err(map))?;
        row.as_ref().map(record_row).transpose()
    }

    async fn delete(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        expect: Expect,
        now: Timestamp,
    ) -> Result<()> {
        let version = match expect {
            Expect::Absent => {
                return match self.record_version(ns, collection, id, now).await? {
                    Some(c) => Err(expectation_error(expect, Some(c))),
                    None => Err(Error::not_found(format!(
                        "record {collection:?}/{id:?} does not exist"
                    ))),
                };
            }
            Expect::Any => None,
            Expect::Version(v) => Some(v as i64),
        };
        let done = one!(self, |c| self
            .q(DELETE_RECORD)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .bind(version)
            .bind(dt(now))
            .execute(&mut *c)
            .await
            .map_err(map))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        match (expect, self.record_version(ns, collection, id, now).await?) {
            (Expect::Any, None) => Err(Error::not_found(format!(
                "record {collection:?}/{id:?} does not exist"
            ))),
            (_, current) => Err(expectation_error(expect, current)),
        }
    }

    async fn list_records(
        &self,
        ns: &str,
        collection: &str,
        after: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Record>> {
        let rows = one!(read self, |c| self
            .q(LIST_RECORDS)
            .bind(ns)
            .bind(collection)
            .bind(after)
            .bind(limit as i64)
            .bind(dt(now))
            .fetch_all(&mut *c)
            .await
            .map_err(map))?;
        rows.iter().map(record_row).collect()
    }

    async fn list_collections(&self, ns: &str) -> Result<Vec<String>> {
        one!(read self, |c| self
            .qs(LIST_COLLECTIONS)
            .bind(ns)
            .fetch_all(&mut *c)
            .await
            .map_err(map))
    }

    async fn create_index(&self, ns: &str, index: &Index, now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let created = self.create_index_in(&mut tx, ns, index, now).await?;
        tx.commit().await.map_err(map)?;
        Ok(created)
    }

    async fn list_indexes(&self, ns: &str, collection: Option<&str>) -> Result<Vec<Index>> {
        let rows = one!(read self, |c| self
            .q(LIST_INDEXES)
            .bind(ns)
            .bind(collection)
            .fetch_all(&mut *c)
            .await
            .map_err(map))?;
        rows.iter().map(index_row).collect()
    }

    async fn find(
        &self,
        ns: &str,
        collection: &str,
        query: &FindQuery,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Found>> {
        let rows = one!(read self, |c| {
            let q = match &query.after {
                None => self.q(FIND_FIRST),
                Some(_) => self.q(FIND_AFTER),
            };
            let q = q
                .bind(ns)
                .bind(collection)
                .bind(&query.index)
                .bind(&query.from)
                .bind(&query.to)
                .bind(dt(now))
                .bind(limit as i64);
            let q = match &query.after {
                None => q,
                Some((key, id)) => q.bind(key).bind(id),
            };
            q.fetch_all(&mut *c).await.map_err(map)
        })?;
        if rows.is_empty() {
            let exists = one!(read self, |c| self
                .q(INDEX_DEFINITION)
                .bind(ns)
                .bind(collection)
                .bind(&query.index)
                .fetch_optional(&mut *c)
                .await
                .map_err(map))?;
            if exists.is_none() {
                return Err(no_such_index(collection, &query.index));
            }
        }
        rows.iter()
            .map(|r| {
                Ok(Found {
                    key: col(r, 0, "record_index_entries.key")?,
                    record: record_row_from(r, 1)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl BatchStore for PgStore {
    async fn apply(&self, ns: &str, items: &[BatchItem], now: Timestamp) -> Result<Vec<Applied>> {
        for _ in 0..PUT_ATTEMPTS {
            let mut tx = self.begin().await?;
            let mut out = Vec::with_capacity(items.len());
            let mut stopped = None;
            for (i, item) in items.iter().enumerate() {
                match self.apply_item(&mut tx, ns, item, now).await {
                    Ok(done) => out.push(done),
                    Err(stop) => {
                        stopped = Some((i, stop));
                        break;
                    }
                }
            }
            let Some((i, stop)) = stopped else {
                tx.commit().await.map_err(map)?;
                return Ok(out);
            };
            // Dropping the transaction would roll it back too, on the
            // connection's next use; say it now.
            let _ = tx.rollback().await;
            if let Stop::Failed(e) = stop {
                return Err(e.at_index(i));
            }
            let put = items[i].as_put().expect("only puts meet unique indexes");
            let text = canonical_json(put.data);
            match self
                .unique_holder(ns, put.collection, put.id, &text, now)
                .await?
            {
                Some((_, other, true)) => {
                    one!(self, |c| self
                        .q(DELETE_EXPIRED_RECORD)
                        .bind(ns)
                        .bind(put.collection)
                        .bind(&other)
                        .bind(dt(now))
                        .execute(&mut *c)
                        .await
                        .map_err(map))?;
                }
                Some((index, other, false)) => {
                    return Err(unique_conflict(put.collection, &index, &other).at_index(i))
                }
                // Taken by an item of this batch, or freed since: a holder
                // inside the batch is not visible from here.
                None => {
                    return Err(Error::conflict(
                        None,
                        format!(
                            "a unique index of collection {:?} refused the key, held by another \
                             write of this batch or by a record changed concurrently; nothing \
                             was written",
                            put.collection
                        ),
                    )
                    .at_index(i))
                }
            }
        }
        Err(Error::conflict(
            None,
            "a unique key of this batch kept changing concurrently; retry",
        ))
    }
}

impl PgStore {
    /// Purge one class of data (metrics, records) inside `tx`: the domain's
    /// cut-off (`all`) for all but the names with one of their own, then
    /// each of those (`one`).
    async fn purge_class(
        &self,
        tx: &mut PgConnection,
        ns: &str,
        (all, one): (&'static str, &'static str),
        before: Option<Timestamp>,
        own: &[(String, Timestamp)],
    ) -> Result<u64> {
        let mut n = 0;
        if let Some(before) = before {
            let except: Vec<&str> = own.iter().map(|(name, _)| name.as_str()).collect();
            n += self
                .q(all)
                .bind(ns)
                .bind(dt(before))
                .bind(&except)
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
        }
        for (name, before) in own {
            n += self
                .q(one)
                .bind(ns)
                .bind(name)
                .bind(dt(*before))
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
        }
        Ok(n)
    }

    /// One item of a batch, inside `tx`.
    async fn apply_item(
        &self,
        tx: &mut PgConnection,
        ns: &str,
        item: &BatchItem,
        now: Timestamp,
    ) -> std::result::Result<Applied, Stop> {
        let failed = Stop::Failed;
        match item {
            BatchItem::Put {
                collection,
                id,
                data,
                expect,
                expires_at,
            } => {
                let text = canonical_json(data);
                let exp = expires_at.map(dt);
                let q = match expect {
                    Expect::Any => self.q(UPSERT_RECORD),
                    Expect::Absent => self.q(INSERT_RECORD_IF_ABSENT),
                    Expect::Version(_) => self.q(UPDATE_RECORD_AT_VERSION),
                }
                .bind(ns)
                .bind(collection)
                .bind(id)
                .bind(&text)
                .bind(dt(now));
                let q = match expect {
                    Expect::Version(v) => q.bind(*v as i64).bind(exp),
                    _ => q.bind(exp),
                };
                match q.fetch_optional(&mut *tx).await.map_err(map) {
                    Ok(Some(r)) => record_row(&r).map(Applied::Put).map_err(failed),
                    Ok(None) => {
                        let current = self
                            .version_in(tx, ns, collection, id, now)
                            .await
                            .map_err(failed)?;
                        Err(failed(put_refused(collection, id, *expect, current)))
                    }
                    Err(e) if e.kind() == ErrorKind::Conflict => Err(Stop::Unique),
                    Err(e) => Err(failed(e)),
                }
            }
            BatchItem::Delete {
                collection,
                id,
                expect,
            } => {
                let current = self
                    .version_in(tx, ns, collection, id, now)
                    .await
                    .map_err(failed)?;
                let refused = match (expect, current) {
                    (Expect::Absent, Some(_)) | (Expect::Version(_), None) => {
                        Some(expectation_error(*expect, current))
                    }
                    (_, None) => Some(Error::not_found(format!(
                        "record {collection:?}/{id:?} does not exist"
                    ))),
                    (Expect::Version(v), Some(c)) if *v != c => {
                        Some(expectation_error(*expect, current))
                    }
                    _ => None,
                };
                if let Some(e) = refused {
                    return Err(failed(e));
                }
                // The version read above is the version deleted: the row is
                // ours (locked by the DELETE) until commit.
                let done = self
                    .q(DELETE_RECORD)
                    .bind(ns)
                    .bind(collection)
                    .bind(id)
                    .bind(current.map(|v| v as i64))
                    .bind(dt(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| failed(map(e)))?;
                if done.rows_affected() == 1 {
                    Ok(Applied::Deleted)
                } else {
                    Err(failed(Error::conflict(
                        None,
                        "the record changed concurrently; retry",
                    )))
                }
            }
            BatchItem::Append(events) => {
                let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
                let times: Vec<DateTime<Utc>> = events.iter().map(|e| dt(e.occurred_at)).collect();
                let digests: Vec<&str> = events.iter().map(|e| e.digest.as_str()).collect();
                let datas: Vec<&str> = events.iter().map(|e| e.canonical.as_str()).collect();
                let rows = self
                    .q(APPEND_EVENTS)
                    .bind(ns)
                    .bind(&kinds)
                    .bind(&times)
                    .bind(&digests)
                    .bind(&datas)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| failed(append_error(ns, e)))?;
                rows.iter()
                    .map(appended_row)
                    .collect::<Result<_>>()
                    .map(Applied::Appended)
                    .map_err(failed)
            }
            BatchItem::Complete {
                scope,
                key,
                token,
                response,
            } => {
                let done = self
                    .q(COMPLETE_KEY)
                    .bind(ns)
                    .bind(scope)
                    .bind(key)
                    .bind(token)
                    .bind(canonical_json(response))
                    .bind(dt(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| failed(map(e)))?;
                if done.rows_affected() == 1 {
                    return Ok(Applied::Completed);
                }
                let row = self
                    .q(GET_KEY)
                    .bind(ns)
                    .bind(scope)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| failed(map(e)))?;
                let entry = row.as_ref().map(key_row).transpose().map_err(failed)?;
                Err(failed(
                    match check_live_claim(
                        entry.as_ref(),
                        scope,
                        key,
                        token,
                        now,
                        "completed again",
                    ) {
                        Err(e) => e,
                        Ok(()) => {
                            Error::conflict(None, "the idempotency key changed concurrently; retry")
                        }
                    },
                ))
            }
        }
    }

    /// A record's live version, read inside `tx`.
    async fn version_in(
        &self,
        tx: &mut PgConnection,
        ns: &str,
        collection: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<u64>> {
        let v: Option<i64> = self
            .qs(RECORD_VERSION)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .bind(dt(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
        Ok(v.map(u64_of))
    }

    /// Declare an index inside `tx`, under the (namespace, collection)
    /// lock every record write takes shared.
    async fn create_index_in(
        &self,
        tx: &mut PgConnection,
        ns: &str,
        ix: &Index,
        now: Timestamp,
    ) -> Result<bool> {
        let coll = ix.collection.as_str();
        self.q(LOCK_INDEXES)
            .bind(ns)
            .bind(coll)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        let existing = self
            .q(INDEX_DEFINITION)
            .bind(ns)
            .bind(coll)
            .bind(&ix.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
        if let Some(row) = existing {
            let existing = index_row(&row)?;
            return if existing == *ix {
                Ok(false)
            } else {
                Err(index_differs(&existing, ix))
            };
        }
        self.q(DELETE_EXPIRED_IN_COLLECTION)
            .bind(ns)
            .bind(coll)
            .bind(dt(now))
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        let paths = serde_json::to_string(&ix.field_tokens()).expect("strings serialize");
        if ix.unique {
            let twin: Option<String> = self
                .qs(DUPLICATE_KEY)
                .bind(ns)
                .bind(coll)
                .bind(&paths)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map)?;
            if let Some(id) = twin {
                return Err(unique_conflict(coll, &ix.name, &id));
            }
        }
        self.q(INSERT_INDEX)
            .bind(ns)
            .bind(coll)
            .bind(&ix.name)
            .bind(&ix.fields)
            .bind(&paths)
            .bind(ix.unique)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        self.q(BACKFILL_INDEX)
            .bind(ns)
            .bind(coll)
            .bind(&ix.name)
            .bind(ix.unique)
            .bind(&paths)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        Ok(true)
    }
}

/// Counts from the four numbers a counting statement returns.
fn counts_of(metrics: i64, events: i64, keys: i64, records: i64) -> Counts {
    Counts {
        metrics: u64_of(metrics),
        events: u64_of(events),
        idempotency_keys: u64_of(keys),
        records: u64_of(records),
    }
}

#[async_trait]
impl AdminStore for PgStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            durable: true,
            shared_across_processes: true,
            native_backup: false,
        }
    }

    async fn migrate(&self) -> Result<SchemaVersions> {
        schema::migrate(&self.pool, &self.config.schema).await
    }

    async fn schema_versions(&self) -> Result<SchemaVersions> {
        Ok(SchemaVersions {
            current: schema::current(&self.pool, &self.config.schema).await?,
            expected: schema::SCHEMA_VERSION,
        })
    }

    async fn ping(&self) -> Result<()> {
        one!(self, |c| self.q(PING).execute(&mut *c).await.map_err(map)).map(|_| ())
    }

    async fn counts(&self, ns: &str) -> Result<Counts> {
        let (m, e, k, r): (i64, i64, i64, i64) = one!(read self, |c| self
            .qa(COUNTS)
            .bind(ns)
            .fetch_one(&mut *c)
            .await
            .map_err(map))?;
        Ok(counts_of(m, e, k, r))
    }

    async fn storage_bytes(&self) -> Result<Option<u64>> {
        let b: i64 = one!(read self, |c| self
            .qs(STORAGE_BYTES)
            .fetch_one(&mut *c)
            .await
            .map_err(map))?;
        Ok(Some(u64_of(b)))
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        Some(PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        })
    }

    async fn purge(&self, ns: &str, c: &PurgeCutoffs) -> Result<PurgeReport> {
        let mut tx = self.begin().await?;
        let mut report = PurgeReport {
            metrics: self
                .purge_class(
                    &mut tx,
                    ns,
                    (PURGE_METRICS, PURGE_COMPONENT),
                    c.metrics_before,
                    &c.metrics_by_component,
                )
                .await?,
            ..PurgeReport::default()
        };
        if let Some(before) = c.events_before {
            report.events = self
                .q(PURGE_EVENTS)
                .bind(ns)
                .bind(dt(before))
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
        }
        report.idempotency_keys = self
            .q(PURGE_KEYS)
            .bind(ns)
            .bind(dt(c.now))
            .execute(&mut *tx)
            .await
            .map_err(map)?
            .rows_affected();
        report.records = self
            .purge_class(
                &mut tx,
                ns,
                (PURGE_RECORDS, PURGE_COLLECTION),
                c.records_before,
                &c.records_by_collection,
            )
            .await?;
        report.records += self
            .q(PURGE_EXPIRED_RECORDS)
            .bind(ns)
            .bind(dt(c.now))
            .execute(&mut *tx)
            .await
            .map_err(map)?
            .rows_affected();
        tx.commit().await.map_err(map)?;
        Ok(report)
    }

    async fn clear(&self, ns: &str) -> Result<Counts> {
        let (m, e, k, r, _heads): (i64, i64, i64, i64, i64) = one!(self, |c| self
            .qa(CLEAR)
            .bind(ns)
            .fetch_one(&mut *c)
            .await
            .map_err(map))?;
        Ok(counts_of(m, e, k, r))
    }

    async fn namespaces(&self) -> Result<Vec<String>> {
        one!(read self, |c| self
            .qs(NAMESPACES)
            .fetch_all(&mut *c)
            .await
            .map_err(map))
    }

    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        // One transaction for the whole archive: all of it or nothing.
        let mut tx = self.begin().await?;
        for a in archive {
            // Hold the log head so no append slips in while we check and load.
            self.qs::<i64>(LOCK_LOG_HEAD)
                .bind(&a.name)
                .fetch_one(&mut *tx)
                .await
                .map_err(map)?;
            let (m, e, k, r): (i64, i64, i64, i64) = self
                .qa(COUNTS)
                .bind(&a.name)
                .fetch_one(&mut *tx)
                .await
                .map_err(map)?;
            if m + e + k + r > 0 {
                return Err(archive::not_empty(&a.name));
            }
        }
        let mut done = 0u64;
        let mut step = |n: usize| {
            done += n as u64;
            progress(done);
        };
        for a in archive {
            let ns = a.name.as_str();
            let mut metrics: Vec<&MetricPoint> = Vec::new();
            let mut keys: Vec<&IdempotencyEntry> = Vec::new();
            let mut records: Vec<&Record> = Vec::new();
            let (mut pos, mut ids, mut kind, mut at, mut digest, mut data) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for item in &a.items {
                match item {
                    ArchiveItem::Metric(p) => metrics.push(p),
                    ArchiveItem::Event(ev) => {
                        let checked = validate::json("event data", &ev.data)?;
                        pos.push(ev.position as i64);
                        ids.push(ev.id as i64);
                        kind.push(ev.kind.as_str());
                        at.push(dt(ev.occurred_at));
                        digest.push(checked.sha256_hex());
                        data.push(checked.canonical);
                    }
                    ArchiveItem::IdempotencyKey(key) => keys.push(key),
                    ArchiveItem::Record(rec) => records.push(rec),
                    ArchiveItem::Index(ix) => {
                        self.create_index_in(&mut tx, ns, ix, Timestamp::MIN)
                            .await?;
                    }
                }
            }
            for chunk in metrics.chunks(IMPORT_CHUNK) {
                self.q(INSERT_METRICS)
                    .bind(ns)
                    .bind(chunk.iter().map(|p| dt(p.at)).collect::<Vec<_>>())
                    .bind(
                        chunk
                            .iter()
                            .map(|p| p.component.as_str())
                            .collect::<Vec<_>>(),
                    )
                    .bind(chunk.iter().map(|p| p.name.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|p| p.kind.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|p| p.value).collect::<Vec<_>>())
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
                step(chunk.len());
            }
            for start in (0..pos.len()).step_by(IMPORT_CHUNK) {
                let end = (start + IMPORT_CHUNK).min(pos.len());
                self.q(INSERT_EVENTS)
                    .bind(ns)
                    .bind(&pos[start..end])
                    .bind(&ids[start..end])
                    .bind(&kind[start..end])
                    .bind(&at[start..end])
                    .bind(&digest[start..end])
                    .bind(&data[start..end])
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
                step(end - start);
            }
            if let Some(head) = pos.iter().copied().max() {
                self.q(SET_LOG_HEAD)
                    .bind(ns)
                    .bind(head)
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
            }
            for chunk in keys.chunks(IMPORT_CHUNK) {
                self.q(INSERT_KEYS)
                    .bind(ns)
                    .bind(chunk.iter().map(|k| k.scope.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|k| k.key.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|k| k.token.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|k| dt(k.claimed_at)).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|k| dt(k.expires_at)).collect::<Vec<_>>())
                    .bind(
                        chunk
                            .iter()
                            .map(|k| k.response.as_ref().map(canonical_json))
                            .collect::<Vec<_>>(),
                    )
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
                step(chunk.len());
            }
            for chunk in records.chunks(IMPORT_CHUNK) {
                self.q(INSERT_RECORDS)
                    .bind(ns)
                    .bind(
                        chunk
                            .iter()
                            .map(|r| r.collection.as_str())
                            .collect::<Vec<_>>(),
                    )
                    .bind(chunk.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
                    .bind(
                        chunk
                            .iter()
                            .map(|r| canonical_json(&r.data))
                            .collect::<Vec<_>>(),
                    )
                    .bind(chunk.iter().map(|r| r.version as i64).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|r| dt(r.created_at)).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|r| dt(r.updated_at)).collect::<Vec<_>>())
                    .bind(
                        chunk
                            .iter()
                            .map(|r| r.expires_at.map(dt))
                            .collect::<Vec<_>>(),
                    )
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match map(e) {
                        e if e.kind() == ErrorKind::Conflict => Error::conflict(
                            None,
                            format!(
                                "two records of namespace {ns:?} have one key in a unique index \
                                 declared there before the import; nothing was imported"
                            ),
                        )
                        .with_source(e),
                        e => e,
                    })?;
                step(chunk.len());
            }
        }
        tx.commit().await.map_err(map)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
