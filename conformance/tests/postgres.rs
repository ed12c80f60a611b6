//! The whole suite on Postgres, one named test per case: in Docker (image
//! from PERSISTKIT_POSTGRES_IMAGE) or on PERSISTKIT_TEST_POSTGRES_URL.

use persistkit_conformance::harnesses::PostgresHarness;

persistkit_conformance::suite!(postgres, PostgresHarness::from_env());
