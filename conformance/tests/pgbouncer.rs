//! The whole suite on Postgres behind PgBouncer in transaction pooling
//! mode, the way production runs it: every store connects through the
//! pooler with `prepared=false`. Images from PERSISTKIT_POSTGRES_IMAGE and
//! PERSISTKIT_PGBOUNCER_IMAGE (built by ci/images/*/build).

use persistkit_conformance::harnesses::PostgresHarness;

persistkit_conformance::suite!(pgbouncer, PostgresHarness::pgbouncer());
