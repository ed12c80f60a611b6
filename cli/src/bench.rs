//! `persistkit bench postgres`: persistkit's figures beside hand-written
//! sqlx on an equivalent table (binary COPY, one-statement calls), measured
//! in the same run; and what the other benches share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use persistkit::{Handle, MetricPoint, NewEvent, Store, Timestamp};
use serde_json::json;

/// What to run.
pub struct BenchOptions {
    /// Batches of 10 000 points for ingest.
    pub batches: usize,
    /// Single operations for the latency figures.
    pub ops: usize,
}

pub(crate) const BATCH: usize = 10_000;

/// The hand-written side: plain sqlx on a second store's tables.
pub enum Baseline {
    /// Binary COPY per batch.
    Postgres(sqlx::PgPool),
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Baseline {
    fn describe(&self) -> &'static str {
        match self {
            Baseline::Postgres(_) => "sqlx: binary COPY per batch (ingest); one-statement calls",
        }
    }

    async fn ingest(&self, ps: &[MetricPoint]) -> Result<(), String> {
        match self {
            Baseline::Postgres(pool) => {
                // Binary COPY, written out by hand: per row a field count,
                // then each field as length + big-endian bytes.
                let mut buf = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
                let field = |buf: &mut Vec<u8>, bytes: &[u8]| {
                    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                    buf.extend_from_slice(bytes);
                };
                for p in ps {
                    buf.extend_from_slice(&6i16.to_be_bytes());
                    field(&mut buf, b"default");
                    field(
                        &mut buf,
                        &(p.at.as_micros() - 946_684_800_000_000).to_be_bytes(),
                    );
                    field(&mut buf, p.component.as_bytes());
                    field(&mut buf, p.name.as_bytes());
                    field(&mut buf, p.kind.as_str().as_bytes());
                    field(&mut buf, &p.value.to_be_bytes());
                }
                buf.extend_from_slice(&(-1i16).to_be_bytes());
                let mut conn = pool.acquire().await.map_err(err)?;
                let mut copy = conn
                    .copy_in_raw("COPY persistkit.metrics (ns, at, component, name, kind, value) FROM STDIN (FORMAT binary)")
                    .await
                    .map_err(err)?;
                copy.send(buf).await.map_err(err)?;
                copy.finish().await.map(|_| ()).map_err(err)
            }
        }
    }

    async fn append(&self, i: usize, at: Timestamp, data: &str) -> Result<(), String> {
        let digest = format!("{i:064x}");
        match self {
            Baseline::Postgres(pool) => sqlx::query("INSERT INTO persistkit.events (ns, position, id, kind, occurred_at, digest, data) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)")
                .bind("default")
                .bind(i as i64 + 1)
                .bind(i as i64 + 1)
                .bind("paid")
                .bind(at.to_datetime())
                .bind(digest)
                .bind(data)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(err),
        }
    }

    async fn claim(&self, key: &str) -> Result<(), String> {
        match self {
            Baseline::Postgres(pool) => sqlx::query("INSERT INTO persistkit.idempotency_keys (ns, scope, key, token, claimed_at, expires_at) VALUES ($1, $2, $3, $4, now(), now() + interval '1 hour') ON CONFLICT DO NOTHING")
                .bind("default")
                .bind("payments")
                .bind(key)
                .bind("token")
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(err),
        }
    }
}

/// One line of a bench table.
pub(crate) struct Figure {
    name: String,
    ours: f64,
    base: f64,
    unit: &'static str,
    higher_is_better: bool,
}

impl Figure {
    /// A throughput: more is better.
    pub(crate) fn rate(name: impl Into<String>, ours: f64, base: f64, unit: &'static str) -> Self {
        Figure {
            name: name.into(),
            ours,
            base,
            unit,
            higher_is_better: true,
        }
    }

    /// A latency in µs: less is better.
    pub(crate) fn latency(name: impl Into<String>, ours: f64, base: f64) -> Self {
        Figure {
            name: name.into(),
            ours,
            base,
            unit: "µs",
            higher_is_better: false,
        }
    }
}

/// The table of `figures`, each with its ratio (persistkit speed over
/// baseline speed).
pub(crate) fn table(title: &str, baseline: &str, figures: &[Figure]) -> String {
    let mut s = format!("== bench: {title} ==\nbaseline = {baseline}\n");
    s += &format!(
        "{:<44} {:>16} {:>16} {:>8}\n",
        "figure", "persistkit", "baseline", "ratio"
    );
    for f in figures {
        let ratio = if f.higher_is_better {
            f.ours / f.base
        } else {
            f.base / f.ours
        };
        let shown = |v: f64| {
            if v < 100.0 {
                format!("{v:.1} {}", f.unit)
            } else {
                format!("{v:.0} {}", f.unit)
            }
        };
        s += &format!(
            "{:<44} {:>16} {:>16} {:>7.2}×\n",
            f.name,
            shown(f.ours),
            shown(f.base),
            ratio
        );
    }
    s += "ratio = persistkit speed / baseline speed (1.00× = as fast)\n";
    s
}

pub(crate) fn points(batch: usize) -> Vec<MetricPoint> {
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

pub(crate) fn latencies(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

/// Run the three measurements on `store` and `baseline` (empty stores of the
/// same backend), alternating so both see the same conditions, and print
/// the table.
pub async fn run(
    title: &str,
    store: Arc<dyn Store>,
    baseline: Baseline,
    opts: &BenchOptions,
) -> Result<(), String> {
    let h = Handle::new(store).with_timeout(None);
    let mut figures = Vec::new();

    eprintln!(
        "bench: metric ingest, {} batches of {BATCH} points each side …",
        opts.batches
    );
    let (mut ours, mut base) = (Duration::ZERO, Duration::ZERO);
    for b in 0..=opts.batches {
        let ps = points(b);
        let t = Instant::now();
        h.write_metrics(&ps).await.map_err(err)?;
        let ours_t = t.elapsed();
        let t = Instant::now();
        baseline.ingest(&ps).await?;
        let base_t = t.elapsed();
        if b > 0 {
            // Batch 0 warms caches and statement caches on both sides.
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
            .map_err(err)?;
        ours.push(t.elapsed());
        let canonical = persistkit::validate::canonical_json(&data);
        let t = Instant::now();
        baseline.append(i, at, &canonical).await?;
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
            .map_err(err)?;
        ours.push(t.elapsed());
        let t = Instant::now();
        baseline.claim(&key).await?;
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

    // Group commit: 16 tasks appending to one namespace at once, through
    // the layer (what `persistkit::open` gives) and straight to the store.
    let appenders = 16;
    let each = (opts.ops / appenders).max(10);
    eprintln!(
        "bench: {appenders} concurrent appenders × {each} events, with and without group commit …"
    );
    let store = h.store().clone();
    let plain = concurrent_appends(store.clone(), "concurrent-plain", appenders, each).await?;
    let grouped = concurrent_appends(
        persistkit::GroupCommit::wrap(store),
        "concurrent-grouped",
        appenders,
        each,
    )
    .await?;
    figures.push(Figure {
        name: "16 concurrent appenders (vs no grouping)".into(),
        ours: grouped,
        base: plain,
        unit: "events/s",
        higher_is_better: true,
    });

    let mut s = table(title, baseline.describe(), &figures);
    s += "ingest target ≥ 0.90×; the concurrent-appenders baseline is the same store without the group-commit layer";
    crate::print_out(&s);
    Ok(())
}

/// Events per second when `tasks` tasks each append `each` single events
/// to namespace `ns` of `store` at once.
pub(crate) async fn concurrent_appends(
    store: Arc<dyn Store>,
    ns: &str,
    tasks: usize,
    each: usize,
) -> Result<f64, String> {
    let h = Handle::new(store)
        .with_timeout(None)
        .namespace(ns)
        .map_err(err)?;
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|t| {
            let h = h.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    let at = Timestamp::from_secs(1_700_000_000 + i as i64).unwrap();
                    h.append(&[NewEvent::new("paid", at, json!({"task": t, "i": i}))])
                        .await?;
                }
                Ok::<_, persistkit::Error>(())
            })
        })
        .collect();
    for w in workers {
        w.await.map_err(err)?.map_err(err)?;
    }
    let rate = (tasks * each) as f64 / started.elapsed().as_secs_f64();
    let log = h.read_log(0, 10_000).await.map_err(err)?;
    if log.len() != (tasks * each).min(10_000)
        || log
            .iter()
            .enumerate()
            .any(|(i, e)| e.position != i as u64 + 1)
    {
        return Err(format!(
            "{ns}: the log is not gap-free after the concurrent appends"
        ));
    }
    Ok(rate)
}
