//! Timestamps (UTC, microsecond precision, years 1..=9999) and the clock.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A UTC instant with microsecond precision, between year 1 and year 9999.
///
/// Finer input is truncated toward the past, so a value read back is equal on
/// every backend. Out-of-range input is `InvalidInput`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// 0001-01-01T00:00:00.000000Z.
    pub const MIN: Timestamp = Timestamp(-62_135_596_800 * 1_000_000);
    /// 9999-12-31T23:59:59.999999Z.
    pub const MAX: Timestamp = Timestamp(253_402_300_799 * 1_000_000 + 999_999);
    /// The Unix epoch.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// From microseconds since the Unix epoch.
    ///
    /// # Errors
    /// `InvalidInput` outside years 1..=9999.
    pub fn from_micros(micros: i64) -> Result<Self> {
        if !(Self::MIN.0..=Self::MAX.0).contains(&micros) {
            return Err(Error::invalid(format!(
                "timestamp {micros}µs is outside years 1..=9999"
            )));
        }
        Ok(Timestamp(micros))
    }

    /// From nanoseconds since the Unix epoch, truncated toward the past.
    ///
    /// # Errors
    /// `InvalidInput` outside years 1..=9999.
    pub fn from_nanos(nanos: i128) -> Result<Self> {
        let micros = nanos.div_euclid(1_000);
        let micros = i64::try_from(micros)
            .map_err(|_| Error::invalid("timestamp is outside years 1..=9999"))?;
        Self::from_micros(micros)
    }

    /// From whole seconds since the Unix epoch.
    ///
    /// # Errors
    /// `InvalidInput` outside years 1..=9999.
    pub fn from_secs(secs: i64) -> Result<Self> {
        Self::from_nanos(i128::from(secs) * 1_000_000_000)
    }

    /// From a chrono time, truncated to the microsecond toward the past.
    ///
    /// # Errors
    /// `InvalidInput` outside years 1..=9999.
    pub fn from_datetime<Tz: TimeZone>(t: &DateTime<Tz>) -> Result<Self> {
        let secs = i128::from(t.timestamp());
        let nanos = i128::from(t.timestamp_subsec_nanos());
        Self::from_nanos(secs * 1_000_000_000 + nanos)
    }

    /// Parse RFC 3339 (`2024-05-01T12:00:00.123456Z`), truncating finer digits.
    ///
    /// # Errors
    /// `InvalidInput` when it does not parse or is out of range.
    pub fn parse(s: &str) -> Result<Self> {
        let t = DateTime::parse_from_rfc3339(s).map_err(|e| {
            Error::invalid(format!("timestamp {s:?} is not RFC 3339")).with_source(e)
        })?;
        Self::from_datetime(&t)
    }

    /// The current system time.
    pub fn now() -> Self {
        Self::from_datetime(&Utc::now()).expect("system clock is within years 1..=9999")
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// As a chrono `DateTime<Utc>`.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).expect("range checked on construction")
    }

    /// `self + d`.
    ///
    /// # Errors
    /// `InvalidInput` when the result leaves years 1..=9999.
    pub fn checked_add(self, d: Duration) -> Result<Self> {
        let add =
            i64::try_from(d.as_micros()).map_err(|_| Error::invalid("duration is too long"))?;
        let v = self
            .0
            .checked_add(add)
            .ok_or_else(|| Error::invalid("timestamp overflow"))?;
        Self::from_micros(v)
    }

    /// `self - d`, clamped to [`Timestamp::MIN`].
    pub fn saturating_sub(self, d: Duration) -> Self {
        let sub = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(sub).max(Self::MIN.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<DateTime<Utc>> for Timestamp {
    type Error = Error;
    fn try_from(t: DateTime<Utc>) -> Result<Self> {
        Timestamp::from_datetime(&t)
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> Self {
        t.to_datetime()
    }
}

/// Where "now" comes from, for idempotency expiry, retention cut-offs and
/// record timestamps. Inject a [`ManualClock`] so tests never sleep.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.as_micros())))
    }

    /// Move forward by `d`.
    pub fn advance(&self, d: Duration) {
        let add = i64::try_from(d.as_micros()).expect("duration fits in i64 micros");
        self.0.fetch_add(add, Ordering::SeqCst);
    }

    /// Jump to `t`.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.as_micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_toward_the_past() {
        assert_eq!(Timestamp::from_nanos(1_999).unwrap().as_micros(), 1);
        assert_eq!(Timestamp::from_nanos(-1).unwrap().as_micros(), -1);
        assert_eq!(Timestamp::from_nanos(-1_001).unwrap().as_micros(), -2);
        let t = Timestamp::parse("2024-01-02T03:04:05.123456789Z").unwrap();
        assert_eq!(t.to_string(), "2024-01-02T03:04:05.123456Z");
    }

    #[test]
    fn range_is_years_1_to_9999() {
        assert_eq!(Timestamp::MIN.to_string(), "0001-01-01T00:00:00.000000Z");
        assert_eq!(Timestamp::MAX.to_string(), "9999-12-31T23:59:59.999999Z");
        assert!(Timestamp::from_micros(Timestamp::MAX.as_micros() + 1).is_err());
        assert!(Timestamp::from_micros(Timestamp::MIN.as_micros() - 1).is_err());
        assert!(Timestamp::parse("0000-12-31T23:59:59Z").is_err());
    }

    #[test]
    fn serde_round_trip() {
        let t = Timestamp::from_micros(1_700_000_000_123_456).unwrap();
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, "\"2023-11-14T22:13:20.123456Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&s).unwrap(), t);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::UNIX_EPOCH);
        let c2 = c.clone();
        c.advance(Duration::from_secs(2));
        assert_eq!(c2.now().as_micros(), 2_000_000);
    }
}
