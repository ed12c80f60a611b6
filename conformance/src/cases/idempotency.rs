//! Idempotency keys: one winner, replay, release, expiry by the injected clock.

use persistkit_core::{Claim, ErrorKind, KeyState, KeyStatus, RetentionPolicy};

use super::*;
use crate::outcome::{expect_err, CaseResult};
use crate::race;
use crate::{ensure, ensure_eq, Ctx};

fn token(c: &Claim) -> Result<String, CaseError> {
    c.token()
        .map(str::to_string)
        .ok_or_else(|| CaseError::failed(format!("idempotency: expected to acquire, got {c:?}")))
}

/// The first claim acquires, with a token and `expires_at = now + ttl`.
pub async fn first_claim_acquires(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let c = h.claim("payments", "order-1", secs(60)).await?;
    match &c {
        Claim::Acquired { token, expires_at } => {
            ensure!(
                !token.is_empty(),
                "idempotency: an acquired claim carries a token"
            );
            ensure_eq!(
                *expires_at,
                t(60),
                "idempotency: expires_at = claim time + ttl (by the injected clock)"
            );
        }
        other => {
            return Err(CaseError::failed(format!(
                "idempotency: the first claim of a key acquires, got {other:?}"
            )))
        }
    }
    Ok(())
}

/// A live key reports in progress, with when it was claimed.
pub async fn live_key_reports_in_progress(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    token(&h.claim("s", "k", secs(60)).await?)?;
    ctx.advance(secs(5));
    let c = h.claim("s", "k", secs(60)).await?;
    ensure_eq!(
        c,
        Claim::Exists {
            state: KeyState::InProgress,
            claimed_at: t(0),
            expires_at: t(60)
        },
        "idempotency: a live key reports exists / in progress with when it was claimed"
    );
    Ok(())
}

/// After `complete`, claims replay the stored response.
pub async fn completed_key_replays_response(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let tok = token(&h.claim("s", "k", secs(60)).await?)?;
    let response = json!({"status": 201, "body": {"id": "abc"}});
    h.complete("s", "k", &tok, &response).await?;
    let c = h.claim("s", "k", secs(60)).await?;
    ensure_eq!(
        c,
        Claim::Exists {
            state: KeyState::Completed { response },
            claimed_at: t(0),
            expires_at: t(60)
        },
        "idempotency: later claims get exists / completed with the stored response"
    );
    Ok(())
}

/// `release` lets a retry acquire the key.
pub async fn release_lets_a_retry_acquire(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let tok = token(&h.claim("s", "k", secs(60)).await?)?;
    h.release("s", "k", &tok).await?;
    let again = h.claim("s", "k", secs(60)).await?;
    let tok2 = token(&again)?;
    ensure!(tok2 != tok, "idempotency: a new claim gets a new token");
    Ok(())
}

/// A wrong token is `Conflict` and changes nothing.
pub async fn wrong_token_conflicts(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    token(&h.claim("s", "k", secs(60)).await?)?;
    expect_err(
        h.release("s", "k", "not-the-token").await,
        ErrorKind::Conflict,
        "idempotency: release with a wrong token",
    )?;
    expect_err(
        h.complete("s", "k", "not-the-token", &json!({})).await,
        ErrorKind::Conflict,
        "idempotency: complete with a wrong token",
    )?;
    let c = h.claim("s", "k", secs(60)).await?;
    ensure!(
        matches!(
            c,
            Claim::Exists {
                state: KeyState::InProgress,
                ..
            }
        ),
        "idempotency: a wrong token leaves the key in progress, got {c:?}"
    );
    Ok(())
}

/// Completing twice, or releasing a completed key, is `Conflict`.
pub async fn completed_key_is_final(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let tok = token(&h.claim("s", "k", secs(60)).await?)?;
    h.complete("s", "k", &tok, &json!({"n": 1})).await?;
    expect_err(
        h.complete("s", "k", &tok, &json!({"n": 2})).await,
        ErrorKind::Conflict,
        "idempotency: completing twice",
    )?;
    expect_err(
        h.release("s", "k", &tok).await,
        ErrorKind::Conflict,
        "idempotency: releasing a completed key",
    )?;
    let c = h.claim("s", "k", secs(60)).await?;
    ensure!(
        matches!(&c, Claim::Exists { state: KeyState::Completed { response }, .. } if *response == json!({"n": 1})),
        "idempotency: the first response stays, got {c:?}"
    );
    Ok(())
}

/// Completing or releasing an unknown key is `NotFound`.
pub async fn unknown_key_is_not_found(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    expect_err(
        h.complete("s", "nope", "t", &json!({})).await,
        ErrorKind::NotFound,
        "idempotency: complete of an unknown key",
    )?;
    expect_err(
        h.release("s", "nope", "t").await,
        ErrorKind::NotFound,
        "idempotency: release of an unknown key",
    )?;
    ensure_empty(&h, "idempotency: calls on unknown keys").await
}

async fn race(ctx: &Ctx, two_handles: bool) -> CaseResult {
    let mut handles = vec![ctx.handle()];
    if two_handles {
        handles.push(ctx.second().await?);
    }
    let rule = |n: usize| {
        format!(
            "idempotency: among {n} concurrent claimers of one key exactly one acquires ({} handles)",
            handles.len()
        )
    };
    // One burst of 64 claimers on the runtime.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let h = handles[i % handles.len()].clone();
        let b = barrier.clone();
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            h.claim("race", "the-key", secs(60)).await
        }));
    }
    let mut acquired = 0;
    let mut exists = 0;
    for t in tasks {
        match t
            .await
            .map_err(|e| CaseError::failed(format!("task: {e}")))??
        {
            Claim::Acquired { .. } => acquired += 1,
            Claim::Exists { .. } => exists += 1,
        }
    }
    ensure_eq!(acquired, 1, "{}", rule(64));
    ensure_eq!(exists, 63, "idempotency: every other claimer sees exists");
    // Then round after round of claimers released at the same instant, each
    // round on a fresh key.
    let n = race::contenders();
    race::rounds(|round| {
        let handles = handles.clone();
        let rule = rule(n);
        async move {
            let results = race::together(n, move |i| {
                let h = handles[i % handles.len()].clone();
                async move { h.claim("race", &format!("round-{round}"), secs(60)).await }
            })
            .await?;
            let mut acquired = 0;
            for r in results {
                if r?.is_acquired() {
                    acquired += 1;
                }
            }
            ensure_eq!(acquired, 1, "{rule}");
            Ok(())
        }
    })
    .await?;
    Ok(())
}

/// 64 concurrent claimers on one handle: exactly one acquires.
pub async fn exactly_one_of_64_claimers_acquires(ctx: &Ctx) -> CaseResult {
    race(ctx, false).await
}

/// 64 concurrent claimers over two handles: exactly one acquires.
pub async fn exactly_one_acquires_across_handles(ctx: &Ctx) -> CaseResult {
    race(ctx, true).await
}

/// A key whose TTL has passed (by the injected clock) can be acquired again.
pub async fn expired_key_can_be_acquired_again(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let old = token(&h.claim("s", "k", secs(60)).await?)?;
    ctx.advance(secs(59));
    ensure!(
        !h.claim("s", "k", secs(60)).await?.is_acquired(),
        "idempotency: a key is live until its TTL passes"
    );
    ctx.advance(secs(1));
    let c = h.claim("s", "k", secs(60)).await?;
    ensure!(
        c.is_acquired(),
        "idempotency: at claimed_at + ttl the key has expired and can be acquired again, got {c:?}"
    );
    expect_err(
        h.complete("s", "k", &old, &json!({})).await,
        ErrorKind::Conflict,
        "idempotency: the expired claimer's token no longer completes the key",
    )?;
    Ok(())
}

/// A completed key expires too.
pub async fn completed_key_expires(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let tok = token(&h.claim("s", "k", secs(10)).await?)?;
    h.complete("s", "k", &tok, &json!({"ok": true})).await?;
    ctx.advance(secs(10));
    expect_err(
        h.complete("s", "k", &tok, &json!({})).await,
        ErrorKind::NotFound,
        "idempotency: an expired key is gone for complete",
    )?;
    ensure!(
        h.claim("s", "k", secs(10)).await?.is_acquired(),
        "idempotency: a completed key whose TTL passed can be acquired again"
    );
    Ok(())
}

/// `key_state` tells absent, in progress, completed and expired apart by
/// the clock, shows no token, and changes nothing: a key it looked at is
/// still claimable, and one it did not find is not created.
pub async fn key_state_is_read_only(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let rule = "idempotency: key_state reads the key's state without claiming or changing it";
    ensure_eq!(h.key_state("s", "k").await?, None, "{rule} (absent key)");
    ensure_eq!(
        h.counts().await?.idempotency_keys,
        0,
        "{rule}: looking at an absent key creates nothing"
    );
    let tok = token(&h.claim("s", "k", secs(60)).await?)?;
    ensure_eq!(
        h.key_state("s", "k").await?,
        Some(KeyStatus {
            state: KeyState::InProgress,
            claimed_at: t(0),
            expires_at: t(60)
        }),
        "{rule} (in progress)"
    );
    let response = json!({"status": 201});
    h.complete("s", "k", &tok, &response).await?;
    ctx.advance(secs(59));
    ensure_eq!(
        h.key_state("s", "k").await?,
        Some(KeyStatus {
            state: KeyState::Completed {
                response: response.clone()
            },
            claimed_at: t(0),
            expires_at: t(60)
        }),
        "{rule} (completed, with its response)"
    );
    ctx.advance(secs(1));
    ensure_eq!(
        h.key_state("s", "k").await?,
        None,
        "{rule} (expired by the clock at claimed_at + ttl)"
    );
    ensure!(
        h.claim("s", "k", secs(60)).await?.is_acquired(),
        "{rule}: an expired key it looked at can be acquired again"
    );
    ensure_eq!(
        h.key_state("s", "other").await?,
        None,
        "{rule} (another key of the scope)"
    );
    ensure!(
        h.claim("s", "other", secs(60)).await?.is_acquired(),
        "{rule}: a key it looked at first is still free to acquire"
    );
    expect_err(
        h.key_state("s", "").await,
        ErrorKind::InvalidInput,
        "idempotency: key_state checks the key name",
    )?;
    Ok(())
}

/// `purge` removes expired keys and only those.
pub async fn purge_removes_only_expired_keys(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    for k in ["a", "b", "c"] {
        h.claim("s", k, secs(10)).await?;
    }
    for k in ["d", "e"] {
        h.claim("s", k, secs(100)).await?;
    }
    ctx.advance(secs(10));
    let r = h.purge(&RetentionPolicy::default()).await?;
    ensure_eq!(
        r.idempotency_keys,
        3,
        "retention: purge removes expired idempotency keys"
    );
    ensure_eq!(
        h.counts().await?.idempotency_keys,
        2,
        "retention: live keys survive purge"
    );
    ensure!(
        !h.claim("s", "d", secs(10)).await?.is_acquired(),
        "retention: a live key is still held after purge"
    );
    Ok(())
}

/// TTL must be more than zero and at most 100 years.
pub async fn ttl_must_be_positive_and_bounded(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    expect_err(
        h.claim("s", "k", secs(0)).await,
        ErrorKind::InvalidInput,
        "idempotency: ttl of zero",
    )?;
    expect_err(
        h.claim("s", "k", persistkit_core::MAX_TTL + secs(1)).await,
        ErrorKind::InvalidInput,
        "idempotency: ttl over 100 years",
    )?;
    ensure_empty(&h, "idempotency: a rejected claim").await
}

/// A live key answers only the request it was claimed for: a claim with
/// another fingerprint, or none, is `Conflict` and is served neither the
/// state nor the stored response; the same fingerprint sees the key as a
/// plain claim does. A key claimed without a fingerprint answers only
/// claims without one.
pub async fn fingerprint_mismatch_conflicts(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let rule = "idempotency: a live key answers only the request it was claimed for";
    let tok = token(
        &h.claim_with_fingerprint("pay", "order-1", "sha256:aaa", secs(60))
            .await?,
    )?;
    ctx.advance(secs(5));
    ensure_eq!(
        h.claim_with_fingerprint("pay", "order-1", "sha256:aaa", secs(60))
            .await?,
        Claim::Exists {
            state: KeyState::InProgress,
            claimed_at: t(0),
            expires_at: t(60)
        },
        "{rule}: the same fingerprint sees the key in progress"
    );
    let e = expect_err(
        h.claim_with_fingerprint("pay", "order-1", "sha256:bbb", secs(60))
            .await,
        ErrorKind::Conflict,
        &format!("{rule} (another fingerprint, in progress)"),
    )?;
    ensure!(
        e.message().contains("another request"),
        "{rule}: the conflict says the key was used for another request, got {:?}",
        e.message()
    );
    expect_err(
        h.claim("pay", "order-1", secs(60)).await,
        ErrorKind::Conflict,
        &format!("{rule} (no fingerprint against a fingerprinted key)"),
    )?;
    let response = json!({"status": 201, "body": "charge ch_1 for 40 EUR"});
    h.complete("pay", "order-1", &tok, &response).await?;
    let e = expect_err(
        h.claim_with_fingerprint("pay", "order-1", "sha256:bbb", secs(60))
            .await,
        ErrorKind::Conflict,
        &format!("{rule} (another fingerprint, completed)"),
    )?;
    ensure!(
        !format!("{e:?}").contains("ch_1"),
        "{rule}: the stored response is not served to another request, got {e:?}"
    );
    ensure_eq!(
        h.claim_with_fingerprint("pay", "order-1", "sha256:aaa", secs(60))
            .await?,
        Claim::Exists {
            state: KeyState::Completed {
                response: response.clone()
            },
            claimed_at: t(0),
            expires_at: t(60)
        },
        "{rule}: the same fingerprint replays the stored response"
    );
    // A key claimed without a fingerprint answers only claims without one.
    token(&h.claim("pay", "order-2", secs(60)).await?)?;
    expect_err(
        h.claim_with_fingerprint("pay", "order-2", "sha256:aaa", secs(60))
            .await,
        ErrorKind::Conflict,
        &format!("{rule} (a fingerprint against a key claimed without one)"),
    )?;
    ensure!(
        matches!(
            h.claim("pay", "order-2", secs(60)).await?,
            Claim::Exists {
                state: KeyState::InProgress,
                ..
            }
        ),
        "{rule}: a claim without a fingerprint sees a key claimed without one"
    );
    Ok(())
}

/// Taking over an expired key stores the new claim's fingerprint (or
/// none): the old request's fingerprint does not survive, nor its
/// response.
pub async fn takeover_takes_the_new_fingerprint(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let rule = "idempotency: a takeover stores the new claim's fingerprint";
    let tok = token(
        &h.claim_with_fingerprint("s", "k", "req-a", secs(60))
            .await?,
    )?;
    h.complete("s", "k", &tok, &json!({"for": "a"})).await?;
    ctx.advance(secs(60));
    token(
        &h.claim_with_fingerprint("s", "k", "req-b", secs(60))
            .await?,
    )?;
    expect_err(
        h.claim_with_fingerprint("s", "k", "req-a", secs(60)).await,
        ErrorKind::Conflict,
        &format!("{rule} (the old fingerprint)"),
    )?;
    ensure_eq!(
        h.claim_with_fingerprint("s", "k", "req-b", secs(60))
            .await?,
        Claim::Exists {
            state: KeyState::InProgress,
            claimed_at: t(60),
            expires_at: t(120)
        },
        "{rule}: the new request sees its own claim, with no response carried over"
    );
    ctx.advance(secs(60));
    token(&h.claim("s", "k", secs(60)).await?)?;
    expect_err(
        h.claim_with_fingerprint("s", "k", "req-b", secs(60)).await,
        ErrorKind::Conflict,
        &format!("{rule} (a takeover without a fingerprint stores none)"),
    )?;
    ensure!(
        !h.claim("s", "k", secs(60)).await?.is_acquired(),
        "{rule}: a claim without a fingerprint sees the key taken over without one"
    );
    Ok(())
}

/// A fingerprint follows the name rules (1 to 255 bytes, no control
/// characters); a bad one is `InvalidInput` and claims nothing.
pub async fn fingerprint_rules(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let long = "f".repeat(256);
    for f in ["", "f\0", "f\n", long.as_str()] {
        expect_err(
            h.claim_with_fingerprint("s", "k", f, secs(60)).await,
            ErrorKind::InvalidInput,
            &format!("idempotency: fingerprint {f:?}"),
        )?;
    }
    ensure_empty(&h, "idempotency: a claim with a bad fingerprint").await?;
    let f = format!("é😀{}", "f".repeat(249));
    ensure_eq!(f.len(), 255, "the longest fingerprint");
    token(&h.claim_with_fingerprint("s", "k", &f, secs(60)).await?)?;
    ensure!(
        !h.claim_with_fingerprint("s", "k", &f, secs(60))
            .await?
            .is_acquired(),
        "idempotency: a 255-byte fingerprint is kept whole and matches itself"
    );
    Ok(())
}

/// `extend_claim` moves an in-progress claim's expiry to `now + ttl`:
/// the key stays live past its first expiry, keeps its token, claim time
/// and fingerprint, and can still be completed.
pub async fn extend_keeps_a_claim_live(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let rule = "idempotency: extending a claim keeps it live";
    let tok = token(
        &h.claim_with_fingerprint("jobs", "backfill", "run-7", secs(60))
            .await?,
    )?;
    ctx.advance(secs(50));
    ensure_eq!(
        h.extend_claim("jobs", "backfill", &tok, secs(60)).await?,
        t(110),
        "{rule}: the new expiry is now + ttl"
    );
    ctx.advance(secs(50));
    ensure_eq!(
        h.claim_with_fingerprint("jobs", "backfill", "run-7", secs(60))
            .await?,
        Claim::Exists {
            state: KeyState::InProgress,
            claimed_at: t(0),
            expires_at: t(110)
        },
        "{rule}: past its first expiry the key is still held, claimed at the same time"
    );
    expect_err(
        h.claim_with_fingerprint("jobs", "backfill", "run-8", secs(60))
            .await,
        ErrorKind::Conflict,
        &format!("{rule}: the fingerprint stays"),
    )?;
    ensure_eq!(
        h.extend_claim("jobs", "backfill", &tok, secs(5)).await?,
        t(105),
        "{rule}: an extension may also shorten the claim to now + ttl"
    );
    let response = json!({"done": 1000});
    h.complete("jobs", "backfill", &tok, &response).await?;
    ensure_eq!(
        h.key_state("jobs", "backfill").await?,
        Some(KeyStatus {
            state: KeyState::Completed { response },
            claimed_at: t(0),
            expires_at: t(105)
        }),
        "{rule}: the extended claim completes with its own token"
    );
    ctx.advance(secs(5));
    ensure!(
        h.claim("jobs", "backfill", secs(60)).await?.is_acquired(),
        "{rule}: at the extended expiry the key can be acquired again"
    );
    Ok(())
}

/// Only the holder of a live, in-progress claim extends it: a wrong token
/// or a completed key is `Conflict`, an absent or expired key `NotFound`,
/// a bad TTL `InvalidInput`; each leaves the key as it was.
pub async fn extend_needs_the_live_claim(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let rule = "idempotency: only the live claim's holder extends it";
    expect_err(
        h.extend_claim("s", "absent", "tok", secs(60)).await,
        ErrorKind::NotFound,
        &format!("{rule} (absent key)"),
    )?;
    ensure_empty(&h, "idempotency: extending an absent key").await?;
    let tok = token(&h.claim("s", "k", secs(60)).await?)?;
    expect_err(
        h.extend_claim("s", "k", "not-the-token", secs(600)).await,
        ErrorKind::Conflict,
        &format!("{rule} (wrong token)"),
    )?;
    for ttl in [secs(0), persistkit_core::MAX_TTL + secs(1)] {
        expect_err(
            h.extend_claim("s", "k", &tok, ttl).await,
            ErrorKind::InvalidInput,
            &format!("{rule} (ttl {ttl:?})"),
        )?;
    }
    ensure_eq!(
        h.key_state("s", "k").await?.map(|s| s.expires_at),
        Some(t(60)),
        "{rule}: refused extensions leave the expiry as it was"
    );
    h.complete("s", "k", &tok, &json!({})).await?;
    expect_err(
        h.extend_claim("s", "k", &tok, secs(600)).await,
        ErrorKind::Conflict,
        &format!("{rule} (completed key)"),
    )?;
    ensure_eq!(
        h.key_state("s", "k").await?.map(|s| s.expires_at),
        Some(t(60)),
        "{rule}: a completed key keeps its expiry"
    );
    let late = token(&h.claim("s", "late", secs(10)).await?)?;
    ctx.advance(secs(10));
    expect_err(
        h.extend_claim("s", "late", &late, secs(60)).await,
        ErrorKind::NotFound,
        &format!("{rule} (expired claim)"),
    )?;
    ensure!(
        h.claim("s", "late", secs(60)).await?.is_acquired(),
        "{rule}: an expired claim is not revived by a refused extension"
    );
    Ok(())
}

/// Scope and key follow the name rules.
pub async fn key_names_follow_the_rules(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let long = "k".repeat(256);
    for (scope, key) in [
        ("", "k"),
        ("s", ""),
        ("s\0", "k"),
        ("s", "k\u{1b}"),
        ("s", long.as_str()),
    ] {
        expect_err(
            h.claim(scope, key, secs(5)).await,
            ErrorKind::InvalidInput,
            &format!("idempotency: scope {scope:?} key {key:?}"),
        )?;
    }
    ensure_empty(&h, "idempotency: rejected names").await?;
    ensure!(
        h.claim("é😀", &"k".repeat(255), secs(5))
            .await?
            .is_acquired(),
        "idempotency: a 255-byte key is a valid name"
    );
    Ok(())
}

/// A response must be valid JSON payload; a bad one leaves the key in progress.
pub async fn complete_rejects_bad_response(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let tok = token(&h.claim("s", "k", secs(60)).await?)?;
    for bad in [json!(5), json!({"a": "\u{0}"})] {
        expect_err(
            h.complete("s", "k", &tok, &bad).await,
            ErrorKind::InvalidInput,
            &format!("idempotency: response {bad}"),
        )?;
    }
    let c = h.claim("s", "k", secs(60)).await?;
    ensure!(
        matches!(
            c,
            Claim::Exists {
                state: KeyState::InProgress,
                ..
            }
        ),
        "idempotency: a rejected complete leaves the key in progress, got {c:?}"
    );
    Ok(())
}

/// The same key in two namespaces is two keys; purge stays in its namespace.
pub async fn namespaces_isolate_keys(ctx: &Ctx) -> CaseResult {
    let a = ctx.ns("tenant-a");
    let b = ctx.ns("tenant-b");
    ensure!(
        a.claim("s", "k", secs(10)).await?.is_acquired(),
        "namespaces: A acquires its key"
    );
    ensure!(
        b.claim("s", "k", secs(10)).await?.is_acquired(),
        "namespaces: B acquires the same key name independently"
    );
    ctx.advance(secs(10));
    ensure_eq!(
        b.purge(&RetentionPolicy::default()).await?.idempotency_keys,
        1,
        "namespaces: B's purge removes only B's expired key"
    );
    ensure_eq!(
        a.counts().await?.idempotency_keys,
        1,
        "namespaces: A's expired key survives B's purge"
    );
    Ok(())
}
