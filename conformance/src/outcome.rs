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

/// Fail the case unless `left == right` (actual, then expected), showing
/// both, or a diff of the two when they do not fit on a line, and the rule.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {
        match (&$left, &$right) {
            (l, r) => {
                if l != r {
                    return Err($crate::outcome::mismatch(format!($($msg)+), l, r));
                }
            }
        }
    };
}

/// Values this long or longer are shown as a diff, not side by side.
const SIDE_BY_SIDE: usize = 100;

/// Lines of diff a failure shows at most.
const DIFF_LINES: usize = 80;

/// The failure of an [`ensure_eq!`]: `what`, then expected and actual side
/// by side when both are short, else a line diff of their pretty `Debug`
/// forms (`-` expected, `+` actual) with two lines of context.
#[doc(hidden)]
pub fn mismatch(what: String, actual: &dyn fmt::Debug, expected: &dyn fmt::Debug) -> CaseError {
    let (a, e) = (format!("{actual:?}"), format!("{expected:?}"));
    if a.len() < SIDE_BY_SIDE && e.len() < SIDE_BY_SIDE {
        return CaseError::Failed(format!("{what}\n  expected: {e}\n  actual:   {a}"));
    }
    let (a, e) = (format!("{actual:#?}"), format!("{expected:#?}"));
    let diff = similar::TextDiff::from_lines(&e, &a);
    let text = diff
        .unified_diff()
        .context_radius(2)
        .header("expected", "actual")
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut shown = lines
        .iter()
        .take(DIFF_LINES)
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    if lines.len() > DIFF_LINES {
        shown.push_str(&format!(
            "\n  … {} more lines of diff",
            lines.len() - DIFF_LINES
        ));
    }
    CaseError::Failed(format!(
        "{what}\n  diff of expected (-) and actual (+):\n{shown}"
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: CaseError) -> String {
        match e {
            CaseError::Failed(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_values_are_shown_side_by_side() {
        let m = text(mismatch("COM-4: order".into(), &vec![2, 1], &vec![1, 2]));
        assert_eq!(m, "COM-4: order\n  expected: [1, 2]\n  actual:   [2, 1]");
    }

    #[test]
    fn long_values_are_shown_as_a_diff_of_what_differs() {
        let expected: Vec<String> = (0..200).map(|i| format!("record-{i:03}")).collect();
        let mut actual = expected.clone();
        actual[100] = "record-XXX".into();
        let m = text(mismatch("REC-2: listing".into(), &actual, &expected));
        assert!(
            m.starts_with("REC-2: listing\n  diff of expected (-) and actual (+):"),
            "{m}"
        );
        assert!(m.contains("-    \"record-100\","), "{m}");
        assert!(m.contains("+    \"record-XXX\","), "{m}");
        assert!(
            !m.contains("record-050"),
            "unchanged lines far away stay out: {m}"
        );
        assert!(m.lines().count() < 20, "{m}");
    }

    #[test]
    fn a_huge_diff_is_cut() {
        let expected: Vec<u32> = (0..1000).collect();
        let actual: Vec<u32> = (0..1000).map(|i| i * 7 + 3).collect();
        let m = text(mismatch("x".into(), &actual, &expected));
        assert!(m.contains("more lines of diff"), "{m}");
        assert!(m.lines().count() <= DIFF_LINES + 3, "{}", m.lines().count());
    }
}
