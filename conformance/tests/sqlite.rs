//! The whole suite on SQLite, one named test per case.

use persistkit_conformance::harnesses::SqliteHarness;

persistkit_conformance::suite!(sqlite, SqliteHarness::new());
