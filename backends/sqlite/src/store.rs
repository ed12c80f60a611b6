use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use persistkit_core::validate::canonical_json;
use persistkit_core::*;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, Params, Row, TransactionBehavior};
use serde_json::Value;

use crate::config::SqliteConfig;
use crate::error::map;
use crate::pool::Pool;
use crate::schema;
use crate::sql::*;

/// Rows per multi-row metrics INSERT, largest first (6 parameters a row,
/// well under SQLite's 32 766-parameter limit).
const METRIC_CHUNKS: &[usize] = &[500];
/// Items an import writes between progress reports.
const IMPORT_PROGRESS_EVERY: u64 = 1_000;

/// A persistkit store in one SQLite file (WAL, `synchronous=NORMAL`).
#[derive(Clone)]
pub struct SqliteStore {
    pool: Arc<Pool>,
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
        let pool = Arc::new(Pool::open(config.clone())?);
        if config.inspect {
            // Health and similar read-only looks: no migration, no check.
        } else if config.migrate {
            pool.run(schema::migrate).await?;
        } else {
            pool.run(schema::require_current).await?;
        }
        Ok(SqliteStore { pool, config })
    }

    /// The plan SQLite uses for `find` with `query` (the first page, or
    /// the next when `query.after` is set), as `EXPLAIN QUERY PLAN` lines.
    ///
    /// # Errors
    /// As any read.
    pub async fn explain_find(
        &self,
        ns: &str,
        collection: &str,
        query: &FindQuery,
    ) -> Result<String> {
        let sql = if query.after.is_some() {
            FIND_AFTER
        } else {
            FIND_FIRST
        };
        let sql = format!("EXPLAIN QUERY PLAN {sql}");
        self.pool
            .run(|c| {
                let mut st = c.prepare(&sql).map_err(map)?;
                let head = params![
                    ns,
                    collection,
                    query.index,
                    query.from,
                    query.to,
                    0i64,
                    100i64
                ];
                let mut rows = match &query.after {
                    None => st.query(head),
                    Some((key, id)) => st.query(params![
                        ns,
                        collection,
                        query.index,
                        query.from,
                        query.to,
                        0i64,
                        100i64,
                        key,
                        id
                    ]),
                }
                .map_err(map)?;
                let mut lines = Vec::new();
                while let Some(r) = rows.next().map_err(map)? {
                    lines.push(col::<String>(r, 3, "plan")?);
                }
                Ok(lines.join("\n"))
            })
            .await
    }

    /// Run your own statements on one of the store's connections (a
    /// closure on a blocking `rusqlite` connection; keep it short).
    ///
    /// # Errors
    /// `Closed` once the store is closed, `Unavailable` when no connection
    /// frees up in time, and what `f` fails with, mapped as the store's own
    /// errors are.
    pub async fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send,
    ) -> Result<T> {
        self.pool.run(|c| f(c).map_err(map)).await
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

fn bad_column(name: &str, e: impl Into<BoxError>) -> Error {
    Error::internal(format!("column {name} of a stored row cannot be read")).with_source(e)
}

/// Column `i` (called `name`) of a row, or `Internal` naming it: a row of
/// the wrong shape is an error, never a panic.
fn col<T: rusqlite::types::FromSql>(r: &Row<'_>, i: usize, name: &str) -> Result<T> {
    r.get(i).map_err(|e| bad_column(name, e))
}

/// A text column, borrowed from the row.
fn text<'r>(r: &'r Row<'_>, i: usize, name: &str) -> Result<&'r str> {
    r.get_ref(i)
        .map_err(|e| bad_column(name, e))?
        .as_str()
        .map_err(|e| bad_column(name, e))
}

/// A text column that may be NULL.
fn text_or_null<'r>(r: &'r Row<'_>, i: usize, name: &str) -> Result<Option<&'r str>> {
    match r.get_ref(i).map_err(|e| bad_column(name, e))? {
        ValueRef::Null => Ok(None),
        v => v.as_str().map(Some).map_err(|e| bad_column(name, e)),
    }
}

/// A stored id, position, version or sequence, which is never negative.
fn seq(r: &Row<'_>, i: usize, name: &str) -> Result<u64> {
    let v: i64 = col(r, i, name)?;
    u64::try_from(v).map_err(|_| Error::internal(format!("column {name} holds {v}, below zero")))
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn metric_row(r: &Row<'_>) -> Result<StoredMetric> {
    Ok(StoredMetric {
        seq: seq(r, 0, "metrics.seq")?,
        point: MetricPoint {
            at: ts(col(r, 1, "metrics.at")?)?,
            component: col(r, 2, "metrics.component")?,
            name: col(r, 3, "metrics.name")?,
            kind: MetricKind::parse(text(r, 4, "metrics.kind")?)?,
            value: col(r, 5, "metrics.value")?,
        },
    })
}

fn event_row(r: &Row<'_>) -> Result<Event> {
    Ok(Event {
        id: seq(r, 0, "events.id")?,
        position: seq(r, 1, "events.position")?,
        kind: col(r, 2, "events.kind")?,
        occurred_at: ts(col(r, 3, "events.occurred_at")?)?,
        data: json(text(r, 4, "events.data")?)?,
    })
}

fn key_row(r: &Row<'_>) -> Result<IdempotencyEntry> {
    Ok(IdempotencyEntry {
        scope: col(r, 0, "idempotency_keys.scope")?,
        key: col(r, 1, "idempotency_keys.key")?,
        token: col(r, 2, "idempotency_keys.token")?,
        claimed_at: ts(col(r, 3, "idempotency_keys.claimed_at")?)?,
        expires_at: ts(col(r, 4, "idempotency_keys.expires_at")?)?,
        response: text_or_null(r, 5, "idempotency_keys.response")?
            .map(json)
            .transpose()?,
    })
}

fn record_row(r: &Row<'_>) -> Result<Record> {
    record_row_from(r, 0)
}

/// A record from the seven columns starting at `at`.
fn record_row_from(r: &Row<'_>, at: usize) -> Result<Record> {
    Ok(Record {
        collection: col(r, at, "records.collection")?,
        id: col(r, at + 1, "records.id")?,
        data: json(text(r, at + 2, "records.data")?)?,
        version: seq(r, at + 3, "records.version")?,
        created_at: ts(col(r, at + 4, "records.created_at")?)?,
        updated_at: ts(col(r, at + 5, "records.updated_at")?)?,
        expires_at: col::<Option<i64>>(r, at + 6, "records.expires_at")?
            .map(ts)
            .transpose()?,
    })
}

fn index_row(r: &Row<'_>) -> Result<Index> {
    let fields: String = col(r, 2, "record_indexes.fields")?;
    Ok(Index {
        collection: col(r, 0, "record_indexes.collection")?,
        name: col(r, 1, "record_indexes.name")?,
        fields: serde_json::from_str(&fields).map_err(|e| {
            Error::internal("record_indexes.fields is not a JSON array of strings").with_source(e)
        })?,
        unique: col::<i64>(r, 3, "record_indexes.is_unique")? != 0,
    })
}

/// Every row of a cached statement, each turned into a `T` by `f`.
fn all<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    f: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut st = c.prepare_cached(sql).map_err(map)?;
    let mut rows = st.query(params).map_err(map)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(map)? {
        out.push(f(r)?);
    }
    Ok(out)
}

/// The first row of a cached statement, if any.
fn first<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    f: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut st = c.prepare_cached(sql).map_err(map)?;
    let mut rows = st.query(params).map_err(map)?;
    rows.next().map_err(map)?.map(f).transpose()
}

/// Run a cached statement; the rows it changed.
fn exec(c: &Connection, sql: &str, params: impl Params) -> Result<usize> {
    c.prepare_cached(sql)
        .map_err(map)?
        .execute(params)
        .map_err(map)
}

/// `BEGIN IMMEDIATE`: the write lock first, so writers serialize and
/// positions follow commit order.
fn immediate(c: &mut Connection) -> Result<rusqlite::Transaction<'_>> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map)
}

/// A statement built for one call's shape: the SQL text, and its values in
/// placeholder order.
#[derive(Debug, Default)]
pub(crate) struct Query<'a> {
    pub(crate) sql: String,
    params: Vec<ToSqlOutput<'a>>,
}

impl<'a> Query<'a> {
    fn new(sql: &str) -> Self {
        Query {
            sql: sql.to_string(),
            params: Vec::new(),
        }
    }

    fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    fn bind(&mut self, v: impl Into<ToSqlOutput<'a>>) -> &mut Self {
        self.sql.push('?');
        self.params.push(v.into());
        self
    }

    /// Push `template`, calling `fill` wherever `hole` appears in it.
    fn push_filled(&mut self, template: &str, hole: &str, mut fill: impl FnMut(&mut Self)) {
        let mut parts = template.split(hole);
        self.push(parts.next().unwrap_or_default());
        for part in parts {
            fill(self);
            self.push(part);
        }
    }

    fn rows<T>(&self, c: &Connection, f: impl Fn(&Row<'_>) -> Result<T>) -> Result<Vec<T>> {
        all(c, &self.sql, rusqlite::params_from_iter(&self.params), f)
    }
}

/// A metric read with only the predicates `q` uses.
pub(crate) fn read_metrics_statement<'a>(ns: &'a str, q: &'a MetricQuery) -> Query<'a> {
    let mut b = Query::new(READ_METRICS_FROM);
    b.bind(ns);
    metric_filters(&mut b, &q.component, &q.name, q.from, q.to);
    if let Some(k) = &q.after {
        b.push(" AND (at, component, name, seq) > (")
            .bind(k.at.as_micros())
            .push(", ")
            .bind(k.component.as_str())
            .push(", ")
            .bind(k.name.as_str())
            .push(", ")
            .bind(k.seq as i64)
            .push(")");
    }
    b.push(READ_METRICS_ORDER).bind(q.limit as i64);
    b
}

/// The metric filters a call uses, and only those.
fn metric_filters<'a>(
    b: &mut Query<'a>,
    component: &'a Option<String>,
    name: &'a Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) {
    if let Some(c) = component {
        b.push(" AND component = ").bind(c.as_str());
    }
    if let Some(n) = name {
        b.push(" AND name = ").bind(n.as_str());
    }
    if let Some(f) = from {
        b.push(" AND at >= ").bind(f.as_micros());
    }
    if let Some(t) = to {
        b.push(" AND at < ").bind(t.as_micros());
    }
}

/// The bucket start of `at` for buckets `width` µs wide.
fn push_bucket(b: &mut Query, width: i64) {
    b.push_filled(AGGREGATE_BUCKET, "{w}", |b| {
        b.bind(width);
    });
}

/// The event listing for `q`'s shape: only the filters given, in the
/// order asked, so "the latest of one kind" is a range scan on
/// `events_by_kind`.
pub(crate) fn list_events_statement<'a>(ns: &'a str, q: &'a EventQuery) -> Query<'a> {
    let mut b = Query::new(LIST_EVENTS_FROM);
    b.bind(ns);
    if let Some(f) = q.from {
        b.push(" AND occurred_at >= ").bind(f.as_micros());
    }
    if let Some(t) = q.to {
        b.push(" AND occurred_at < ").bind(t.as_micros());
    }
    if !q.kinds.is_empty() {
        // One placeholder per kind: a statement per number of kinds.
        b.push(" AND kind IN (");
        for (i, k) in q.kinds.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.bind(k.as_str());
        }
        b.push(")");
    }
    if let Some((t, id)) = q.after {
        b.push(if q.newest_first {
            " AND (occurred_at, id) < ("
        } else {
            " AND (occurred_at, id) > ("
        })
        .bind(t.as_micros())
        .push(", ")
        .bind(id as i64)
        .push(")");
    }
    b.push(if q.newest_first {
        LIST_EVENTS_NEWEST_FIRST
    } else {
        LIST_EVENTS_ORDER
    })
    .bind(q.limit as i64);
    b
}

/// The aggregation statement for `q`'s shape: quantile columns and ranks
/// only when asked for, filters only when given.
fn aggregate_statement<'a>(ns: &'a str, q: &'a AggregateQuery) -> Query<'a> {
    let width = q.bucket.as_micros();
    let mut b = Query::new(AGGREGATE_COLUMNS);
    for &quantile in &q.quantiles {
        b.push_filled(AGGREGATE_QUANTILE, "{q}", |b| {
            b.bind(quantile);
        });
    }
    b.push_filled(AGGREGATE_FROM, "{b}", |b| push_bucket(b, width));
    if !q.quantiles.is_empty() {
        b.push_filled(AGGREGATE_RANKS, "{b}", |b| push_bucket(b, width));
    }
    b.push(AGGREGATE_WHERE).bind(ns);
    metric_filters(&mut b, &q.component, &q.name, q.from, q.to);
    b.push(AGGREGATE_TAIL);
    b
}

/// The multi-row INSERT of `rows` points (one of [`METRIC_CHUNKS`]).
fn chunk_insert_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        METRIC_CHUNKS
            .iter()
            .map(|&n| {
                format!(
                    "{INSERT_METRICS_PREFIX}VALUES {}",
                    vec!["(?, ?, ?, ?, ?, ?)"; n].join(", ")
                )
            })
            .collect()
    });
    let i = METRIC_CHUNKS.iter().position(|&n| n == rows).unwrap_or(0);
    &all[i]
}

/// Insert `points` into `ns` inside the caller's transaction: in
/// multi-row statements of the sizes in [`METRIC_CHUNKS`], largest first,
/// and the rest one row at a time.
fn insert_metrics(c: &Connection, ns: &str, mut points: &[MetricPoint]) -> Result<()> {
    for &size in METRIC_CHUNKS {
        let mut chunks = points.chunks_exact(size);
        if chunks.len() > 0 {
            let mut st = c.prepare_cached(chunk_insert_sql(size)).map_err(map)?;
            for chunk in &mut chunks {
                for (i, p) in chunk.iter().enumerate() {
                    let at = i * 6;
                    st.raw_bind_parameter(at + 1, ns).map_err(map)?;
                    st.raw_bind_parameter(at + 2, p.at.as_micros())
                        .map_err(map)?;
                    st.raw_bind_parameter(at + 3, &p.component).map_err(map)?;
                    st.raw_bind_parameter(at + 4, &p.name).map_err(map)?;
                    st.raw_bind_parameter(at + 5, p.kind.as_str())
                        .map_err(map)?;
                    st.raw_bind_parameter(at + 6, p.value).map_err(map)?;
                }
                st.raw_execute().map_err(map)?;
            }
        }
        points = chunks.remainder();
    }
    if !points.is_empty() {
        let mut st = c.prepare_cached(INSERT_METRIC).map_err(map)?;
        for p in points {
            st.execute(params![
                ns,
                p.at.as_micros(),
                p.component,
                p.name,
                p.kind.as_str(),
                p.value
            ])
            .map_err(map)?;
        }
    }
    Ok(())
}

#[async_trait]
impl MetricStore for SqliteStore {
    async fn write_metrics(&self, ns: &str, points: &[MetricPoint]) -> Result<()> {
        self.pool
            .run(|c| {
                let tx = immediate(c)?;
                insert_metrics(&tx, ns, points)?;
                tx.commit().map_err(map)
            })
            .await
    }

    async fn read_metrics(&self, ns: &str, q: &MetricQuery) -> Result<Vec<StoredMetric>> {
        let b = read_metrics_statement(ns, q);
        self.pool.run(|c| b.rows(c, metric_row)).await
    }

    async fn list_components(&self, ns: &str) -> Result<Vec<String>> {
        self.pool
            .run(|c| all(c, LIST_COMPONENTS, [ns], |r| col(r, 0, "component")))
            .await
    }

    async fn list_metric_names(&self, ns: &str, component: &str) -> Result<Vec<String>> {
        self.pool
            .run(|c| all(c, LIST_METRIC_NAMES, [ns, component], |r| col(r, 0, "name")))
            .await
    }

    async fn aggregate(&self, ns: &str, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let b = aggregate_statement(ns, q);
        let quantiles = q.quantiles.len();
        self.pool
            .run(|c| {
                b.rows(c, |r| {
                    let count = seq(r, 3, "count")?;
                    let sum: f64 = col(r, 4, "sum")?;
                    Ok(AggregateRow {
                        bucket_start: ts(
                            col::<i64>(r, 0, "bucket")?.max(Timestamp::MIN.as_micros())
                        )?,
                        component: col(r, 1, "metrics.component")?,
                        name: col(r, 2, "metrics.name")?,
                        count,
                        sum,
                        min: col(r, 5, "min")?,
                        max: col(r, 6, "max")?,
                        avg: sum / count as f64,
                        last: col(r, 7, "last")?,
                        quantiles: (0..quantiles)
                            .map(|i| col(r, 8 + i, "quantile"))
                            .collect::<Result<_>>()?,
                    })
                })
            })
            .await
    }
}

/// Append `events` to `ns` in one IMMEDIATE transaction: positions follow
/// commit order, duplicates get the original's id and position, a full
/// log fails the whole batch.
fn append_in(c: &mut Connection, ns: &str, events: &[PreparedEvent]) -> Result<Vec<Appended>> {
    let tx = immediate(c)?;
    let out = append_on(&tx, ns, events)?;
    tx.commit().map_err(map)?;
    Ok(out)
}

/// Append inside the caller's IMMEDIATE transaction `tx`.
fn append_on(tx: &Connection, ns: &str, events: &[PreparedEvent]) -> Result<Vec<Appended>> {
    let start: i64 = first(tx, LOG_HEAD, [ns], |r| col(r, 0, "last_position"))?.unwrap_or(0);
    let mut head = u64_of(start);
    let mut out = Vec::with_capacity(events.len());
    {
        let mut insert = tx
            .prepare_cached(INSERT_EVENT_UNLESS_DUPLICATE)
            .map_err(map)?;
        let duplicate_of = |e: &PreparedEvent| {
            first(
                tx,
                FIND_EVENT,
                params![ns, e.kind, e.occurred_at.as_micros(), e.digest],
                |r| {
                    Ok(Appended {
                        id: seq(r, 0, "events.id")?,
                        position: seq(r, 1, "events.position")?,
                        duplicate: true,
                    })
                },
            )
        };
        for e in events {
            let next = match next_position(ns, head) {
                Ok(next) => next,
                // A full log still resolves duplicates; anything new fails
                // the whole batch, and the transaction rolls back.
                Err(full) => {
                    out.push(duplicate_of(e)?.ok_or(full)?);
                    continue;
                }
            };
            let mut rows = insert
                .query(params![
                    ns,
                    next as i64,
                    e.kind,
                    e.occurred_at.as_micros(),
                    e.digest,
                    e.canonical
                ])
                .map_err(map)?;
            if rows.next().map_err(map)?.is_some() {
                head = next;
                out.push(Appended {
                    id: head,
                    position: head,
                    duplicate: false,
                });
                continue;
            }
            drop(rows);
            out.push(
                duplicate_of(e)?
                    .ok_or_else(|| Error::internal("a duplicate event is missing from the log"))?,
            );
        }
    }
    if head != u64_of(start) {
        exec(tx, SET_LOG_HEAD, params![ns, head as i64])?;
    }
    Ok(out)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, ns: &str, events: &[PreparedEvent]) -> Result<Vec<Appended>> {
        self.pool.run(|c| append_in(c, ns, events)).await
    }

    async fn list_events(&self, ns: &str, q: &EventQuery) -> Result<Vec<Event>> {
        let b = list_events_statement(ns, q);
        self.pool.run(|c| b.rows(c, event_row)).await
    }

    async fn read_log(&self, ns: &str, after: u64, limit: usize) -> Result<Vec<Event>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.pool
            .run(|c| all(c, READ_LOG, params![ns, after, limit as i64], event_row))
            .await
    }
}

/// Complete the live claim `token` holds, on `c` (maybe in a transaction).
fn complete_on(
    c: &Connection,
    ns: &str,
    scope: &str,
    key: &str,
    token: &str,
    response: &Value,
    now: Timestamp,
) -> Result<()> {
    let response = canonical_json(response);
    let done = exec(
        c,
        COMPLETE_KEY,
        params![ns, scope, key, token, response, now.as_micros()],
    )?;
    if done == 1 {
        return Ok(());
    }
    Err(explain_key_miss(
        c,
        ns,
        scope,
        key,
        token,
        now,
        "completed again",
    ))
}

fn get_key_in(
    c: &Connection,
    ns: &str,
    scope: &str,
    key: &str,
) -> Result<Option<IdempotencyEntry>> {
    first(c, GET_KEY, [ns, scope, key], key_row)
}

/// Why a complete or release changed nothing: the claim is missing,
/// expired, someone else's or already completed; or, if it looks live and
/// ours, it changed concurrently.
fn explain_key_miss(
    c: &Connection,
    ns: &str,
    scope: &str,
    key: &str,
    token: &str,
    now: Timestamp,
    action: &str,
) -> Error {
    match get_key_in(c, ns, scope, key) {
        Err(e) => e,
        Ok(entry) => match check_live_claim(entry.as_ref(), scope, key, token, now, action) {
            Err(e) => e,
            Ok(()) => Error::conflict(None, "the idempotency key changed concurrently; retry"),
        },
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
        self.pool
            .run(|c| {
                // The upsert is one statement, so exactly one concurrent
                // claimer's insert or takeover succeeds. If it reports
                // nothing and the key is gone by the time we look, a release
                // raced us: try again.
                for _ in 0..16 {
                    let won: Option<String> = first(
                        c,
                        CLAIM,
                        params![
                            ns,
                            scope,
                            key,
                            token,
                            now.as_micros(),
                            expires_at.as_micros()
                        ],
                        |r| col(r, 0, "token"),
                    )?;
                    if won.as_deref() == Some(token) {
                        return Ok(Claim::Acquired {
                            token: token.into(),
                            expires_at,
                        });
                    }
                    if let Some(live) =
                        get_key_in(c, ns, scope, key)?.and_then(|e| e.live_claim(now))
                    {
                        return Ok(live);
                    }
                }
                Err(Error::unavailable(
                    "idempotency claim kept racing with releases; retry",
                ))
            })
            .await
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
        self.pool
            .run(|c| complete_on(c, ns, scope, key, token, response, now))
            .await
    }

    async fn release(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
    ) -> Result<()> {
        self.pool
            .run(|c| {
                let done = exec(
                    c,
                    RELEASE_KEY,
                    params![ns, scope, key, token, now.as_micros()],
                )?;
                if done == 1 {
                    return Ok(());
                }
                Err(explain_key_miss(c, ns, scope, key, token, now, "released"))
            })
            .await
    }

    async fn get_key(&self, ns: &str, scope: &str, key: &str) -> Result<Option<IdempotencyEntry>> {
        self.pool.run(|c| get_key_in(c, ns, scope, key)).await
    }

    async fn scan_keys(
        &self,
        ns: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<IdempotencyEntry>> {
        self.pool
            .run(|c| {
                all(
                    c,
                    SCAN_KEYS,
                    params![ns, after.map(|a| a.0), after.map(|a| a.1), limit as i64],
                    key_row,
                )
            })
            .await
    }
}

fn record_version_in(
    c: &Connection,
    ns: &str,
    collection: &str,
    id: &str,
    now: Timestamp,
) -> Result<Option<u64>> {
    Ok(first(
        c,
        RECORD_VERSION,
        params![ns, collection, id, now.as_micros()],
        |r| col::<i64>(r, 0, "records.version"),
    )?
    .map(u64_of))
}

/// Attempts a put makes when unique keys keep moving under it.
const PUT_ATTEMPTS: usize = 8;

/// One record write on `c` (which may be inside a transaction): the
/// statement for `expect`, then, when a unique index refuses the key, the
/// holder is named, or removed and the write tried again if it expired.
fn put_in(c: &Connection, ns: &str, put: &PutRecord<'_>, now: Timestamp) -> Result<Record> {
    let PutRecord {
        collection,
        id,
        data,
        expect,
        expires_at,
    } = *put;
    let text = canonical_json(data);
    let at = now.as_micros();
    let exp = expires_at.map(|t| t.as_micros());
    for _ in 0..PUT_ATTEMPTS {
        let row = match expect {
            // No row when the record is at its last version.
            Expect::Any => first(
                c,
                UPSERT_RECORD,
                params![ns, collection, id, text, at, exp],
                record_row,
            ),
            Expect::Absent => first(
                c,
                INSERT_RECORD_IF_ABSENT,
                params![ns, collection, id, text, at, exp],
                record_row,
            ),
            Expect::Version(v) => first(
                c,
                UPDATE_RECORD_AT_VERSION,
                params![ns, collection, id, text, at, v as i64, exp],
                record_row,
            ),
        };
        match row {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {
                return Err(put_refused(
                    collection,
                    id,
                    expect,
                    record_version_in(c, ns, collection, id, now)?,
                ))
            }
            // The records' own key is handled by each statement, so this
            // is a unique index refusing the key.
            Err(e) if e.kind() == ErrorKind::Conflict => {
                let holder = first(c, UNIQUE_HOLDER, params![ns, collection, id, text], |r| {
                    Ok((
                        col::<String>(r, 0, "record_indexes.name")?,
                        col::<String>(r, 1, "record_index_entries.id")?,
                        col::<Option<i64>>(r, 2, "records.expires_at")?,
                    ))
                })?;
                match holder {
                    Some((_, other, Some(until))) if until <= at => {
                        exec(c, DELETE_EXPIRED_RECORD, params![ns, collection, other, at])?;
                    }
                    Some((index, other, _)) => {
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

/// Declare an index on `c`, inside the caller's IMMEDIATE transaction.
fn create_index_in(c: &Connection, ns: &str, ix: &Index, now: Timestamp) -> Result<bool> {
    let coll = ix.collection.as_str();
    if let Some(existing) = first(c, INDEX_DEFINITION, params![ns, coll, ix.name], index_row)? {
        return if existing == *ix {
            Ok(false)
        } else {
            Err(index_differs(&existing, ix))
        };
    }
    exec(
        c,
        DELETE_EXPIRED_IN_COLLECTION,
        params![ns, coll, now.as_micros()],
    )?;
    let fields = serde_json::to_string(&ix.fields).expect("strings serialize");
    if ix.unique {
        if let Some(id) = first(c, DUPLICATE_KEY, params![ns, coll, fields], |r| {
            col::<String>(r, 0, "records.id")
        })? {
            return Err(unique_conflict(coll, &ix.name, &id));
        }
    }
    exec(
        c,
        INSERT_INDEX,
        params![ns, coll, ix.name, fields, ix.unique],
    )?;
    exec(
        c,
        BACKFILL_INDEX,
        params![ns, coll, ix.name, ix.unique, fields],
    )?;
    Ok(true)
}

#[async_trait]
impl RecordStore for SqliteStore {
    async fn put(&self, ns: &str, put: &PutRecord<'_>, now: Timestamp) -> Result<Record> {
        self.pool.run(|c| put_in(c, ns, put, now)).await
    }

    async fn get(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Record>> {
        self.pool
            .run(|c| {
                first(
                    c,
                    GET_RECORD,
                    params![ns, collection, id, now.as_micros()],
                    record_row,
                )
            })
            .await
    }

    async fn delete(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
        expect: Expect,
        now: Timestamp,
    ) -> Result<()> {
        self.pool
            .run(|c| delete_in(c, ns, collection, id, expect, now))
            .await
    }

    async fn list_records(
        &self,
        ns: &str,
        collection: &str,
        after: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Record>> {
        self.pool
            .run(|c| {
                all(
                    c,
                    LIST_RECORDS,
                    params![ns, collection, after, limit as i64, now.as_micros()],
                    record_row,
                )
            })
            .await
    }

    async fn list_collections(&self, ns: &str) -> Result<Vec<String>> {
        self.pool
            .run(|c| all(c, LIST_COLLECTIONS, [ns], |r| col(r, 0, "collection")))
            .await
    }

    async fn create_index(&self, ns: &str, index: &Index, now: Timestamp) -> Result<bool> {
        self.pool
            .run(|c| {
                let tx = immediate(c)?;
                let created = create_index_in(&tx, ns, index, now)?;
                tx.commit().map_err(map)?;
                Ok(created)
            })
            .await
    }

    async fn list_indexes(&self, ns: &str, collection: Option<&str>) -> Result<Vec<Index>> {
        self.pool
            .run(|c| all(c, LIST_INDEXES, params![ns, collection], index_row))
            .await
    }

    async fn find(
        &self,
        ns: &str,
        collection: &str,
        query: &FindQuery,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Found>> {
        self.pool
            .run(|c| {
                let row = |r: &Row<'_>| {
                    Ok(Found {
                        key: col(r, 0, "record_index_entries.key")?,
                        record: record_row_from(r, 1)?,
                    })
                };
                let (at, limit) = (now.as_micros(), limit as i64);
                let (ix, from, to) = (&query.index, &query.from, &query.to);
                let found = match &query.after {
                    None => all(
                        c,
                        FIND_FIRST,
                        params![ns, collection, ix, from, to, at, limit],
                        row,
                    )?,
                    Some((key, id)) => all(
                        c,
                        FIND_AFTER,
                        params![ns, collection, ix, from, to, at, limit, key, id],
                        row,
                    )?,
                };
                if found.is_empty()
                    && first(
                        c,
                        INDEX_DEFINITION,
                        params![ns, collection, query.index],
                        index_row,
                    )?
                    .is_none()
                {
                    return Err(no_such_index(collection, &query.index));
                }
                Ok(found)
            })
            .await
    }
}

fn delete_in(
    c: &Connection,
    ns: &str,
    collection: &str,
    id: &str,
    expect: Expect,
    now: Timestamp,
) -> Result<()> {
    let version = match expect {
        Expect::Absent => {
            return match record_version_in(c, ns, collection, id, now)? {
                Some(v) => Err(expectation_error(expect, Some(v))),
                None => Err(Error::not_found(format!(
                    "record {collection:?}/{id:?} does not exist"
                ))),
            };
        }
        Expect::Any => None,
        Expect::Version(v) => Some(v as i64),
    };
    let done = exec(
        c,
        DELETE_RECORD,
        params![ns, collection, id, version, now.as_micros()],
    )?;
    if done == 1 {
        return Ok(());
    }
    match (expect, record_version_in(c, ns, collection, id, now)?) {
        (Expect::Any, None) => Err(Error::not_found(format!(
            "record {collection:?}/{id:?} does not exist"
        ))),
        (_, current) => Err(expectation_error(expect, current)),
    }
}

#[async_trait]
impl BatchStore for SqliteStore {
    async fn apply(&self, ns: &str, items: &[BatchItem], now: Timestamp) -> Result<Vec<Applied>> {
        self.pool
            .run(|c| {
                // One IMMEDIATE transaction: dropped (rolled back) at the
                // first item that fails.
                let tx = immediate(c)?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let done = match item {
                        BatchItem::Put { .. } => {
                            put_in(&tx, ns, &item.as_put().expect("a put"), now).map(Applied::Put)
                        }
                        BatchItem::Delete {
                            collection,
                            id,
                            expect,
                        } => delete_in(&tx, ns, collection, id, *expect, now)
                            .map(|()| Applied::Deleted),
                        BatchItem::Append(events) => {
                            append_on(&tx, ns, events).map(Applied::Appended)
                        }
                        BatchItem::Complete {
                            scope,
                            key,
                            token,
                            response,
                        } => complete_on(&tx, ns, scope, key, token, response, now)
                            .map(|()| Applied::Completed),
                    };
                    out.push(done.map_err(|e| e.at_index(i))?);
                }
                tx.commit().map_err(map)?;
                Ok(out)
            })
            .await
    }
}

fn counts_in(c: &Connection, ns: &str) -> Result<Counts> {
    let row = first(c, COUNTS, [ns], |r| {
        Ok(Counts {
            metrics: u64_of(col(r, 0, "metrics")?),
            events: u64_of(col(r, 1, "events")?),
            idempotency_keys: u64_of(col(r, 2, "idempotency_keys")?),
            records: u64_of(col(r, 3, "records")?),
        })
    })?;
    row.ok_or_else(|| Error::internal("the counts query returned no row"))
}

fn purge_in(c: &mut Connection, ns: &str, cut: &PurgeCutoffs) -> Result<PurgeReport> {
    let tx = immediate(c)?;
    let mut report = PurgeReport::default();
    let purge = |sql: &str, before: Timestamp| -> Result<u64> {
        Ok(exec(&tx, sql, params![ns, before.as_micros()])? as u64)
    };
    // One class of data (metrics, records): the domain's cut-off for all
    // but the names with one of their own, then each of those.
    let by_class =
        |all: &str, one: &str, before: Option<Timestamp>, own: &[(String, Timestamp)]| {
            let mut n = 0;
            if let Some(before) = before {
                let except: Vec<&str> = own.iter().map(|(name, _)| name.as_str()).collect();
                let except = serde_json::to_string(&except).expect("names serialize");
                n += exec(&tx, all, params![ns, before.as_micros(), except])? as u64;
            }
            for (name, before) in own {
                n += exec(&tx, one, params![ns, name, before.as_micros()])? as u64;
            }
            Ok::<u64, Error>(n)
        };
    report.metrics = by_class(
        PURGE_METRICS,
        PURGE_COMPONENT,
        cut.metrics_before,
        &cut.metrics_by_component,
    )?;
    if let Some(before) = cut.events_before {
        report.events = purge(PURGE_EVENTS, before)?;
    }
    report.idempotency_keys = purge(PURGE_KEYS, cut.now)?;
    report.records = by_class(
        PURGE_RECORDS,
        PURGE_COLLECTION,
        cut.records_before,
        &cut.records_by_collection,
    )?;
    report.records += purge(PURGE_EXPIRED_RECORDS, cut.now)?;
    tx.commit().map_err(map)?;
    Ok(report)
}

/// Delete everything of `ns`, the log's head included, in one IMMEDIATE
/// transaction.
fn clear_in(c: &mut Connection, ns: &str) -> Result<Counts> {
    let tx = immediate(c)?;
    let n = Counts {
        metrics: exec(&tx, CLEAR_METRICS, [ns])? as u64,
        events: exec(&tx, CLEAR_EVENTS, [ns])? as u64,
        idempotency_keys: exec(&tx, CLEAR_KEYS, [ns])? as u64,
        // Index declarations stay, like a table's indexes through
        // TRUNCATE; their entries go first, so the triggers find none.
        records: {
            exec(&tx, CLEAR_INDEX_ENTRIES, [ns])?;
            exec(&tx, CLEAR_RECORDS, [ns])? as u64
        },
    };
    exec(&tx, CLEAR_LOG_HEAD, [ns])?;
    tx.commit().map_err(map)?;
    Ok(n)
}

/// Write a whole archive in one IMMEDIATE transaction: all of it or
/// nothing, into namespaces that must be empty.
/// The error for an archive record that a unique index refused: named by
/// the index and the record that has the key, when that is what happened.
fn import_refused(c: &Connection, ns: &str, rec: &Record, text: &str, e: Error) -> Result<Error> {
    if e.kind() != ErrorKind::Conflict {
        return Ok(e);
    }
    let holder = first(
        c,
        UNIQUE_HOLDER,
        params![ns, rec.collection, rec.id, text],
        |r| {
            Ok((
                col::<String>(r, 0, "record_indexes.name")?,
                col::<String>(r, 1, "record_index_entries.id")?,
            ))
        },
    )?;
    Ok(match holder {
        Some((index, other)) => unique_conflict(&rec.collection, &index, &other),
        None => e,
    })
}

fn import_in(
    c: &mut Connection,
    archive: &[ArchiveNamespace],
    progress: ImportProgress<'_>,
) -> Result<u64> {
    let tx = immediate(c)?;
    for a in archive {
        let n = counts_in(&tx, &a.name)?;
        if n.metrics + n.events + n.idempotency_keys + n.records > 0 {
            return Err(archive::not_empty(&a.name));
        }
    }
    let mut done = 0u64;
    for a in archive {
        let ns = a.name.as_str();
        // Indexes first, so the records are indexed as they arrive.
        for item in &a.items {
            if let ArchiveItem::Index(ix) = item {
                create_index_in(&tx, ns, ix, Timestamp::MIN)?;
            }
        }
        let mut head = 0i64;
        for item in &a.items {
            match item {
                ArchiveItem::Index(_) => {}
                ArchiveItem::Metric(p) => insert_metrics(&tx, ns, std::slice::from_ref(p))?,
                ArchiveItem::Event(ev) => {
                    let checked = validate::json("event data", &ev.data)?;
                    let position = ev.position as i64;
                    head = head.max(position);
                    exec(
                        &tx,
                        INSERT_EVENT,
                        params![
                            ns,
                            position,
                            ev.id as i64,
                            ev.kind,
                            ev.occurred_at.as_micros(),
                            checked.sha256_hex(),
                            checked.canonical
                        ],
                    )?;
                }
                ArchiveItem::IdempotencyKey(key) => {
                    exec(
                        &tx,
                        INSERT_KEY_FULL,
                        params![
                            ns,
                            key.scope,
                            key.key,
                            key.token,
                            key.claimed_at.as_micros(),
                            key.expires_at.as_micros(),
                            key.response.as_ref().map(canonical_json)
                        ],
                    )?;
                }
                ArchiveItem::Record(rec) => {
                    let text = canonical_json(&rec.data);
                    let inserted = exec(
                        &tx,
                        INSERT_RECORD_FULL,
                        params![
                            ns,
                            rec.collection,
                            rec.id,
                            text,
                            rec.version as i64,
                            rec.created_at.as_micros(),
                            rec.updated_at.as_micros(),
                            rec.expires_at.map(|t| t.as_micros())
                        ],
                    );
                    if let Err(e) = inserted {
                        return Err(import_refused(&tx, ns, rec, &text, e)?);
                    }
                }
            }
            done += 1;
            if done.is_multiple_of(IMPORT_PROGRESS_EVERY) {
                progress(done);
            }
        }
        if head > 0 {
            exec(&tx, SET_LOG_HEAD, params![ns, head])?;
        }
    }
    tx.commit().map_err(map)?;
    Ok(done)
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
        self.pool.run(schema::migrate).await
    }

    async fn schema_versions(&self) -> Result<SchemaVersions> {
        Ok(SchemaVersions {
            current: self.pool.run(|c| schema::current(c)).await?,
            expected: schema::SCHEMA_VERSION,
        })
    }

    async fn ping(&self) -> Result<()> {
        self.pool
            .run(|c| first(c, PING, [], |_| Ok(())).map(|_| ()))
            .await
    }

    async fn counts(&self, ns: &str) -> Result<Counts> {
        self.pool.run(|c| counts_in(c, ns)).await
    }

    async fn storage_bytes(&self) -> Result<Option<u64>> {
        self.pool
            .run(|c| first(c, STORAGE_BYTES, [], |r| col::<i64>(r, 0, "bytes")))
            .await
            .map(|b| b.map(u64_of))
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        let (size, idle, max) = self.pool.stats();
        Some(PoolStats { size, idle, max })
    }

    async fn purge(&self, ns: &str, c: &PurgeCutoffs) -> Result<PurgeReport> {
        self.pool.run(|conn| purge_in(conn, ns, c)).await
    }

    async fn clear(&self, ns: &str) -> Result<Counts> {
        self.pool.run(|c| clear_in(c, ns)).await
    }

    async fn namespaces(&self) -> Result<Vec<String>> {
        self.pool
            .run(|c| all(c, NAMESPACES, [], |r| col(r, 0, "ns")))
            .await
    }

    async fn import(
        &self,
        archive: &[ArchiveNamespace],
        progress: ImportProgress<'_>,
    ) -> Result<()> {
        let done = self.pool.run(|c| import_in(c, archive, progress)).await?;
        progress(done);
        Ok(())
    }

    async fn backup(&self, dest: &Path) -> Result<()> {
        let path = dest
            .to_str()
            .ok_or_else(|| Error::invalid("backup path must be UTF-8"))?;
        self.pool
            .run(|c| exec(c, VACUUM_INTO, [path]).map(|_| ()))
            .await
    }

    async fn close(&self) {
        self.pool.close();
    }
}

#[cfg(test)]
mod plans {
    use super::*;

    async fn plan(store: &SqliteStore, sql: &str) -> String {
        let sql = format!("EXPLAIN QUERY PLAN {sql}");
        store
            .with_connection(|c| {
                // Unbound parameters are NULL, which is enough to plan with.
                let mut st = c.prepare(&sql)?;
                let mut rows = st.raw_query();
                let mut lines = Vec::new();
                while let Some(r) = rows.next()? {
                    lines.push(r.get::<_, String>(3)?);
                }
                Ok(lines.join("\n"))
            })
            .await
            .unwrap()
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
            &store,
            &read_metrics_statement("ns", &query(true, true, true)).sql,
        )
        .await;
        assert!(
            series
                .contains("metrics_by_series (ns=? AND component=? AND name=? AND at>? AND at<?)"),
            "{series}"
        );
        let window = plan(
            &store,
            &read_metrics_statement("ns", &query(false, false, true)).sql,
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
        let kind = plan(&store, &list_events_statement("ns", &latest).sql).await;
        assert!(
            kind.contains("events_by_kind (ns=? AND kind=?)") && !kind.contains("TEMP B-TREE"),
            "the latest events of a kind come from the index, in its order: {kind}"
        );
        let next_page = EventQuery {
            after: Some((Timestamp::from_secs(1_700_000_000).unwrap(), 7)),
            ..latest
        };
        let kind = plan(&store, &list_events_statement("ns", &next_page).sql).await;
        assert!(
            kind.contains("events_by_kind (ns=? AND kind=?") && !kind.contains("TEMP B-TREE"),
            "{kind}"
        );
    }

    /// `find` is a range scan of one index's entries in key order, each
    /// joined to its record by primary key; the next page starts at the
    /// cursor inside the index.
    #[tokio::test]
    async fn find_is_an_index_range_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}/p.db", dir.path().display()))
            .await
            .unwrap();
        for (sql, range) in [
            (FIND_FIRST, "key>? AND key<?"),
            (FIND_AFTER, "(key,id)>(?,?) AND key<?"),
        ] {
            let p = plan(&store, sql).await;
            let seek = format!(
                "SEARCH e USING PRIMARY KEY (ns=? AND collection=? AND name=? AND {range})"
            );
            assert!(
                p.contains(&seek)
                    && p.contains("SEARCH r USING PRIMARY KEY (ns=? AND collection=? AND id=?)")
                    && !p.contains("TEMP B-TREE")
                    && !p.contains("SCAN"),
                "{p}"
            );
        }
    }
}
