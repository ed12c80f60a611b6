//! What a case returns, and the assertion helpers cases use.

use std::fmt;

use persistkit_core::{error_chain, Error, ErrorKind};

/// The result of one case.
pub type CaseResult = Result<(), CaseError>;

/// Why a case did not pass.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseError {
    /// A rule of the contract was broken; the text names the rule.
    Failed(String),
    /// The case could not run here; never counted as a pass.
    Skipped(String),
    /// The backend does not declare the capability the case checks, and it
    /// correctly answered `Unsupported`; never counted as a pass.
    Unsupported(String),
}

impl CaseError {
    /// A broken rule.
    pub fn failed(msg: impl Into<String>) -> Self {
        CaseError::Failed(msg.into())
    }
}

impl fmt::Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaseError::Failed(m) => write!(f, "failed: {m}"),
            CaseError::Skipped(m) => write!(f, "skipped: {m}"),
            CaseError::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

impl From<Error> for CaseError {
    fn from(e: Error) -> Self {
        CaseError::Failed(format!("unexpected error: {}", error_chain(&e)))
    }
}

/// Fail the case with a message naming the rule unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        let holds: bool = $cond;
        if !holds {
            return Err($crate::CaseError::Failed(format!($($msg)+)));
        }
    };
}

/// Fail the case unless `left == right`, showing both and the rule.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {
        match (&$left, &$right) {
            (l, r) => {
                if l != r {
                    return Err($crate::CaseError::Failed(format!(
                        "{}\n  expected: {:?}\n  actual:   {:?}",
                        format!($($msg)+), r, l
                    )));
                }
            }
        }
    };
}

/// Check that `result` is an error of `kind`; return the error.
///
/// # Errors
/// `Failed` naming `rule` when the call succeeded or failed otherwise.
pub fn expect_err<T: fmt::Debug>(
    result: Result<T, Error>,
    kind: ErrorKind,
    rule: &str,
) -> Result<Error, CaseError> {
    match result {
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => Err(CaseError::Failed(format!(
            "{rule}: expected a {kind} error, got {}",
            error_chain(&e)
        ))),
        Ok(v) => Err(CaseError::Failed(format!(
            "{rule}: expected a {kind} error, but the call succeeded with {v:?}"
        ))),
    }
}
