//! `persistkit bench postgres`: persistkit's figures beside hand-written
//! sqlx on an equivalent table (binary COPY, one-statement calls), measured
//! in the same run; and what the other benches share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use persistkit::{AggregateFilter, Bucket, Handle, MetricPoint, NewEvent, Store, Timestamp};
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
            Baseline::Postgres(_) => {
                "sqlx: binary COPY per batch (ingest); one-statement, one-round-trip calls; \
                 group commit: one writer, one statement per batch"
            }
        }
    }

    /// The best hand-written aggregate of one series: one ordered pass over
    /// its index range, folding count, sum, min, max, last and nearest-rank
    /// p50/p99 per `width_us` bucket. Returns the number of rows.
    async fn aggregate_series(
        &self,
        component: &str,
        name: &str,
        width_us: i64,
    ) -> Result<usize, String> {
        use futures::TryStreamExt;
        let Baseline::Postgres(pool) = self;
        let mut rows = sqlx::query_as::<_, (chrono::DateTime<chrono::Utc>, f64)>(
            "SELECT at, value FROM persistkit.metrics WHERE ns = 'default' AND component = $1 AND name = $2 \
             ORDER BY at, seq",
        )
        .bind(component)
        .bind(name)
        .fetch(pool);
        let (mut bucket, mut out) = (i64::MIN, 0usize);
        let (mut count, mut sum, mut min, mut max, mut last) = (0u64, 0.0, 0.0f64, 0.0f64, 0.0);
        let mut values: Vec<f64> = Vec::new();
        let mut close = |values: &mut Vec<f64>, row: (u64, f64, f64, f64, f64)| {
            values.sort_by(f64::total_cmp);
            let n = values.len() as f64;
            let q = |q: f64| values[((q * n).ceil() as usize).clamp(1, values.len()) - 1];
            std::hint::black_box((row, q(0.5), q(0.99)));
            values.clear();
            out += 1;
        };
        while let Some((at, v)) = rows.try_next().await.map_err(err)? {
            let us = at.timestamp_micros();
            let b = us.div_euclid(width_us) * width_us;
            if b != bucket {
                if count > 0 {
                    close(&mut values, (count, sum, min, max, last));
                }
                bucket = b;
                (count, sum, min, max) = (0, 0.0, f64::INFINITY, f64::NEG_INFINITY);
            }
            count += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
            last = v;
            values.push(v);
        }
        if count > 0 {
            close(&mut values, (count, sum, min, max, last));
        }
        Ok(out)
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
            // One statement, one round trip: the head row's lock and the
            // insert at the next position. The happy path of a gap-free
            // append (no duplicate handling), so a floor for any correct one.
            Baseline::Postgres(pool) => sqlx::query(
                "WITH head AS (INSERT INTO persistkit.event_log_heads AS h (ns, last_position) VALUES ($1, 1) \
                 ON CONFLICT (ns) DO UPDATE SET last_position = h.last_position + 1 RETURNING last_position) \
                 INSERT INTO persistkit.events (ns, position, id, kind, occurred_at, digest, data) \
                 SELECT $1, last_position, last_position, $2, $3, $4, $5::jsonb FROM head",
            )
            .bind("default")
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

    async fn insert_record(&self, id: &str, data: &str) -> Result<(), String> {
        let Baseline::Postgres(pool) = self;
        sqlx::query(
            "INSERT INTO persistkit.records (ns, collection, id, data, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4::jsonb, 1, now(), now())",
        )
        .bind("default")
        .bind("jobs")
        .bind(id)
        .bind(data)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(err)
    }

    async fn put_version(&self, id: &str, data: &str, version: i64) -> Result<(), String> {
        let Baseline::Postgres(pool) = self;
        sqlx::query(
            "UPDATE persistkit.records SET data = $4::jsonb, version = version + 1, updated_at = now() \
             WHERE ns = $1 AND collection = $2 AND id = $3 AND version = $5 RETURNING version",
        )
        .bind("default")
        .bind("jobs")
        .bind(id)
        .bind(data)
        .bind(version)
        .fetch_one(pool)
        .await
        .map(|_| ())
        .map_err(err)
    }

    /// The row, its JSON parsed: what a caller needs of it.
    async fn get(&self, id: &str) -> Result<serde_json::Value, String> {
        let Baseline::Postgres(pool) = self;
        let (data, _version): (String, i64) = sqlx::query_as(
            "SELECT data::text, version FROM persistkit.records WHERE ns = $1 AND collection = $2 AND id = $3",
        )
        .bind("default")
        .bind("jobs")
        .bind(id)
        .fetch_one(pool)
        .await
        .map_err(err)?;
        serde_json::from_str(&data).map_err(err)
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

    // The aggregate of one series (a sixth of the points ingested above,
    // one every 6 ms), per second with p50/p99: each side reads the same
    // series of its own store.
    eprintln!("bench: per-second aggregate of one series, 21 times each side …");
    let agg = AggregateFilter {
        component: Some("api".into()),
        name: Some("rps".into()),
        quantiles: vec![0.5, 0.99],
        ..AggregateFilter::default()
    };
    let (mut o, mut b) = (Vec::new(), Vec::new());
    for _ in 0..21 {
        let t = Instant::now();
        let rows = h.aggregate(&agg, Bucket::seconds(1)).await.map_err(err)?;
        o.push(t.elapsed());
        let t = Instant::now();
        let theirs = baseline.aggregate_series("api", "rps", 1_000_000).await?;
        b.push(t.elapsed());
        if rows.len() != theirs {
            return Err(format!(
                "the aggregate has {} rows here and {theirs} by hand",
                rows.len()
            ));
        }
    }
    figures.push(Figure::latency(
        "aggregate of one series, per second, p50",
        latencies(o).0,
        latencies(b).0,
    ));

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

    eprintln!(
        "bench: {} record puts at a version and gets each side …",
        opts.ops
    );
    let ids: Vec<String> = (0..100).map(|i| format!("job-{i}")).collect();
    let doc = json!({"status": "queued", "attempts": 0, "owner": "team-a"});
    let text = persistkit::validate::canonical_json(&doc);
    for id in &ids {
        h.put("jobs", id, &doc, persistkit::Expect::Absent)
            .await
            .map_err(err)?;
        baseline.insert_record(id, &text).await?;
    }
    let mut versions = vec![1u64; ids.len()];
    let (mut po, mut pb, mut go, mut gb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..opts.ops {
        let k = i % ids.len();
        let next = json!({"status": "running", "attempts": i, "owner": "team-a"});
        let t = Instant::now();
        let r = h
            .put(
                "jobs",
                &ids[k],
                &next,
                persistkit::Expect::Version(versions[k]),
            )
            .await
            .map_err(err)?;
        po.push(t.elapsed());
        let t = Instant::now();
        let text = persistkit::validate::canonical_json(&next);
        baseline
            .put_version(&ids[k], &text, versions[k] as i64)
            .await?;
        pb.push(t.elapsed());
        versions[k] = r.version;
        let t = Instant::now();
        h.get("jobs", &ids[k]).await.map_err(err)?;
        go.push(t.elapsed());
        let t = Instant::now();
        baseline.get(&ids[k]).await?;
        gb.push(t.elapsed());
    }
    figures.push(Figure::latency(
        "record put (at a version) p50",
        latencies(po).0,
        latencies(pb).0,
    ));
    figures.push(Figure::latency(
        "record get p50",
        latencies(go).0,
        latencies(gb).0,
    ));

    let Baseline::Postgres(pool) = &baseline;
    figures.extend(
        group_commit_figures(h.store().clone(), opts.ops, |round, tasks, each| {
            pg_group_commit(pool, format!("by-hand-{round}"), tasks, each)
        })
        .await?,
    );

    let mut s = table(title, baseline.describe(), &figures);
    s += "targets: ingest ≥ 0.90×, append ≥ 0.80×, group commit ≥ 0.80× of hand-written";
    crate::print_out(&s);
    Ok(())
}

/// 16 tasks appending single events to one namespace at once: through the
/// group-commit layer (what `persistkit::open` gives), straight to the
/// store, and by `by_hand(round, tasks, each)`. Three rounds, each side in
/// turn, 6 400 events a side at the default size, so one scheduling
/// hiccup does not decide the figure; the medians.
pub(crate) async fn group_commit_figures<F, Fut>(
    store: Arc<dyn Store>,
    ops: usize,
    mut by_hand: F,
) -> Result<Vec<Figure>, String>
where
    F: FnMut(usize, usize, usize) -> Fut,
    Fut: std::future::Future<Output = Result<f64, String>>,
{
    let appenders = 16;
    let each = (ops / 4).max(10);
    let grouped_store = persistkit::GroupCommit::wrap(store.clone());
    let (mut plain, mut grouped, mut hand) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        eprintln!(
            "bench: {appenders} concurrent appenders × {each} events: group commit, none, and by hand (round {}/3) …",
            round + 1
        );
        plain.push(
            concurrent_appends(store.clone(), &format!("plain-{round}"), appenders, each).await?,
        );
        grouped.push(
            concurrent_appends(
                grouped_store.clone(),
                &format!("grouped-{round}"),
                appenders,
                each,
            )
            .await?,
        );
        hand.push(by_hand(round, appenders, each).await?);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (plain, grouped, hand) = (median(plain), median(grouped), median(hand));
    Ok(vec![
        Figure::rate(
            "16 appenders: group commit vs hand-written",
            grouped,
            hand,
            "events/s",
        ),
        Figure::rate(
            "16 appenders: group commit vs none",
            grouped,
            plain,
            "events/s",
        ),
    ])
}

/// How a hand-written group commit answers one append.
pub(crate) type Reply = tokio::sync::oneshot::Sender<Result<(), String>>;

/// One single-event append of the concurrent benches: task `t`'s `i`-th
/// event, as (time, digest, canonical JSON).
pub(crate) fn appender_event(t: usize, i: usize) -> (Timestamp, String, String) {
    let at = Timestamp::from_micros(1_700_000_000_000_000 + i as i64).expect("a time in range");
    let data = persistkit::validate::canonical_json(&json!({"task": t, "i": i}));
    (at, format!("{t:032x}{i:032x}"), data)
}

/// `tasks` tasks each hand `each` single-event appends to a hand-written
/// writer through `send(task, i, reply)` and wait for each answer. Events
/// per second.
pub(crate) async fn drive_appenders<F>(tasks: usize, each: usize, send: F) -> Result<f64, String>
where
    F: Fn(usize, usize, Reply) -> Result<(), String> + Send + Sync + 'static,
{
    let send = Arc::new(send);
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|t| {
            let send = send.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    let (reply, answer) = tokio::sync::oneshot::channel();
                    send(t, i, reply)?;
                    answer.await.map_err(err)??;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for w in workers {
        w.await.map_err(err)??;
    }
    Ok((tasks * each) as f64 / started.elapsed().as_secs_f64())
}

type PgRequest = ((Timestamp, String, String), Reply);

/// The hand-written group commit on Postgres: one writer task on one
/// connection drains what is queued (up to 2 000) into one statement that
/// moves the log head by the batch's size and inserts the batch at the
/// positions after it, in queue order. Events per second.
async fn pg_group_commit(
    pool: &sqlx::PgPool,
    ns: String,
    tasks: usize,
    each: usize,
) -> Result<f64, String> {
    let mut conn = pool.acquire().await.map_err(err)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PgRequest>();
    let writer_ns = ns.clone();
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < 2_000 {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let times: Vec<_> = batch.iter().map(|r| r.0 .0.to_datetime()).collect();
            let digests: Vec<&str> = batch.iter().map(|r| r.0 .1.as_str()).collect();
            let datas: Vec<&str> = batch.iter().map(|r| r.0 .2.as_str()).collect();
            let done = sqlx::query(
                "WITH head AS (INSERT INTO persistkit.event_log_heads AS h (ns, last_position) \
                 VALUES ($1, cardinality($3::text[])) ON CONFLICT (ns) DO UPDATE \
                 SET last_position = h.last_position + cardinality($3::text[]) \
                 RETURNING last_position - cardinality($3::text[]) AS start) \
                 INSERT INTO persistkit.events (ns, position, id, kind, occurred_at, digest, data) \
                 SELECT $1, start + o, start + o, 'paid', t, d, x::jsonb \
                 FROM head, unnest($2::timestamptz[], $3::text[], $4::text[]) WITH ORDINALITY AS u(t, d, x, o)",
            )
            .bind(&writer_ns)
            .bind(&times)
            .bind(&digests)
            .bind(&datas)
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(err);
            for (.., reply) in batch {
                let _ = reply.send(done.clone());
            }
        }
    });
    let rate = drive_appenders(tasks, each, move |t, i, reply| {
        tx.send((appender_event(t, i), reply)).map_err(err)
    })
    .await?;
    writer.await.map_err(err)?;
    Ok(rate)
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
