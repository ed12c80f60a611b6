//! The `metrics` crate facade: an application's `counter!`, `gauge!` and
//! `histogram!` calls persisted through a [`Recorder`].
//!
//! Install it in one line, at start-up:
//!
//! ```no_run
//! # fn demo(rec: persistkit_recorder::Recorder) -> persistkit_core::Result<()> {
//! persistkit_recorder::MetricsFacade::install(rec)?;
//! metrics::counter!("http.requests", "method" => "GET").increment(1);
//! # Ok(()) }
//! ```
//!
//! # How a `metrics` key becomes a series
//! - **component**: the value of the label `component` when there is one;
//!   otherwise the key's name up to its first `.`; otherwise `app`.
//! - **name**: the key's name (without that `component.` prefix), followed,
//!   when the key has other labels, by them sorted by label name as
//!   `{k1=v1,k2=v2}`. `http.requests` with `method=GET` is component
//!   `http`, name `requests{method=GET}`.
//! - **kind**: a counter writes counter points whose value is the
//!   increment (`absolute(v)` writes the rise since the last value seen); a
//!   gauge writes gauge points holding its value after each change; a
//!   histogram writes one gauge point per sample, so its percentiles come
//!   from an aggregation with quantiles.
//!
//! A key whose component or name breaks the naming rules (over 255 bytes,
//! control characters) gets a no-op handle and a warning, once.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use metrics::{Key, KeyName, Metadata, SharedString, Unit};

use super::{Counter, Gauge, Recorder};
use persistkit_core::error::{Error, Result};

type Cache<T> = ArcSwap<hashbrown::HashMap<Key, Arc<T>>>;

/// A `metrics::Recorder` writing through a persistkit [`Recorder`].
pub struct MetricsFacade {
    recorder: Recorder,
    counters: Cache<FacadeCounter>,
    gauges: Cache<FacadeGauge>,
    histograms: Cache<FacadeGauge>,
    register: Mutex<()>,
}

impl std::fmt::Debug for MetricsFacade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsFacade")
            .field("recorder", &self.recorder)
            .finish_non_exhaustive()
    }
}

impl MetricsFacade {
    /// A facade over `recorder`.
    pub fn new(recorder: Recorder) -> Self {
        MetricsFacade {
            recorder,
            counters: ArcSwap::default(),
            gauges: ArcSwap::default(),
            histograms: ArcSwap::default(),
            register: Mutex::new(()),
        }
    }

    /// Make `recorder` the process's global `metrics` recorder.
    ///
    /// # Errors
    /// `InvalidInput` when a global recorder is already installed.
    pub fn install(recorder: Recorder) -> Result<()> {
        metrics::set_global_recorder(MetricsFacade::new(recorder)).map_err(|_| {
            Error::invalid("a global metrics recorder is already installed in this process")
        })
    }

    /// The (component, name) a `metrics` key is written under (see the
    /// module documentation).
    pub fn series_of(key: &Key) -> (String, String) {
        let mut component = None;
        let mut labels: Vec<(&str, &str)> = Vec::new();
        for l in key.labels() {
            if l.key() == "component" && component.is_none() {
                component = Some(l.value().to_string());
            } else {
                labels.push((l.key(), l.value()));
            }
        }
        let full = key.name();
        let (component, name) = match component {
            Some(c) => (c, full.to_string()),
            None => match full.split_once('.') {
                Some((c, rest)) if !c.is_empty() && !rest.is_empty() => {
                    (c.to_string(), rest.to_string())
                }
                _ => ("app".to_string(), full.to_string()),
            },
        };
        if labels.is_empty() {
            return (component, name);
        }
        labels.sort_unstable();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        (component, format!("{name}{{{}}}", labels.join(",")))
    }

    fn cached<T>(
        &self,
        cache: &Cache<T>,
        key: &Key,
        make: impl FnOnce(&str, &str) -> Result<T>,
    ) -> Option<Arc<T>> {
        if let Some(h) = cache.load().get(key) {
            return Some(h.clone());
        }
        let _one = self.register.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = cache.load().get(key) {
            return Some(h.clone());
        }
        let (component, name) = Self::series_of(key);
        match make(&component, &name) {
            Ok(h) => {
                let h = Arc::new(h);
                let mut map = hashbrown::HashMap::clone(&cache.load());
                map.insert(key.clone(), h.clone());
                cache.store(Arc::new(map));
                Some(h)
            }
            Err(e) => {
                tracing::warn!(key = %key.name(), error = %e, "metrics key not recorded");
                None
            }
        }
    }
}

impl metrics::Recorder for MetricsFacade {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        match self.cached(&self.counters, key, |c, n| {
            Ok(FacadeCounter {
                counter: self.recorder.counter(c, n)?,
                total: AtomicU64::new(0),
            })
        }) {
            Some(h) => metrics::Counter::from_arc(h),
            None => metrics::Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        match self.cached(&self.gauges, key, |c, n| {
            Ok(FacadeGauge {
                gauge: self.recorder.gauge_handle(c, n)?,
                value: AtomicU64::new(0f64.to_bits()),
            })
        }) {
            Some(h) => metrics::Gauge::from_arc(h),
            None => metrics::Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        match self.cached(&self.histograms, key, |c, n| {
            Ok(FacadeGauge {
                gauge: self.recorder.gauge_handle(c, n)?,
                value: AtomicU64::new(0f64.to_bits()),
            })
        }) {
            Some(h) => metrics::Histogram::from_arc(h),
            None => metrics::Histogram::noop(),
        }
    }
}

/// A counter: increments become counter points.
struct FacadeCounter {
    counter: Counter,
    /// The running total, for `absolute`.
    total: AtomicU64,
}

impl metrics::CounterFn for FacadeCounter {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Relaxed);
        self.counter.incr(value);
    }

    fn absolute(&self, value: u64) {
        let before = self.total.fetch_max(value, Relaxed);
        if value > before {
            self.counter.incr(value - before);
        }
    }
}

/// A gauge (or a histogram): each change writes the value after it.
struct FacadeGauge {
    gauge: Gauge,
    value: AtomicU64,
}

impl FacadeGauge {
    fn change(&self, f: impl Fn(f64) -> f64) {
        let mut now = self.value.load(Relaxed);
        loop {
            let next = f(f64::from_bits(now));
            match self
                .value
                .compare_exchange_weak(now, next.to_bits(), Relaxed, Relaxed)
            {
                Ok(_) => {
                    self.gauge.set(next);
                    return;
                }
                Err(seen) => now = seen,
            }
        }
    }
}

impl metrics::GaugeFn for FacadeGauge {
    fn increment(&self, value: f64) {
        self.change(|v| v + value);
    }
    fn decrement(&self, value: f64) {
        self.change(|v| v - value);
    }
    fn set(&self, value: f64) {
        self.value.store(value.to_bits(), Relaxed);
        self.gauge.set(value);
    }
}

impl metrics::HistogramFn for FacadeGauge {
    fn record(&self, value: f64) {
        self.gauge.set(value);
    }
}
