//! The batch operation, as a backend receives it.

use super::BatchItem;

/// Commit every item or none (REC-9, COM-9).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Apply<'a> {
    /// The writes, validated, in order.
    pub items: &'a [BatchItem],
}

impl<'a> Apply<'a> {
    /// Apply `items`. The handle builds this after validating them; a layer
    /// builds one only to pass on a changed batch.
    pub fn new(items: &'a [BatchItem]) -> Self {
        Apply { items }
    }
}
