//! Idempotency keys: exactly one claimer wins.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cx::Cx;
use crate::error::{Error, Result};
use crate::time::Timestamp;

pub mod op;

use op::{ClaimKey, CompleteKey, ExtendKey, GetKey, ReleaseKey, ScanKeys};

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Claim {
    /// This caller owns the key until `expires_at`; keep the token to complete
    /// or release it.
    Acquired {
        /// Proof of ownership.
        token: String,
        /// When the claim lapses.
        expires_at: Timestamp,
    },
    /// Somebody holds or has completed the key.
    Exists {
        /// In progress, or completed with its response.
        state: KeyState,
        /// When the live claim was made.
        claimed_at: Timestamp,
        /// When it lapses.
        expires_at: Timestamp,
    },
}

impl Claim {
    /// True for [`Claim::Acquired`].
    pub fn is_acquired(&self) -> bool {
        matches!(self, Claim::Acquired { .. })
    }

    /// The token, when acquired.
    pub fn token(&self) -> Option<&str> {
        match self {
            Claim::Acquired { token, .. } => Some(token),
            Claim::Exists { .. } => None,
        }
    }
}

/// The state of a key somebody else holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum KeyState {
    /// Claimed, not completed yet.
    InProgress,
    /// Completed; replay `response`.
    Completed {
        /// The stored outcome.
        response: Value,
    },
}

/// A stored key, whole (for export and import).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyEntry {
    /// Scope.
    pub scope: String,
    /// Key.
    pub key: String,
    /// Owner's token.
    pub token: String,
    /// When claimed.
    pub claimed_at: Timestamp,
    /// When it lapses.
    pub expires_at: Timestamp,
    /// The stored response, once completed.
    pub response: Option<Value>,
    /// The fingerprint of the request the key was claimed for, if the
    /// claim carried one (IDM-7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// A live key as an observer sees it ([`Handle::key_state`](crate::Handle::key_state)):
/// its state and times, never its owner's token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyStatus {
    /// In progress, or completed with its response.
    pub state: KeyState,
    /// When it was claimed.
    pub claimed_at: Timestamp,
    /// When it lapses.
    pub expires_at: Timestamp,
}

impl IdempotencyEntry {
    /// The entry as it stands at `now`: `None` once it has expired (a
    /// claim would take it over).
    pub fn status(&self, now: Timestamp) -> Option<KeyStatus> {
        if self.expires_at <= now {
            return None;
        }
        let state = match &self.response {
            Some(response) => KeyState::Completed {
                response: response.clone(),
            },
            None => KeyState::InProgress,
        };
        Some(KeyStatus {
            state,
            claimed_at: self.claimed_at,
            expires_at: self.expires_at,
        })
    }

    /// What a claimer that lost to this entry is told at `now`: the live
    /// claim and its state, or `None` when the entry has expired (and may
    /// be taken over). It does not compare fingerprints; a backend answers
    /// a claim with [`lost_claim`].
    pub fn live_claim(&self, now: Timestamp) -> Option<Claim> {
        self.status(now).map(|s| Claim::Exists {
            state: s.state,
            claimed_at: s.claimed_at,
            expires_at: s.expires_at,
        })
    }
}

/// What the claim `op` is told at `now` when `entry` is what holds its key
/// (read after the claim's insert or takeover did not take): `Ok(None)`
/// when there is no live key (an expired key can be taken over: try
/// again), the live claim and its state when the fingerprints agree (IDM-7:
/// none on both sides agrees), and `Conflict` when the key was claimed for
/// another request. That answer serves neither the stored response nor the
/// token.
///
/// # Errors
/// `Conflict` when the fingerprints differ.
pub fn lost_claim(
    entry: Option<&IdempotencyEntry>,
    op: &ClaimKey<'_>,
    now: Timestamp,
) -> Result<Option<Claim>> {
    let Some(entry) = entry else {
        return Ok(None);
    };
    let Some(live) = entry.live_claim(now) else {
        return Ok(None);
    };
    if entry.fingerprint.as_deref() != op.fingerprint {
        let (scope, key) = (op.scope, op.key);
        return Err(Error::conflict(
            None,
            format!(
                "idempotency key {scope:?}/{key:?} was used for another request: its \
                 fingerprint differs from this claim's; use a new key for a new request"
            ),
        ));
    }
    Ok(Some(live))
}

/// Idempotency primitives a backend implements. Inputs arrive validated and
/// `now` comes from the handle's clock.
///
/// # Contract
/// - `claim` inserts `(scope, key)` with `token`, or takes over a key whose
///   `expires_at <= now`; otherwise it reports the live key. Among concurrent
///   claimers of one live key exactly one acquires.
/// - A claim that loses reports the live key only when its fingerprint
///   equals the key's ([`lost_claim`]); otherwise it is `Conflict`. A
///   takeover stores the new claim's fingerprint, or none.
/// - `complete`, `release` and `extend` need the live key's token, and a
///   key that is not completed.
///
/// # Errors
/// `NotFound` when the key is absent or expired; `Conflict` for a wrong token,
/// completing twice, releasing or extending a completed key, or a claim
/// whose fingerprint differs from the live key's.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claim a key.
    async fn claim(&self, cx: &Cx, op: &ClaimKey<'_>) -> Result<Claim>;
    /// Store the outcome.
    async fn complete(&self, cx: &Cx, op: &CompleteKey<'_>) -> Result<()>;
    /// Give the key up.
    async fn release(&self, cx: &Cx, op: &ReleaseKey<'_>) -> Result<()>;
    /// Let an in-progress claim lapse at `op.expires_at` instead; its
    /// token, claim time and fingerprint stay.
    async fn extend(&self, cx: &Cx, op: &ExtendKey<'_>) -> Result<()>;
    /// The entry of `(scope, key)`, expired or not, or `None`. Reads only:
    /// it never claims, takes over or changes anything.
    async fn get_key(&self, cx: &Cx, op: &GetKey<'_>) -> Result<Option<IdempotencyEntry>>;
    /// Keys after `(scope, key)`, ordered by `(scope, key)` byte-wise, expired
    /// ones included.
    async fn scan_keys(&self, cx: &Cx, op: &ScanKeys<'_>) -> Result<Vec<IdempotencyEntry>>;
}

/// Whether `complete` or `release` with `token` may act on `entry` at `now`:
/// the key must exist, be live, carry that token and not be completed.
///
/// # Errors
/// `NotFound` for an absent or expired key; `Conflict` for a wrong token or a
/// completed key. SQL backends call this after their conditional statement
/// matched nothing, with the row read back, so every backend explains a miss
/// the same way.
pub fn check_live_claim(
    entry: Option<&IdempotencyEntry>,
    scope: &str,
    key: &str,
    token: &str,
    now: Timestamp,
    action: &str,
) -> Result<()> {
    match entry {
        None => Err(Error::not_found(format!(
            "idempotency key {scope:?}/{key:?} does not exist"
        ))),
        Some(e) if e.expires_at <= now => Err(Error::not_found(format!(
            "idempotency key {scope:?}/{key:?} has expired"
        ))),
        Some(e) if e.token != token => Err(Error::conflict(
            None,
            "idempotency token does not match the live claim",
        )),
        Some(e) if e.response.is_some() => Err(Error::conflict(
            None,
            format!("idempotency key {scope:?}/{key:?} is completed; it cannot be {action}"),
        )),
        Some(_) => Ok(()),
    }
}
