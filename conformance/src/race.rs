//! Races that do not depend on luck: contenders start together, on threads
//! of their own, round after round, until a round or time budget is spent.
//!
//! A race case that passes once proves little: the bad interleaving may not
//! have happened. So every race case repeats its round, each time with the
//! contenders released from a spinning barrier at the same instant, and
//! stops at the first broken round. The budget comes from the environment:
//! `PERSISTKIT_RACE_ROUNDS` (most rounds, default 500) and
//! `PERSISTKIT_RACE_SECONDS` (most seconds per case, default 1).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::outcome::CaseError;

/// Environment variable: the most rounds a race case runs.
pub const RACE_ROUNDS_ENV: &str = "PERSISTKIT_RACE_ROUNDS";
/// Environment variable: the most seconds a race case spends on rounds.
pub const RACE_SECONDS_ENV: &str = "PERSISTKIT_RACE_SECONDS";
const DEFAULT_ROUNDS: usize = 500;
const DEFAULT_SECONDS: f64 = 1.0;

/// How long a race case keeps trying.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    rounds: usize,
    time: Duration,
}

impl Budget {
    /// From `PERSISTKIT_RACE_ROUNDS` and `PERSISTKIT_RACE_SECONDS`.
    pub(crate) fn from_env() -> Self {
        let rounds = std::env::var(RACE_ROUNDS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_ROUNDS);
        let secs = std::env::var(RACE_SECONDS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(DEFAULT_SECONDS);
        Budget {
            rounds,
            time: Duration::from_secs_f64(secs),
        }
    }
}

/// Contenders per round: at least two, and enough to keep every core busy.
pub(crate) fn contenders() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 4)
        * 2
}

/// Held while a race case runs its rounds: race cases in one process take
/// turns, so their contenders do not steal each other's cores and every
/// round is a real race.
static RACING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Run `round(0)`, `round(1)`, … until the budget is spent or a round
/// fails; at least one round always runs. Returns how many ran.
pub(crate) async fn rounds<F, Fut>(mut round: F) -> Result<usize, CaseError>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<(), CaseError>>,
{
    let _turn = RACING.lock().await;
    let budget = Budget::from_env();
    let started = Instant::now();
    let mut n = 0;
    while n == 0 || (n < budget.rounds && started.elapsed() < budget.time) {
        round(n).await.map_err(|e| match e {
            CaseError::Failed(m) => CaseError::Failed(format!("{m} (round {})", n + 1)),
            other => other,
        })?;
        n += 1;
    }
    Ok(n)
}

/// Run `f(0)`, …, `f(n - 1)` at the same instant, each on a blocking thread
/// of its own, released together from a spinning barrier; the results come
/// back in order.
///
/// # Errors
/// `Failed` when a contender panicked.
pub(crate) async fn together<T, F, Fut>(n: usize, f: F) -> Result<Vec<T>, CaseError>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send,
    T: Send + 'static,
{
    let rt = tokio::runtime::Handle::current();
    let f = Arc::new(f);
    let arrived = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (rt, f, arrived) = (rt.clone(), f.clone(), arrived.clone());
            tokio::task::spawn_blocking(move || {
                arrived.fetch_add(1, Ordering::AcqRel);
                let mut spins = 0u32;
                while arrived.load(Ordering::Acquire) < n {
                    if spins < 50_000 {
                        std::hint::spin_loop();
                        spins += 1;
                    } else {
                        std::thread::yield_now();
                    }
                }
                rt.block_on(f(i))
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(
            t.await
                .map_err(|e| CaseError::failed(format!("a contender panicked: {e}")))?,
        );
    }
    Ok(out)
}
