//! Every SQL statement of the backend, by name, as a template: `{s}` stands
//! for the store's schema, so every statement names its tables in full and
//! nothing depends on the session's `search_path` (which poolers do not
//! keep). [`Statements`] renders them once per store. Times are
//! `timestamptz`.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::AssertSqlSafe;

mod admin;
mod events;
mod idempotency;
mod metrics;
mod records;

pub(crate) use admin::*;
pub(crate) use events::*;
pub(crate) use idempotency::*;
pub(crate) use metrics::*;
pub(crate) use records::*;

/// Every template of the domain modules, to render once per store.
const ALL: &[&str] = &[
    INSERT_METRICS,
    COPY_METRICS,
    READ_METRICS_FROM,
    READ_METRICS_ORDER,
    LIST_COMPONENTS,
    LIST_METRIC_NAMES,
    AGGREGATE_HEAD,
    AGGREGATE_BUCKETS,
    AGGREGATE_QUANTILES,
    AGGREGATE_GROUP,
    LOCK_LOG_HEAD,
    SET_LOG_HEAD,
    APPEND_EVENTS,
    INSERT_EVENTS,
    LIST_EVENTS_FROM,
    LIST_EVENTS_ORDER,
    LIST_EVENTS_NEWEST_FIRST,
    READ_LOG,
    CLAIM,
    GET_KEY,
    COMPLETE_KEY,
    RELEASE_KEY,
    SCAN_KEYS,
    INSERT_RECORD_IF_ABSENT,
    UPSERT_RECORD,
    UPDATE_RECORD_AT_VERSION,
    GET_RECORD,
    GET_RECORD_FOR_UPDATE,
    COUNT_RECORDS,
    RECORD_VERSION,
    DELETE_RECORD,
    LIST_RECORDS,
    LIST_COLLECTIONS,
    INSERT_RECORDS,
    DELETE_EXPIRED_RECORD,
    LOCK_INDEXES,
    INDEX_DEFINITION,
    LIST_INDEXES,
    INSERT_INDEX,
    DELETE_EXPIRED_IN_COLLECTION,
    DUPLICATE_KEY,
    BACKFILL_INDEX,
    UNIQUE_HOLDER,
    FIND_FIRST,
    FIND_AFTER,
    PURGE_EXPIRED_RECORDS,
    PURGE_COMPONENT,
    PURGE_COLLECTION,
    INSERT_KEYS,
    COUNTS,
    NAMESPACES,
    CLEAR,
    PURGE_METRICS,
    PURGE_EVENTS,
    PURGE_KEYS,
    PURGE_RECORDS,
    STORAGE_BYTES,
    PING,
];

/// The templates rendered for one schema.
#[derive(Debug)]
pub(crate) struct Statements {
    schema: String,
    rendered: HashMap<&'static str, Arc<str>>,
}

impl Statements {
    /// Render every template for `schema` (already checked to be a plain
    /// lower-case identifier).
    pub(crate) fn new(schema: &str) -> Self {
        let schema = format!("\"{schema}\"");
        let rendered = ALL
            .iter()
            .map(|t| (*t, Arc::from(t.replace("{s}", &schema))))
            .collect();
        Statements { schema, rendered }
    }

    /// A statement fragment for this store's schema.
    pub(crate) fn render(&self, t: &str) -> String {
        t.replace("{s}", &self.schema)
    }

    /// Template `t` for this store's schema.
    pub(crate) fn get(&self, t: &'static str) -> AssertSqlSafe<Arc<str>> {
        AssertSqlSafe(match self.rendered.get(t) {
            Some(s) => s.clone(),
            None => Arc::from(t.replace("{s}", &self.schema)),
        })
    }
}
