//! The operations on idempotency keys, as a backend receives them.

use serde_json::Value;

use crate::time::Timestamp;

/// Claim a key (IDM-1): acquire it unless a live claim holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimKey<'a> {
    /// The key's scope.
    pub scope: &'a str,
    /// The key.
    pub key: &'a str,
    /// The token the claim is acquired with.
    pub token: &'a str,
    /// When the claim expires.
    pub expires_at: Timestamp,
    /// What identifies the request the key is claimed for (IDM-7), such as
    /// a hash of its body: stored with an acquired claim, compared with the
    /// live key's otherwise.
    pub fingerprint: Option<&'a str>,
}

impl<'a> ClaimKey<'a> {
    /// Claim `(scope, key)` with `token` until `expires_at`, with no
    /// fingerprint.
    pub fn new(scope: &'a str, key: &'a str, token: &'a str, expires_at: Timestamp) -> Self {
        ClaimKey {
            scope,
            key,
            token,
            expires_at,
            fingerprint: None,
        }
    }

    /// The same claim, for the request `fingerprint` identifies.
    pub fn with_fingerprint(mut self, fingerprint: Option<&'a str>) -> Self {
        self.fingerprint = fingerprint;
        self
    }
}

/// Complete a live claim with its response (IDM-2).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CompleteKey<'a> {
    /// The key's scope.
    pub scope: &'a str,
    /// The key.
    pub key: &'a str,
    /// The token the claim holds.
    pub token: &'a str,
    /// The response to replay.
    pub response: &'a Value,
}

impl<'a> CompleteKey<'a> {
    /// Complete `(scope, key)`, held by `token`, with `response`.
    pub fn new(scope: &'a str, key: &'a str, token: &'a str, response: &'a Value) -> Self {
        CompleteKey {
            scope,
            key,
            token,
            response,
        }
    }
}

/// Release a live claim (IDM-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReleaseKey<'a> {
    /// The key's scope.
    pub scope: &'a str,
    /// The key.
    pub key: &'a str,
    /// The token the claim holds.
    pub token: &'a str,
}

impl<'a> ReleaseKey<'a> {
    /// Release `(scope, key)`, held by `token`.
    pub fn new(scope: &'a str, key: &'a str, token: &'a str) -> Self {
        ReleaseKey { scope, key, token }
    }
}

/// Move the expiry of an in-progress claim (IDM-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtendKey<'a> {
    /// The key's scope.
    pub scope: &'a str,
    /// The key.
    pub key: &'a str,
    /// The token the claim holds.
    pub token: &'a str,
    /// When the claim lapses from now on.
    pub expires_at: Timestamp,
}

impl<'a> ExtendKey<'a> {
    /// Let the claim `token` holds on `(scope, key)` lapse at `expires_at`.
    pub fn new(scope: &'a str, key: &'a str, token: &'a str, expires_at: Timestamp) -> Self {
        ExtendKey {
            scope,
            key,
            token,
            expires_at,
        }
    }
}

/// Look at a key, claiming nothing (IDM-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetKey<'a> {
    /// The key's scope.
    pub scope: &'a str,
    /// The key.
    pub key: &'a str,
}

impl<'a> GetKey<'a> {
    /// The entry of `(scope, key)`.
    pub fn new(scope: &'a str, key: &'a str) -> Self {
        GetKey { scope, key }
    }
}

/// Page through every key of a namespace, ordered by (scope, key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanKeys<'a> {
    /// Keys after this (scope, key), exclusive.
    pub after: Option<(&'a str, &'a str)>,
    /// At most this many.
    pub limit: usize,
}

impl<'a> ScanKeys<'a> {
    /// At most `limit` keys after `after`.
    pub fn new(after: Option<(&'a str, &'a str)>, limit: usize) -> Self {
        ScanKeys { after, limit }
    }
}
