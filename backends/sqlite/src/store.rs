use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use async_trait::async_trait;
use persistkit_core::validate::canonical_json;
use persistkit_core::*;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite};

use crate::config::SqliteConfig;
use crate::error::map;
use crate::schema;
use crate::sql::*;

/// Rows per multi-row metrics INSERT (6 parameters each, well under
/// SQLite's 32 766-parameter limit).
const METRIC_CHUNK: usize = 500;
/// Items an import writes between progress reports.
const IMPORT_PROGRESS_EVERY: u64 = 1_000;

/// A persistkit store in one SQLite file (WAL, `synchronous=NORMAL`).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    config: SqliteConfig,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.config.path)
            .finish()
    }
}

impl SqliteStore {
    /// Open `sqlite://path?options` (see [`SqliteConfig::from_url`]).
    ///
    /// # Errors
    /// `InvalidInput` for a bad URL, `Unavailable` when the file cannot be
    /// opened, `Schema` when it is newer than this code.
    pub async fn open(url: &str) -> Result<Self> {
        Self::connect(SqliteConfig::from_url(url)?).await
    }

    /// Open with a configuration.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn connect(config: SqliteConfig) -> Result<Self> {
        if config.inspect && !config.path.exists() {
            return Err(Error::unavailable(format!(
                "the SQLite file {} does not exist",
                config.path.display()
            )));
        }
        if config.create {
            if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::unavailable(format!("cannot create {}", dir.display())).with_source(e)
                })?;
            }
        }
        let options = SqliteConnectOptions::new()
            .filename(&config.path)
            .create_if_missing(config.create)
            .busy_timeout(config.busy_timeout);
        let options = if config.inspect {
            // Looking changes nothing: not even the journal mode.
            options.read_only(true)
        } else {
            options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map)?;
        Self::from_pool_with(pool, config).await
    }

    /// Use an existing pool. Migrates it unless `migrate` is false.
    ///
    /// # Errors
    /// `Schema` when the database is newer than this code or migrating fails.
    pub async fn from_pool(pool: SqlitePool, migrate: bool) -> Result<Self> {
        let path = pool.connect_options().get_filename().to_path_buf();
        Self::from_pool_with(pool, SqliteConfig::new(path).migrate(migrate)).await
    }

    async fn from_pool_with(pool: SqlitePool, config: SqliteConfig) -> Result<Self> {
        if config.inspect {
            // Health and similar read-only looks: no migration, no check.
        } else if config.migrate {
            schema::migrate(&pool).await?;
        } else {
            schema::require_current(&pool).await?;
        }
        Ok(SqliteStore { pool, config })
    }

    /// The pool, for callers that want to run their own queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }
}

fn ts(micros: i64) -> Result<Timestamp> {
    Timestamp::from_micros(micros)
        .map_err(|e| Error::internal("a stored timestamp is out of range").with_source(e))
}

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::internal("stored JSON does not parse").with_source(e))
}

/// Column `i` (called `name`) of a row, or `Internal` naming it: a row of
/// the wrong shape is an error, never a panic.
fn col<'r, T>(r: &'r SqliteRow, i: usize, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    r.try_get(i).map_err(|e| {
        Error::internal(format!("column {name} of a stored row cannot be read")).with_source(e)
    })
}

/// A stored id, position, version or sequence, which is never negative.
fn seq(r: &SqliteRow, i: usize, name: &str) -> Result<u64> {
    let v: i64 = col(r, i, name)?;
    u64::try_from(v).map_err(|_| Error::internal(format!("column {name} holds {v}, below zero")))
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn metric_row(r: &SqliteRow) -> Result<StoredMetric> {
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

fn event_row(r: &SqliteRow) -> Result<Event> {
    Ok(Event {
        id: seq(r, 0, "events.id")?,
        position: seq(r, 1, "events.position")?,
        kind: col(r, 2, "events.kind")?,
        occurred_at: ts(col(r, 3, "events.occurred_at")?)?,
        data: json(col::<&str>(r, 4, "events.data")?)?,
    })
}

fn key_row(r: &SqliteRow) -> Result<IdempotencyEntry> {
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

fn record_row(r: &SqliteRow) -> Result<Record> {
    Ok(Record {
        collection: col(r, 0, "records.collection")?,
        id: col(r, 1, "records.id")?,
        data: json(col::<&str>(r, 2, "records.data")?)?,
        version: seq(r, 3, "records.version")?,
        created_at: ts(col(r, 4, "records.created_at")?)?,
        updated_at: ts(col(r, 5, "records.updated_at")?)?,
    })
}

/// A metric read with only the predicates `q` uses.
fn read_metrics_statement(ns: &str, q: &MetricQuery) -> QueryBuilder<Sqlite> {
    let mut b = QueryBuilder::<Sqlite>::new(READ_METRICS_FROM);
    b.push_bind(ns.to_string());
    metric_filters(&mut b, &q.component, &q.name, q.from, q.to);
    if let Some(k) = &q.after {
        b.push(" AND (at, component, name, seq) > (")
            .push_bind(k.at.as_micros())
            .push(", ")
            .push_bind(k.component.clone())
            .push(", ")
            .push_bind(k.name.clone())
            .push(", ")
            .push_bind(k.seq as i64)
            .push(")");
    }
    b.push(READ_METRICS_ORDER).push_bind(q.limit as i64);
    b
}

/// The metric filters a call uses, and only those.
fn metric_filters(
    b: &mut QueryBuilder<Sqlite>,
    component: &Option<String>,
    name: &Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) {
    if let Some(c) = component {
        b.push(" AND component = ").push_bind(c.as_str());
    }
    if let Some(n) = name {
        b.push(" AND name = ").push_bind(n.as_str());
    }
    if let Some(f) = from {
        b.push(" AND at >= ").push_bind(f.as_micros());
    }
    if let Some(t) = to {
        b.push(" AND at < ").push_bind(t.as_micros());
    }
}

/// Push `template`, calling `fill` wherever `hole` appears in it.
fn push_filled(
    b: &mut QueryBuilder<Sqlite>,
    template: &str,
    hole: &str,
    mut fill: impl FnMut(&mut QueryBuilder<Sqlite>),
) {
    let mut parts = template.split(hole);
    b.push(parts.next().unwrap_or_default());
    for part in parts {
        fill(b);
        b.push(part);
    }
}

/// The bucket start of `at` for buckets `width` µs wide.
fn push_bucket(b: &mut QueryBuilder<Sqlite>, width: i64) {
    push_filled(b, AGGREGATE_BUCKET, "{w}", |b| {
        b.push_bind(width);
    });
}

/// The event listing for `q`'s shape: only the filters given, in the
/// order asked, so "the latest of one kind" is a range scan on
/// `events_by_kind`.
fn list_events_statement(ns: &str, q: &EventQuery) -> QueryBuilder<Sqlite> {
    let mut b = QueryBuilder::<Sqlite>::new(LIST_EVENTS_FROM);
    b.push_bind(ns);
    if let Some(f) = q.from {
        b.push(" AND occurred_at >= ").push_bind(f.as_micros());
    }
    if let Some(t) = q.to {
        b.push(" AND occurred_at < ").push_bind(t.as_micros());
    }
    if !q.kinds.is_empty() {
        // One placeholder per kind: a statement per number of kinds.
        b.push(" AND kind IN (");
        let mut list = b.separated(", ");
        for k in &q.kinds {
            list.push_bind(k.as_str());
        }
        b.push(")");
    }
    if let Some((t, id)) = q.after {
        b.push(if q.newest_first {
            " AND (occurred_at, id) < ("
        } else {
            " AND (occurred_at, id) > ("
        })
        .push_bind(t.as_micros())
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
    b
}

/// The aggregation statement for `q`'s shape: quantile columns and ranks
/// only when asked for, filters only when given.
fn aggregate_statement(ns: &str, q: &AggregateQuery) -> QueryBuilder<Sqlite> {
    let width = q.bucket.as_micros();
    let mut b = QueryBuilder::<Sqlite>::new(AGGREGATE_COLUMNS);
    for &quantile in &q.quantiles {
        push_filled(&mut b, AGGREGATE_QUANTILE, "{q}", |b| {
            b.push_bind(quantile);
        });
    }
    push_filled(&mut b, AGGREGATE_FROM, "{b}", |b| push_bucket(b, width));
    if !q.quantiles.is_empty() {
        push_filled(&mut b, AGGREGATE_RANKS, "{b}", |b| push_bucket(b, width));
    }
    b.push(AGGREGATE_WHERE).push_bind(ns);
    metric_filters(&mut b, &q.component, &q.name, q.from, q.to);
    b.push(AGGREGATE_TAIL);
    b
}

fn chunk_insert_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let row = "(?, ?, ?, ?, ?, ?)";
        format!(
            "{INSERT_METRICS_PREFIX}VALUES {}",
            vec![row; METRIC_CHUNK].join(", ")
        )
    })
}

#[async_trait]
impl MetricStore for SqliteStore {
    async fn write_metrics(&self, ns: &str, points: &[MetricPoint]) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map)?;
        let mut chunks = points.chunks_exact(METRIC_CHUNK);
        for chunk in &mut chunks {
            let mut q = sqlx::query(AssertSqlSafe(chunk_insert_sql()));
            for p in chunk {
                q = q
                    .bind(ns)
                    .bind(p.at.as_micros())
                    .bind(&p.component)
                    .bind(&p.name)
                    .bind(p.kind.as_str())
                    .bind(p.value);
            }
            q.execute(&mut *tx).await.map_err(map)?;
        }
        for p in chunks.remainder() {
            sqlx::query(INSERT_METRIC)
                .bind(ns)
                .bind(p.at.as_micros())
                .bind(&p.component)
                .bind(&p.name)
                .bind(p.kind.as_str())
                .bind(p.value)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
        }
        tx.commit().await.map_err(map)
    }

    async fn read_metrics(&self, ns: &str, q: &MetricQuery) -> Result<Vec<StoredMetric>> {
        let mut b = read_metrics_statement(ns, q);
        let rows = b.build().fetch_all(&self.pool).await.map_err(map)?;
        rows.iter().map(metric_row).collect()
    }

    async fn list_components(&self, ns: &str) -> Result<Vec<String>> {
        sqlx::query_scalar(LIST_COMPONENTS)
            .bind(ns)
            .fetch_all(&self.pool)
            .await
            .map_err(map)
    }

    async fn list_metric_names(&self, ns: &str, component: &str) -> Result<Vec<String>> {
        sqlx::query_scalar(LIST_METRIC_NAMES)
            .bind(ns)
            .bind(component)
            .fetch_all(&self.pool)
            .await
            .map_err(map)
    }

    async fn aggregate(&self, ns: &str, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let mut b = aggregate_statement(ns, q);
        let rows = b.build().fetch_all(&self.pool).await.map_err(map)?;
        rows.iter()
            .map(|r| {
                let count = seq(r, 3, "count")?;
                let sum: f64 = col(r, 4, "sum")?;
                Ok(AggregateRow {
                    bucket_start: ts(col::<i64>(r, 0, "bucket")?.max(Timestamp::MIN.as_micros()))?,
                    component: col(r, 1, "metrics.component")?,
                    name: col(r, 2, "metrics.name")?,
                    count,
                    sum,
                    min: col(r, 5, "min")?,
                    max: col(r, 6, "max")?,
                    avg: sum / count as f64,
                    last: col(r, 7, "last")?,
                    quantiles: (0..q.quantiles.len())
                        .map(|i| col(r, 8 + i, "quantile"))
                        .collect::<Result<_>>()?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, ns: &str, events: &[PreparedEvent]) -> Result<Vec<Appended>> {
        // IMMEDIATE takes the write lock first, so appends serialize and
        // positions follow commit order.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map)?;
        let start: i64 = sqlx::query_scalar(LOG_HEAD)
            .bind(ns)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?
            .unwrap_or(0);
        let mut head = u64_of(start);
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let existing: Option<(i64, i64)> = sqlx::query_as(FIND_EVENT)
                .bind(ns)
                .bind(&e.kind)
                .bind(e.occurred_at.as_micros())
                .bind(&e.digest)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map)?;
            if let Some((id, position)) = existing {
                out.push(Appended {
                    id: u64_of(id),
                    position: u64_of(position),
                    duplicate: true,
                });
                continue;
            }
            // A full log fails the whole batch: the transaction rolls back.
            head = next_position(ns, head)?;
            sqlx::query(INSERT_EVENT)
                .bind(ns)
                .bind(head as i64)
                .bind(head as i64)
                .bind(&e.kind)
                .bind(e.occurred_at.as_micros())
                .bind(&e.digest)
                .bind(&e.canonical)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            out.push(Appended {
                id: head,
                position: head,
                duplicate: false,
            });
        }
        if head != u64_of(start) {
            sqlx::query(SET_LOG_HEAD)
                .bind(ns)
                .bind(head as i64)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
        }
        tx.commit().await.map_err(map)?;
        Ok(out)
    }

    async fn list_events(&self, ns: &str, q: &EventQuery) -> Result<Vec<Event>> {
        let mut b = list_events_statement(ns, q);
        let rows = b.build().fetch_all(&self.pool).await.map_err(map)?;
        rows.iter().map(event_row).collect()
    }

    async fn read_log(&self, ns: &str, after: u64, limit: usize) -> Result<Vec<Event>> {
        let rows = sqlx::query(READ_LOG)
            .bind(ns)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter().map(event_row).collect()
    }
}

impl SqliteStore {
    async fn get_key(&self, ns: &str, scope: &str, key: &str) -> Result<Option<IdempotencyEntry>> {
        let row = sqlx::query(GET_KEY)
            .bind(ns)
            .bind(scope)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
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
        match self.get_key(ns, scope, key).await {
            Err(e) => e,
            Ok(entry) => match check_live_claim(entry.as_ref(), scope, key, token, now, action) {
                Err(e) => e,
                Ok(()) => Error::conflict(None, "the idempotency key changed concurrently; retry"),
            },
        }
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Claim> {
        // The upsert is one statement, so exactly one concurrent claimer's
        // insert or takeover succeeds. If it reports nothing and the key is
        // gone by the time we look, a release raced us: try again.
        for _ in 0..16 {
            let won: Option<String> = sqlx::query_scalar(CLAIM)
                .bind(ns)
                .bind(scope)
                .bind(key)
                .bind(token)
                .bind(now.as_micros())
                .bind(expires_at.as_micros())
                .fetch_optional(&self.pool)
                .await
                .map_err(map)?;
            if won.as_deref() == Some(token) {
                return Ok(Claim::Acquired {
                    token: token.into(),
                    expires_at,
                });
            }
            if let Some(e) = self.get_key(ns, scope, key).await? {
                if e.expires_at > now {
                    let state = match e.response {
                        Some(response) => KeyState::Completed { response },
                        None => KeyState::InProgress,
                    };
                    return Ok(Claim::Exists {
                        state,
                        claimed_at: e.claimed_at,
                        expires_at: e.expires_at,
                    });
                }
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
        let done = sqlx::query(COMPLETE_KEY)
            .bind(ns)
            .bind(scope)
            .bind(key)
            .bind(token)
            .bind(canonical_json(response))
            .bind(now.as_micros())
            .execute(&self.pool)
            .await
            .map_err(map)?;
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
        let done = sqlx::query(RELEASE_KEY)
            .bind(ns)
            .bind(scope)
            .bind(key)
            .bind(token)
            .bind(now.as_micros())
            .execute(&self.pool)
            .await
            .map_err(map)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        Err(self
            .explain_key_miss(ns, scope, key, token, now, "released")
            .await)
    }

    async fn scan_keys(
        &self,
        ns: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<IdempotencyEntry>> {
        let rows = sqlx::query(SCAN_KEYS)
            .bind(ns)
            .bind(after.map(|a| a.0))
            .bind(after.map(|a| a.1))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter().map(key_row).collect()
    }
}

impl SqliteStore {
    async fn record_version(&self, ns: &str, collection: &str, id: &str) -> Result<Option<u64>> {
        let v: Option<i64> = sqlx::query_scalar(RECORD_VERSION)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        Ok(v.map(u64_of))
    }
}

#[async_trait]
impl RecordStore for SqliteStore {
    async fn put(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        data: &Value,
        expect: Expect,
        now: Timestamp,
    ) -> Result<Record> {
        let text = canonical_json(data);
        let row = match expect {
            // No row when the record is at its last version.
            Expect::Any => sqlx::query(UPSERT_RECORD)
                .bind(ns)
                .bind(collection)
                .bind(id)
                .bind(&text)
                .bind(now.as_micros())
                .fetch_optional(&self.pool)
                .await
                .map_err(map)?,
            Expect::Absent => sqlx::query(INSERT_RECORD_IF_ABSENT)
                .bind(ns)
                .bind(collection)
                .bind(id)
                .bind(&text)
                .bind(now.as_micros())
                .fetch_optional(&self.pool)
                .await
                .map_err(map)?,
            Expect::Version(v) => sqlx::query(UPDATE_RECORD_AT_VERSION)
                .bind(ns)
                .bind(collection)
                .bind(id)
                .bind(&text)
                .bind(now.as_micros())
                .bind(v as i64)
                .fetch_optional(&self.pool)
                .await
                .map_err(map)?,
        };
        match row {
            Some(r) => record_row(&r),
            None => Err(put_refused(
                collection,
                id,
                expect,
                self.record_version(ns, collection, id).await?,
            )),
        }
    }

    async fn get(&self, ns: &str, collection: &str, id: &str) -> Result<Option<Record>> {
        let row = sqlx::query(GET_RECORD)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        row.as_ref().map(record_row).transpose()
    }

    async fn delete(&self, ns: &str, collection: &str, id: &str, expect: Expect) -> Result<()> {
        let version = match expect {
            Expect::Absent => {
                return match self.record_version(ns, collection, id).await? {
                    Some(c) => Err(expectation_error(expect, Some(c))),
                    None => Err(Error::not_found(format!(
                        "record {collection:?}/{id:?} does not exist"
                    ))),
                };
            }
            Expect::Any => None,
            Expect::Version(v) => Some(v as i64),
        };
        let done = sqlx::query(DELETE_RECORD)
            .bind(ns)
            .bind(collection)
            .bind(id)
            .bind(version)
            .execute(&self.pool)
            .await
            .map_err(map)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        match (expect, self.record_version(ns, collection, id).await?) {
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
    ) -> Result<Vec<Record>> {
        let rows = sqlx::query(LIST_RECORDS)
            .bind(ns)
            .bind(collection)
            .bind(after)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter().map(record_row).collect()
    }

    async fn list_collections(&self, ns: &str) -> Result<Vec<String>> {
        sqlx::query_scalar(LIST_COLLECTIONS)
            .bind(ns)
            .fetch_all(&self.pool)
            .await
            .map_err(map)
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            durable: true,
            shared_across_processes: true,
            native_backup: true,
        }
    }

    async fn migrate(&self) -> Result<SchemaVersions> {
        schema::migrate(&self.pool).await
    }

    async fn schema_versions(&self) -> Result<SchemaVersions> {
        Ok(SchemaVersions {
            current: schema::current(&self.pool).await?,
            expected: schema::SCHEMA_VERSION,
        })
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query(PING)
            .execute(&self.pool)
            .await
            .map_err(map)
            .map(|_| ())
    }

    async fn counts(&self, ns: &str) -> Result<Counts> {
        let (m, e, k, r): (i64, i64, i64, i64) = sqlx::query_as(COUNTS)
            .bind(ns)
            .fetch_one(&self.pool)
            .await
            .map_err(map)?;
        Ok(Counts {
            metrics: u64_of(m),
            events: u64_of(e),
            idempotency_keys: u64_of(k),
            records: u64_of(r),
        })
    }

    async fn storage_bytes(&self) -> Result<Option<u64>> {
        let b: i64 = sqlx::query_scalar(STORAGE_BYTES)
            .fetch_one(&self.pool)
            .await
            .map_err(map)?;
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map)?;
        let mut report = PurgeReport::default();
        if let Some(before) = c.metrics_before {
            report.metrics = sqlx::query(PURGE_METRICS)
                .bind(ns)
                .bind(before.as_micros())
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
        }
        if let Some(before) = c.events_before {
            report.events = sqlx::query(PURGE_EVENTS)
                .bind(ns)
                .bind(before.as_micros())
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
        }
        report.idempotency_keys = sqlx::query(PURGE_KEYS)
            .bind(ns)
            .bind(c.now.as_micros())
            .execute(&mut *tx)
            .await
            .map_err(map)?
            .rows_affected();
        if let Some(before) = c.records_before {
            report.records = sqlx::query(PURGE_RECORDS)
                .bind(ns)
                .bind(before.as_micros())
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
        }
        tx.commit().await.map_err(map)?;
        Ok(report)
    }

    async fn namespaces(&self) -> Result<Vec<String>> {
        sqlx::query_scalar(NAMESPACES)
            .fetch_all(&self.pool)
            .await
            .map_err(map)
    }

    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        // One IMMEDIATE transaction for the whole archive: all of it or nothing.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map)?;
        for a in archive {
            let (m, e, k, r): (i64, i64, i64, i64) = sqlx::query_as(COUNTS)
                .bind(&a.name)
                .fetch_one(&mut *tx)
                .await
                .map_err(map)?;
            if m + e + k + r > 0 {
                return Err(archive::not_empty(&a.name));
            }
        }
        let mut done = 0u64;
        for a in archive {
            let ns = a.name.as_str();
            let mut head = 0i64;
            for item in &a.items {
                match item {
                    ArchiveItem::Metric(p) => {
                        sqlx::query(INSERT_METRIC)
                            .bind(ns)
                            .bind(p.at.as_micros())
                            .bind(&p.component)
                            .bind(&p.name)
                            .bind(p.kind.as_str())
                            .bind(p.value)
                            .execute(&mut *tx)
                            .await
                            .map_err(map)?;
                    }
                    ArchiveItem::Event(ev) => {
                        let checked = validate::json("event data", &ev.data)?;
                        let position = ev.position as i64;
                        head = head.max(position);
                        sqlx::query(INSERT_EVENT)
                            .bind(ns)
                            .bind(position)
                            .bind(ev.id as i64)
                            .bind(&ev.kind)
                            .bind(ev.occurred_at.as_micros())
                            .bind(checked.sha256_hex())
                            .bind(&checked.canonical)
                            .execute(&mut *tx)
                            .await
                            .map_err(map)?;
                    }
                    ArchiveItem::IdempotencyKey(key) => {
                        sqlx::query(INSERT_KEY_FULL)
                            .bind(ns)
                            .bind(&key.scope)
                            .bind(&key.key)
                            .bind(&key.token)
                            .bind(key.claimed_at.as_micros())
                            .bind(key.expires_at.as_micros())
                            .bind(key.response.as_ref().map(canonical_json))
                            .execute(&mut *tx)
                            .await
                            .map_err(map)?;
                    }
                    ArchiveItem::Record(rec) => {
                        sqlx::query(INSERT_RECORD_FULL)
                            .bind(ns)
                            .bind(&rec.collection)
                            .bind(&rec.id)
                            .bind(canonical_json(&rec.data))
                            .bind(rec.version as i64)
                            .bind(rec.created_at.as_micros())
                            .bind(rec.updated_at.as_micros())
                            .execute(&mut *tx)
                            .await
                            .map_err(map)?;
                    }
                }
                done += 1;
                if done.is_multiple_of(IMPORT_PROGRESS_EVERY) {
                    progress(done);
                }
            }
            if head > 0 {
                sqlx::query(SET_LOG_HEAD)
                    .bind(ns)
                    .bind(head)
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
            }
        }
        tx.commit().await.map_err(map)?;
        progress(done);
        Ok(())
    }

    async fn backup(&self, dest: &Path) -> Result<()> {
        let path = dest
            .to_str()
            .ok_or_else(|| Error::invalid("backup path must be UTF-8"))?;
        sqlx::query(VACUUM_INTO)
            .bind(path)
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod plans {
    use super::*;

    async fn plan(pool: &SqlitePool, sql: &str) -> String {
        // Unbound parameters are NULL, which is enough to plan with.
        let rows = sqlx::raw_sql(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .fetch_all(pool)
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<String, _>(3))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn query(component: bool, name: bool, window: bool) -> MetricQuery {
        let t = Timestamp::from_secs(1_700_000_000).unwrap();
        MetricQuery {
            component: component.then(|| "api".to_string()),
            name: name.then(|| "latency".to_string()),
            from: window.then_some(t),
            to: window.then_some(t),
            limit: 100,
            after: None,
        }
    }

    /// Each read shape is a range scan on the index for its filters, never
    /// a scan of the namespace with the filters applied row by row.
    #[tokio::test]
    async fn windowed_reads_are_index_range_scans() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}/p.db", dir.path().display()))
            .await
            .unwrap();
        let series = plan(
            store.pool(),
            read_metrics_statement("ns", &query(true, true, true))
                .sql()
                .as_str(),
        )
        .await;
        assert!(
            series
                .contains("metrics_by_series (ns=? AND component=? AND name=? AND at>? AND at<?)"),
            "{series}"
        );
        let window = plan(
            store.pool(),
            read_metrics_statement("ns", &query(false, false, true))
                .sql()
                .as_str(),
        )
        .await;
        assert!(
            window.contains("metrics_by_time (ns=? AND at>? AND at<?)"),
            "{window}"
        );
        let latest = EventQuery {
            from: None,
            to: None,
            kinds: vec!["paid".into()],
            limit: 100,
            after: None,
            newest_first: true,
        };
        let plan_of = |q: &EventQuery| list_events_statement("ns", q).sql().as_str().to_string();
        let kind = plan(store.pool(), &plan_of(&latest)).await;
        assert!(
            kind.contains("events_by_kind (ns=? AND kind=?)") && !kind.contains("TEMP B-TREE"),
            "the latest events of a kind come from the index, in its order: {kind}"
        );
        let next_page = EventQuery {
            after: Some((Timestamp::from_secs(1_700_000_000).unwrap(), 7)),
            ..latest
        };
        let kind = plan(store.pool(), &plan_of(&next_page)).await;
        assert!(
            kind.contains("events_by_kind (ns=? AND kind=?") && !kind.contains("TEMP B-TREE"),
            "{kind}"
        );
    }
}
