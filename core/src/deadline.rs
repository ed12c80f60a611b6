//! Deadlines: every call a handle makes is bounded by its timeout.

use std::time::Duration;

use crate::error::{Error, Result};

/// Run `call` with a time limit: no answer within `limit` is `Unavailable`.
pub(crate) async fn within<T>(
    limit: Option<Duration>,
    backend: &str,
    what: &str,
    call: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    // A backend's error says what went wrong; this says where.
    let call = async { call.await.map_err(|e| e.in_operation(what)) };
    match limit {
        None => call.await,
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(r) => r,
            Err(_) => Err(Error::unavailable(format!(
                "{what}: no answer from {backend} within {limit:?}"
            ))),
        },
    }
}
