//! The whole suite on the memory backend, one named test per case.

use persistkit_conformance::harnesses::MemoryHarness;

persistkit_conformance::suite!(memory, MemoryHarness);
