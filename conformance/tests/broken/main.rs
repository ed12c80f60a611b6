//! The suite catches broken stores: a buggy decorator breaks ordering, dedupe
//! and atomicity, and the cases guarding those rules must fail, each with a
//! message naming the rule.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use persistkit_conformance::harnesses::MemoryHarness;
use persistkit_conformance::{all_cases, run_case, Fixture, Harness, SetupError, Status};
use persistkit_core::layer::{
    ForwardAdmin, ForwardBatches, ForwardEvents, ForwardIdempotency, ForwardMetrics, ForwardRecords,
};
use persistkit_core::op::*;
use persistkit_core::*;
use rstest::rstest;

mod buggy;
mod capabilities;
mod failures;
mod planted;
mod processes;
mod races;
mod runner;

use buggy::{outcome, Bug, BuggyHarness, BuggySqlite};
use races::HEAVY;
