//! Bounded retries with exponential backoff and jitter, on `backon`.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::error::Result;

/// How a [`Handle`](crate::Handle) retries calls that fail with
/// `Unavailable`: up to `max_attempts` in all, sleeping between them from
/// `min_delay`, doubling up to `max_delay`, each pause jittered.
///
/// Non-exhaustive: start from `RetryPolicy::default()` (or `new()`) and
/// set what you need, `RetryPolicy::new().max_attempts(6)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means no retry).
    pub max_attempts: u32,
    /// The first pause.
    pub min_delay: Duration,
    /// The longest pause.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, pauses from 50 ms up to 2 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attempts in all, the first included (1 means no retry).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The first pause.
    pub fn min_delay(mut self, d: Duration) -> Self {
        self.min_delay = d;
        self
    }

    /// The longest pause.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// The pauses between attempts.
    pub(crate) fn delays(&self) -> impl Iterator<Item = Duration> {
        backoff(
            self.min_delay,
            self.max_delay,
            self.max_attempts.saturating_sub(1),
        )
    }
}

/// Jittered, doubling pauses from `min` to `max`, `times` of them.
pub(crate) fn backoff(min: Duration, max: Duration, times: u32) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_max_times(times as usize)
        .with_jitter()
        .build()
}

/// Run `call`, again after each pause of `policy` while it fails with a
/// retryable error; once without a policy.
pub(crate) async fn run<T, F, Fut>(policy: Option<RetryPolicy>, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut delays = policy.map(|p| p.delays());
    loop {
        match call().await {
            Err(e) if e.is_retryable() => match delays.as_mut().and_then(Iterator::next) {
                Some(pause) => {
                    tracing::debug!(error = %e, ?pause, "retrying after an unavailable store");
                    tokio::time::sleep(pause).await;
                }
                None => return Err(e),
            },
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn retries_only_unavailable_and_stops_at_the_bound() {
        let policy = RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let calls = AtomicU32::new(0);
        let r: Result<()> = run(Some(policy), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::unavailable("down"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let r: Result<()> = run(Some(policy), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::invalid("bad"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "bad input is never retried"
        );

        calls.store(0, Ordering::SeqCst);
        let r = run(Some(policy), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(Error::unavailable("blip")),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(r.unwrap(), 1);

        calls.store(0, Ordering::SeqCst);
        let r: Result<()> = run(None, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::unavailable("down"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no policy, no retry");
    }
}
