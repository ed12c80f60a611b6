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
// The points of an aggregation, in read order; core's AggregateFold folds
// them in one pass.
pub(crate) const AGGREGATE_POINTS: &str =
    "SELECT at, component, name, value FROM metrics WHERE ns = ";
pub(crate) const AGGREGATE_ORDER: &str = " ORDER BY at, component, name, seq";
