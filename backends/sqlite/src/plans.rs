//! The query plans of the hot reads: each must be an index range scan.
use persistkit_core::*;

use crate::events::list_events_statement;
use crate::metrics::{aggregate_statement, read_metrics_statement};
use crate::sql::{COUNT_RECORDS, FIND_AFTER, FIND_FIRST};
use crate::SqliteStore;

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
        series.contains("metrics_by_series (ns=? AND component=? AND name=? AND at>? AND at<?)"),
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

/// An aggregation reads its points in one index range scan, already in the
/// order its fold wants: no sort, whatever the filters.
#[tokio::test]
async fn aggregates_read_one_index_range_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&format!("sqlite://{}/p.db", dir.path().display()))
        .await
        .unwrap();
    let t = Timestamp::from_secs(1_700_000_000).unwrap();
    for (component, name, window, index) in [
        (
            true,
            true,
            true,
            "metrics_by_series (ns=? AND component=? AND name=? AND at>? AND at<?)",
        ),
        (
            false,
            false,
            true,
            "metrics_by_time (ns=? AND at>? AND at<?)",
        ),
        (
            true,
            true,
            false,
            "metrics_by_series (ns=? AND component=? AND name=?)",
        ),
    ] {
        let q = AggregateQuery {
            component: component.then(|| "api".to_string()),
            name: name.then(|| "latency".to_string()),
            from: window.then_some(t),
            to: window.then_some(t),
            bucket: Bucket::MINUTE,
            quantiles: vec![0.5],
        };
        let p = plan(&store, &aggregate_statement("ns", &q).sql).await;
        assert!(p.contains(index) && !p.contains("TEMP B-TREE"), "{p}");
    }
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
        let seek =
            format!("SEARCH e USING PRIMARY KEY (ns=? AND collection=? AND name=? AND {range})");
        assert!(
            p.contains(&seek)
                && p.contains("SEARCH r USING PRIMARY KEY (ns=? AND collection=? AND id=?)")
                && !p.contains("TEMP B-TREE")
                && !p.contains("SCAN"),
            "{p}"
        );
    }
}

/// `count` reads the collection's range of the primary key, never the
/// whole table or namespace (REC-11).
#[tokio::test]
async fn count_is_a_primary_key_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&format!("sqlite://{}/p.db", dir.path().display()))
        .await
        .unwrap();
    let p = plan(&store, COUNT_RECORDS).await;
    assert!(
        p.contains("SEARCH records USING PRIMARY KEY (ns=? AND collection=?)")
            && !p.contains("SCAN"),
        "{p}"
    );
}
