//! Differential testing: random operation sequences run on the memory oracle
//! and on another backend; every observable result must be equal — return
//! values, errors, reads, aggregates and the final export.
//!
//! Each sequence runs in a fresh namespace of the two stores, so one store of
//! each kind serves a whole run. The seed is printed on failure; rerun with
//! `PERSISTKIT_DIFF_SEED=<seed>`. `PERSISTKIT_DIFF_CASES` sets the count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use persistkit_core::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

const NAMES: &[&str] = &["a", "B", "é", "😀", "a1"];
const VALUES: &[f64] = &[0.0, -0.0, 1.0, -2.5, 0.1, 0.2, 1e10, 3.25];

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES).prop_map(str::to_string)
}

/// Collections and ids of records: few, so that writes meet earlier
/// writes of the same record (expiry, versions, indexes) often.
fn coll() -> impl Strategy<Value = String> {
    prop::sample::select(&["a", "B"][..]).prop_map(str::to_string)
}

fn rid() -> impl Strategy<Value = String> {
    prop::sample::select(&["a", "é", "1"][..]).prop_map(str::to_string)
}

fn bad_or(name: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop_oneof![9 => name, 1 => Just(String::new()), 1 => Just("bad\nname".to_string())]
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![8 => prop::sample::select(VALUES), 1 => Just(f64::NAN)]
}

fn payload() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        Just(json!({"a": 1})),
        Just(json!({"a": 1.0, "b": "x"})),
        Just(json!({"a": "x", "b": 2})),
        Just(json!({"a": null, "b": -1})),
        Just(json!({"a": 1, "b": [1, 2]})),
        Just(json!([1.5, "x"])),
        Just(json!({"n": null, "é": "😀"})),
        Just(json!(1)),
    ]
}

fn at() -> impl Strategy<Value = i64> {
    -5i64..20
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        2 => Just(Expect::Any),
        1 => Just(Expect::Absent),
        1 => (0u64..4).prop_map(Expect::Version)
    ]
}

/// One operation of a sequence.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Op {
    WriteMetrics(Vec<(i64, String, String, bool, f64)>),
    ReadMetrics {
        component: Option<String>,
        name: Option<String>,
        from: Option<i64>,
        to: Option<i64>,
        limit: usize,
    },
    Aggregate {
        component: Option<String>,
        /// With a component, one series: the backends fold it in Rust.
        name: Option<String>,
        /// Seconds; 0 for the whole range (MET-7).
        bucket: u64,
        /// Nearest-rank quantiles, 1.5 among them to check the refusal.
        quantiles: Vec<f64>,
    },
    ListComponents,
    ListNames(String),
    Append(Vec<(String, i64, Value)>),
    ListEvents {
        kinds: Vec<String>,
        from: Option<i64>,
        to: Option<i64>,
        limit: usize,
        newest_first: bool,
    },
    ReadLog {
        after: u64,
        limit: usize,
    },
    Claim {
        key: String,
        ttl: u64,
        /// The request's fingerprint (IDM-7), or none.
        fingerprint: Option<String>,
    },
    Extend {
        key: String,
        own_token: bool,
        ttl: u64,
    },
    Complete {
        key: String,
        own_token: bool,
        response: Value,
    },
    KeyState(String),
    Clear,
    Release {
        key: String,
        own_token: bool,
    },
    Put {
        collection: String,
        id: String,
        data: Value,
        expect: Expect,
    },
    Get {
        collection: String,
        id: String,
    },
    Delete {
        collection: String,
        id: String,
        expect: Expect,
    },
    ListRecords {
        collection: String,
        limit: usize,
    },
    PutWithTtl {
        collection: String,
        id: String,
        data: Value,
        expect: Expect,
        ttl: u64,
    },
    CreateIndex {
        collection: String,
        fields: Vec<String>,
        unique: bool,
    },
    Find {
        collection: String,
        field: String,
        value: Value,
        limit: usize,
    },
    Incr {
        collection: String,
        id: String,
        by: i64,
    },
    /// A batch of puts, deletes and appends.
    Apply(Vec<(u8, String, String, Value, Expect)>),
    Advance(u64),
    Purge {
        metrics: Option<u64>,
        events: Option<u64>,
        records: Option<u64>,
        /// A period of its own for one component.
        component: Option<(String, u64)>,
        /// A period of its own for one collection.
        collection: Option<(String, u64)>,
    },
    Counts,
    /// `n` points in one write, on both sides of the sizes where backends
    /// switch ingest paths (SQLite's 500-row INSERT, Postgres's COPY from
    /// 1 000), with ties in time and identical points; `salt` varies them.
    BulkMetrics {
        n: usize,
        salt: usize,
    },
    /// Export the namespace, clear it and import the archive back: the
    /// import path mid-sequence, and everything after it reads what it
    /// wrote.
    Reimport,
}

/// Index declarations the sequences draw from (the last one is refused).
const INDEX_FIELDS: &[&[&str]] = &[&["/a"], &["/b"], &["/a", "/b"], &["/b", "/a"], &["a"]];

fn op() -> impl Strategy<Value = Op> {
    let opt_name = || prop::option::of(name());
    let opt_at = || prop::option::of(at());
    prop_oneof![
        3 => prop::collection::vec((at(), bad_or(name()), name(), any::<bool>(), value()), 0..6).prop_map(Op::WriteMetrics),
        2 => (opt_name(), opt_name(), opt_at(), opt_at(), 1usize..5).prop_map(|(component, name, from, to, limit)| Op::ReadMetrics { component, name, from, to, limit }),
        1 => (opt_name(), opt_name(), prop::sample::select(&[1u64, 7, 60, 3600, 0][..]), prop::collection::vec(prop::sample::select(&[0.0, 0.07, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0, 1.5][..]), 0..4)).prop_map(|(component, name, bucket, quantiles)| Op::Aggregate { component, name, bucket, quantiles }),
        1 => Just(Op::ListComponents),
        1 => name().prop_map(Op::ListNames),
        3 => prop::collection::vec((bad_or(name()), at(), payload()), 0..5).prop_map(Op::Append),
        2 => (prop::collection::vec(name(), 0..3), opt_at(), opt_at(), 1usize..5, any::<bool>()).prop_map(|(kinds, from, to, limit, newest_first)| Op::ListEvents { kinds, from, to, limit, newest_first }),
        1 => (0u64..6, 1usize..4).prop_map(|(after, limit)| Op::ReadLog { after, limit }),
        2 => (name(), 0u64..30, prop::option::of(prop::sample::select(&["req-a", "req-b", ""][..]))).prop_map(|(key, ttl, f)| Op::Claim { key, ttl, fingerprint: f.map(str::to_string) }),
        1 => (name(), any::<bool>(), 0u64..30).prop_map(|(key, own_token, ttl)| Op::Extend { key, own_token, ttl }),
        2 => (name(), any::<bool>(), payload()).prop_map(|(key, own_token, response)| Op::Complete { key, own_token, response }),
        1 => (name(), any::<bool>()).prop_map(|(key, own_token)| Op::Release { key, own_token }),
        1 => name().prop_map(Op::KeyState),
        1 => Just(Op::Clear),
        3 => (coll(), bad_or(rid()), payload(), expect()).prop_map(|(collection, id, data, expect)| Op::Put { collection, id, data, expect }),
        1 => (coll(), rid()).prop_map(|(collection, id)| Op::Get { collection, id }),
        1 => (coll(), rid(), expect()).prop_map(|(collection, id, expect)| Op::Delete { collection, id, expect }),
        1 => (coll(), 1usize..4).prop_map(|(collection, limit)| Op::ListRecords { collection, limit }),
        2 => (coll(), rid(), payload(), expect(), 0u64..30).prop_map(|(collection, id, data, expect, ttl)| Op::PutWithTtl { collection, id, data, expect, ttl }),
        1 => (coll(), prop::sample::select(INDEX_FIELDS), any::<bool>()).prop_map(|(collection, fields, unique)| Op::CreateIndex { collection, fields: fields.iter().map(|f| f.to_string()).collect(), unique }),
        2 => (coll(), prop::sample::select(&["/a", "/b", "/c"][..]), prop::sample::select(vec![json!(1), json!("x"), json!(null), json!(2), json!(-1), json!([1])]), 1usize..4).prop_map(|(collection, field, value, limit)| Op::Find { collection, field: field.to_string(), value, limit }),
        1 => (coll(), rid(), -2i64..3).prop_map(|(collection, id, by)| Op::Incr { collection, id, by }),
        2 => prop::collection::vec((0u8..3, coll(), bad_or(rid()), payload(), expect()), 0..4).prop_map(Op::Apply),
        2 => (1u64..20).prop_map(Op::Advance),
        1 => (prop::option::of(0u64..20), prop::option::of(0u64..20), prop::option::of(0u64..20), prop::option::of((bad_or(name()), 0u64..20)), prop::option::of((name(), 0u64..20))).prop_map(|(metrics, events, records, component, collection)| Op::Purge { metrics, events, records, component, collection }),
        1 => Just(Op::Counts),
        1 => (prop::sample::select(&[1usize, 499, 500, 501, 999, 1000, 1001][..]), 0usize..8).prop_map(|(n, salt)| Op::BulkMetrics { n, salt }),
        1 => Just(Op::Reimport),
    ]
}

/// A random sequence of operations.
pub fn sequence() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..40)
}

struct Side {
    h: Handle,
    clock: ManualClock,
    tokens: HashMap<String, String>,
}

fn ts(s: i64) -> Timestamp {
    Timestamp::from_secs(crate::START + s).expect("in range")
}

fn out<T: serde::Serialize>(r: Result<T>) -> Value {
    match r {
        Ok(v) => serde_json::to_value(v).expect("serializes"),
        Err(e) => {
            json!({"error": e.kind().as_str(), "index": e.index(), "current_version": e.current_version(), "unique": e.unique_conflict()})
        }
    }
}

/// Drop what legitimately differs between stores: insertion sequences
/// (global per store), tokens (random), cursors (encode sequences).
fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("seq");
            if let Some(t) = m.get_mut("token") {
                *t = json!("<token>");
            }
            if let Some(c) = m.get_mut("next_cursor") {
                *c = json!(!c.is_null());
            }
            m.values_mut().for_each(normalize);
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// Equal, except `sum` and `avg`, which may differ by a relative 1e-9.
fn same(a: &Value, b: &Value, key: &str) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same(v, w, k)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w, key))
        }
        (Value::Number(x), Value::Number(y)) if key == "sum" || key == "avg" => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300)
        }
        _ => a == b,
    }
}

impl Side {
    async fn apply(&mut self, op: &Op) -> Value {
        let h = &self.h;
        match op {
            Op::WriteMetrics(ps) => {
                let points: Vec<MetricPoint> = ps
                    .iter()
                    .map(|(s, c, n, counter, v)| {
                        if *counter {
                            MetricPoint::counter(ts(*s), c, n, *v)
                        } else {
                            MetricPoint::gauge(ts(*s), c, n, *v)
                        }
                    })
                    .collect();
                out(h.write_metrics(&points).await)
            }
            Op::ReadMetrics {
                component,
                name,
                from,
                to,
                limit,
            } => {
                let f = MetricFilter {
                    component: component.clone(),
                    name: name.clone(),
                    from: from.map(ts),
                    to: to.map(ts),
                    limit: Some(*limit),
                    cursor: None,
                };
                // Page through everything, recording each page.
                let mut pages = Vec::new();
                let mut f = f;
                for _ in 0..200 {
                    let p = h.read_metrics(&f).await;
                    let next = p.as_ref().ok().and_then(|p| p.next_cursor.clone());
                    pages.push(out(p));
                    match next {
                        Some(c) => f.cursor = Some(c),
                        None => break,
                    }
                }
                Value::Array(pages)
            }
            Op::Aggregate {
                component,
                name,
                bucket,
                quantiles,
            } => out(h
                .aggregate(
                    &AggregateFilter {
                        component: component.clone(),
                        name: name.clone(),
                        quantiles: quantiles.clone(),
                        ..Default::default()
                    },
                    if *bucket == 0 {
                        Bucket::WHOLE
                    } else {
                        Bucket::seconds(*bucket)
                    },
                )
                .await),
            Op::ListComponents => out(h.list_components().await),
            Op::ListNames(c) => out(h.list_metric_names(c).await),
            Op::Append(es) => {
                let events: Vec<NewEvent> = es
                    .iter()
                    .map(|(k, s, d)| NewEvent::new(k, ts(*s), d.clone()))
                    .collect();
                out(h.append(&events).await)
            }
            Op::ListEvents {
                kinds,
                from,
                to,
                limit,
                newest_first,
            } => {
                let mut f = EventFilter {
                    kinds: kinds.clone(),
                    from: from.map(ts),
                    to: to.map(ts),
                    limit: Some(*limit),
                    cursor: None,
                    newest_first: *newest_first,
                };
                let mut pages = Vec::new();
                for _ in 0..200 {
                    let p = h.list_events(&f).await;
                    let next = p.as_ref().ok().and_then(|p| p.next_cursor.clone());
                    pages.push(out(p));
                    match next {
                        Some(c) => f.cursor = Some(c),
                        None => break,
                    }
                }
                Value::Array(pages)
            }
            Op::ReadLog { after, limit } => out(h.read_log(*after, *limit).await),
            Op::Claim {
                key,
                ttl,
                fingerprint,
            } => {
                let ttl = Duration::from_secs(*ttl);
                let r = match fingerprint {
                    Some(f) => h.claim_with_fingerprint("scope", key, f, ttl).await,
                    None => h.claim("scope", key, ttl).await,
                };
                if let Ok(Claim::Acquired { token, .. }) = &r {
                    self.tokens.insert(key.clone(), token.clone());
                }
                out(r)
            }
            Op::Complete {
                key,
                own_token,
                response,
            } => {
                let token = self.token(key, *own_token);
                out(h.complete("scope", key, &token, response).await)
            }
            Op::Extend {
                key,
                own_token,
                ttl,
            } => {
                let token = self.token(key, *own_token);
                out(h
                    .extend_claim("scope", key, &token, Duration::from_secs(*ttl))
                    .await)
            }
            Op::KeyState(key) => out(h.key_state("scope", key).await),
            Op::Clear => {
                self.tokens.clear();
                out(h.clear().await)
            }
            Op::Release { key, own_token } => {
                let token = self.token(key, *own_token);
                out(h.release("scope", key, &token).await)
            }
            Op::Put {
                collection,
                id,
                data,
                expect,
            } => out(h.put(collection, id, data, *expect).await),
            Op::Get { collection, id } => out(h.get(collection, id).await),
            Op::Delete {
                collection,
                id,
                expect,
            } => out(h.delete(collection, id, *expect).await),
            Op::ListRecords { collection, limit } => {
                out(h.list_records(collection, None, *limit).await)
            }
            Op::PutWithTtl {
                collection,
                id,
                data,
                expect,
                ttl,
            } => out(h
                .put_with_ttl(collection, id, data, *expect, Duration::from_secs(*ttl))
                .await),
            Op::CreateIndex {
                collection,
                fields,
                unique,
            } => {
                let mut ix = persistkit_core::Index::new(collection.as_str(), "ix", fields);
                ix.unique = *unique;
                // One name, so that a second declaration may differ.
                out(h.create_index(&ix).await)
            }
            Op::Find {
                collection,
                field,
                value,
                limit,
            } => {
                let q = persistkit_core::Find::new()
                    .eq(field.as_str(), value.clone())
                    .limit(*limit);
                match h.find(collection, &q).await {
                    Ok(first) => {
                        // Follow one more page, so cursors are exercised.
                        let next = match &first.next_cursor {
                            Some(c) => out(h.find(collection, &q.clone().after(c.clone())).await),
                            None => Value::Null,
                        };
                        json!([out(Ok::<_, persistkit_core::Error>(first)), next])
                    }
                    Err(e) => out::<()>(Err(e)),
                }
            }
            Op::Incr { collection, id, by } => out(h.incr(collection, id, "/c", *by).await),
            Op::Apply(ops) => {
                let mut batch = persistkit_core::Batch::new();
                for (what, collection, id, data, expect) in ops {
                    batch = match what {
                        0 => batch.put(collection.as_str(), id.as_str(), data.clone(), *expect),
                        1 => batch.delete(collection.as_str(), id.as_str(), *expect),
                        _ => batch.append(vec![NewEvent::new(
                            id.as_str(),
                            Timestamp::from_secs(0).expect("in range"),
                            data.clone(),
                        )]),
                    };
                }
                out(h.apply(&batch).await)
            }
            Op::Advance(s) => {
                self.clock.advance(Duration::from_secs(*s));
                Value::Null
            }
            Op::Purge {
                metrics,
                events,
                records,
                component,
                collection,
            } => {
                let d = |s: &Option<u64>| s.map(Duration::from_secs);
                let own = |o: &Option<(String, u64)>| {
                    o.iter()
                        .map(|(n, s)| (n.clone(), Duration::from_secs(*s)))
                        .collect()
                };
                let policy = RetentionPolicy {
                    metrics_older_than: d(metrics),
                    events_older_than: d(events),
                    records_not_updated_for: d(records),
                };
                let overrides = RetentionOverrides {
                    metrics_by_component: own(component),
                    records_by_collection: own(collection),
                };
                out(h.purge_with(&policy, &overrides).await)
            }
            Op::Counts => out(h.counts().await),
            Op::BulkMetrics { n, salt } => {
                let points: Vec<MetricPoint> = (0..*n)
                    .map(|i| {
                        let at = ts(((i * 7 + salt) % 5) as i64);
                        let component = ["a", "B"][i % 2];
                        let v = VALUES[(i * 3 + salt) % VALUES.len()];
                        if (i / 3) % 2 == 0 {
                            MetricPoint::gauge(at, component, "n", v)
                        } else {
                            MetricPoint::counter(at, component, "n", v)
                        }
                    })
                    .collect();
                out(h.write_metrics(&points).await)
            }
            Op::Reimport => {
                let mut buf = Vec::new();
                if let Err(e) = h.export(ExportScope::Namespace, &mut buf, None).await {
                    return out::<()>(Err(e));
                }
                if let Err(e) = h.clear().await {
                    return out::<()>(Err(e));
                }
                out(h.import(&mut buf.as_slice(), None).await)
            }
        }
    }

    fn token(&self, key: &str, own: bool) -> String {
        match (own, self.tokens.get(key)) {
            (true, Some(t)) => t.clone(),
            _ => "not-a-token".into(),
        }
    }

    async fn export(&self) -> Result<String> {
        let mut buf = Vec::new();
        self.h
            .export(ExportScope::Namespace, &mut buf, None)
            .await?;
        let text = String::from_utf8(buf).expect("archives are UTF-8");
        // Tokens are random per store; everything else must match byte for byte.
        Ok(text
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).expect("archive lines are JSON");
                if let Some(t) = v.get_mut("token") {
                    *t = json!("<token>");
                }
                validate::canonical_json(&v)
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

static NEXT_NS: AtomicU64 = AtomicU64::new(0);

/// Run one sequence on both stores, in a fresh namespace of each.
///
/// # Errors
/// A description of the first divergence.
pub async fn compare(
    oracle: &Arc<dyn Store>,
    other: &Arc<dyn Store>,
    ops: &[Op],
) -> std::result::Result<(), String> {
    let ns = format!(
        "diff-{}-{}",
        std::process::id(),
        NEXT_NS.fetch_add(1, Ordering::SeqCst)
    );
    let side = |s: &Arc<dyn Store>| {
        let clock = ManualClock::new(ts(0));
        Side {
            h: Handle::new(s.clone())
                .with_clock(Arc::new(clock.clone()))
                .namespace(&ns)
                .expect("valid"),
            clock,
            tokens: HashMap::new(),
        }
    };
    let (mut a, mut b) = (side(oracle), side(other));
    for (i, op) in ops.iter().enumerate() {
        let (mut x, mut y) = (a.apply(op).await, b.apply(op).await);
        normalize(&mut x);
        normalize(&mut y);
        if !same(&x, &y, "") {
            return Err(format!(
                "step {i}: {op:?}\n  memory: {x}\n  {}: {y}",
                other.backend_name()
            ));
        }
    }
    let (x, y) = (
        a.export().await.map_err(|e| e.to_string())?,
        b.export().await.map_err(|e| e.to_string())?,
    );
    if x != y {
        return Err(format!(
            "final export differs\n--- memory\n{x}\n--- {}\n{y}",
            other.backend_name()
        ));
    }
    Ok(())
}

/// What a differential run checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// Sequences run.
    pub sequences: u32,
    /// Operations in them.
    pub operations: u64,
    /// The seed they came from.
    pub seed: u64,
}

/// A sequence on which the two stores disagree, shrunk to the shortest
/// that still does.
#[derive(Debug, Clone)]
pub struct Disagreement {
    /// The seed of the run.
    pub seed: u64,
    /// Which sequence of the run failed first (1-based).
    pub sequence: u32,
    /// The shortest failing sequence found.
    pub ops: Vec<Op>,
    /// How the stores differ on it.
    pub divergence: String,
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "sequence {} of seed {} disagrees with the memory oracle; the shortest failing \
             sequence ({} operations):",
            self.sequence,
            self.seed,
            self.ops.len()
        )?;
        for (i, op) in self.ops.iter().enumerate() {
            writeln!(f, "  {i}. {op:?}")?;
        }
        writeln!(f, "{}", self.divergence)?;
        write!(
            f,
            "replay: set PERSISTKIT_DIFF_SEED={} (and PERSISTKIT_DIFF_CASES={}) and run it again",
            self.seed, self.sequence
        )
    }
}

/// The seed from `PERSISTKIT_DIFF_SEED`, or a fresh one.
pub fn seed_from_env() -> u64 {
    std::env::var("PERSISTKIT_DIFF_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        })
}

/// The count from `PERSISTKIT_DIFF_CASES`, or `default`.
pub fn cases_from_env(default: u32) -> u32 {
    std::env::var("PERSISTKIT_DIFF_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Shrinking stops after this many tries of a smaller sequence.
const MAX_SHRINK_STEPS: u32 = 1_000;

/// Run `cases` sequences drawn from `seed` on both stores; on the first
/// disagreement, shrink the sequence to the shortest that still disagrees.
///
/// # Errors
/// The shrunk disagreement.
pub async fn check(
    oracle: &Arc<dyn Store>,
    other: &Arc<dyn Store>,
    cases: u32,
    seed: u64,
) -> std::result::Result<Agreement, Disagreement> {
    let generator = Generator::start(seed);
    let mut operations = 0u64;
    for n in 1..=cases {
        let ops = generator
            .ask(Step::Next)
            .expect("a new sequence is always drawn");
        let Err(divergence) = compare(oracle, other, &ops).await else {
            operations += ops.len() as u64;
            continue;
        };
        let mut best = (ops, divergence);
        let mut steps = 0;
        let mut next = generator.ask(Step::Simplify);
        while let Some(candidate) = next {
            steps += 1;
            if steps > MAX_SHRINK_STEPS {
                break;
            }
            next = match compare(oracle, other, &candidate).await {
                Err(d) => {
                    best = (candidate, d);
                    generator.ask(Step::Simplify)
                }
                Ok(()) => generator.ask(Step::Complicate),
            };
        }
        return Err(Disagreement {
            seed,
            sequence: n,
            ops: best.0,
            divergence: best.1,
        });
    }
    Ok(Agreement {
        sequences: cases,
        operations,
        seed,
    })
}

/// What the generator is asked for.
enum Step {
    /// A new sequence.
    Next,
    /// A simpler one than the last answer (after it failed).
    Simplify,
    /// A less simple one (after the last simpler one passed).
    Complicate,
}

/// Draws sequences from a seed and shrinks them, on a thread of its own:
/// proptest's runner and value trees are not `Send`, and a case's future
/// must be. Each answer takes microseconds.
struct Generator {
    ask: std::sync::mpsc::Sender<Step>,
    answer: std::sync::mpsc::Receiver<Option<Vec<Op>>>,
}

impl Generator {
    fn start(seed: u64) -> Self {
        let (ask, steps) = std::sync::mpsc::channel::<Step>();
        let (tell, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut seed_bytes = [0u8; 32];
            seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
            let mut runner = TestRunner::new_with_rng(
                Config {
                    failure_persistence: None,
                    ..Config::default()
                },
                TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
            );
            let strategy = sequence();
            let mut tree = None;
            for step in steps {
                let out = match step {
                    Step::Next => match strategy.new_tree(&mut runner) {
                        Ok(t) => {
                            let v = t.current();
                            tree = Some(t);
                            Some(v)
                        }
                        Err(_) => None,
                    },
                    Step::Simplify => tree
                        .as_mut()
                        .and_then(|t| t.simplify().then(|| t.current())),
                    Step::Complicate => tree
                        .as_mut()
                        .and_then(|t| t.complicate().then(|| t.current())),
                };
                if tell.send(out).is_err() {
                    break;
                }
            }
        });
        Generator { ask, answer }
    }

    fn ask(&self, step: Step) -> Option<Vec<Op>> {
        self.ask.send(step).ok()?;
        self.answer.recv().ok().flatten()
    }
}

/// The memory oracle, declaring the capabilities of the store it is
/// compared with, so both refuse an undeclared part alike.
#[derive(Debug)]
pub struct Declaring {
    inner: Arc<dyn Store>,
    capabilities: Capabilities,
}

impl Declaring {
    /// `inner`, declaring `capabilities`.
    pub fn wrap(inner: Arc<dyn Store>, capabilities: Capabilities) -> Arc<dyn Store> {
        Arc::new(Declaring {
            inner,
            capabilities,
        })
    }
}

impl persistkit_core::layer::Layer for Declaring {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}
impl persistkit_core::layer::ForwardMetrics for Declaring {}
impl persistkit_core::layer::ForwardEvents for Declaring {}
impl persistkit_core::layer::ForwardIdempotency for Declaring {}
impl persistkit_core::layer::ForwardRecords for Declaring {}
impl persistkit_core::layer::ForwardBatches for Declaring {}
impl persistkit_core::layer::ForwardAdmin for Declaring {
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
}

/// Run `cases` random sequences (or `PERSISTKIT_DIFF_CASES`) against `other`,
/// with the seed from `PERSISTKIT_DIFF_SEED` or a fresh one, printed on
/// failure. Panics with the minimal failing sequence.
pub fn run(rt: &tokio::runtime::Handle, oracle: Arc<dyn Store>, other: Arc<dyn Store>, cases: u32) {
    let cases = cases_from_env(cases);
    let seed = seed_from_env();
    match rt.block_on(check(&oracle, &other, cases, seed)) {
        Ok(a) => eprintln!(
            "differential: {} sequences ({} operations) agree between memory and {} (seed {seed})",
            a.sequences,
            a.operations,
            other.backend_name()
        ),
        Err(d) => panic!("memory and {} disagree: {d}", other.backend_name()),
    }
}
