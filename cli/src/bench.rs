//! `persistkit bench`: persistkit's figures beside a hand-written sqlx
//! baseline on an equivalent table, measured in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use persistkit::sqlite::SqliteStore;
use persistkit::{Handle, MetricPoint, NewEvent, Timestamp};
use serde_json::json;

/// What to run.
pub struct BenchOptions {
    /// Batches of 10 000 points for ingest.
    pub batches: usize,
    /// Single operations for the latency figures.
    pub ops: usize,
}

const BATCH: usize = 10_000;

struct Figure {
    name: String,
    ours: f64,
    base: f64,
    unit: &'static str,
    higher_is_better: bool,
}

fn points(batch: usize) -> Vec<MetricPoint> {
    (0..BATCH)
        .map(|i| {
            let at =
                Timestamp::from_micros(1_700_000_000_000_000 + (batch * BATCH + i) as i64 * 1_000)
                    .unwrap();
            MetricPoint::gauge(
                at,
                ["api", "db", "web"][i % 3],
                ["rps", "latency"][i % 2],
                i as f64 * 0.5,
            )
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn latencies(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    (percentile(&v, 0.50), percentile(&v, 0.99))
}

async fn fresh_sqlite(dir: &std::path::Path, name: &str) -> Result<SqliteStore, String> {
    SqliteStore::open(&format!("sqlite://{}", dir.join(name).display()))
        .await
        .map_err(|e| e.to_string())
}

/// Run the SQLite benchmark and print the table. Returns the rows.
pub async fn sqlite(opts: &BenchOptions) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ours_store = fresh_sqlite(dir.path(), "persistkit.db").await?;
    let base_store = fresh_sqlite(dir.path(), "baseline.db").await?;
    let h = Handle::new(Arc::new(ours_store));
    let pool = base_store.pool().clone();
    let mut figures = Vec::new();
    eprintln!(
        "bench: metric ingest, {} batches of {BATCH} points each side …",
        opts.batches
    );

    // Ingest: persistkit vs one transaction with a prepared single-row INSERT.
    let (mut ours, mut base) = (Duration::ZERO, Duration::ZERO);
    for b in 0..=opts.batches {
        let ps = points(b);
        let t = Instant::now();
        h.write_metrics(&ps).await.map_err(|e| e.to_string())?;
        let ours_t = t.elapsed();
        let t = Instant::now();
        let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
        for p in &ps {
            sqlx::query("INSERT INTO metrics (ns, at, component, name, kind, value) VALUES (?, ?, ?, ?, ?, ?)")
                .bind("default")
                .bind(p.at.as_micros())
                .bind(&p.component)
                .bind(&p.name)
                .bind(p.kind.as_str())
                .bind(p.value)
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        let base_t = t.elapsed();
        if b > 0 {
            // Batch 0 warms caches on both sides.
            ours += ours_t;
            base += base_t;
        }
    }
    let n = (opts.batches * BATCH) as f64;
    figures.push(Figure {
        name: "metric ingest (10 000-point batches)".into(),
        ours: n / ours.as_secs_f64(),
        base: n / base.as_secs_f64(),
        unit: "points/s",
        higher_is_better: true,
    });

    eprintln!("bench: {} single-event appends each side …", opts.ops);
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for i in 0..opts.ops {
        let at = Timestamp::from_secs(1_700_000_000 + i as i64).unwrap();
        let data = json!({"order": i, "amount": 12.5});
        let t = Instant::now();
        h.append(&[NewEvent::new("paid", at, data.clone())])
            .await
            .map_err(|e| e.to_string())?;
        ours.push(t.elapsed());
        let canonical = persistkit::validate::canonical_json(&data);
        let t = Instant::now();
        sqlx::query("INSERT INTO events (ns, position, id, kind, occurred_at, digest, data) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind("default")
            .bind(i as i64 + 1)
            .bind(i as i64 + 1)
            .bind("paid")
            .bind(at.as_micros())
            .bind(format!("{i:064x}"))
            .bind(canonical)
            .execute(&pool)
            .await
            .map_err(|e| e.to_string())?;
        base.push(t.elapsed());
    }
    let ((o50, o99), (b50, b99)) = (latencies(ours), latencies(base));
    figures.push(Figure {
        name: "event append p50".into(),
        ours: o50,
        base: b50,
        unit: "µs",
        higher_is_better: false,
    });
    figures.push(Figure {
        name: "event append p99".into(),
        ours: o99,
        base: b99,
        unit: "µs",
        higher_is_better: false,
    });

    eprintln!("bench: {} idempotency claims each side …", opts.ops);
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for i in 0..opts.ops {
        let key = format!("order-{i}");
        let t = Instant::now();
        h.claim("payments", &key, Duration::from_secs(3600))
            .await
            .map_err(|e| e.to_string())?;
        ours.push(t.elapsed());
        let t = Instant::now();
        sqlx::query("INSERT INTO idempotency_keys (ns, scope, key, token, claimed_at, expires_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
            .bind("default")
            .bind("payments")
            .bind(&key)
            .bind("token")
            .bind(0i64)
            .bind(3_600_000_000i64)
            .execute(&pool)
            .await
            .map_err(|e| e.to_string())?;
        base.push(t.elapsed());
    }
    let ((o50, o99), (b50, b99)) = (latencies(ours), latencies(base));
    figures.push(Figure {
        name: "idempotency claim p50".into(),
        ours: o50,
        base: b50,
        unit: "µs",
        higher_is_better: false,
    });
    figures.push(Figure {
        name: "idempotency claim p99".into(),
        ours: o99,
        base: b99,
        unit: "µs",
        higher_is_better: false,
    });

    print_table("sqlite (temporary file, WAL, synchronous=NORMAL)", &figures);
    Ok(())
}

fn print_table(title: &str, figures: &[Figure]) {
    let mut s = format!("== bench: {title} ==\n");
    s += &format!(
        "{:<38} {:>16} {:>16} {:>8}\n",
        "figure", "persistkit", "baseline (sqlx)", "ratio"
    );
    for f in figures {
        // Ratio as "persistkit speed relative to the baseline": >1 is faster.
        let ratio = if f.higher_is_better {
            f.ours / f.base
        } else {
            f.base / f.ours
        };
        s += &format!(
            "{:<38} {:>16} {:>16} {:>7.2}×\n",
            f.name,
            format!("{:.0} {}", f.ours, f.unit),
            format!("{:.0} {}", f.base, f.unit),
            ratio
        );
    }
    s += "ratio = persistkit speed / baseline speed (1.00× = as fast; ingest target ≥ 0.80×)";
    crate::print_out(&s);
}
