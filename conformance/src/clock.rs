//! Where every fixture's clock starts.

/// The clock every case starts at: 2024-01-01T00:00:00Z.
pub const START: i64 = 1_704_067_200;
