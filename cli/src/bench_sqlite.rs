//! `persistkit bench sqlite`: every hot path of the SQLite store beside the
//! best hand-written rusqlite equivalent that gives the same guarantees
//! (cached prepared statements, one transaction, the same table), measured
//! in the same run on two files of the same directory.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use persistkit::sqlite::rusqlite::{self, params, Connection, OptionalExtension};
use persistkit::sqlite::{SqliteConfig, SqliteStore};
use persistkit::{Expect, Handle, MetricPoint, NewEvent, Timestamp};
use serde_json::{json, Value};

use crate::bench::{
    appender_event, drive_appenders, group_commit_figures, latencies, points, table, BenchOptions,
    Figure, Reply, BATCH,
};

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

const NS: &str = "default";

/// A hand-written connection to `path`, set up as the store's are: WAL
/// (kept in the file), `synchronous=NORMAL`, the same busy timeout.
fn baseline_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// The hand-written side: one rusqlite connection, statements cached.
struct Baseline {
    conn: Connection,
}

impl Baseline {
    fn ingest(&self, ps: &[MetricPoint]) -> rusqlite::Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        {
            let mut st = self.conn.prepare_cached(
                "INSERT INTO metrics (ns, at, component, name, kind, value) VALUES (?, ?, ?, ?, ?, ?)",
            )?;
            for p in ps {
                st.execute(params![
                    NS,
                    p.at.as_micros(),
                    p.component,
                    p.name,
                    p.kind.as_str(),
                    p.value
                ])?;
            }
        }
        self.conn.execute_batch("COMMIT")
    }

    /// A gap-free, deduplicated append: the write lock, the log head, the
    /// row (or the duplicate it is), the new head.
    fn append(&self, kind: &str, at: i64, digest: &str, data: &str) -> rusqlite::Result<u64> {
        append_gap_free(&self.conn, &[(kind, at, digest, data)]).map(|p| p[0])
    }

    fn claim(&self, key: &str, now: i64) -> rusqlite::Result<Option<String>> {
        self.conn
            .prepare_cached(
                "INSERT INTO idempotency_keys (ns, scope, key, token, claimed_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (ns, scope, key) DO UPDATE \
                 SET token = excluded.token, claimed_at = excluded.claimed_at, \
                 expires_at = excluded.expires_at, response = NULL \
                 WHERE idempotency_keys.expires_at <= excluded.claimed_at RETURNING token",
            )?
            .query_row(
                params![NS, "payments", key, "token", now, now + 3_600_000_000],
                |r| r.get(0),
            )
            .optional()
    }

    fn put_version(&self, id: &str, data: &str, now: i64, v: i64) -> rusqlite::Result<i64> {
        self.conn
            .prepare_cached(
                "UPDATE records SET data = ?4, version = version + 1, updated_at = ?5 \
                 WHERE ns = ?1 AND collection = ?2 AND id = ?3 AND version = ?6 RETURNING version",
            )?
            .query_row(params![NS, "jobs", id, data, now, v], |r| r.get(0))
    }

    fn insert_record(&self, id: &str, data: &str, now: i64) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO records (ns, collection, id, data, version, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)",
            )?
            .execute(params![NS, "jobs", id, data, now])
            .map(|_| ())
    }

    /// The row, with its JSON parsed: what a caller needs of it.
    fn get(&self, id: &str) -> rusqlite::Result<Option<(Value, i64)>> {
        self.conn
            .prepare_cached(
                "SELECT data, version, created_at, updated_at FROM records \
                 WHERE ns = ?1 AND collection = ?2 AND id = ?3",
            )?
            .query_row(params![NS, "jobs", id], |r| {
                let data = r.get_ref(0)?.as_str()?;
                let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                Ok((v, r.get(1)?))
            })
            .optional()
    }
}

/// The hand-written gap-free append of several events in one IMMEDIATE
/// transaction; positions of each (a duplicate gets the original's).
fn append_gap_free(
    c: &Connection,
    events: &[(&str, i64, &str, &str)],
) -> rusqlite::Result<Vec<u64>> {
    c.execute_batch("BEGIN IMMEDIATE")?;
    let out = (|| {
        let mut head: i64 = c
            .prepare_cached("SELECT last_position FROM event_log_heads WHERE ns = ?")?
            .query_row([NS], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let start = head;
        let mut out = Vec::with_capacity(events.len());
        for (kind, at, digest, data) in events {
            let inserted: Option<i64> = c
                .prepare_cached(
                    "INSERT INTO events (ns, position, id, kind, occurred_at, digest, data) \
                     VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING RETURNING position",
                )?
                .query_row(params![NS, head + 1, kind, at, digest, data], |r| r.get(0))
                .optional()?;
            match inserted {
                Some(p) => {
                    head = p;
                    out.push(p as u64);
                }
                None => out.push(
                    c.prepare_cached(
                        "SELECT position FROM events WHERE ns = ? AND kind = ? AND occurred_at = ? AND digest = ?",
                    )?
                    .query_row(params![NS, kind, at, digest], |r| r.get::<_, i64>(0))?
                        as u64,
                ),
            }
        }
        if head != start {
            c.prepare_cached(
                "INSERT INTO event_log_heads (ns, last_position) VALUES (?1, ?2) \
                 ON CONFLICT (ns) DO UPDATE SET last_position = excluded.last_position",
            )?
            .execute(params![NS, head])?;
        }
        Ok(out)
    })();
    match out {
        Ok(out) => c.execute_batch("COMMIT").map(|_| out),
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

type Request = ((Timestamp, String, String), Reply);

/// The hand-written group commit: one writer thread drains whatever is
/// queued (up to 2 000) into one transaction; `tasks` tasks append `each`
/// single events each. Events per second.
async fn hand_written_group_commit(path: &Path, tasks: usize, each: usize) -> Result<f64, String> {
    let conn = baseline_connection(path).map_err(err)?;
    let (tx, rx) = mpsc::channel::<Request>();
    let writer = std::thread::spawn(move || {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < 2_000 {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let events: Vec<_> = batch
                .iter()
                .map(|((at, d, data), _)| ("paid", at.as_micros(), d.as_str(), data.as_str()))
                .collect();
            match append_gap_free(&conn, &events) {
                Ok(_) => {
                    for (_, reply) in batch {
                        let _ = reply.send(Ok(()));
                    }
                }
                Err(e) => {
                    for (_, reply) in batch {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
        }
    });
    let rate = drive_appenders(tasks, each, move |t, i, reply| {
        tx.send((appender_event(t, i), reply)).map_err(err)
    })
    .await?;
    writer
        .join()
        .map_err(|_| "the baseline writer panicked".to_string())?;
    Ok(rate)
}

fn p50(v: Vec<Duration>) -> f64 {
    latencies(v).0
}

/// The batch sizes of the ingest sweep: both sides of every size where the
/// insert changes shape.
const SWEEP: [usize; 8] = [1, 10, 100, 499, 500, 501, 1_000, 10_000];

/// About how many points each size of the sweep writes per side.
const SWEEP_POINTS: usize = 20_000;

/// Write `batches` batches of `size` points on each side, alternating, and
/// the time each side took; one batch more runs first, untimed, to warm
/// caches and statement caches on both sides. Batch `i` is `points(first + i)`.
async fn ingest_both(
    h: &Handle,
    base: &Baseline,
    first: usize,
    batches: usize,
    size: usize,
) -> Result<(Duration, Duration), String> {
    let (mut o, mut b) = (Duration::ZERO, Duration::ZERO);
    for i in 0..=batches {
        let all = points(first + i);
        let ps = &all[..size];
        let t = Instant::now();
        h.write_metrics(ps).await.map_err(err)?;
        let ot = t.elapsed();
        let t = Instant::now();
        base.ingest(ps).map_err(err)?;
        let bt = t.elapsed();
        if i > 0 {
            o += ot;
            b += bt;
        }
    }
    Ok((o, b))
}

/// Run every figure and print the table.
pub async fn run(dir: &Path, opts: &BenchOptions) -> Result<(), String> {
    let open = |name: &str| SqliteStore::connect(SqliteConfig::new(dir.join(name)));
    let ours = open("persistkit.db").await.map_err(err)?;
    let base_store = open("baseline.db").await.map_err(err)?;
    let base_path = base_store.path().to_path_buf();
    let base = Baseline {
        conn: baseline_connection(&base_path).map_err(err)?,
    };
    // A hand-written application keeps no declared indexes: its records
    // table has no index triggers, so their cost shows in our ratio.
    base.conn
        .execute_batch(
            "DROP TRIGGER records_indexed_on_insert;
             DROP TRIGGER records_indexed_on_update;
             DROP TRIGGER records_unindexed_on_delete;",
        )
        .map_err(err)?;
    let h = Handle::new(Arc::new(ours)).with_timeout(None);
    let mut figures = Vec::new();

    for (size, batches) in [(BATCH, opts.batches), (100, opts.batches * 20)] {
        eprintln!("bench: metric ingest, {batches} batches of {size} points each side …");
        let (o, b) = ingest_both(&h, &base, 0, batches, size).await?;
        let n = (batches * size) as f64;
        figures.push(Figure::rate(
            format!("metric ingest ({size}-point batches)"),
            n / o.as_secs_f64(),
            n / b.as_secs_f64(),
            "points/s",
        ));
    }

    // The cost per point by batch size, across the sizes where the insert
    // changes shape: it must fall or stay flat as batches grow.
    let mut sweep = Vec::new();
    for size in SWEEP {
        let batches = (SWEEP_POINTS / size).clamp(3, 2_000);
        eprintln!("bench: batch-size sweep, {batches} batches of {size} points each side …");
        let (o, b) = ingest_both(&h, &base, 1_000, batches, size).await?;
        let n = (batches * size) as f64;
        let (ours, theirs) = (o.as_secs_f64() * 1e6 / n, b.as_secs_f64() * 1e6 / n);
        sweep.push((size, ours));
        figures.push(Figure::latency(
            format!("ingest per point, {size}-point batches"),
            ours,
            theirs,
        ));
    }
    let worst = sweep
        .windows(2)
        .map(|w| (w[1].1 / w[0].1, w[0].0, w[1].0))
        .fold((0.0_f64, 0, 0), |a, b| if b.0 > a.0 { b } else { a });

    eprintln!("bench: {} single-event appends each side …", opts.ops);
    let (mut o, mut b) = (Vec::new(), Vec::new());
    for i in 0..opts.ops {
        let at = Timestamp::from_secs(1_700_000_000 + i as i64).map_err(err)?;
        let data = json!({"order": i, "amount": 12.5});
        let t = Instant::now();
        h.append(&[NewEvent::new("paid", at, data.clone())])
            .await
            .map_err(err)?;
        o.push(t.elapsed());
        let t = Instant::now();
        let checked = persistkit::validate::json("event data", &data).map_err(err)?;
        base.append(
            "paid",
            at.as_micros(),
            &checked.sha256_hex(),
            &checked.canonical,
        )
        .map_err(err)?;
        b.push(t.elapsed());
    }
    let ((o50, o99), (b50, b99)) = (latencies(o), latencies(b));
    figures.push(Figure::latency("event append p50 (gap-free)", o50, b50));
    figures.push(Figure::latency("event append p99", o99, b99));

    eprintln!("bench: {} idempotency claims each side …", opts.ops);
    let (mut o, mut b) = (Vec::new(), Vec::new());
    for i in 0..opts.ops {
        let key = format!("order-{i}");
        let t = Instant::now();
        h.claim("payments", &key, Duration::from_secs(3600))
            .await
            .map_err(err)?;
        o.push(t.elapsed());
        let t = Instant::now();
        base.claim(&key, Timestamp::now().as_micros())
            .map_err(err)?;
        b.push(t.elapsed());
    }
    figures.push(Figure::latency("idempotency claim p50", p50(o), p50(b)));

    eprintln!(
        "bench: {} record puts at a version and gets each side …",
        opts.ops
    );
    let ids: Vec<String> = (0..100).map(|i| format!("job-{i}")).collect();
    let doc = json!({"status": "queued", "attempts": 0, "owner": "team-a"});
    let text = persistkit::validate::canonical_json(&doc);
    let now = Timestamp::now().as_micros();
    for id in &ids {
        h.put("jobs", id, &doc, Expect::Absent).await.map_err(err)?;
        base.insert_record(id, &text, now).map_err(err)?;
    }
    let mut versions = vec![1u64; ids.len()];
    let (mut po, mut pb, mut go, mut gb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..opts.ops {
        let k = i % ids.len();
        let id = &ids[k];
        let next = json!({"status": "running", "attempts": i, "owner": "team-a"});
        let t = Instant::now();
        let r = h
            .put("jobs", id, &next, Expect::Version(versions[k]))
            .await
            .map_err(err)?;
        po.push(t.elapsed());
        let t = Instant::now();
        let text = persistkit::validate::canonical_json(&next);
        base.put_version(id, &text, Timestamp::now().as_micros(), versions[k] as i64)
            .map_err(err)?;
        pb.push(t.elapsed());
        versions[k] = r.version;
        let t = Instant::now();
        h.get("jobs", id)
            .await
            .map_err(err)?
            .ok_or("a record went missing")?;
        go.push(t.elapsed());
        let t = Instant::now();
        base.get(id)
            .map_err(err)?
            .ok_or("a baseline record went missing")?;
        gb.push(t.elapsed());
    }
    figures.push(Figure::latency(
        "record put (at a version) p50",
        p50(po),
        p50(pb),
    ));
    figures.push(Figure::latency("record get p50", p50(go), p50(gb)));

    let base = &base;
    let base_path = &base_path;
    figures.extend(
        group_commit_figures(h.store().clone(), opts.ops, |_, tasks, each| async move {
            base.conn
                .execute_batch("DELETE FROM events; DELETE FROM event_log_heads")
                .map_err(err)?;
            hand_written_group_commit(base_path, tasks, each).await
        })
        .await?,
    );

    let mut s = table(
        "sqlite (temporary files, WAL, synchronous=NORMAL)",
        "rusqlite, cached prepared statements, one transaction per call, the same tables",
        &figures,
    );
    s += &format!(
        "batch-size sweep: the largest rise in cost per point between neighbouring sizes is \
         {:.2}× ({} → {} points; target ≤ 1.5×, a fall is < 1)\n",
        worst.0, worst.1, worst.2
    );
    s += "targets: single-op p50 ≥ 0.50× (within 2×), ingest ≥ 0.90×, group commit ≥ 0.80× of hand-written";
    crate::print_out(&s);
    Ok(())
}
