//! Metrics: the statements, by name.

pub(crate) const INSERT_METRICS: &str = "
INSERT INTO {s}.metrics (ns, at, component, name, kind, value)
SELECT $1, u.at, u.component, u.name, u.kind, u.value
FROM UNNEST($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::float8[])
     WITH ORDINALITY AS u(at, component, name, kind, value, n)
ORDER BY u.n";

/// Large batches: binary COPY straight into the table. One statement, so
/// all-or-nothing; the identity column numbers the rows in the order sent.
pub(crate) const COPY_METRICS: &str =
    "COPY {s}.metrics (ns, at, component, name, kind, value) FROM STDIN (FORMAT binary)";

// Reads are built per filter shape (metrics.rs, events.rs): only the predicates a call
// uses appear, so the planner sees them, for custom and generic plans alike.
pub(crate) const READ_METRICS_FROM: &str =
    "SELECT seq, at, component, name, kind, value FROM {s}.metrics WHERE ns = ";
pub(crate) const READ_METRICS_ORDER: &str = " ORDER BY at, component, name, seq LIMIT ";

pub(crate) const LIST_COMPONENTS: &str =
    "SELECT DISTINCT component FROM {s}.metrics WHERE ns = $1 ORDER BY component";
pub(crate) const LIST_METRIC_NAMES: &str =
    "SELECT DISTINCT name FROM {s}.metrics WHERE ns = $1 AND component = $2 ORDER BY name";

// Bucket start = origin + floor((µs - origin) / width) * width, in exact
// integer microseconds; `{w}` is the width and `{o}` the origin (the epoch,
// or a whole-range aggregate's start), bound where they appear.
// One series: its points in read order, folded in Rust (core's
// AggregateFold) in one pass over the series index, with no sort.
pub(crate) const AGGREGATE_SERIES: &str = "SELECT at, value FROM {s}.metrics WHERE ns = ";
pub(crate) const AGGREGATE_SERIES_ORDER: &str = " ORDER BY at, seq";
// Many series: grouped in SQL, which sends one row per bucket and series.
pub(crate) const AGGREGATE_HEAD: &str = "WITH f AS (
  SELECT (EXTRACT(EPOCH FROM at) * 1000000)::bigint AS us, seq, component, name, value
  FROM {s}.metrics WHERE ns = ";
pub(crate) const AGGREGATE_BUCKETS: &str = "), d AS (
  SELECT us - {o} AS x, us, seq, component, name, value FROM f
), b AS (
  SELECT x - (((x % {w}) + {w}) % {w}) AS b, us, seq, component, name, value FROM d
)
SELECT b + {o}, component, name, COUNT(*), SUM(value), MIN(value), MAX(value),
       (ARRAY_AGG(value ORDER BY us DESC, seq DESC))[1]";
// Only when quantiles are asked for: nearest rank, as core's `quantile_rank`.
pub(crate) const AGGREGATE_QUANTILES: &str =
    ", percentile_disc({q}::float8[]) WITHIN GROUP (ORDER BY value)";
pub(crate) const AGGREGATE_GROUP: &str = "
FROM b
GROUP BY b, component, name
ORDER BY b, component, name";
