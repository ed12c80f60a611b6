//! Idempotency keys: one live claim per key, completion, release.

use std::ops::Bound;

use async_trait::async_trait;
use persistkit_core::backend::{check_live_claim, lost_claim};
use persistkit_core::op::{ClaimKey, CompleteKey, ExtendKey, GetKey, ReleaseKey, ScanKeys};
use persistkit_core::{Claim, Cx, IdempotencyEntry, IdempotencyStore, Result};

use crate::store::BTreeStore;

#[async_trait]
impl IdempotencyStore for BTreeStore {
    async fn claim(&self, cx: &Cx, op: &ClaimKey<'_>) -> Result<Claim> {
        let now = cx.now();
        let mut s = self.lock()?;
        let keys = &mut s.spaces.entry(cx.ns().to_string()).or_default().keys;
        let k = (op.scope.to_string(), op.key.to_string());
        if let Some(live) = lost_claim(keys.get(&k), op, now)? {
            return Ok(live);
        }
        keys.insert(
            k,
            IdempotencyEntry {
                scope: op.scope.into(),
                key: op.key.into(),
                token: op.token.into(),
                claimed_at: now,
                expires_at: op.expires_at,
                response: None,
                fingerprint: op.fingerprint.map(str::to_string),
            },
        );
        Ok(Claim::Acquired {
            token: op.token.into(),
            expires_at: op.expires_at,
        })
    }

    async fn complete(&self, cx: &Cx, op: &CompleteKey<'_>) -> Result<()> {
        let mut s = self.lock()?;
        let keys = &mut s.spaces.entry(cx.ns().to_string()).or_default().keys;
        let entry = keys.get_mut(&(op.scope.to_string(), op.key.to_string()));
        check_live_claim(
            entry.as_deref(),
            op.scope,
            op.key,
            op.token,
            cx.now(),
            "completed again",
        )?;
        if let Some(e) = entry {
            e.response = Some(op.response.clone());
        }
        Ok(())
    }

    async fn release(&self, cx: &Cx, op: &ReleaseKey<'_>) -> Result<()> {
        let mut s = self.lock()?;
        let keys = &mut s.spaces.entry(cx.ns().to_string()).or_default().keys;
        let k = (op.scope.to_string(), op.key.to_string());
        check_live_claim(
            keys.get(&k),
            op.scope,
            op.key,
            op.token,
            cx.now(),
            "released",
        )?;
        keys.remove(&k);
        Ok(())
    }

    async fn extend(&self, cx: &Cx, op: &ExtendKey<'_>) -> Result<()> {
        let mut s = self.lock()?;
        let keys = &mut s.spaces.entry(cx.ns().to_string()).or_default().keys;
        let entry = keys.get_mut(&(op.scope.to_string(), op.key.to_string()));
        check_live_claim(
            entry.as_deref(),
            op.scope,
            op.key,
            op.token,
            cx.now(),
            "extended",
        )?;
        if let Some(e) = entry {
            e.expires_at = op.expires_at;
        }
        Ok(())
    }

    async fn get_key(&self, cx: &Cx, op: &GetKey<'_>) -> Result<Option<IdempotencyEntry>> {
        let s = self.lock()?;
        Ok(s.spaces
            .get(cx.ns())
            .and_then(|sp| sp.keys.get(&(op.scope.to_string(), op.key.to_string())))
            .cloned())
    }

    async fn scan_keys(&self, cx: &Cx, op: &ScanKeys<'_>) -> Result<Vec<IdempotencyEntry>> {
        let s = self.lock()?;
        let Some(space) = s.spaces.get(cx.ns()) else {
            return Ok(Vec::new());
        };
        let lower = match op.after {
            Some((sc, k)) => Bound::Excluded((sc.to_string(), k.to_string())),
            None => Bound::Unbounded,
        };
        Ok(space
            .keys
            .range((lower, Bound::Unbounded))
            .take(op.limit)
            .map(|(_, e)| e.clone())
            .collect())
    }
}
