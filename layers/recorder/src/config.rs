//! How a recorder queues and writes.

use std::time::Duration;

/// What recording does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the point and count it (the default): the caller never waits.
    Drop,
    /// Wait for room up to this long, then drop and count. The wait blocks
    /// the recording thread (briefly spinning, then sleeping); a batch
    /// written with [`Recorder::write`](super::Recorder::write) waits asynchronously.
    Wait(Duration),
}

/// How a [`Recorder`](super::Recorder) queues and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecorderConfig {
    /// Queue bound, in entries: a point, or one batch given to
    /// [`Recorder::write`](super::Recorder::write). Default 65 536.
    pub capacity: usize,
    /// Write as soon as this many entries are queued. Default 10 000.
    pub batch_size: usize,
    /// Write whatever is queued at least this often. Default 200 ms.
    pub interval: Duration,
    /// What to do when the queue is full. Default [`Overflow::Drop`].
    pub overflow: Overflow,
    /// Retries of a failed batch before its points are dropped. Default 5.
    pub max_retries: usize,
    /// Delay before the first retry; it doubles, with jitter, up to 5 s.
    /// Default 50 ms.
    pub retry_delay: Duration,
    /// How often the background task reads the clock and checks the
    /// queue. Default 1 ms.
    pub clock_tick: Duration,
}

/// Setters for every option, so adding one never breaks a caller
/// (the struct is `#[non_exhaustive]`): `RecorderConfig::default().batch_size(n)`.
impl RecorderConfig {
    /// The queue bound, in entries.
    pub fn capacity(mut self, v: usize) -> Self {
        self.capacity = v;
        self
    }

    /// Write as soon as this many entries are queued.
    pub fn batch_size(mut self, v: usize) -> Self {
        self.batch_size = v;
        self
    }

    /// Write whatever is queued at least this often.
    pub fn interval(mut self, v: Duration) -> Self {
        self.interval = v;
        self
    }

    /// What to do when the queue is full.
    pub fn overflow(mut self, v: Overflow) -> Self {
        self.overflow = v;
        self
    }

    /// Retries of a failed batch before its points are dropped.
    pub fn max_retries(mut self, v: usize) -> Self {
        self.max_retries = v;
        self
    }

    /// The delay before the first retry.
    pub fn retry_delay(mut self, v: Duration) -> Self {
        self.retry_delay = v;
        self
    }

    /// How often the background task reads the clock and checks the queue.
    pub fn clock_tick(mut self, v: Duration) -> Self {
        self.clock_tick = v;
        self
    }
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            capacity: 65_536,
            batch_size: 10_000,
            interval: Duration::from_millis(200),
            overflow: Overflow::Drop,
            max_retries: 5,
            retry_delay: Duration::from_millis(50),
            clock_tick: Duration::from_millis(1),
        }
    }
}
