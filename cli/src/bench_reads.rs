//! `persistkit bench reads`: windowed reads at growing scale, on SQLite,
//! beside the same query written by hand against the index it should use.
//! The cost should stay flat as the namespace grows.

use std::time::Instant;

use persistkit::sqlite::rusqlite::{self, Connection};
use persistkit::sqlite::SqliteStore;
use persistkit::{
    AggregateFilter, Bucket, EventFilter, Handle, MetricFilter, MetricPoint, NewEvent, Timestamp,
};
use serde_json::json;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

const BASE: i64 = 1_700_000_000;

/// Median time of `runs` calls of `f`, in milliseconds.
async fn median_ms<F, Fut>(runs: usize, mut f: F) -> Result<f64, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, String>>,
{
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = Instant::now();
        f().await?;
        t.push(s.elapsed());
    }
    t.sort();
    Ok(t[t.len() / 2].as_secs_f64() * 1e3)
}

/// Median time of a hand-written query: `sql` with `binds` (text or
/// integers), on its own rusqlite connection to the same file, reading
/// every column of every row.
fn hand_written(conn: &Connection, sql: &str, binds: &[Bind<'_>]) -> Result<f64, String> {
    let run = || -> rusqlite::Result<usize> {
        let mut st = conn.prepare_cached(sql)?;
        for (i, b) in binds.iter().enumerate() {
            match b {
                Bind::Text(t) => st.raw_bind_parameter(i + 1, t)?,
                Bind::Int(v) => st.raw_bind_parameter(i + 1, v)?,
            }
        }
        let columns = st.column_count();
        let mut rows = st.raw_query();
        let mut n = 0;
        while let Some(r) = rows.next()? {
            for c in 0..columns {
                std::hint::black_box(r.get_ref(c)?);
            }
            n += 1;
        }
        Ok(n)
    };
    median_ms_blocking(21, run)
}

/// Median time of the best hand-written per-minute aggregate of the
/// bench's one series (`api`/`latency`) over `[from, to)`: one ordered pass
/// over the index range, folding count, sum, min, max, last and the
/// nearest-rank `quantiles` per minute.
fn hand_written_aggregate(
    conn: &Connection,
    ns: &str,
    from: Timestamp,
    to: Timestamp,
    quantiles: &[f64],
) -> Result<f64, String> {
    #[derive(Default)]
    struct Row {
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
        last: f64,
        values: Vec<f64>,
    }
    let close = |r: &mut Row| {
        r.values.sort_by(f64::total_cmp);
        let n = r.values.len() as f64;
        let qs: Vec<f64> = quantiles
            .iter()
            .map(|q| r.values[((q * n).ceil() as usize).clamp(1, r.values.len()) - 1])
            .collect();
        std::hint::black_box((r.count, r.sum, r.min, r.max, r.last, qs));
    };
    let run = || -> rusqlite::Result<usize> {
        let mut st = conn.prepare_cached(
            "SELECT at, value FROM metrics INDEXED BY metrics_by_series \
             WHERE ns = ?1 AND component = 'api' AND name = 'latency' AND at >= ?2 AND at < ?3 \
             ORDER BY at, seq",
        )?;
        let mut rows = st.query(rusqlite::params![ns, from.as_micros(), to.as_micros()])?;
        let minute = 60_000_000i64;
        let (mut bucket, mut row, mut out) = (i64::MIN, Row::default(), 0);
        while let Some(r) = rows.next()? {
            let (at, v): (i64, f64) = (r.get(0)?, r.get(1)?);
            let b = at.div_euclid(minute) * minute;
            if b != bucket {
                if row.count > 0 {
                    close(&mut row);
                    out += 1;
                }
                bucket = b;
                row = Row {
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                    ..Row::default()
                };
            }
            row.count += 1;
            row.sum += v;
            row.min = row.min.min(v);
            row.max = row.max.max(v);
            row.last = v;
            row.values.push(v);
        }
        if row.count > 0 {
            close(&mut row);
            out += 1;
        }
        Ok(out)
    };
    median_ms_blocking(21, run)
}

/// Median time of `runs` calls of a hand-written `run`, in milliseconds.
fn median_ms_blocking<T>(
    runs: usize,
    run: impl Fn() -> rusqlite::Result<T>,
) -> Result<f64, String> {
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = Instant::now();
        run().map_err(err)?;
        t.push(s.elapsed());
    }
    t.sort();
    Ok(t[t.len() / 2].as_secs_f64() * 1e3)
}

enum Bind<'a> {
    Text(&'a str),
    Int(i64),
}

/// Points one per second, 12 series interleaved: a 1 h window of one
/// series holds 300 points at every size.
async fn fill(h: &Handle, n: usize) -> Result<(), String> {
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let at = Timestamp::from_secs(BASE + i as i64).map_err(err)?;
        batch.push(MetricPoint::gauge(
            at,
            ["api", "db", "web"][i % 3],
            ["rps", "latency", "errors", "queue"][(i / 3) % 4],
            i as f64,
        ));
        if batch.len() == 10_000 {
            h.write_metrics(&batch).await.map_err(err)?;
            batch.clear();
        }
    }
    h.write_metrics(&batch).await.map_err(err)
}

/// Fill namespaces of `store` at 10 k, 100 k and 1 M points (and 100 k
/// events) and time the reads on each.
pub async fn run(store: SqliteStore) -> Result<String, String> {
    let conn = Connection::open(store.path()).map_err(err)?;
    let handle = Handle::new(std::sync::Arc::new(store)).with_timeout(None);
    let mut s = String::from("== bench: reads at scale (sqlite, temporary file) ==\n");
    s += "baseline = the same query written by hand, naming the index it should use (INDEXED BY)\n";
    s += &format!(
        "{:<44} {:>10} {:>10} {:>10} {:>9}\n",
        "figure", "points", "persistkit", "baseline", "ratio"
    );
    let mut firsts = (0.0, 0.0);
    for n in [10_000usize, 100_000, 1_000_000] {
        let ns = format!("scale{n}");
        let h = handle.namespace(&ns).map_err(err)?;
        eprintln!("bench: {n} points …");
        fill(&h, n).await?;
        let to = Timestamp::from_secs(BASE + n as i64).map_err(err)?;
        let from = Timestamp::from_secs(BASE + n as i64 - 3_600).map_err(err)?;
        let filter = MetricFilter {
            component: Some("api".into()),
            name: Some("latency".into()),
            from: Some(from),
            to: Some(to),
            limit: Some(1_000),
            cursor: None,
        };
        let ours = median_ms(21, || async {
            Ok(h.read_metrics(&filter).await.map_err(err)?.items.len())
        })
        .await?;
        let got = h.read_metrics(&filter).await.map_err(err)?.items.len();
        let base = hand_written(
            &conn,
            "SELECT seq, at, component, name, kind, value FROM metrics INDEXED BY metrics_by_series \
             WHERE ns = ? AND component = ? AND name = ? AND at >= ? AND at < ? \
             ORDER BY at, component, name, seq LIMIT 1001",
            &[
                Bind::Text(&ns),
                Bind::Text("api"),
                Bind::Text("latency"),
                Bind::Int(from.as_micros()),
                Bind::Int(to.as_micros()),
            ],
        )?;
        s += &format!(
            "{:<44} {:>10} {:>10} {:>10} {:>8.2}×\n",
            format!("1 h of one series ({got} points)"),
            n,
            format!("{ours:.2} ms"),
            format!("{base:.2} ms"),
            base / ours
        );
        let agg = AggregateFilter {
            component: Some("api".into()),
            name: Some("latency".into()),
            from: Some(from),
            to: Some(to),
            quantiles: vec![0.5, 0.99],
        };
        let ours_agg = median_ms(21, || async {
            Ok(h.aggregate(&agg, Bucket::MINUTE).await.map_err(err)?.len())
        })
        .await?;
        let base_agg = hand_written_aggregate(&conn, &ns, from, to, &agg.quantiles)?;
        s += &format!(
            "{:<44} {:>10} {:>10} {:>10} {:>8.2}×\n",
            "its per-minute aggregate with p50/p99",
            n,
            format!("{ours_agg:.2} ms"),
            format!("{base_agg:.2} ms"),
            base_agg / ours_agg
        );
        let day = AggregateFilter {
            from: Some(Timestamp::from_secs(BASE + n as i64 - 86_400).map_err(err)?),
            to: Some(to),
            ..AggregateFilter::default()
        };
        let ours_day = median_ms(5, || async {
            Ok(h.aggregate(&day, Bucket::MINUTE).await.map_err(err)?.len())
        })
        .await?;
        s += &format!(
            "{:<44} {:>10} {:>10} {:>10} {:>9}\n",
            "a day of all 12 series, per minute",
            n,
            format!("{ours_day:.2} ms"),
            "",
            ""
        );
        if n == 10_000 {
            firsts = (ours, ours_agg);
        } else if n == 1_000_000 {
            s += &format!(
                "1 M vs 10 k: read {:.2}×, aggregate {:.2}× as long (target ≤ 2×)\n",
                ours / firsts.0,
                ours_agg / firsts.1
            );
        }
    }

    eprintln!("bench: 100 000 events of 10 kinds …");
    let h = handle.namespace("events").map_err(err)?;
    let mut batch = Vec::with_capacity(1_000);
    for i in 0..100_000i64 {
        let at = Timestamp::from_secs(BASE + i).map_err(err)?;
        batch.push(NewEvent::new(&format!("k{}", i % 10), at, json!({"i": i})));
        if batch.len() == 1_000 {
            h.append(&batch).await.map_err(err)?;
            batch.clear();
        }
    }
    let latest = EventFilter {
        kinds: vec!["k3".into()],
        newest_first: true,
        limit: Some(100),
        ..Default::default()
    };
    let ours = median_ms(21, || async {
        Ok(h.list_events(&latest).await.map_err(err)?.items.len())
    })
    .await?;
    let base = hand_written(
        &conn,
        "SELECT id, position, kind, occurred_at, data FROM events INDEXED BY events_by_kind \
         WHERE ns = ? AND kind = ? ORDER BY occurred_at DESC, id DESC LIMIT 101",
        &[Bind::Text("events"), Bind::Text("k3")],
    )?;
    s += &format!(
        "{:<44} {:>10} {:>10} {:>10} {:>8.2}×\n",
        "latest 100 events of one kind",
        "100000 ev",
        format!("{ours:.2} ms"),
        format!("{base:.2} ms"),
        base / ours
    );
    s += "ratio = baseline time / persistkit time; medians of 21 runs";
    Ok(s)
}
