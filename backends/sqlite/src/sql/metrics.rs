//! Metrics: the statements, by name.

pub(crate) const INSERT_METRIC: &str =
    "INSERT INTO metrics (ns, at, component, name, kind, value) VALUES (?, ?, ?, ?, ?, ?)";
/// `OR FAIL`, not the default `ABORT`: a multi-row statement that may abort
/// needs a statement journal (a temporary file) to undo itself alone, and
/// nothing here needs that: any failure rolls back the whole transaction.
pub(crate) const INSERT_METRICS_PREFIX: &str =
    "INSERT OR FAIL INTO metrics (ns, at, component, name, kind, value) ";

// Reads are built per filter shape (metrics.rs, events.rs): only the predicates a call
// uses appear, so the planner sees them and picks the index for them.
pub(crate) const READ_METRICS_FROM: &str =
    "SELECT seq, at, component, name, kind, value FROM metrics WHERE ns = ";
pub(crate) const READ_METRICS_ORDER: &str = " ORDER BY at, component, name, seq LIMIT ";

pub(crate) const LIST_COMPONENTS: &str =
    "SELECT DISTINCT component FROM metrics WHERE ns = ? ORDER BY component";
pub(crate) const LIST_METRIC_NAMES: &str =
    "SELECT DISTINCT name FROM metrics WHERE ns = ? AND component = ? ORDER BY name";

// Bucket start = floor(at / width) * width, with a floor that is right for
// negative times too; `{w}` is the width in µs, bound where it appears.
pub(crate) const AGGREGATE_BUCKET: &str = "at - (((at % {w}) + {w}) % {w})";
pub(crate) const AGGREGATE_COLUMNS: &str =
    "SELECT b, component, name, COUNT(*), SUM(value), MIN(value), MAX(value), MAX(last_value)";
// One column per quantile q: the value at rank max(1, ceil(q * n)) (nearest
// rank, as core's `quantile_rank`); `{q}` is bound where it appears.
pub(crate) const AGGREGATE_QUANTILE: &str = ", MAX(CASE WHEN rn = MAX(1, CAST({q} * n AS INTEGER) + ({q} * n > CAST({q} * n AS INTEGER))) THEN value END)";
// `{b}` is the bucket expression above.
pub(crate) const AGGREGATE_FROM: &str = " FROM (SELECT {b} AS b, component, name, value, FIRST_VALUE(value) OVER (PARTITION BY {b}, component, name ORDER BY at DESC, seq DESC) AS last_value";
// Only when quantiles are asked for: each value's rank in its row, and the
// row's size.
pub(crate) const AGGREGATE_RANKS: &str = ", ROW_NUMBER() OVER (PARTITION BY {b}, component, name ORDER BY value) AS rn, COUNT(*) OVER (PARTITION BY {b}, component, name) AS n";
pub(crate) const AGGREGATE_WHERE: &str = " FROM metrics WHERE ns = ";
pub(crate) const AGGREGATE_TAIL: &str = ") GROUP BY b, component, name ORDER BY b, component, name";
